"""Asset configuration: the quality gate's thresholds and the ANN index choice.

Example:
    >>> from graphlake.core.config import load_config
    >>> cfg = load_config(AssetConfig, {"min_category_lift": 2.0, "max_regression": 0.02})
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INDEX_KINDS = ("auto", "flat", "ivf", "hnsw")


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
        index: ``flat`` (exact inner product), ``ivf`` (approximate: FAISS ``IndexIVFFlat``),
            ``hnsw`` (approximate) or ``auto`` (flat up to ``flat_max_items`` items, ivf above).
        flat_max_items: the ``auto`` threshold (50k: above it an exact search costs more than
            ~0.1 ms per query on one core; see docs/assets-and-sql.md, "Speed and indexes").
        ivf_nlist: IVF lists; 0 = ``round(4 * sqrt(rows))`` (at most ``rows / 39``: k-means
            wants about 39 training vectors per list).
        ivf_nprobe: lists searched per query; 0 = calibrated when the index is built: the smallest
            of 1, 2, 3, 4, 6, 8, 12, ... whose recall@``ivf_calibration_k`` against the exact search reaches
            ``ivf_target_recall`` on a seeded sample of ``ivf_calibration_queries`` queries (half
            item vectors, half means of two random item vectors: multi-interest user-like queries).
        ivf_train_max: k-means training vectors (a seeded sample; bounded, whatever the rows).
        hnsw_m / hnsw_ef_search: HNSW graph degree and search breadth.
        output_k: answers per user and per item written to ``assets/recommendations`` and
            ``assets/similar_items`` with each published version (for readers without Spark;
            :mod:`graphlake.assets.outputs`); 0 writes none.
        seed: seed of the gate's sample and of the IVF training / calibration samples.
    """

    min_norm: float = 1e-6
    max_norm: float = 1e4
    min_category_lift: float = 1.5
    nn_k: int = 10
    nn_sample: int = 2000
    max_regression: float = 0.05
    require_metrics: bool = True
    index: str = "auto"
    flat_max_items: int = 50_000
    ivf_nlist: int = 0
    ivf_nprobe: int = 0
    ivf_target_recall: float = 0.95
    ivf_calibration_queries: int = 2000
    ivf_calibration_k: int = 20
    ivf_train_max: int = 100_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    output_k: int = 20
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
        for name in ("nn_k", "nn_sample", "flat_max_items", "hnsw_m", "hnsw_ef_search", "ivf_calibration_queries",
                     "ivf_calibration_k", "ivf_train_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        for name in ("ivf_nlist", "ivf_nprobe"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}: expected an int >= 0 (0 = automatic), got {v!r}")
        k = self.output_k
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= 1000:
            raise ValueError(f"output_k: expected an int in 0..1000 (0 = no outputs), got {k!r}")
        t = self.ivf_target_recall
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 1:
            raise ValueError(f"ivf_target_recall: expected a number in (0, 1], got {t!r}")
        if self.index not in INDEX_KINDS:
            raise ValueError(f"index: expected one of {list(INDEX_KINDS)}, got {self.index!r}")
        if not isinstance(self.require_metrics, bool):
            raise TypeError(f"require_metrics: expected a bool, got {type(self.require_metrics).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed: expected an int, got {type(self.seed).__name__}")
