"""The heterogeneous GraphSAGE model, its config, and the batch feature gather.

``HeteroGraphSAGE``: :class:`~graphlake.training.model.encoders.HeteroEncoder` (layer 0) ->
``num_layers`` x :class:`~graphlake.training.model.sage_layer.HeteroSAGEConv` (one per block of the
:class:`~graphlake.training.sampling.base.SampledBatch`) -> per seed type ``(num_seeds[t], hidden_dim)``.
``layer_combination="last"`` returns the last layer's output; ``"mean"`` the mean over layers
0..L of each layer's rows for the seeds (the seeds are the first ``num_seeds[t]`` rows of every
layer, by the prefix property) — LightGCN's final embedding. :meth:`HeteroGraphSAGE.lightgcn`
builds LightGCN: ID embeddings only, weight-free layers, mean combination.

``ModelConfig`` is the ``model:`` section of the training YAML; ``ModelConfig.build(specs,
relations)`` makes the model from it and the snapshot's feature specs.

Example:
    >>> cfg = ModelConfig.from_dict({"model": {"hidden_dim": 32, "num_layers": 2, "combine": "attention"}})
    >>> model = cfg.build({"user": NodeFeatureSpec(100), "item": NodeFeatureSpec(50, text_dim=384)},
    ...                   [("user", "click", "item"), ("item", "rev_click", "user")])
    >>> feats = gather_features({"item": {"text": snapshot.features("item", "text")}}, batch.node_ids)
    >>> out = model(batch, feats)                       # {"user": (S_user, 32), "item": (S_item, 32)}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from graphlake.core.config import load_config
from graphlake.training.model.decoder import SCORE_KINDS
from graphlake.training.model.encoders import (
    CATEGORICAL_COMBINES,
    FUSIONS,
    HeteroEncoder,
    NodeFeatureSpec,
    resolve_per_type,
)
from graphlake.training.model.sage_layer import (
    AGGRS,
    COMBINES,
    NORMS,
    RELATION_WEIGHTS,
    HeteroSAGEConv,
    check_relations,
)
from graphlake.training.sampling.base import Relation, SampledBatch

LAYER_COMBINATIONS = ("last", "mean")
MAX_LAYERS = 3


class HeteroGraphSAGE(nn.Module):
    """Encoder + ``num_layers`` heterogeneous SAGE layers.

    Args:
        specs: ``{node_type: NodeFeatureSpec}``; every type of ``relations`` must be in it.
        relations: message relations ``(src_type, name, dst_type)`` (both directions of each
            stored edge type, see ``graphlake.training.sampling.base.message_relations``).
        hidden_dim: width of every layer and of the output.
        num_layers: 1..3 (must equal ``len(batch.blocks)``).
        aggr, combine, residual, norm, dropout, self_loop, weight_free, attention_dim: as
            :class:`HeteroSAGEConv` (every layer).
        last_activation: ReLU on the last layer too (default False: signed output embeddings).
        fusion, use_id_embedding, categorical_combine: as :class:`HeteroEncoder`.
        sparse_id_embedding: sparse gradients for the ID embeddings.
        layer_combination: ``"last"`` or ``"mean"`` (over layers 0..L).

    Shapes: ``forward(batch, {t: {key: (N_t, dim)}}) -> {t: (num_seeds[t], hidden_dim)}``.

    Example:
        >>> model = HeteroGraphSAGE.lightgcn({"user": 3, "item": 3}, rels, dim=8, num_layers=2)
        >>> out = model(full_batch)                    # LightGCN embeddings of every node
    """

    def __init__(self, specs: Mapping[str, NodeFeatureSpec], relations: Sequence[Relation], hidden_dim: int = 64,
                 num_layers: int = 2, *, aggr: str = "mean", combine: str = "sum", residual: bool = True,
                 norm: str | None = "layer", dropout: float = 0.0, self_loop: bool = True, weight_free: bool = False,
                 last_activation: bool = False, fusion: str = "sum",
                 use_id_embedding: bool | Mapping[str, bool] = True, categorical_combine: str = "sum",
                 sparse_id_embedding: bool = False, layer_combination: str = "last",
                 attention_dim: int | None = None, score_bias_types: Sequence[str] = (),
                 relation_weights: str = "equal"):
        super().__init__()
        self.relations = check_relations(relations)
        if not isinstance(specs, Mapping) or not all(isinstance(s, NodeFeatureSpec) for s in specs.values()):
            raise TypeError(f"specs: expected a mapping node type -> NodeFeatureSpec, got {specs!r}")
        missing = sorted(({r[0] for r in self.relations} | {r[2] for r in self.relations}) - set(specs))
        if missing:
            raise ValueError(f"specs: node types {missing} of the relations have no NodeFeatureSpec")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= MAX_LAYERS:
            raise ValueError(f"num_layers: expected an int in 1..{MAX_LAYERS}, got {num_layers!r}")
        if layer_combination not in LAYER_COMBINATIONS:
            raise ValueError(f"layer_combination: expected one of {LAYER_COMBINATIONS}, got {layer_combination!r}")
        if not isinstance(last_activation, bool):
            raise TypeError(f"last_activation: expected a bool, got {last_activation!r}")
        self.hidden_dim, self.num_layers, self.layer_combination = hidden_dim, num_layers, layer_combination
        self.weight_free = weight_free
        self.encoder = HeteroEncoder(specs, hidden_dim, use_id_embedding, fusion, dropout, sparse_id_embedding,
                                     categorical_combine)
        self.layers = nn.ModuleList([
            HeteroSAGEConv(self.relations, hidden_dim, hidden_dim, aggr=aggr, combine=combine, residual=residual,
                           norm=norm, activation=last_activation if i == num_layers - 1 else True, dropout=dropout,
                           weight_free=weight_free, self_loop=self_loop, attention_dim=attention_dim,
                           relation_weights=relation_weights)
            for i in range(num_layers)])
        if isinstance(score_bias_types, str) or not all(t in specs for t in score_bias_types):
            raise ValueError(f"score_bias_types: expected node types of the specs, got {score_bias_types!r}")
        # a learned scalar per destination node added to its scores (ModelConfig.destination_bias);
        # the trainer's loss and the exported scoring vectors use it, the forward pass does not
        self.score_bias = nn.ParameterDict({t: nn.Parameter(torch.zeros(specs[t].num_nodes))
                                            for t in sorted(score_bias_types)})

    def parameters_outside_forward(self) -> list[str]:
        """Names of the parameters the training loss uses outside :meth:`forward` (the score biases):
        a data-parallel wrapper that follows forward (DDP) must average them separately."""
        return [f"score_bias.{t}" for t in self.score_bias]

    @classmethod
    def lightgcn(cls, num_nodes: Mapping[str, int], relations: Sequence[Relation], dim: int = 64,
                 num_layers: int = 3, sparse: bool = False) -> HeteroGraphSAGE:
        """LightGCN: ID embeddings (``N(0, 0.1)``) only, weight-free layers, mean over layers 0..L.

        Pass full-graph ``degrees`` to :meth:`forward` to reproduce LightGCN on sampled batches.
        """
        if not isinstance(num_nodes, Mapping):
            raise TypeError(f"num_nodes: expected a mapping node type -> int, got {type(num_nodes).__name__}")
        specs = {t: NodeFeatureSpec(num_nodes=n) for t, n in num_nodes.items()}
        return cls(specs, relations, dim, num_layers, weight_free=True, use_id_embedding=True,
                   sparse_id_embedding=sparse, layer_combination="mean", fusion="sum")

    @classmethod
    def from_config(cls, config: ModelConfig, specs: Mapping[str, NodeFeatureSpec],
                    relations: Sequence[Relation], destination_types: Sequence[str] = ()) -> HeteroGraphSAGE:
        """The model a :class:`ModelConfig` describes (``config.use_features=False``: ID embeddings only;
        ``config.destination_bias``: a learned score bias for each node of ``destination_types``)."""
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config: expected a ModelConfig, got {type(config).__name__}")
        if not config.use_features:
            specs = {t: NodeFeatureSpec(num_nodes=s.num_nodes) for t, s in specs.items()}
        return cls(specs, relations, config.hidden_dim, config.num_layers, aggr=config.aggr, combine=config.combine,
                   residual=config.residual, norm=config.norm, dropout=config.dropout, self_loop=config.self_loop,
                   weight_free=config.weight_free, last_activation=config.last_activation, fusion=config.fusion,
                   use_id_embedding=config.use_id_embedding, categorical_combine=config.categorical_combine,
                   sparse_id_embedding=config.sparse_id_embedding, layer_combination=config.layer_combination,
                   attention_dim=config.attention_dim, relation_weights=config.relation_weights,
                   score_bias_types=tuple(destination_types) if config.destination_bias else ())

    def forward(self, batch: SampledBatch, features: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                id_mask: Mapping[str, torch.Tensor] | None = None,
                degrees: Mapping[Relation, tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
        """Args:
            batch: a :class:`SampledBatch` with ``num_layers`` blocks.
            features: ``{t: {key: (N_t, dim)}}`` rows of ``batch.node_ids[t]`` (:func:`gather_features`).
            id_mask: ``{t: bool (N_t,)}``, False for cold-start nodes (no trained ID row).
            degrees: weight-free layers only: FULL-graph degrees ``{rel: (deg_src (N_s,),
                deg_dst (N_d,))}`` indexed by global node id (out-degree of the source and
                in-degree of the destination in ``rel``); gathered per block for its local nodes.
                None: degrees are counted in each block.

        Returns:
            ``{t: (num_seeds[t], hidden_dim)}`` for every type of ``batch.num_seeds``.
        """
        if not isinstance(batch, SampledBatch):
            raise TypeError(f"batch: expected a training.sampling.base.SampledBatch, got {type(batch).__name__}")
        if len(batch.blocks) != self.num_layers:
            raise ValueError(f"batch: expected {self.num_layers} blocks (num_layers), got {len(batch.blocks)}")
        h = self.encoder(batch.node_ids, features, id_mask)
        seeds = dict(batch.num_seeds)

        def rows(t: str, n: int) -> torch.Tensor:  # the seeds' rows (a type absent from h has none)
            return h[t][:n] if t in h else self.encoder_param().new_zeros(0, self.hidden_dim)

        total = {t: rows(t, n) for t, n in seeds.items()} if self.layer_combination == "mean" else None
        for layer, block in zip(self.layers, batch.blocks):
            local = None
            if self.weight_free and degrees is not None:
                local = local_degrees(degrees, block, batch.node_ids)
            h = layer(block, h, degrees=local)
            if total is not None:
                total = {t: total[t] + rows(t, n) for t, n in seeds.items()}
        if total is not None:
            return {t: v / (self.num_layers + 1) for t, v in total.items()}
        return {t: rows(t, n) for t, n in seeds.items()}

    def encoder_param(self) -> torch.Tensor:
        """A parameter of the encoder (for the model's dtype and device)."""
        return next(self.encoder.parameters())


def local_degrees(degrees, block, node_ids) -> dict:
    """Global degree vectors gathered for the block's local src / dst nodes (prefix property)."""
    if not isinstance(degrees, Mapping):
        raise TypeError(f"degrees: expected a mapping relation -> (deg_src, deg_dst), got {type(degrees).__name__}")
    out = {}
    for rel in block.edges:
        if rel not in degrees:
            raise ValueError(f"degrees: missing relation {rel!r}")
        deg_src, deg_dst = degrees[rel]
        s, _, d = rel
        src_ids = node_ids[s][: block.num_src[s]].to(deg_src.device)
        dst_ids = node_ids[d][: block.num_dst[d]].to(deg_dst.device)
        out[rel] = (torch.index_select(deg_src, 0, src_ids), torch.index_select(deg_dst, 0, dst_ids))
    return out


def gather_features(snapshot_like: Mapping[str, Mapping[str, np.ndarray | torch.Tensor]],
                    node_ids: Mapping[str, torch.Tensor],
                    device: torch.device | str | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """The feature rows of a batch's nodes: ``{t: {key: matrix[node_ids[t]]}}``.

    Args:
        snapshot_like: ``{t: {key: (num_nodes_t, dim)}}`` numpy arrays (memmaps: only the
            selected rows are read and converted) or tensors (``torch.index_select``). Types of
            ``node_ids`` absent here get ``{}`` (no features).
        node_ids: ``{t: int (N_t,)}`` global ids, e.g. ``batch.node_ids``.
        device: move the gathered rows there (None: keep).

    Returns:
        ``{t: {key: Tensor (N_t, dim)}}``, dtypes kept (bool, int32, float32, ...).

    Example:
        >>> feats = gather_features({"item": {"text": snap.features("item", "text")}}, batch.node_ids)
    """
    if not isinstance(snapshot_like, Mapping):
        raise TypeError(f"snapshot_like: expected a mapping node type -> {{key: matrix}}, got "
                        f"{type(snapshot_like).__name__}")
    if not isinstance(node_ids, Mapping):
        raise TypeError(f"node_ids: expected a mapping node type -> Tensor, got {type(node_ids).__name__}")
    out: dict[str, dict[str, torch.Tensor]] = {}
    for t, ids in node_ids.items():
        if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.dtype.is_floating_point or \
                ids.dtype == torch.bool:
            raise ValueError(f"node_ids[{t!r}]: expected a 1-D integer tensor, got {ids!r:.60}")
        ids = ids.long()
        mats = snapshot_like.get(t) or {}
        out[t] = {}
        for key, mat in mats.items():
            if isinstance(mat, torch.Tensor):
                rows = torch.index_select(mat, 0, ids.to(mat.device))
            elif isinstance(mat, np.ndarray):
                n = mat.shape[0]
                if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
                    raise ValueError(f"node_ids[{t!r}]: ids must be in [0, {n}) for feature {key!r}, got range "
                                     f"[{int(ids.min())}, {int(ids.max())}]")
                rows = torch.from_numpy(np.ascontiguousarray(np.take(mat, ids.cpu().numpy(), axis=0)))
            else:
                raise TypeError(f"snapshot_like[{t!r}][{key!r}]: expected a numpy array or Tensor, got "
                                f"{type(mat).__name__}")
            out[t][key] = rows if device is None else rows.to(device)
    return out


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """The ``model:`` section of the training config (every field checked in ``__post_init__``).

    Attributes:
        hidden_dim: embedding / layer width (>= 1).
        num_layers: 1..3.
        aggr: ``"mean"``, ``"weighted_mean"`` or ``"sum"``.
        combine: ``"sum"``, ``"mean"`` or ``"attention"`` across relations.
        residual, self_loop, last_activation: layer options (see :class:`HeteroGraphSAGE`).
        norm: ``"layer"``, ``"batch"`` or None (``"none"`` is read as None).
        dropout: in [0, 1).
        fusion: ``"sum"`` or ``"gated"`` (modalities of the encoder).
        categorical_combine: ``"sum"`` or ``"concat"``.
        use_features: False: ignore node features (ID embeddings only).
        use_id_embedding: a bool, or ``{node_type: bool}`` naming every type.
        sparse_id_embedding: sparse gradients for ID embeddings (Horovod / lazy optimizers).
        weight_free: LightGCN propagation in every layer.
        layer_combination: ``"last"`` or ``"mean"``.
        decoder: ``"dot"`` or ``"cosine"`` (:func:`graphlake.training.model.decoder.score`).
        temperature: score temperature (> 0).
        popularity_prior: β >= 0; with β > 0 a destination's score gains ``β * log(1 + its training
            degree)`` and the run exports dot-product scoring vectors (:mod:`graphlake.training.scoring`).
        destination_bias: a learned scalar per destination node of the target edge types (an item
            bias), added to its score in the loss and in the exported scoring vectors.
        attention_dim: semantic-attention width (None: hidden_dim).
        relation_weights: ``"equal"`` (default) or ``"learned"``: with ``weight_free``, each
            layer scales relation ``r``'s normalised message by a learned ``exp(s_r)`` (``s_r = 0``
            at the start), so a multi-behaviour graph can weigh its behaviours.

    Example:
        >>> ModelConfig.from_dict({"model": {"weight_free": True, "layer_combination": "mean"}}).num_layers
        2
    """

    hidden_dim: int = 64
    num_layers: int = 2
    aggr: str = "mean"
    combine: str = "sum"
    residual: bool = True
    norm: str | None = "layer"
    dropout: float = 0.0
    self_loop: bool = True
    last_activation: bool = False
    fusion: str = "sum"
    categorical_combine: str = "sum"
    use_features: bool = True
    use_id_embedding: bool | dict = True
    sparse_id_embedding: bool = False
    weight_free: bool = False
    layer_combination: str = "last"
    decoder: str = "dot"
    temperature: float = 1.0
    popularity_prior: float = 0.0
    destination_bias: bool = False
    attention_dim: int | None = None
    relation_weights: str = "equal"

    def __post_init__(self):
        for name in ("hidden_dim", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        if self.num_layers > MAX_LAYERS:
            raise ValueError(f"num_layers: expected an int in 1..{MAX_LAYERS}, got {self.num_layers}")
        if self.norm == "none":
            object.__setattr__(self, "norm", None)
        for name, choices in (("aggr", AGGRS), ("combine", COMBINES), ("norm", NORMS), ("fusion", FUSIONS),
                              ("categorical_combine", CATEGORICAL_COMBINES),
                              ("layer_combination", LAYER_COMBINATIONS), ("decoder", SCORE_KINDS),
                              ("relation_weights", RELATION_WEIGHTS)):
            _check_choice(name, getattr(self, name), choices)
        for name in ("residual", "self_loop", "last_activation", "use_features", "sparse_id_embedding",
                     "weight_free"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d < 1.0:
            raise ValueError(f"dropout: expected a number in [0, 1), got {d!r}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise ValueError(f"temperature: expected a number > 0, got {t!r}")
        b = self.popularity_prior
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b < float("inf"):
            raise ValueError(f"popularity_prior: expected a finite number >= 0, got {b!r}")
        if not isinstance(self.destination_bias, bool):
            raise TypeError(f"destination_bias: expected true or false, got {self.destination_bias!r}")
        if self.relation_weights == "learned" and not self.weight_free:
            raise ValueError("relation_weights: 'learned' needs weight_free: true (a weighted layer has a matrix per "
                             "relation already)")
        a = self.attention_dim
        if a is not None and (isinstance(a, bool) or not isinstance(a, int) or a < 1):
            raise ValueError(f"attention_dim: expected an int >= 1 or null, got {a!r}")
        u = self.use_id_embedding
        if isinstance(u, Mapping):
            bad = {k: v for k, v in u.items() if not isinstance(k, str) or not isinstance(v, bool)}
            if bad:
                raise ValueError(f"use_id_embedding: expected node type -> true/false, got {bad!r}")
            object.__setattr__(self, "use_id_embedding", dict(u))
        elif not isinstance(u, bool):
            raise ValueError(f"use_id_embedding: expected true/false or a mapping node type -> bool, got {u!r}")

    @classmethod
    def from_dict(cls, source: Mapping | str | None) -> ModelConfig:
        """From a mapping (the whole document or its ``model:`` section), a YAML path, or None (defaults)."""
        return load_config(cls, source, section="model")

    def build(self, specs: Mapping[str, NodeFeatureSpec], relations: Sequence[Relation]) -> HeteroGraphSAGE:
        """``HeteroGraphSAGE.from_config(self, specs, relations)``; a per-type ``use_id_embedding`` is
        checked against ``specs``' types here."""
        if isinstance(self.use_id_embedding, Mapping):
            resolve_per_type("use_id_embedding", self.use_id_embedding, sorted(specs))
        return HeteroGraphSAGE.from_config(self, specs, relations)
