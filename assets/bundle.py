"""The files of one asset version: row-aligned vectors, keys, the FAISS index and ``meta.json``.

Layout of ``<lake>/assets/files/<asset>/v<N>/``::

    meta.json        asset, version, node_type, dim, rows, score ("dot" | "cosine"), graph_version,
                     snapshot (training snapshot of the graph version: the users' histories), index kind
    vectors.npy      float32 (rows, dim), row i = node_id i (memory-mapped by readers)
    keys.parquet/    (key, node_id) written by Spark tasks in parallel, one row per vector
    index.faiss      item-like assets: inner-product index over the vectors (L2-normalised first
                     when the score is cosine), ids = node_id

The vectors are the trained embeddings as they are (the Delta table holds the same values);
scores are computed with the run's decoder. The index is one file by nature: building it reads
the vectors in blocks of 65 536 rows in one process (the publisher), never through the Spark
driver; ``flat`` costs rows × dim × 4 bytes, ``ivf`` the same plus the list ids (8 B a row) and
its centroids, ``hnsw`` about 1.3× that plus the graph. ``meta.json`` records the index's
parameters (``index_params``: IVF lists, ``nprobe`` and the recall measured when it was calibrated).

:func:`open_bundle` is what the SQL functions call on the executors: it memory-maps the vectors,
loads the keys once, and caches the result per process (keyed by folder), so a Python worker
loads an asset version once, not once per task.

Example:
    >>> b = open_bundle("lakehouse/assets/files/item_embeddings/v3")
    >>> rows = b.rows_of(pd.Series(["i1", "nope"]))     # array([17, -1])
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid

import numpy as np
import pandas as pd

from graphlake.assets import schema as A
from graphlake.assets.config import AssetConfig

_BLOCK = 1 << 16
_CACHE: dict[str, "Bundle"] = {}
_LOCK = threading.Lock()


def bundle_dir(lake_dir: str, asset: str, version: int) -> str:
    return os.path.join(os.path.abspath(lake_dir), A.FILES_DIR, asset, f"v{version}")


def index_kind(rows: int, config: AssetConfig) -> str:
    """``config.index``, or for ``auto``: ``flat`` (exact) up to ``flat_max_items`` rows, else ``ivf``."""
    if config.index != "auto":
        return config.index
    return "flat" if rows <= config.flat_max_items else "ivf"


def _normalised(block: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    return (block / np.maximum(norms, 1e-12)).astype(np.float32)


def ivf_nlist(rows: int, config: AssetConfig) -> int:
    """IVF list count: ``config.ivf_nlist`` or ``round(4 * sqrt(rows))``, at most ``rows // 39``."""
    want = config.ivf_nlist or int(round(4 * np.sqrt(rows)))
    return max(1, min(want, rows // 39))


def calibration_rows(rows: int, config: AssetConfig) -> np.ndarray:
    """The item rows (sorted) whose vectors are the calibration queries of an IVF index over
    ``rows`` vectors (seeded by ``config.seed``); a benchmark that reports recall as unseen
    leaves them out."""
    m = min(rows, max(1, config.ivf_calibration_queries // 2))
    return np.sort(np.random.default_rng([config.seed, 1]).choice(rows, m, replace=False))


def _calibration_queries(vectors: np.ndarray, score: str, config: AssetConfig) -> tuple[np.ndarray, np.ndarray]:
    """Item-vector queries and user-like queries (the mean of two random item vectors)."""
    n = vectors.shape[0]
    own = _read_rows(vectors, calibration_rows(n, config), score)
    rng = np.random.default_rng([config.seed, 2])
    m = len(own)
    pairs = rng.integers(0, n, (m, 2))
    order = np.argsort(pairs.reshape(-1), kind="stable")
    flat = np.empty((2 * m, vectors.shape[1]), np.float32)
    flat[order] = _read_rows(vectors, pairs.reshape(-1)[order], score)
    mixed = flat.reshape(m, 2, -1).mean(axis=1)
    return own, np.ascontiguousarray(mixed, dtype=np.float32)


def _read_rows(vectors: np.ndarray, rows: np.ndarray, score: str) -> np.ndarray:
    block = np.ascontiguousarray(vectors[rows], dtype=np.float32)
    return _normalised(block) if score == "cosine" else block


def recall_at(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean over queries of ``|found[:k] ∩ exact[:k]| / k`` (ids; -1 = none counts as a miss)."""
    hits = [len(set(f[:k][f[:k] >= 0]) & set(e[:k][e[:k] >= 0])) / max(1, min(k, int((e[:k] >= 0).sum())))
            for f, e in zip(found, exact)]
    return float(np.mean(hits)) if hits else 1.0


def calibrate_nprobe(index, vectors: np.ndarray, score: str, config: AssetConfig) -> dict:
    """Set ``index.nprobe`` to the smallest of 1, 2, 3, 4, 6, 8, 12, ... (then ``nlist``) whose recall@k against
    an exact search reaches ``config.ivf_target_recall`` on both query kinds (see
    :class:`graphlake.assets.config.AssetConfig`); returns the figures measured."""
    import faiss

    k = min(config.ivf_calibration_k, vectors.shape[0])
    queries = _calibration_queries(vectors, score, config)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    for lo in range(0, vectors.shape[0], _BLOCK):
        exact.add(_read_rows(vectors, np.arange(lo, min(lo + _BLOCK, vectors.shape[0])), score))
    truth = [exact.search(q, k)[1] for q in queries]
    del exact
    steps = [int(b * 2 ** i) for i in range(int(np.log2(max(1, index.nlist))) + 1) for b in (2, 3)]
    ladder = sorted({max(1, s // 2) for s in steps if s // 2 <= index.nlist} | {index.nlist})  # 1, 2, 3, 4, 6, 8, 12, ...
    tried = {}
    for nprobe in ladder:
        index.nprobe = nprobe
        got = [recall_at(index.search(q, k)[1], t, k) for q, t in zip(queries, truth)]
        tried[nprobe] = [round(g, 4) for g in got]
        if min(got) >= config.ivf_target_recall:
            break
    return {"nprobe": int(index.nprobe), "k": int(k), "queries": int(sum(len(q) for q in queries)),
            "target_recall": config.ivf_target_recall, "recall_items": tried[index.nprobe][0],
            "recall_mixtures": tried[index.nprobe][1], "ladder": {str(p): r for p, r in tried.items()}}


def build_index(vectors: np.ndarray, score: str, kind: str, config: AssetConfig, report: dict | None = None):
    """A FAISS inner-product index over ``vectors`` (normalised when ``score == "cosine"``).

    ``ivf``: ``IndexIVFFlat`` (inner-product quantizer) with :func:`ivf_nlist` lists, k-means
    trained on at most ``ivf_train_max`` seeded rows, ``nprobe`` = ``config.ivf_nprobe`` or
    :func:`calibrate_nprobe`. ``report`` (a dict), when given, receives the index parameters
    (and the calibration figures) for ``meta.json``.
    """
    import faiss

    n, dim = vectors.shape
    info: dict = {"kind": kind}
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = config.hnsw_ef_search
        info.update(m=config.hnsw_m, ef_search=config.hnsw_ef_search)
    elif kind == "ivf":
        if n < 1:
            raise ValueError("vectors: an ivf index needs at least one vector")
        nlist = ivf_nlist(n, config)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = config.seed
        sample = np.sort(np.random.default_rng([config.seed, 0]).choice(n, min(n, config.ivf_train_max),
                                                                          replace=False))
        index.train(_read_rows(vectors, sample, score))
        info.update(nlist=nlist, train_rows=len(sample))
    else:
        raise ValueError(f"kind: expected 'flat', 'ivf' or 'hnsw', got {kind!r}")
    for lo in range(0, n, _BLOCK):
        block = np.ascontiguousarray(vectors[lo:lo + _BLOCK], dtype=np.float32)
        index.add(_normalised(block) if score == "cosine" else block)
    if kind == "ivf":
        if config.ivf_nprobe:
            index.nprobe = min(config.ivf_nprobe, index.nlist)
        else:
            info["calibration"] = calibrate_nprobe(index, vectors, score, config)
        info["nprobe"] = int(index.nprobe)
    if report is not None:
        report.update(info)
    return index


def write_bundle(out_dir: str, vectors_src: str, keys_df, meta: dict, with_index: bool, config: AssetConfig,
                 extra_vectors: np.ndarray | None = None) -> dict:
    """Write the files of one asset version into ``out_dir`` (atomically: a temp folder renamed).

    Args:
        out_dir: the version's folder (must not exist).
        vectors_src: ``.npy`` of the vectors (row = node_id), copied in streaming blocks.
        keys_df: Spark DataFrame ``(key, node_id)`` with one row per vector row.
        meta: fields for ``meta.json`` (``score`` required).
        with_index: build the FAISS index.
        config: index options.
        extra_vectors: rows appended after those of ``vectors_src`` (inductive embeddings).

    Returns:
        the ``meta.json`` content.
    """
    if os.path.exists(out_dir):
        raise FileExistsError(f"out_dir: asset files {out_dir} exist already")
    src = np.load(vectors_src, mmap_mode="r")
    extra = np.zeros((0, src.shape[1]), np.float32) if extra_vectors is None else np.asarray(extra_vectors, np.float32)
    if extra.ndim != 2 or extra.shape[1] != src.shape[1]:
        raise ValueError(f"extra_vectors: expected shape (n, {src.shape[1]}), got {extra.shape}")
    tmp = f"{out_dir}.tmp-{uuid.uuid4().hex[:8]}"
    os.makedirs(tmp)
    try:
        n = src.shape[0] + extra.shape[0]
        out = np.lib.format.open_memmap(os.path.join(tmp, A.VECTORS_FILE), mode="w+", dtype=np.float32,
                                        shape=(n, src.shape[1]))
        for lo in range(0, src.shape[0], _BLOCK):
            hi = min(lo + _BLOCK, src.shape[0])  # out has the extra rows after src's
            out[lo:hi] = src[lo:hi]
        out[src.shape[0]:] = extra
        out.flush()
        keys_df.select(A.KEY, A.NODE_ID).write.mode("error").parquet(os.path.join(tmp, A.KEYS_FILE))
        kind = None
        if with_index:
            import faiss

            kind = index_kind(n, config)
            params: dict = {}
            faiss.write_index(build_index(out, meta["score"], kind, config, params), os.path.join(tmp, A.INDEX_FILE))
        del out
        full = {**meta, "rows": int(n), "dim": int(src.shape[1]), "index": kind}
        if with_index:
            full["index_params"] = params
        with open(os.path.join(tmp, A.META_FILE), "w") as f:
            json.dump(full, f, indent=1, sort_keys=True)
        os.makedirs(os.path.dirname(out_dir), exist_ok=True)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return full


class Bundle:
    """An opened asset version (see the module docstring). Thread-safe for reads."""

    def __init__(self, path: str):
        import pyarrow.parquet as pq

        with open(os.path.join(path, A.META_FILE)) as f:
            self.meta = json.load(f)
        self.path = path
        self.vectors = np.load(os.path.join(path, A.VECTORS_FILE), mmap_mode="r")
        keys = pq.read_table(os.path.join(path, A.KEYS_FILE), columns=[A.KEY, A.NODE_ID])
        ids = keys.column(A.NODE_ID).to_numpy()
        order = np.argsort(ids, kind="stable")
        if len(ids) != self.vectors.shape[0] or not np.array_equal(ids[order], np.arange(len(ids))):
            raise ValueError(f"path: {path} keys do not cover node ids 0..{self.vectors.shape[0] - 1} exactly")
        self.keys = np.asarray(keys.column(A.KEY).to_pandas(), dtype=object)[order]
        self._lookup = pd.Index(self.keys)
        self._index = None
        self._scoring = None
        self._lock = threading.Lock()

    @property
    def score(self) -> str:
        return self.meta["score"]

    def rows_of(self, keys) -> np.ndarray:
        """Row ids of ``keys`` (a pandas Series / array of strings); -1 for unknown or null keys."""
        return self._lookup.get_indexer(pd.Series(keys, dtype=object))

    def scoring_vectors(self) -> np.ndarray:
        """The vectors scores are dot products of (L2-normalised for a cosine score); cached."""
        with self._lock:
            if self._scoring is None:
                v = np.asarray(self.vectors, dtype=np.float32)
                self._scoring = _normalised(v) if self.score == "cosine" else v
            return self._scoring

    def index(self):
        """The FAISS index (item-like assets), loaded on first use."""
        with self._lock:
            if self._index is None:
                import faiss

                file = os.path.join(self.path, A.INDEX_FILE)
                if not os.path.isfile(file):
                    raise ValueError(f"asset {self.meta['asset']} v{self.meta['version']} has no ANN index "
                                     f"(only item-like assets have one)")
                self._index = faiss.read_index(file)
            return self._index


def open_bundle(path: str) -> Bundle:
    """The cached :class:`Bundle` of folder ``path`` in this process."""
    path = os.path.abspath(path)
    with _LOCK:
        b = _CACHE.get(path)
        if b is None:
            b = _CACHE[path] = Bundle(path)
        return b
