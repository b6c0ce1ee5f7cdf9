"""Link scores and ranking losses over embeddings.

* :func:`score`: dot product or cosine similarity, divided by a temperature.
* :func:`shared_negative_scores`: every row against one shared set of K negatives (one matmul),
  the row's own positive masked.
* :func:`bpr_loss`: Bayesian personalised ranking, ``mean(-log sigmoid(pos - neg))`` (LightGCN).
* :func:`sampled_softmax_loss`: softmax cross-entropy of the positive against K sampled
  negatives, with the logQ correction for negatives drawn from a non-uniform (popularity)
  distribution (Yi et al. 2019; TF's ``sampled_softmax_loss(subtract_log_q=True)``).
* :func:`positive_collisions`: the (row, negative) pairs where a shared negative is the row's positive
  (:func:`masked_pairs`: the same with its argument checks).
* :func:`l2_regularisation`: LightGCN's ``0.5 * sum of squares / batch size`` over the batch's
  ego (layer-0) embeddings.

Example:
    >>> pos = score(h["user"], h_pos)                     # (B,)
    >>> neg = score(h["user"], h_neg)                     # (B, D) x (B, K, D) -> (B, K)
    >>> loss = bpr_loss(pos, neg) + 1e-4 * l2_regularisation(ego_u, ego_pos, ego_neg)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SCORE_KINDS = ("dot", "cosine")


def checked_tensor(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    return x


def checked_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature: expected a number > 0, got {temperature!r}")
    return float(temperature)


def score(u: torch.Tensor, v: torch.Tensor, kind: str = "dot", temperature: float = 1.0) -> torch.Tensor:
    """Similarity of embedding pairs along the last dimension.

    Args:
        u: ``(..., D)``.
        v: ``(..., D)`` broadcastable with ``u``; ``u (B, D)`` with ``v (B, K, D)`` scores each
            row of ``u`` against its K candidates.
        kind: ``"dot"`` or ``"cosine"``.
        temperature: the scores are divided by it (> 0).

    Returns:
        ``(...)``: e.g. ``(B,)`` for ``(B, D), (B, D)`` and ``(B, K)`` for ``(B, D), (B, K, D)``.

    Example:
        >>> score(torch.tensor([[3., 4.]]), torch.tensor([[4., 3.]]), "cosine")
        tensor([0.9600])
    """
    u, v = checked_tensor("u", u), checked_tensor("v", v)
    if kind not in SCORE_KINDS:
        raise ValueError(f"kind: expected one of {SCORE_KINDS}, got {kind!r}")
    t = checked_temperature(temperature)
    if u.shape[-1] != v.shape[-1]:
        raise ValueError(f"v: expected last dimension {u.shape[-1]} (that of u), got {v.shape[-1]}")
    if u.dim() == 2 and v.dim() == 3:
        if v.shape[0] != u.shape[0]:
            raise ValueError(f"v: expected (B={u.shape[0]}, K, D) candidates for u (B, D), got {tuple(v.shape)}")
        u = u.unsqueeze(1)
    if kind == "cosine":
        u, v = F.normalize(u, dim=-1), F.normalize(v, dim=-1)
    try:
        s = (u * v).sum(-1)
    except RuntimeError as err:
        raise ValueError(f"v: shape {tuple(v.shape)} does not broadcast with u {tuple(u.shape)}") from err
    return s / t if t != 1.0 else s


def with_score_bias(u: torch.Tensor, v: torch.Tensor, n: torch.Tensor, bias: torch.Tensor, pos_ids: torch.Tensor,
                    neg_ids: torch.Tensor, kind: str = "dot", temperature: float = 1.0):
    """Sources, positives and negatives as scoring vectors whose plain dot is ``score + bias[dst]``.

    ``u' = [s(u) / t, 1]``, ``v' = [s(v), bias[pos_ids]]``, ``n' = [s(n), bias[neg_ids]]`` with
    ``s`` the L2 normalisation for ``"cosine"`` (identity for ``"dot"``): every loss then scores
    them with ``kind="dot", temperature=1`` (the fused shared-negative softmax included), and the
    bias gets its gradient through the last column. The layout of the exported vectors
    (:mod:`graphlake.training.scoring`).

    Args:
        u: ``(B, D)`` sources; v: ``(B, D)`` their positives; n: ``(M, D)`` negatives.
        bias: ``(N,)`` one scalar per destination node; pos_ids ``(B,)`` / neg_ids ``(M,)`` int64
            rows of it for ``v`` / ``n``.
        kind, temperature: as :func:`score`.

    Returns:
        ``(u', v', n')``, each one column wider.

    Example:
        >>> u2, v2, n2 = with_score_bias(u, v, n, model.score_bias["item"], pos_ids, neg_ids, "cosine", 0.1)
        >>> loss = shared_softmax_loss(u2, v2, n2, "dot", 1.0, pos_ids=pos_ids, neg_ids=neg_ids)
    """
    u, v, n, bias = checked_tensor("u", u), checked_tensor("v", v), checked_tensor("n", n), checked_tensor("bias", bias)
    if kind not in SCORE_KINDS:
        raise ValueError(f"kind: expected one of {SCORE_KINDS}, got {kind!r}")
    t = checked_temperature(temperature)
    if bias.dim() != 1:
        raise ValueError(f"bias: expected one scalar per destination node (N,), got shape {tuple(bias.shape)}")
    for name, ids, rows in (("pos_ids", pos_ids, v), ("neg_ids", neg_ids, n)):
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64 or tuple(ids.shape) != (len(rows),):
            got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ValueError(f"{name}: expected int64 ({len(rows)},) rows of bias, got {got}")
    if kind == "cosine":
        u, v, n = F.normalize(u, dim=-1), F.normalize(v, dim=-1), F.normalize(n, dim=-1)
    ones = torch.ones((len(u), 1), dtype=u.dtype, device=u.device)
    return (torch.cat([u / t, ones], dim=1), torch.cat([v, bias.index_select(0, pos_ids).unsqueeze(1)], dim=1),
            torch.cat([n, bias.index_select(0, neg_ids).unsqueeze(1)], dim=1))


def _pos_neg(pos_scores, neg_scores) -> tuple[torch.Tensor, torch.Tensor]:
    pos, neg = checked_tensor("pos_scores", pos_scores), checked_tensor("neg_scores", neg_scores)
    if pos.dim() != 1:
        raise ValueError(f"pos_scores: expected shape (B,), got {tuple(pos.shape)}")
    if neg.dim() == 1:
        neg = neg.unsqueeze(1)
    if neg.dim() != 2 or neg.shape[0] != pos.shape[0] or neg.shape[1] < 1:
        raise ValueError(f"neg_scores: expected shape ({pos.shape[0]}, K) or ({pos.shape[0]},), "
                         f"got {tuple(neg_scores.shape)}")
    return pos, neg


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """BPR loss: the mean over all ``B * K`` pairs of ``-log sigmoid(pos_b - neg_bk)``.

    Args:
        pos_scores: ``(B,)``.
        neg_scores: ``(B, K)`` (or ``(B,)``: one negative each).

    Example:
        >>> bpr_loss(torch.tensor([2.0, 0.0]), torch.tensor([[1.0], [0.0]]))  # (log(1+e^-1) + log 2) / 2
        tensor(0.5032)
    """
    pos, neg = _pos_neg(pos_scores, neg_scores)
    return F.softplus(neg - pos.unsqueeze(1)).mean()  # softplus(-x) == -logsigmoid(x), stable


def sampled_softmax_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor, temperature: float = 1.0,
                         log_q_correction: torch.Tensor | None = None) -> torch.Tensor:
    """Sampled softmax: ``mean_b [logsumexp(l_b) - l_b0]`` with logits ``l = [pos, neg] / temperature``.

    Args:
        pos_scores: ``(B,)``.
        neg_scores: ``(B, K)`` (or ``(B,)``).
        temperature: > 0.
        log_q_correction: log-probabilities of the candidates under the negative sampler,
            subtracted from the (temperature-scaled) logits: ``(K,)`` (shared negatives) or
            ``(B, K)`` for the negatives only, or ``(B, 1 + K)`` for the positive (column 0) and
            the negatives. None: no correction (uniform negatives).

    Example:
        >>> sampled_softmax_loss(torch.tensor([1.0]), torch.tensor([[0.0, 0.0]]))  # log(e + 2) - 1
        tensor(0.5514)
    """
    pos, neg = _pos_neg(pos_scores, neg_scores)
    t = checked_temperature(temperature)
    if log_q_correction is None:  # no (B, 1 + K) copy: logsumexp([pos, neg]) = logaddexp(pos, logsumexp(neg))
        if t != 1.0:
            pos, neg = pos / t, neg / t
        return (torch.logaddexp(pos, torch.logsumexp(neg, dim=1)) - pos).mean()
    logits = torch.cat([pos.unsqueeze(1), neg], dim=1) / t
    log_q = checked_tensor("log_q_correction", log_q_correction).to(logits.dtype)
    b, k = neg.shape
    if tuple(log_q.shape) in ((k,), (b, k)):
        logits = torch.cat([logits[:, :1], logits[:, 1:] - log_q], dim=1)
    elif tuple(log_q.shape) == (b, 1 + k):
        logits = logits - log_q
    else:
        raise ValueError(f"log_q_correction: expected shape ({k},), ({b}, {k}) or ({b}, {1 + k}), "
                         f"got {tuple(log_q.shape)}")
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def shared_negative_scores(u: torch.Tensor, n: torch.Tensor, kind: str = "dot", temperature: float = 1.0,
                           pos_ids: torch.Tensor | None = None, neg_ids: torch.Tensor | None = None,
                           fill: float = -1e9) -> torch.Tensor:
    """Scores of every row of ``u`` against ONE shared set of negatives, by one matmul; a negative
    that is the row's own positive gets ``fill`` (e.g. -1e9 for softmax, 0 for BPR).

    The same values as ``score(u[:, None], n[None], kind, temperature).masked_fill(pos_ids[:, None]
    == neg_ids[None], fill)`` with fewer passes over the ``(B, K)`` matrix (the temperature is
    folded into ``u``; only the rows whose positive is among the negatives are compared).

    Args:
        u: ``(B, D)`` source embeddings.
        n: ``(K, D)`` the shared negatives' embeddings.
        kind: ``"dot"`` or ``"cosine"``.
        temperature: > 0.
        pos_ids / neg_ids: ``(B,)`` / ``(K,)`` node ids of each row's positive and of the
            negatives; both or neither (None: no masking).
        fill: the score of a masked (row, negative) pair.

    Returns:
        ``(B, K)``.

    Example:
        >>> shared_negative_scores(torch.eye(2), torch.eye(2), pos_ids=torch.tensor([5, 6]),
        ...                        neg_ids=torch.tensor([6, 7]), fill=-9.0)
        tensor([[1., 0.],
                [-9., 1.]])
    """
    u, n = checked_tensor("u", u), checked_tensor("n", n)
    if kind not in SCORE_KINDS:
        raise ValueError(f"kind: expected one of {SCORE_KINDS}, got {kind!r}")
    if u.dim() != 2 or n.dim() != 2 or u.shape[1] != n.shape[1]:
        raise ValueError(f"n: expected (K, {u.shape[-1]}) negatives for u (B, D), got u {tuple(u.shape)}, "
                         f"n {tuple(n.shape)}")
    masked = masked_pairs(pos_ids, neg_ids, u.shape[0], n.shape[0])
    t = checked_temperature(temperature)
    if kind == "cosine":
        u, n = F.normalize(u, dim=-1), F.normalize(n, dim=-1)
    scores = (u / t if t != 1.0 else u) @ n.t()
    if masked is not None:  # in place: the matmul's backward needs its inputs, not this output
        scores.index_put_(masked, torch.tensor(fill, dtype=scores.dtype, device=scores.device))
    return scores


def masked_pairs(pos_ids: torch.Tensor | None, neg_ids: torch.Tensor | None, b: int,
                 k: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The checked ``(rows, cols)`` of :func:`positive_collisions` for ``b`` rows and ``k`` shared
    negatives; None when no ids are given or no negative is a row's positive.

    Raises:
        ValueError: only one of ``pos_ids`` / ``neg_ids``, or shapes other than ``(b,)`` / ``(k,)``.
    """
    if (pos_ids is None) != (neg_ids is None):
        raise ValueError("pos_ids / neg_ids: give both or neither")
    if pos_ids is None:
        return None
    if tuple(pos_ids.shape) != (b,) or tuple(neg_ids.shape) != (k,):
        raise ValueError(f"pos_ids / neg_ids: expected shapes ({b},) / ({k},), "
                         f"got {tuple(pos_ids.shape)} / {tuple(neg_ids.shape)}")
    rows, cols = positive_collisions(pos_ids, neg_ids)
    return (rows, cols) if len(rows) else None


def positive_collisions(pos_ids: torch.Tensor, neg_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, cols)``: every pair where shared negative ``cols[i]`` is row ``rows[i]``'s own positive.

    Only the rows whose positive is among the negatives are compared (no ``(B, K)`` comparison).

    Args:
        pos_ids: ``(B,)`` each row's positive id.
        neg_ids: ``(K,)`` the shared negatives' ids.

    Example:
        >>> positive_collisions(torch.tensor([5, 6, 6]), torch.tensor([6, 7]))
        (tensor([1, 2]), tensor([0, 0]))
    """
    rows = torch.isin(pos_ids, neg_ids).nonzero().squeeze(1)
    if len(rows) == 0:
        return rows, rows
    r, c = (pos_ids.index_select(0, rows).unsqueeze(1) == neg_ids.unsqueeze(0)).nonzero(as_tuple=True)
    return rows.index_select(0, r), c


def l2_regularisation(*tensors: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """LightGCN's embedding regulariser: ``0.5 * sum_t ||t||^2 / batch_size``.

    Args:
        tensors: the batch's ego embeddings (e.g. users, positive items, negative items).
        batch_size: the divisor; default the number of rows of the first tensor.

    Example:
        >>> l2_regularisation(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0]]))  # 0.5 * 14 / 1
        tensor(7.)
    """
    if not tensors:
        raise ValueError("tensors: expected at least one tensor")
    ts = [checked_tensor(f"tensors[{i}]", x) for i, x in enumerate(tensors)]
    if batch_size is None:
        batch_size = ts[0].shape[0] if ts[0].dim() else 1
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    total = ts[0].pow(2).sum()
    for x in ts[1:]:
        total = total + x.pow(2).sum()
    return 0.5 * total / batch_size
