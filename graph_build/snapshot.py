"""Training snapshot of a graph version: per-relation CSR and feature matrices as ``.npy`` files.

A training worker memory-maps only what it touches (:func:`open_snapshot`); nothing is loaded
whole. Layout of ``out_dir``::

    manifest.json                                 graph version, shapes, dtypes, bytes, sha256
    edges/<src>__<rel>__<dst>/indptr.npy          int64   (n_src + 1,)
    edges/<src>__<rel>__<dst>/indices.npy         int32   (nnz,)  int64 when n_dst >= 2**31
    edges/<src>__<rel>__<dst>/weights.npy         float32 (nnz,)
    features/<type>/<column>.npy                  2-D (num_nodes, dim), row i = node_id i

The neighbours of source ``s`` are ``indices[indptr[s]:indptr[s + 1]]``, sorted by ``dst_id``
(rows sorted by ``(src_id, dst_id, weight)``: the bytes are deterministic). Every source id
``0..n_src-1`` has a slot, with or without edges. Feature columns: every numeric/boolean column
and array column of the features table except ``node_id``; floats → float32, integers → int32
(int64 for bigint), booleans → bool; a scalar column is a ``(num_nodes, 1)`` matrix; a null
array or a node without a features row is a row of zeros (``rows_present`` in the manifest).

How it is written: per relation, one Spark job range-partitions the edges on ``src_id`` into P
contiguous ranges; each task streams its sorted rows (Arrow batches, ``mapInArrow``) into raw
chunk files (dst ids, weights, per-source counts) under ``<out_dir>.tmp-<uuid>/_chunks`` and
returns one summary row. The driver then concatenates the chunks into the final ``.npy`` with
streaming copies (16 MiB buffer) and builds ``indptr`` in place in a memory-mapped file (counts
scattered, then a windowed cumulative sum): driver memory stays O(buffer), never O(edges).
Feature matrices go the same way (range on ``node_id``; rows scattered into a zero-filled
memmap). Executors write into the output folder, so on a cluster ``out_dir`` must be on a
filesystem every executor and the driver share (NFS, a FUSE-mounted object store, ...).
Publishing is a rename of the finished ``<out_dir>.tmp-<uuid>`` to ``out_dir``: a failure leaves
no ``out_dir`` (with ``overwrite=True`` the old snapshot is moved aside first, then deleted).

Memory and disk cost (decimal GB; the same on disk and, when fully paged in, in RAM):
per edge 4 B (int32 indices) or 8 B (int64) + 4 B (float32 weight); per source node 8 B (indptr).
1e9 edges ≈ 8 GB with int32 indices (12 GB with int64) + 0.8 GB of indptr per 1e8 sources.
Training also needs the reverse CSR (dst → src), which doubles it: ≈ 16 GB (24 GB) per 1e9
edges. Features: num_nodes × dim × 4 B, e.g. 1e7 items × 384-d text ≈ 15.4 GB. Export needs the
same again as temporary chunk files on disk (peak ≈ 2 × the snapshot).

Example:
    >>> manifest = export_snapshot(spark, edges, features, {"user": 3, "item": 5}, "/data/snap/v7", 7)
    >>> snap = open_snapshot("/data/snap/v7")
    >>> indptr, indices, weights = snap.csr("user__click__item")
    >>> items_of_user_2 = indices[indptr[2]:indptr[3]]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from graphlake.core.edge_types import parse_edge_type
from graphlake.core.spark import check_session, default_parallelism
from graphlake.graph_build import schema as G

log = logging.getLogger(__name__)

FORMAT, FORMAT_VERSION = "graphlake-snapshot", 1
MANIFEST = "manifest.json"
_MARK = "GRAPHLAKE_SNAPSHOT_INVALID: "  # prefix of errors raised in tasks for bad input
_COPY_BUFFER = 16 << 20
_BLOCK = 1 << 22  # elements per block when the driver reads chunk files
_TASK_SCHEMA = "stem string, rows long, first_id long, last_id long, info string"
_DTYPES = {T.FloatType: "<f4", T.DoubleType: "<f4", T.BooleanType: "|b1", T.LongType: "<i8", T.IntegerType: "<i4",
           T.ShortType: "<i4", T.ByteType: "<i4"}  # Spark (array element) type -> output dtype


class _Invalid(ValueError):
    pass


def _task_error(msg: str):
    raise _Invalid(_MARK + msg)


# ---------------------------------------------------------------- .npy helpers
def _write_header(f, dtype, shape) -> None:
    np.lib.format.write_array_header_1_0(
        f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)})


def _concat_npy(path: str, dtype, length: int, chunks: list[str]) -> None:
    """Write a 1-D ``.npy`` whose data are the chunk files' bytes, copied in order."""
    with open(path, "wb") as out:
        _write_header(out, dtype, (length,))
        start = out.tell()
        for chunk in chunks:
            with open(chunk, "rb") as f:
                shutil.copyfileobj(f, out, _COPY_BUFFER)
        written = out.tell() - start
    if written != length * np.dtype(dtype).itemsize:
        raise RuntimeError(f"{path}: wrote {written} bytes, expected {length} x {np.dtype(dtype).itemsize}")


def _zeros_npy(path: str, dtype, shape) -> np.memmap | None:
    """A zero-filled ``.npy`` opened for writing, or None (header only) when it has no elements."""
    if int(np.prod(shape)) == 0:
        with open(path, "wb") as f:
            _write_header(f, dtype, shape)
        return None
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))


def _blocks(path: str, dtype, width: int = 1):
    """Yield a raw chunk file as arrays of at most ``_BLOCK`` rows of ``width`` values."""
    dtype, done = np.dtype(dtype), 0
    total = os.path.getsize(path) // (dtype.itemsize * width)
    while done < total:
        n = min(_BLOCK, total - done)
        block = np.fromfile(path, dtype=dtype, count=n * width, offset=done * dtype.itemsize * width)
        yield block.reshape(n, width) if width > 1 else block
        done += n


def _file_entry(root: str, rel: str, checksums: bool) -> dict:
    path = os.path.join(root, rel)
    arr = np.load(path, mmap_mode="r")
    entry = {"file": rel, "dtype": arr.dtype.name, "shape": list(arr.shape), "bytes": os.path.getsize(path)}
    del arr
    if checksums:
        entry["sha256"] = _sha256(path)
    return entry


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_COPY_BUFFER):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- tasks (run on the executors)
def _stem(chunk_dir: str) -> str:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return os.path.join(chunk_dir, f"part-{ctx.partitionId():05d}-{ctx.attemptNumber()}")


def _ids(batch: pa.RecordBatch, i: int, name: str, upper: int) -> np.ndarray:
    col = batch.column(i)
    if col.null_count:
        _task_error(f"{name}: {col.null_count} null values")
    ids = col.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if len(ids) and (ids.min() < 0 or ids.max() >= upper):
        _task_error(f"{name}: ids [{ids.min()}, {ids.max()}] outside 0..{upper - 1}")
    return ids


def _summary(stem: str, rows: int, first, last, info: dict) -> pa.RecordBatch:
    """The one row a task returns: its chunk files' stem, row count and id range."""
    first, last = (None, None) if first is None else (int(first), int(last))
    return pa.RecordBatch.from_pylist([{"stem": stem, "rows": rows, "first_id": first, "last_id": last,
                                        "info": json.dumps(info)}])


def _edge_task(chunk_dir: str, n_src: int, n_dst: int, index_dtype: str, where: str):
    def run(batches):
        stem, rows, first, last = _stem(chunk_dir), 0, None, None
        with open(stem + ".idx", "wb") as fi, open(stem + ".w", "wb") as fw, open(stem + ".cnt", "wb") as fc:
            for b in batches:
                if b.num_rows == 0:
                    continue
                src = _ids(b, 0, f"{where}: src_id", n_src)
                dst = _ids(b, 1, f"{where}: dst_id", n_dst)
                w = b.column(2).to_numpy(zero_copy_only=False)
                if b.column(2).null_count:
                    _task_error(f"{where}: weight: {b.column(2).null_count} null values")
                starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
                counts = np.diff(np.r_[starts, len(src)])
                np.stack([src[starts], counts], axis=1).astype("<i8").tofile(fc)
                dst.astype(index_dtype).tofile(fi)
                w.astype("<f4").tofile(fw)
                rows, first, last = rows + len(src), src[0] if first is None else first, src[-1]
        yield _summary(stem, rows, first, last, {})
    return run


def _feature_task(chunk_dir: str, num_nodes: int, columns: list[tuple[str, str, bool]], where: str):
    """``columns``: (name, output dtype, is_list); column 0 of each batch is node_id."""
    def run(batches):
        stem, rows, first, last = _stem(chunk_dir), 0, None, -1
        files = {c: (open(f"{stem}.{i}.ids", "wb"), open(f"{stem}.{i}.val", "wb"))
                 for i, (c, _, _) in enumerate(columns)}
        dims = {c: None for c, _, _ in columns}
        present = dict.fromkeys(dims, 0)
        try:
            for b in batches:
                if b.num_rows == 0:
                    continue
                ids = _ids(b, 0, f"{where}: node_id", num_nodes)
                if ids[0] <= last or np.any(ids[1:] <= ids[:-1]):
                    _task_error(f"{where}: duplicate node_id values")
                rows, first, last = rows + len(ids), ids[0] if first is None else first, ids[-1]
                for j, (name, dtype, is_list) in enumerate(columns):
                    arr = b.column(j + 1)
                    valid = arr.is_valid().to_numpy(zero_copy_only=False)
                    if is_list:
                        lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
                        found = set(np.unique(lengths[valid]).tolist()) | ({dims[name]} - {None})
                        if len(found) > 1:
                            _task_error(f"{where}: column {name!r} has arrays of lengths {sorted(found)}")
                        values = arr.flatten()
                    else:
                        values = arr.filter(pa.array(valid))
                    if values.null_count:
                        _task_error(f"{where}: column {name!r} has null elements")
                    if valid.any():
                        dims[name] = int(lengths[valid][0]) if is_list else 1
                    present[name] += int(valid.sum())
                    ids[valid].astype("<i8").tofile(files[name][0])
                    values.to_numpy(zero_copy_only=False).astype(dtype).tofile(files[name][1])
        finally:
            for fi, fv in files.values():
                fi.close()
                fv.close()
        info = {c: {"file": i, "dim": dims[c], "present": present[c]} for i, (c, _, _) in enumerate(columns)}
        yield _summary(stem, rows, first, last, info)
    return run


def _run_tasks(df, partitions: int, task, sort_cols: list[str]) -> list:
    """Range-partition ``df`` on its first column, sort each partition by ``sort_cols`` (a total
    order: deterministic bytes), run ``task`` per partition; the summaries ordered by range."""
    planned = df.repartitionByRange(partitions, df.columns[0]).sortWithinPartitions(*sort_cols)
    try:
        rows = planned.mapInArrow(task, _TASK_SCHEMA).collect()  # one summary row per task
    except Exception as e:  # the task's ValueError arrives wrapped in a Spark exception
        text = str(e)
        if _MARK in text:
            raise ValueError(text[text.index(_MARK) + len(_MARK):].splitlines()[0]) from None
        raise
    done = sorted((r for r in rows if r["rows"]), key=lambda r: r["first_id"])
    for a, b in zip(done, done[1:]):
        if b["first_id"] <= a["last_id"]:
            raise RuntimeError(f"range partitions overlap: {a['stem']} and {b['stem']}")
    return done


# ---------------------------------------------------------------- driver side
def _export_relation(df, name, n_src, n_dst, root, chunk_dir, partitions, checksums) -> dict:
    src_type, rel, dst_type = parse_edge_type(name)
    index_dtype = "<i4" if n_dst < 2**31 else "<i8"
    os.makedirs(os.path.join(root, "edges", name))
    cols = df.select(G.SRC_ID, G.DST_ID, G.WEIGHT)
    parts = _run_tasks(cols, partitions, _edge_task(chunk_dir, n_src, n_dst, index_dtype, f"edges[{name!r}]"),
                       [G.SRC_ID, G.DST_ID, G.WEIGHT])
    nnz = sum(p["rows"] for p in parts)
    rel_path = {k: f"edges/{name}/{k}.npy" for k in ("indptr", "indices", "weights")}
    _concat_npy(os.path.join(root, rel_path["indices"]), index_dtype, nnz, [p["stem"] + ".idx" for p in parts])
    _concat_npy(os.path.join(root, rel_path["weights"]), "<f4", nnz, [p["stem"] + ".w" for p in parts])
    indptr = _zeros_npy(os.path.join(root, rel_path["indptr"]), "<i8", (n_src + 1,))
    if indptr is not None:
        for p in parts:  # counts at s + 1 (a source may repeat at Arrow batch boundaries: +=)
            for block in _blocks(p["stem"] + ".cnt", "<i8", width=2):
                starts = np.flatnonzero(np.r_[True, block[1:, 0] != block[:-1, 0]])
                indptr[block[starts, 0] + 1] += np.add.reduceat(block[:, 1], starts)
        carry = 0
        for lo in range(0, n_src + 1, _BLOCK):  # windowed cumulative sum, in place
            window = np.cumsum(indptr[lo:lo + _BLOCK]) + carry
            indptr[lo:lo + _BLOCK], carry = window, int(window[-1])
        indptr.flush()
        del indptr
        if carry != nnz:
            raise RuntimeError(f"edges[{name!r}]: indptr ends at {carry}, expected {nnz}")
    return {"src_type": src_type, "relation": rel, "dst_type": dst_type, "n_src": n_src, "n_dst": n_dst, "nnz": nnz,
            "files": {k: _file_entry(root, v, checksums) for k, v in rel_path.items()}}


def _export_features(df, node_type, num_nodes, root, chunk_dir, partitions, checksums) -> tuple[dict, list]:
    where = f"features[{node_type!r}]"
    columns, skipped = [], []
    for field in df.schema:
        if field.name == G.NODE_ID:
            continue
        is_list = isinstance(field.dataType, T.ArrayType)
        dtype = _DTYPES.get(type(field.dataType.elementType if is_list else field.dataType))
        (columns.append((field.name, dtype, is_list)) if dtype else skipped.append(field.name))
    if skipped:
        log.warning("%s: columns %s are neither numeric nor boolean: not exported", where, skipped)
    os.makedirs(os.path.join(root, "features", node_type))
    parts = _run_tasks(df.select(G.NODE_ID, *[c for c, _, _ in columns]), partitions,
                       _feature_task(chunk_dir, num_nodes, columns, where), [G.NODE_ID])
    infos = [json.loads(p["info"]) for p in parts]
    out = {}
    for name, dtype, _ in columns:
        dims = {i[name]["dim"] for i in infos} - {None}
        if len(dims) > 1:
            raise ValueError(f"{where}: column {name!r} has arrays of lengths {sorted(dims)}")
        dim = dims.pop() if dims else 0
        rel = f"features/{node_type}/{name}.npy"
        matrix = _zeros_npy(os.path.join(root, rel), dtype, (num_nodes, dim))
        if matrix is not None:
            for p, info in zip(parts, infos):
                base = f"{p['stem']}.{info[name]['file']}"
                for ids, values in zip(_blocks(base + ".ids", "<i8"), _blocks(base + ".val", dtype, width=dim)):
                    matrix[ids] = values.reshape(len(ids), dim)
            matrix.flush()
            del matrix
        present = sum(i[name]["present"] for i in infos)
        out[name] = {**_file_entry(root, rel, checksums), "rows_present": present}
    return out, skipped


def _check_args(spark, edges, features, node_counts, out_dir, graph_version, feature_spec, partitions):
    check_session(spark)
    if not isinstance(node_counts, Mapping) or not all(
            isinstance(t, str) and t and isinstance(n, int) and not isinstance(n, bool) and n >= 0
            for t, n in node_counts.items()):
        raise TypeError(f"node_counts: expected a dict {{node_type: int >= 0}}, got {node_counts!r}")
    for arg, frames, required in (("edges", edges, (G.SRC_ID, G.DST_ID, G.WEIGHT)),
                                  ("features", features, (G.NODE_ID,))):
        if not isinstance(frames, Mapping):
            raise TypeError(f"{arg}: expected a dict of DataFrames, got {type(frames).__name__}")
        for key, df in frames.items():
            types = [parse_edge_type(key)[i] for i in (0, 2)] if arg == "edges" else [key]
            if not isinstance(df, DataFrame):
                raise TypeError(f"{arg}[{key!r}]: expected a DataFrame, got {type(df).__name__}")
            if missing := [c for c in required if c not in df.columns]:
                raise ValueError(f"{arg}[{key!r}]: missing columns {missing}")
            if unknown := [t for t in types if t not in node_counts]:
                raise ValueError(f"{arg}[{key!r}]: node type {unknown[0]!r} is not in node_counts "
                                 f"{sorted(node_counts)}")
    if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir):
        raise TypeError(f"out_dir: expected a path, got {out_dir!r}")
    if isinstance(graph_version, bool) or not isinstance(graph_version, int) or graph_version < 0:
        raise ValueError(f"graph_version: expected an int >= 0, got {graph_version!r}")
    if feature_spec is not None:
        if not isinstance(feature_spec, Mapping):
            raise TypeError(f"feature_spec: expected a dict or None, got {type(feature_spec).__name__}")
        try:
            json.dumps(feature_spec)
        except (TypeError, ValueError) as e:
            raise TypeError(f"feature_spec: must be JSON-serialisable ({e})") from None
    if partitions is not None and (isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1):
        raise ValueError(f"num_partitions: expected an int >= 1 or None, got {partitions!r}")


def export_snapshot(spark, edges: Mapping, features: Mapping, node_counts: Mapping[str, int], out_dir: str,
                    graph_version: int, feature_spec: dict | None = None, *, num_partitions: int | None = None,
                    overwrite: bool = False, checksums: bool = True) -> dict:
    """Write the training snapshot of one graph version to ``out_dir`` (layout: module docstring).

    Args:
        spark: the SparkSession.
        edges: ``{"<src>__<rel>__<dst>": DataFrame(src_id, dst_id, weight, ...)}``, one row per pair.
        features: ``{node_type: DataFrame(node_id, <array or scalar columns>...)}`` (FEATURES_SCHEMA).
        node_counts: ``{node_type: n}``; ids are ``0..n-1``, ``n`` fixes every matrix's row count.
        out_dir: the snapshot folder (must not exist unless ``overwrite``); shared by all executors.
        graph_version: recorded in the manifest.
        feature_spec: JSON-able description of the features (e.g. vocabulary sizes), kept verbatim.
        num_partitions: Spark tasks per table (default: the default parallelism).
        overwrite: replace an existing ``out_dir``.
        checksums: add each file's sha256 to the manifest (one extra read of every file).

    Returns:
        The manifest (also written as ``out_dir/manifest.json``); deterministic for the same input
        except ``created_at``.

    Raises:
        ValueError: ids outside ``0..n-1``, null ids, duplicate feature rows, ragged arrays (nothing
            is published). FileExistsError: ``out_dir`` exists and ``overwrite`` is False.
    """
    _check_args(spark, edges, features, node_counts, out_dir, graph_version, feature_spec, num_partitions)
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f"out_dir: {out_dir} exists (pass overwrite=True to replace it)")
    partitions = num_partitions or default_parallelism(spark)
    tmp = f"{out_dir}.tmp-{uuid.uuid4().hex}"
    chunk_dir = os.path.join(tmp, "_chunks")
    os.makedirs(chunk_dir)
    try:
        relations = {}
        for name in sorted(edges):
            src, _, dst = parse_edge_type(name)
            relations[name] = _export_relation(edges[name], name, node_counts[src], node_counts[dst], tmp,
                                               _fresh(chunk_dir, name), partitions, checksums)
            log.info("snapshot: %s: %d edges", name, relations[name]["nnz"])
        types = {t: {"num_nodes": node_counts[t], "features": {}} for t in sorted(node_counts)}
        for t in sorted(features):
            types[t]["features"], skipped = _export_features(features[t], t, node_counts[t], tmp,
                                                             _fresh(chunk_dir, "features_" + t), partitions, checksums)
            if skipped:
                types[t]["skipped_columns"] = skipped
        shutil.rmtree(chunk_dir)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "graph_version": graph_version,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "edge_types": relations, "node_types": types, "feature_spec": feature_spec,
            "total_bytes": sum(f["bytes"] for r in relations.values() for f in r["files"].values())
            + sum(f["bytes"] for t in types.values() for f in t["features"].values()),
        }
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        _publish(tmp, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _fresh(chunk_dir: str, name: str) -> str:
    path = os.path.join(chunk_dir, name)
    os.makedirs(path)
    return path


def _publish(tmp: str, out_dir: str, overwrite: bool) -> None:
    """Rename the finished folder into place (the old one, if replaced, is removed afterwards)."""
    old = None
    if os.path.exists(out_dir):
        if not overwrite:
            raise FileExistsError(f"out_dir: {out_dir} appeared while the snapshot was written")
        old = f"{out_dir}.old-{uuid.uuid4().hex}"
        os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except OSError as e:  # another writer published between the check and the rename (ENOTEMPTY / EEXIST)
        if not os.path.isdir(out_dir):
            raise
        raise FileExistsError(f"out_dir: {out_dir} appeared while the snapshot was written") from e
    if old:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- reading
class Snapshot:
    """Read-only, memory-mapped view of an exported snapshot (see :func:`open_snapshot`)."""

    def __init__(self, path: str, manifest: dict):
        self.path, self.manifest = path, manifest

    @property
    def graph_version(self) -> int:
        return self.manifest["graph_version"]

    @property
    def edge_types(self) -> list[str]:
        return sorted(self.manifest["edge_types"])

    @property
    def node_types(self) -> list[str]:
        return sorted(self.manifest["node_types"])

    def num_nodes(self, node_type: str) -> int:
        """Number of nodes (rows of every feature matrix) of ``node_type``."""
        return self._type(node_type)["num_nodes"]

    def feature_names(self, node_type: str) -> list[str]:
        return sorted(self._type(node_type)["features"])

    def csr(self, edge_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indptr (n_src+1,) int64, indices (nnz,) int32|int64, weights (nnz,) float32)``, memory-mapped."""
        if edge_type not in self.manifest["edge_types"]:
            raise KeyError(f"edge_type: {edge_type!r} not in snapshot (has {self.edge_types})")
        files = self.manifest["edge_types"][edge_type]["files"]
        return tuple(self._load(files[k]["file"]) for k in ("indptr", "indices", "weights"))

    def features(self, node_type: str, name: str) -> np.ndarray:
        """The ``(num_nodes, dim)`` matrix ``name`` (``numeric``, ``categorical``, ``text``, ...)."""
        feats = self._type(node_type)["features"]
        if name not in feats:
            raise KeyError(f"name: feature {name!r} of {node_type!r} not in snapshot (has {sorted(feats)})")
        return self._load(feats[name]["file"])

    def verify(self) -> None:
        """Check every file's size and (when recorded) sha256 against the manifest; ValueError if not."""
        entries = [f for r in self.manifest["edge_types"].values() for f in r["files"].values()]
        entries += [f for t in self.manifest["node_types"].values() for f in t["features"].values()]
        for e in entries:
            path = os.path.join(self.path, e["file"])
            if os.path.getsize(path) != e["bytes"] or ("sha256" in e and _sha256(path) != e["sha256"]):
                raise ValueError(f"{e['file']}: size or checksum differs from the manifest")

    def _type(self, node_type: str) -> dict:
        if node_type not in self.manifest["node_types"]:
            raise KeyError(f"node_type: {node_type!r} not in snapshot (has {self.node_types})")
        return self.manifest["node_types"][node_type]

    def _load(self, rel: str) -> np.ndarray:
        return np.load(os.path.join(self.path, rel), mmap_mode="r")


def open_snapshot(path: str) -> Snapshot:
    """Open a snapshot folder written by :func:`export_snapshot` (nothing is read but the manifest)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a folder path, got {type(path).__name__}")
    manifest_path = os.path.join(os.fspath(path), MANIFEST)
    if not os.path.isfile(manifest_path):
        raise FileNotFoundError(f"path: {path} holds no {MANIFEST}")
    with open(manifest_path) as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"path: {path} is not a {FORMAT} v{FORMAT_VERSION} snapshot")
    return Snapshot(os.path.abspath(os.fspath(path)), manifest)
