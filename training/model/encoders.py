"""Node encoders: a node's ID embedding and its feature modalities fused into one hidden vector.

Feature matrices per node type are those of the training snapshot (``graph_build/snapshot.py``),
already gathered for the batch's nodes (``hetero_sage.gather_features``):

==================  ==================  =====================================================
key                 dtype, shape        meaning
==================  ==================  =====================================================
``numeric``         float (N, n_num)    standardised numeric features
``numeric_missing`` bool (N, n_num)     True where the value was imputed (optional: all False)
``categorical``     int (N, n_cat)      per column codes ``0..cardinality-1``; 0 = missing
``text``            float (N, text_dim) sentence embedding (zeros when absent)
``image``           float (N, img_dim)  image vector (zeros when absent)
``has_image``       bool (N, 1)         False where ``image`` is absent (optional: all True)
==================  ==================  =====================================================

Modalities of a :class:`NodeEncoder` (each a ``(N, hidden_dim)`` vector):

* ``id``: a learnable row per node id (``nn.Embedding``; ``sparse=True`` gives sparse gradients
  for the Horovod / lazy-optimizer path). ``id_mask`` (bool ``(N,)``, True = the node has a
  trained row) zeroes it for cold-start nodes, whose ids may lie outside ``0..num_nodes-1``.
* ``numeric``: a 2-layer MLP over ``[numeric, numeric_missing as float]``.
* ``categorical``: one embedding table per column (stored as one table with per-column
  offsets); the missing code 0 contributes a zero vector; columns are summed, or concatenated
  and projected (``categorical_combine="concat"``).
* ``text``, ``image``: linear projections; the image part is gated (zeroed) by ``has_image``.
* ``constant``: a learned per-type vector, only for a type with neither features nor an ID
  embedding (its nodes then differ only through their neighbours).

Fusion: ``"sum"`` adds the modality vectors; ``"gated"`` weights them by a softmax over the
modalities *present* for each node (an absent ID row or image gets weight 0) with logits
``w_k . m_k + b_k`` (one learned ``(hidden_dim,)`` vector and bias per modality; zero-initialised,
so training starts from equal weights). A node with no modality present gets a zero vector.

Example:
    >>> spec = NodeFeatureSpec(num_nodes=100, numeric_dim=3, categorical_cardinalities=(5, 12))
    >>> enc = NodeEncoder(spec, hidden_dim=16, use_id_embedding=True, fusion="gated")
    >>> h = enc(torch.tensor([3, 7]), {"numeric": torch.randn(2, 3), "categorical": torch.tensor([[1, 0], [4, 11]])})
    >>> h.shape
    torch.Size([2, 16])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

FUSIONS = ("sum", "gated")
CATEGORICAL_COMBINES = ("sum", "concat")
ID_INIT_STD = 0.1  # LightGCN's N(0, 0.1) initialisation of embedding rows


def _non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class NodeFeatureSpec:
    """Sizes of one node type's ID table and feature matrices.

    Args:
        num_nodes: rows of the ID embedding (nodes with a trained ID row), ``>= 0``.
        numeric_dim: columns of ``numeric`` (0: none).
        categorical_cardinalities: per ``categorical`` column, the number of codes including the
            missing code 0 (``graphlake.graph_build.features`` writes ``K + 2``: missing, K values, other).
        text_dim: width of ``text`` (0: none).
        image_dim: width of ``image`` (0: none).

    Example:
        >>> NodeFeatureSpec(num_nodes=10, numeric_dim=2, categorical_cardinalities=(4,)).has_features
        True
    """

    num_nodes: int
    numeric_dim: int = 0
    categorical_cardinalities: tuple[int, ...] = ()
    text_dim: int = 0
    image_dim: int = 0

    def __post_init__(self):
        for name in ("num_nodes", "numeric_dim", "text_dim", "image_dim"):
            _non_negative_int(name, getattr(self, name))
        cards = self.categorical_cardinalities
        if isinstance(cards, (str, bytes)) or not hasattr(cards, "__iter__"):
            raise TypeError(f"categorical_cardinalities: expected a sequence of ints, got {type(cards).__name__}")
        cards = tuple(cards)
        for i, c in enumerate(cards):
            if isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError(f"categorical_cardinalities[{i}]: expected an int >= 1, got {c!r}")
        object.__setattr__(self, "categorical_cardinalities", cards)

    @property
    def has_features(self) -> bool:
        """True when the type has at least one feature matrix."""
        return bool(self.numeric_dim or self.categorical_cardinalities or self.text_dim or self.image_dim)

    @classmethod
    def from_feature_spec(cls, num_nodes: int, entry: Mapping) -> NodeFeatureSpec:
        """Build from one type's entry of ``graphlake.graph_build.features.feature_spec`` (the snapshot manifest's
        ``feature_spec``): ``{"numeric": {"dim"}, "categorical": {"cardinalities"}, "text": {"dim"},
        "image": {"dim"}}``; a missing section means no such feature.

        Example:
            >>> NodeFeatureSpec.from_feature_spec(5, {"numeric": {"dim": 2}, "text": {"dim": 384}}).text_dim
            384
        """
        if not isinstance(entry, Mapping):
            raise TypeError(f"entry: expected a mapping (one type of feature_spec), got {type(entry).__name__}")

        def dim(key):
            return (entry.get(key) or {}).get("dim") or 0

        cards = (entry.get("categorical") or {}).get("cardinalities") or ()
        return cls(num_nodes, dim("numeric"), tuple(cards), dim("text"), dim("image"))


def _feature(features: Mapping, key: str, n: int, width: int, where: str) -> torch.Tensor:
    if key not in features:
        raise ValueError(f"features[{key!r}]: {where} needs it ({n}, {width}), got keys {sorted(features)}")
    x = features[key]
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"features[{key!r}]: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 1 and width == 1:
        x = x.unsqueeze(1)
    if tuple(x.shape) != (n, width):
        raise ValueError(f"features[{key!r}]: expected shape ({n}, {width}), got {tuple(x.shape)}")
    return x


class NodeEncoder(nn.Module):
    """Encode the nodes of one type into ``(N, hidden_dim)`` (see the module docstring).

    Args:
        spec: the type's :class:`NodeFeatureSpec`.
        hidden_dim: output width.
        use_id_embedding: learn a row per node id (``spec.num_nodes`` rows, ``N(0, 0.1)`` init).
        fusion: ``"sum"`` or ``"gated"``.
        dropout: dropout on the fused vector.
        sparse: sparse gradients for the ID embedding (``nn.Embedding(sparse=True)``).
        categorical_combine: ``"sum"`` or ``"concat"`` (then a linear projection).

    Shapes: ``forward(node_ids (N,) int, features {key: (N, dim)}, id_mask (N,) bool) -> (N, hidden_dim)``.
    """

    def __init__(self, spec: NodeFeatureSpec, hidden_dim: int, use_id_embedding: bool = True, fusion: str = "sum",
                 dropout: float = 0.0, sparse: bool = False, categorical_combine: str = "sum"):
        super().__init__()
        if not isinstance(spec, NodeFeatureSpec):
            raise TypeError(f"spec: expected a NodeFeatureSpec, got {type(spec).__name__}")
        if isinstance(hidden_dim, bool) or not isinstance(hidden_dim, int) or hidden_dim < 1:
            raise ValueError(f"hidden_dim: expected an int >= 1, got {hidden_dim!r}")
        for name, value in (("use_id_embedding", use_id_embedding), ("sparse", sparse)):
            if not isinstance(value, bool):
                raise TypeError(f"{name}: expected a bool, got {value!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion: expected one of {FUSIONS}, got {fusion!r}")
        if categorical_combine not in CATEGORICAL_COMBINES:
            raise ValueError(f"categorical_combine: expected one of {CATEGORICAL_COMBINES}, got {categorical_combine!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a float in [0, 1), got {dropout!r}")
        if use_id_embedding and spec.num_nodes < 1:
            raise ValueError(f"spec.num_nodes: an ID embedding needs >= 1 row, got {spec.num_nodes}")
        self.spec, self.hidden_dim, self.fusion = spec, hidden_dim, fusion
        self.categorical_combine = categorical_combine
        self.modality_names: tuple[str, ...] = ()
        names = []
        self.id_embedding = None
        if use_id_embedding:
            self.id_embedding = nn.Embedding(spec.num_nodes, hidden_dim, sparse=sparse)
            nn.init.normal_(self.id_embedding.weight, std=ID_INIT_STD)
            names.append("id")
        # True: the ID lookup's gradient is its rows (sparse), even for a dense table; the trainer sets
        # it when it keeps the table's dense .grad resident (training.optim.ResidentGrads)
        self.sparse_id_lookup = False
        self.numeric_mlp = None
        if spec.numeric_dim:
            self.numeric_mlp = nn.Sequential(nn.Linear(2 * spec.numeric_dim, hidden_dim), nn.ReLU(),
                                             nn.Linear(hidden_dim, hidden_dim))
            names.append("numeric")
        self.categorical_embedding = self.categorical_proj = None
        if spec.categorical_cardinalities:
            cards = torch.tensor(spec.categorical_cardinalities, dtype=torch.long)
            self.register_buffer("categorical_offsets", torch.cumsum(cards, 0) - cards, persistent=False)
            self.register_buffer("categorical_cards", cards, persistent=False)
            self.categorical_embedding = nn.Embedding(int(cards.sum()), hidden_dim)
            nn.init.normal_(self.categorical_embedding.weight, std=ID_INIT_STD)
            if categorical_combine == "concat":
                self.categorical_proj = nn.Linear(len(cards) * hidden_dim, hidden_dim)
            names.append("categorical")
        self.text_proj = nn.Linear(spec.text_dim, hidden_dim) if spec.text_dim else None
        if spec.text_dim:
            names.append("text")
        self.image_proj = nn.Linear(spec.image_dim, hidden_dim) if spec.image_dim else None
        if spec.image_dim:
            names.append("image")
        self.constant = None
        if not names:
            self.constant = nn.Parameter(torch.empty(hidden_dim).normal_(std=ID_INIT_STD))
            names.append("constant")
        self.modality_names = tuple(names)
        self.gate_weight = self.gate_bias = None
        if fusion == "gated":
            self.gate_weight = nn.Parameter(torch.zeros(len(names), hidden_dim))
            self.gate_bias = nn.Parameter(torch.zeros(len(names)))
        self.dropout = nn.Dropout(dropout)

    def modalities(self, node_ids: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None,
                   id_mask: torch.Tensor | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """The unfused modality vectors: ``{name: ((N, hidden_dim), present bool (N,) or None = all)}``.

        An absent modality's vector is already zeroed (ID rows under ``id_mask``, images without
        ``has_image``). Same arguments as :meth:`forward`.
        """
        if not isinstance(node_ids, torch.Tensor):
            raise TypeError(f"node_ids: expected an int64 torch.Tensor (N,), got {type(node_ids).__name__}")
        if node_ids.dim() != 1 or node_ids.dtype.is_floating_point or node_ids.dtype == torch.bool:
            raise ValueError(f"node_ids: expected a 1-D integer tensor, got {node_ids.dtype} {tuple(node_ids.shape)}")
        features = {} if features is None else features
        if not isinstance(features, Mapping):
            raise TypeError(f"features: expected a mapping key -> Tensor, got {type(features).__name__}")
        n, spec = node_ids.shape[0], self.spec
        param = next(self.parameters())
        dtype, device = param.dtype, param.device
        out: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        if self.id_embedding is not None:
            out["id"] = self._id_part(node_ids.long(), id_mask, n)
        elif id_mask is not None:
            raise ValueError("id_mask: this encoder has no ID embedding (use_id_embedding=False)")
        if self.numeric_mlp is not None:
            x = _feature(features, "numeric", n, spec.numeric_dim, "numeric_dim").to(dtype)
            miss = features.get("numeric_missing")
            miss = (torch.zeros_like(x) if miss is None
                    else _feature(features, "numeric_missing", n, spec.numeric_dim, "numeric_dim").to(dtype))
            out["numeric"] = (self.numeric_mlp(torch.cat([x, miss], dim=1)), None)
        if self.categorical_embedding is not None:
            out["categorical"] = (self._categorical_part(features, n), None)
        if self.text_proj is not None:
            out["text"] = (self.text_proj(_feature(features, "text", n, spec.text_dim, "text_dim").to(dtype)), None)
        if self.image_proj is not None:
            img = self.image_proj(_feature(features, "image", n, spec.image_dim, "image_dim").to(dtype))
            present = None
            if "has_image" in features:
                present = _feature(features, "has_image", n, 1, "has_image").reshape(n).to(torch.bool)
                img = img * present.to(dtype).unsqueeze(1)
            out["image"] = (img, present)
        if self.constant is not None:
            out["constant"] = (self.constant.unsqueeze(0).expand(n, -1).to(device), None)
        return out

    def forward(self, node_ids: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None,
                id_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            node_ids: int ``(N,)`` node ids (rows of the ID table; any value where ``id_mask`` is False).
            features: ``{key: (N, dim)}`` of this type (see the module docstring); keys the spec
                does not use are ignored.
            id_mask: bool ``(N,)``, True where the node has a trained ID row; None = all True.
                False zeroes the ID part (cold start: the embedding comes from features only).

        Returns:
            ``(N, hidden_dim)``.
        """
        parts = self.modalities(node_ids, features, id_mask)
        vectors = [parts[k][0] for k in self.modality_names]
        if self.fusion == "sum":
            fused = vectors[0]
            for v in vectors[1:]:
                fused = fused + v
        else:
            fused = self._gate(parts, vectors)
        return self.dropout(fused)

    # ------------------------------------------------------------ parts
    def _id_part(self, ids: torch.Tensor, id_mask, n: int):
        rows = self.spec.num_nodes
        if id_mask is None:
            if n and (int(ids.min()) < 0 or int(ids.max()) >= rows):
                raise ValueError(f"node_ids: expected ids in [0, {rows}) for the ID embedding, got range "
                                 f"[{int(ids.min())}, {int(ids.max())}]; pass id_mask=False for cold-start nodes")
            return self._id_lookup(ids), None
        if not isinstance(id_mask, torch.Tensor) or id_mask.dtype != torch.bool or tuple(id_mask.shape) != (n,):
            got = (f"{id_mask.dtype} {tuple(id_mask.shape)}" if isinstance(id_mask, torch.Tensor)
                   else type(id_mask).__name__)
            raise ValueError(f"id_mask: expected a bool tensor ({n},), got {got}")
        safe = torch.where(id_mask.to(ids.device), ids, torch.zeros_like(ids))
        if n and (int(safe.min()) < 0 or int(safe.max()) >= rows):
            raise ValueError(f"node_ids: ids where id_mask is True must be in [0, {rows}), got range "
                             f"[{int(safe.min())}, {int(safe.max())}]")
        emb = self._id_lookup(safe)
        id_mask = id_mask.to(emb.device)
        return emb * id_mask.to(emb.dtype).unsqueeze(1), id_mask

    def _id_lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` of the ID table; the ids (the sampler's, on the host) go to the table's device
        here, after the range checks ran where they were."""
        table = self.id_embedding
        ids = ids.to(table.weight.device, non_blocking=True)
        return nn.functional.embedding(ids, table.weight, sparse=table.sparse or self.sparse_id_lookup)

    def _categorical_part(self, features: Mapping, n: int) -> torch.Tensor:
        cards = self.spec.categorical_cardinalities
        codes = _feature(features, "categorical", n, len(cards), "categorical_cardinalities")
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ValueError(f"features['categorical']: expected integer codes, got {codes.dtype}")
        codes = codes.long()
        bad = (codes < 0) | (codes >= self.categorical_cards)
        if bool(bad.any()):
            col = int(bad.any(0).nonzero()[0])
            raise ValueError(f"features['categorical']: column {col} expects codes in [0, {cards[col]}), got "
                             f"range [{int(codes[:, col].min())}, {int(codes[:, col].max())}]")
        emb = self.categorical_embedding(codes + self.categorical_offsets)  # (N, n_cat, H)
        emb = emb * (codes != 0).to(emb.dtype).unsqueeze(2)  # code 0 = missing: zero vector
        if self.categorical_proj is not None:
            return self.categorical_proj(emb.reshape(n, -1))
        return emb.sum(1)

    def _gate(self, parts, vectors) -> torch.Tensor:
        stacked = torch.stack(vectors, dim=1)  # (N, K, H)
        logits = (stacked * self.gate_weight).sum(-1) + self.gate_bias  # (N, K)
        present = torch.stack([torch.ones(stacked.shape[0], dtype=torch.bool, device=stacked.device)
                               if parts[k][1] is None else parts[k][1] for k in self.modality_names], dim=1)
        # a large finite negative (not -inf) keeps a node with nothing present NaN-free (weights 0)
        logits = logits.masked_fill(~present, torch.finfo(logits.dtype).min / 2)
        weights = torch.softmax(logits, dim=1) * present.to(logits.dtype)
        return (weights.unsqueeze(2) * stacked).sum(1)


class HeteroEncoder(nn.Module):
    """One :class:`NodeEncoder` per node type (``self.encoders``, an ``nn.ModuleDict``).

    Args:
        specs: ``{node_type: NodeFeatureSpec}``.
        hidden_dim, fusion, dropout, sparse, categorical_combine: as :class:`NodeEncoder`.
        use_id_embedding: a bool for every type, or ``{node_type: bool}`` naming every type.

    Shapes: ``forward({t: (N_t,)}, {t: {key: (N_t, dim)}}, {t: (N_t,) bool}) -> {t: (N_t, hidden_dim)}``.

    Example:
        >>> enc = HeteroEncoder({"user": NodeFeatureSpec(3), "item": NodeFeatureSpec(2, text_dim=4)}, 8,
        ...                     use_id_embedding={"user": True, "item": False})
        >>> h = enc({"user": torch.tensor([0, 2]), "item": torch.tensor([1])}, {"item": {"text": torch.randn(1, 4)}})
    """

    def __init__(self, specs: Mapping[str, NodeFeatureSpec], hidden_dim: int,
                 use_id_embedding: bool | Mapping[str, bool] = True, fusion: str = "sum", dropout: float = 0.0,
                 sparse: bool = False, categorical_combine: str = "sum"):
        super().__init__()
        if not isinstance(specs, Mapping) or not specs:
            raise ValueError(f"specs: expected a non-empty mapping node type -> NodeFeatureSpec, got {specs!r}")
        use_id = resolve_per_type("use_id_embedding", use_id_embedding, sorted(specs))
        self.encoders = nn.ModuleDict({
            t: NodeEncoder(specs[t], hidden_dim, use_id[t], fusion, dropout, sparse, categorical_combine)
            for t in sorted(specs)})

    def forward(self, node_ids: Mapping[str, torch.Tensor],
                features: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                id_mask: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        features = {} if features is None else features
        id_mask = {} if id_mask is None else id_mask
        for name, value in (("node_ids", node_ids), ("features", features), ("id_mask", id_mask)):
            if not isinstance(value, Mapping):
                raise TypeError(f"{name}: expected a mapping keyed by node type, got {type(value).__name__}")
        unknown = sorted(set(node_ids) - set(self.encoders))
        if unknown:
            raise ValueError(f"node_ids: node types {unknown} have no encoder (known: {sorted(self.encoders)})")
        return {t: self.encoders[t](ids, features.get(t), id_mask.get(t)) for t, ids in node_ids.items()}


def resolve_per_type(name: str, value, node_types: list[str]) -> dict[str, bool]:
    """``value`` (a bool, or ``{node_type: bool}`` naming exactly ``node_types``) as ``{type: bool}``."""
    if isinstance(value, bool):
        return {t: value for t in node_types}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name}: expected a bool or a mapping node type -> bool, got {type(value).__name__}")
    missing, unknown = sorted(set(node_types) - set(value)), sorted(set(value) - set(node_types))
    if missing or unknown:
        raise ValueError(f"{name}: expected exactly the node types {sorted(node_types)}, missing {missing}, "
                         f"unknown {unknown}")
    bad = sorted(t for t, v in value.items() if not isinstance(v, bool))
    if bad:
        raise TypeError(f"{name}: expected bool values, got {[value[t] for t in bad]!r} for {bad}")
    return {t: value[t] for t in node_types}
