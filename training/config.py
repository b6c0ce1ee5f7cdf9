"""``graphlake train`` configuration: one frozen, self-checking dataclass (YAML section ``train:``).

Example YAML::

    train:
      targets: [user__purchase__item, user__click__item]   # link-prediction objectives
      mode: sampled              # or "full": LightGCN-style full-graph propagation per step
      fanouts: [10, 5]
      batch_size: 1024
      epochs: 5
      lr: 0.005
      negatives: {uniform: 0.5, popularity: 0.5}
      model: {hidden_dim: 64, num_layers: 2, aggr: weighted_mean, combine: attention}

Example:
    >>> cfg = load_config(TrainConfig, "train.yaml", section="train")
    >>> cfg.fanouts, cfg.model_config().num_layers
    ((10, 5), 2)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from graphlake.core.edge_types import parse_edge_type

MODES = ("sampled", "full")
INFERENCES = ("sampled", "layerwise")
LOSSES = ("bpr", "sampled_softmax")
OPTIMIZERS = ("adam", "adagrad", "sgd")
LR_SCHEDULES = ("constant", "cosine", "linear")
NEGATIVE_STRATEGIES = ("uniform", "popularity", "in_batch", "hard")


def _int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected >= {minimum}, got {value}")
    return value


def _float(name: str, value, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    if value < minimum or (strict and value == minimum):
        raise ValueError(f"{name}: expected {'>' if strict else '>='} {minimum}, got {value}")
    return float(value)


def _edge_type(name: str, value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected an edge type '<src>__<rel>__<dst>', got {value!r}")
    return str(parse_edge_type(value, name))


@dataclass(frozen=True)
class TrainConfig:
    """Rules of a training run.

    Attributes:
        targets: stored edge types whose edges are the positive pairs (link prediction); empty
            = every ``user__<behaviour>__item`` edge type (``graphlake.training.run_data.default_targets``).
            ``graphlake train --config C --target purchase`` trains the target behaviour alone, the
            other behaviours staying in the graph as relations; without ``--config`` the recipe
            (:mod:`graphlake.training.recipe`) trains the other behaviours as auxiliary targets too.
        target_weights: loss weight per target edge type (default 1.0 each): a step's loss is
            ``sum_e w_e * B_e * loss_e / sum_e w_e * B_e`` over its targets ``e`` with ``B_e``
            positives, so ``{user__purchase__item: 1.0, user__fav__item: 0.3}`` trains collects
            as an auxiliary objective at a third of a purchase's weight. Keys are edge types of
            ``targets`` (a run whose targets are the defaults may name any ``user__<b>__item``).
        edge_types: stored edge types used for message passing; empty = every edge type.
        mode: ``sampled`` (mini-batches over sampled neighbourhoods; scales to any graph) or
            ``full`` (every step propagates over the whole graph: LightGCN's training).
        fanouts: neighbours sampled per layer, seeds' direct neighbours first (``-1`` = all);
            its length is the number of layers in ``sampled`` mode.
        weighted_sampling: sample neighbours proportionally to edge weight (else uniformly).
        batch_size: positive pairs per step over all workers (each rank takes its share).
        epochs, lr, weight_decay, optimizer: the optimisation (``weight_decay`` applies to dense
            parameters; ``l2`` is LightGCN's penalty on the batch's embeddings).
        lr_schedule: ``constant`` (default), or the learning rate of step ``t`` of ``T`` (all
            epochs) decays from ``lr`` to ``lr * final_lr_ratio``: ``cosine``
            (``r + (1 - r) (1 + cos(pi t / T)) / 2``) or ``linear`` (``1 - (1 - r) t / T``). A
            function of the global step only, so a resumed run follows the same schedule.
        num_negatives: negatives per positive; ``negatives``: mix of strategies (fractions sum to 1):
            ``uniform``, ``popularity``, ``in_batch``, ``hard`` (per positive, the top-scored items
            of a random pool for its user, scored with the run's vectors as of the start of the
            epoch: one inference pass per epoch; needs ``shared_negatives: false``).
        shared_negatives: one set of ``num_negatives`` per step shared by the whole batch (scored
            with one matrix product: many negatives at little cost; a negative equal to a row's
            positive is masked for that row). Per-positive negatives when false.
        loss: ``bpr`` or ``sampled_softmax`` (scores divided by ``model.temperature``).
        validation_fraction: share of each target's positives held out for the validation metric
            per epoch (never the test set); 0 disables it. ``eval_k``: the K of Recall/NDCG@K.
        cold_start_fraction: share of the targets' items (those with a target edge) held out of
            training entirely, chosen from ``seed`` (``graphlake.training.cold_start``: their interaction
            edges are removed, their ID embeddings never used, the list is saved as
            ``<run_dir>/cold_start_items.json``); ``graphlake evaluate`` then ranks them by their
            feature-only embeddings. 0 (default) holds nothing out.
        checkpoint_every: steps between checkpoints (one is always written at the end of an epoch).
        seed: every random choice derives from it (same inputs + seed -> same embeddings).
        inference: how ``mode: sampled`` runs embed every node (the tables a run writes, its
            validation, its hard-negative pools, ``embed-new``): ``layerwise`` (default) over every
            neighbour, one layer at a time for all nodes (:mod:`graphlake.training.layerwise`: exact, one
            pass over the edges per layer; on Gowalla's validation slice Recall@20 0.157 vs 0.149
            sampled, same model), or ``sampled`` over sampled neighbourhoods of ``fanouts`` (fixed
            seeds; device and host memory bounded by a mini-batch). ``mode: full`` always
            propagates over the whole graph.
        inference_batch_size: nodes per inference mini-batch (``sampled``) or chunk (``layerwise``).
        prefetch: prepare the next step (positives, negatives, neighbour sampling) in a background
            thread while the current one trains (:mod:`graphlake.training.prefetch`); the same steps and
            results either way, only faster. False runs everything in the training thread.
        model: the model's settings (``graphlake.training.model.ModelConfig`` fields).
    """

    targets: tuple = ()
    target_weights: dict = field(default_factory=dict)
    edge_types: tuple = ()
    mode: str = "sampled"
    fanouts: tuple = (10, 5)
    weighted_sampling: bool = False
    batch_size: int = 1024
    epochs: int = 3
    lr: float = 0.005
    weight_decay: float = 0.0
    l2: float = 1e-4
    optimizer: str = "adam"
    lr_schedule: str = "constant"
    final_lr_ratio: float = 0.0
    num_negatives: int = 1
    shared_negatives: bool = False
    negatives: dict = field(default_factory=lambda: {"uniform": 1.0})
    loss: str = "bpr"
    validation_fraction: float = 0.0
    eval_k: int = 20
    cold_start_fraction: float = 0.0
    checkpoint_every: int = 200
    seed: int = 0
    inference: str = "layerwise"
    inference_batch_size: int = 4096
    prefetch: bool = True
    model: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("targets", "edge_types"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise TypeError(f"{name}: expected a list of edge types, got {type(value).__name__} {value!r}")
            object.__setattr__(self, name, tuple(_edge_type(f"{name}[{i}]", v) for i, v in enumerate(value)))
        if not isinstance(self.target_weights, Mapping):
            raise TypeError(f"target_weights: expected a mapping edge type -> weight, got "
                            f"{type(self.target_weights).__name__} {self.target_weights!r}")
        weights = {}
        for key, value in sorted(self.target_weights.items()):
            e = _edge_type(f"target_weights key {key!r}", key)
            if self.targets and e not in self.targets:
                raise ValueError(f"target_weights: {e!r} is not one of the targets {list(self.targets)}")
            weights[e] = _float(f"target_weights[{e!r}]", value, strict=True)
        object.__setattr__(self, "target_weights", weights)
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {list(MODES)}, got {self.mode!r}")
        if isinstance(self.fanouts, (str, int)) or not isinstance(self.fanouts, (list, tuple)) or not self.fanouts:
            raise ValueError(f"fanouts: expected a non-empty list of ints (-1 = all), got {self.fanouts!r}")
        for i, f in enumerate(self.fanouts):
            if isinstance(f, bool) or not isinstance(f, int) or (f < 1 and f != -1):
                raise ValueError(f"fanouts[{i}]: expected an int >= 1 or -1, got {f!r}")
        object.__setattr__(self, "fanouts", tuple(self.fanouts))
        for name in ("weighted_sampling", "shared_negatives", "prefetch"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        for name in ("batch_size", "epochs", "num_negatives", "eval_k", "checkpoint_every", "inference_batch_size"):
            _int(name, getattr(self, name))
        _int("seed", self.seed, minimum=0)
        object.__setattr__(self, "lr", _float("lr", self.lr, strict=True))
        for name in ("weight_decay", "l2"):
            object.__setattr__(self, name, _float(name, getattr(self, name)))
        fraction = _float("validation_fraction", self.validation_fraction)
        if fraction >= 0.5:
            raise ValueError(f"validation_fraction: expected < 0.5, got {fraction}")
        object.__setattr__(self, "validation_fraction", fraction)
        cold = _float("cold_start_fraction", self.cold_start_fraction)
        if cold >= 0.5:
            raise ValueError(f"cold_start_fraction: expected < 0.5, got {cold}")
        object.__setattr__(self, "cold_start_fraction", cold)
        if self.inference not in INFERENCES:
            raise ValueError(f"inference: expected one of {list(INFERENCES)}, got {self.inference!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule: expected one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        ratio = _float("final_lr_ratio", self.final_lr_ratio)
        if ratio > 1:
            raise ValueError(f"final_lr_ratio: expected a number in [0, 1], got {ratio}")
        object.__setattr__(self, "final_lr_ratio", ratio)
        if self.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {list(LOSSES)}, got {self.loss!r}")
        if not isinstance(self.negatives, Mapping) or not self.negatives:
            raise ValueError(f"negatives: expected a mapping strategy -> fraction, got {self.negatives!r}")
        unknown = sorted(set(self.negatives) - set(NEGATIVE_STRATEGIES))
        if unknown:
            raise ValueError(f"negatives: unknown strategies {unknown} (known: {list(NEGATIVE_STRATEGIES)})")
        mix = {k: _float(f"negatives[{k!r}]", v) for k, v in sorted(self.negatives.items())}
        if abs(sum(mix.values()) - 1.0) > 1e-6:
            raise ValueError(f"negatives: fractions must sum to 1, got {sum(mix.values())} ({mix})")
        object.__setattr__(self, "negatives", mix)
        if mix.get("hard", 0) > 0 and self.shared_negatives:
            raise ValueError("negatives: 'hard' picks negatives per positive (its user's top-scored items of a "
                             "random pool), so it needs shared_negatives: false")
        if not isinstance(self.model, Mapping):
            raise TypeError(f"model: expected a mapping of model settings, got {type(self.model).__name__}")
        object.__setattr__(self, "model", dict(self.model))
        self.model_config()  # checks the model settings now, naming the bad field

    @property
    def num_layers(self) -> int:
        return len(self.fanouts) if self.mode == "sampled" else self.model_config().num_layers

    def lr_factor(self, step: int, total_steps: int) -> float:
        """Multiplier of ``lr`` for the optimizer step after ``step`` steps of ``total_steps`` (see ``lr_schedule``).

        Example:
            >>> TrainConfig(lr_schedule="linear", final_lr_ratio=0.5).lr_factor(5, 10)
            0.75
        """
        if self.lr_schedule == "constant" or total_steps <= 0:
            return 1.0
        progress, r = min(1.0, max(0.0, step / total_steps)), self.final_lr_ratio
        if self.lr_schedule == "cosine":
            return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1 - (1 - r) * progress

    def model_config(self):
        """The :class:`graphlake.training.model.ModelConfig` of ``model`` (layers = ``len(fanouts)`` when sampled)."""
        from graphlake.training.model import (
            ModelConfig,  # lazy: torch, only when a model is built (configs load without it)
        )

        values = dict(self.model)
        if self.mode == "sampled":
            layers = values.setdefault("num_layers", len(self.fanouts))
            if layers != len(self.fanouts):
                raise ValueError(f"model.num_layers: {layers} differs from len(fanouts) = {len(self.fanouts)}")
        try:
            return ModelConfig.from_dict(values)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"model.{exc}") from None


# options added after runs were recorded: left out of the JSON at their default, so the hash of
# every config that does not use them (and the run ids and resume checks built on it) is unchanged
_OMITTED_AT_DEFAULT = {"cold_start_fraction": 0.0, "lr_schedule": "constant", "final_lr_ratio": 0.0, "prefetch": True,
                       "inference": "layerwise", "target_weights": {}}


def _recorded_values(config: TrainConfig) -> dict:
    values = dataclasses.asdict(config)
    for name, default in _OMITTED_AT_DEFAULT.items():
        if values.get(name) == default:
            del values[name]
    return values


def config_json(config: TrainConfig) -> str:
    """Canonical JSON of a config (sorted keys): what the run records and hashes."""
    return json.dumps(_recorded_values(config), sort_keys=True, default=list)


# settings that change how fast a run goes, never what it computes: recorded, not hashed (a run
# resumed with another value is the same run)
_NOT_HASHED = ("prefetch",)


def config_hash(config: TrainConfig) -> str:
    """First 16 hex digits of the SHA-256 of :func:`config_json` without the :data:`_NOT_HASHED` settings."""
    values = {k: v for k, v in _recorded_values(config).items() if k not in _NOT_HASHED}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=list).encode()).hexdigest()[:16]
