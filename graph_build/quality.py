"""Great Expectations suites of a graph version.

Every table is reduced by ONE Spark aggregate to a row of metrics (rows, distinct ids, dangling
endpoints, duplicate pairs, bad weights, wrong feature sizes, NaNs ...); the aggregates of one
kind of table (id maps, nodes, edges) are collected in one Spark job. The rows form a small
pandas frame, one row per table, with a ``fail_<check>`` column per check: NULL when the check
passed, else a message naming the table and what is wrong. GE validates those frames
(``ExpectColumnValuesToBeNull`` per check) on the driver, so a failure in the summary and in the
Data Docs reads e.g. ``graph/edges_user__click__item: 3 edges whose dst_id is not in the item id
map (0..99)``. Each table is scanned once whatever the number of checks, and GE adds no Spark
job, which keeps the gate cheap at 50M edges.

Checks:

* id maps: node ids unique, min 0, max rows-1 (contiguous from 0); keys unique and non-null;
  rows equal the count the build committed.
* nodes: one row per id of the map (same ids 0..n-1, unique).
* edges: no dangling endpoint (``0 <= src_id < nodes(src type)``, same for dst: given the
  contiguity check above this is exactly "the id is in the id map", without a join), no
  duplicate ``(src_id, dst_id)``, weights finite and > 0, count >= 1, first_ts <= last_ts, rows
  equal the committed count.
* features: one row per node id; every array column has the declared dimension (or one common
  size when none is declared), float arrays hold no NaN or infinity.

Example:
    >>> batches = graph_suites(id_maps={"user": m}, nodes={}, edges={}, features={},
    ...                        node_counts={"user": 3})
    >>> run_suites(batches, lake="lakehouse")["success"]
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce

import great_expectations as gx
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from graphlake.core import tables
from graphlake.core.edge_types import parse_edge_type
from graphlake.core.quality import Suite
from graphlake.graph_build import schema as G

E = gx.expectations
TABLE = "table"
_INF = float("inf")


def _n(value) -> int:
    return int(value or 0)


def _bad(cond) -> F.Column:
    """1 where ``cond`` is not true (false or NULL), else 0, summed."""
    return F.sum(F.when(cond, 0).otherwise(1))


def _frame(rows: list[dict], metrics: list[str], checks: list[str]) -> pd.DataFrame:
    """The metric rows as a small pandas frame: GE validates it on the driver, without Spark jobs."""
    columns = [TABLE, *metrics, *checks]
    return pd.DataFrame([[r.get(c) for c in columns] for r in rows], columns=columns, dtype=object)


def _suite(name: str, n_tables: int, checks: list[str]) -> Suite:
    return Suite(name, (E.ExpectColumnValuesToNotBeNull(column=TABLE), E.ExpectTableRowCountToEqual(value=n_tables))
                 + tuple(E.ExpectColumnValuesToBeNull(column=c) for c in checks))


def _contiguity_failure(table: str, m: dict) -> str | None:
    rows = _n(m["rows"])
    if rows == 0:
        return None
    if _n(m["null_ids"]) or _n(m["distinct_ids"]) != rows or m["min_id"] != 0 or m["max_id"] != rows - 1:
        return (f"{table}: node ids are not exactly 0..{rows - 1} (rows {rows}, distinct {m['distinct_ids']}, "
                f"min {m['min_id']}, max {m['max_id']}, null {_n(m['null_ids'])})")
    return None


def _rows_failure(table: str, rows: int, expected) -> str | None:
    if expected is not None and rows != int(expected):
        return f"{table}: {rows} rows, the build committed {int(expected)}"
    return None


def _union(parts: list[DataFrame]) -> DataFrame:
    return reduce(DataFrame.unionByName, parts)


def _by_table(df: DataFrame, tables_: list[str], defaults: dict) -> list[dict]:
    """Collect a per-table metrics frame; tables without rows (empty tables) get ``defaults``."""
    got = {r[TABLE]: r.asDict() for r in df.collect()}
    return [got.get(t, {TABLE: t, **defaults}) for t in tables_]


def _id_metrics(frames: Mapping[str, DataFrame], with_keys: bool) -> list[dict]:
    """rows, distinct/min/max/null node ids (and distinct/null keys) of several tables at once:
    one group-by per column over the union of the tables, whatever their number."""
    if not frames:
        return []
    cols = [G.NODE_ID, G.KEY] if with_keys else [G.NODE_ID]
    u = _union([df.select(F.lit(t).alias(TABLE), *cols) for t, df in frames.items()])
    per_id = u.groupBy(TABLE, G.NODE_ID).agg(F.count(F.lit(1)).alias("n")).groupBy(TABLE).agg(
        F.sum("n").alias("rows"), F.count(G.NODE_ID).alias("distinct_ids"), F.min(G.NODE_ID).alias("min_id"),
        F.max(G.NODE_ID).alias("max_id"), F.sum(F.when(F.col(G.NODE_ID).isNull(), F.col("n"))).alias("null_ids"))
    if with_keys:
        per_key = u.groupBy(TABLE, G.KEY).agg(F.count(F.lit(1)).alias("n")).groupBy(TABLE).agg(
            F.count(G.KEY).alias("distinct_keys"), F.sum(F.when(F.col(G.KEY).isNull(), F.col("n"))).alias("null_keys"))
        per_id = per_id.join(per_key, TABLE)
    zero = {"rows": 0, "distinct_ids": 0, "min_id": None, "max_id": None, "null_ids": 0}
    return _by_table(per_id, list(frames), {**zero, **({"distinct_keys": 0, "null_keys": 0} if with_keys else {})})


def _id_map_checks(m: dict, expected_rows: int | None) -> dict:
    table, rows = m[TABLE], _n(m["rows"])
    keys_bad = _n(m["null_keys"]) or _n(m["distinct_keys"]) != rows
    return {**m, "fail_ids_contiguous": _contiguity_failure(table, m),
            "fail_keys_unique": f"{table}: {rows} rows but {m['distinct_keys']} distinct non-null keys "
                                f"({_n(m['null_keys'])} null)" if keys_bad else None,
            "fail_row_count": _rows_failure(table, rows, expected_rows)}


def id_map_metrics(table: str, df: DataFrame, expected_rows: int | None) -> dict:
    """Metrics and failures of one ``graph/id_map_<type>``."""
    return _id_map_checks(_id_metrics({table: df}, with_keys=True)[0], expected_rows)


def _node_checks(m: dict, n_nodes: int) -> dict:
    return {**m, "fail_ids_contiguous": _contiguity_failure(m[TABLE], m),
            "fail_row_count": _rows_failure(m[TABLE], _n(m["rows"]), n_nodes)}


def node_metrics(table: str, df: DataFrame, n_nodes: int) -> dict:
    """Metrics and failures of one ``graph/nodes_<type>``: exactly the ids 0..n_nodes-1."""
    return _node_checks(_id_metrics({table: df}, with_keys=False)[0], n_nodes)


_EDGE_FLAGS = ("dangling_src", "dangling_dst", "bad_weights", "bad_counts", "bad_ts")


def _edge_metrics(frames: Mapping[str, tuple[DataFrame, int, int]]) -> list[dict]:
    """Edge metrics of several tables ``{table: (df, n_src, n_dst)}``: per-row flags, then one
    group-by on (table, src_id, dst_id) over the union (rows per pair -> duplicates)."""
    if not frames:
        return []
    parts = []
    for table, (df, n_src, n_dst) in frames.items():
        src, dst, w = F.col(G.SRC_ID), F.col(G.DST_ID), F.col(G.WEIGHT)
        flags = {"dangling_src": (src >= 0) & (src < n_src), "dangling_dst": (dst >= 0) & (dst < n_dst),
                 "bad_weights": (w > 0) & (w < F.lit(_INF)), "bad_counts": F.col(G.COUNT) >= 1,
                 "bad_ts": F.coalesce(F.col(G.FIRST_TS) <= F.col(G.LAST_TS), F.lit(True))}
        parts.append(df.select(F.lit(table).alias(TABLE), src, dst,
                               *[F.when(ok, 0).otherwise(1).alias(name) for name, ok in flags.items()]))
    per_pair = _union(parts).groupBy(TABLE, G.SRC_ID, G.DST_ID).agg(
        F.count(F.lit(1)).alias("n"), *[F.sum(f).alias(f) for f in _EDGE_FLAGS])
    per_table = per_pair.groupBy(TABLE).agg(F.sum("n").alias("rows"), F.count(F.lit(1)).alias("distinct_pairs"),
                                            *[F.sum(f).alias(f) for f in _EDGE_FLAGS])
    return _by_table(per_table, list(frames), {"rows": 0, "distinct_pairs": 0, **{f: 0 for f in _EDGE_FLAGS}})


def _edge_checks(m: dict, n_src: int, n_dst: int, src_type: str, dst_type: str, expected_rows: int | None) -> dict:
    table, rows = m[TABLE], _n(m["rows"])
    dup = rows - _n(m["distinct_pairs"])

    def fail(n, text):
        return f"{table}: {n} {text}" if _n(n) else None

    return {**m,
            "fail_dangling_src": fail(m["dangling_src"],
                                      f"edges whose src_id is not in the {src_type} id map (0..{n_src - 1})"),
            "fail_dangling_dst": fail(m["dangling_dst"],
                                      f"edges whose dst_id is not in the {dst_type} id map (0..{n_dst - 1})"),
            "fail_duplicate_pairs": fail(dup, "duplicate (src_id, dst_id) rows"),
            "fail_weights": fail(m["bad_weights"], "edges with a weight that is not finite and > 0"),
            "fail_counts": fail(m["bad_counts"], "edges with count < 1"),
            "fail_timestamps": fail(m["bad_ts"], "edges with first_ts > last_ts"),
            "fail_row_count": _rows_failure(table, rows, expected_rows)}


def edge_metrics(table: str, df: DataFrame, n_src: int, n_dst: int, src_type: str, dst_type: str,
                 expected_rows: int | None) -> dict:
    """Metrics and failures of one edge table."""
    return _edge_checks(_edge_metrics({table: (df, n_src, n_dst)})[0], n_src, n_dst, src_type, dst_type,
                        expected_rows)


def _float_array(dtype) -> bool:
    return isinstance(dtype, T.ArrayType) and isinstance(dtype.elementType, (T.FloatType, T.DoubleType))


def feature_metrics(table: str, df: DataFrame, n_nodes: int, dims: Mapping[str, int | None] | None = None) -> dict:
    """Metrics and failures of one features table.

    Args:
        table: name used in messages, e.g. ``graph/features_item``.
        df: the features (``node_id`` plus array columns, see ``FEATURES_SCHEMA``).
        n_nodes: node count of the type: node ids must be exactly ``0..n_nodes-1``.
        dims: declared sizes per array column, e.g. ``{"text": 384}``; a column not named (or
            named with ``None``) must have one common size over its non-NULL rows.

    Returns:
        dict with the metrics and ``fail_*`` messages (``None`` when the check passed).
    """
    dims = dict(dims or {})
    if not isinstance(n_nodes, int) or n_nodes < 0:
        raise ValueError(f"n_nodes: expected a non-negative int, got {n_nodes!r}")
    unknown = [c for c in dims if c not in df.columns]
    if unknown:
        raise ValueError(f"dims: columns {unknown} are not in the features DataFrame (columns: {df.columns})")
    arrays = [f for f in df.schema.fields if isinstance(f.dataType, T.ArrayType)]
    aggs = [F.count(F.lit(1)).alias("rows"), F.count_distinct(G.NODE_ID).alias("distinct_ids"),
            F.min(G.NODE_ID).alias("min_id"), F.max(G.NODE_ID).alias("max_id"),
            F.sum(F.when(F.col(G.NODE_ID).isNull(), 1).otherwise(0)).alias("null_ids")]
    for f in arrays:
        c, size = F.col(f.name), F.size(F.col(f.name))
        if dims.get(f.name) is not None:
            wrong = c.isNotNull() & (size != int(dims[f.name]))
            aggs.append(F.sum(F.when(wrong, 1).otherwise(0)).alias(f"wrongdim_{f.name}"))
        else:
            aggs.append(F.min(F.when(c.isNotNull(), size)).alias(f"mindim_{f.name}"))
            aggs.append(F.max(F.when(c.isNotNull(), size)).alias(f"maxdim_{f.name}"))
        if _float_array(f.dataType):
            bad = F.exists(c, lambda x: F.isnan(x) | (F.abs(x) == F.lit(_INF)))
            aggs.append(F.sum(F.when(c.isNotNull() & bad, 1).otherwise(0)).alias(f"nan_{f.name}"))
    m = df.agg(*aggs).first().asDict()
    dim_problems, nan_problems = [], []
    for f in arrays:
        if dims.get(f.name) is not None and _n(m[f"wrongdim_{f.name}"]):
            dim_problems.append(f"{m[f'wrongdim_{f.name}']} rows of {f.name} are not of size {dims[f.name]}")
        elif dims.get(f.name) is None and m[f"mindim_{f.name}"] != m[f"maxdim_{f.name}"]:
            dim_problems.append(f"{f.name} sizes vary from {m[f'mindim_{f.name}']} to {m[f'maxdim_{f.name}']}")
        if _float_array(f.dataType) and _n(m[f"nan_{f.name}"]):
            nan_problems.append(f"{m[f'nan_{f.name}']} rows of {f.name} hold NaN or infinity")
    return {TABLE: table, "rows": m["rows"], "distinct_ids": m["distinct_ids"], "min_id": m["min_id"],
            "max_id": m["max_id"],
            "fail_ids_contiguous": _contiguity_failure(table, m),
            "fail_row_count": _rows_failure(table, _n(m["rows"]), n_nodes),
            "fail_dimensions": f"{table}: " + "; ".join(dim_problems) if dim_problems else None,
            "fail_nan": f"{table}: " + "; ".join(nan_problems) if nan_problems else None}


_ID_METRICS = ["rows", "distinct_ids", "min_id", "max_id", "null_ids"]
_KINDS = {
    "graph.id_maps": (_ID_METRICS + ["distinct_keys", "null_keys"],
                      ["fail_ids_contiguous", "fail_keys_unique", "fail_row_count"]),
    "graph.nodes": (_ID_METRICS, ["fail_ids_contiguous", "fail_row_count"]),
    "graph.edges": (["rows", "dangling_src", "dangling_dst", "distinct_pairs", "bad_weights", "bad_counts", "bad_ts"],
                    ["fail_dangling_src", "fail_dangling_dst", "fail_duplicate_pairs", "fail_weights", "fail_counts",
                     "fail_timestamps", "fail_row_count"]),
    "graph.features": (["rows", "distinct_ids", "min_id", "max_id"],
                       ["fail_ids_contiguous", "fail_row_count", "fail_dimensions", "fail_nan"]),
}


def feature_suite(node_type: str, df: DataFrame, n_nodes: int,
                  dims: Mapping[str, int | None] | None = None) -> tuple[Suite, pd.DataFrame]:
    """``(Suite, DataFrame)`` for :func:`graphlake.core.quality.run_suites` checking one features table."""
    metrics, checks = _KINDS["graph.features"]
    row = feature_metrics(tables.features(node_type), df, n_nodes, dims)
    return _suite(f"graph.features_{node_type}", 1, checks), _frame([row], metrics, checks)


def graph_suites(id_maps: Mapping[str, DataFrame], nodes: Mapping[str, DataFrame],
                 edges: Mapping[str, DataFrame], features: Mapping[str, DataFrame],
                 node_counts: Mapping[str, int], edge_counts: Mapping[str, int] | None = None,
                 feature_dims: Mapping[str, int | None] | None = None) -> list[tuple[Suite, pd.DataFrame]]:
    """The graph's ``(Suite, DataFrame)`` batches for :func:`graphlake.core.quality.run_suites`.

    Args:
        id_maps, nodes, features: ``{node type: DataFrame}``.
        edges: ``{"<src>__<rel>__<dst>": DataFrame}`` (edge schema).
        node_counts: ``{node type: nodes}`` the build committed (id map rows); every node type of
            ``id_maps`` and every edge endpoint type must be in it.
        edge_counts: ``{edge type: rows}`` the build committed (checked when given).
        feature_dims: declared array sizes of the feature tables, e.g. ``{"text": 384}``.

    Returns:
        one batch per non-empty kind: ``graph.id_maps``, ``graph.nodes``, ``graph.edges``,
        ``graph.features``, each a one-row-per-table frame of metrics and ``fail_*`` columns.
    """
    edge_counts = dict(edge_counts or {})
    missing = sorted({t for t in id_maps if t not in node_counts})
    for name in edges:
        src, _rel, dst = parse_edge_type(name)
        missing += [t for t in (src, dst) if t not in node_counts]
    if missing:
        raise ValueError(f"node_counts: no count for node types {sorted(set(missing))}")
    map_types = {tables.id_map(t): t for t in id_maps}
    node_types = {tables.nodes(t): t for t in nodes}
    edge_types = {tables.edges(*parse_edge_type(name)): parse_edge_type(name) for name in edges}
    edge_frames = {table: (edges[str(e)], node_counts[e.src], node_counts[e.dst])
                   for table, e in edge_types.items()}
    rows = {
        "graph.id_maps": [_id_map_checks(m, node_counts[map_types[m[TABLE]]]) for m in
                          _id_metrics({name: id_maps[t] for name, t in map_types.items()}, with_keys=True)],
        "graph.nodes": [_node_checks(m, node_counts[node_types[m[TABLE]]]) for m in
                        _id_metrics({name: nodes[t] for name, t in node_types.items()}, with_keys=False)],
        "graph.edges": [],
        "graph.features": [feature_metrics(tables.features(t), df, node_counts[t], _dims_for(df, feature_dims))
                           for t, df in sorted(features.items())],
    }
    for m in _edge_metrics(edge_frames):
        src, rel, dst = edge_types[m[TABLE]]
        rows["graph.edges"].append(_edge_checks(m, node_counts[src], node_counts[dst], src, dst,
                                                edge_counts.get(f"{src}__{rel}__{dst}")))
    rows = {kind: sorted(r, key=lambda x: x[TABLE]) for kind, r in rows.items()}
    batches = []
    for kind, kind_rows in rows.items():
        if kind_rows:
            metrics, checks = _KINDS[kind]
            batches.append((_suite(kind, len(kind_rows), checks), _frame(kind_rows, metrics, checks)))
    return batches


def _dims_for(df: DataFrame, feature_dims) -> dict:
    return {c: d for c, d in (feature_dims or {}).items() if c in df.columns}
