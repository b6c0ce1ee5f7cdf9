"""``graphlake embed-new``: users and items that arrive after the graph version get inductive
embeddings in a new asset version, without retraining (``graphlake.assets.embed_new``).

Runs on a copy of the demo lake (the shared ``demo_run`` fixture: real ETL, graph build, training,
publish and promote) to which one new user and one new item are appended in the clean tables:
the user repeats an existing user's events and also clicks the new item; an existing user buys
the new item, which copies an existing item's catalogue row (same shop, brand, category).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
from pyspark.sql import functions as F

from graphlake.app import cli
from graphlake.assets import schema as A
from graphlake.assets.embed_new import embed_new
from graphlake.assets.registry import AssetError, asset_table, read_registry, resolve
from graphlake.core import lake, tables
from graphlake.etl import schema as S
from tests.conftest import assert_same_rows

NEW_USER, NEW_ITEM = "u_new_embed", "i_new_embed"


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(list(argv))
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def grown_lake(spark, demo_run, tmp_path_factory):
    return grow(spark, demo_run[0], str(tmp_path_factory.mktemp("embed_new") / "lake"))


def grow(spark, source_lake: str, lake_dir: str) -> tuple[str, str]:
    """A copy of ``source_lake`` with a new user and a new item appended to the clean tables."""
    shutil.copytree(source_lake, lake_dir)
    events_path = tables.table_path(lake_dir, tables.CLEAN_EVENTS)
    items_path = tables.table_path(lake_dir, tables.CLEAN_ITEMS)
    events, items = lake.read_table(spark, events_path), lake.read_table(spark, items_path)
    donor_user = events.groupBy(S.USER_ID).count().orderBy(F.desc("count"), S.USER_ID).first()[S.USER_ID]
    donor_item = items.orderBy(S.ITEM_ID).first()[S.ITEM_ID]
    mine = events.filter(F.col(S.USER_ID) == donor_user)
    copied = mine.withColumn(S.USER_ID, F.lit(NEW_USER)).withColumn(S.EVENT_ID, F.concat(F.col(S.EVENT_ID), F.lit("n")))
    clicks = mine.limit(1).withColumn(S.USER_ID, F.lit(NEW_USER)).withColumn(S.ITEM_ID, F.lit(NEW_ITEM)) \
        .withColumn(S.EVENT_TYPE, F.lit("click")).withColumn(S.EVENT_ID, F.lit("e_new_click"))
    bought = events.filter(F.col(S.USER_ID) != donor_user).orderBy(S.EVENT_ID).limit(1) \
        .withColumn(S.ITEM_ID, F.lit(NEW_ITEM)).withColumn(S.EVENT_TYPE, F.lit("purchase")) \
        .withColumn(S.EVENT_ID, F.lit("e_new_buy"))
    lake.write_table(copied.unionByName(clicks).unionByName(bought), events_path, mode="append")
    lake.write_table(items.filter(F.col(S.ITEM_ID) == donor_item).withColumn(S.ITEM_ID, F.lit(NEW_ITEM)), items_path,
                     mode="append")
    return lake_dir, donor_user


def _rows(spark, lake_dir: str, asset: str, version: int):
    row = resolve(read_registry(lake_dir)[0], asset, version)
    df = lake.read_table(spark, asset_table(lake_dir, asset), version=row["table_version"])
    return row, df.filter(F.col(A.ASSET_VERSION) == version).drop(A.ASSET_VERSION)


def test_nothing_new_is_a_clear_error(spark, demo_run):
    with pytest.raises(AssetError, match=r"no new \['item', 'user'\] keys in the clean tables since graph version 0"):
        embed_new(spark, demo_run[0])


def test_embed_new_appends_inductive_rows_to_new_versions(spark, grown_lake):
    lake_dir, donor_user = grown_lake
    with pytest.raises(AssetError, match=r"max_new_nodes: 2 nodes arrived after graph version 0 .* more than 1"):
        embed_new(spark, lake_dir, max_new_nodes=1)
    assert {r["asset"]: r["version"] for r in read_registry(lake_dir)[0]} == {"item_embeddings": 1,
                                                                              "user_embeddings": 1}
    rc, out = _cli("embed-new", "--lake", lake_dir, "--promote", "--json")
    assert rc == 0, out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["new_nodes"] == {"item": 1, "user": 1}
    assert summary["source_versions"] == {"item_embeddings": 1, "user_embeddings": 1}
    assert summary["new_edges"]["user__click__item"] >= 1 and summary["new_edges"]["user__purchase__item"] >= 1
    for asset, key in (("user_embeddings", NEW_USER), ("item_embeddings", NEW_ITEM)):
        res = summary["assets"][asset]
        assert (res["version"], res["base_version"], res["new_rows"], res["status"]) == (2, 1, 1, "production")
        old_row, old = _rows(spark, lake_dir, asset, 1)
        new_row, new = _rows(spark, lake_dir, asset, 2)
        assert new_row["base_version"] == 1 and new_row["row_count"] == old_row["row_count"] + 1
        assert_same_rows(new.filter(F.col(A.ORIGIN) == A.ORIGIN_TRAINED), old)  # trained rows untouched
        added = [r.asDict() for r in new.filter(F.col(A.ORIGIN) == A.ORIGIN_INDUCTIVE).collect()]
        assert [(r[A.KEY], r[A.NODE_ID]) for r in added] == [(key, old_row["row_count"])]
        vec = np.asarray(added[0][A.EMBEDDING], np.float32)
        assert vec.shape == (new_row["dim"],) and np.isfinite(vec).all() and np.linalg.norm(vec) > 0
    # the functions find the new keys in the new production versions
    rc, out = _cli("sql", "--lake", lake_dir, "--json",
                   f"SELECT size(gl_embedding('item', '{NEW_ITEM}')) AS d, gl_similar_items('{NEW_ITEM}', 3) AS s, "
                   f"gl_recommend('{NEW_USER}', 5) AS r, gl_score('{NEW_USER}', '{NEW_ITEM}') AS x")
    assert rc == 0, out
    row = json.loads(out.strip().splitlines()[-1])["rows"][0]
    assert row["d"] == summary["assets"]["item_embeddings"]["dim"] and len(row["s"]) == 3 and len(row["r"]) == 5
    assert NEW_ITEM not in [s["item_key"] for s in row["s"]] and np.isfinite(row["x"])

