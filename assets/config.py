"""Asset configuration: the quality gate's thresholds and the ANN index choice.

Example:
    >>> from graphlake.config import load_config
    >>> cfg = load_config(AssetConfig, {"min_category_lift": 2.0, "max_regression": 0.02})
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INDEX_KINDS = ("auto", "flat", "hnsw")


@dataclass(frozen=True)
class AssetConfig:
    """Gate thresholds and index options.

    Args:
        min_norm / max_norm: every embedding's L2 norm must lie in ``[min_norm, max_norm]``.
        min_category_lift: item assets: the share of an item's ``nn_k`` nearest neighbours that
            share its leaf category, divided by the share expected by chance, must be at least this.
        nn_k: neighbours per sampled item for that check.
        nn_sample: items sampled (deterministically, ``seed``) for that check: a bounded sample.
        max_regression: a candidate's evaluation metrics (recall@K, ndcg@K) may be at most this
            fraction below the production version's.
        require_metrics: fail the gate when production has metrics and the candidate has none.
        index: ``flat`` (exact inner product), ``hnsw`` (approximate) or ``auto`` (flat up to
            ``flat_max_items`` items).
        flat_max_items: the ``auto`` threshold.
        hnsw_m / hnsw_ef_search: HNSW graph degree and search breadth.
        seed: seed of the gate's sample.
    """

    min_norm: float = 1e-6
    max_norm: float = 1e4
    min_category_lift: float = 1.5
    nn_k: int = 10
    nn_sample: int = 2000
    max_regression: float = 0.05
    require_metrics: bool = True
    index: str = "auto"
    flat_max_items: int = 200_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    seed: int = 0

    def __post_init__(self):
        for name in ("min_norm", "max_norm", "min_category_lift", "max_regression"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")
        if self.min_norm >= self.max_norm:
            raise ValueError(f"min_norm: expected < max_norm ({self.max_norm}), got {self.min_norm!r}")
        if self.max_regression >= 1:
            raise ValueError(f"max_regression: expected a fraction in [0, 1), got {self.max_regression!r}")
        for name in ("nn_k", "nn_sample", "flat_max_items", "hnsw_m", "hnsw_ef_search"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if self.index not in INDEX_KINDS:
            raise ValueError(f"index: expected one of {list(INDEX_KINDS)}, got {self.index!r}")
        if not isinstance(self.require_metrics, bool):
            raise TypeError(f"require_metrics: expected a bool, got {type(self.require_metrics).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed: expected an int, got {type(self.seed).__name__}")
