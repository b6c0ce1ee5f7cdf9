"""Stable, contiguous node ids: ``graph/id_map_<type>`` (key -> node_id).

A rebuild keeps every existing key's id and appends the new keys with ids ``max + 1, max + 2, ...``
in sorted key order, so ids stay contiguous from 0 and never change once assigned.

Scalable assignment without collecting keys on the driver: the new keys are range-partitioned
by key and sorted inside each partition; a row's id is ``base + (rows in earlier partitions) +
(its position inside its partition)``. Only one count per partition reaches the driver. The
ranged frame is materialised once (``localCheckpoint``) so the counts and the positions come from
the same partitioning (range boundaries are sampled and must not be recomputed differently).
:func:`new_ids_by_type` does this for all node types in one pass (range partitioning by
``(type, key)``), which keeps the number of Spark jobs of a build independent of the type count.

Example:
    >>> old = spark.createDataFrame([("u1", 0, 0), ("u3", 1, 0)], "key string, node_id long, added_in long")
    >>> cand = spark.createDataFrame([("u3",), ("u2",), ("u0",)], "key string")
    >>> new_ids(old, cand, graph_version=1).orderBy("node_id").collect()
    [Row(key='u0', node_id=2, added_in=1), Row(key='u2', node_id=3, added_in=1)]
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from graphlake.graph_build import schema as G

_PART, _MONO, _LOCAL, _OFFSET, _TYPE = "_gl_part", "_gl_mono", "_gl_local", "_gl_offset", "_gl_type"
_PART_SHIFT = 33  # monotonically_increasing_id() = (partition index << 33) + row position


def _check_map(name: str, df) -> None:
    if not isinstance(df, DataFrame):
        raise TypeError(f"{name}: expected a DataFrame, got {type(df).__name__}")
    missing = [c for c in (G.KEY, G.NODE_ID) if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: expected columns {G.KEY!r}, {G.NODE_ID!r}; missing {missing} (has {df.columns})")


def candidate_keys(df: DataFrame, column: str, distinct: bool = True) -> DataFrame:
    """Non-empty, trimmed string keys of ``df[column]`` as one column ``key``; distinct unless
    ``distinct=False`` (when the caller deduplicates a union of several sources once)."""
    if not isinstance(df, DataFrame):
        raise TypeError(f"df: expected a DataFrame, got {type(df).__name__}")
    if column not in df.columns:
        raise ValueError(f"column: {column!r} is not a column of df (columns: {df.columns})")
    key = F.trim(F.col(column).cast("string"))
    keys = df.select(key.alias(G.KEY)).filter(F.col(G.KEY).isNotNull() & (F.length(G.KEY) > 0))
    return keys.distinct() if distinct else keys


def _check_version(graph_version) -> None:
    if isinstance(graph_version, bool) or not isinstance(graph_version, int) or graph_version < 0:
        raise ValueError(f"graph_version: expected a non-negative int, got {graph_version!r}")


def new_ids_by_type(existing: Mapping[str, DataFrame | None], candidates: Mapping[str, DataFrame],
                    graph_version: int, bases: Mapping[str, int] | None = None,
                    num_partitions: int | None = None) -> tuple[dict[str, DataFrame], dict[str, int]]:
    """:func:`new_ids` for several node types at once (one range partitioning, one checkpoint).

    Args:
        existing: ``{node type: current id map or None}``.
        candidates: ``{node type: DataFrame(key)}`` of the keys seen in this build.
        graph_version: recorded as ``added_in``.
        bases: ``{node type: first new id}``; default ``max(node_id) + 1`` of ``existing`` (0 when
            none). A caller that knows the map's row count may pass it (ids are contiguous).
        num_partitions: range partitions (default: the session's shuffle partitions).

    Returns:
        ``({node type: DataFrame(key, node_id, added_in) of the new keys}, {node type: new keys})``.
    """
    if not isinstance(candidates, Mapping) or not candidates:
        raise ValueError(f"candidates: expected a non-empty mapping node type -> DataFrame, got {candidates!r}")
    if not isinstance(existing, Mapping):
        raise TypeError(f"existing: expected a mapping node type -> DataFrame or None, got {type(existing).__name__}")
    _check_version(graph_version)
    types = sorted(candidates)
    spark = candidates[types[0]].sparkSession
    parts = num_partitions if num_partitions is not None else int(spark.conf.get("spark.sql.shuffle.partitions"))
    if isinstance(parts, bool) or not isinstance(parts, int) or parts <= 0:
        raise ValueError(f"num_partitions: expected a positive int, got {num_partitions!r}")
    bases = dict(bases or {})
    seen, known = [], []
    for t in types:
        old = existing.get(t)
        if not isinstance(candidates[t], DataFrame) or G.KEY not in candidates[t].columns:
            raise ValueError(f"candidates[{t!r}]: expected a DataFrame with a column {G.KEY!r}")
        seen.append(candidate_keys(candidates[t], G.KEY, distinct=False).select(F.lit(t).alias(_TYPE), G.KEY))
        if old is not None:
            _check_map(f"existing[{t!r}]", old)
            known.append(old.select(F.lit(t).alias(_TYPE), G.KEY))
            if t not in bases:
                top = old.agg(F.max(G.NODE_ID)).first()[0]
                bases[t] = 0 if top is None else int(top) + 1
    keys = reduce(DataFrame.unionByName, seen).distinct()  # one shuffle for every type
    if known:
        keys = keys.join(reduce(DataFrame.unionByName, known), [_TYPE, G.KEY], "left_anti")
    ranged = (
        keys.repartitionByRange(parts, _TYPE, G.KEY)
        .sortWithinPartitions(_TYPE, G.KEY)
        .select(_TYPE, G.KEY, F.spark_partition_id().alias(_PART), F.monotonically_increasing_id().alias(_MONO))
        .withColumn(_LOCAL, F.col(_MONO) - F.shiftleft(F.col(_PART).cast("long"), _PART_SHIFT))
        .drop(_MONO)
        .localCheckpoint(eager=True)
    )
    counts = sorted((int(r[_PART]), r[_TYPE], int(r["n"]))
                    for r in ranged.groupBy(_PART, _TYPE).agg(F.count(F.lit(1)).alias("n")).collect())
    # partitions hold (type, key) ranges in order; inside one, the types come in sorted order
    running = {t: bases.get(t, 0) for t in types}
    offsets, start_in_part = [], {}
    for part, t, n in counts:  # sorted by partition, then type
        before = start_in_part.get(part, 0)
        offsets.append((part, t, running[t] - before))
        start_in_part[part] = before + n
        running[t] += n
    offset_df = _literal_rows(spark, offsets)
    assigned = ranged.join(F.broadcast(offset_df), [_PART, _TYPE]).select(
        F.col(_TYPE), F.col(G.KEY), (F.col(_OFFSET) + F.col(_LOCAL)).cast("long").alias(G.NODE_ID),
        F.lit(graph_version).cast("long").alias(G.ADDED_IN))
    fresh = {t: assigned.filter(F.col(_TYPE) == t).drop(_TYPE) for t in types}
    return fresh, {t: running[t] - bases.get(t, 0) for t in types}


def _literal_rows(spark, offsets: list[tuple[int, str, int]]) -> DataFrame:
    """``(part, type, offset)`` rows as a DataFrame built in the JVM (no Python worker job)."""
    cols = ((_PART, "int"), (_TYPE, "string"), (_OFFSET, "long"))
    if not offsets:
        return spark.range(0).select(*[F.lit(None).cast(t).alias(c) for c, t in cols])
    rows = [F.struct(*[F.lit(v).cast(t).alias(c) for v, (c, t) in zip(row, cols)]) for row in offsets]
    return spark.range(1).select(F.inline(F.array(*rows)))


def new_ids(existing: DataFrame | None, candidates: DataFrame, graph_version: int,
            num_partitions: int | None = None) -> DataFrame:
    """Ids for the candidate keys that ``existing`` does not have yet.

    Args:
        existing: the current id map (``key``, ``node_id``, ...) or ``None`` on the first build.
        candidates: keys seen in this build, one column ``key`` (duplicates, nulls and empty
            strings are ignored).
        graph_version: recorded as ``added_in`` of the new rows.
        num_partitions: range partitions for the assignment (default: the session's shuffle
            partitions).

    Returns:
        DataFrame ``(key, node_id, added_in)`` of the new keys only (the rows to append), ids
        ``max(existing) + 1 ...`` in ascending key order. Materialised (local checkpoint).
    """
    if existing is not None:
        _check_map("existing", existing)
    if not isinstance(candidates, DataFrame):
        raise TypeError(f"candidates: expected a DataFrame, got {type(candidates).__name__}")
    fresh, _ = new_ids_by_type({"_": existing}, {"_": candidates}, graph_version, num_partitions=num_partitions)
    return fresh["_"]


def assign_ids(existing: DataFrame | None, candidates: DataFrame, graph_version: int,
               num_partitions: int | None = None) -> DataFrame:
    """The full new id map: ``existing`` plus :func:`new_ids` (``key, node_id, added_in``)."""
    fresh = new_ids(existing, candidates, graph_version, num_partitions)
    if existing is None:
        return fresh
    return existing.select(G.KEY, G.NODE_ID, G.ADDED_IN).unionByName(fresh)


def attach_id(df: DataFrame, column: str, id_map: DataFrame, out: str) -> DataFrame:
    """Inner-join ``df[column]`` (a key) with ``id_map``: adds ``out`` = the node id, drops rows
    whose key has no id. ``column`` is kept."""
    _check_map("id_map", id_map)
    if column not in df.columns:
        raise ValueError(f"column: {column!r} is not a column of df (columns: {df.columns})")
    ids = id_map.select(F.col(G.KEY).alias(f"_gl_k_{out}"), F.col(G.NODE_ID).alias(out))
    return df.join(ids, F.col(column) == F.col(f"_gl_k_{out}"), "inner").drop(f"_gl_k_{out}")
