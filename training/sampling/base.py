"""The contract between samplers and the model: message-flow blocks and sampled batches.

A *message relation* is a triple ``(src_type, name, dst_type)``: messages flow from nodes of
``src_type`` to nodes of ``dst_type`` and are aggregated at the destination. Every stored edge
type ``<s>__<r>__<d>`` of a snapshot gives two message relations:

* ``(s, r, d)``      messages s -> d (aggregated at the stored destination; uses the reverse CSR)
* ``(d, "rev_" + r, s)`` messages d -> s (aggregated at the stored source; uses the stored CSR)

A :class:`Block` is one message-passing layer (DGL calls it a message-flow graph). Per node type,
its destination nodes are the FIRST ``num_dst[t]`` of its source nodes (prefix property), so a
layer can take ``h_src[t][:num_dst[t]]`` as the destination's own state (self / residual term).
A :class:`SampledBatch` holds the blocks of all layers, outermost first: ``blocks[0]`` consumes
the input features of ``node_ids`` and ``blocks[-1]`` produces the seeds' outputs. Per type,
the seeds are the first ``num_seeds[t]`` entries of ``node_ids[t]``; the nodes each block adds
come after the nodes of the blocks below it, so for every ``l``:
``blocks[l].num_src[t] == blocks[l - 1].num_dst[t]`` and ``blocks[0].num_src[t] == len(node_ids[t])``.

Shapes: ``node_ids[t]`` int64 ``(N_t,)`` global ids (rows of the snapshot's feature matrices);
``Block.edges[rel] = (src_local int64 (E,), dst_local int64 (E,), weight float32 (E,))`` with
``src_local < num_src[rel[0]]`` and ``dst_local < num_dst[rel[2]]``.

A full-graph batch (every node, every edge: LightGCN-style full propagation) is the same
structure with ``num_src == num_dst == num_nodes`` in every block.

Example:
    >>> batch = sampler.sample({"user": torch.tensor([3, 7]), "item": torch.tensor([11])}, generator=g)
    >>> h = model(batch)                       # {"user": (2, dim), "item": (1, dim)}
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from graphlake.core.edge_types import EdgeType, parse_edge_type

Relation = tuple[str, str, str]  # (src_type, name, dst_type): messages src -> dst
REVERSE_PREFIX = "rev_"


def message_relations(edge_type: str) -> tuple[Relation, Relation]:
    """The two message relations of a stored ``<s>__<r>__<d>`` edge type: ``(s, r, d)`` and ``(d, rev_r, s)``."""
    if not isinstance(edge_type, str):
        raise ValueError(f"edge_type: expected an edge type '<src>__<rel>__<dst>', got {edge_type!r}")
    s, r, d = parse_edge_type(edge_type)
    return (s, r, d), (d, REVERSE_PREFIX + r, s)


def relation_name(rel: Relation) -> str:
    """``'<src>__<name>__<dst>'``: a string key for module dicts (``nn.ModuleDict`` needs strings)."""
    return str(EdgeType(*rel))


@dataclass(frozen=True)
class Block:
    """One message-passing layer (see the module docstring for the invariants)."""

    num_src: Mapping[str, int]
    num_dst: Mapping[str, int]
    edges: Mapping[Relation, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

    def __post_init__(self):
        for t, n in self.num_dst.items():
            if n > self.num_src.get(t, 0):
                raise ValueError(f"num_dst[{t!r}]: expected <= num_src ({self.num_src.get(t, 0)}), got {n}")
        for rel, tensors in self.edges.items():
            if len(rel) != 3 or len(tensors) != 3:
                raise ValueError(f"edges: expected {{(src, name, dst): (src_local, dst_local, weight)}}, got key {rel!r}")
            if rel[0] not in self.num_src or rel[2] not in self.num_dst:
                raise ValueError(f"edges[{rel!r}]: node types must be in num_src / num_dst")


@dataclass(frozen=True)
class SampledBatch:
    """Input node ids per type, the layer blocks (outermost first) and the seed counts."""

    node_ids: Mapping[str, torch.Tensor]
    blocks: tuple[Block, ...]
    num_seeds: Mapping[str, int]

    def __post_init__(self):
        if not self.blocks:
            raise ValueError("blocks: expected at least one block")
        for t, ids in self.node_ids.items():
            if self.blocks[0].num_src.get(t, 0) != len(ids):
                raise ValueError(f"node_ids[{t!r}]: {len(ids)} ids but blocks[0].num_src is "
                                 f"{self.blocks[0].num_src.get(t, 0)}")
        for t, n in self.num_seeds.items():
            if self.blocks[-1].num_dst.get(t, 0) != n:
                raise ValueError(f"num_seeds[{t!r}]: {n} but blocks[-1].num_dst is {self.blocks[-1].num_dst.get(t, 0)}")

    def edges_to(self, device: torch.device) -> "SampledBatch":
        """This batch with its blocks' edge tensors on ``device`` (the node ids stay where they are:
        the feature gather and the ID-range checks read them on the host). A batch reused every step
        (full mode's) is moved once, so its edges and their sorted layouts are not rebuilt per step."""
        device = torch.device(device)
        blocks = tuple(Block(b.num_src, b.num_dst, {rel: tuple(x.to(device) for x in tensors)
                                                     for rel, tensors in b.edges.items()})
                       for b in self.blocks)
        return SampledBatch(self.node_ids, blocks, self.num_seeds)

    def seed_ids(self, node_type: str) -> torch.Tensor:
        """Global ids of the seeds of ``node_type`` (the outputs' row order)."""
        return self.node_ids[node_type][: self.num_seeds.get(node_type, 0)]


class NeighborSampler(abc.ABC):
    """Samples the multi-layer neighbourhood of seed nodes into a :class:`SampledBatch`."""

    @abc.abstractmethod
    def sample(self, seeds: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> SampledBatch:
        """Args:
            seeds: ``{node_type: int64 (S_t,) global ids}``; duplicates allowed (kept in order,
                so output row ``i`` of a type is seed ``i``).
            generator: the source of randomness (same generator state -> same batch).
        """
