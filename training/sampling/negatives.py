"""Negative items for link prediction: a deterministic mix of uniform, popularity, in-batch and hard negatives.

Strategies (``strategy_mix`` maps a subset of them to fractions that sum to 1):

* ``"uniform"``: item ids uniform over ``0..num_items-1`` (over ``candidates`` when given).
* ``"popularity"``: ``P(i) ∝ degrees[i] ** popularity_exponent`` (0.75 by default, as in
  word2vec), by inverse CDF (float64 cumulative sum + ``searchsorted``).
* ``"in_batch"``: the positive item of another, uniformly chosen row of the batch (never the
  row's own; with a batch of one row, uniform items instead).
* ``"hard"``: per user, a pool of ``hard_pool_size`` uniform items is scored with the current
  model (``user_emb[b] · item_emb[pool]``) and the best-scored pool items that are not a
  positive of the user are kept: hard, "almost positive" negatives. ``item_emb`` is either a
  ``(num_items, dim)`` tensor or a function ``ids int64 (K,) -> (K, dim)``; ``user_emb`` is
  ``(B, dim)``, row ``b`` for ``pos_src[b]``. Scoring runs without gradients. The pool is
  drawn with replacement; repeats of an item in a pool count once (ranked last), so the hard
  negatives of a row are distinct unless its pool has fewer distinct items than requested.

The ``num_negatives`` columns are split by largest-remainder rounding of ``fraction *
num_negatives`` (ties go to the strategy listed first in ``STRATEGIES``) and laid out in the
order of ``STRATEGIES``, so the split is the same for every call.

Accidental positives: a negative equal to the row's positive item or (when ``positives``, the
users' CSR rows, is given) to any item of the user's row is a collision. Uniform and popularity
negatives are redrawn once where they collide; a rare collision may remain after that one redraw.
Hard negatives never return a known positive (positives rank below every other distinct pool item;
only a pool with fewer distinct non-positives than requested can still return one).

Example:
    >>> ns = NegativeSampler(num_items=100_000, strategy_mix={"uniform": 0.5, "popularity": 0.5},
    ...                      degrees=item_degrees, positives=graph.csr(("item", "rev_click", "user"))[:2])
    >>> neg = ns.sample(src, dst, 8, torch.Generator().manual_seed(0))    # int64 (B, 8)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from graphlake.training.sampling.graph import csr_rows

STRATEGIES = ("uniform", "popularity", "in_batch", "hard")


def split_counts(strategy_mix: Mapping[str, float], num_negatives: int) -> dict[str, int]:
    """``{strategy: columns}`` summing to ``num_negatives`` (largest remainder; ties by ``STRATEGIES`` order).

    Example:
        >>> split_counts({"uniform": 0.5, "hard": 0.5}, 3)
        {'uniform': 2, 'hard': 1}
    """
    names = [s for s in STRATEGIES if s in strategy_mix]
    exact = [strategy_mix[s] * num_negatives for s in names]
    counts = [math.floor(x + 1e-9) for x in exact]
    rest = num_negatives - sum(counts)
    order = sorted(range(len(names)), key=lambda i: (-round(exact[i] - counts[i], 9), i))
    for i in order[:max(rest, 0)]:
        counts[i] += 1
    return dict(zip(names, counts))


class NegativeSampler:
    """Samples negative item ids for (user, item) positive pairs (see the module docstring).

    Args:
        num_items: number of items (ids ``0..num_items-1``).
        strategy_mix: ``{strategy: fraction}``, strategies from ``STRATEGIES``, fractions >= 0
            summing to 1 (within 1e-6).
        degrees: ``(num_items,)`` item degrees (any real dtype, >= 0, positive sum); required by
            ``"popularity"``.
        positives: optional ``(indptr (num_users+1,), indices)`` CSR of every user's positive
            items, rows sorted by id (e.g. ``graph.csr(("item", "rev_click", "user"))[:2]``).
        popularity_exponent: the exponent applied to ``degrees``.
        hard_pool_size: items scored per user for ``"hard"`` (>= its column count).
        candidates: optional int64 ``(C,)`` item ids that uniform draws (and hard pools) come
            from, e.g. every item but the held-out cold-start ones; None = all items. Popularity
            draws follow ``degrees`` (an item of degree 0 is never drawn).

    Example:
        >>> ns = NegativeSampler(5, {"popularity": 1.0}, degrees=torch.tensor([9, 1, 0, 0, 0]))
        >>> ns.sample(torch.tensor([0]), torch.tensor([3]), 4, torch.Generator().manual_seed(0))
    """

    def __init__(self, num_items: int, strategy_mix: Mapping[str, float], degrees: torch.Tensor | None = None,
                 positives: tuple | None = None, popularity_exponent: float = 0.75, hard_pool_size: int = 64,
                 candidates: torch.Tensor | None = None):
        if isinstance(num_items, bool) or not isinstance(num_items, int) or num_items < 1:
            raise ValueError(f"num_items: expected an int >= 1, got {num_items!r}")
        if not isinstance(strategy_mix, Mapping) or not strategy_mix:
            raise ValueError(f"strategy_mix: expected a non-empty mapping strategy -> fraction, got {strategy_mix!r}")
        for s, f in strategy_mix.items():
            if s not in STRATEGIES:
                raise ValueError(f"strategy_mix: unknown strategy {s!r}; expected one of {list(STRATEGIES)}")
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or f < 0:
                raise ValueError(f"strategy_mix[{s!r}]: expected a fraction >= 0, got {f!r}")
        total = sum(strategy_mix.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"strategy_mix: expected fractions summing to 1, got {total:.6g}")
        if isinstance(hard_pool_size, bool) or not isinstance(hard_pool_size, int) or hard_pool_size < 1:
            raise ValueError(f"hard_pool_size: expected an int >= 1, got {hard_pool_size!r}")
        self.num_items, self.strategy_mix = num_items, dict(strategy_mix)
        self.hard_pool_size = hard_pool_size
        self._candidates = None
        if candidates is not None:
            if not isinstance(candidates, torch.Tensor) or candidates.dtype != torch.int64 or candidates.dim() != 1:
                got = getattr(candidates, "dtype", type(candidates).__name__)
                raise TypeError(f"candidates: expected a 1-D int64 tensor, got {got}")
            if len(candidates) == 0 or int(candidates.min()) < 0 or int(candidates.max()) >= num_items:
                raise ValueError(f"candidates: expected a non-empty set of item ids in 0..{num_items - 1}")
            self._candidates = candidates
        self._cdf = None
        if degrees is not None:
            self._cdf = _popularity_cdf(degrees, num_items, popularity_exponent)
        elif strategy_mix.get("popularity", 0) > 0:
            raise ValueError("degrees: required by the 'popularity' strategy, got None")
        self._positives = None
        if positives is not None:
            if not isinstance(positives, (tuple, list)) or len(positives) < 2:
                raise ValueError("positives: expected (indptr, indices) of the users' CSR rows")
            indptr, indices = positives[0], positives[1]
            for arg, t in (("positives indptr", indptr), ("positives indices", indices)):
                if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or t.dim() != 1:
                    raise TypeError(f"{arg}: expected a 1-D int64 tensor, got "
                                    f"{getattr(t, 'dtype', type(t).__name__)}")
            if len(indptr) < 1 or int(indptr[-1]) != len(indices):
                raise ValueError(f"positives: indptr[-1] must equal len(indices) = {len(indices)}")
            self._positives = (indptr, indices)
            # rows sorted, each row's items sorted: user * num_items + item is one sorted key array,
            # so a membership test is one searchsorted over all queries
            self._positive_keys = csr_rows(indptr) * num_items + indices

    def sample(self, pos_src: torch.Tensor, pos_dst: torch.Tensor, num_negatives: int,
               generator: torch.Generator | None = None, user_emb: torch.Tensor | None = None,
               item_emb: torch.Tensor | Callable | None = None) -> torch.Tensor:
        """Negative item ids for each positive pair.

        Args:
            pos_src: int64 ``(B,)`` user ids; pos_dst: int64 ``(B,)`` their positive items.
            num_negatives: columns of the result (>= 1).
            generator: the source of randomness (same state -> same negatives).
            user_emb: ``(B, dim)`` embeddings of ``pos_src`` (``"hard"`` only).
            item_emb: ``(num_items, dim)`` tensor or ``ids -> (K, dim)`` function (``"hard"`` only).
        Returns:
            int64 ``(B, num_negatives)`` item ids in ``0..num_items-1``.
        """
        pos_src, pos_dst = self._check_pairs(pos_src, pos_dst)
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1:
            raise ValueError(f"num_negatives: expected an int >= 1, got {num_negatives!r}")
        b = len(pos_src)
        parts = []
        for strategy, n in split_counts(self.strategy_mix, num_negatives).items():
            if n == 0:
                continue
            if strategy == "uniform":
                parts.append(self._rejecting(pos_src, pos_dst, n, generator, self._uniform))
            elif strategy == "popularity":
                parts.append(self._rejecting(pos_src, pos_dst, n, generator, self._popular))
            elif strategy == "in_batch":
                parts.append(self._in_batch(pos_dst, n, generator))
            else:
                parts.append(self._hard(pos_src, pos_dst, n, generator, user_emb, item_emb))
        return torch.cat(parts, dim=1) if parts else torch.zeros((b, 0), dtype=torch.int64)

    # ---------------------------------------------------------------- strategies
    def _uniform(self, shape, generator) -> torch.Tensor:
        if self._candidates is not None:
            pick = torch.randint(0, len(self._candidates), shape, generator=generator, dtype=torch.int64)
            return self._candidates.index_select(0, pick.reshape(-1)).reshape(shape)
        return torch.randint(0, self.num_items, shape, generator=generator, dtype=torch.int64)

    def _popular(self, shape, generator) -> torch.Tensor:
        u = torch.rand(shape, generator=generator, dtype=torch.float64)
        return torch.searchsorted(self._cdf, u, right=True).clamp(max=self.num_items - 1)

    def _rejecting(self, src, dst, n, generator, draw) -> torch.Tensor:
        """Draw ``(B, n)``; redraw once the entries that are a known positive of their row."""
        neg = draw((len(src), n), generator)
        hit = self._collides(src, dst, neg)
        redo = torch.nonzero(hit.reshape(-1)).flatten()
        if len(redo):
            flat = neg.reshape(-1)
            flat.index_copy_(0, redo, draw((len(redo),), generator))
            neg = flat.reshape(len(src), n)
        return neg

    def _in_batch(self, dst, n, generator) -> torch.Tensor:
        b = len(dst)
        if b < 2:
            return self._uniform((b, n), generator)
        shift = torch.randint(1, b, (b, n), generator=generator, dtype=torch.int64)
        other = (torch.arange(b, dtype=torch.int64).unsqueeze(1) + shift) % b
        return dst.index_select(0, other.reshape(-1)).reshape(b, n)

    def _hard(self, src, dst, n, generator, user_emb, item_emb) -> torch.Tensor:
        b = len(src)
        if n > self.hard_pool_size:
            raise ValueError(f"hard_pool_size: expected >= the {n} hard negatives per row, got {self.hard_pool_size}")
        if not isinstance(user_emb, torch.Tensor) or user_emb.dim() != 2 or len(user_emb) != b:
            raise ValueError(f"user_emb: the 'hard' strategy needs a (B={b}, dim) tensor, got "
                             f"{tuple(user_emb.shape) if isinstance(user_emb, torch.Tensor) else user_emb!r}")
        if item_emb is None or not (isinstance(item_emb, torch.Tensor) or callable(item_emb)):
            raise ValueError(f"item_emb: the 'hard' strategy needs a (num_items, dim) tensor or a function ids -> "
                             f"embeddings, got {type(item_emb).__name__}")
        pool = torch.sort(self._uniform((b, self.hard_pool_size), generator), dim=1).values
        repeat = torch.cat([torch.zeros((b, 1), dtype=torch.bool), pool[:, 1:] == pool[:, :-1]], dim=1)
        with torch.no_grad():
            flat = pool.reshape(-1)
            emb = item_emb.index_select(0, flat) if isinstance(item_emb, torch.Tensor) else item_emb(flat)
            if not isinstance(emb, torch.Tensor) or emb.shape != (len(flat), user_emb.shape[1]):
                raise ValueError(f"item_emb: expected embeddings of shape ({len(flat)}, {user_emb.shape[1]}), got "
                                 f"{tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__}")
            scores = torch.bmm(emb.reshape(b, self.hard_pool_size, -1).to(user_emb.dtype),
                               user_emb.detach().unsqueeze(2)).squeeze(2).to(torch.float64)
        scores = scores.masked_fill(repeat, float("-inf")).masked_fill(self._collides(src, dst, pool), -1e300)
        top = torch.topk(scores, n, dim=1, sorted=True).indices
        return torch.gather(pool, 1, top)

    # ---------------------------------------------------------------- helpers
    def _collides(self, src, dst, neg) -> torch.Tensor:
        """Bool like ``neg``: the item is the row's positive or in the user's CSR row."""
        hit = neg == dst.unsqueeze(1)
        if self._positives is not None and len(self._positive_keys):
            keys = (src.unsqueeze(1) * self.num_items + neg).reshape(-1)
            at = torch.searchsorted(self._positive_keys, keys).clamp(max=len(self._positive_keys) - 1)
            hit |= (self._positive_keys.index_select(0, at) == keys).reshape(neg.shape)
        return hit

    def _check_pairs(self, pos_src, pos_dst) -> tuple[torch.Tensor, torch.Tensor]:
        for arg, t in (("pos_src", pos_src), ("pos_dst", pos_dst)):
            if not isinstance(t, torch.Tensor) or t.dtype != torch.int64:
                raise TypeError(f"{arg}: expected an int64 tensor, got {getattr(t, 'dtype', type(t).__name__)}")
            if t.dim() != 1:
                raise ValueError(f"{arg}: expected a 1-D tensor, got shape {tuple(t.shape)}")
        if len(pos_src) != len(pos_dst):
            raise ValueError(f"pos_src, pos_dst: expected the same length, got {len(pos_src)} and {len(pos_dst)}")
        if len(pos_dst) and (int(pos_dst.min()) < 0 or int(pos_dst.max()) >= self.num_items):
            raise ValueError(f"pos_dst: expected item ids in 0..{self.num_items - 1}, "
                             f"got [{int(pos_dst.min())}, {int(pos_dst.max())}]")
        if self._positives is not None and len(pos_src):
            n_users = len(self._positives[0]) - 1
            if int(pos_src.min()) < 0 or int(pos_src.max()) >= n_users:
                raise ValueError(f"pos_src: expected user ids in 0..{n_users - 1}, "
                                 f"got [{int(pos_src.min())}, {int(pos_src.max())}]")
        return pos_src, pos_dst


def _popularity_cdf(degrees, num_items: int, exponent: float) -> torch.Tensor:
    if not isinstance(degrees, torch.Tensor):
        raise TypeError(f"degrees: expected a torch tensor, got {type(degrees).__name__}")
    if degrees.dtype == torch.bool or degrees.dtype.is_complex:
        raise TypeError(f"degrees: expected a real tensor, got dtype {degrees.dtype}")
    if degrees.shape != (num_items,):
        raise ValueError(f"degrees: expected shape ({num_items},), got {tuple(degrees.shape)}")
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)) or not math.isfinite(exponent):
        raise ValueError(f"popularity_exponent: expected a finite number, got {exponent!r}")
    d = degrees.to(torch.float64)
    if not bool(torch.isfinite(d).all()) or float(d.min()) < 0:
        raise ValueError("degrees: expected finite values >= 0")
    p = torch.where(d > 0, d.pow(exponent), torch.zeros_like(d))
    total = float(p.sum())
    if total <= 0:
        raise ValueError("degrees: expected at least one item with degree > 0")
    cdf = torch.cumsum(p, 0) / total
    cdf[-1] = 1.0
    return cdf
