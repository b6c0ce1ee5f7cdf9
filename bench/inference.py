"""Inference for every node: layer-wise (full neighbourhoods) vs sampled mini-batches, same model.

On the synthetic user-item graph of ``bench/train_throughput.py`` (default 200k users, 100k
items, 5M power-law clicks; 2 layers, fanouts [10, 5], dim 64), a model is trained for
``--steps`` steps, then ``Trainer.embed_all()`` runs with ``inference: sampled`` (the default) and
``inference: layerwise`` on the same parameters. Prints one JSON line: seconds and nodes/s of
each, their ratio, and how far the sampled vectors are from the exact ones (mean cosine).

    python bench/inference.py [--users N --items N --edges N] [--steps N] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.sampler import power_law_graph  # noqa: E402  (the throughput bench's graph)
from graphlake.graph_build.memory_snapshot import MemorySnapshot  # noqa: E402
from graphlake.training.config import TrainConfig  # noqa: E402
from graphlake.training.distributed.base import LocalBackend  # noqa: E402
from graphlake.training.trainer import Trainer  # noqa: E402

EDGE_TYPE = "user__click__item"


def _timed_embed(trainer: Trainer) -> tuple[dict, float]:
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)
    t0 = time.perf_counter()
    out = trainer.embed_all()
    return out, time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--edges", type=int, default=5_000_000)
    p.add_argument("--fanouts", type=int, nargs="+", default=[10, 5])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--steps", type=int, default=200, help="training steps before the inference runs")
    p.add_argument("--inference-batch", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    graph = power_law_graph(a.users, a.items, a.edges, a.seed)
    indptr, indices, weights = graph.csr(("item", "rev_click", "user"))  # the stored user -> item CSR
    snapshot = MemorySnapshot({"user": a.users, "item": a.items}, {EDGE_TYPE: (indptr, indices, weights)})
    del graph
    base = dict(targets=(EDGE_TYPE,), fanouts=tuple(a.fanouts), batch_size=1024, epochs=1, lr=0.005,
                validation_fraction=0.0, seed=a.seed, inference_batch_size=a.inference_batch,
                model={"hidden_dim": a.dim, "num_layers": len(a.fanouts), "use_features": False})
    result = {"bench": "inference", "threads": a.threads, "device": a.device, "torch": torch.__version__,
              "graph": {"users": a.users, "items": a.items, "edges": int(len(indices))},
              "config": {"fanouts": a.fanouts, "dim": a.dim, "train_steps": a.steps,
                         "inference_batch_size": a.inference_batch}}
    with tempfile.TemporaryDirectory(prefix="graphlake-inference-bench-") as tmp:
        trainers = {mode: Trainer(snapshot, TrainConfig(**base, inference=mode), os.path.join(tmp, mode),
                                  LocalBackend(device=a.device), progress=False)
                    for mode in ("sampled", "layerwise")}
        sampled, layerwise = trainers["sampled"], trainers["layerwise"]
        t0 = time.perf_counter()
        for step in range(a.steps):
            sampled.optimizer.zero_grad()
            loss, _ = sampled._step_loss(0, step)
            loss.backward()
            sampled.optimizer.step()
        result["train_s"] = round(time.perf_counter() - t0, 1)
        layerwise.model.load_state_dict(sampled.model.state_dict())
        vectors, seconds = {}, {}
        for mode in ("sampled", "layerwise"):
            vectors[mode], seconds[mode] = _timed_embed(trainers[mode])
    nodes = a.users + a.items
    for mode in ("sampled", "layerwise"):
        result[mode] = {"seconds": round(seconds[mode], 2), "nodes_per_s": round(nodes / seconds[mode])}
    result["speedup"] = round(seconds["sampled"] / seconds["layerwise"], 2)
    for t in ("user", "item"):
        x, y = vectors["sampled"][t], vectors["layerwise"][t]
        cos = (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-12)
        result[f"{t}_cosine_sampled_vs_exact"] = {"mean": round(float(cos.mean()), 4),
                                                  "p5": round(float(np.percentile(cos, 5)), 4)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
