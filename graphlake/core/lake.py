"""The lake layer: every stage writes and reads its Delta tables through this module.

On the embedded default (no Delta JARs on the JVM) a write is:

1. Spark writes Parquet files in parallel into a hidden staging folder of the table
   (``<table>/_gl_staging/<txn>/``), Hive-style partition folders included;
2. the files are moved into the table's partition folders (a rename: cheap and atomic on local
   file systems and HDFS), their Parquet footers give per-file statistics;
3. delta-rs (``deltalake``) commits them as ONE Delta transaction against the snapshot the job
   read. Until that commit no reader sees them; if the commit fails they are deleted, and files
   of a killed writer are removed by :func:`cleanup`.

When the Spark session runs Delta's own extension (a cluster with the delta-spark JARs) the same
calls use ``format("delta")`` natively.

Example:
    >>> from graphlake.core import lake
    >>> v = lake.write_table(df, "lakehouse/clean/events", mode="overwrite",
    ...                      partition_by=["dt"], replace_partitions={"dt": ["2024-01-01"]})
    >>> events = lake.read_table(spark, "lakehouse/clean/events", version=v)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from graphlake.core.errors import InputNotFoundError
from graphlake.core.spark import has_native_delta

STAGING_DIR = "_gl_staging"
DELTA_LOG_DIR = "_delta_log"
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_MODES = ("append", "overwrite")
_STRING_STAT_MAX = 32
_UNSUPPORTED_READER_FEATURES = ("deletionVectors", "columnMapping")


class LakeError(RuntimeError):
    """A lake operation failed; the table is unchanged."""


class TableNotFoundError(LakeError, InputNotFoundError):
    """The path holds no Delta table (or not the requested version): the caller named a table or a
    lake that is not there (exit 2 on the CLI)."""


class SchemaMismatchError(LakeError, ValueError):
    """The incoming DataFrame does not match the table's schema; nothing was committed."""


class CommitConflictError(LakeError):
    """Another writer committed since this job read the table; nothing was committed."""


@dataclass(frozen=True)
class WriteResult:
    """What one commit did: table version, files and rows added."""

    path: str
    version: int
    files_added: int
    rows_added: int


# ------------------------------------------------------------------------------------ reading


def table_exists(path: str) -> bool:
    """True when ``path`` holds a Delta table."""
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(_uri(path))


def table_version(path: str) -> int | None:
    """Latest committed version of the table at ``path``, or ``None`` when there is no table."""
    if not table_exists(path):
        return None
    return _load(path).version()


def _load(path: str, version: int | None = None):
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError as _RsNotFound

    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 0):
        raise ValueError(f"version: expected a non-negative int, got {version!r}")
    try:
        return DeltaTable(_uri(path), version=version)
    except _RsNotFound as exc:
        raise TableNotFoundError(f"no Delta table at {path!r}") from exc
    except Exception as exc:  # delta-rs raises a generic error for a missing version
        if version is not None and table_exists(path):
            raise TableNotFoundError(
                f"table {path!r} has no version {version} (latest is {_load(path).version()})"
            ) from exc
        raise


def spark_schema(path: str, version: int | None = None):
    """The table's schema as a Spark ``StructType``."""
    from pyspark.sql.pandas.types import from_arrow_schema

    arrow = pa.schema(_load(path, version).schema().to_arrow())
    return from_arrow_schema(_plain_arrow_schema(arrow))


def read_table(spark, path: str, version: int | None = None):
    """Read version ``version`` (default: latest) of a Delta table as a Spark DataFrame.

    Args:
        spark: the SparkSession.
        path: table folder.
        version: Delta version for time travel; ``None`` reads the latest.

    Returns:
        DataFrame with the table's columns, partition columns included, in the table's order.
    """
    if has_native_delta(spark):
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(path)
    table = _load(path, version)
    _check_reader_features(table, path)
    schema = spark_schema(path, version)
    files = table.file_uris()  # decoded file-system paths
    if not files:
        return spark.createDataFrame([], schema)
    reader = spark.read.schema(schema)
    if table.metadata().partition_columns:
        reader = reader.option("basePath", os.path.abspath(path))
    return reader.parquet(*files).select(*schema.fieldNames())


def _check_reader_features(table, path: str) -> None:
    features = set(table.protocol().reader_features or [])
    unsupported = sorted(features.intersection(_UNSUPPORTED_READER_FEATURES))
    if unsupported:
        raise LakeError(
            f"table {path!r} uses Delta reader features {unsupported}; read it on a Spark session "
            "with the delta-spark package (spark.jars.packages io.delta:delta-spark_2.13)"
        )


def read_arrow(path: str, version: int | None = None) -> pa.Table:
    """A SMALL table (registries, manifests) read straight into the process, without Spark.

    delta-rs gives the version's data files and their partition values (its Rust log reader);
    ``pyarrow.parquet`` reads the files from the local file system. This deliberately avoids
    delta-rs' own scan (``DeltaTable.to_pyarrow_table`` / ``to_pyarrow_dataset``): that path goes
    through delta-rs' Python file-system bridge and, with deltalake 1.6 and pyarrow 21-26, makes
    the interpreter abort at exit ("terminate called without an active exception", exit 134) in
    most runs of a process that used it, after all its work was done.

    For metadata tables of bounded size only; data tables go through :func:`read_table` (Spark).

    Args:
        path: table folder.
        version: Delta version for time travel; ``None`` reads the latest.

    Returns:
        ``pyarrow.Table`` with the table's columns, partition columns included, in the table's
        order (delta-rs' large/view types mapped to the plain ones, as :func:`read_table` does).

    Example:
        >>> registry = lake.read_arrow("lakehouse/assets/registry").to_pylist()
    """
    table = _load(path, version)
    _check_reader_features(table, path)
    schema = _plain_arrow_schema(pa.schema(table.schema().to_arrow()))
    partition_cols = list(table.metadata().partition_columns)
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return schema.empty_table()
    root = _local_root(path)
    data_cols = [f.name for f in schema if f.name not in partition_cols]
    parts = []
    for i, rel in enumerate(actions.column("path").to_pylist()):
        piece = pq.read_table(_data_file(root, rel), columns=data_cols)
        n = piece.num_rows
        columns = {}
        for field in schema:
            if field.name in partition_cols:
                raw = actions.column(f"partition.{field.name}")[i].as_py()
                value = None if raw is None else str(raw)
                columns[field.name] = pa.array([value] * n, pa.string()).cast(field.type)
            else:
                columns[field.name] = piece.column(field.name).cast(field.type)
        parts.append(pa.table(columns, schema=schema))
    return pa.concat_tables(parts)


def _local_root(path: str) -> str:
    if "://" in path and not path.startswith("file://"):
        raise LakeError(f"read_arrow: {path!r} is not on the local file system; read it with Spark (read_table)")
    return os.path.abspath(path[len("file://"):] if path.startswith("file://") else path)


def _data_file(root: str, rel: str) -> str:
    """The local path of an add action's file (delta-rs gives it URI-encoded, relative or absolute)."""
    if rel.startswith("file://"):
        return unquote(rel[len("file://"):])
    if "://" in rel:
        raise LakeError(f"read_arrow: data file {rel!r} is not on the local file system; read it with Spark")
    rel = unquote(rel)
    return rel if os.path.isabs(rel) else os.path.join(root, rel)


def history(path: str, limit: int | None = None) -> list[dict]:
    """Commit history, newest first: version, timestamp, operation, parameters, custom metadata."""
    if limit is not None and (not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit: expected a positive int or None, got {limit!r}")
    return _load(path).history(limit)


# ------------------------------------------------------------------------------------ writing


def write_table(
    df,
    path: str,
    mode: str = "append",
    partition_by: Sequence[str] | None = None,
    replace_partitions: Mapping[str, Sequence[str]] | None = None,
    read_version: int | None = None,
    overwrite_schema: bool = False,
    metadata: Mapping[str, str] | None = None,
    must_create: bool = False,
) -> WriteResult:
    """Write a Spark DataFrame to a Delta table as ONE atomic commit.

    Args:
        df: the DataFrame to write.
        path: table folder (created on first write).
        mode: ``"append"`` or ``"overwrite"``.
        partition_by: partition columns; must match the table's when it exists.
        replace_partitions: with ``mode="overwrite"``, replace only these partitions, e.g.
            ``{"dt": ["2024-01-01"]}``; every incoming row must fall inside them.
        read_version: the table version the job read. The commit then fails with
            :class:`CommitConflictError` if any other commit landed after it.
        overwrite_schema: with a full overwrite, allow the schema to change.
        metadata: string key/values recorded in the commit (job name, run id, ...).
        must_create: the job read "no table": fail with :class:`CommitConflictError` if a table
            exists (or is created concurrently) at ``path`` (the counterpart of ``read_version``).

    Returns:
        WriteResult with the new table version.

    Raises:
        SchemaMismatchError: a column is missing, extra or of another type than the table's.
        CommitConflictError: a concurrent commit conflicts with this one.
    """
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")
    partition_by = list(partition_by or [])
    if isinstance(partition_by, str) or not all(isinstance(c, str) for c in partition_by):
        raise TypeError(f"partition_by: expected a list of column names, got {partition_by!r}")
    if replace_partitions is not None:
        if mode != "overwrite":
            raise ValueError(f"replace_partitions: only valid with mode='overwrite', got mode={mode!r}")
        if not isinstance(replace_partitions, Mapping) or not replace_partitions:
            raise ValueError(
                f"replace_partitions: expected a non-empty mapping column -> values, got {replace_partitions!r}"
            )
    if overwrite_schema and (mode != "overwrite" or replace_partitions):
        raise ValueError("overwrite_schema: only valid with a full overwrite (mode='overwrite', no replace_partitions)")
    missing = [c for c in partition_by if c not in df.columns]
    if missing:
        raise ValueError(f"partition_by: columns {missing} are not in the DataFrame (columns: {df.columns})")
    if must_create and read_version is not None:
        raise ValueError("must_create: cannot be combined with read_version")
    if must_create and table_exists(path):
        raise CommitConflictError(f"table {path!r} was created by a concurrent writer after this job saw none; "
                                  "nothing was committed")
    spark = df.sparkSession
    if has_native_delta(spark):
        return _write_native(df, path, mode, partition_by, replace_partitions, overwrite_schema)
    return _write_embedded(df, path, mode, partition_by, replace_partitions, read_version, overwrite_schema, metadata)


def _write_embedded(df, path, mode, partition_by, replace_partitions, read_version, overwrite_schema, metadata):
    from deltalake import CommitProperties
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import create_table_with_add_actions

    table = None
    if table_exists(path):
        table = _load(path, read_version)
        table_pcols = list(table.metadata().partition_columns)
        if partition_by and partition_by != table_pcols:
            raise ValueError(
                f"partition_by: table {path!r} is partitioned by {table_pcols}, got {partition_by}"
            )
        partition_by = table_pcols
        if not overwrite_schema:
            check_schema(path, df.schema, table)
    elif read_version is not None:
        raise TableNotFoundError(f"read_version={read_version} given but there is no table at {path!r}")
    if replace_partitions:
        bad = [c for c in replace_partitions if c not in partition_by]
        if bad:
            raise ValueError(f"replace_partitions: {bad} are not partition columns of {path!r} ({partition_by})")
    os.makedirs(path, exist_ok=True)
    txn = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}"
    staging = os.path.join(path, STAGING_DIR, txn)
    moved: list[str] = []
    try:
        writer = df.write.mode("error")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(staging)
        staged = _list_parquet(staging)
        if replace_partitions:
            _check_inside_replaced(staged, staging, replace_partitions)
        moved = _move_into_table(staged, staging, path)
        actions = _add_actions(moved, path)
        schema = _delta_schema(df.schema)
        props = CommitProperties(
            custom_metadata={"graphlake.txn": txn, **{str(k): str(v) for k, v in (metadata or {}).items()}},
            max_commit_retries=0 if read_version is not None else None,
        )
        if table is None:
            create_table_with_add_actions(
                _uri(path), schema, actions, mode="error", partition_by=partition_by or None,
                commit_properties=props,
            )
        else:
            filters = [(c, "in", [str(v) for v in vals]) for c, vals in (replace_partitions or {}).items()]
            table.create_write_transaction(
                actions, mode, schema, partition_by=partition_by or None,
                partition_filters=filters or None, commit_properties=props,
            )
    except CommitFailedError as exc:
        _remove_files(moved)
        raise CommitConflictError(
            f"commit to {path!r} conflicts with a concurrent commit made after version "
            f"{table.version() if table is not None else 'none'} was read; nothing was committed: {exc}"
        ) from exc
    except Exception as exc:
        _remove_files(moved)
        if table is None and "already exists" in str(exc).lower():
            raise CommitConflictError(
                f"table {path!r} was created by a concurrent writer; nothing was committed: {exc}"
            ) from exc
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(staging))  # only when no other writer is staging
        except OSError:
            pass
    committed = _load(path)
    version = _version_of_txn(committed, txn)
    rows = sum(json.loads(a.stats)["numRecords"] for a in actions)
    return WriteResult(path=path, version=version, files_added=len(actions), rows_added=rows)


def _write_native(df, path, mode, partition_by, replace_partitions, overwrite_schema):
    from delta.tables import DeltaTable as SparkDeltaTable

    writer = df.write.format("delta").mode(mode)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace_partitions:
        writer = writer.option("replaceWhere", _replace_where(replace_partitions))
    if overwrite_schema:
        writer = writer.option("overwriteSchema", "true")
    writer.save(path)
    spark = df.sparkSession
    last = SparkDeltaTable.forPath(spark, path).history(1).collect()[0]
    metrics = last["operationMetrics"] or {}
    return WriteResult(path=path, version=int(last["version"]),
                       files_added=int(metrics.get("numFiles", 0)), rows_added=int(metrics.get("numOutputRows", 0)))


def _replace_where(replace_partitions: Mapping[str, Sequence[str]]) -> str:
    """``replaceWhere`` SQL: ```col` IN ('a', 'b') AND ...``, identifiers and literals quoted
    (built as text, not through the JVM, so it also works on a Spark Connect session)."""
    def literal(v) -> str:
        return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " AND ".join(f"`{str(col).replace('`', '``')}` IN ({', '.join(literal(v) for v in vals)})"
                        for col, vals in replace_partitions.items())


def check_schema(path: str, incoming, table=None) -> None:
    """Raise :class:`SchemaMismatchError` when Spark schema ``incoming`` differs from the table's.

    Columns are matched by name; nullability is not compared (Spark's inferred nullability is
    not a property of the data). The error names every mismatched column with both types.
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    table = table or _load(path)
    theirs = from_arrow_schema(_plain_arrow_schema(pa.schema(table.schema().to_arrow())))
    have = {f.name: f.dataType for f in theirs.fields}
    want = {f.name: f.dataType for f in incoming.fields}
    problems = []
    for name, dtype in have.items():
        if name not in want:
            problems.append(f"column '{name}': table has {dtype.simpleString()}, incoming has no such column")
        elif _strip_nullability(want[name]) != _strip_nullability(dtype):
            problems.append(
                f"column '{name}': table has {dtype.simpleString()}, incoming has {want[name].simpleString()}"
            )
    for name, dtype in want.items():
        if name not in have:
            problems.append(f"column '{name}': table has no such column, incoming has {dtype.simpleString()}")
    if problems:
        raise SchemaMismatchError(f"schema mismatch writing {path!r}; nothing was committed: " + "; ".join(problems))


def _strip_nullability(dtype):
    from pyspark.sql import types as T

    if isinstance(dtype, T.StructType):
        return T.StructType([T.StructField(f.name, _strip_nullability(f.dataType), True) for f in dtype.fields])
    if isinstance(dtype, T.ArrayType):
        return T.ArrayType(_strip_nullability(dtype.elementType), True)
    if isinstance(dtype, T.MapType):
        return T.MapType(_strip_nullability(dtype.keyType), _strip_nullability(dtype.valueType), True)
    return dtype


def _plain_arrow_schema(schema: pa.Schema) -> pa.Schema:
    """Map delta-rs' large/view arrow types to the plain ones pyspark converts."""

    def plain(t):
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
            return pa.binary()
        if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_list(t):
            return pa.list_(pa.field(t.value_field.name, plain(t.value_type), True))
        if pa.types.is_struct(t):
            return pa.struct([pa.field(f.name, plain(f.type), f.nullable) for f in t])
        if pa.types.is_map(t):
            return pa.map_(plain(t.key_type), plain(t.item_type))
        if pa.types.is_timestamp(t):
            return pa.timestamp("us", tz=t.tz)
        return t

    return pa.schema([pa.field(f.name, plain(f.type), f.nullable) for f in schema])


def _delta_schema(spark_schema):
    from deltalake import Schema
    from pyspark.sql.pandas.types import to_arrow_schema

    return Schema.from_arrow(to_arrow_schema(spark_schema, timestamp_utc=True))


def _list_parquet(root: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")) or d.startswith("_gl"))
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".parquet"))
    return found


def _partition_values(relative_dir: str) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for part in [p for p in relative_dir.split("/") if p]:
        if "=" not in part:
            raise LakeError(f"unexpected folder {part!r} in a partitioned write (expected col=value)")
        key, value = part.split("=", 1)
        values[unquote(key)] = None if value == HIVE_NULL else unquote(value)
    return values


def _check_inside_replaced(staged, staging, replace_partitions):
    allowed = {c: {str(v) for v in vals} for c, vals in replace_partitions.items()}
    for f in staged:
        values = _partition_values(os.path.dirname(os.path.relpath(f, staging)))
        for col, vals in allowed.items():
            if values.get(col) not in vals:
                raise ValueError(
                    f"replace_partitions: incoming rows have {col}={values.get(col)!r}, outside the "
                    f"partitions being replaced {sorted(vals)}; nothing was committed"
                )


def _move_into_table(staged: list[str], staging: str, table_root: str) -> list[str]:
    moved = []
    try:
        for f in staged:
            rel = os.path.relpath(f, staging)
            target = os.path.join(table_root, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.exists(target):
                raise LakeError(f"refusing to overwrite existing data file {target!r}")
            os.rename(f, target)
            moved.append(target)
    except Exception:
        _remove_files(moved)
        raise
    return moved


def _remove_files(files: Sequence[str]) -> None:
    for f in files:
        try:
            os.remove(f)
        except FileNotFoundError:
            pass


def _add_actions(files: list[str], table_root: str):
    from deltalake.transaction import AddAction

    def one(f):
        rel = os.path.relpath(f, table_root)
        st = os.stat(f)
        return AddAction(
            path=rel,  # delta-rs URI-encodes it in the log
            size=st.st_size,
            partition_values=_partition_values(os.path.dirname(rel)),
            modification_time=int(st.st_mtime * 1000),
            data_change=True,
            stats=json.dumps(_file_stats(f)),
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, files))


def _stat_value(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str) and len(value) > _STRING_STAT_MAX:
        return None
    return value


def _file_stats(f: str) -> dict:
    """Delta per-file statistics from the Parquet footer (top-level primitive columns)."""
    meta = pq.read_metadata(f)
    mins, maxs, nulls = {}, {}, {}
    for i in range(meta.num_columns):
        col = meta.schema.column(i)
        path = col.path.split(".")
        if len(path) != 1:
            continue  # nested / repeated: no stats
        name = path[0]
        null_count, lo, hi, complete = 0, None, None, True
        for rg in range(meta.num_row_groups):
            s = meta.row_group(rg).column(i).statistics
            if s is None:
                complete = False
                break
            null_count += s.null_count or 0
            if s.has_min_max:
                lo = s.min if lo is None else min(lo, s.min)
                hi = s.max if hi is None else max(hi, s.max)
        if not complete:
            continue
        nulls[name] = null_count
        lo, hi = _stat_value(lo), _stat_value(hi)
        if lo is not None and hi is not None:
            mins[name], maxs[name] = lo, hi
    return {"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}


def _version_of_txn(table, txn: str) -> int:
    for entry in table.history(20):
        if entry.get("graphlake.txn") == txn:
            return int(entry["version"])
    return table.version()


# ------------------------------------------------------------------------------------ cleanup


def referenced_files(path: str) -> set[str]:
    """Relative paths of every data file any remaining log entry (or the snapshot) references."""
    refs = {unquote(a) for a in _load(path).get_add_actions(flatten=True).column("path").to_pylist()}
    log = os.path.join(path, DELTA_LOG_DIR)
    for name in os.listdir(log):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(log, name), encoding="utf-8") as fh:
            for line in fh:
                action = json.loads(line)
                for kind in ("add", "remove"):
                    if kind in action:
                        refs.add(unquote(action[kind]["path"]))
    return refs


def cleanup(path: str, older_than_s: float = 3600.0, dry_run: bool = False) -> list[str]:
    """Delete files of failed or killed writes: staging folders and unreferenced data files.

    Only files older than ``older_than_s`` seconds are touched, so a write in flight is safe.
    Committed files, including those of older versions (time travel), are never removed; use
    :func:`vacuum` for those.

    Returns:
        the relative paths removed (or that would be, with ``dry_run``).
    """
    if not isinstance(older_than_s, (int, float)) or older_than_s < 0:
        raise ValueError(f"older_than_s: expected a non-negative number, got {older_than_s!r}")
    if not table_exists(path):
        raise TableNotFoundError(f"no Delta table at {path!r}")
    cutoff = time.time() - older_than_s
    refs = referenced_files(path)
    removed = []
    staging_root = os.path.join(path, STAGING_DIR)
    if os.path.isdir(staging_root):
        for txn in sorted(os.listdir(staging_root)):
            full = os.path.join(staging_root, txn)
            if os.path.getmtime(full) <= cutoff:
                removed.append(os.path.relpath(full, path))
                if not dry_run:
                    shutil.rmtree(full, ignore_errors=True)
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d not in (DELTA_LOG_DIR, STAGING_DIR)]
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, path)
            if not name.endswith(".parquet") or rel in refs or os.path.getmtime(full) > cutoff:
                continue
            removed.append(rel)
            if not dry_run:
                os.remove(full)
    return sorted(removed)


def restore(path: str, version: int) -> int:
    """Make ``version`` the table's content again, as a new commit; returns the new version."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(f"version: expected a non-negative int, got {version!r}")
    table = _load(path)
    table.restore(version)
    return _load(path).version()


def vacuum(path: str, retention_hours: int = 168, dry_run: bool = True) -> list[str]:
    """Remove files no version within ``retention_hours`` references (delta-rs vacuum)."""
    return _load(path).vacuum(retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False)


def _uri(path: str) -> str:
    if "://" in path:
        return path
    return os.path.abspath(path)
