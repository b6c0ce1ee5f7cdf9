"""Inductive inference: embeddings of nodes that appeared after the graph was built, without
retraining (``graphlake embed-new``).

:func:`embed_new_nodes` loads a finished run (``run.json``: snapshot and config; the latest
checkpoint: the model), rebuilds the graph the run trained on (:func:`graphlake.training.run_data.
training_csr`: the same edge types, validation and cold-start removals), appends the new nodes
and edges, and embeds the new nodes the way the trainer's ``embed_all`` embeds every node:

* ``mode: sampled``: mini-batches of ``inference_batch_size`` new nodes over their sampled
  ``len(fanouts)``-hop neighbourhoods (the run's fanouts and weighting; fixed seeds, so the
  result is deterministic; fanouts of ``-1`` make it exact full-neighbourhood inference);
* ``mode: sampled`` with ``inference: layerwise``: layer-wise inference over the whole graph plus
  the new nodes (:mod:`graphlake.training.layerwise`: every node over its full neighbourhood, one pass over
  the edges per layer), the new nodes' rows kept — what ``embed_all`` gave the run's own nodes;
* ``mode: full``: one full propagation over the whole graph plus the new nodes.

Semantics of the new edges: every new edge needs at least one new endpoint, and messages flow
from the existing graph into new nodes (and between new nodes), never from a new node into an
existing one (:meth:`HeteroCSRGraph.restrict_messages` with existing nodes at level 0, the run's
held-out cold-start items at 1, new nodes at 2). So every existing node has exactly the
neighbourhood it had in training: its embedding (``<run_dir>/embeddings/<type>.npy``) and its
hidden states stay valid, and a new node's embedding is the one the model gives a node with
those features and edges whose ID embedding is masked (it has no trained row). Weight-free
(LightGCN) layers normalise with the degrees of this graph: an existing neighbour keeps its
trained degree, a new node's degree is its number of new edges. The result lies in the same
space as the run's embeddings (score it against them with the run's decoder). One caveat: with
``combine: attention`` the relation weights are a mean over the batch's nodes (semantic
attention), so, as in ``embed_all``, they depend a little on the batch.

Example:
    >>> emb = embed_new_nodes(run_dir,
    ...     new_nodes={"item": {"count": 2, "features": {"numeric": num (2, 8), "numeric_missing": miss (2, 8),
    ...                                                  "categorical": cat (2, 5), "text": txt (2, 16)}},
    ...                "user": {"count": 1}},
    ...     new_edges={"item__belongs_to__category": (np.array([n_items, n_items + 1]), np.array([3, 7]), None),
    ...                "user__purchase__item": (np.array([n_users]), np.array([n_items]), np.array([1.0]))})
    >>> emb["item"].shape, emb["user"].shape          # (2, dim), (1, dim)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from graphlake.core.config import load_config
from graphlake.core.edge_types import parse_edge_type
from graphlake.graph_build.snapshot import open_snapshot
from graphlake.training import checkpoint as ckpt
from graphlake.training.config import TrainConfig
from graphlake.training.layerwise import layerwise_embeddings
from graphlake.training.model import HeteroGraphSAGE, gather_features
from graphlake.training.run import TrainRun
from graphlake.training.run_data import (
    FEATURE_NAMES,
    feature_specs,
    full_degrees,
    resolve_targets,
    trained_node_types,
    training_csr,
)
from graphlake.training.sampling import CSRNeighborSampler, HeteroCSRGraph, csr_rows
from graphlake.training.scoring import has_score_column, prior_roles, scoring_vectors

INFERENCE_STREAM = 9  # ckpt.generator(seed, INFERENCE_STREAM, type index, offset): the sampled neighbourhoods
NEW_NODE_KEYS = ("count", "features")


def embed_new_nodes(run_dir: str, new_nodes: Mapping[str, Mapping], new_edges: Mapping[str, tuple]
                    ) -> dict[str, np.ndarray]:
    """Embeddings of brand-new nodes of a finished run's graph (see the module docstring).

    Args:
        run_dir: the run folder (``run.json`` and at least one checkpoint).
        new_nodes: ``{node_type: {"count": n_new, "features": {name: array (n_new, dim)}}}``.
            ``features`` uses the snapshot's names and widths (``open_snapshot(path).
            feature_names(type)``, ``features(type, name).shape[1]``; a 1-D array is read as
            ``(n_new, 1)``); every model feature of the type (``numeric``, ``numeric_missing``,
            ``categorical``, ``text``, ``image``, ``has_image`` where the snapshot has them) is
            required unless the run ignores features (``model.use_features: false``). Values as
            ``graphlake.graph_build.features`` writes them (standardised numerics, category codes with 0 =
            missing, ...); a new item's count features are those of a zero count. ``features``
            may be left out for a type without features. The i-th new node of a type gets the id
            ``num_nodes(type) + i``.
        new_edges: ``{"<src>__<rel>__<dst>": (src_ids, dst_ids, weights)}`` over the run's
            stored edge types, 1-D integer arrays of one length and float weights (``None`` =
            1.0, as structural edges weigh); ids ``< num_nodes(type)`` are existing nodes, ids
            ``>= num_nodes(type)`` new ones. Each edge needs a new endpoint; one edge per pair.

    Returns:
        ``{node_type: float32 (n_new, dim)}`` for every type of ``new_nodes``, row i = the i-th
        new node; deterministic.

    Raises:
        TypeError / ValueError naming the argument: a wrong type or shape, an unknown node type,
        feature or edge type, a missing feature, ids out of range, an edge between two existing
        nodes, a duplicate pair, a non-finite or non-positive weight.
        FileNotFoundError: no run or no checkpoint in ``run_dir``.
    """
    if not isinstance(run_dir, (str, bytes)) and not hasattr(run_dir, "__fspath__"):
        raise TypeError(f"run_dir: expected a folder path, got {type(run_dir).__name__}")
    spec = TrainRun(run_dir).spec()
    config = load_config(TrainConfig, spec["config"])
    snapshot = open_snapshot(spec["snapshot"])
    model_config = config.model_config()
    specs = feature_specs(snapshot)
    counts, new_features = _check_new_nodes(snapshot, new_nodes, specs, model_config.use_features, FEATURE_NAMES)
    state = ckpt.load_latest(run_dir)
    if state is None:
        raise FileNotFoundError(f"run_dir: {run_dir} has no checkpoint (did the run train?)")

    targets = resolve_targets(snapshot, config)
    csr, _, cold = training_csr(snapshot, config, targets)
    n_old = {t: snapshot.num_nodes(t) for t in snapshot.node_types}
    n_all = {t: n_old[t] + counts.get(t, 0) for t in n_old}
    edges = _check_new_edges(new_edges, sorted(csr), n_old, n_all)
    for name in csr:
        s, _, _ = parse_edge_type(name)
        if name in edges or n_all[s] != n_old[s]:
            csr[name] = _extend_csr(*csr[name], n_all[s], *edges.get(name, (None, None, None)))
    modelled = trained_node_types(csr)
    unmodelled = sorted(t for t in counts if t not in modelled)
    if unmodelled:
        raise ValueError(f"new_nodes: node types {unmodelled} are in none of the run's edge types (the run "
                         f"modelled {modelled}), so they have no embedding")
    graph = HeteroCSRGraph({t: n_all[t] for t in modelled}, csr)
    levels = {}
    for t in n_all:
        if n_all[t] == n_old[t] and (cold is None or cold.node_type != t):
            continue
        lv = torch.zeros(n_all[t], dtype=torch.int64)
        if cold is not None and cold.node_type == t:
            lv[cold.node_ids] = 1
        lv[n_old[t]:] = 2
        levels[t] = lv
    if levels:
        graph = graph.restrict_messages(levels)

    roles = prior_roles(targets) if has_score_column(model_config) else (set(), set())
    model = HeteroGraphSAGE.from_config(model_config, {t: specs[t] for t in modelled}, graph.relations,
                                        destination_types=sorted(roles[1]))
    model.load_state_dict(state["model"])
    model.eval()
    id_types = {t for t, enc in model.encoder.encoders.items() if enc.id_embedding is not None}
    degrees = full_degrees(graph) if model_config.weight_free else None
    existing = {t: {n: snapshot.features(t, n) for n in snapshot.feature_names(t) if n in FEATURE_NAMES}
                for t in snapshot.node_types}

    def inputs(node_ids):  # features of old and new nodes; no trained ID row for new (or held-out) ones
        feats = _gather(existing, new_features, n_old, node_ids)
        mask = {}
        if cold is not None:
            feats, mask = cold.prepare(feats, node_ids, id_types)
        for t in id_types:
            ids = node_ids.get(t)
            if ids is not None and (int(ids.max()) >= n_old[t] if len(ids) else False):
                mask[t] = mask.get(t, torch.ones(len(ids), dtype=torch.bool)) & (ids < n_old[t])
        return feats, mask or None

    def forward(batch):
        feats, mask = inputs(batch.node_ids)
        return model(batch, feats, id_mask=mask, degrees=degrees)

    def encode(t, ids):
        feats, mask = inputs({t: ids})
        return model.encoder({t: ids}, feats, mask)[t]

    types = sorted(counts)
    dim = model_config.hidden_dim

    def scoring(t, rows):  # as the run exported its vectors; new nodes: no training degree, no bias (0)
        return scoring_vectors(rows, t, model_config, roles)

    out = {t: scoring(t, np.zeros((0, dim), np.float32)) for t in types}
    with torch.no_grad():
        if config.mode == "full":
            if any(counts[t] for t in types):
                emb = forward(graph.full_batch(modelled, num_layers=model_config.num_layers))
                out = {t: scoring(t, emb[t][n_old[t]:].cpu().numpy().astype(np.float32)) for t in types}
            return out
        if config.inference == "layerwise":  # as the run's own tables: every node over its full neighbourhood
            if any(counts[t] for t in types):  # (new nodes send no messages: the old rows are the run's)
                emb = layerwise_embeddings(model, graph, encode, config.inference_batch_size, degrees)
                out = {t: scoring(t, emb[t][n_old[t]:].cpu().numpy().astype(np.float32)) for t in types}
            return out
        sampler = CSRNeighborSampler(graph, list(config.fanouts), weighted=config.weighted_sampling)
        for t in types:
            ti = modelled.index(t)  # the type's own sampling seeds, whichever types are asked for
            rows = []
            for start in range(0, counts[t], config.inference_batch_size):
                ids = torch.arange(n_old[t] + start, n_old[t] + min(counts[t], start + config.inference_batch_size))
                batch = sampler.sample({t: ids}, generator=ckpt.generator(config.seed, INFERENCE_STREAM, ti, start))
                rows.append(forward(batch)[t].cpu())
            if rows:
                out[t] = scoring(t, torch.cat(rows).numpy().astype(np.float32))
    return out


# ---------------------------------------------------------------- argument checks
def _int_array(name: str, value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a 1-D integer numpy array, got {type(value).__name__}")
    if not (np.issubdtype(value.dtype, np.integer) and value.dtype != np.bool_):
        raise TypeError(f"{name}: expected integer ids, got dtype {value.dtype}")
    if value.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {value.shape}")
    return value.astype(np.int64)


def _check_new_nodes(snapshot, new_nodes, specs, use_features: bool, model_names) -> tuple[dict, dict]:
    """``({type: count}, {type: {name: array cast to the snapshot's dtype}})``."""
    if not isinstance(new_nodes, Mapping):
        raise TypeError(f"new_nodes: expected a mapping node type -> {{'count', 'features'}}, got "
                        f"{type(new_nodes).__name__}")
    counts, features = {}, {}
    for t, entry in new_nodes.items():
        where = f"new_nodes[{t!r}]"
        if t not in snapshot.node_types:
            raise ValueError(f"new_nodes: unknown node type {t!r} (the snapshot's: {snapshot.node_types})")
        if not isinstance(entry, Mapping):
            raise TypeError(f"{where}: expected a mapping {{'count': n, 'features': {{...}}}}, got {type(entry).__name__}")
        unknown = sorted(set(entry) - set(NEW_NODE_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown} (expected {list(NEW_NODE_KEYS)})")
        if "count" not in entry:
            raise ValueError(f"{where}: missing 'count' (the number of new nodes)")
        n = entry["count"]
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"{where}['count']: expected an int, got {type(n).__name__}")
        if n < 0:
            raise ValueError(f"{where}['count']: expected >= 0, got {n}")
        counts[t] = n = int(n)
        given = entry.get("features", {})
        if not isinstance(given, Mapping):
            raise TypeError(f"{where}['features']: expected a mapping name -> array, got {type(given).__name__}")
        names = snapshot.feature_names(t)
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ValueError(f"{where}['features']: unknown features {unknown} (the snapshot's {t!r} features: {names})")
        missing = sorted(set(names) & set(model_names) - set(given)) if use_features else []
        if missing:
            raise ValueError(f"{where}['features']: missing {missing} (the model reads every one of {sorted(set(names) & set(model_names))})")
        features[t] = {}
        for name, value in given.items():
            features[t][name] = _check_matrix(f"{where}['features'][{name!r}]", value, snapshot.features(t, name), n)
        cat = features[t].get("categorical")
        cards = specs[t].categorical_cardinalities
        if cat is not None and use_features and len(cards) == cat.shape[1] and len(cat):
            bad = (cat < 0) | (cat >= np.asarray(cards))
            if bad.any():
                col = int(np.nonzero(bad.any(0))[0][0])
                raise ValueError(f"{where}['features']['categorical']: column {col} expects codes in "
                                 f"[0, {cards[col]}), got range [{cat[:, col].min()}, {cat[:, col].max()}]")
    return counts, features


def _check_matrix(name: str, value, like: np.ndarray, n: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array ({n}, {like.shape[1]}), got {type(value).__name__}")
    width = like.shape[1]
    if value.ndim == 1 and width == 1:
        value = value.reshape(-1, 1)
    if value.shape != (n, width):
        raise ValueError(f"{name}: expected shape ({n}, {width}), got {value.shape}")
    kind = like.dtype
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
        raise TypeError(f"{name}: expected a numeric array, got dtype {value.dtype}")
    if (np.issubdtype(kind, np.integer) or kind == np.bool_) and np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{name}: expected {'integer codes' if kind != np.bool_ else 'booleans'} "
                        f"(the snapshot's {kind}), got dtype {value.dtype}")
    if kind == np.bool_ and value.dtype != np.bool_ and value.size and not np.isin(value, (0, 1)).all():
        raise ValueError(f"{name}: expected booleans (0/1), got other values")
    if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
        raise ValueError(f"{name}: expected finite values")
    return np.ascontiguousarray(value.astype(kind))


def _check_new_edges(new_edges, edge_types: list[str], n_old: dict, n_all: dict) -> dict:
    """``{edge_type: (src int64, dst int64, weights float32)}`` as torch tensors, checked."""
    if not isinstance(new_edges, Mapping):
        raise TypeError(f"new_edges: expected a mapping edge type -> (src_ids, dst_ids, weights), got "
                        f"{type(new_edges).__name__}")
    out = {}
    for name, value in new_edges.items():
        where = f"new_edges[{name!r}]"
        if name not in edge_types:
            raise ValueError(f"new_edges: unknown edge type {name!r} (the run's edge types: {edge_types})")
        if not isinstance(value, (tuple, list)) or len(value) != 3:
            raise TypeError(f"{where}: expected a tuple (src_ids, dst_ids, weights), got {type(value).__name__}")
        s, _, d = parse_edge_type(name)
        src, dst = _int_array(f"{where} src_ids", value[0]), _int_array(f"{where} dst_ids", value[1])
        if len(src) != len(dst):
            raise ValueError(f"{where}: src_ids and dst_ids differ in length ({len(src)} and {len(dst)})")
        w = value[2]
        if w is None:
            w = np.ones(len(src), np.float32)
        else:
            if isinstance(w, torch.Tensor):
                w = w.detach().cpu().numpy()
            if not isinstance(w, np.ndarray) or not (np.issubdtype(w.dtype, np.floating)
                                                     or np.issubdtype(w.dtype, np.integer)) or w.dtype == np.bool_:
                raise TypeError(f"{where} weights: expected a 1-D float array or None, got "
                                f"{getattr(w, 'dtype', type(w).__name__)}")
            if w.shape != (len(src),):
                raise ValueError(f"{where} weights: expected shape ({len(src)},), got {w.shape}")
            if not (np.isfinite(w).all() and (w > 0).all()):
                raise ValueError(f"{where} weights: expected finite weights > 0")
        for label, ids, t in (("src_ids", src, s), ("dst_ids", dst, d)):
            if len(ids) and (ids.min() < 0 or ids.max() >= n_all[t]):
                raise ValueError(f"{where} {label}: expected {t} ids in 0..{n_all[t] - 1} ({n_old[t]} existing + "
                                 f"{n_all[t] - n_old[t]} new), got range [{ids.min()}, {ids.max()}]")
        old = (src < n_old[s]) & (dst < n_old[d])
        if old.any():
            i = int(np.nonzero(old)[0][0])
            raise ValueError(f"{where}: edge {i} ({src[i]} -> {dst[i]}) joins two existing nodes; every new edge "
                             "needs a new endpoint (existing edges come from the graph build)")
        key = src * n_all[d] + dst
        if len(np.unique(key)) != len(key):
            raise ValueError(f"{where}: duplicate (src, dst) pairs; give one edge per pair")
        out[name] = (torch.from_numpy(src), torch.from_numpy(dst), torch.from_numpy(w.astype(np.float32)))
    return out


# ---------------------------------------------------------------- graph and features
def _extend_csr(indptr, indices, weights, n_src: int, src=None, dst=None, w=None) -> tuple:
    """A stored CSR with ``n_src`` rows (new rows empty) plus the new edges ``src -> dst``."""
    ptr = torch.from_numpy(np.array(indptr, dtype=np.int64))
    pad = n_src + 1 - len(ptr)
    if src is None:
        return torch.cat([ptr, ptr[-1:].expand(pad)]).numpy(), indices, weights
    all_src = torch.cat([csr_rows(ptr), src])
    all_dst = torch.cat([torch.from_numpy(np.asarray(indices).astype(np.int64)), dst])
    all_w = torch.cat([torch.from_numpy(np.array(weights, dtype=np.float32)), w])
    order = torch.sort(all_src, stable=True).indices  # rows grouped; HeteroCSRGraph sorts within rows
    new_ptr = torch.zeros(n_src + 1, dtype=torch.int64)
    torch.cumsum(torch.bincount(all_src, minlength=n_src), 0, out=new_ptr[1:])
    return new_ptr.numpy(), all_dst.index_select(0, order).numpy(), all_w.index_select(0, order).numpy()


def _gather(existing: dict, new: dict, n_old: dict, node_ids: dict) -> dict:
    """The batch's feature rows: existing ids from the snapshot, ids past it from the new matrices."""
    out = {}
    for t, ids in node_ids.items():
        old = ids < n_old[t]
        if bool(old.all()):
            out[t] = gather_features({t: existing.get(t, {})}, {t: ids})[t]
            continue
        part_old = gather_features({t: existing.get(t, {})}, {t: ids[old]})[t]
        part_new = gather_features({t: new.get(t, {})}, {t: ids[~old] - n_old[t]})[t]
        out[t] = {}
        for name, rows in part_old.items():
            x = torch.zeros((len(ids),) + tuple(rows.shape[1:]), dtype=rows.dtype)
            x[old] = rows
            if name in part_new:
                x[~old] = part_new[name].to(rows.dtype)
            out[t][name] = x
    return out
