"""Cold-start items: a held-out set of items that training never sees, embedded from their
features, and the metrics of the standard cold-start item protocol.

With ``cold_start_fraction: f`` (:class:`graphlake.training.config.TrainConfig`) the trainer holds out,
deterministically from ``seed``, ``round(f * n)`` of the ``n`` items of the targets' item type
that have at least one target edge (:func:`select_cold_items`). For those items:

* every edge of an edge type that touches the item type is removed from the training graph,
  except the item's *attribute* edges (relations in :data:`KEEP_RELATIONS`: ``item -belongs_to->
  shop | brand | category``, which a brand-new item has when it is listed). So their target
  (``user -> item``) edges are neither positives nor messages, and their other behaviour or
  behaviour-derived edges (other ``user -> item`` behaviours, ``co_view``, ``co_purchase``,
  ``query -searched-> item``) are gone too;
* their attribute edges are one-way (:meth:`HeteroCSRGraph.restrict_messages`, held-out items at
  level 1): an item receives messages from its shop / brand / category but sends none, so no
  other node's neighbourhood — during training or inference — contains a held-out item;
* their ID embedding rows are never read (``id_mask`` False wherever they appear) and they are
  never drawn as negatives (uniform draws and hard pools exclude them; their popularity is 0);
* their count features (numeric features the feature spec imputes with ``zero``: the event
  counts and distinct users of ``graphlake.graph_build.features``) are replaced by the value of a zero
  count, ``(0 - mean) / std``, as for an item nobody has interacted with yet. Other features
  (price, categorical codes, title text, image) are used as they are.

So a held-out item's embedding (``embed_all``, written to ``embeddings/<item>.npy`` like every
other row) is computed from its features and the states of its shop / brand / category, with
no trace of its interactions. The held-out list is saved as ``<run_dir>/cold_start_items.json``
(``{"node_type", "node_ids", "fraction", "seed", "candidates"}``, node ids of the graph version).

Evaluation (:func:`graphlake.training.evaluate.cold_start_metrics`, run by ``graphlake evaluate``): the ground truth is
every target edge (of the run's targets with the first target's user and item types) into a
held-out item, the candidates are the held-out items only, every user with a held-out pair is
ranked against all of them (nothing to mask: the user's training items are not candidates),
and Recall@K / NDCG@K are averaged over those users as in :mod:`graphlake.training.metrics`. The random
reference is the exact expectation for a uniformly random ranking: ``recall = min(K, C) / C``
and ``E[DCG] = |T_u| / C * sum_{r <= min(K, C)} 1 / log2(r + 1)`` over ``C`` candidates; the
popularity reference ranks the held-out items by their attributes' popularity among the kept
items (:func:`attribute_popularity`).

Example:
    >>> m = cold_start_metrics(run_dir, k=20)
    >>> m["recall@20"], m["random_recall@20"], m["items"], m["users"], m["pairs"]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from graphlake.core.edge_types import parse_edge_type
from graphlake.training import checkpoint as ckpt
from graphlake.training.sampling import csr_rows
from graphlake.training.sampling.graph import select_edges

COLD_START_FILE = "cold_start_items.json"
KEEP_RELATIONS = ("belongs_to",)  # attribute edges a new item has from the start
SELECTION_STREAM = 8  # ckpt.generator(seed, SELECTION_STREAM): the held-out items' permutation


@dataclass(frozen=True)
class ColdStart:
    """The held-out items of a run.

    Attributes:
        node_type: the targets' item type.
        node_ids: sorted int64 ``(k,)`` held-out node ids.
        num_nodes: number of nodes of ``node_type`` in the snapshot.
        neutral: ``{feature name: (column indices int64, values float32)}`` written into the
            held-out items' feature rows (the zero-count values; see the module docstring).
        candidates: the number of items they were drawn from (items with a target edge).
    """

    node_type: str
    node_ids: torch.Tensor
    num_nodes: int
    neutral: dict
    candidates: int = 0
    _mask: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        mask = torch.zeros(self.num_nodes, dtype=torch.bool)
        mask[self.node_ids] = True
        object.__setattr__(self, "_mask", mask)

    def mask(self, size: int | None = None) -> torch.Tensor:
        """Bool ``(size or num_nodes,)``: True for held-out items (ids past ``num_nodes`` are False)."""
        if size is None or size == self.num_nodes:
            return self._mask
        out = torch.zeros(size, dtype=torch.bool)
        out[: self.num_nodes] = self._mask[:size]
        return out

    def kept_ids(self) -> torch.Tensor:
        """int64: the items of ``node_type`` that are not held out (the negative candidates)."""
        return torch.nonzero(~self.mask()).flatten()

    def levels(self, size: int | None = None) -> dict[str, torch.Tensor]:
        """``{node_type: int64}`` levels for :meth:`HeteroCSRGraph.restrict_messages` (held out = 1)."""
        return {self.node_type: self.mask(size).to(torch.int64)}

    def prepare(self, features: dict, node_ids: dict, id_types) -> tuple[dict, dict]:
        """The batch's gathered features with the held-out rows neutralised (in place) and the
        ``id_mask`` ``{type: bool}`` (False on held-out rows) for the types in ``id_types``."""
        ids = node_ids.get(self.node_type)
        if ids is None:
            return features, {}
        ids = ids.cpu()
        held = torch.zeros(len(ids), dtype=torch.bool)
        inside = ids < self.num_nodes
        held[inside] = self._mask.index_select(0, ids[inside])
        if bool(held.any()):
            feats = features.get(self.node_type, {})
            for name, (cols, values) in self.neutral.items():
                if name in feats:
                    x = feats[name]
                    rows = torch.nonzero(held).flatten().to(x.device)
                    sub = x.index_select(0, rows)
                    sub[:, cols.to(x.device)] = values.to(device=x.device, dtype=x.dtype)
                    x.index_copy_(0, rows, sub)
        mask = {self.node_type: ~held.to(ids.device)} if self.node_type in id_types else {}
        return features, mask


def item_type_of(targets) -> tuple[str, str]:
    """``(user type, item type)`` of the targets (all must end at one item type)."""
    types = sorted({parse_edge_type(t).dst for t in targets})
    if len(types) != 1:
        raise ValueError(f"cold_start_fraction: the targets {list(targets)} end at several node types {types}; "
                         "cold start holds out items of one type")
    return parse_edge_type(targets[0]).src, types[0]


def select_cold_items(snapshot, targets, fraction: float, seed: int) -> ColdStart:
    """Hold out ``round(fraction * n)`` of the ``n`` items with a target edge (see the module docstring)."""
    _, item_type = item_type_of(targets)
    n = snapshot.num_nodes(item_type)
    seen = torch.zeros(n, dtype=torch.bool)
    for t in targets:
        seen[torch.from_numpy(np.asarray(snapshot.csr(t)[1]).astype(np.int64))] = True
    candidates = torch.nonzero(seen).flatten()
    k = int(round(fraction * len(candidates)))
    if k < 1 or k >= len(candidates):
        raise ValueError(f"cold_start_fraction: {fraction} of the {len(candidates)} {item_type} nodes with target "
                         f"edges holds out {k}; expected at least 1 and fewer than all")
    perm = torch.randperm(len(candidates), generator=ckpt.generator(seed, SELECTION_STREAM))
    ids = candidates.index_select(0, perm[:k]).sort().values
    return ColdStart(item_type, ids, n, neutral_features(snapshot, item_type), len(candidates))


def neutral_features(snapshot, item_type: str) -> dict:
    """``{"numeric": (cols, values)}``: the zero-count value of every count feature of the spec."""
    spec = ((snapshot.manifest.get("feature_spec") or {}).get(item_type) or {}).get("numeric") or {}
    names, stats = spec.get("names") or [], spec.get("stats") or {}
    if "numeric" not in snapshot.feature_names(item_type) or not names:
        return {}
    if len(names) != snapshot.features(item_type, "numeric").shape[1]:
        return {}
    cols, values = [], []
    for i, name in enumerate(names):
        s = stats.get(name) or {}
        if s.get("impute") != "zero":
            continue
        value = (0.0 - s.get("mean", 0.0)) / (s.get("std") or 1.0) if s.get("standardised") else 0.0
        cols.append(i)
        values.append(value)
    if not cols:
        return {}
    return {"numeric": (torch.tensor(cols, dtype=torch.int64), torch.tensor(values, dtype=torch.float32))}


def remove_cold_edges(csr: dict, cold: ColdStart) -> dict:
    """The stored CSRs without the held-out items' edges, except those of :data:`KEEP_RELATIONS`."""
    held = cold.mask()
    out = dict(csr)
    for name, (indptr, indices, weights) in csr.items():
        s, rel, d = parse_edge_type(name)
        if cold.node_type not in (s, d) or rel in KEEP_RELATIONS:
            continue
        ptr = torch.from_numpy(np.array(indptr, dtype=np.int64))
        drop = torch.zeros(int(ptr[-1]), dtype=torch.bool)
        if s == cold.node_type:
            drop |= held.index_select(0, csr_rows(ptr))
        if d == cold.node_type:
            drop |= held.index_select(0, torch.from_numpy(np.asarray(indices).astype(np.int64)))
        if bool(drop.any()):
            out[name] = select_edges(name, np.asarray(indptr), indices, weights, torch.nonzero(~drop).flatten())
    return out


def write_cold_items(run_dir: str, cold: ColdStart, fraction: float, seed: int) -> str:
    """``<run_dir>/cold_start_items.json`` (atomic)."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, COLD_START_FILE)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"node_type": cold.node_type, "node_ids": cold.node_ids.tolist(), "fraction": fraction,
                   "seed": seed, "candidates": cold.candidates}, f)
    os.replace(tmp, path)
    return path


def read_cold_items(run_dir: str) -> dict | None:
    """The run's ``cold_start_items.json`` (None when the run held nothing out)."""
    path = os.path.join(run_dir, COLD_START_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def held_out_pairs(snapshot, targets, item_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique ``(user, item)`` pairs of the targets' edges into ``item_ids`` (sorted)."""
    n_items = snapshot.num_nodes(parse_edge_type(targets[0]).dst)
    held = torch.zeros(n_items, dtype=torch.bool)
    held[item_ids] = True
    keys = []
    for t in targets:
        indptr, indices, _ = snapshot.csr(t)
        src = csr_rows(torch.from_numpy(np.array(indptr, dtype=np.int64)))
        dst = torch.from_numpy(np.asarray(indices).astype(np.int64))
        sel = held.index_select(0, dst)
        keys.append(src[sel] * n_items + dst[sel])
    key = torch.unique(torch.cat(keys)) if keys else torch.zeros(0, dtype=torch.int64)
    return key // n_items, key % n_items


def random_ranking_metrics(truth_per_user: torch.Tensor, candidates: int, k: int) -> dict:
    """Exact expected Recall@K / NDCG@K of a uniformly random ranking of ``candidates`` items."""
    kk = min(k, candidates)
    discounts = 1.0 / torch.log2(torch.arange(2, kk + 2, dtype=torch.float64))
    ideal = torch.cumsum(discounts, 0)
    n_t = truth_per_user.to(torch.float64)
    dcg = n_t / candidates * float(discounts.sum())
    idcg = ideal.index_select(0, (torch.clamp(n_t, max=kk) - 1).to(torch.int64))
    users = max(1, len(n_t))
    return {f"random_recall@{k}": kk / candidates if len(n_t) else 0.0,
            f"random_ndcg@{k}": float((dcg / idcg).sum()) / users}


def attribute_popularity(snapshot, targets, item_ids: torch.Tensor) -> torch.Tensor:
    """float64 ``(len(item_ids),)``: the attribute-popularity reference's score of each held-out item.

    A new item has no interactions, so "most popular first" ranks it by its attributes: an
    attribute's popularity is the mean number of target interactions of the *kept* items that
    have it (shop, brand, category: the :data:`KEEP_RELATIONS` edges of the item type), and an
    item's score is the mean over its attributes (the mean over kept items when it has none).
    The held-out items' own interactions — the ground truth — never enter it.

    Example:
        >>> scores = attribute_popularity(snap, ["user__purchase__item"], torch.tensor([3, 9]))
    """
    item_type = parse_edge_type(targets[0]).dst
    n_items = snapshot.num_nodes(item_type)
    held = torch.zeros(n_items, dtype=torch.bool)
    held[item_ids] = True
    interactions = torch.zeros(n_items, dtype=torch.float64)
    for t in targets:
        indices = torch.from_numpy(np.asarray(snapshot.csr(t)[1]).astype(np.int64))
        interactions += torch.bincount(indices, minlength=n_items).to(torch.float64)
    interactions[held] = 0.0
    total, count = torch.zeros(n_items, dtype=torch.float64), torch.zeros(n_items, dtype=torch.float64)
    for e in snapshot.edge_types:
        src_type, rel, dst_type = parse_edge_type(e)
        if src_type != item_type or rel not in KEEP_RELATIONS:
            continue
        indptr, indices, _ = snapshot.csr(e)
        item = csr_rows(torch.from_numpy(np.array(indptr, dtype=np.int64)))
        attr = torch.from_numpy(np.asarray(indices).astype(np.int64))
        n_attr = snapshot.num_nodes(dst_type)
        kept = ~held.index_select(0, item)
        sums = torch.bincount(attr[kept], weights=interactions.index_select(0, item[kept]), minlength=n_attr)
        sizes = torch.bincount(attr[kept], minlength=n_attr).to(torch.float64)
        mean = sums / sizes.clamp(min=1.0)
        total += torch.bincount(item, weights=mean.index_select(0, attr), minlength=n_items)
        count += torch.bincount(item, minlength=n_items).to(torch.float64)
    fallback = interactions[~held].mean() if bool((~held).any()) else torch.tensor(0.0, dtype=torch.float64)
    score = torch.where(count > 0, total / count.clamp(min=1.0), fallback)
    return score.index_select(0, item_ids)
