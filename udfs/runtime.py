"""Executor-side computations of the SQL functions: histories, top-k, interests, explanations.

Pure numpy / FAISS on one batch of rows; no Spark here (the Arrow UDF wrappers are in
:mod:`udfs.functions`). Everything a function needs is loaded once per Python worker process
and cached (:func:`assets.bundle.open_bundle`, :func:`open_history`).

Scores are those of the trained decoder: the dot product of the asset's scoring vectors (for a
cosine decoder the vectors are L2-normalised first), so ``gl_score(u, i)`` is the value by which
``gl_recommend(u, k)`` ranks.

Example:
    >>> rows, scores = top_k(items, queries, k=np.array([5, 5]), exclude=[np.array([3]), None])
    >>> interests(item_vectors, weights, n=3)       # [(weight, members sorted by closeness), ...]
"""

from __future__ import annotations

import os
import threading

import numpy as np

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
        from graph_build.snapshot import open_snapshot

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


def open_history(snapshot_dir: str, edge_types) -> History:
    key = (os.path.abspath(snapshot_dir), tuple(edge_types))
    with _LOCK:
        h = _HISTORY.get(key)
        if h is None:
            h = _HISTORY[key] = History(*key)
        return h


def top_k(index, items: np.ndarray, queries: np.ndarray, k: np.ndarray, exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k[b]`` best item rows for each query, skipping ``exclude[b]`` (sorted int64 rows).

    Args:
        index: FAISS inner-product index over ``items``.
        items: ``(n, d)`` scoring vectors (for the exact path of long exclusion lists).
        queries: ``(B, d)`` float32.
        k: ``(B,)`` ints in 1..MAX_K.
        exclude: ``None`` or a list of B arrays (or ``None``s) of rows to leave out.

    Returns:
        ``rows (B, K) int64`` padded with -1 and ``scores (B, K) float32``, K = max(k); row b has
        ``min(k[b], n - excluded)`` results, best first.
    """
    b, n = len(queries), items.shape[0]
    kmax = int(k.max()) if b else 0
    out_rows = np.full((b, kmax), -1, np.int64)
    out_scores = np.zeros((b, kmax), np.float32)
    if b == 0 or n == 0:
        return out_rows, out_scores
    sizes = np.array([0 if exclude is None or exclude[i] is None else len(exclude[i]) for i in range(b)])
    short = np.flatnonzero(sizes <= _EXACT_SEEN)
    if len(short):
        depth = min(n, kmax + int(sizes[short].max()))
        scores, rows = index.search(np.ascontiguousarray(queries[short], dtype=np.float32), depth)
        for j, i in enumerate(short):
            r, s = rows[j], scores[j]
            keep = r >= 0
            if sizes[i]:
                keep &= ~np.isin(r, exclude[i])
            r, s = r[keep][: k[i]], s[keep][: k[i]]
            out_rows[i, : len(r)], out_scores[i, : len(r)] = r, s
    for i in np.flatnonzero(sizes > _EXACT_SEEN):
        s = items @ queries[i]
        s[exclude[i]] = -np.inf
        take = min(int(k[i]), n - len(exclude[i]))
        best = np.argpartition(-s, take - 1)[:take] if take > 0 else np.zeros(0, np.int64)
        best = best[np.lexsort((best, -s[best]))]
        out_rows[i, :take], out_scores[i, :take] = best, s[best]
    return out_rows, out_scores


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
