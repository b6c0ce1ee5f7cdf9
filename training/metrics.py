"""Full-ranking Recall@K and NDCG@K (the LightGCN protocol), vectorised and chunked over users.

For every user with at least one test item, all items are scored, the user's training items are
masked out, and the top-K list is compared with the test items:

* ``recall@K = |top-K ∩ test| / |test|``
* ``ndcg@K = DCG / IDCG`` with binary relevance, ``DCG = Σ_{hit at rank r} 1/log2(r + 1)`` and
  ``IDCG`` the DCG of ``min(|test|, K)`` hits in front.
* ``hr@K`` (hit ratio): 1 when any test item is in the top K (MuLe's / RecBole's HR@K).

With ``user_groups`` the same figures are also given per group of users (e.g. by training
degree: :func:`degree_buckets`).

Both are averaged over the evaluated users (as LightGCN's code does; note its recall divides by
``|test|`` even when ``|test| > K``).

Example:
    >>> m = ranking_metrics(user_emb, item_emb, test_users, test_items, train_indptr, train_indices, k=20)
    >>> m["recall@20"], m["ndcg@20"], m["users"]
"""

from __future__ import annotations

import numpy as np
import torch


def _as_tensor(name: str, value, dtype) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.array(value))  # a copy: memory-mapped inputs are read-only
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor or numpy array, got {type(value).__name__}")
    return value.to(dtype)


def group_by_user(users: torch.Tensor, items: torch.Tensor, num_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR ``(indptr (num_users+1,), items sorted by (user, item))`` of a list of pairs."""
    order = torch.argsort(users * (int(items.max()) + 1 if len(items) else 1) + items)
    counts = torch.bincount(users, minlength=num_users)
    indptr = torch.zeros(num_users + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=indptr[1:])
    return indptr, items.index_select(0, order)


DEGREE_BUCKETS = ((0, 0), (1, 2), (3, 5), (6, 10), (11, None))


def bucket_name(lo: int, hi: int | None) -> str:
    return f"{lo}+" if hi is None else (str(lo) if lo == hi else f"{lo}-{hi}")


def degree_buckets(degrees, bounds=DEGREE_BUCKETS) -> tuple[torch.Tensor, list[str]]:
    """``(group of each user (int64), group names)``: users binned by their training degree.

    Example:
        >>> groups, names = degree_buckets(torch.tensor([0, 1, 4, 30]))
        >>> groups.tolist(), names
        ([0, 1, 2, 4], ['0', '1-2', '3-5', '6-10', '11+'])
    """
    degrees = _as_tensor("degrees", degrees, torch.int64)
    groups = torch.full_like(degrees, -1)
    for g, (lo, hi) in enumerate(bounds):
        inside = (degrees >= lo) if hi is None else ((degrees >= lo) & (degrees <= hi))
        groups[inside] = g
    if bool((groups < 0).any()):
        raise ValueError(f"bounds: {bounds} leave degrees {sorted(set(degrees[groups < 0].tolist()))[:5]} uncovered")
    return groups, [bucket_name(lo, hi) for lo, hi in bounds]


def ranking_metrics(user_emb, item_emb, test_users, test_items, train_indptr=None, train_indices=None, k: int = 20,
                    chunk: int = 1024, score: str = "dot", user_groups=None, group_names=None) -> dict:
    """Recall@K / NDCG@K over all items minus each user's training items.

    Args:
        user_emb: ``(num_users, d)`` float; item_emb: ``(num_items, d)`` float.
        test_users, test_items: int64 ``(T,)`` held-out pairs (node ids).
        train_indptr, train_indices: the training interactions as a CSR over users (masked out
            of the ranking); ``None`` masks nothing.
        k: list length. chunk: users scored at a time (memory: chunk x num_items floats).
        score: ``dot`` or ``cosine``.
        user_groups: optional int64 ``(num_users,)``: a group index per user (``-1``: none);
            ``group_names`` names the groups (default ``"0"``, ``"1"``, ...).

    Returns:
        ``{"recall@K", "ndcg@K", "hr@K", "users", "test_pairs"}`` (users = users with a test
        item), plus ``"by_group": {name: {"recall@K", "ndcg@K", "hr@K", "users"}}`` with
        ``user_groups`` (every named group, ``users`` 0 and NaN figures for an empty one).
    """
    user_emb = _as_tensor("user_emb", user_emb, torch.float32)
    item_emb = _as_tensor("item_emb", item_emb, torch.float32)
    test_users = _as_tensor("test_users", test_users, torch.int64)
    test_items = _as_tensor("test_items", test_items, torch.int64)
    if user_emb.dim() != 2 or item_emb.dim() != 2 or user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(f"user_emb, item_emb: expected (n, d) matrices of one d, got {tuple(user_emb.shape)} "
                         f"and {tuple(item_emb.shape)}")
    if len(test_users) != len(test_items):
        raise ValueError(f"test_users, test_items: expected equal lengths, got {len(test_users)} and {len(test_items)}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= item_emb.shape[0]:
        raise ValueError(f"k: expected an int in 1..{item_emb.shape[0]}, got {k!r}")
    if score not in ("dot", "cosine"):
        raise ValueError(f"score: expected 'dot' or 'cosine', got {score!r}")
    n_users, n_items = user_emb.shape[0], item_emb.shape[0]
    if len(test_users) and (int(test_users.min()) < 0 or int(test_users.max()) >= n_users
                            or int(test_items.min()) < 0 or int(test_items.max()) >= n_items):
        raise ValueError(f"test_users / test_items: ids outside 0..{n_users - 1} / 0..{n_items - 1}")
    if score == "cosine":
        user_emb = torch.nn.functional.normalize(user_emb, dim=1)
        item_emb = torch.nn.functional.normalize(item_emb, dim=1)
    test_ptr, test_sorted = group_by_user(test_users, test_items, n_users)
    if train_indptr is not None:
        train_indptr = _as_tensor("train_indptr", train_indptr, torch.int64)
        train_indices = _as_tensor("train_indices", train_indices, torch.int64)
    evaluated = torch.nonzero(test_ptr[1:] > test_ptr[:-1]).flatten()
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))
    ideal = torch.cumsum(discounts, 0)
    per_user = torch.zeros(3, len(evaluated), dtype=torch.float64)  # recall, ndcg, hit of each evaluated user
    item_t = item_emb.t().contiguous()
    for lo in range(0, len(evaluated), chunk):
        users = evaluated[lo:lo + chunk]
        scores = user_emb.index_select(0, users) @ item_t
        if train_indptr is not None:
            rows, cols = _pairs_of(users, train_indptr, train_indices)
            scores[rows, cols] = -torch.inf
        top = torch.topk(scores, k, dim=1).indices
        rows, cols = _pairs_of(users, test_ptr, test_sorted)
        truth = torch.zeros_like(scores, dtype=torch.bool)
        truth[rows, cols] = True
        hits = torch.gather(truth, 1, top).to(torch.float64)
        n_test = (test_ptr[users + 1] - test_ptr[users]).to(torch.float64)
        idcg = ideal.index_select(0, (torch.clamp(n_test, max=k) - 1).to(torch.int64))
        per_user[0, lo:lo + len(users)] = hits.sum(1) / n_test
        per_user[1, lo:lo + len(users)] = (hits * discounts).sum(1) / idcg
        per_user[2, lo:lo + len(users)] = (hits.sum(1) > 0).to(torch.float64)
    out = {**_means(per_user, k, empty=0.0), "users": int(len(evaluated)), "test_pairs": int(len(test_users))}
    if user_groups is not None:
        user_groups = _as_tensor("user_groups", user_groups, torch.int64)
        if user_groups.shape != (n_users,):
            raise ValueError(f"user_groups: expected shape ({n_users},), got {tuple(user_groups.shape)}")
        of = user_groups.index_select(0, evaluated)
        n_groups = int(user_groups.max()) + 1 if len(user_groups) else 0
        names = list(group_names) if group_names is not None else [str(g) for g in range(n_groups)]
        if len(names) < n_groups:
            raise ValueError(f"group_names: expected at least {n_groups} names, got {len(names)}")
        out["by_group"] = {name: {**_means(per_user[:, of == g], k, empty=float("nan")), "users": int((of == g).sum())}
                           for g, name in enumerate(names)}
    return out


def _means(per_user: torch.Tensor, k: int, empty: float) -> dict:
    n = per_user.shape[1]
    values = per_user.sum(1) / n if n else torch.full((3,), empty, dtype=torch.float64)
    return {f"recall@{k}": float(values[0]), f"ndcg@{k}": float(values[1]), f"hr@{k}": float(values[2])}


def _pairs_of(users: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row in ``users``, column) of every CSR entry of the given users, vectorised."""
    starts, ends = indptr.index_select(0, users), indptr.index_select(0, users + 1)
    counts = ends - starts
    rows = torch.repeat_interleave(torch.arange(len(users)), counts)
    offsets = torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return rows, indices.index_select(0, torch.repeat_interleave(starts, counts) + offsets)
