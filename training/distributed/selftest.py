"""A tiny data-parallel training run: the worker of the distributed tests and a smoke check.

The model has a sparse embedding table (nn.Embedding(sparse=True)) and dense Linear layers; the
data are deterministic synthetic batches that every rank regenerates, each rank training on its
equal shard of the global batch. Each rank writes `<out>/rank<r>.json` with its per-step global
loss (mean over ranks of the shard-mean loss), the final parameters and their SHA-256.

    python -m training.distributed.launch --backend ddp --workers 2 \
        training.distributed.selftest -- --out /tmp/selftest --steps 5
    python -m training.distributed.selftest --backend local --out /tmp/selftest_local

The same run on one process (LocalBackend, whole global batch) gives the same losses and
parameters up to float rounding; that is what tests/test_distributed.py checks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import torch
from torch import nn

from graphlake.training.distributed.base import Backend, local_shard
from graphlake.training.distributed.factory import get_backend


class TinyModel(nn.Module):
    """score = head(tanh(emb[ids] + dense(x))).

    Args:
        num_embeddings: rows of the sparse table.
        dim: embedding width.
        dense_dim: width of the dense input x.

    Shapes: ids (B,) int64, x (B, dense_dim) float -> (B,) float.

    Example:
        >>> TinyModel(10, 4, 3)(torch.tensor([1, 2]), torch.zeros(2, 3)).shape
        torch.Size([2])
    """

    def __init__(self, num_embeddings: int = 64, dim: int = 8, dense_dim: int = 4) -> None:
        super().__init__()
        self.emb = nn.Embedding(num_embeddings, dim, sparse=True)
        self.dense = nn.Linear(dense_dim, dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.emb(ids) + self.dense(x))).squeeze(-1)


def global_batch(step: int, seed: int, batch_size: int, num_embeddings: int,
                 dense_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The deterministic global batch of `step`: (ids (B,), x (B, dense_dim), y (B,))."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    ids = torch.randint(0, num_embeddings, (batch_size,), generator=gen)
    x = torch.randn(batch_size, dense_dim, generator=gen)
    y = torch.sin(ids.float()) + 0.5 * x.sum(dim=1)
    return ids, x, y


def param_digest(model: nn.Module) -> tuple[str, list[float]]:
    """(SHA-256 of the float32 bytes of all parameters in name order, the flat values)."""
    flat = torch.cat([p.detach().float().cpu().reshape(-1) for _, p in sorted(model.named_parameters())])
    return hashlib.sha256(flat.numpy().tobytes()).hexdigest(), flat.tolist()


def train(backend: Backend, steps: int = 5, batch_size: int = 16, seed: int = 0, lr: float = 0.1,
          momentum: float = 0.9, num_embeddings: int = 64, kill_rank: int = -1,
          kill_step: int = -1, hang_rank: int = -1, hang_step: int = -1) -> dict:
    """Train TinyModel for `steps` SGD steps on this rank's shard; returns the per-rank result.

    Parameters start from seed + rank on purpose: only `broadcast_state` makes them equal.
    `kill_rank`/`kill_step` make that rank SIGKILL itself at that step, `hang_rank`/`hang_step`
    make it sleep for an hour there (failure and timeout tests).
    """
    dense_dim = 4
    torch.manual_seed(seed + backend.rank)
    model = backend.wrap_model(TinyModel(num_embeddings, 8, dense_dim))
    optimizer = backend.wrap_optimizer(torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum), model)
    backend.broadcast_state(model, optimizer)
    shard = local_shard(batch_size, backend.rank, backend.world_size)
    losses, local_losses = [], []
    for step in range(steps):
        if step == kill_step and backend.rank == kill_rank:
            print(f"[rank {backend.rank}] step {step}: killing myself (SIGKILL) as asked", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        if step == hang_step and backend.rank == hang_rank:
            print(f"[rank {backend.rank}] step {step}: hanging as asked", flush=True)
            time.sleep(3600)
        ids, x, y = (t[shard].to(backend.device) for t in global_batch(step, seed, batch_size,
                                                                         num_embeddings, dense_dim))
        optimizer.zero_grad()
        loss = torch.mean((model(ids, x) - y) ** 2)  # mean over the local shard
        loss.backward()
        optimizer.step()
        local_losses.append(loss.item())
        losses.append(backend.allreduce_mean(loss.item(), "loss"))
        if backend.is_root:
            print(f"[rank 0/{backend.world_size}] step {step} loss {losses[-1]:.6f}", flush=True)
    digest, params = param_digest(backend.unwrap_model(model))
    return {"backend": backend.name, "rank": backend.rank, "world_size": backend.world_size,
            "device": str(backend.device), "losses": losses, "local_losses": local_losses,
            "param_sha256": digest, "params": params}


def main(argv: list[str] | None = None) -> int:
    """CLI entry: parse args, build the backend from the environment, train, write rank<r>.json."""
    parser = argparse.ArgumentParser(prog="python -m training.distributed.selftest")
    parser.add_argument("--out", required=True, help="folder for rank<r>.json")
    parser.add_argument("--backend", default=None, help="local|horovod|ddp (default $GRAPHLAKE_BACKEND)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--kill-rank", type=int, default=-1)
    parser.add_argument("--kill-step", type=int, default=-1)
    parser.add_argument("--hang-rank", type=int, default=-1)
    parser.add_argument("--hang-step", type=int, default=-1)
    parser.add_argument("--sparse-grads", choices=("native", "dense"), default=None, help="ddp only")
    parser.add_argument("--sparse-as-dense", action="store_true", help="horovod only")
    parser.add_argument("--device", default=None, help="e.g. cpu to ignore GPUs")
    ns = parser.parse_args(argv)
    name = ns.backend or os.environ.get("GRAPHLAKE_BACKEND", "local")
    options: dict = {"device": ns.device}
    if name == "ddp":
        options["sparse_grads"] = ns.sparse_grads
    if name == "horovod":
        options["sparse_as_dense"] = ns.sparse_as_dense
    with get_backend(name, **options) as backend:
        result = train(backend, ns.steps, ns.batch_size, ns.seed, ns.lr, ns.momentum,
                       kill_rank=ns.kill_rank, kill_step=ns.kill_step,
                       hang_rank=ns.hang_rank, hang_step=ns.hang_step)
        out = Path(ns.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"rank{backend.rank}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
