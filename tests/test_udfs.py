"""The gl_* SQL functions on a tiny hand-made asset (tests/asset_fixtures.py): answers checked by hand."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pyspark.errors import PythonException
from pyspark.sql import Row

from graphlake.assets.config import AssetConfig
from tests.asset_fixtures import ITEM_VECTORS


@pytest.fixture(scope="module")
def sql_lake(spark, published_tiny):
    """The shared published tiny lake (conftest ``published_tiny``; its gate ``nn_k=2``: 3 items per
    category, so an item's 2 nearest neighbours share its category), its ``gl_*`` functions
    registered on the test session."""
    from graphlake import udfs

    udfs.register(spark, lake=published_tiny)
    return published_tiny


def one(spark, sql):
    return spark.sql(sql).first()[0]


def pairs(value, field="score"):
    return [(r["item_key"], round(r[field], 5)) for r in value]


def test_embedding_and_score(spark, sql_lake):
    assert np.allclose(one(spark, "SELECT gl_embedding('item', 'i2')"), [0.9, 0.1])
    assert np.allclose(one(spark, "SELECT gl_embedding('user', 'u3')"), [0.6, 0.4])
    assert one(spark, "SELECT gl_embedding('item', 'nope')") is None
    assert one(spark, "SELECT gl_embedding('item', CAST(NULL AS STRING))") is None
    assert one(spark, "SELECT gl_score('u2', 'i5')") == pytest.approx(0.9)
    assert one(spark, "SELECT gl_score('u1', 'i6')") == pytest.approx(0.2)
    assert one(spark, "SELECT gl_score('ghost', 'i1')") is None


def test_similar_items_never_returns_the_item_itself(spark, sql_lake):
    assert pairs(one(spark, "SELECT gl_similar_items('i1', 2)")) == [("i2", 0.9), ("i3", 0.8)]
    assert pairs(one(spark, "SELECT gl_similar_items('i4', 3)")) == [("i5", 0.9), ("i6", 0.8), ("i3", 0.2)]
    assert len(one(spark, "SELECT gl_similar_items('i1', 1000)")) == 5  # every other item, no more
    assert one(spark, "SELECT gl_similar_items('nope', 2)") is None


def test_recommend_excludes_the_history_unless_asked(spark, sql_lake):
    assert pairs(one(spark, "SELECT gl_recommend('u1', 2)")) == [("i3", 0.8), ("i6", 0.2)]
    assert pairs(one(spark, "SELECT gl_recommend('u1', 2, false)")) == [("i1", 1.0), ("i2", 0.9)]
    assert pairs(one(spark, "SELECT gl_recommend('u3', 2)")) == [("i2", 0.58), ("i3", 0.56)]
    assert pairs(one(spark, "SELECT gl_recommend('u2', 10)")) == [("i6", 0.8), ("i3", 0.2), ("i2", 0.1), ("i1", 0.0)]
    assert one(spark, "SELECT gl_recommend('ghost', 2)") is None
    rows = spark.sql("SELECT u, gl_recommend(u, 1) r FROM VALUES ('u1'), ('ghost'), ('u2') t(u)").collect()
    assert [(r["u"], None if r["r"] is None else pairs(r["r"])) for r in rows] == [
        ("u1", [("i3", 0.8)]), ("ghost", None), ("u2", [("i6", 0.8)])]


def test_point_lookups_without_spark_answer_like_the_sql_functions(spark, sql_lake):
    """graphlake.assets.open: the same vectors, neighbours, recommendations and scores as the SQL
    functions above (checked by hand there), read in this process from the published files."""
    import graphlake.assets

    items = graphlake.assets.open(sql_lake, "item_embeddings")
    assert (items.version.version, items.version.status, items.dim, len(items)) == (1, "production", 2, 6)
    assert "i2" in items and "nope" not in items and sorted(items.keys) == sorted(ITEM_VECTORS)
    assert np.allclose(items.vectors(["i2", "i1"]), [ITEM_VECTORS["i2"], ITEM_VECTORS["i1"]])
    assert [(key, round(s, 5)) for key, s in items.similar("i4", k=3)] == [("i5", 0.9), ("i6", 0.8), ("i3", 0.2)]
    assert len(items.similar("i1", k=1000)) == 5  # every other item, never i1 itself
    assert [(key, round(s, 5)) for key, s in items.recommend("u1", k=2)] == [("i3", 0.8), ("i6", 0.2)]
    assert [(key, round(s, 5)) for key, s in items.recommend("u1", 2, exclude_seen=False)] == [("i1", 1.0), ("i2", 0.9)]
    users = graphlake.assets.open(sql_lake, "user_embeddings", version=1)
    assert users.recommend("u2", 10) == items.recommend("u2", 10)  # either side of the run finds the other
    assert np.allclose(users.vectors(["u3"]), [[0.6, 0.4]])
    for sql, answer in (("SELECT gl_recommend('u3', 2)", items.recommend("u3", 2)),
                        ("SELECT gl_similar_items('i1', 2)", items.similar("i1", 2))):
        assert pairs(one(spark, sql)) == [(key, round(s, 5)) for key, s in answer]


def test_point_lookups_name_what_was_wrong(sql_lake, tmp_path):
    import graphlake.assets
    from graphlake.assets.registry import AssetNotFoundError

    items = graphlake.assets.open(sql_lake)
    with pytest.raises(KeyError, match=r"keys: 2 key\(s\) not in item_embeddings v1: \['nope', 'u1'\]"):
        items.vectors(["i1", "nope", "u1"])
    with pytest.raises(TypeError, match="keys: expected a list of keys"):
        items.vectors("i1")
    with pytest.raises(KeyError, match=r"key: 1 key\(s\) not in item_embeddings v1: \['ghost'\]"):
        items.similar("ghost")
    with pytest.raises(KeyError, match=r"user_key: 1 key\(s\) not in user_embeddings v1"):
        items.recommend("ghost")
    with pytest.raises(ValueError, match=r"k: expected an int in 1\.\.1000, got 0"):
        items.similar("i1", k=0)
    with pytest.raises(ValueError, match="has no ANN index"):
        graphlake.assets.open(sql_lake, "user_embeddings").similar("u1")
    with pytest.raises(AssetNotFoundError, match="version: item_embeddings has no version 9"):
        graphlake.assets.open(sql_lake, "item_embeddings", version=9)
    with pytest.raises(AssetNotFoundError, match="asset: no asset named 'shop_embeddings'"):
        graphlake.assets.open(sql_lake, "shop_embeddings")
    with pytest.raises(AssetNotFoundError, match=r"asset: no asset named 'item_embeddings' is published \(known: \[\]\)"):
        graphlake.assets.open(str(tmp_path / "empty"))


READ_WITHOUT_SPARK = """
import json, sys
import duckdb, duckdb_ext, polars as pl
from deltalake import DeltaTable, QueryBuilder

lake = sys.argv[1]
con = duckdb.connect(config={"extension_directory": f"{duckdb_ext.__path__[0]}/extensions",
                             "autoinstall_known_extensions": False})
con.execute("LOAD delta")
production = f\"\"\"JOIN delta_scan('{lake}/assets/registry') p ON p.asset = 'item_embeddings'
    AND p.status = 'production' AND r.asset_version = p.version\"\"\"
recs = con.sql(f"SELECT r.user_key, r.rank, r.item_key, r.score FROM delta_scan('{lake}/assets/recommendations') r "
               f"{production} ORDER BY r.user_key, r.rank").fetchall()
similar = (pl.read_delta(f"{lake}/assets/similar_items").filter(pl.col("asset_version") == 1)
           .sort("item_key", "rank").select("item_key", "rank", "similar_key", "score").rows())
versions = (QueryBuilder().register("recs", DeltaTable(f"{lake}/assets/recommendations"))
            .execute("SELECT DISTINCT asset_version FROM recs ORDER BY asset_version").read_all())
print(json.dumps({"recs": recs, "similar": similar, "versions": [v.as_py() for v in versions.column(0)],
                  "spark_loaded": "pyspark" in sys.modules}))
"""


def test_published_top_k_tables_read_without_spark(sql_lake):
    """publish wrote assets/recommendations and assets/similar_items (output_k 20, more than the
    tiny catalogue): DuckDB (the delta extension from PyPI), polars and delta-rs read them in a
    process with no Spark, the production version resolved through the registry, and the rows are
    the SQL functions' answers (the reader's, which the test above ties to them)."""
    import json
    import subprocess
    import sys

    import graphlake.assets

    proc = subprocess.run([sys.executable, "-c", READ_WITHOUT_SPARK, sql_lake], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not got["spark_loaded"] and got["versions"] == [1]
    items = graphlake.assets.open(sql_lake)
    users = sorted({u for u, *_ in got["recs"]})
    assert users == ["u1", "u2", "u3"]
    for user in users:
        rows = [(item, round(score, 5)) for u, _, item, score in got["recs"] if u == user]
        assert rows == [(item, round(score, 5)) for item, score in items.recommend(user, 20)], user
        assert [rank for u, rank, *_ in got["recs"] if u == user] == list(range(1, len(rows) + 1))
    assert [(k, round(sc, 5)) for u, _, k, sc in got["recs"] if u == "u1"] == [
        ("i3", 0.8), ("i6", 0.2), ("i5", 0.1), ("i4", 0.0)]  # u1's history {i1, i2} left out
    for item in sorted(ITEM_VECTORS):
        rows = [(k, round(sc, 5)) for i, _, k, sc in got["similar"] if i == item]
        assert rows == [(k, round(sc, 5)) for k, sc in items.similar(item, 20)] and len(rows) == 5, item


def test_interests_split_a_mixed_history_into_its_categories(spark, sql_lake):
    from graphlake.assets.search import open_history
    from graphlake.udfs.register import resolve_spec

    spec = resolve_spec(sql_lake)
    from graphlake.assets.bundle import open_bundle

    users, items = open_bundle(spec["user"]), open_bundle(spec["item"])
    hist, w = open_history(spec["snapshot"], spec["history"]).of(int(users.rows_of(["u3"])[0]))
    weight_of = {items.keys[h]: float(x) for h, x in zip(hist, w)}
    got = one(spark, "SELECT gl_interests('u3', 2)")
    assert sorted(tuple(r["items"]) for r in got) == [("i1",), ("i4",)]
    for r in got:
        assert r["weight"] == pytest.approx(weight_of[r["items"][0]] / sum(weight_of.values()), rel=1e-5)
    assert [r["interest"] for r in got] == [0, 1] and got[0]["weight"] >= got[1]["weight"]
    single = one(spark, "SELECT gl_interests('u1', 1)")  # one interest holding both A items
    assert len(single) == 1 and sorted(single[0]["items"]) == ["i1", "i2"] and single[0]["weight"] == pytest.approx(1)
    assert one(spark, "SELECT gl_interests('ghost', 3)") is None


def test_explain_weights_history_items_by_similarity(spark, sql_lake):
    from graphlake.assets.bundle import open_bundle
    from graphlake.assets.search import open_history
    from graphlake.udfs.register import resolve_spec

    spec = resolve_spec(sql_lake)
    users, items = open_bundle(spec["user"]), open_bundle(spec["item"])
    hist, w = open_history(spec["snapshot"], spec["history"]).of(int(users.rows_of(["u1"])[0]))
    by_key = dict(zip(items.keys[hist], w))
    raw = {k: by_key[k] * float(np.dot(ITEM_VECTORS[k], ITEM_VECTORS["i3"])) for k in ("i1", "i2")}
    expected = sorted(((k, round(v / sum(raw.values()), 5)) for k, v in raw.items()), key=lambda t: -t[1])
    assert pairs(one(spark, "SELECT gl_explain('u1', 'i3', 5)"), "contribution") == expected
    assert pairs(one(spark, "SELECT gl_explain('u1', 'i3', 1)"), "contribution") == expected[:1]
    # i4 is orthogonal to i1: only i2 supports it
    assert pairs(one(spark, "SELECT gl_explain('u1', 'i4', 3)"), "contribution") == [("i2", 1.0)]
    assert one(spark, "SELECT gl_explain('u1', 'nope', 3)") is None


def test_mean_embedding_aggregates_groups(spark, sql_lake, items_view):
    rows = spark.sql("SELECT category, gl_mean_embedding(item_id) m, gl_weighted_mean_embedding(item_id, price) w "
                     "FROM items GROUP BY category ORDER BY category").collect()
    assert [r["category"] for r in rows] == ["A", "B"]
    assert np.allclose(rows[0]["m"], [0.9, 0.1]) and np.allclose(rows[1]["m"], [0.1, 0.9])
    # prices 1, 2, 3 for i1..i3 and 4, 5, 6 for i4..i6
    assert np.allclose(rows[0]["w"], np.average([[1, 0], [.9, .1], [.8, .2]], axis=0, weights=[1, 2, 3]))
    assert np.allclose(rows[1]["w"], np.average([[0, 1], [.1, .9], [.2, .8]], axis=0, weights=[4, 5, 6]))
    none = spark.sql("SELECT gl_mean_embedding(k) FROM VALUES ('ghost'), ('nope') t(k)").first()[0]
    assert none is None


@pytest.fixture(scope="module")
def items_view(spark, sql_lake):
    from graphlake.core import lake, tables

    lake.read_table(spark, tables.table_path(sql_lake, tables.CLEAN_ITEMS)).createOrReplaceTempView("items")


@pytest.mark.parametrize("sql, error, message", [
    ("SELECT gl_recommend('u1', 0)", "ValueError", r"gl_recommend: k must be in 1\.\.1000, got 0"),
    ("SELECT gl_recommend('u1', 1001)", "ValueError", r"gl_recommend: k must be in 1\.\.1000, got 1001"),
    ("SELECT gl_similar_items('i1', 2.5)", "TypeError", r"gl_similar_items: k must be an integer, got decimal128"),
    ("SELECT gl_recommend('u1', CAST(NULL AS INT))", "ValueError", r"gl_recommend: k must not be NULL"),
    ("SELECT gl_recommend('u1', 3, 'yes')", "TypeError", r"gl_recommend: exclude_seen must be a boolean"),
    ("SELECT gl_interests('u1', 0)", "ValueError", r"gl_interests: n must be in 1\.\.100, got 0"),
    ("SELECT gl_score(array(1), 'i1')", "TypeError", r"gl_score: user_key must be a string \(or integer\) key"),
    ("SELECT gl_embedding('shop', 's1')", "ValueError", r"gl_embedding: node_type 'shop' has no published asset"),
])
def test_bad_arguments_name_the_function_and_argument(spark, sql_lake, sql, error, message):
    with pytest.raises(PythonException, match=f"{error}: {message}"):
        spark.sql(sql).collect()


def test_register_resolves_exact_versions_and_refuses_unknown(spark, sql_lake):
    from graphlake import udfs
    from graphlake.assets.registry import AssetNotFoundError

    assert udfs.register(spark, lake=sql_lake, version=1) == {"item_embeddings": 1, "user_embeddings": 1}
    with pytest.raises(AssetNotFoundError, match="item_embeddings has no version 7"):
        udfs.register(spark, lake=sql_lake, version=7)
    with pytest.raises(ValueError, match="version: expected 'production', 'latest', an int or a mapping"):
        udfs.register(spark, lake=sql_lake, version="newest")
    udfs.register(spark, lake=sql_lake)


def test_sql_cli_prints_rows_and_one_line_errors(sql_lake, capsys):
    import json

    from graphlake.app.cli import main

    assert main(["sql", "--lake", sql_lake, "--json", "SELECT gl_recommend('u1', 1) r, gl_score('u1', 'i3') s"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["versions"] == {"item_embeddings": 1, "user_embeddings": 1}
    assert out["rows"][0]["r"] == [{"item_key": "i3", "score": pytest.approx(0.8)}]
    assert main(["sql", "--lake", sql_lake, "SELECT shop_id, gl_mean_embedding(item_id) FROM items GROUP BY shop_id"]) == 0
    assert "s1" in capsys.readouterr().out
    assert main(["sql", "--lake", sql_lake, "SELECT gl_recommend('u1', -1)"]) == 2
    assert "error: ValueError: gl_recommend: k must be in 1..1000, got -1" in capsys.readouterr().err
    assert main(["sql", "--lake", sql_lake, "SELECT category, count(*), gl_mean_embedding(item_id) FROM items "
                                            "GROUP BY category"]) == 2
    assert re.search(r"cannot share a GROUP BY with other aggregates .* WITH e AS \(SELECT shop_id, "
                     r"gl_mean_embedding", capsys.readouterr().err)
    assert main(["sql", "--lake", sql_lake, "SELEC 1"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"SQL: .*PARSE_SYNTAX_ERROR", err) and "Traceback" not in err


def test_row_objects_are_plain_structs(spark, sql_lake):
    got = one(spark, "SELECT gl_recommend('u1', 1)")
    assert got == [Row(item_key="i3", score=pytest.approx(0.8))]


def _brute(items, q, k, excluded):
    s = items @ q
    s[list(excluded)] = -np.inf
    take = min(k, len(items) - len(set(excluded)))
    order = np.lexsort((np.arange(len(s)), -s))[:take]
    return order, s[order]


def test_top_k_batches_exclusions_exactly_with_a_flat_index():
    import faiss

    from graphlake.assets import search as R

    rng = np.random.default_rng(3)
    items = rng.standard_normal((400, 8)).astype(np.float32)
    q = rng.standard_normal((60, 8)).astype(np.float32)
    k = rng.integers(1, 30, 60)
    k[0] = 1000  # more than there are items
    ex = [None if i % 5 == 0 else rng.integers(0, 400, rng.integers(0, 40)) for i in range(60)]
    ex[1] = np.arange(400)  # everything excluded: no result
    ex[2] = rng.integers(0, 400, R._EXACT_SEEN + 5)  # the brute-force path
    index = faiss.IndexFlatIP(8)
    index.add(items)
    rows, scores = R.top_k(index, items, q, k, ex)
    as_list = R.top_k(index, items, q, k, R.as_csr(ex, 60))  # the CSR form gives the same
    assert np.array_equal(rows, as_list[0])
    for i in range(60):
        want, want_s = _brute(items, q[i], int(k[i]), [] if ex[i] is None else ex[i])
        got = rows[i][rows[i] >= 0]
        assert len(got) == len(want), i
        assert np.allclose(scores[i][:len(got)], want_s, atol=1e-4), i
        assert ex[i] is None or not np.isin(got, ex[i]).any()
    assert (rows[1] == -1).all() and (rows[0] >= 0).sum() == 400
    with pytest.raises(ValueError, match="exclude: expected 60 entries"):
        R.top_k(index, items, q, k, ex[:3])


def test_top_k_fills_rows_an_approximate_index_left_short():
    import faiss

    from graphlake.assets import search as R

    rng = np.random.default_rng(4)
    items = rng.standard_normal((300, 8)).astype(np.float32)
    q = rng.standard_normal((20, 8)).astype(np.float32)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(8), 8, 30, faiss.METRIC_INNER_PRODUCT)
    ivf.train(items)
    ivf.add(items)
    ivf.nprobe = 1  # ~10 items per list: a search for 50 comes back short
    rows, _ = R.top_k(ivf, items, q, np.full(20, 50), None)
    assert ((rows >= 0).sum(axis=1) == 50).all()
    assert all(len(set(r)) == 50 for r in rows)


def test_history_items_of_matches_the_per_user_history():
    from graphlake.assets.search import History

    h = History.__new__(History)
    indptr = np.array([0, 2, 2, 5])
    h.csrs = [(indptr, np.array([1, 4, 0, 2, 3]), np.ones(5, np.float32)),
              (np.array([0, 1, 1]), np.array([4]), np.ones(1, np.float32))]  # 2 users only
    offsets, items = h.items_of(np.array([2, -1, 0, 1, 7]))
    got = [sorted(items[offsets[b]:offsets[b + 1]].tolist()) for b in range(5)]
    assert got == [[0, 2, 3], [], [1, 4, 4], [], []]
    assert [sorted(set(g)) for g in got] == [h.of(u)[0].tolist() for u in (2, -1, 0, 1, 7)]


def test_ivf_index_calibrates_nprobe_to_the_target_recall():
    from graphlake.assets.bundle import build_index, calibration_rows, index_kind, ivf_nlist

    rng = np.random.default_rng(5)
    centres = rng.standard_normal((20, 16)).astype(np.float32)
    vectors = centres[np.arange(4000) % 20] + 0.5 * rng.standard_normal((4000, 16)).astype(np.float32)
    config = AssetConfig(index="ivf", ivf_target_recall=0.9, ivf_calibration_queries=400)
    report: dict = {}
    index = build_index(vectors, "dot", "ivf", config, report)
    assert report["nlist"] == ivf_nlist(4000, config) == index.nlist == 4000 // 39
    cal = report["calibration"]
    assert index.nprobe == report["nprobe"] == cal["nprobe"]
    assert min(cal["recall_items"], cal["recall_mixtures"]) >= 0.9 or index.nprobe == index.nlist
    if index.nprobe > 1:  # the step below the chosen one missed the target
        below = max(int(p) for p in cal["ladder"] if int(p) < index.nprobe)
        assert min(cal["ladder"][str(below)]) < 0.9
    again: dict = {}
    build_index(vectors, "dot", "ivf", config, again)
    assert again == report  # seeded: the same index and figures
    assert len(calibration_rows(4000, config)) == 200
    fixed = build_index(vectors, "dot", "ivf", AssetConfig(index="ivf", ivf_nprobe=3))
    assert fixed.nprobe == 3
    assert index_kind(50_000, AssetConfig()) == "flat" and index_kind(50_001, AssetConfig()) == "ivf"
    with pytest.raises(ValueError, match="ivf_target_recall"):
        AssetConfig(ivf_target_recall=1.5)
    with pytest.raises(ValueError, match="ivf_nprobe"):
        AssetConfig(ivf_nprobe=-1)
