"""What a run trains on, derived from a snapshot and its :class:`graphlake.training.config.TrainConfig`:
the target edge types, the node types it models, each type's feature spec, the stored CSRs minus
the cold-start items and the validation slice, and the full-graph degrees (LightGCN's
normalisation). Pure functions of ``(snapshot, config)``: the trainer, inductive inference
(:mod:`graphlake.training.inductive`), ``embed-new`` and evaluation all call them, so they agree on what a
run's graph is.

Example:
    >>> targets = resolve_targets(snapshot, config)
    >>> csr, validation, cold = training_csr(snapshot, config, targets)
"""

from __future__ import annotations

import numpy as np
import torch

from graphlake.core.edge_types import parse_edge_type
from graphlake.training import checkpoint as ckpt
from graphlake.training.cold_start import remove_cold_edges, select_cold_items
from graphlake.training.config import TrainConfig
from graphlake.training.model import NodeFeatureSpec
from graphlake.training.sampling import HeteroCSRGraph, csr_rows
from graphlake.training.sampling.base import REVERSE_PREFIX

FEATURE_NAMES = ("numeric", "numeric_missing", "categorical", "text", "image", "has_image")
BEHAVIOURS = ("click", "view", "cart", "fav", "purchase")
TARGET_BEHAVIOUR = "purchase"  # the behaviour evaluated when a run trains it (graphlake evaluate's default)


def behaviour_edge(name: str) -> str:
    """An edge type, or a behaviour name meaning ``user__<name>__item`` (``purchase``)."""
    return name if "__" in name else f"user__{name}__item"


def default_targets(edge_types) -> list[str]:
    """The target edge types of a run whose config names none: every ``user -> item`` behaviour
    edge type. (Purchase alone, the other behaviours as auxiliary relations, is the multi-behaviour
    setting: ``graphlake train --target purchase``; it is not the default because a small lake has
    too few purchases to train on: the 4,000-event demo got one step and no validation slice.)"""
    return [e for e in edge_types if e.startswith("user__") and e.endswith("__item")
            and parse_edge_type(e).relation in BEHAVIOURS]


def resolve_targets(snapshot, config: TrainConfig) -> list[str]:
    """The target edge types: ``config.targets``, or :func:`default_targets` of the snapshot."""
    available = snapshot.edge_types
    targets = list(config.targets) or default_targets(available)
    missing = [t for t in targets if t not in available]
    if missing:
        raise ValueError(f"targets: {missing} not in the snapshot (edge types: {available})")
    if not targets:
        raise ValueError(f"targets: the snapshot has no user -> item behaviour edges (edge types: {available}); "
                         "name the target edge types in the config")
    return targets


def trained_node_types(edge_types) -> list[str]:
    """The node types some edge type (``"src__rel__dst"`` names or relation tuples) touches: the
    ones a run models and embeds (a snapshot type that none of the configured edge types reaches
    gets no encoder and no embedding)."""
    out = set()
    for e in edge_types:
        parts = parse_edge_type(e) if isinstance(e, str) else e
        out.update((parts[0], parts[2]))
    return sorted(out)


def feature_specs(snapshot, node_types=None) -> dict[str, NodeFeatureSpec]:
    """One :class:`NodeFeatureSpec` per node type (default: every snapshot type) from the
    snapshot's matrices and manifest."""
    specs = {}
    spec_json = snapshot.manifest.get("feature_spec") or {}
    for t in snapshot.node_types if node_types is None else node_types:
        names = set(snapshot.feature_names(t))
        dims = {n: (snapshot.features(t, n).shape[1] if n in names else 0) for n in ("numeric", "text", "image")}
        cards: tuple = ()
        if "categorical" in names and snapshot.features(t, "categorical").shape[1] > 0:
            cards = tuple(int(c) for c in spec_json.get(t, {}).get("categorical", {}).get("cardinalities", ()))
            if len(cards) != snapshot.features(t, "categorical").shape[1]:  # no spec: from the data
                cards = tuple(int(c) + 1 for c in np.asarray(snapshot.features(t, "categorical")).max(axis=0))
        specs[t] = NodeFeatureSpec(num_nodes=snapshot.num_nodes(t), numeric_dim=dims["numeric"],
                                   categorical_cardinalities=cards, text_dim=dims["text"], image_dim=dims["image"])
    return specs


def holdout_mask(nnz: int, fraction: float, seed: int, index: int) -> torch.Tensor:
    """Boolean ``(nnz,)``: True for the edges of target ``index`` held out for validation."""
    if fraction <= 0:
        return torch.zeros(nnz, dtype=torch.bool)
    return torch.rand(nnz, generator=ckpt.generator(seed, 7, index)) < fraction


def _split_csr(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, held: torch.Tensor):
    """(train CSR, held-out (src, dst)) of one relation."""
    src = csr_rows(torch.from_numpy(np.array(indptr, dtype=np.int64)))  # a copy: memmaps are read-only
    dst = torch.from_numpy(np.asarray(indices).astype(np.int64))
    keep = ~held
    counts = torch.bincount(src[keep], minlength=len(indptr) - 1)
    new_ptr = torch.zeros(len(indptr), dtype=torch.int64)
    torch.cumsum(counts, 0, out=new_ptr[1:])
    w = torch.from_numpy(np.array(weights, dtype=np.float32))
    return (new_ptr.numpy(), dst[keep].numpy(), w[keep].numpy()), (src[held], dst[held])


def run_edge_types(snapshot, config: TrainConfig, targets: list[str]) -> list[str]:
    """The stored edge types a run passes messages over: ``config.edge_types`` (default: all of
    the snapshot's) plus its targets, sorted."""
    edge_types = list(config.edge_types) or snapshot.edge_types
    missing = [t for t in list(edge_types) + targets if t not in snapshot.edge_types]
    if missing:
        raise ValueError(f"edge_types: {missing} not in the snapshot (edge types: {snapshot.edge_types})")
    return sorted(set(edge_types) | set(targets))  # targets always pass messages (minus held-out)


def training_csr(snapshot, config: TrainConfig, targets: list[str]):
    """The stored CSRs a run trains on: ``(csr {edge_type: (indptr, indices, weights)}, validation
    {target: (src, dst)}, cold)`` with ``cold`` the :class:`graphlake.training.cold_start.ColdStart` held-out
    items (None when ``cold_start_fraction`` is 0). Cold-start edges are removed first, then each
    target's validation slice. Build the graph with :class:`HeteroCSRGraph` and, when ``cold``,
    ``restrict_messages(cold.levels())``."""
    csr, validation, cold = {e: snapshot.csr(e) for e in run_edge_types(snapshot, config, targets)}, {}, None
    if config.cold_start_fraction > 0:
        cold = select_cold_items(snapshot, targets, config.cold_start_fraction, config.seed)
        csr = remove_cold_edges(csr, cold)
    for i, e in enumerate(targets):
        held = holdout_mask(len(csr[e][1]), config.validation_fraction, config.seed, i)
        if bool(held.any()):
            csr[e], validation[e] = _split_csr(*csr[e], held)
    return csr, validation, cold


def full_degrees(graph: HeteroCSRGraph) -> dict:
    """``{rel: (deg_src (N_src,), deg_dst (N_dst,))}`` over the whole graph (LightGCN's normalisation)."""
    out = {}
    for rel in graph.relations:
        s, name, d = rel
        back = (d, name[len(REVERSE_PREFIX):] if name.startswith(REVERSE_PREFIX) else REVERSE_PREFIX + name, s)
        out[rel] = (graph.degree(back, torch.arange(graph.num_nodes[s])).to(torch.float32),
                    graph.degree(rel, torch.arange(graph.num_nodes[d])).to(torch.float32))
    return out
