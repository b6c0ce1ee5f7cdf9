"""Outputs for readers without Spark: ``assets/recommendations`` and ``assets/similar_items``.

Per published version, ``publish`` (and ``embed-new``) also writes the top ``output_k``
(:class:`~graphlake.assets.config.AssetConfig`, default 20; 0 writes none) answers of
``gl_recommend`` for every user and of ``gl_similar_items`` for every item, as plain Delta tables
in long form (one row per answer, ``rank`` 1..K) partitioned by ``asset_version`` — the version of
``item_embeddings`` they were computed with. DuckDB, polars, delta-rs or a BI tool read them
without Spark; the production version is the ``assets/registry`` row with
``status = 'production'`` (the same Delta table every graphlake reader resolves through, so a
reader that joins on it never sees half a promotion):

.. code-block:: sql

    SELECT r.* FROM delta_scan('lakehouse/assets/recommendations') r
    JOIN delta_scan('lakehouse/assets/registry') p
      ON p.asset = 'item_embeddings' AND p.status = 'production' AND r.asset_version = p.version
    WHERE r.user_key = 'u7' ORDER BY r.rank

The answers are computed by Spark tasks over the user (item) rows — each task opens the version's
files once (:mod:`graphlake.assets.bundle`) and runs the search of the SQL functions
(:mod:`graphlake.assets.search`) — so nothing is collected to the driver; they equal what
``gl_recommend(user_key, K)`` / ``gl_similar_items(item_key, K)`` return for that version.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from graphlake.assets import schema as A
from graphlake.assets import search as R
from graphlake.assets.bundle import open_bundle
from graphlake.assets.registry import asset_table
from graphlake.core import lake, tables

log = logging.getLogger(__name__)

RECOMMENDATIONS, SIMILAR_ITEMS = tables.ASSETS_RECOMMENDATIONS, tables.ASSETS_SIMILAR_ITEMS
# what a task yields: the tables' columns before the version columns added by the driver
_TASK_RECOMMENDATIONS, _TASK_SIMILAR = A.RECOMMENDATIONS_SCHEMA[:4], A.SIMILAR_ITEMS_SCHEMA[:4]
_ARROW_RECOMMENDATIONS, _ARROW_SIMILAR = to_arrow_schema(_TASK_RECOMMENDATIONS), to_arrow_schema(_TASK_SIMILAR)
_USER, _ITEM = A.asset_name("user"), A.asset_name("item")


def _long_batch(schema: pa.Schema, query_keys, top: np.ndarray, scores: np.ndarray, answer_keys) -> pa.RecordBatch:
    """One row per (query, answer): the query key repeated, rank 1..count, the answer key, its score."""
    ok = top >= 0
    counts = ok.sum(axis=1)
    ranks = (np.cumsum(ok, axis=1)[ok]).astype(np.int32)
    return pa.record_batch([pa.array(np.repeat(np.asarray(query_keys, dtype=object), counts), pa.string()),
                            pa.array(ranks, pa.int32()),
                            pa.array(answer_keys[top[ok]], pa.string()),
                            pa.array(scores[ok], pa.float32())], schema=schema)


def _recommend_task(user_dir: str, item_dir: str, k: int):
    def run(batches):
        R.set_threads()
        users, items = open_bundle(user_dir), open_bundle(item_dir)
        history = R.history_of(items)
        for batch in batches:
            rows = batch.column(A.NODE_ID).to_numpy().astype(np.int64)
            top, scores = R.recommend_rows(users, items, rows, np.full(len(rows), k, np.int64), history)
            yield _long_batch(_ARROW_RECOMMENDATIONS, batch.column(A.KEY).to_pylist(), top, scores, items.keys)
    return run


def _similar_task(item_dir: str, k: int):
    def run(batches):
        R.set_threads()
        items = open_bundle(item_dir)
        for batch in batches:
            rows = batch.column(A.NODE_ID).to_numpy().astype(np.int64)
            top, scores = R.similar_rows(items, rows, np.full(len(rows), k, np.int64))
            yield _long_batch(_ARROW_SIMILAR, batch.column(A.KEY).to_pylist(), top, scores, items.keys)
    return run


def _version_rows(spark, lake_dir: str, asset: str, res: dict):
    df = lake.read_table(spark, asset_table(lake_dir, asset), version=res["table_version"])
    return df.filter(F.col(A.ASSET_VERSION) == res["version"]).select(A.KEY, A.NODE_ID)


def _write(df, lake_dir: str, name: str, version: int, run_id: str) -> dict:
    res = lake.write_table(df, tables.table_path(lake_dir, name), mode="overwrite", partition_by=[A.ASSET_VERSION],
                           replace_partitions={A.ASSET_VERSION: [version]},
                           metadata={"graphlake.job": "publish-outputs", "graphlake.run_id": run_id,
                                     "graphlake.asset_version": str(version)})
    log.info("wrote %s asset_version=%d: %d rows", name, version, res.rows_added)
    return {"asset_version": version, "rows": res.rows_added, "table_version": res.version}


def write_outputs(spark, lake_dir: str, results: dict, k: int, run_id: str) -> dict:
    """Write the top-``k`` tables of one publish.

    Args:
        spark: SparkSession.
        lake_dir: lake root.
        results: ``{asset: {"version", "table_version", "files"}}`` of the versions just written
            (publish's / embed-new's results); ``item_embeddings`` is needed for any output,
            ``user_embeddings`` too for the recommendations.
        k: answers per key (1..1000).
        run_id: the training run (commit metadata).

    Returns:
        ``{table name: {"asset_version", "rows", "table_version"}}`` of the tables written.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= R.MAX_K:
        raise ValueError(f"k: expected an int in 1..{R.MAX_K}, got {k!r}")
    item = results.get(_ITEM)
    if item is None:
        return {}
    out, version = {}, int(item["version"])
    items = _version_rows(spark, lake_dir, _ITEM, item)
    similar = items.mapInArrow(_similar_task(item["files"], k), _TASK_SIMILAR) \
        .withColumn(A.ASSET_VERSION, F.lit(version).cast("long"))
    out[SIMILAR_ITEMS] = _write(similar, lake_dir, SIMILAR_ITEMS, version, run_id)
    user = results.get(_USER)
    if user is not None:
        users = _version_rows(spark, lake_dir, _USER, user)
        recs = users.mapInArrow(_recommend_task(user["files"], item["files"], k), _TASK_RECOMMENDATIONS) \
            .withColumn(A.USER_ASSET_VERSION, F.lit(int(user["version"])).cast("long")) \
            .withColumn(A.ASSET_VERSION, F.lit(version).cast("long"))
        out[RECOMMENDATIONS] = _write(recs, lake_dir, RECOMMENDATIONS, version, run_id)
    return out


def drop_outputs(spark, lake_dir: str, versions: list[int], retention_hours: int = 0) -> None:
    """Remove the partitions of ``item_embeddings`` ``versions`` from both tables (vacuum), one
    commit each, then the files no table version within ``retention_hours`` references."""
    for name in (RECOMMENDATIONS, SIMILAR_ITEMS):
        path = tables.table_path(lake_dir, name)
        if versions and lake.table_exists(path):
            empty = lake.read_table(spark, path).limit(0)
            lake.write_table(empty, path, mode="overwrite", replace_partitions={A.ASSET_VERSION: list(versions)},
                             metadata={"graphlake.job": "assets-vacuum", "graphlake.asset_versions": str(versions)})
            lake.vacuum(path, retention_hours=retention_hours, dry_run=False)
