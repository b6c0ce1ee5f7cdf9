"""Searching embeddings: histories, top-k, interests, explanations.

Pure numpy / FAISS on one batch of rows; no Spark here. The SQL functions run it on the executors
(the Arrow UDF wrappers are in :mod:`graphlake.udfs.functions`) and the point-lookup API in the
caller's process (:mod:`graphlake.assets.reader`). Everything is loaded once per process and
cached (:func:`graphlake.assets.bundle.open_bundle`, :func:`open_history`).

Scores are those of the trained decoder: the dot product of the asset's scoring vectors (for a
cosine decoder the vectors are L2-normalised first), so ``gl_score(u, i)`` is the value by which
``gl_recommend(u, k)`` ranks.

Example:
    >>> rows, scores = top_k(index, items, queries, k=np.array([5, 5]), exclude=[np.array([3]), None])
    >>> interests(item_vectors, weights, n=3)       # [(weight, members sorted by closeness), ...]
"""

from __future__ import annotations

import os
import threading

import numpy as np

from graphlake.graph_build.snapshot import open_snapshot

_HISTORY: dict[tuple, "History"] = {}
_LOCK = threading.Lock()
MAX_K = 1000
MAX_INTERESTS = 100
_EXACT_SEEN = 1000  # users with more seen items are ranked exactly (numpy) instead of via FAISS


def set_threads() -> None:
    """One FAISS/BLAS thread per Python worker (Spark runs one worker per task slot)."""
    import faiss

    faiss.omp_set_num_threads(int(os.environ.get("GRAPHLAKE_UDF_THREADS", "1")))


class History:
    """The items each user interacted with (the union of the run's target relations) and the
    summed edge weights, from the memory-mapped snapshot of the graph version."""

    def __init__(self, snapshot_dir: str, edge_types: tuple[str, ...]):
        snap = open_snapshot(snapshot_dir)
        self.csrs = [snap.csr(e) for e in edge_types]

    def of(self, user_row: int) -> tuple[np.ndarray, np.ndarray]:
        """``(item rows int64 sorted, weights float32)`` of one user row (empty for a row outside
        the graph, e.g. a user embedded after it)."""
        items, weights = [], []
        for indptr, indices, w in self.csrs:
            if 0 <= user_row < len(indptr) - 1:
                lo, hi = int(indptr[user_row]), int(indptr[user_row + 1])
                items.append(np.asarray(indices[lo:hi], dtype=np.int64))
                weights.append(np.asarray(w[lo:hi], dtype=np.float32))
        if not items:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        all_items, all_w = np.concatenate(items), np.concatenate(weights)
        uniq, inv = np.unique(all_items, return_inverse=True)
        return uniq, np.bincount(inv, weights=all_w, minlength=len(uniq)).astype(np.float32)

    def items_of(self, user_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The histories of a batch of user rows at once, as CSR: ``(offsets (B + 1,) int64, item
        rows int64)``; row b's items are ``items[offsets[b]:offsets[b + 1]]`` (sorted per edge type,
        an item in several edge types repeated). Rows outside the graph (or -1) have none."""
        user_rows = np.asarray(user_rows, np.int64)
        b = len(user_rows)
        owners, found = [], []
        for indptr, indices, _ in self.csrs:
            inside = (user_rows >= 0) & (user_rows < len(indptr) - 1)
            r = np.where(inside, user_rows, 0)
            lo = np.where(inside, np.asarray(indptr)[r], 0)
            lens = np.where(inside, np.asarray(indptr)[r + 1] - lo, 0)
            total = int(lens.sum())
            starts = np.cumsum(lens) - lens
            pos = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, lens)
            owners.append(np.repeat(np.arange(b, dtype=np.int64), lens))
            found.append(np.asarray(indices[pos], dtype=np.int64) if total else np.zeros(0, np.int64))
        owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        items = np.concatenate(found) if found else np.zeros(0, np.int64)
        if len(self.csrs) > 1:
            order = np.argsort(owner, kind="stable")
            owner, items = owner[order], items[order]
        offsets = np.zeros(b + 1, np.int64)
        np.cumsum(np.bincount(owner, minlength=b), out=offsets[1:])
        return offsets, items


def open_history(snapshot_dir: str, edge_types) -> History:
    key = (os.path.abspath(snapshot_dir), tuple(edge_types))
    with _LOCK:
        h = _HISTORY.get(key)
        if h is None:
            h = _HISTORY[key] = History(*key)
        return h


def as_csr(exclude, b: int) -> tuple[np.ndarray, np.ndarray]:
    """``exclude`` (``None``, a list of B arrays / ``None``s, or ``(offsets, rows)``) as CSR."""
    if exclude is None:
        return np.zeros(b + 1, np.int64), np.zeros(0, np.int64)
    if isinstance(exclude, tuple):
        offsets, rows = (np.asarray(x, np.int64) for x in exclude)
        if offsets.shape != (b + 1,) or offsets[0] != 0 or offsets[-1] != len(rows):
            raise ValueError(f"exclude: expected offsets of shape ({b + 1},) from 0 to {len(rows)}")
        return offsets, rows
    if len(exclude) != b:
        raise ValueError(f"exclude: expected {b} entries (one per query), got {len(exclude)}")
    parts = [np.zeros(0, np.int64) if e is None else np.asarray(e, np.int64).reshape(-1) for e in exclude]
    offsets = np.zeros(b + 1, np.int64)
    np.cumsum([len(x) for x in parts], out=offsets[1:])
    return offsets, (np.concatenate(parts) if parts else np.zeros(0, np.int64))


def _exact_row(items: np.ndarray, q: np.ndarray, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` of one query (ties by the smaller row), ``excluded`` rows left out."""
    s = items @ q
    s[excluded] = -np.inf
    take = min(int(k), len(s) - len(np.unique(excluded)))
    if take <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    best = np.argpartition(-s, take - 1)[:take]
    best = best[np.lexsort((best, -s[best]))]
    return best, s[best].astype(np.float32)


def _depth_buckets(need: np.ndarray) -> list[np.ndarray]:
    """Query positions grouped by ``ceil(log2(need))`` (each group is searched to its own depth)."""
    level = np.ceil(np.log2(np.maximum(need, 1))).astype(np.int64)
    order = np.argsort(level, kind="stable")
    cuts = np.flatnonzero(np.diff(level[order])) + 1
    return np.split(order, cuts)


def top_k(index, items: np.ndarray, queries: np.ndarray, k: np.ndarray, exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k[b]`` best item rows for each query, skipping the rows ``exclude`` lists for it.

    Queries are grouped by how deep they must search (``k[b]`` + their number of excluded rows,
    rounded up to a power of two) and each group is ONE index search to its own depth; excluded
    rows are removed for the whole group at once. A query left with fewer results than it can
    have (an approximate index returned too few), or with more than ``_EXACT_SEEN`` excluded
    rows, is answered by brute force instead, so each row always has its full count.

    Args:
        index: FAISS inner-product index over ``items``.
        items: ``(n, d)`` scoring vectors (for the brute-force path).
        queries: ``(B, d)`` float32.
        k: ``(B,)`` ints in 1..MAX_K.
        exclude: ``None``, a list of B arrays (or ``None``s) of rows to leave out, or the same as
            CSR ``(offsets (B + 1,), rows)``.

    Returns:
        ``rows (B, K) int64`` padded with -1 and ``scores (B, K) float32``, K = max(k); row b has
        ``min(k[b], n - excluded)`` results, best first.
    """
    b, n = len(queries), items.shape[0]
    k = np.asarray(k, np.int64)
    kmax = int(k.max()) if b else 0
    out_rows = np.full((b, kmax), -1, np.int64)
    out_scores = np.zeros((b, kmax), np.float32)
    if b == 0 or n == 0:
        return out_rows, out_scores
    offsets, ex_rows = as_csr(exclude, b)
    sizes = np.diff(offsets)
    owner = np.repeat(np.arange(b, dtype=np.int64), sizes)
    ex_keys = np.unique(owner * n + ex_rows)  # (query, row) pairs, duplicates merged
    distinct = np.bincount(ex_keys // n, minlength=b)
    possible = np.minimum(k, n - distinct)  # results each row must get
    slow = sizes > _EXACT_SEEN
    fast = np.flatnonzero(~slow)
    count = np.zeros(b, np.int64)
    for group in _depth_buckets(k[fast] + sizes[fast]) if len(fast) else []:
        rows_b = fast[group]
        depth = int(min(n, (k[rows_b] + sizes[rows_b]).max()))
        scores, found = index.search(np.ascontiguousarray(queries[rows_b], dtype=np.float32), depth)
        keep = found >= 0
        if len(ex_keys):
            keys = rows_b[:, None] * n + np.where(keep, found, 0)
            pos = np.minimum(np.searchsorted(ex_keys, keys), len(ex_keys) - 1)
            keep &= ex_keys[pos] != keys
        rank = np.cumsum(keep, axis=1)
        keep &= rank <= k[rows_b][:, None]
        ii, jj = np.nonzero(keep)
        out_rows[rows_b[ii], rank[ii, jj] - 1] = found[ii, jj]
        out_scores[rows_b[ii], rank[ii, jj] - 1] = scores[ii, jj]
        count[rows_b] = np.minimum(rank[:, -1], k[rows_b])
    redo = np.flatnonzero(slow | (count < possible))
    for i in redo:
        r, s = _exact_row(items, queries[i], int(k[i]), ex_rows[offsets[i]:offsets[i + 1]])
        out_rows[i], out_scores[i] = -1, 0
        out_rows[i, :len(r)], out_scores[i, :len(r)] = r, s
    return out_rows, out_scores


def history_of(items) -> History:
    """The histories an item asset version leaves out of recommendations: its ``meta.json``'s
    training snapshot and history edge types (``items``: a :class:`graphlake.assets.bundle.Bundle`)."""
    return open_history(items.meta["snapshot"], tuple(items.meta["history_edge_types"]))


def similar_rows(items, rows: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` of item rows ``rows`` of bundle ``items`` among its items, never the item itself
    (``gl_similar_items``)."""
    rows = np.asarray(rows, np.int64)
    vecs = items.scoring_vectors()
    exclude = (np.arange(len(rows) + 1, dtype=np.int64), rows)
    return top_k(items.index(), vecs, vecs[rows], k, exclude)


def recommend_rows(users, items, user_rows: np.ndarray, k: np.ndarray, history: History | None = None,
                   exclude_seen: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` items of bundle ``items`` for user rows ``user_rows`` of bundle ``users``
    (``gl_recommend``), leaving out each user's items in ``history`` (``None``: nothing left out;
    ``exclude_seen``: a bool per row, where False keeps that user's history in)."""
    user_rows = np.asarray(user_rows, np.int64)
    exclude = None
    if history is not None:
        exclude = history.items_of(user_rows if exclude_seen is None else np.where(exclude_seen, user_rows, -1))
    return top_k(items.index(), items.scoring_vectors(), users.scoring_vectors()[user_rows], k, exclude)


def interests(vectors: np.ndarray, weights: np.ndarray, n: int, iterations: int = 25,
              seed: int = 0) -> list[tuple[float, np.ndarray]]:
    """PinnerSage-style interests: weighted spherical k-means of a user's history items.

    Args:
        vectors: ``(m, d)`` scoring vectors of the user's items.
        weights: ``(m,)`` positive edge weights (how strongly the user interacted).
        n: number of interests wanted; at most ``m`` are returned.
        iterations / seed: k-means iterations; deterministic k-means++ seeding.

    Returns:
        ``[(weight share, member indices sorted by closeness to the centre)]`` sorted by weight
        share (descending, then by first member); shares sum to 1.
    """
    m = len(vectors)
    if m == 0:
        return []
    x = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    w = np.asarray(weights, np.float64)
    w = np.where(w > 0, w, 1e-6)
    c = min(n, m)
    rng = np.random.RandomState(seed)
    centres = [int(np.argmax(w))]  # the strongest item seeds the first interest
    for _ in range(1, c):
        d = 1.0 - (x @ x[centres].T).max(axis=1)
        p = np.maximum(d, 0) * w
        centres.append(int(rng.choice(m, p=p / p.sum())) if p.sum() > 0 else
                       int(next(i for i in range(m) if i not in centres)))
    mu = x[centres].copy()
    assign = np.zeros(m, np.int64)
    for _ in range(iterations):
        new = np.argmax(x @ mu.T, axis=1)
        if _ and np.array_equal(new, assign):
            break
        assign = new
        for j in range(c):
            members = assign == j
            if members.any():
                v = (x[members] * w[members, None]).sum(axis=0)
                mu[j] = v / max(np.linalg.norm(v), 1e-12)
    out = []
    total = w.sum()
    for j in range(c):
        members = np.flatnonzero(assign == j)
        if len(members):
            sims = x[members] @ mu[j]
            order = members[np.lexsort((members, -sims))]
            out.append((float(w[members].sum() / total), order))
    out.sort(key=lambda t: (-t[0], int(t[1][0])))
    return out


def explain(item_vector: np.ndarray, history_vectors: np.ndarray, weights: np.ndarray,
            k: int) -> tuple[np.ndarray, np.ndarray]:
    """Which history items support recommending an item: contribution of history item h =
    ``w_h · max(0, score(h, item))``, normalised to sum to 1 over the history.

    Returns:
        ``(history positions, contributions)`` of the ``k`` largest positive contributions.
    """
    if len(history_vectors) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    raw = np.maximum(history_vectors @ item_vector, 0) * np.asarray(weights, np.float64)
    total = raw.sum()
    if total <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    share = raw / total
    pos = np.flatnonzero(share > 0)
    pos = pos[np.lexsort((pos, -share[pos]))][:k]
    return pos, share[pos].astype(np.float32)
