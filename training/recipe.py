"""The training recipe ``graphlake train`` uses when it is given no config: the configuration the
public-data experiments validated (docs/quality.md), adapted to the graph it trains on.

What the graph decides (``graph``: the :class:`~graphlake.graph_build.manifest.GraphVersion` trained on):

* **targets**: the target behaviour ``purchase`` first, every other ``user -> item`` behaviour as
  an auxiliary target of the same loss weight (:data:`AUXILIARY_WEIGHT`; on Tmall's validation
  slice weight 1 beat 0.3 and 3, and auxiliary targets beat auxiliary relations alone); with no
  purchase, every behaviour. Evaluation scores the first target and masks only its items.
* **relations** the model propagates over: the behaviours and the item attribute edges
  (``belongs_to``: shop, brand, category — what a new item has), not the derived item–item
  edges (``co_*``: on Tmall adding co-purchase lowered the validation figures).
* **mode**: ``full`` (LightGCN's full-graph propagation every step: the recipe behind every
  figure) up to :data:`FULL_GRAPH_MAX_EDGES` relation edges, ``sampled`` above (mini-batches over
  sampled neighbourhoods of fanouts (10, 5), any size; GraphSAGE layers with weights, since
  weight-free propagation needs the full graph's degrees — no public-data figure backs this branch yet).
* **batch size and negatives**: 8,192 positives per step and 4,096 shared negatives, fewer on a
  small graph (at least :data:`MIN_STEPS_PER_EPOCH` steps an epoch; no more negatives than items).

The rest is fixed: width 128 in full mode (:data:`FULL_WIDTH`: twice the papers' 64; on the
validation slices width 128 beat 64 on Tmall, HR@20 0.1885 against 0.1628, and on Gowalla,
+0.01 Recall@20 at every epoch — docs/quality.md), 64 in sampled mode (weight matrices per
relation and layer; no figure backs a wider one), 3 weight-free layers averaged, cosine scores at
temperature 0.1 with a learned item bias, sampled softmax, Adam at 0.01 with cosine decay,
12 epochs. ``hidden_dim`` in ``model`` overrides the width (``model={"hidden_dim": 64, ...}``).

Example:
    >>> from graphlake.graph_build.manifest import load_graph_version
    >>> config = recommended_config(load_graph_version(spark, "lakehouse"), seed=3)
    >>> config.targets, config.mode
"""

from __future__ import annotations

import dataclasses

from graphlake.core.edge_types import parse_edge_type
from graphlake.core.errors import UsageError
from graphlake.graph_build.manifest import GraphVersion
from graphlake.training.config import TrainConfig
from graphlake.training.run_data import BEHAVIOURS, TARGET_BEHAVIOUR, behaviour_edge, default_targets

AUXILIARY_WEIGHT = 1.0  # an auxiliary behaviour's loss weight relative to the target's
FULL_GRAPH_MAX_EDGES = 20_000_000
MIN_STEPS_PER_EPOCH = 16
ATTRIBUTE_RELATIONS = ("belongs_to",)
FULL_WIDTH = 128  # full mode; the papers' width is 64 (docs/quality.md reports both)
MODEL = {"hidden_dim": FULL_WIDTH, "num_layers": 3, "weight_free": True, "layer_combination": "mean", "decoder": "cosine",
         "temperature": 0.1, "destination_bias": True}
SAMPLED_FANOUTS = (10, 5)
SAMPLED_MODEL = {"hidden_dim": 64, "decoder": "cosine", "temperature": 0.1, "destination_bias": True}


def recommended_config(graph: GraphVersion, target: str | None = None, **overrides) -> TrainConfig:
    """The recipe for ``graph`` (module docstring), with ``overrides`` (TrainConfig fields) on top.

    Args:
        graph: the graph version (:func:`graphlake.graph_build.manifest.load_graph_version`); the
            recipe reads its ``edge_counts`` and ``node_counts``.
        target: the target behaviour (``purchase``) or edge type; default purchase when the graph
            has purchases. The other behaviours become auxiliary targets.
        overrides: TrainConfig fields that replace the recipe's (``seed=3``, ``epochs=2``).

    Returns:
        A checked :class:`TrainConfig`.

    Raises:
        UsageError: the graph has no ``user -> item`` behaviour to train on, or ``target`` is not
            one of its edge types.
    """
    if not isinstance(graph, GraphVersion):
        raise TypeError(f"graph: expected the GraphVersion load_graph_version returns, got {type(graph).__name__}")
    counts = graph.edge_counts
    present = sorted(e for e, n in counts.items() if n > 0)
    behaviours = default_targets(present)
    if not behaviours:
        raise UsageError(f"graph: no user -> item behaviour edges ({list(BEHAVIOURS)}) to train on; "
                         f"edge types: {present}")
    main = behaviour_edge(target) if target is not None else behaviour_edge(TARGET_BEHAVIOUR)
    if target is not None and main not in present:
        raise UsageError(f"target: {main!r} is not an edge type of the graph (edge types: {present})")
    if main in behaviours:
        targets = [main] + [e for e in behaviours if e != main]
        weights = {e: AUXILIARY_WEIGHT for e in targets[1:]} if AUXILIARY_WEIGHT != 1.0 else {}
    else:  # no purchase: every behaviour is a target of equal weight
        targets, weights = behaviours, {}
    relations = sorted(set(behaviours) | {e for e in present if parse_edge_type(e).relation in ATTRIBUTE_RELATIONS})
    relation_edges = sum(counts[e] for e in relations)
    target_edges = sum(counts[e] for e in targets)
    items = int(graph.node_counts.get(parse_edge_type(main).dst, 0)) or 4096
    batch = max(64, min(8192, target_edges // MIN_STEPS_PER_EPOCH))
    full = relation_edges <= FULL_GRAPH_MAX_EDGES
    recipe = {"targets": tuple(targets), "target_weights": weights, "edge_types": tuple(relations),
              "mode": "full" if full else "sampled", "fanouts": SAMPLED_FANOUTS, "batch_size": batch,
              "epochs": 12, "lr": 0.01, "lr_schedule": "cosine", "l2": 0.0, "loss": "sampled_softmax",
              "num_negatives": min(4096, items), "shared_negatives": True, "negatives": {"uniform": 1.0},
              "checkpoint_every": 1000,
              "model": dict(MODEL) if full else {**SAMPLED_MODEL, "num_layers": len(SAMPLED_FANOUTS)}}
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise TypeError(f"overrides: unknown TrainConfig fields {unknown}")
    return TrainConfig(**{**recipe, **overrides})
