"""training.sampling: the hetero CSR graph, the neighbour sampler and the negative sampler."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest
import torch

from graphlake.training.sampling import (
    CSRNeighborSampler,
    HeteroCSRGraph,
    NegativeSampler,
    SampledBatch,
    csr_contains,
    split_counts,
)

CLICK = ("user", "click", "item")
REV_CLICK = ("item", "rev_click", "user")
# user -> items (weight): u0: 1 (1), 3 (2), 4 (3); u1: 0 (4); u2: 1 (5), 2 (6), 3 (7), 4 (8); u3: none
CLICK_CSR = (np.array([0, 3, 4, 8, 8]), np.array([1, 3, 4, 0, 1, 2, 3, 4], dtype=np.int32),
             np.array([1, 2, 3, 4, 5, 6, 7, 8], dtype=np.float32))
CLICK_EDGES = [(0, 1), (0, 3), (0, 4), (1, 0), (2, 1), (2, 2), (2, 3), (2, 4)]
# item -> shop: i0, i1 -> s0; i2, i4 -> s1; i3: none
BELONGS_CSR = (np.array([0, 1, 2, 3, 3, 4]), np.array([0, 0, 1, 1]), np.ones(4, dtype=np.float32))


def tiny_graph() -> HeteroCSRGraph:
    return HeteroCSRGraph({"user": 4, "item": 5, "shop": 2},
                          {"user__click__item": CLICK_CSR, "item__belongs_to__shop": BELONGS_CSR})


def random_graph(seed: int = 0, users: int = 30, items: int = 20, edges: int = 240) -> HeteroCSRGraph:
    """A small random bipartite graph (many nodes with degree above the fanouts)."""
    g = torch.Generator().manual_seed(seed)
    key = torch.unique(torch.randint(0, users * items, (edges,), generator=g))
    src, dst = key // items, key % items
    indptr = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(torch.bincount(src, minlength=users), 0)])
    return HeteroCSRGraph({"user": users, "item": items},
                          {"user__click__item": (indptr, dst, torch.arange(1, len(key) + 1, dtype=torch.float32))})


def graph_edges(graph: HeteroCSRGraph) -> dict:
    """{relation: {(src_global, dst_global): weight}} built row by row (test-side reference)."""
    out = {}
    for rel in graph.relations:
        indptr, indices, weights = graph.csr(rel)
        out[rel] = {(int(indices[p]), v): float(weights[p])
                    for v in range(len(indptr) - 1) for p in range(int(indptr[v]), int(indptr[v + 1]))}
    return out


def check_batch(graph, batch, fanouts, exact=True, excluded=()):
    """Prefix/shape invariants, edges exist with their weight, fanout respected."""
    assert isinstance(batch, SampledBatch) and len(batch.blocks) == len(fanouts)
    ref = graph_edges(graph)
    for t, ids in batch.node_ids.items():
        assert ids.dtype == torch.int64 and len(ids) == batch.blocks[0].num_src[t]
        rest = ids[batch.num_seeds[t]:].tolist()
        assert len(set(rest)) == len(rest) and not set(rest) & set(ids[:batch.num_seeds[t]].tolist())
    for i in range(1, len(batch.blocks)):
        assert dict(batch.blocks[i].num_src) == dict(batch.blocks[i - 1].num_dst)
    for i, block in enumerate(batch.blocks):
        fanout = fanouts[len(fanouts) - 1 - i]
        assert set(block.edges) == set(graph.relations)
        for rel, (src, dst, w) in block.edges.items():
            assert src.dtype == dst.dtype == torch.int64 and w.dtype == torch.float32
            assert len(src) == len(dst) == len(w)
            if len(src):
                assert int(src.max()) < block.num_src[rel[0]] and int(dst.max()) < block.num_dst[rel[2]]
            gs = batch.node_ids[rel[0]][src].tolist()
            gd = batch.node_ids[rel[2]][dst].tolist()
            for a, b, weight in zip(gs, gd, w.tolist()):
                assert ref[rel][(a, b)] == weight
            per_dst = Counter()
            for (a, row) in set(zip(gs, dst.tolist())):
                per_dst[row] += 1
            for row in range(block.num_dst[rel[2]]):
                node = int(batch.node_ids[rel[2]][row])
                deg = sum(1 for (a, b) in ref[rel] if b == node and (a, b, rel) not in excluded)
                want = deg if fanout == -1 else min(fanout, deg)
                assert per_dst[row] == want if exact else per_dst[row] <= want


# ---------------------------------------------------------------- graph
def test_reverse_csr_exact():
    g = tiny_graph()
    indptr, indices, weights = g.csr(CLICK)
    assert indptr.tolist() == [0, 1, 3, 4, 6, 8]
    assert indices.tolist() == [1, 0, 2, 2, 0, 2, 0, 2]
    assert weights.tolist() == [4, 1, 5, 6, 2, 7, 3, 8]
    indptr, indices, weights = g.csr(REV_CLICK)
    assert indptr.tolist() == [0, 3, 4, 8, 8] and indices.tolist() == [1, 3, 4, 0, 1, 2, 3, 4]
    assert (indptr.dtype, indices.dtype, weights.dtype) == (torch.int64, torch.int64, torch.float32)
    assert g.csr(("shop", "rev_belongs_to", "item"))[1].tolist() == [0, 0, 1, 1]
    assert g.csr(("item", "belongs_to", "shop"))[1].tolist() == [0, 1, 2, 4]


def test_structure_accessors():
    g = tiny_graph()
    assert g.relations == [("item", "belongs_to", "shop"), REV_CLICK, ("shop", "rev_belongs_to", "item"), CLICK]
    assert g.relations_into("item") == [("shop", "rev_belongs_to", "item"), CLICK]
    assert g.num_nodes == {"item": 5, "shop": 2, "user": 4}
    assert g.degree(CLICK, torch.tensor([1, 3, 0])).tolist() == [2, 2, 1]
    assert g.degree("item__rev_click__user", torch.tensor([3, 2])).tolist() == [0, 4]
    assert g.edge_count("user__click__item") == 8 and g.edge_count("item__belongs_to__shop") == 4
    with pytest.raises(ValueError, match="node_type: expected one of"):
        g.relations_into("brand")
    with pytest.raises(ValueError, match="nodes: expected ids in 0..4"):
        g.degree(CLICK, torch.tensor([5]))


def test_unsorted_rows_are_sorted():
    g = HeteroCSRGraph({"user": 2, "item": 3},
                       {"user__click__item": (np.array([0, 2, 3]), np.array([2, 0, 1]), np.array([1.0, 2.0, 3.0]))})
    assert g.csr(REV_CLICK)[1].tolist() == [0, 2, 1] and g.csr(REV_CLICK)[2].tolist() == [2.0, 1.0, 3.0]
    assert g.csr(CLICK)[1].tolist() == [0, 1, 0]


def test_bad_graph_input():
    ok = {"user": 4, "item": 5, "shop": 2}
    with pytest.raises(ValueError, match="indptr: expected length num_nodes\\[src\\] \\+ 1 = 5, got 4"):
        HeteroCSRGraph(ok, {"user__click__item": (CLICK_CSR[0][:4], CLICK_CSR[1], CLICK_CSR[2])})
    with pytest.raises(ValueError, match="indices: expected ids in 0..4, got \\[0, 9\\]"):
        HeteroCSRGraph(ok, {"user__click__item": (CLICK_CSR[0], np.r_[CLICK_CSR[1][:-1], 9], CLICK_CSR[2])})
    with pytest.raises(TypeError, match="indices: expected an integer array, got dtype float64"):
        HeteroCSRGraph(ok, {"user__click__item": (CLICK_CSR[0], CLICK_CSR[1].astype(float), CLICK_CSR[2])})
    with pytest.raises(ValueError, match="node type 'brand' not in num_nodes"):
        HeteroCSRGraph(ok, {"item__by__brand": BELONGS_CSR})
    with pytest.raises(ValueError, match="edge_type: expected an edge type '<src>__<rel>__<dst>'"):
        HeteroCSRGraph(ok, {"user_click_item": CLICK_CSR})


def test_from_snapshot_with_edge_ids(tmp_path):
    from graphlake.graph_build.snapshot import FORMAT, FORMAT_VERSION, MANIFEST, open_snapshot

    edge_types = {}
    for name, arrays in (("user__click__item", CLICK_CSR), ("item__belongs_to__shop", BELONGS_CSR)):
        files = {}
        for key, arr in zip(("indptr", "indices", "weights"), arrays):
            rel = f"edges/{name}/{key}.npy"
            os.makedirs(tmp_path / "edges" / name, exist_ok=True)
            np.save(tmp_path / rel, arr)
            files[key] = {"file": rel}
        edge_types[name] = {"files": files}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "graph_version": 1, "edge_types": edge_types,
                "node_types": {t: {"num_nodes": n, "features": {}} for t, n in (("user", 4), ("item", 5), ("shop", 2))}}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    snap = open_snapshot(str(tmp_path))
    g = HeteroCSRGraph.from_snapshot(snap)
    ref = tiny_graph()
    for rel in ref.relations:
        assert all(torch.equal(a, b) for a, b in zip(g.csr(rel), ref.csr(rel)))
    # training split: stored positions 0, 3, 5 = (u0, i1), (u1, i0), (u2, i2)
    g = HeteroCSRGraph.from_snapshot(snap, ["user__click__item"], edge_ids={"user__click__item": np.array([5, 0, 3])})
    assert g.edge_types == ["user__click__item"]
    assert g.csr(REV_CLICK)[0].tolist() == [0, 1, 2, 3, 3] and g.csr(REV_CLICK)[1].tolist() == [1, 0, 2]
    assert g.csr(CLICK)[1].tolist() == [1, 0, 2] and g.csr(CLICK)[2].tolist() == [4, 1, 6]
    with pytest.raises(ValueError, match="edge_ids\\['user__click__item'\\]: expected positions in 0..7"):
        HeteroCSRGraph.from_snapshot(snap, edge_ids={"user__click__item": np.array([8])})
    with pytest.raises(ValueError, match="edge_types: 'user__buy__item' not in the snapshot"):
        HeteroCSRGraph.from_snapshot(snap, ["user__buy__item"])


def test_train_edge_shards_disjoint_and_covering():
    g = tiny_graph()
    src, dst = g.train_edges("user__click__item")
    assert list(zip(src.tolist(), dst.tolist())) == CLICK_EDGES
    for world in (1, 2, 3, 5, 8, 11):
        shards = [g.train_edges("user__click__item", r, world) for r in range(world)]
        sizes = [len(s) for s, _ in shards]
        assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 8
        pairs = [p for s, d in shards for p in zip(s.tolist(), d.tolist())]
        assert pairs == CLICK_EDGES  # contiguous, in order, each edge exactly once
    assert g.train_edges("user__click__item", 1, 3)[0].dtype == torch.int64
    with pytest.raises(ValueError, match="expected 0 <= rank < world_size, got rank=2, world_size=2"):
        g.train_edges("user__click__item", 2, 2)
    with pytest.raises(ValueError, match="edge_type: expected one of"):
        g.train_edges("user__buy__item")


def test_full_batch_contains_all_edges():
    g = tiny_graph()
    batch = g.full_batch(num_layers=2)
    assert len(batch.blocks) == 2 and batch.num_seeds == {"item": 5, "shop": 2, "user": 4}
    assert batch.node_ids["item"].tolist() == [0, 1, 2, 3, 4]
    ref = graph_edges(g)
    for block in batch.blocks:
        assert dict(block.num_src) == dict(block.num_dst) == g.num_nodes
        for rel, (src, dst, w) in block.edges.items():
            assert {(a, b): c for a, b, c in zip(src.tolist(), dst.tolist(), w.tolist())} == ref[rel]
            assert len(src) == len(ref[rel])
    only = g.full_batch(node_types=["user", "item"])
    assert set(only.blocks[0].edges) == {CLICK, REV_CLICK} and set(only.node_ids) == {"user", "item"}
    with pytest.raises(ValueError, match="num_layers: expected an int >= 1, got 0"):
        g.full_batch(num_layers=0)


def test_csr_contains():
    g = tiny_graph()
    indptr, indices, _ = g.csr(REV_CLICK)
    rows, cols = torch.tensor([0, 0, 0, 1, 2, 3, 2]), torch.tensor([1, 2, 4, 0, 4, 0, 0])
    assert csr_contains(indptr, indices, rows, cols).tolist() == [True, False, True, True, True, False, False]


# ---------------------------------------------------------------- neighbour sampler
@pytest.mark.parametrize("weighted,replace", [(False, False), (True, False), (False, True), (True, True)])
def test_sampled_batch_invariants(weighted, replace):
    g = random_graph()
    sampler = CSRNeighborSampler(g, [3, 2], weighted=weighted, replace=replace)
    seeds = {"user": torch.tensor([4, 0, 4, 17]), "item": torch.tensor([3, 11])}
    batch = sampler.sample(seeds, torch.Generator().manual_seed(3))
    assert batch.seed_ids("user").tolist() == [4, 0, 4, 17] and batch.seed_ids("item").tolist() == [3, 11]
    check_batch(g, batch, [3, 2], exact=not replace)


def test_fanout_exact_and_all_neighbours():
    g = tiny_graph()
    seeds = {"user": torch.tensor([0, 2, 3, 1])}
    batch = CSRNeighborSampler(g, [2, -1]).sample(seeds, torch.Generator().manual_seed(0))
    check_batch(g, batch, [2, -1])
    # hop 0: u0 (3 items) -> 2, u2 (4) -> 2, u3 -> 0, u1 -> 1
    src, dst, _ = batch.blocks[-1].edges[REV_CLICK]
    assert sorted(Counter(dst.tolist()).items()) == [(0, 2), (1, 2), (3, 1)]


def test_replace_draws_exactly_fanout():
    g = tiny_graph()
    batch = CSRNeighborSampler(g, [5], replace=True).sample({"user": torch.tensor([1, 3, 0])},
                                                            torch.Generator().manual_seed(0))
    src, dst, _ = batch.blocks[0].edges[REV_CLICK]
    assert sorted(Counter(dst.tolist()).items()) == [(0, 5), (2, 5)]  # u1 has 1 item, u3 none
    assert set(batch.node_ids["item"][src[dst == 0]].tolist()) == {0}


def test_determinism():
    g = random_graph()
    sampler = CSRNeighborSampler(g, [4, 3])
    seeds = {"user": torch.arange(0, 30, 3), "item": torch.arange(0, 20, 2)}

    def flat(batch):
        out = [batch.node_ids[t] for t in sorted(batch.node_ids)]
        for block in batch.blocks:
            out += [x for rel in sorted(block.edges) for x in block.edges[rel]]
        return out

    a = flat(sampler.sample(seeds, torch.Generator().manual_seed(7)))
    b = flat(sampler.sample(seeds, torch.Generator().manual_seed(7)))
    c = flat(sampler.sample(seeds, torch.Generator().manual_seed(8)))
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    assert len(a) != len(c) or not all(torch.equal(x, y) for x, y in zip(a, c))


def test_uniform_without_replacement_is_uniform_over_subsets():
    # u2 has 4 items; fanout 2 -> each of the 6 pairs with probability 1/6
    g = tiny_graph()
    n = 6000
    batch = CSRNeighborSampler(g, [2]).sample({"user": torch.full((n,), 2)}, torch.Generator().manual_seed(1))
    src, dst, _ = batch.blocks[0].edges[REV_CLICK]
    items = batch.node_ids["item"][src]
    order = torch.argsort(dst * 10 + items)
    pairs = items[order].reshape(n, 2)
    counts = Counter(map(tuple, pairs.tolist()))
    assert len(counts) == 6
    for pair, c in counts.items():
        assert abs(c / n - 1 / 6) < 0.025, (pair, c)


def weight_graph(weights: list[float]) -> HeteroCSRGraph:
    """One user (u0) clicking items 0..len(weights)-1 with the given weights."""
    k = len(weights)
    return HeteroCSRGraph({"user": 1, "item": k},
                          {"user__click__item": (np.array([0, k]), np.arange(k), np.array(weights, dtype=np.float32))})


@pytest.mark.parametrize("replace", [False, True])
def test_weighted_follows_weights(replace):
    g, n = weight_graph([9.0, 1.0]), 4000
    batch = CSRNeighborSampler(g, [1], weighted=True, replace=replace).sample(
        {"user": torch.zeros(n, dtype=torch.int64)}, torch.Generator().manual_seed(2))
    src, dst, _ = batch.blocks[0].edges[REV_CLICK]
    assert len(src) == n
    share = float((batch.node_ids["item"][src] == 0).double().mean())
    assert abs(share - 0.9) < 0.03


def test_weighted_hub_is_successive_sampling():
    # 20 neighbours (> 8 x fanout: the draw-with-replacement path); item 0 weighs 20, others 1.
    # fanout 2: P(item 0 kept) = 20/39 + 19 * (1/39) * (20/38) = 0.7692; zero weight never kept.
    g, n = weight_graph([20.0] + [1.0] * 18 + [0.0]), 4000
    batch = CSRNeighborSampler(g, [2], weighted=True).sample({"user": torch.zeros(n, dtype=torch.int64)},
                                                             torch.Generator().manual_seed(5))
    src, dst, _ = batch.blocks[0].edges[REV_CLICK]
    items = batch.node_ids["item"][src]
    assert len(items) == 2 * n and len(set(zip(dst.tolist(), items.tolist()))) == 2 * n  # distinct per row
    assert abs(float((items == 0).double().mean()) * 2 - 0.7692) < 0.03
    assert int((items == 19).sum()) == 0


def test_seed_edges_excluded_in_both_directions():
    g = tiny_graph()
    src, dst = torch.tensor([0, 2]), torch.tensor([3, 1])
    seeds = {"user": src, "item": dst}
    excluded = {(3, 0, REV_CLICK), (0, 3, CLICK), (1, 2, REV_CLICK), (2, 1, CLICK)}  # (src, dst) per relation
    for weighted, replace in [(False, False), (True, False), (False, True), (True, True)]:
        sampler = CSRNeighborSampler(g, [2, -1], weighted=weighted, replace=replace)
        for seed in range(5):
            batch = sampler.sample(seeds, torch.Generator().manual_seed(seed),
                                   exclude={"user__click__item": (src, dst)})
            if not replace:
                check_batch(g, batch, [2, -1], excluded=excluded)
            for block in batch.blocks:
                for rel in (CLICK, REV_CLICK):
                    s, d, _ = block.edges[rel]
                    pairs = set(zip(batch.node_ids[rel[0]][s].tolist(), batch.node_ids[rel[2]][d].tolist()))
                    assert not pairs & {(a, b) for a, b, r in excluded if r == rel}
    kept = CSRNeighborSampler(g, [-1], exclude_seed_edges=False).sample(
        seeds, torch.Generator().manual_seed(0), exclude={"user__click__item": (src, dst)})
    s, d, _ = kept.blocks[0].edges[REV_CLICK]
    assert (3, 0) in set(zip(kept.node_ids["item"][s].tolist(), d.tolist()))


def test_sampler_bad_arguments():
    g = tiny_graph()
    with pytest.raises(ValueError, match="fanouts: expected a non-empty list"):
        CSRNeighborSampler(g, [])
    with pytest.raises(ValueError, match="fanouts: expected ints >= 1 or -1 .*got \\[10, 0\\]"):
        CSRNeighborSampler(g, [10, 0])
    with pytest.raises(TypeError, match="graph: expected a HeteroCSRGraph, got dict"):
        CSRNeighborSampler({}, [2])
    sampler = CSRNeighborSampler(g, [2])
    with pytest.raises(TypeError, match="seeds\\['user'\\]: expected an integer tensor, got dtype torch.float32"):
        sampler.sample({"user": torch.tensor([1.0])})
    with pytest.raises(ValueError, match="seeds: expected node types among"):
        sampler.sample({"brand": torch.tensor([0])})
    with pytest.raises(ValueError, match="seeds\\['item'\\]: expected ids in 0..4, got \\[0, 5\\]"):
        sampler.sample({"item": torch.tensor([0, 5])})


# ---------------------------------------------------------------- negatives
def test_split_counts():
    assert split_counts({"uniform": 0.5, "popularity": 0.25, "in_batch": 0.25}, 8) == \
        {"uniform": 4, "popularity": 2, "in_batch": 2}
    assert split_counts({"hard": 0.5, "uniform": 0.5}, 3) == {"uniform": 2, "hard": 1}
    assert split_counts({"uniform": 0.7, "popularity": 0.3}, 5) == {"uniform": 4, "popularity": 1}  # 3.5 / 1.5: tie
    assert split_counts({"uniform": 0.6, "popularity": 0.4}, 4) == {"uniform": 2, "popularity": 2}  # 2.4 / 1.6


def test_negative_shapes_ranges_and_mix():
    ns = NegativeSampler(10, {"uniform": 0.5, "popularity": 0.25, "in_batch": 0.25},
                         degrees=torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 5, 5]))
    src, dst = torch.arange(6), torch.tensor([1, 2, 3, 4, 5, 6])
    neg = ns.sample(src, dst, 8, torch.Generator().manual_seed(0))
    assert neg.shape == (6, 8) and neg.dtype == torch.int64
    assert int(neg.min()) >= 0 and int(neg.max()) < 10
    assert set(neg[:, 4:6].flatten().tolist()) <= {8, 9}  # popularity columns: only items with degree > 0
    in_batch = neg[:, 6:]
    assert set(in_batch.flatten().tolist()) <= set(dst.tolist())
    assert not bool((in_batch == dst.unsqueeze(1)).any())  # another row's positive, never the own
    again = ns.sample(src, dst, 8, torch.Generator().manual_seed(0))
    assert torch.equal(neg, again)


def test_popularity_bias():
    # degree ** 0.75: 81 -> 27, 1 -> 1, 16 -> 8, i.e. probabilities 27/36, 1/36, 0, 0, 8/36
    ns = NegativeSampler(5, {"popularity": 1.0}, degrees=torch.tensor([81, 1, 0, 0, 16]))
    neg = ns.sample(torch.zeros(2000, dtype=torch.int64), torch.full((2000,), 3), 10, torch.Generator().manual_seed(4))
    freq = torch.bincount(neg.flatten(), minlength=5).double() / neg.numel()
    for got, want in zip(freq.tolist(), [27 / 36, 1 / 36, 0, 0, 8 / 36]):
        assert abs(got - want) < 0.015


def test_rejection_of_positives():
    # user 0's positives: items 0..4 of 10 -> a uniform draw collides with p = 0.5, after one redraw 0.25
    positives = (torch.tensor([0, 5, 5]), torch.arange(5))
    ns = NegativeSampler(10, {"uniform": 1.0}, positives=positives)
    neg = ns.sample(torch.zeros(4000, dtype=torch.int64), torch.full((4000,), 9), 2, torch.Generator().manual_seed(0))
    collide = (neg < 5) | (neg == 9)
    assert abs(float(collide.double().mean()) - 0.6 * 0.6) < 0.03  # 6 of 10 ids collide (0..4 and 9)
    plain = NegativeSampler(10, {"uniform": 1.0}).sample(torch.zeros(4000, dtype=torch.int64),
                                                         torch.full((4000,), 9), 2, torch.Generator().manual_seed(0))
    assert abs(float((plain == 9).double().mean()) - 0.01) < 0.01  # only the own positive is redrawn


def test_hard_negatives_are_top_scored_non_positives():
    # score = item id: the best items are 9, 8, 7, ...; user 0 already has item 9, user 1 has 8 (its positive)
    positives = (torch.tensor([0, 1, 1]), torch.tensor([9]))
    item_emb = torch.arange(10, dtype=torch.float32).unsqueeze(1)
    ns = NegativeSampler(10, {"hard": 1.0}, positives=positives, hard_pool_size=200)
    src, dst = torch.tensor([0, 1]), torch.tensor([3, 8])
    neg = ns.sample(src, dst, 2, torch.Generator().manual_seed(0), user_emb=torch.ones(2, 1), item_emb=item_emb)
    assert neg.tolist() == [[8, 7], [9, 7]]
    by_fn = ns.sample(src, dst, 2, torch.Generator().manual_seed(0), user_emb=torch.ones(2, 1),
                      item_emb=lambda ids: item_emb.index_select(0, ids))
    assert torch.equal(neg, by_fn)


def test_negative_bad_arguments():
    with pytest.raises(ValueError, match="strategy_mix: unknown strategy 'random'"):
        NegativeSampler(10, {"random": 1.0})
    with pytest.raises(ValueError, match="strategy_mix: expected fractions summing to 1, got 0.9"):
        NegativeSampler(10, {"uniform": 0.6, "in_batch": 0.3})
    with pytest.raises(ValueError, match="degrees: required by the 'popularity' strategy"):
        NegativeSampler(10, {"popularity": 1.0})
    with pytest.raises(ValueError, match="degrees: expected shape \\(10,\\), got \\(3,\\)"):
        NegativeSampler(10, {"popularity": 1.0}, degrees=torch.ones(3))
    ns = NegativeSampler(10, {"uniform": 0.5, "hard": 0.5})
    with pytest.raises(TypeError, match="pos_src: expected an int64 tensor, got torch.float32"):
        ns.sample(torch.tensor([1.0]), torch.tensor([2]), 4)
    with pytest.raises(ValueError, match="pos_dst: expected item ids in 0..9, got \\[12, 12\\]"):
        ns.sample(torch.tensor([1]), torch.tensor([12]), 4)
    with pytest.raises(ValueError, match="num_negatives: expected an int >= 1, got 0"):
        ns.sample(torch.tensor([1]), torch.tensor([2]), 0)
    with pytest.raises(ValueError, match="user_emb: the 'hard' strategy needs a \\(B=1, dim\\) tensor"):
        ns.sample(torch.tensor([1]), torch.tensor([2]), 4, torch.Generator().manual_seed(0))
