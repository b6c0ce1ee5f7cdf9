"""Training throughput: graphlake's trainer vs a PyTorch Geometric reference, same graph, same run.

Prints ONE JSON line. Graph: ``bench/sampler.py``'s synthetic power-law user -> item click graph
(default 200k users, 100k items, 5M distinct edges, seeded). Model on both sides: 2-layer hetero
GraphSAGE (mean aggregation, root weight, LayerNorm, residual), ID embeddings of width ``--dim``
as the only input features, fanouts ``[10, 5]``, ``--batch`` positive pairs per step with
``--num-negatives`` uniform negative(s) each, BPR loss + ``l2`` (1e-4), Adam (lr 0.005).

* graphlake: the real :class:`graphlake.training.trainer.Trainer` (LocalBackend, an in-memory snapshot of
  the graph, ID embeddings only), stepped exactly as ``Trainer.fit`` does: ``_prepare_step``
  (positives of the step, negatives, neighbour sampling of the distinct seeds with the batch's
  edges excluded) one step ahead in the prefetch thread (``train.prefetch``; ``--no-prefetch``
  runs it in the training thread), then ``zero_grad``, ``_step_loss`` (feature gather, forward,
  loss), ``backward``, ``optimizer.step``, ``float(loss)``.
* PyG: ``bench/pyg_reference.py`` (HeteroConv + SAGEConv + LinkNeighborLoader with torch-sparse)
  run with the PyG venv's python (``bench/setup_pyg_venv.sh``) on the same edges (an ``.npz``).

Both sides: ``--warmup`` untimed steps, then ``--steps`` timed steps; ``torch.set_num_threads(--threads)``;
they run one after the other, never at once. ``--sparse-id`` gives BOTH sides sparse ID-embedding
gradients and lazy Adam for the ID tables (graphlake's ``model.sparse_id_embedding``: its trainer's
``graphlake.training.optim.RowAdam``; PyG: ``torch.optim.SparseAdam``, the same algorithm). Dense parameters:
Adam on both sides (graphlake's trainer uses torch's fused kernel, PyG the default one).
``--profile`` adds a per-section breakdown of graphlake's step (ms per step, the sections run one
after the other). Like for like: PyG's default loader samples in the training process
(``num_workers=0``); ``--pyg-workers 1`` gives it a loader process (its sampling overlaps too) and
``--no-prefetch`` takes graphlake's overlap away. ``--device cuda`` trains both models on the GPU
(sampling stays on the CPU on both sides; PyG's batches are copied to the device as usual); the
per-step times are measured at ``float(loss)``, which waits for the device.

Noise: absolute times follow the machine's load (each side records its 1-minute load average before
and after its timed steps, and its median step time: ``ratio_of_median_steps``). The OpenMP wait
policy defaults to PASSIVE for both sides (see the comment at the imports); set ``OMP_WAIT_POLICY``
to override it.

Exit status: 0 when ``ratio >= target_ratio``, 1 when below, 2 when the PyG venv is missing or
the reference failed (the JSON says why).

Example:
    bash bench/setup_pyg_venv.sh          # once (~10+ min: builds torch-scatter / torch-sparse)
    python bench/train_throughput.py --profile
    {"bench": "train_throughput", "graphlake_seed_edges_per_s": ..., "pyg_seed_edges_per_s": ..., "ratio": ...}
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

# OpenMP wait policy, read once when torch's libgomp loads (so before `import torch`), inherited by
# the PyG subprocess: both sides run under the same one. libgomp's default (spin, then sleep) is
# pathological on a shared, oversubscribed machine: measured here with another process busy,
# 2-thread torch.sort of 100k int64 184 ms (PASSIVE 3.6 ms, 1 thread 4 ms), bincount 16 ms
# (0.2 ms). An explicit OMP_WAIT_POLICY in the environment is kept.
OMP_POLICY_DEFAULT = "PASSIVE"
os.environ.setdefault("OMP_WAIT_POLICY", OMP_POLICY_DEFAULT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from graphlake.graph_build.memory_snapshot import MemorySnapshot  # noqa: E402
from graphlake.training.config import TrainConfig  # noqa: E402
from graphlake.training.distributed.base import LocalBackend  # noqa: E402
from graphlake.training.prefetch import prefetched  # noqa: E402
from graphlake.training.trainer import Trainer  # noqa: E402

EDGE_TYPE = "user__click__item"
DEFAULT_PYG_VENV = os.path.join(os.environ.get("GRAPHLAKE_CACHE", os.path.expanduser("~/.cache/graphlake")),
                                "pyg-venv")


def _power_law_graph():
    """``bench/sampler.py``'s generator (bench/ is not a package: loaded by path)."""
    spec = importlib.util.spec_from_file_location("_bench_sampler", os.path.join(ROOT, "bench", "sampler.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.power_law_graph


def _batch_size_stats(batch) -> tuple[int, int]:
    nodes = sum(len(v) for v in batch.node_ids.values())
    edges = sum(len(e[0]) for blk in batch.blocks for e in blk.edges.values())
    return nodes, edges


def run_graphlake(trainer: Trainer, warmup: int, steps: int) -> dict:
    """Step the trainer exactly as ``Trainer.fit`` does (``train.prefetch``: the next step's
    positives, negatives and sampling prepared in the background thread while this one trains);
    returns the timed figures. A step's time runs from the previous step's end to its own, so it
    holds whatever part of its preparation did not overlap the previous step."""
    opt, backend = trainer.optimizer, trainer.backend
    trainer.model.train()
    times, marks = [], []
    pipeline = prefetched(lambda k: trainer._prepare_step(0, k), range(warmup + steps),
                          enabled=trainer.config.prefetch)
    with contextlib.closing(pipeline):
        for step, prepared in pipeline:
            if step == warmup:
                load, t0 = os.getloadavg()[0], time.perf_counter()
                marks.append(t0)
            opt.zero_grad()
            loss, n = trainer._step_loss(0, step, prepared)
            loss.backward()
            opt.step()
            backend.allreduce_mean(float(loss.detach()), "loss")
            if step >= warmup:
                marks.append(time.perf_counter())
                times.append((n, marks[-1] - marks[-2]))
    secs = marks[-1] - marks[0]
    seeds = sum(n for n, _ in times)
    return {"seed_edges_per_s": round(seeds / secs, 1), "seconds": round(secs, 3), "seed_edges": seeds,
            "step_ms": round(1000 * secs / steps, 1),
            "median_step_ms": round(1000 * float(np.median([t for _, t in times])), 1),
            "prefetch": trainer.config.prefetch, "loadavg_1min": [round(load, 2), round(os.getloadavg()[0], 2)]}


def profile_graphlake(trainer: Trainer, first_step: int, steps: int) -> dict:
    """ms per step of each section of graphlake's step, run one after the other (no prefetch; the
    timed run hides most of ``prepare`` behind the previous step): ``prepare`` is
    ``Trainer._prepare_step`` (positives, negatives, neighbour sampling of the distinct seeds),
    ``forward`` is ``Trainer._step_loss`` on it (feature gather, model, loss). The steps continue
    the timed run's sequence.
    """
    opt = trainer.optimizer
    names = ("zero_grad", "prepare", "forward", "backward", "optimizer")
    acc = dict.fromkeys(names, 0.0)
    nodes = edges = 0
    trainer.model.train()
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)

    def now() -> float:  # a section ends when its device work does
        sync()
        return time.perf_counter()

    for step in range(first_step, first_step + steps):
        t = [now()]
        opt.zero_grad()
        t.append(now())
        prepared = trainer._prepare_step(0, step)
        t.append(now())
        loss, _ = trainer._step_loss(0, step, prepared)
        t.append(now())
        loss.backward()
        t.append(now())
        opt.step()
        float(loss.detach())
        t.append(now())
        for i, name in enumerate(names):
            acc[name] += t[i + 1] - t[i]
        bn, be = _batch_size_stats(prepared.batch)
        nodes, edges = nodes + bn, edges + be
    total = sum(acc.values())
    out = {k: round(1000 * v / steps, 1) for k, v in acc.items()}
    out["total"] = round(1000 * total / steps, 1)
    out["share"] = {k: round(v / total, 3) for k, v in acc.items()}
    out["sampled_nodes_per_batch"] = round(nodes / steps)
    out["sampled_edges_per_batch"] = round(edges / steps)
    return out


def run_pyg(python: str, npz: str, a) -> dict:
    cmd = [python, os.path.join(ROOT, "bench", "pyg_reference.py"), "--npz", npz, "--batch", str(a.batch),
           "--fanouts", *map(str, a.fanouts), "--dim", str(a.dim), "--num-negatives", str(a.num_negatives),
           "--lr", str(a.lr), "--l2", str(a.l2), "--warmup", str(a.warmup), "--steps", str(a.steps),
           "--threads", str(a.threads), "--seed", str(a.seed), "--num-workers", str(a.pyg_workers),
           "--device", a.device] + \
        (["--sparse-id"] if a.sparse_id else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.pyg_timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"pyg_reference exited {proc.returncode}: " + " | ".join(tail))
    return json.loads(lines[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--edges", type=int, default=5_000_000)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--fanouts", type=int, nargs="+", default=[10, 5])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--num-negatives", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--l2", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sparse-id", action="store_true",
                   help="both sides: sparse ID-embedding gradients + lazy Adam for the ID tables")
    p.add_argument("--no-prefetch", action="store_true",
                   help="graphlake without train.prefetch (sampling in the training thread, as PyG's default loader)")
    p.add_argument("--pyg-workers", type=int, default=0,
                   help="the PyG loader's num_workers (default 0, PyG's default; 1: its sampling overlaps too)")
    p.add_argument("--device", default="cpu",
                   help="where both sides train (e.g. cuda): sampling stays on the CPU, the model and its step on it")
    p.add_argument("--profile", action="store_true", help="add a per-section breakdown of graphlake's step")
    p.add_argument("--profile-steps", type=int, default=20)
    p.add_argument("--target-ratio", type=float, default=3.0)
    p.add_argument("--pyg-python", default=os.environ.get("GRAPHLAKE_PYG_PYTHON",
                                                         os.path.join(DEFAULT_PYG_VENV, "bin", "python")))
    p.add_argument("--pyg-timeout", type=int, default=1800)
    p.add_argument("--npz", default=None, help="where to write the graph (default: a temporary file)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    result: dict = {"bench": "train_throughput", "threads": a.threads, "target_ratio": a.target_ratio,
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "device": a.device, "torch": torch.__version__}
    if torch.device(a.device).type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(torch.device(a.device))
    t0 = time.perf_counter()
    graph = _power_law_graph()(a.users, a.items, a.edges, a.seed)
    indptr, indices, weights = graph.csr(("item", "rev_click", "user"))  # the stored user -> item CSR
    result["graph"] = {"users": a.users, "items": a.items, "edges": int(len(indices)), "seed": a.seed,
                       "build_s": round(time.perf_counter() - t0, 2)}
    result["config"] = {"fanouts": a.fanouts, "batch": a.batch, "dim": a.dim, "layers": len(a.fanouts),
                        "num_negatives": a.num_negatives, "negatives": "uniform", "loss": "bpr", "l2": a.l2,
                        "optimizer": "adam", "lr": a.lr, "sparse_id": a.sparse_id, "warmup": a.warmup,
                        "steps": a.steps, "prefetch": not a.no_prefetch, "pyg_workers": a.pyg_workers,
                        "device": a.device}

    tmp = tempfile.TemporaryDirectory(prefix="graphlake-train-bench-")
    npz = a.npz or os.path.join(tmp.name, "graph.npz")
    np.savez(npz, num_users=np.int64(a.users), num_items=np.int64(a.items), indptr=indptr.numpy(),
             indices=indices.numpy())

    snapshot = MemorySnapshot({"user": a.users, "item": a.items}, {EDGE_TYPE: (indptr, indices, weights)})
    del graph
    config = TrainConfig(targets=(EDGE_TYPE,), fanouts=tuple(a.fanouts), batch_size=a.batch, epochs=1, lr=a.lr,
                         l2=a.l2, optimizer="adam", num_negatives=a.num_negatives, negatives={"uniform": 1.0},
                         loss="bpr", validation_fraction=0.0, seed=a.seed, prefetch=not a.no_prefetch,
                         model={"hidden_dim": a.dim, "num_layers": len(a.fanouts), "use_features": False,
                                "sparse_id_embedding": a.sparse_id})
    t0 = time.perf_counter()
    trainer = Trainer(snapshot, config, os.path.join(tmp.name, "run"), LocalBackend(device=a.device), progress=False)
    result["graphlake_setup_s"] = round(time.perf_counter() - t0, 2)
    ours = run_graphlake(trainer, a.warmup, a.steps)
    result["graphlake_seed_edges_per_s"] = ours["seed_edges_per_s"]
    result["graphlake"] = ours
    if a.profile:
        result["graphlake_profile_ms"] = profile_graphlake(trainer, a.warmup + a.steps, a.profile_steps)
    del trainer

    status = 0
    if not os.path.exists(a.pyg_python):
        result.update(pyg="not installed: run bench/setup_pyg_venv.sh", pyg_seed_edges_per_s=None, ratio=None,
                      ok=False)
        status = 2
    else:
        try:
            ref = run_pyg(a.pyg_python, npz, a)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            result.update(pyg=f"failed: {exc}", pyg_seed_edges_per_s=None, ratio=None, ok=False)
            status = 2
        else:
            ratio = ours["seed_edges_per_s"] / ref["seed_edges_per_s"]
            result.update(pyg_seed_edges_per_s=ref["seed_edges_per_s"], ratio=round(ratio, 2),
                          ratio_of_median_steps=round(ref["median_step_ms"] / ours["median_step_ms"], 2),
                          ok=ratio >= a.target_ratio, pyg=ref,
                          versions={k: ref.get(k) for k in ("torch", "torch_geometric", "torch_sparse",
                                                            "torch_scatter", "pyg_lib")})
            status = 0 if result["ok"] else 1
    print(json.dumps(result), flush=True)
    tmp.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
