"""Embedding assets: publish, registry, quality gate, promote / rollback / retire / vacuum, concurrent publish."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from pyspark.sql import types as T

from graphlake.assets import lifecycle
from graphlake.assets import publish as publish_mod
from graphlake.assets.config import AssetConfig
from graphlake.assets.lifecycle import GateFailedError, promote, read_asset, rollback
from graphlake.assets.publish import PublishConflictError, publish
from graphlake.assets.registry import AssetError, AssetNotFoundError, read_registry
from graphlake.core import lake, tables
from tests import delta_rs
from tests.asset_fixtures import ITEM_VECTORS, USER_VECTORS, hand_run
from tests.conftest import assert_same_rows

GATE = AssetConfig(nn_k=2, output_k=0)  # the top-K output tables: tests/test_udfs.py, and the vacuum test here
WITH_OUTPUTS = AssetConfig(nn_k=2)
GOOD = {"recall@20": 0.20, "ndcg@20": 0.10}


@pytest.fixture()
def lake_dir(tiny_graph, tmp_path):
    path = str(tmp_path / "lake")
    shutil.copytree(tiny_graph, path)
    return path


def statuses(lake_dir):
    rows, _ = read_registry(lake_dir)
    return {(r["asset"], r["version"]): r["status"] for r in rows}


def expected_rows(spark, lake_dir, node_type, vectors, version):
    from graphlake.core import tables
    from graphlake.graph_build.manifest import load_graph_version, read_graph_table

    graph = load_graph_version(spark, lake_dir)
    ids = {r["key"]: r["node_id"] for r in read_graph_table(spark, graph, tables.id_map(node_type)).collect()}
    schema = T.StructType([T.StructField("key", T.StringType()), T.StructField("node_id", T.LongType()),
                           T.StructField("embedding", T.ArrayType(T.FloatType())),
                           T.StructField("origin", T.StringType()), T.StructField("asset_version", T.LongType())])
    return spark.createDataFrame([(k, ids[k], [float(x) for x in v], "trained", version) for k, v in vectors.items()],
                                 schema)


def test_publish_writes_tables_files_and_a_candidate_row(spark, lake_dir):
    hand_run(spark, lake_dir, "r1", evaluation={**GOOD, "k": 20})
    summary = publish(spark, lake_dir, config=GATE, build_docs=False)
    assert {a: (r["version"], r["rows"], r["dim"], r["status"]) for a, r in summary["assets"].items()} == {
        "item_embeddings": (1, 6, 2, "candidate"), "user_embeddings": (1, 3, 2, "candidate")}
    assert statuses(lake_dir) == {("item_embeddings", 1): "candidate", ("user_embeddings", 1): "candidate"}
    row = lifecycle.list_assets(lake_dir, "item_embeddings")[0]
    assert (row["graph_version"], row["run_id"], row["metrics"], row["row_count"]) == (0, "r1", GOOD, 6)
    assert row["code_version"].startswith("graphlake ") and row["config_hash"]
    for node_type, vectors in (("item", ITEM_VECTORS), ("user", USER_VECTORS)):
        got = read_asset(spark, lake_dir, f"{node_type}_embeddings", version=1)
        assert_same_rows(got, expected_rows(spark, lake_dir, node_type, vectors, 1))
    # the Delta table is readable without Spark (delta-rs -> pyarrow)
    table = delta_rs.scan(os.path.join(lake_dir, "emb", "item_embeddings"))
    assert len(table) == 6 and {r["asset_version"] for r in table} == {1}
    files = summary["assets"]["item_embeddings"]["files"]
    assert sorted(os.listdir(files)) == ["index.faiss", "keys.parquet", "meta.json", "vectors.npy"]
    assert "index.faiss" not in os.listdir(summary["assets"]["user_embeddings"]["files"])  # users are not searched
    with pytest.raises(AssetNotFoundError, match="item_embeddings has no production version yet"):
        read_asset(spark, lake_dir, "item_embeddings")


def test_a_run_with_a_popularity_prior_is_published_with_the_dot_score(spark, lake_dir):
    # the vectors as such a run exports them (training.scoring): users [h / t, 1], items [h, prior]
    users = {k: [x / 0.5 for x in v] + [1.0] for k, v in USER_VECTORS.items()}
    items = {k: v + [0.1 * n] for n, (k, v) in enumerate(ITEM_VECTORS.items())}
    hand_run(spark, lake_dir, "r1", vectors={"user": users, "item": items}, evaluation=GOOD,
             model={"decoder": "cosine", "temperature": 0.5, "popularity_prior": 0.3})
    summary = publish(spark, lake_dir, config=GATE, build_docs=False)
    for asset in ("item_embeddings", "user_embeddings"):
        with open(os.path.join(summary["assets"][asset]["files"], "meta.json")) as f:
            meta = json.load(f)
        assert (meta["score"], meta["dim"]) == ("dot", 3)


def test_publish_refuses_unfinished_runs_and_unknown_types(spark, lake_dir):
    run_dir = hand_run(spark, lake_dir, "r1")
    with pytest.raises(AssetError, match=r"run r1 has no embeddings of \['shop'\] \(it has \['item', 'user'\]\)"):
        publish(spark, lake_dir, node_types=["item", "shop"], build_docs=False)
    os.remove(os.path.join(run_dir, "DONE"))
    with pytest.raises(AssetError, match="training run r1 did not finish"):
        publish(spark, lake_dir, build_docs=False)
    assert statuses(lake_dir) == {}


def test_gate_promotes_then_blocks_a_regression_and_leaves_production(spark, lake_dir):
    hand_run(spark, lake_dir, "r1", evaluation=GOOD)
    publish(spark, lake_dir, config=GATE, promote=True, build_docs=False)
    assert statuses(lake_dir) == {("item_embeddings", 1): "production", ("user_embeddings", 1): "production"}
    gate = lifecycle.list_assets(lake_dir, "item_embeddings")[0]["gate"]
    assert gate["success"] and gate["figures"]["missing_keys"] == 0
    assert gate["figures"]["category_lift"] == pytest.approx(2.5)  # 2 of 2 neighbours vs 2/5 by chance
    hand_run(spark, lake_dir, "r2", evaluation={"recall@20": 0.15, "ndcg@20": 0.099})
    publish(spark, lake_dir, config=GATE, build_docs=False)
    with pytest.raises(GateFailedError, match=r"(?s)item_embeddings v2 was not promoted.*ratio_recall@20.*0\.75"):
        promote(spark, lake_dir, "item_embeddings", 2, GATE, build_docs=False)
    assert statuses(lake_dir)[("item_embeddings", 1)] == "production"
    assert statuses(lake_dir)[("item_embeddings", 2)] == "candidate"
    v2 = [r for r in lifecycle.list_assets(lake_dir, "item_embeddings") if r["version"] == 2][0]
    assert v2["gate"]["success"] is False and v2["note"] == "gate failed"
    # a looser tolerance lets it through
    promote(spark, lake_dir, "item_embeddings", 2, AssetConfig(nn_k=2, max_regression=0.3), build_docs=False)
    assert statuses(lake_dir)[("item_embeddings", 1)] == "candidate"
    assert statuses(lake_dir)[("item_embeddings", 2)] == "production"


def test_gate_rejects_nan_and_category_blind_embeddings(spark, lake_dir):
    bad = {**ITEM_VECTORS, "i1": [float("nan"), 0.0]}
    hand_run(spark, lake_dir, "nan", vectors={"user": USER_VECTORS, "item": bad})
    publish(spark, lake_dir, node_types=["item"], config=GATE, build_docs=False)
    with pytest.raises(GateFailedError, match="non_finite"):
        promote(spark, lake_dir, "item_embeddings", 1, GATE, build_docs=False)
    # category-blind: each item's neighbours are in the other category
    blind = {"i1": [1, 0], "i2": [0, 1], "i3": [-1, 0], "i4": [.95, .05], "i5": [.05, .95], "i6": [-.95, -.05]}
    hand_run(spark, lake_dir, "blind", vectors={"user": USER_VECTORS, "item": blind})
    publish(spark, lake_dir, run_id="blind", node_types=["item"], config=GATE, build_docs=False)
    with pytest.raises(GateFailedError, match="category_lift"):
        promote(spark, lake_dir, "item_embeddings", 2, GATE, build_docs=False)
    assert all(s == "candidate" for s in statuses(lake_dir).values())


def test_rollback_retire_and_vacuum(spark, lake_dir):
    from graphlake.app.cli import main

    hand_run(spark, lake_dir, "r1", evaluation=GOOD)
    publish(spark, lake_dir, node_types=["item"], config=WITH_OUTPUTS, promote=True, build_docs=False)
    hand_run(spark, lake_dir, "r2", vectors={"user": USER_VECTORS, "item": {k: [2 * x for x in v]
                                                                        for k, v in ITEM_VECTORS.items()}},
             evaluation={"recall@20": 0.25, "ndcg@20": 0.12})
    publish(spark, lake_dir, node_types=["item"], config=WITH_OUTPUTS, promote=True, build_docs=False)
    assert statuses(lake_dir) == {("item_embeddings", 1): "candidate", ("item_embeddings", 2): "production"}
    assert rollback(spark, lake_dir, "item_embeddings") == {"asset": "item_embeddings", "from": 2, "to": 1}
    assert statuses(lake_dir) == {("item_embeddings", 1): "production", ("item_embeddings", 2): "candidate"}
    assert read_asset(spark, lake_dir, "item_embeddings").first()["asset_version"] == 1
    with pytest.raises(AssetError, match="no earlier production version to roll back to"):
        rollback(spark, lake_dir, "item_embeddings")
    with pytest.raises(AssetError, match="item_embeddings v1 is production"):
        lifecycle.retire(spark, lake_dir, "item_embeddings", 1)
    assert main(["assets", "retire", "--lake", lake_dir, "--asset", "item_embeddings", "--version", "2"]) == 0
    assert read_asset(spark, lake_dir, "item_embeddings", version=2).count() == 6  # retired: still readable
    similar = tables.table_path(lake_dir, tables.ASSETS_SIMILAR_ITEMS)  # 5 neighbours of each of 6 items
    assert {r[0]: r[1] for r in lake.read_table(spark, similar).groupBy("asset_version").count().collect()} == {
        1: 30, 2: 30}
    assert lifecycle.vacuum(spark, lake_dir, "item_embeddings") == [2]
    assert {r[0]: r[1] for r in lake.read_table(spark, similar).groupBy("asset_version").count().collect()} == {1: 30}
    with pytest.raises(AssetNotFoundError, match="v2 was retired and vacuumed"):
        read_asset(spark, lake_dir, "item_embeddings", version=2)
    assert not os.path.exists(lifecycle.list_assets(lake_dir, "item_embeddings")[1]["files"])
    assert_same_rows(read_asset(spark, lake_dir, "item_embeddings"),
                     expected_rows(spark, lake_dir, "item", ITEM_VECTORS, 1))
    actions = [h["action"] for h in lifecycle.registry_history(lake_dir)]
    assert actions == ["vacuum", "retire", "rollback", "promote", "publish", "publish-claim", "promote", "publish",
                       "publish-claim"]


def test_concurrent_publish_one_wins_the_other_writes_nothing(spark, lake_dir, monkeypatch):
    """Publisher A reads the registry; publisher B publishes completely; A's claim must then fail."""
    hand_run(spark, lake_dir, "a")
    hand_run(spark, lake_dir, "b", vectors={"user": USER_VECTORS, "item": {k: [3 * x for x in v]
                                                                       for k, v in ITEM_VECTORS.items()}})
    real_read = publish_mod.read_registry

    def read_then_let_b_publish(lake, version=None):
        seen = real_read(lake, version)
        monkeypatch.setattr(publish_mod, "read_registry", real_read)
        publish(spark, lake_dir, run_id="b", node_types=["item"], config=GATE, build_docs=False)
        return seen

    monkeypatch.setattr(publish_mod, "read_registry", read_then_let_b_publish)
    with pytest.raises(PublishConflictError, match="another publish .* changed the assets registry.*nothing was written"):
        publish(spark, lake_dir, run_id="a", node_types=["item"], config=GATE, build_docs=False)
    rows, _ = read_registry(lake_dir)
    assert [(r["asset"], r["version"], r["run_id"], r["status"]) for r in rows] == [
        ("item_embeddings", 1, "b", "candidate")]
    got = read_asset(spark, lake_dir, "item_embeddings", version=1)
    assert_same_rows(got, expected_rows(spark, lake_dir, "item", {k: [3 * x for x in v]
                                                                   for k, v in ITEM_VECTORS.items()}, 1))
    assert os.listdir(os.path.join(lake_dir, "assets", "files", "item_embeddings")) == ["v1"]
    # A simply publishes again and gets the next version
    assert publish(spark, lake_dir, run_id="a", node_types=["item"], config=GATE,
                   build_docs=False)["assets"]["item_embeddings"]["version"] == 2


def test_assets_cli_lists_and_shows(spark, lake_dir, capsys):
    from graphlake.app.cli import main

    hand_run(spark, lake_dir, "r1", evaluation=GOOD)
    assert main(["publish", "--lake", lake_dir, "--json", "--node-types", "item"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["assets"]["item_embeddings"]["version"] == 1
    assert main(["assets", "list", "--lake", lake_dir]) == 0
    assert "item_embeddings    v1   candidate" in capsys.readouterr().out
    assert main(["assets", "show", "--lake", lake_dir, "--asset", "item_embeddings", "--version", "production"]) == 2
    assert "item_embeddings has no production version yet" in capsys.readouterr().err
    assert main(["assets", "rollback", "--lake", lake_dir, "--asset", "item_embeddings"]) == 1
    assert "has no production version to roll back from" in capsys.readouterr().err


def test_a_snapshot_another_job_publishes_meanwhile_is_reused(spark, tiny_graph, tmp_path, monkeypatch):
    """Two jobs exporting the same missing snapshot at once: the one that finishes second reads the
    first one's (same graph version) instead of failing, and leaves no temporary folder behind.
    (A graph-export test, kept here beside the built tiny graph this module already uses.)"""
    from graphlake.graph_build import snapshot as snapshot_mod
    from graphlake.graph_build.export import export_graph

    lake_dir = str(tmp_path / "lake")
    shutil.copytree(tiny_graph, lake_dir)
    out_dir = str(tmp_path / "snap")
    real_publish = snapshot_mod._publish

    def other_job_publishes_first(tmp, out, overwrite):
        shutil.copytree(tmp, out)  # the other job's snapshot lands between this job's check and its rename
        real_publish(tmp, out, overwrite)

    monkeypatch.setattr(snapshot_mod, "_publish", other_job_publishes_first)
    summary = export_graph(spark, lake_dir, out_dir=out_dir)
    assert summary["reused"] and summary["path"] == out_dir and summary["graph_version"] == 0
    assert sorted(os.listdir(tmp_path)) == ["lake", "snap"]  # this job's temporary folder is gone
    assert snapshot_mod.open_snapshot(out_dir).graph_version == 0 and summary["edge_types"]

    monkeypatch.undo()
    tmp = tmp_path / "snap.tmp-x"
    tmp.mkdir()
    with pytest.raises(FileExistsError, match="snap appeared while the snapshot was written"):
        snapshot_mod._publish(str(tmp), out_dir, False)  # what export_graph caught above
