"""Graph build: transforms on tiny inline data, id stability, skew, all-or-nothing commits, the
GE gate, and end to end on generated logs and on MovieLens-100k."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timezone

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from graphlake.app import cli
from graphlake.core import lake, tables
from graphlake.core.config import load_config
from graphlake.core.quality import run_suites
from graphlake.etl import schema as S
from graphlake.graph_build import derived, edge_builders, edges, ids, nodes
from graphlake.graph_build import job as graph_job
from graphlake.graph_build import quality as GQ
from graphlake.graph_build import schema as G
from graphlake.graph_build.config import GraphConfig, config_hash
from graphlake.graph_build.manifest import GraphNotFoundError, load_graph_version, read_graph_table
from graphlake.graph_build.snapshot import open_snapshot
from tests.conftest import assert_same_rows

UTC = timezone.utc
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ML100K = os.path.join(ROOT, "..", "shared", "datasets", "ml-100k")


def ts(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, minute, tzinfo=UTC)


def ev(eid, user, item, etype, t, session=None, query=None):
    d = t.strftime("%Y-%m-%d")
    return (eid, user, item, etype, t, session, query, None, d, d)


DAY1_EVENTS = [
    ev("e1", "u1", "i1", "click", ts(1, 10, 0), "a", "Red  Shoes "),
    ev("e2", "u1", "i2", "view", ts(1, 10, 5), "a"),
    ev("e3", "u1", "i1", "purchase", ts(1, 10, 10), "a"),
    ev("e4", "u2", "i1", "click", ts(2, 9, 0), "b"),
    ev("e5", "u2", "i3", "click", ts(2, 9, 10), "b"),
    ev("e6", "u2", "i3", "purchase", ts(2, 9, 20), "b"),
    ev("e7", "u3", "i2", "cart", ts(2, 12, 0)),
    ev("e11", "u1", "i1", "click", ts(2, 12, 0)),
]
DAY1_ITEMS = [
    ("i1", "Red shoe", "Fashion>Shoes", "nike", "s1", 10.0, None, None),
    ("i2", "Blue shirt", "Fashion>Shirts", "nike", "s2", 20.0, [0.5, 1.0], None),
    ("i3", "Lamp", "Home", None, "s1", 5.0, None, None),
]
DAY1_USERS = [
    ("u1", 30, "F", "US-CA", None, ["u2", "u9", "u1"], None),
    ("u2", 41, "M", "DE-BE", None, None, None),
    ("u3", None, "U", None, None, [], None),
]
DAY2_EVENTS = [
    ev("e8", "u4", "i4", "click", ts(3, 8, 0), "c"),
    ev("e9", "u0", "i0", "click", ts(3, 8, 5), "d"),
    ev("e10", "u1", "i4", "view", ts(3, 9, 0), "e"),
]
DAY2_ITEMS = DAY1_ITEMS + [("i4", "Rake", "Home>Garden", "ikea", "s3", 15.0, None, None),
                           ("i0", "Pot", "Home>Garden", "ikea", "s3", 7.0, None, None)]
DAY2_USERS = DAY1_USERS + [("u4", 22, "F", None, None, ["u1"], None)]


def df_of(spark, rows, schema):
    """A small DataFrame of literal rows built in the JVM: unlike createDataFrame(list), no job
    on it needs a Python worker, which keeps these tests fast on a busy machine."""
    schema = T._parse_datatype_string(schema) if isinstance(schema, str) else schema
    if not rows:
        return spark.range(0).select(*[F.lit(None).cast(f.dataType).alias(f.name) for f in schema.fields])
    structs = [F.struct(*[F.lit(v).cast(f.dataType).alias(f.name) for v, f in zip(row, schema.fields)]) for row in rows]
    return spark.range(1).select(F.inline(F.array(*structs)))


def frames(spark, events=DAY1_EVENTS, items=DAY1_ITEMS, users=DAY1_USERS):
    return (df_of(spark, events, S.CLEAN_EVENTS_SCHEMA), df_of(spark, items, S.CLEAN_ITEMS_SCHEMA),
            df_of(spark, users, S.CLEAN_USERS_SCHEMA))


def id_map(spark, keys, start=0):
    return df_of(spark, [(k, start + i, 0) for i, k in enumerate(keys)], G.ID_MAP_SCHEMA)


def edge_rows(df):
    """{(src_id, dst_id): (weight, count, first_us, last_us)} of an edge DataFrame."""
    rows = df.select(G.SRC_ID, G.DST_ID, G.WEIGHT, G.COUNT, F.unix_micros(G.FIRST_TS).alias("f"),
                     F.unix_micros(G.LAST_TS).alias("l")).collect()
    return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}


def us(t: datetime) -> int:
    return edges.to_micros(t.astimezone(UTC).replace(tzinfo=None))


# ------------------------------------------------------------------------------------ config


def test_config_is_checked_and_hashed(tmp_path):
    cfg = GraphConfig(behaviour_weights={"purchase": 5, "click": 1}, co_view_event_types=["view", "click"])
    assert list(cfg.behaviour_weights) == ["click", "purchase"] and cfg.co_view_event_types == ("click", "view")
    assert config_hash(cfg) == config_hash(GraphConfig(behaviour_weights={"click": 1.0, "purchase": 5.0}))
    assert config_hash(cfg) != config_hash(GraphConfig())
    for kwargs, name in (({"behaviour_weights": {"like": 1}}, "behaviour_weights"),
                         ({"behaviour_weights": {"click": 0}}, "behaviour_weights['click']"),
                         ({"half_life_days": -1}, "half_life_days"), ({"top_k": 0}, "top_k"),
                         ({"max_items_per_session": 1}, "max_items_per_session"),
                         ({"reference_time": "yesterday"}, "reference_time"),
                         ({"co_view_event_types": "click"}, "co_view_event_types")):
        with pytest.raises(ValueError, match=name.replace("[", r"\[").replace("]", r"\]")):
            GraphConfig(**kwargs)
    path = tmp_path / "graph.yaml"
    path.write_text("graph:\n  half_life_days: null\n  top_k: 5\n")
    assert load_config(GraphConfig, str(path), section="graph").half_life_days is None
    path.write_text("graph:\n  topk: 5\n")
    with pytest.raises(ValueError, match="topk"):
        load_config(GraphConfig, str(path), section="graph")


# ------------------------------------------------------------------------------------ ids


def test_new_ids_keep_old_and_append_sorted(spark):
    old = id_map(spark, ["u5", "u1"])  # u5 -> 0, u1 -> 1: existing ids are never re-sorted
    cand = df_of(spark, [("u3",), ("u1",), (" u0 ",), ("",), (None,), ("u3",)], "key string")
    got = ids.new_ids(old, cand, graph_version=4)
    assert_same_rows(got, df_of(spark, [("u0", 2, 4), ("u3", 3, 4)], G.ID_MAP_SCHEMA))
    assert_same_rows(ids.assign_ids(None, cand, 0),
                     df_of(spark, [("u0", 0, 0), ("u1", 1, 0), ("u3", 2, 0)], G.ID_MAP_SCHEMA))


def test_new_ids_by_type_many_partitions(spark):
    """Range partitioning over (type, key): ids contiguous per type, in key order, old ids kept."""
    keys = spark.range(0, 3000).select(F.format_string("k%05d", (F.col("id") * 7919) % 3000).alias("key"))
    old_users = spark.range(1000).select(F.format_string("k%05d", F.col("id") * 3).alias(G.KEY),
                                         F.col("id").alias(G.NODE_ID), F.lit(0).cast("long").alias(G.ADDED_IN))
    fresh, counts = ids.new_ids_by_type({"user": old_users, "item": None},
                                        {"user": keys, "item": keys.filter(F.col("key") < "k00500")}, 2,
                                        num_partitions=7)
    assert counts == {"user": 2000, "item": 500}
    for t, base, n in (("user", 1000, 2000), ("item", 0, 500)):
        rows = fresh[t].orderBy(G.NODE_ID).collect()
        assert [r[G.NODE_ID] for r in rows] == list(range(base, base + n))
        assert [r[G.KEY] for r in rows] == sorted(r[G.KEY] for r in rows)
        assert {r[G.ADDED_IN] for r in rows} == {2}
    assert fresh["user"].join(old_users, G.KEY).count() == 0


# ------------------------------------------------------------------------------------ nodes


def test_node_keys_and_category_hierarchy(spark):
    events, items, users = frames(spark)
    keys = nodes.node_keys(events, items, users, GraphConfig())
    union = None
    for t, df in keys.items():  # one Spark job for all types
        df = df.select(F.lit(t).alias("t"), G.KEY)
        union = df if union is None else union.unionByName(df)
    got = {t: [] for t in keys}
    for r in union.distinct().orderBy(G.KEY).collect():
        got[r["t"]].append(r[G.KEY])
    assert got == {"user": ["u1", "u2", "u3"], "item": ["i1", "i2", "i3"], "shop": ["s1", "s2"], "brand": ["nike"],
                   "category": ["Fashion", "Fashion>Shirts", "Fashion>Shoes", "Home"], "query": ["red shoes"]}
    assert "query" not in nodes.node_keys(events, items, users, GraphConfig(include_queries=False))
    assert_same_rows(nodes.category_nodes(items), df_of(spark,
        [("Fashion", 1, "Fashion", None), ("Fashion>Shoes", 2, "Shoes", "Fashion"),
         ("Fashion>Shirts", 2, "Shirts", "Fashion"), ("Home", 1, "Home", None)],
        "key string, level int, name string, parent string"))
    cmap = id_map(spark, ["Fashion", "Fashion>Shirts", "Fashion>Shoes", "Home"])
    assert_same_rows(edges.child_of_edges(items, cmap).select(G.SRC_ID, G.DST_ID),
                     df_of(spark, [(1, 0), (2, 0)], "src_id long, dst_id long"))
    table = nodes.node_table(G.ITEM, id_map(spark, ["i1", "i2", "i3", "i9"]), items, users)
    assert table.schema.fieldNames() == G.NODE_SCHEMAS[G.ITEM].fieldNames()
    assert table.filter(F.col(G.KEY) == "i9").first()[S.TITLE] is None  # an id the input no longer describes
    assert table.count() == 4


# ------------------------------------------------------------------------------------ edges


def test_events_until_keeps_the_days_up_to_the_logical_date(spark):
    events = df_of(spark, DAY1_EVENTS + DAY2_EVENTS, S.CLEAN_EVENTS_SCHEMA)
    kept = {r[S.EVENT_ID] for r in edges.events_until(events, "2024-01-02").select(S.EVENT_ID).collect()}
    assert kept == {"e1", "e2", "e3", "e4", "e5", "e6", "e7", "e11"}  # the 2024-01-03 events left out
    assert edges.events_until(events, None) is events
    for bad in ("2024-1-2", "yesterday", 20240102):
        with pytest.raises(ValueError, match=r"until_date: expected a YYYY-MM-DD string or None, got"):
            edges.events_until(events, bad)
    with pytest.raises(ValueError, match="until_date: expected a YYYY-MM-DD"):
        graph_job.build_graph(spark, "/nonexistent-lake", until_date="2024-13-01")


def test_behaviour_edges_weights_with_decay(spark):
    events, _, _ = frames(spark)
    cfg = GraphConfig(half_life_days=1.0, behaviour_weights={"click": 1, "view": 0.5, "cart": 2, "purchase": 4})
    ref = edges.reference_micros(events, cfg)
    assert ref == us(ts(2, 12, 0))  # the latest event, not now()
    users, items = id_map(spark, ["u1", "u2", "u3"]), id_map(spark, ["i1", "i2", "i3"])
    got = edges.behaviour_edges(events, users, items, cfg, ref)
    by_rel = {rel: edge_rows(got.filter(F.col(G.RELATION) == rel)) for rel in ("click", "view", "cart", "purchase")}

    def w(weight, t):
        return weight * 0.5 ** ((ref - us(t)) / 86_400e6)

    expect = {
        "click": {(0, 0): (w(1, ts(1, 10)) + w(1, ts(2, 12)), 2, us(ts(1, 10)), us(ts(2, 12))),
                  (1, 0): (w(1, ts(2, 9)), 1, us(ts(2, 9)), us(ts(2, 9))),
                  (1, 2): (w(1, ts(2, 9, 10)), 1, us(ts(2, 9, 10)), us(ts(2, 9, 10)))},
        "view": {(0, 1): (w(0.5, ts(1, 10, 5)), 1, us(ts(1, 10, 5)), us(ts(1, 10, 5)))},
        "cart": {(2, 1): (2.0, 1, us(ts(2, 12)), us(ts(2, 12)))},
        "purchase": {(0, 0): (w(4, ts(1, 10, 10)), 1, us(ts(1, 10, 10)), us(ts(1, 10, 10))),
                     (1, 2): (w(4, ts(2, 9, 20)), 1, us(ts(2, 9, 20)), us(ts(2, 9, 20)))},
    }
    for rel, rows in expect.items():
        assert set(by_rel[rel]) == set(rows), rel
        for pair, (weight, count, first, last) in rows.items():
            assert by_rel[rel][pair][0] == pytest.approx(weight, abs=2e-9), (rel, pair)
            assert by_rel[rel][pair][1:] == (count, first, last), (rel, pair)
    assert by_rel["click"][(0, 0)][0] == pytest.approx(0.5 ** (26 / 24) + 1.0, abs=2e-9)  # by hand
    # no decay: weight = sum of behaviour weights; a fixed reference_time overrides the input's
    flat = edge_rows(edges.behaviour_edges(events, users, items, GraphConfig(half_life_days=None), None)
                     .filter(F.col(G.RELATION) == "click"))
    assert flat[(0, 0)][0] == 2.0
    fixed = GraphConfig(reference_time="2024-02-01T00:00:00Z")
    assert edges.reference_micros(events, fixed) == us(datetime(2024, 2, 1, tzinfo=UTC))


def test_belongs_to_follows_and_searched(spark):
    events, items, users = frames(spark)
    umap, imap = id_map(spark, ["u1", "u2", "u3"]), id_map(spark, ["i1", "i2", "i3"])
    shop, brand = id_map(spark, ["s1", "s2"]), id_map(spark, ["nike"])
    cat = id_map(spark, ["Fashion", "Fashion>Shirts", "Fashion>Shoes", "Home"])

    def pairs(df):
        return sorted((r[0], r[1]) for r in df.select(G.SRC_ID, G.DST_ID).collect())

    assert pairs(edges.belongs_to_edges(items, imap, shop, "shop")) == [(0, 0), (1, 1), (2, 0)]
    assert pairs(edges.belongs_to_edges(items, imap, brand, "brand")) == [(0, 0), (1, 0)]
    assert pairs(edges.belongs_to_edges(items, imap, cat, "category")) == [(0, 2), (1, 1), (2, 3)]
    follows = edges.follows_edges(users, umap)  # u9 is no user, u1 -> u1 is a self-follow
    assert_same_rows(follows, df_of(spark, [(0, 1, 1.0, 1, None, None)], G.EDGE_SCHEMA))
    searched = edges.searched_edges(events, id_map(spark, ["red shoes"]), imap, GraphConfig(half_life_days=None), None)
    assert_same_rows(searched, df_of(spark, [(0, 0, 1.0, 1, ts(1, 10), ts(1, 10))], G.EDGE_SCHEMA))
    with pytest.raises(ValueError, match="target"):
        edges.belongs_to_edges(items, imap, shop, "seller")


# ------------------------------------------------------------------------------------ derived


def test_co_view_window_and_top_k(spark):
    events, _, _ = frames(spark)
    imap = id_map(spark, ["i1", "i2", "i3"])
    cfg = GraphConfig(half_life_days=None)
    got = derived.co_view_edges(events, imap, cfg, None)  # sessions a: i1,i2 (5 min); b: i1,i3 (10 min)
    assert_same_rows(got, df_of(spark,
        [(0, 1, 1.0, 1, ts(1, 10, 5), ts(1, 10, 5)), (1, 0, 1.0, 1, ts(1, 10, 5), ts(1, 10, 5)),
         (0, 2, 1.0, 1, ts(2, 9, 10), ts(2, 9, 10)), (2, 0, 1.0, 1, ts(2, 9, 10), ts(2, 9, 10))], G.EDGE_SCHEMA))
    narrow = derived.co_view_edges(events, imap, GraphConfig(half_life_days=None, co_view_window_minutes=6), None)
    assert sorted(edge_rows(narrow)) == [(0, 1), (1, 0)]
    top1 = derived.co_view_edges(events, imap, GraphConfig(half_life_days=None, top_k=1), None)
    assert sorted(edge_rows(top1)) == [(0, 1), (1, 0), (2, 0)]  # i1's tie i2/i3 -> smaller key i2


def test_co_purchase_window_cap_and_decay(spark):
    buys = [ev("p1", "u1", "i1", "purchase", ts(1)), ev("p2", "u1", "i2", "purchase", ts(3)),
            ev("p3", "u1", "i3", "purchase", ts(20)), ev("p4", "u2", "i1", "purchase", ts(2)),
            ev("p5", "u2", "i2", "purchase", ts(2, 6)), ev("p6", "u2", "i2", "click", ts(2, 7))]
    events = df_of(spark, buys, S.CLEAN_EVENTS_SCHEMA)
    imap = id_map(spark, ["i1", "i2", "i3"])
    cfg = GraphConfig(half_life_days=2.0, co_purchase_window_days=7)
    ref = edges.reference_micros(events, cfg)  # day 20
    got = edge_rows(derived.co_purchase_edges(events, imap, cfg, ref))
    d = 0.5 ** (17 / 2) + 0.5 ** ((18 - 0.25) / 2)  # u1 at day 3, u2 at day 2 06:00
    assert set(got) == {(0, 1), (1, 0)}  # i3 is 17 days after the others: outside the window
    assert got[(0, 1)][0] == pytest.approx(d, abs=2e-9) and got[(0, 1)][1] == 2
    assert got[(0, 1)][2:] == (us(ts(2, 6)), us(ts(3)))
    # the cap keeps the 2 most recent distinct items per user: u1 -> i2, i3 (17 days apart: none)
    capped = derived.co_purchase_pairs(events, GraphConfig(max_items_per_user=2, co_purchase_window_days=30))
    assert sorted((r[0], r[1]) for r in capped.collect()) == [("i1", "i2"), ("i2", "i1"), ("i2", "i3"), ("i3", "i2")]


def test_skew_hot_item_and_hyperactive_session_stay_bounded(spark):
    """100k events of one user in one session (5,000 distinct items, half of them on one hot item)
    plus 1,000 sessions that all contain the hot item: the caps bound the self-join."""
    cap, k, n = 50, 10, 100_000
    base = int(us(ts(1)) / 1_000_000)
    heavy = spark.range(n).select(
        F.format_string("h%06d", "id").alias(S.EVENT_ID), F.lit("heavy").alias(S.USER_ID),
        F.when(F.col("id") % 2 == 0, F.lit("hot"))
        .otherwise(F.format_string("x%04d", F.col("id") % 5000)).alias(S.ITEM_ID),
        F.lit("click").alias(S.EVENT_TYPE), F.timestamp_seconds(F.col("id") + base).alias(S.TS),
        F.lit("s").alias(S.SESSION_ID))
    crowd = spark.range(3000).select(
        F.format_string("c%06d", "id").alias(S.EVENT_ID),
        F.format_string("u%04d", (F.col("id") / 3).cast("int")).alias(S.USER_ID),
        F.when(F.col("id") % 3 == 0, F.lit("hot")).otherwise(F.format_string("y%04d", F.col("id"))).alias(S.ITEM_ID),
        F.lit("view").alias(S.EVENT_TYPE), F.timestamp_seconds(F.col("id") + base).alias(S.TS),
        F.lit("s").alias(S.SESSION_ID))
    events = heavy.unionByName(crowd)
    items = ids.candidate_keys(events, S.ITEM_ID)
    imap = ids.assign_ids(None, items, 0)
    cfg = GraphConfig(max_items_per_session=cap, top_k=k, half_life_days=None)
    start = time.time()
    pairs = derived.co_view_pairs(events, cfg)
    plan = pairs._jdf.queryExecution().executedPlan().toString()
    assert "WindowGroupLimit" in plan  # the cap runs as a partial top-N before the shuffle
    n_pairs = pairs.count()
    assert n_pairs <= cap * (cap - 1) + 1000 * 3 * 2  # without the cap: 5,001^2 = 25M pairs in one session
    got = derived.co_view_edges(events, imap, cfg, None)
    n_edges, n_items = got.count(), imap.count()
    elapsed = time.time() - start
    assert n_edges <= n_items * k
    hot_id = imap.filter(F.col(G.KEY) == "hot").first()[G.NODE_ID]
    assert got.filter(F.col(G.SRC_ID) == hot_id).count() == k  # the hot item keeps only its top-k
    assert elapsed < 60, f"co-view on 103k skewed events took {elapsed:.1f} s"


# ------------------------------------------------------------------------------------ GE suites


def test_graph_suites_fail_on_dangling_duplicate_and_bad_weight(spark, tmp_path):
    maps = {"user": id_map(spark, ["a", "b", "c"]),
            "item": df_of(spark, [("x", 0, 0), ("y", 2, 0)], G.ID_MAP_SCHEMA)}  # ids 0, 2: a gap
    bad = df_of(spark, [(0, 0, 1.0, 1, None, None), (2, 5, 1.0, 1, None, None),
                                 (1, 0, float("nan"), 1, None, None), (1, 0, 2.0, 1, None, None)], G.EDGE_SCHEMA)
    good = df_of(spark, [(0, 1, 0.5, 2, ts(1), ts(2))], G.EDGE_SCHEMA)
    batches = GQ.graph_suites(maps, {}, {"user__click__item": bad, "user__view__item": good}, {},
                              {"user": 3, "item": 2}, {"user__click__item": 4, "user__view__item": 1})
    summary = run_suites(batches, lake=str(tmp_path), build_docs=False, raise_on_failure=False)
    assert not summary["success"]
    failed = {f["kwargs"]["column"]: f.get("examples") for s in summary["suites"].values() for f in s["failed"]}
    table = "graph/edges_user__click__item"
    assert failed["fail_dangling_dst"] == [f"{table}: 1 edges whose dst_id is not in the item id map (0..1)"]
    assert failed["fail_duplicate_pairs"] == [f"{table}: 1 duplicate (src_id, dst_id) rows"]
    assert failed["fail_weights"] == [f"{table}: 1 edges with a weight that is not finite and > 0"]
    assert "graph/id_map_item: node ids are not exactly 0..1" in failed["fail_ids_contiguous"][0]
    assert "fail_dangling_src" not in failed and "fail_row_count" not in failed  # user__view__item is clean


def test_feature_suite_checks_dimension_and_nan(spark, tmp_path):
    schema = "node_id long, numeric array<float>, text array<float>"
    ok = df_of(spark, [(0, [1.0, 2.0], [0.1, 0.2, 0.3]), (1, [0.0, 1.0], None)], schema)
    bad = df_of(spark, [(0, [1.0, float("nan")], [0.1, 0.2]), (1, [0.0], [0.1, 0.2, 0.3])], schema)
    good = run_suites([GQ.feature_suite("item", ok, 2, {"text": 3})], lake=str(tmp_path), build_docs=False)
    assert good["success"]
    summary = run_suites([GQ.feature_suite("item", bad, 2, {"text": 3})], lake=str(tmp_path), build_docs=False,
                         raise_on_failure=False)
    failed = {f["kwargs"]["column"]: f["examples"][0] for f in summary["suites"]["graph.features_item"]["failed"]}
    assert set(failed) == {"fail_dimensions", "fail_nan"}
    assert "1 rows of text are not of size 3" in failed["fail_dimensions"]
    assert "numeric sizes vary" in failed["fail_dimensions"]
    assert "1 rows of numeric hold NaN" in failed["fail_nan"]


# ------------------------------------------------------------------------------------ the job


def write_clean(spark, lake_dir, events, items, users, mode="overwrite"):
    ev, it, us_ = frames(spark, events, items, users)
    lake.write_table(ev, tables.table_path(lake_dir, tables.CLEAN_EVENTS), mode=mode, partition_by=[S.DT])
    lake.write_table(it, tables.table_path(lake_dir, tables.CLEAN_ITEMS), mode="overwrite")
    lake.write_table(us_, tables.table_path(lake_dir, tables.CLEAN_USERS), mode="overwrite")


# the model-free text backend keeps the job tests fast (the MiniLM path has its own tests)
FAST = GraphConfig(text_model="hashing", text_dim=16)


@pytest.fixture(scope="module")
def tiny_lake(spark, tmp_path_factory):
    lake_dir = str(tmp_path_factory.mktemp("graph") / "lake")
    write_clean(spark, lake_dir, DAY1_EVENTS, DAY1_ITEMS, DAY1_USERS)
    summary = graph_job.build_graph(spark, lake_dir, FAST, build_docs=False)
    return lake_dir, summary


def test_first_build_commits_a_graph_version(spark, tiny_lake):
    lake_dir, summary = tiny_lake
    assert summary["graph_version"] == 0 and summary["validation"]["success"]
    assert summary["node_counts"] == {"user": 3, "item": 3, "shop": 2, "brand": 1, "category": 4, "query": 1}
    assert summary["edge_counts"] == {
        "user__click__item": 3, "user__view__item": 1, "user__cart__item": 1, "user__purchase__item": 2,
        "item__belongs_to__shop": 3, "item__belongs_to__brand": 2, "item__belongs_to__category": 3,
        "category__child_of__category": 2, "user__follows__user": 1, "query__searched__item": 1,
        "item__co_view__item": 4, "item__co_purchase__item": 0}
    g = load_graph_version(spark, lake_dir)
    assert g.graph_version == 0 and g.config_hash == config_hash(FAST)
    assert g.inputs == {tables.CLEAN_EVENTS: 0, tables.CLEAN_ITEMS: 0, tables.CLEAN_USERS: 0}
    assert g.reference_ts == "2024-01-02T12:00:00.000000Z"
    assert set(g.tables) == set(summary["outputs"]) and tables.GRAPH_MANIFEST not in g.tables
    assert_same_rows(read_graph_table(spark, g, tables.id_map("user")),
                     df_of(spark, [("u1", 0, 0), ("u2", 1, 0), ("u3", 2, 0)], G.ID_MAP_SCHEMA))
    users = read_graph_table(spark, g, tables.nodes("user")).orderBy(G.NODE_ID).collect()
    assert [(r[G.KEY], r[S.AGE], r[S.GENDER]) for r in users] == [("u1", 30, "F"), ("u2", 41, "M"), ("u3", None, "U")]
    with pytest.raises(GraphNotFoundError):
        load_graph_version(spark, lake_dir, version=7)


def test_the_build_writes_exactly_the_registry_edge_types(spark, tiny_lake):
    """The graph build's edge tables are the edge types the registry yields over its inputs, in
    registry order; embed-new's families are the inductive ones (all but co_view / co_purchase)."""
    lake_dir, summary = tiny_lake
    g = load_graph_version(spark, lake_dir)
    _, clean = graph_job.read_inputs(spark, lake_dir)
    maps = {t: read_graph_table(spark, g, tables.id_map(t)) for t in g.node_counts}
    inputs = edge_builders.EdgeInputs(clean[tables.CLEAN_EVENTS], clean[tables.CLEAN_ITEMS],
                                      clean[tables.CLEAN_USERS], maps, FAST, g.reference_ts_us)
    yielded = []
    for family in edge_builders.edge_families():
        with edge_builders.open_family(family, inputs, only_present=True) as makers:
            yielded += [t.name for t in makers]
    assert yielded == list(summary["edge_counts"]) and set(yielded) == set(g.edge_counts)
    declared = {t.name for f in edge_builders.edge_families() for t in f.types(FAST)}
    assert declared - set(yielded) == {"user__fav__item"}  # declared, but no fav event in the data
    inductive = {t.name for f in edge_builders.edge_families(inductive=True) for t in f.types(FAST)}
    assert set(yielded) - inductive == {"item__co_view__item", "item__co_purchase__item"}
    assert [f.name for f in edge_builders.edge_families(inductive=False)] == ["co_view", "co_purchase"]


@pytest.fixture(scope="module")
def second_day(spark, tiny_lake, tmp_path_factory):
    """Copy the lake, add a day; first a build whose GE gate fails (a dangling follows edge),
    then a clean rebuild. Returns what each step left behind."""
    src, _ = tiny_lake
    lake_dir = str(tmp_path_factory.mktemp("graph2") / "lake")
    shutil.copytree(src, lake_dir)
    write_clean(spark, lake_dir, DAY2_EVENTS, DAY2_ITEMS, DAY2_USERS, mode="append")
    names = [*load_graph_version(spark, lake_dir).tables, tables.GRAPH_MANIFEST]
    before = {name: lake.table_version(tables.table_path(lake_dir, name)) for name in names}
    real_follows = edge_builders.follows_edges

    def dangling_follows(users, user_map):
        return real_follows(users, user_map).unionByName(
            df_of(users.sparkSession, [(0, 99, 1.0, 1, None, None)], G.EDGE_SCHEMA))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(edge_builders, "follows_edges", dangling_follows)
        with pytest.raises(graph_job.GraphBuildError) as failure:
            graph_job.build_graph(spark, lake_dir, FAST, build_docs=False)
    after_failure = {name: lake.table_version(tables.table_path(lake_dir, name)) for name in before}
    last_ops = {name: lake.history(tables.table_path(lake_dir, name), limit=1)[0]["operation"] for name in before}
    summary = graph_job.build_graph(spark, lake_dir, FAST, build_docs=False)
    return {"lake": lake_dir, "before": before, "after_failure": after_failure, "last_ops": last_ops,
            "error": failure.value, "summary": summary}


def test_failed_build_commits_nothing(spark, tiny_lake, second_day):
    err, lake_dir = second_day["error"], second_day["lake"]
    assert "graph/edges_user__follows__user: 1 edges whose dst_id is not in the user id map (0..4)" in str(err)
    assert err.summary is not None and not err.summary["success"]
    # every table the failed build wrote was restored: a newer Delta version, the old content
    changed = [n for n, v in second_day["after_failure"].items() if v != second_day["before"][n]]
    assert tables.id_map("user") in changed and tables.edges("user", "click", "item") in changed
    assert second_day["after_failure"][tables.GRAPH_MANIFEST] == second_day["before"][tables.GRAPH_MANIFEST]
    for name in changed:
        path = tables.table_path(lake_dir, name)
        assert second_day["last_ops"][name] == "RESTORE", name
        assert_same_rows(lake.read_table(spark, path, version=second_day["after_failure"][name]),
                         lake.read_table(spark, path, version=second_day["before"][name]))
    assert "rolled back" in str(err)


def test_rebuild_keeps_old_ids_and_appends_new_ones(spark, tiny_lake, second_day):
    lake_dir, summary = second_day["lake"], second_day["summary"]
    assert summary["graph_version"] == 1  # the failed build left no version behind
    g0, g1 = load_graph_version(spark, lake_dir, 0), load_graph_version(spark, lake_dir)
    assert g1.graph_version == 1 and g1.inputs[tables.CLEAN_EVENTS] == 1
    expected_new = {"user": [("u0", 3), ("u4", 4)], "item": [("i0", 3), ("i4", 4)], "shop": [("s3", 2)],
                    "brand": [("ikea", 1)], "category": [("Home>Garden", 4)], "query": []}
    for t, new in expected_new.items():
        old_map = read_graph_table(spark, g0, tables.id_map(t))
        new_map = read_graph_table(spark, g1, tables.id_map(t))
        assert_same_rows(new_map.filter(F.col(G.ADDED_IN) == 0), old_map)  # every old key keeps its id
        assert sorted((r[G.KEY], r[G.NODE_ID]) for r in new_map.filter(F.col(G.ADDED_IN) == 1).collect()) == new
        assert g1.node_counts[t] == g0.node_counts[t] + len(new)
    assert g1.edge_counts["user__follows__user"] == 2  # u4 -> u1 joins u1 -> u2
    # version 0 is still readable through the manifest (time travel of every table)
    assert read_graph_table(spark, g0, tables.nodes("user")).count() == 3


# ------------------------------------------------------------------------------------ end to end


def test_end_to_end_generated_logs_through_the_cli(spark, demo_run, tmp_path, capsys):
    """``graph build`` / ``stats`` / ``validate`` / ``export`` through the CLI on the clean tables of
    the demo's generated logs (the shared ``demo_run`` fixture: its ETL output, copied)."""
    lake_dir = str(tmp_path / "lake")
    shutil.copytree(os.path.join(demo_run[0], "clean"), os.path.join(lake_dir, "clean"))
    config = tmp_path / "graph.yaml"  # the model-free text fallback keeps this test fast
    config.write_text("graph:\n  text_model: hashing\n  text_dim: 16\n  top_k: 10\n")
    capsys.readouterr()
    assert cli.main(["graph", "build", "--lake", lake_dir, "--config", str(config), "--json"]) == 0
    built = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert built["graph_version"] == 0 and built["validation"]["success"]
    assert sorted(built["features"]) == sorted(tables.features(t) for t in built["node_counts"])
    assert "graph.features" in built["validation"]["suites"]
    assert built["feature_spec"]["item"]["text"]["dim"] == 16
    clean = lake.read_table(spark, tables.table_path(lake_dir, tables.CLEAN_EVENTS))
    users = lake.read_table(spark, tables.table_path(lake_dir, tables.CLEAN_USERS))
    n_users = clean.select(S.USER_ID).union(users.select(S.USER_ID)).distinct().count()
    assert built["node_counts"]["user"] == n_users and built["node_counts"]["query"] > 0
    triples = clean.select(S.USER_ID, S.ITEM_ID, S.EVENT_TYPE).distinct().groupBy(S.EVENT_TYPE).count().collect()
    for r in triples:  # one behaviour edge per distinct (user, item, event type)
        assert built["edge_counts"][f"user__{r[S.EVENT_TYPE]}__item"] == r["count"]
    assert built["edge_counts"]["item__co_view__item"] > 0 and built["edge_counts"]["user__follows__user"] > 0

    assert cli.main(["graph", "stats", "--lake", lake_dir, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["node_counts"] == built["node_counts"] and stats["edges_total"] == sum(built["edge_counts"].values())
    assert stats["degrees"]["user__click__item:out"]["nodes"] == n_users
    assert cli.main(["graph", "stats", "--lake", lake_dir]) == 0 and "graph version 0" in capsys.readouterr().out
    assert cli.main(["validate", "--stage", "graph", "--lake", lake_dir, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["success"]
    assert cli.main(["graph", "stats", "--lake", str(tmp_path / "empty")]) == 2  # no graph: a readable error

    # the training snapshot of that graph version: CSR equal to the edge table, features from the manifest spec
    assert cli.main(["graph", "export", "--lake", lake_dir, "--json"]) == 0
    exported = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert exported["path"] == os.path.abspath(tables.snapshot_dir(lake_dir, 0)) and not exported["reused"]
    assert exported["edge_types"] == {k: v for k, v in sorted(built["edge_counts"].items())}
    snap = open_snapshot(exported["path"])
    assert snap.manifest["feature_spec"] == built["feature_spec"]
    indptr, indices, _ = snap.csr("user__click__item")
    clicks = lake.read_table(spark, tables.table_path(lake_dir, tables.edges("user", "click", "item")))
    pairs = sorted((int(r[G.SRC_ID]), int(r[G.DST_ID])) for r in clicks.collect())
    assert [(s, int(d)) for s in range(len(indptr) - 1) for d in indices[indptr[s]:indptr[s + 1]]] == pairs
    assert snap.features("item", "text").shape == (built["node_counts"]["item"], 16)
    assert cli.main(["graph", "export", "--lake", lake_dir, "--json"]) == 0  # same graph version: reused
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["reused"]


@pytest.mark.skipif(not os.path.isdir(ML100K), reason=f"MovieLens-100k not found at {ML100K}")
def test_end_to_end_movielens_100k(spark, tmp_path):
    from graphlake.etl.importers import import_dataset

    lake_dir = str(tmp_path / "lake")
    report = import_dataset(spark, "ml100k", ML100K, lake_dir)
    summary = graph_job.build_graph(spark, lake_dir, FAST, build_docs=False)
    assert summary["validation"]["success"]
    counts = summary["node_counts"]
    assert counts["user"] == report["users"] == 943 and counts["item"] == report["items"] == 1682
    assert "query" not in counts and "shop" not in counts and "brand" not in counts  # ml100k has none
    assert 2 <= counts["category"] <= 20  # "movie" and "movie>genre"
    # every (user, movie) is rated once: each pair is one purchase (rating >= 4) or one click edge
    ec = summary["edge_counts"]
    assert ec["user__purchase__item"] + ec["user__click__item"] == sum(report["events"].values()) == 100_000
    assert ec["item__belongs_to__category"] == 1682 and ec["item__co_purchase__item"] > 0
    assert ec["item__co_purchase__item"] <= 1682 * GraphConfig().top_k
