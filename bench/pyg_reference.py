"""PyTorch Geometric reference for the training-throughput benchmark; prints one JSON line.

Runs in the separate PyG virtualenv (``bench/setup_pyg_venv.sh``), started by
``bench/train_throughput.py`` on the ``.npz`` graph that the driver wrote, so that both systems
train on identical edges. The model is graphlake's default hetero GraphSAGE written with PyG's
building blocks:

* ``HeteroData`` with ``('user', 'click', 'item')`` and its reverse ``('item', 'rev_click', 'user')``;
* inputs: learnable ID embeddings (``nn.Embedding``, ``N(0, 0.1)``) for both types, looked up by
  the sampled subgraph's ``n_id``;
* ``num_layers`` x ``HeteroConv({rel: SAGEConv(dim, dim, aggr='mean')}, aggr='sum')`` (neighbour
  transform with bias + root transform per relation: graphlake's ``W_r mean + W_root h + b``),
  then per type LayerNorm, ReLU (not on the last layer) and a residual ``+ h`` (graphlake's
  ``norm: layer, residual: true, last_activation: false``);
* ``LinkNeighborLoader(num_neighbors=fanouts, batch_size, shuffle=True,
  neg_sampling=NegativeSampling('triplet', amount=num_negatives))`` over every click edge;
* BPR loss ``mean softplus(s_neg - s_pos)`` on dot scores + ``l2 * 0.5 * (|u|^2 + |v|^2 + |n|^2) / B``
  (graphlake's ``l2`` term), Adam (``--sparse-id``: sparse embedding gradients + SparseAdam for the
  ID tables, Adam for the rest, as graphlake's ``sparse_id_embedding``).

Timing: ``--warmup`` steps, then ``--steps`` timed steps; a step is fetching the next mini-batch
from the loader (neighbour + negative sampling; ``--num-workers`` loader processes, default 0: in
this process, PyG's default), forward, backward, optimizer step and ``loss.item()``.
``seed_edges_per_s`` = positive pairs trained / s.

Example:
    ~/.cache/graphlake/pyg-venv/bin/python bench/pyg_reference.py --npz /tmp/graph.npz --threads 2
    {"bench": "pyg_reference", "seed_edges_per_s": ..., "steps": 30, "seconds": ..., "torch": "2.13.0+cpu", ...}
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def build_data(npz_path: str):
    from torch_geometric.data import HeteroData

    d = np.load(npz_path)
    users, items = int(d["num_users"]), int(d["num_items"])
    indptr = torch.from_numpy(d["indptr"].astype(np.int64))
    dst = torch.from_numpy(d["indices"].astype(np.int64))
    src = torch.repeat_interleave(torch.arange(users, dtype=torch.int64), indptr.diff())
    edge_index = torch.stack([src, dst])
    data = HeteroData()
    data["user"].num_nodes = users
    data["item"].num_nodes = items
    data["user", "click", "item"].edge_index = edge_index
    data["item", "rev_click", "user"].edge_index = edge_index.flip(0).contiguous()
    return data, edge_index, users, items


class PyGHeteroSAGE(nn.Module):
    """ID embeddings -> L x (HeteroConv of SAGEConv -> LayerNorm -> ReLU (not last) -> + residual)."""

    def __init__(self, num_nodes: dict, relations: list, dim: int, num_layers: int, sparse: bool):
        from torch_geometric.nn import HeteroConv, SAGEConv

        super().__init__()
        self.emb = nn.ModuleDict({t: nn.Embedding(n, dim, sparse=sparse) for t, n in num_nodes.items()})
        for e in self.emb.values():
            nn.init.normal_(e.weight, std=0.1)
        self.convs = nn.ModuleList([
            HeteroConv({rel: SAGEConv(dim, dim, aggr="mean") for rel in relations}, aggr="sum")
            for _ in range(num_layers)])
        self.norms = nn.ModuleList([nn.ModuleDict({t: nn.LayerNorm(dim) for t in num_nodes})
                                    for _ in range(num_layers)])

    def forward(self, n_id: dict, edge_index_dict: dict) -> dict:
        x = {t: self.emb[t](ids) for t, ids in n_id.items()}
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            z = conv(x, edge_index_dict)
            out = {}
            for t, h in x.items():
                zt = self.norms[i][t](z[t]) if t in z else h.new_zeros(h.shape)
                if i < last:
                    zt = torch.relu(zt)
                out[t] = zt + h
            x = out
        return x


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--npz", required=True, help="graph written by bench/train_throughput.py")
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
    p.add_argument("--sparse-id", action="store_true", help="sparse ID-embedding gradients + SparseAdam")
    p.add_argument("--num-workers", type=int, default=0,
                   help="LinkNeighborLoader worker processes (>0: sampling overlaps training, persistent workers)")
    p.add_argument("--device", default="cpu", help="where the model trains (e.g. cuda); sampling stays on the CPU")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    import torch_geometric
    from torch_geometric.loader import LinkNeighborLoader
    from torch_geometric.sampler import NegativeSampling
    from torch_geometric.typing import WITH_PYG_LIB, WITH_TORCH_SPARSE

    versions = {"torch": torch.__version__, "torch_geometric": torch_geometric.__version__}
    for mod in ("torch_sparse", "torch_scatter", "pyg_lib"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    if not (WITH_PYG_LIB or WITH_TORCH_SPARSE):
        raise SystemExit("pyg_reference: PyG's neighbour sampler needs pyg-lib or torch-sparse; "
                         "run bench/setup_pyg_venv.sh")

    t0 = time.perf_counter()
    data, edge_index, users, items = build_data(a.npz)
    rel = ("user", "click", "item")
    loader = LinkNeighborLoader(data, num_neighbors=list(a.fanouts), edge_label_index=(rel, edge_index),
                                batch_size=a.batch, shuffle=True, num_workers=a.num_workers,
                                persistent_workers=a.num_workers > 0,
                                neg_sampling=NegativeSampling("triplet", amount=a.num_negatives))
    model = PyGHeteroSAGE({"user": users, "item": items}, list(data.edge_types), a.dim, len(a.fanouts),
                          a.sparse_id).to(device)
    emb_params = [p_ for m in model.emb.values() for p_ in m.parameters()]
    emb_ids = {id(p_) for p_ in emb_params}
    dense_params = [p_ for p_ in model.parameters() if id(p_) not in emb_ids]
    if a.sparse_id:
        optimizers = [torch.optim.Adam(dense_params, lr=a.lr), torch.optim.SparseAdam(emb_params, lr=a.lr)]
    else:
        optimizers = [torch.optim.Adam(model.parameters(), lr=a.lr)]
    setup_s = time.perf_counter() - t0
    model.train()

    it = iter(loader)
    stats = {"sampled_nodes": 0, "sampled_edges": 0, "sample_s": 0.0}

    def step(record: bool) -> int:
        ts = time.perf_counter()
        batch = next(it).to(device)
        tm = time.perf_counter()
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        out = model({t: batch[t].n_id for t in batch.node_types}, batch.edge_index_dict)
        src_index, dst_pos = batch["user"].src_index, batch["item"].dst_pos_index  # triplet: local rows
        b = src_index.numel()
        u = out["user"].index_select(0, src_index)
        v = out["item"].index_select(0, dst_pos)
        n = out["item"].index_select(0, batch["item"].dst_neg_index.reshape(-1)).reshape(b, -1, u.shape[1])
        pos = (u * v).sum(-1)
        neg = (u.unsqueeze(1) * n).sum(-1)
        loss = F.softplus(neg - pos.unsqueeze(1)).mean()
        loss = loss + a.l2 * 0.5 * (u.pow(2).sum() + v.pow(2).sum() + n.pow(2).sum()) / b
        loss.backward()
        for o in optimizers:
            o.step()
        float(loss.detach())
        if record:
            stats["sample_s"] += tm - ts
            stats["sampled_nodes"] += sum(int(batch[t].num_nodes) for t in batch.node_types)
            stats["sampled_edges"] += sum(int(batch[e].edge_index.shape[1]) for e in batch.edge_types)
        return b

    for _ in range(a.warmup):
        step(False)
    load = os.getloadavg()[0]
    seeds, times, t0 = 0, [], time.perf_counter()
    for _ in range(a.steps):
        ts = time.perf_counter()
        seeds += step(True)
        times.append(time.perf_counter() - ts)
    secs = time.perf_counter() - t0
    result = {
        "bench": "pyg_reference", "seed_edges_per_s": round(seeds / secs, 1), "steps": a.steps,
        "seconds": round(secs, 3), "seed_edges": seeds, "threads": torch.get_num_threads(),
        **versions, "sampler_backend": "pyg_lib" if WITH_PYG_LIB else "torch_sparse",
        "sparse_id": a.sparse_id, "num_workers": a.num_workers, "device": str(device), "setup_s": round(setup_s, 2),
        "step_ms": round(1000 * secs / a.steps, 1), "median_step_ms": round(1000 * float(np.median(times)), 1),
        "loadavg_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
        "sample_ms": round(1000 * stats["sample_s"] / a.steps, 1),
        "sampled_nodes_per_batch": round(stats["sampled_nodes"] / a.steps),
        "sampled_edges_per_batch": round(stats["sampled_edges"] / a.steps),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
