"""The graphlake Spark SQL functions: vectorised Arrow UDFs over published embedding assets.

:func:`register` resolves the asset versions ONCE on the driver (registry metadata only) and
registers functions whose closures carry nothing but folder paths; each Python worker opens an
asset version's files once and caches them (memory-mapped vectors, keys, FAISS index, the
graph version's user histories). Nothing is broadcast from the driver per task.

======================================================  =============================================
``gl_embedding(node_type, key)``                          ``array<float>`` (the trained embedding)
``gl_score(user_key, item_key)``                          ``float`` (the decoder's score)
``gl_similar_items(item_key, k)``                         ``array<struct<item_key, score>>``
``gl_recommend(user_key, k [, exclude_seen = true])``     ``array<struct<item_key, score>>``
``gl_interests(user_key, n)``                             ``array<struct<interest, weight, items>>``
``gl_explain(user_key, item_key, k)``                     ``array<struct<item_key, contribution>>``
``gl_mean_embedding(item_key)`` (aggregate)               ``array<float>``
``gl_weighted_mean_embedding(item_key, weight)`` (agg.)   ``array<float>``
======================================================  =============================================

Unknown or null keys give NULL. Bad arguments (``k`` or ``n`` outside 1..1000 / 1..100, null,
not an integer; keys that are neither strings nor integers; an unknown node type) raise
``ValueError`` / ``TypeError`` naming the function and argument (Spark reports them as a
``PythonException`` carrying that message). Arguments are columns; no SQL text is ever built.

Example:
    >>> register(spark, lake="lakehouse")                   # production versions
    >>> spark.sql("SELECT gl_recommend('u1', 10)").first()[0][:2]
    [Row(item_key='i7', score=3.1), Row(item_key='i2', score=2.9)]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql.functions import arrow_udf

from graphlake.assets import search as R
from graphlake.assets.bundle import open_bundle

SCORED = pa.struct([("item_key", pa.string()), ("score", pa.float32())])
INTEREST = pa.struct([("interest", pa.int32()), ("weight", pa.float32()), ("items", pa.list_(pa.string()))])
CONTRIBUTION = pa.struct([("item_key", pa.string()), ("contribution", pa.float32())])
SCORED_DDL = "array<struct<item_key:string, score:float>>"
INTEREST_DDL = "array<struct<interest:int, weight:float, items:array<string>>>"
CONTRIBUTION_DDL = "array<struct<item_key:string, contribution:float>>"
REPRESENTATIVES = 5  # items listed per interest


# ------------------------------------------------------------------------------ argument checks

def keys_of(arr: pa.Array, fn: str, arg: str) -> np.ndarray:
    """Key column -> object array of str / None (integers are accepted and read as strings)."""
    if pa.types.is_integer(arr.type):
        arr = pc.cast(arr, pa.string())
    elif not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise TypeError(f"{fn}: {arg} must be a string (or integer) key, got {arr.type}")
    return np.asarray(arr.to_pandas(), dtype=object)


def ints_of(arr: pa.Array, fn: str, arg: str, lo: int, hi: int) -> np.ndarray:
    if not pa.types.is_integer(arr.type):
        raise TypeError(f"{fn}: {arg} must be an integer, got {arr.type}")
    if arr.null_count:
        raise ValueError(f"{fn}: {arg} must not be NULL")
    v = arr.to_numpy(zero_copy_only=False).astype(np.int64)
    bad = v[(v < lo) | (v > hi)]
    if len(bad):
        raise ValueError(f"{fn}: {arg} must be in {lo}..{hi}, got {int(bad[0])}")
    return v


def bools_of(arr: pa.Array | None, n: int, fn: str, arg: str) -> np.ndarray:
    if arr is None:
        return np.ones(n, bool)
    if not pa.types.is_boolean(arr.type):
        raise TypeError(f"{fn}: {arg} must be a boolean, got {arr.type}")
    if arr.null_count:
        raise ValueError(f"{fn}: {arg} must not be NULL")
    return arr.to_numpy(zero_copy_only=False).astype(bool)


# ------------------------------------------------------------------------------ Arrow output

def list_array(counts: np.ndarray, values: pa.Array, valid: np.ndarray) -> pa.Array:
    """A list array with ``counts[b]`` of ``values`` per row; rows with ``valid == False`` are NULL."""
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, mask=pa.array(~valid))


def scored_lists(rows: np.ndarray, scores: np.ndarray, valid: np.ndarray, keys,
                 field: str = "score", struct=SCORED) -> pa.Array:
    """``(B, K)`` row ids (-1 = none) and scores -> ``array<struct<item_key, <field>>>``; ``keys``
    maps row ids to keys (an object array, or an Arrow string array)."""
    present = (rows >= 0) & valid[:, None]
    flat_rows = rows[present]
    names = keys.take(pa.array(flat_rows, pa.int64())) if isinstance(keys, pa.Array) else \
        pa.array(keys[flat_rows], pa.string())
    values = pa.StructArray.from_arrays(
        [names, pa.array(scores[present].astype(np.float32), pa.float32())], fields=list(struct))
    return list_array(present.sum(axis=1), values, valid)


_ARROW_KEYS: dict[str, pa.Array] = {}


def arrow_keys(bundle) -> pa.Array:
    """The bundle's keys as an Arrow string array (built once per process and version): output
    lists take from it instead of converting Python strings per row."""
    got = _ARROW_KEYS.get(bundle.path)
    if got is None:
        got = _ARROW_KEYS[bundle.path] = pa.array(bundle.keys, pa.string())
    return got


def _spread(top: np.ndarray, scores: np.ndarray, ok: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Results of the known rows (``ok``) back to one row per input row (-1 = none elsewhere)."""
    width = int(k.max()) if len(k) else 0
    rows = np.full((len(ok), width), -1, np.int64)
    vals = np.zeros((len(ok), width), np.float32)
    rows[ok, :top.shape[1]], vals[ok, :top.shape[1]] = top, scores
    return rows, vals


# ------------------------------------------------------------------------------ the functions

def make_functions(spec: dict) -> dict:
    """The UDF objects for ``spec`` = ``{"user": files dir, "item": files dir, "types": {type: dir},
    "snapshot": dir, "history": [edge types]}`` (plain strings: that is all a task receives)."""
    user_dir, item_dir, type_dirs = spec["user"], spec["item"], dict(spec["types"])
    snapshot, history_types = spec["snapshot"], tuple(spec["history"])

    def items():
        R.set_threads()
        return open_bundle(item_dir)

    def users_rows(keys, fn):
        ub = open_bundle(user_dir)
        return ub, ub.rows_of(keys_of(keys, fn, "user_key"))

    def history():
        return R.open_history(snapshot, history_types)

    @arrow_udf("array<float>")
    def gl_embedding(node_type: pa.Array, key: pa.Array) -> pa.Array:
        if not (pa.types.is_string(node_type.type) or pa.types.is_large_string(node_type.type)):
            raise TypeError(f"gl_embedding: node_type must be a string, got {node_type.type}")
        types = np.asarray(node_type.to_pandas(), dtype=object)
        keys = keys_of(key, "gl_embedding", "key")
        unknown = sorted({t for t in types if t is not None and t not in type_dirs})
        if unknown:
            raise ValueError(f"gl_embedding: node_type {unknown[0]!r} has no published asset "
                             f"(published: {sorted(type_dirs)})")
        dim = open_bundle(next(iter(type_dirs.values()))).vectors.shape[1]
        out = np.zeros((len(keys), dim), np.float32)
        valid = np.zeros(len(keys), bool)
        for t in {t for t in types if t is not None}:
            b = open_bundle(type_dirs[t])
            sel = np.flatnonzero(types == t)
            rows = b.rows_of(keys[sel])
            ok = rows >= 0
            out[sel[ok]] = b.vectors[rows[ok]]
            valid[sel[ok]] = True
        return list_array(np.where(valid, dim, 0), pa.array(out[valid].reshape(-1), pa.float32()), valid)

    @arrow_udf("float")
    def gl_score(user_key: pa.Array, item_key: pa.Array) -> pa.Array:
        ub, urows = users_rows(user_key, "gl_score")
        ib = items()
        irows = ib.rows_of(keys_of(item_key, "gl_score", "item_key"))
        ok = (urows >= 0) & (irows >= 0)
        s = np.zeros(len(ok), np.float32)
        if ok.any():
            s[ok] = np.einsum("ij,ij->i", ub.scoring_vectors()[urows[ok]], ib.scoring_vectors()[irows[ok]])
        return pa.array(s, pa.float32(), mask=~ok)

    @arrow_udf(SCORED_DDL)
    def gl_similar_items(item_key: pa.Array, k: pa.Array) -> pa.Array:
        kk = ints_of(k, "gl_similar_items", "k", 1, R.MAX_K)
        ib = items()
        rows = ib.rows_of(keys_of(item_key, "gl_similar_items", "item_key"))
        ok = rows >= 0
        top, scores = R.similar_rows(ib, rows[ok], kk[ok])
        return scored_lists(*_spread(top, scores, ok, kk), ok, arrow_keys(ib))

    @arrow_udf(SCORED_DDL)
    def gl_recommend(user_key: pa.Array, k: pa.Array, exclude_seen: pa.Array = None) -> pa.Array:
        kk = ints_of(k, "gl_recommend", "k", 1, R.MAX_K)
        skip = bools_of(exclude_seen, len(kk), "gl_recommend", "exclude_seen")
        ub, urows = users_rows(user_key, "gl_recommend")
        ib = items()
        ok = urows >= 0
        top, scores = R.recommend_rows(ub, ib, urows[ok], kk[ok], history(), skip[ok])
        return scored_lists(*_spread(top, scores, ok, kk), ok, arrow_keys(ib))

    @arrow_udf(INTEREST_DDL)
    def gl_interests(user_key: pa.Array, n: pa.Array) -> pa.Array:
        nn = ints_of(n, "gl_interests", "n", 1, R.MAX_INTERESTS)
        _, urows = users_rows(user_key, "gl_interests")
        ib, h = items(), history()
        vecs = ib.scoring_vectors()
        ok = urows >= 0
        counts, idx, weights, members = np.zeros(len(urows), np.int64), [], [], []
        for b, u in enumerate(urows):
            if u < 0:
                continue
            hist, w = h.of(int(u))
            found = R.interests(vecs[hist], w, int(nn[b]))
            counts[b] = len(found)
            for j, (share, order) in enumerate(found):
                idx.append(j)
                weights.append(share)
                members.append(list(ib.keys[hist[order[:REPRESENTATIVES]]]))
        values = pa.StructArray.from_arrays(
            [pa.array(idx, pa.int32()), pa.array(weights, pa.float32()), pa.array(members, pa.list_(pa.string()))],
            fields=list(INTEREST))
        return list_array(counts, values, ok)

    @arrow_udf(CONTRIBUTION_DDL)
    def gl_explain(user_key: pa.Array, item_key: pa.Array, k: pa.Array) -> pa.Array:
        kk = ints_of(k, "gl_explain", "k", 1, R.MAX_K)
        _, urows = users_rows(user_key, "gl_explain")
        ib, h = items(), history()
        irows = ib.rows_of(keys_of(item_key, "gl_explain", "item_key"))
        vecs = ib.scoring_vectors()
        ok = (urows >= 0) & (irows >= 0)
        kmax = int(kk.max()) if len(kk) else 0
        rows = np.full((len(urows), kmax), -1, np.int64)
        share = np.zeros((len(urows), kmax), np.float32)
        for b in np.flatnonzero(ok):
            hist, w = h.of(int(urows[b]))
            pos, c = R.explain(vecs[irows[b]], vecs[hist], w, int(kk[b]))
            rows[b, :len(pos)], share[b, :len(pos)] = hist[pos], c
        return scored_lists(rows, share, ok, ib.keys, struct=CONTRIBUTION)

    def _mean(keys: pa.Array, weights: pa.Array | None, fn: str):
        ib = open_bundle(item_dir)
        rows = ib.rows_of(keys_of(keys, fn, "item_key"))
        w = np.ones(len(rows)) if weights is None else weights.to_numpy(zero_copy_only=False).astype(np.float64)
        ok = (rows >= 0) & np.isfinite(w) & (w > 0)
        if not ok.any():
            return None
        v = np.asarray(ib.vectors[rows[ok]], np.float64)
        return (w[ok, None] * v).sum(axis=0) / w[ok].sum()

    @arrow_udf("array<float>")
    def gl_mean_embedding(item_key: pa.Array) -> list:
        m = _mean(item_key, None, "gl_mean_embedding")
        return None if m is None else m.astype(np.float32).tolist()

    @arrow_udf("array<float>")
    def gl_weighted_mean_embedding(item_key: pa.Array, weight: pa.Array) -> list:
        if not (pa.types.is_integer(weight.type) or pa.types.is_floating(weight.type) or
                pa.types.is_decimal(weight.type)):
            raise TypeError(f"gl_weighted_mean_embedding: weight must be numeric, got {weight.type}")
        m = _mean(item_key, pc.cast(weight, pa.float64()), "gl_weighted_mean_embedding")
        return None if m is None else m.astype(np.float32).tolist()

    return {"gl_embedding": gl_embedding, "gl_score": gl_score, "gl_similar_items": gl_similar_items,
            "gl_recommend": gl_recommend, "gl_interests": gl_interests, "gl_explain": gl_explain,
            "gl_mean_embedding": gl_mean_embedding, "gl_weighted_mean_embedding": gl_weighted_mean_embedding}
