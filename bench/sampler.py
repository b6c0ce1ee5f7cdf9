"""Neighbour-sampler throughput on a synthetic power-law user-item graph; prints one JSON line.

Graph: ``--users`` users, ``--items`` items, about ``--edges`` distinct user -> item click
edges whose endpoints follow Zipf-like laws (a few very active users and very popular items).
Each batch: ``--batch`` random training edges as seed pairs (user and item seeds), fanouts
``--fanouts``, the seed edges excluded from the neighbourhood (the link-prediction setting).
Figures: sampled edges per second (all blocks' edges), batches per second and seed edges per
second, per ``--threads`` torch threads (default 1: a per-core figure). Not a test.

Example:
    python bench/sampler.py --threads 1
    {"bench": "sampler", "edges": 4999..., "sampled_edges_per_s": ..., "batches_per_s": ..., ...}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from graphlake.training.sampling import CSRNeighborSampler, HeteroCSRGraph  # noqa: E402


def power_law_graph(users: int, items: int, edges: int, seed: int, alpha_users: float = 0.6,
                    alpha_items: float = 0.9) -> HeteroCSRGraph:
    """About ``edges`` distinct clicks with Zipf(alpha) endpoint popularity (ids shuffled)."""
    g = torch.Generator().manual_seed(seed)

    def draw(n, alpha, count):
        cdf = torch.cumsum(torch.arange(1, n + 1, dtype=torch.float64).pow(-alpha), 0)
        ids = torch.searchsorted(cdf / cdf[-1], torch.rand(count, generator=g, dtype=torch.float64), right=True)
        return torch.randperm(n, generator=g).index_select(0, ids.clamp(max=n - 1))

    key = torch.zeros(0, dtype=torch.int64)
    while len(key) < edges:  # draw, dedup, top up
        need = int((edges - len(key)) * 1.15) + 1000
        key = torch.unique(torch.cat([key, draw(users, alpha_users, need) * items + draw(items, alpha_items, need)]))
    key = key[torch.randperm(len(key), generator=g)[:edges]].sort().values
    src, dst = key // items, key % items
    indptr = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(torch.bincount(src, minlength=users), 0)])
    weights = 1.0 + torch.rand(edges, generator=g) * 4.0
    return HeteroCSRGraph({"user": users, "item": items}, {"user__click__item": (indptr, dst, weights)})


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--edges", type=int, default=5_000_000)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--fanouts", type=int, nargs="+", default=[10, 5])
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--weighted", action="store_true")
    p.add_argument("--replace", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    t0 = time.perf_counter()
    graph = power_law_graph(a.users, a.items, a.edges, a.seed)
    build_s = time.perf_counter() - t0
    sampler = CSRNeighborSampler(graph, a.fanouts, weighted=a.weighted, replace=a.replace)
    edge_type = "user__click__item"
    src_all, dst_all = graph.train_edges(edge_type)
    g = torch.Generator().manual_seed(a.seed + 1)

    def one_batch():
        pick = torch.randint(0, len(src_all), (a.batch,), generator=g)
        src, dst = src_all.index_select(0, pick), dst_all.index_select(0, pick)
        batch = sampler.sample({"user": src, "item": dst}, g, exclude={edge_type: (src, dst)})
        return sum(len(e[0]) for blk in batch.blocks for e in blk.edges.values())

    for _ in range(3):
        one_batch()
    sampled, t0 = 0, time.perf_counter()
    for _ in range(a.batches):
        sampled += one_batch()
    secs = time.perf_counter() - t0
    result = {
        "bench": "sampler", "users": a.users, "items": a.items, "edges": graph.edge_count(edge_type),
        "batch": a.batch, "fanouts": a.fanouts, "weighted": a.weighted, "replace": a.replace, "threads": a.threads,
        "graph_build_s": round(build_s, 2), "sampled_edges_per_batch": round(sampled / a.batches),
        "sampled_edges_per_s": round(sampled / secs), "batches_per_s": round(a.batches / secs, 2),
        "seed_edges_per_s": round(a.batches * a.batch / secs),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
