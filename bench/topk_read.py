"""Reading recommendations without Spark: the materialised top-K (``assets/recommendations``) through
DuckDB and polars, against ``gl_recommend`` over Spark, for the same users; prints one JSON line.

On a published lake (``--lake``; ``publish`` writes the top-``output_k`` tables with each version),
the ``item_embeddings`` version ``--version`` (production, latest or N) and the user version of the same run:

* ``users`` user keys are taken from the production version's ``assets/recommendations`` (delta-rs);
* **DuckDB** (the delta extension from the ``duckdb-ext-delta`` package, no download): a fresh
  connection, the rows of that version for those users (``user_key IN`` the list, registered as
  an Arrow table) fetched to Python: ``duckdb_s``;
* **polars**: ``read_delta`` with the partition filter, then the same users: ``polars_s``;
* **Spark**: a local session (``local[2]``; its start is ``spark_start_s``), ``graphlake.udfs.register``,
  then ``SELECT user_key, gl_recommend(user_key, K)`` over the same users collected to the driver:
  ``spark_s`` (the first query of the session: the Python workers load the asset files, as a
  scheduled job's would), then again warm: ``spark_warm_s``.

Every way must return the same rows: DuckDB and polars read the same table (identical), and the
Spark answers must name the same items in the same order for at least 99.9 % of the rows, scores
within 1e-3 (the table was computed in batches, a query alone: float32 sums in another order can
differ in the 4th decimal and swap two near-equal items); ``mismatched_rows`` and
``max_score_diff`` say how far they are. ``ratio``: ``spark_s / duckdb_s``.

Usage:
    .venv/bin/python bench/topk_read.py --lake lakehouse --users 10000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import duckdb
import duckdb_ext
import polars as pl
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from graphlake.assets.registry import open_version  # noqa: E402
from graphlake.core import tables  # noqa: E402


def _compare(a: list, b: list) -> tuple[int, float]:
    """(rows whose user or item differ, the largest score difference of the others)."""
    if len(a) != len(b):
        return max(len(a), len(b)), float("inf")
    keys = [(x[0], x[1]) != (y[0], y[1]) for x, y in zip(a, b)]
    diffs = [abs(float(x[2]) - float(y[2])) for x, y, k in zip(a, b, keys) if not k]
    return sum(keys), max(diffs, default=0.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--version", default="production", help="production, latest or a version number")
    args = parser.parse_args(argv)
    lake = os.path.abspath(args.lake)
    version = int(args.version) if args.version.isdigit() else args.version
    items = open_version(lake, "item_embeddings", version)
    recs_path = tables.table_path(lake, tables.ASSETS_RECOMMENDATIONS)
    this_version = pl.read_delta(recs_path).filter(pl.col("asset_version") == items.version)
    users = sorted(this_version["user_key"].unique().to_list())[: args.users]
    k = int(this_version["rank"].max())
    wanted = pa.table({"user_key": users})

    t = time.perf_counter()
    con = duckdb.connect(config={"extension_directory": f"{duckdb_ext.__path__[0]}/extensions",
                                 "autoinstall_known_extensions": False})
    con.execute("LOAD delta")
    con.register("wanted", wanted)
    via_duckdb = con.sql(f"""
        SELECT r.user_key, r.item_key, r.score FROM delta_scan('{recs_path}') r
        WHERE r.asset_version = {items.version} AND r.user_key IN (SELECT user_key FROM wanted)
        ORDER BY r.user_key, r.rank""").fetchall()
    duckdb_s = time.perf_counter() - t

    t = time.perf_counter()
    df = (pl.read_delta(recs_path).filter(pl.col("asset_version") == items.version,
                                          pl.col("user_key").is_in(users)).sort("user_key", "rank"))
    via_polars = df.select("user_key", "item_key", "score").rows()
    polars_s = time.perf_counter() - t

    from graphlake import udfs
    from graphlake.core.spark import get_spark

    t = time.perf_counter()
    spark = get_spark(master="local[2]", app_name="bench-topk-read", conf={"spark.ui.enabled": "false"})
    spark_start_s = time.perf_counter() - t
    udfs.register(spark, lake=lake, version=items.version if version != "production" else version)
    spark.createDataFrame([(u,) for u in users], "user_key string").createOrReplaceTempView("wanted")
    query = f"SELECT user_key, inline(gl_recommend(user_key, {k})) FROM wanted"
    timings = []
    for _ in range(2):
        t = time.perf_counter()
        rows = spark.sql(query).collect()
        timings.append(time.perf_counter() - t)
    by_user: dict[str, list] = {}
    for r in rows:
        by_user.setdefault(r[0], []).append((r[0], r[1], r[2]))
    via_spark = [p for u in sorted(by_user) for p in by_user[u]]
    spark.stop()

    mismatched, max_diff = _compare(via_duckdb, via_spark)
    if via_duckdb != via_polars or mismatched > 0.001 * len(via_duckdb) or max_diff > 1e-3:
        print(json.dumps({"bench": "topk_read", "error": "the answers differ", "rows": [len(via_duckdb),
                          len(via_polars), len(via_spark)], "mismatched_rows": mismatched, "max_score_diff": max_diff}))
        return 1
    print(json.dumps({"bench": "topk_read", "lake": lake, "item_version": items.version, "users": len(users),
                      "k": k, "rows": len(via_duckdb), "duckdb_s": round(duckdb_s, 3), "polars_s": round(polars_s, 3),
                      "spark_start_s": round(spark_start_s, 2), "spark_s": round(timings[0], 2),
                      "spark_warm_s": round(timings[1], 2), "ratio": round(timings[0] / duckdb_s, 1),
                      "mismatched_rows": mismatched, "max_score_diff": round(max_diff, 6)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
