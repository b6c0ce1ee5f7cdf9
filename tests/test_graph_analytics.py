"""Graph analytics: the Spark DataFrame implementation checked against networkx on small graphs."""

from __future__ import annotations

import random
from collections import Counter

import networkx as nx
import pytest

from graphlake.graph_build import analytics as A
from graphlake.graph_build import schema as G

COUNTS = {"user": 20, "item": 25, "shop": 6}  # gids: item 0..24, shop 25..30, user 31..50


def edge_df(spark, rows):
    """An edge table; checkpointed so that every scan is a JVM scan like a Delta read (a DataFrame
    built from Python rows would start Python workers on each of the many scans)."""
    df = spark.createDataFrame([(s, d, float(w), 1, None, None) for s, d, w in rows], G.EDGE_SCHEMA)
    return df.localCheckpoint()


def random_graph(seed):
    """Random hetero graph with self-loops, reciprocal and parallel edges and isolated nodes."""
    rng = random.Random(seed)
    edges = {
        "user__click__item": {(rng.randrange(18), rng.randrange(22)) for _ in range(40)},
        "item__belongs_to__shop": {(i, rng.randrange(5)) for i in range(0, 22, 2)},
        "user__follows__user": {(rng.randrange(18), rng.randrange(18)) for _ in range(10)} | {(3, 3), (4, 5), (5, 4)},
        "item__co_view__item": {(rng.randrange(22), rng.randrange(22)) for _ in range(8)},
    }
    return {k: [(s, d, round(rng.uniform(0.1, 3.0), 3)) for s, d in sorted(v)] for k, v in edges.items()}


def to_nx(counts, raw, weighted=True):
    """Undirected nx.Graph over global ids; parallel edges' weights add up."""
    off = A.global_offsets(counts)
    g = nx.Graph()
    g.add_nodes_from(range(sum(counts.values())))
    for name, rows in raw.items():
        src, _, dst = A.parse_edge_type(name)
        for s, d, w in rows:
            u, v = off[src] + s, off[dst] + d
            w = w if weighted else 1.0
            g.add_edge(u, v, weight=g.edges[u, v]["weight"] + w if g.has_edge(u, v) else w)
    return g


def gid_map(df, value, counts):
    off = A.global_offsets(counts)
    return {off[r[A.NODE_TYPE]] + r[G.NODE_ID]: r[value] for r in df.collect()}


@pytest.fixture(scope="module")
def graph(spark):
    raw = random_graph(7)
    return raw, {k: edge_df(spark, v) for k, v in raw.items()}


def test_pagerank_unweighted_matches_networkx(graph):
    # the weighted default is checked against networkx in test_graph_stats_tables
    raw, edges = graph
    ours = gid_map(A.pagerank(COUNTS, edges, iterations=20, damping=0.85, weighted=False), A.PAGERANK, COUNTS)
    ref = nx.pagerank(to_nx(COUNTS, raw, weighted=False), alpha=0.85, weight="weight", tol=1e-13, max_iter=1000)
    assert set(ours) == set(ref)
    assert max(abs(ours[n] - ref[n]) for n in ref) < 1e-4
    assert abs(sum(ours.values()) - 1.0) < 1e-9


def test_pagerank_small_example(spark):
    counts = {"user": 2, "item": 1}
    edges = {"user__click__item": edge_df(spark, [(0, 0, 2.0)])}
    ours = {(r[A.NODE_TYPE], r[G.NODE_ID]): r[A.PAGERANK] for r in A.pagerank(counts, edges, 10).collect()}
    ref = nx.pagerank(to_nx(counts, {"user__click__item": [(0, 0, 2.0)]}), alpha=0.85, tol=1e-12)
    assert ours[("item", 0)] == pytest.approx(ref[0], abs=1e-8)
    assert ours[("user", 0)] == pytest.approx(ref[1], abs=1e-8)
    assert ours[("user", 1)] == pytest.approx(ref[2], abs=1e-8)
    assert ours[("user", 1)] == pytest.approx(0.0698, abs=1e-4)  # the docstring's example


def test_components_match_networkx(graph):
    raw, edges = graph
    ours = gid_map(A.connected_components(COUNTS, edges), A.COMPONENT, COUNTS)
    ref = list(nx.connected_components(to_nx(COUNTS, raw)))
    assert {n: min(c) for c in ref for n in c} == ours  # same partition, labelled by the min gid


def test_components_long_paths_and_cycles(spark):
    rng = random.Random(3)
    order = list(range(60))
    rng.shuffle(order)
    path = [(order[i], order[i + 1], 1.0) for i in range(39)]  # one 40-node path in shuffled id order
    cycle = [(order[i], order[40 + (i - 40 + 1) % 15], 1.0) for i in range(40, 55)]  # a 15-cycle
    counts = {"item": 60}
    raw = {"item__co_view__item": path + cycle}
    ours = gid_map(A.connected_components(counts, {k: edge_df(spark, v) for k, v in raw.items()}), A.COMPONENT, counts)
    ref = list(nx.connected_components(to_nx(counts, raw)))
    assert len(ref) == 2 + 5
    assert {n: min(c) for c in ref for n in c} == ours


def expected_degrees(counts, raw):
    rows = []
    for name, es in raw.items():
        src, _, dst = A.parse_edge_type(name)
        for direction, side, t in (("out", 0, src), ("in", 1, dst)):
            per_node = Counter(e[side] for e in es)
            dist = Counter(per_node.values())
            dist[0] = counts[t] - len(per_node)
            rows += [(name, direction, deg, n) for deg, n in dist.items() if n > 0]
    return sorted(rows)


def test_degree_distribution_exact(graph):
    raw, edges = graph
    got = A.degree_distribution(edges, COUNTS)
    assert got.schema == A.DEGREE_DIST_SCHEMA
    assert sorted(tuple(r) for r in got.collect()) == expected_degrees(COUNTS, raw)
    # without node counts: no degree-0 rows
    no_counts = sorted(tuple(r) for r in A.degree_distribution(edges).collect())
    assert no_counts == [r for r in expected_degrees(COUNTS, raw) if r[2] > 0]


def test_graph_stats_tables(spark, graph):
    raw, edges = graph
    out = A.graph_stats(spark, COUNTS, edges, iterations=20)
    assert sorted(out) == ["graph/components", "graph/node_stats_item", "graph/node_stats_shop",
                           "graph/node_stats_user", "graph/stats"]
    g = to_nx(COUNTS, raw)
    ref_pr = nx.pagerank(g, alpha=0.85, weight="weight", tol=1e-13, max_iter=1000)
    ref_cc = {n: min(c) for c in nx.connected_components(g) for n in c}
    off = A.global_offsets(COUNTS)
    deg_in, deg_out = Counter(), Counter()
    for name, es in raw.items():
        src, _, dst = A.parse_edge_type(name)
        deg_out.update(off[src] + s for s, _, _ in es)
        deg_in.update(off[dst] + d for _, d, _ in es)
    for t, n in COUNTS.items():
        df = out[A.node_stats_table(t)]
        assert df.schema == A.NODE_STATS_SCHEMA
        rows = sorted(df.collect())
        assert [r[G.NODE_ID] for r in rows] == list(range(n))
        for r in rows:
            gid = off[t] + r[G.NODE_ID]
            assert abs(r[A.PAGERANK] - ref_pr[gid]) < 1e-4
            assert (r[A.COMPONENT], r[A.DEGREE_IN], r[A.DEGREE_OUT]) == (ref_cc[gid], deg_in[gid], deg_out[gid])
    assert out["graph/components"].schema == A.COMPONENTS_SCHEMA
    sizes = Counter(len(c) for c in nx.connected_components(g))
    assert sorted(tuple(r) for r in out["graph/components"].collect()) == sorted(sizes.items())
    s = A.summary(out)
    assert s["nodes"] == COUNTS
    assert sum(s["isolated_nodes"].values()) == sum(1 for v in g if deg_in[v] + deg_out[v] == 0)
    assert s["components"] == nx.number_connected_components(g)
    assert s["largest_component"] == max(sizes)
    assert s["singleton_components"] == sizes[1]


def test_graph_stats_without_edges(spark):
    out = A.graph_stats(spark, {"user": 3}, {})
    rows = sorted(tuple(r) for r in out["graph/node_stats_user"].collect())
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [(0, 0, 0, 0), (1, 1, 0, 0), (2, 2, 0, 0)]
    assert all(abs(r[1] - 1 / 3) < 1e-12 for r in rows)
    assert out["graph/stats"].count() == 0


def test_engine_is_dataframe_here(spark, monkeypatch):
    assert A.graphframes_available(spark) is False  # no Spark 4 GraphFrames JAR on this machine
    # even with the Python package importable, the JVM class decides
    monkeypatch.setattr(A.importlib.util, "find_spec", lambda name: object())
    assert A.graphframes_available(spark) is False


def test_input_errors(spark):
    edges = {"user__click__item": edge_df(spark, [(0, 5, 1.0)])}
    with pytest.raises(ValueError, match="dst_id range"):
        A.pagerank({"user": 1, "item": 5}, edges)
    with pytest.raises(ValueError, match="not in node_counts"):
        A.connected_components({"user": 1}, edges)
    with pytest.raises(ValueError, match="edges: expected an edge type"):
        A.degree_distribution({"user_click_item": edges["user__click__item"]})
    with pytest.raises(ValueError, match="iterations"):
        A.pagerank({"user": 1, "item": 6}, edges, iterations=0)
    with pytest.raises(ValueError, match="damping"):
        A.pagerank({"user": 1, "item": 6}, edges, damping=1.0)
    with pytest.raises(ValueError, match="engine"):
        A.pagerank({"user": 1, "item": 6}, edges, engine="graphframes")
    with pytest.raises(TypeError, match="node_counts"):
        A.graph_stats(spark, [("user", 1)], edges)
    with pytest.raises(TypeError, match="spark"):
        A.graph_stats(None, {"user": 1, "item": 6}, edges)
