"""Entry point of one training rank: ``python -m graphlake.training.worker --run-dir DIR --backend NAME``.

The launcher (``graphlake.training.distributed.launch``: horovodrun, torchrun, ``horovod.spark.run``,
TorchDistributor) starts this module once per rank; in a single process ``graphlake.training.job`` calls
:func:`run` directly. The run folder (:class:`graphlake.training.run.TrainRun` owns its names)
holds ``run.json`` (snapshot path and config, written by the driver) and receives the
checkpoints, ``metrics.jsonl`` and the embeddings ``embeddings/<type>.npy`` (float32
``(num_nodes, dim)``, row = node id): rank 0 creates each file, every rank fills its slice of
the rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import numpy as np

from graphlake.core.config import load_config
from graphlake.graph_build.snapshot import open_snapshot
from graphlake.training.config import TrainConfig
from graphlake.training.distributed import get_backend
from graphlake.training.run import TrainRun
from graphlake.training.scoring import exported_dim
from graphlake.training.trainer import Trainer, write_metrics

RANKS_DIR = "ranks"


def rank_file(run_dir: str, rank: int) -> str:
    """``ranks/rank-<r>.json`` of a run: where rank ``r`` says which process it is."""
    return os.path.join(run_dir, RANKS_DIR, f"rank-{rank}.json")


def write_rank_file(run_dir: str, rank: int, world_size: int) -> str:
    """Record this process as rank ``rank`` (pid, host, world size) so an operator (or a fault
    test) can find the process of a rank: under ``horovod.spark.run`` a rank is a process that
    horovod's task service starts in a new session below an executor, with its rank set only
    in-process (not in its initial environment). Written atomically; returns the path."""
    import socket

    path = rank_file(run_dir, rank)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"rank": rank, "world_size": world_size, "pid": os.getpid(), "host": socket.gethostname()}, f)
    os.replace(tmp, path)
    return path


def run(run_dir: str, backend, resume: bool = False, progress: bool = True) -> dict:
    """Train, then write this rank's slice of every node type's embeddings. Returns a summary."""
    train_run = TrainRun(run_dir)
    spec = train_run.spec()
    config = load_config(TrainConfig, spec["config"])
    trainer = Trainer(open_snapshot(spec["snapshot"]), config, run_dir, backend, progress=progress)
    history = trainer.fit(resume=resume, warm_start=(spec.get("warm_start") or {}).get("checkpoint"))
    parts = trainer.embed_all(rank_slice=True)
    dim = exported_dim(trainer.model_config)
    if backend.is_root:
        os.makedirs(train_run.embeddings_dir, exist_ok=True)
        for t in parts:
            np.lib.format.open_memmap(train_run.embeddings_path(t), mode="w+", dtype=np.float32,
                                      shape=(trainer.snapshot.num_nodes(t), dim)).flush()
    backend.barrier()
    for t, part in parts.items():
        if isinstance(part, tuple):
            lo, hi, rows = part
        else:  # full mode: every rank holds all rows; the root writes them
            lo, hi, rows = 0, len(part), part
            if not backend.is_root:
                continue
        out = np.load(train_run.embeddings_path(t), mmap_mode="r+")
        out[lo:hi] = rows
        out.flush()
        del out
    backend.barrier()
    summary = {"steps": len([h for h in history if "loss" in h]), "world_size": backend.world_size,
               "device": str(backend.device)}
    if backend.is_root:
        if trainer.validation:
            summary["validation"] = trainer.validate({t: np.load(train_run.embeddings_path(t), mmap_mode="r")
                                                      for t in parts})
        write_metrics(run_dir, history + ([{"final": True, **summary["validation"]}] if "validation" in summary else []))
        with open(train_run.done_path, "w") as f:
            json.dump(summary, f)
    backend.barrier()
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="one rank of a graphlake training run")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--backend", default="local", choices=["local", "horovod", "ddp"])
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (this rank's GPU) or cuda:N")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("GRAPHLAKE_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    # some relations (and their weights) may get no edge in a sampled block: DDP must allow that
    backend = get_backend(args.backend, device=args.device,
                          **({"find_unused_parameters": True} if args.backend == "ddp" else {}))
    try:
        write_rank_file(args.run_dir, backend.rank, backend.world_size)
        run(args.run_dir, backend, resume=args.resume, progress=not args.no_progress)
    finally:
        backend.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
