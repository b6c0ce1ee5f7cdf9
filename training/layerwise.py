"""Layer-wise inference: every node's embedding over its FULL neighbourhood, one layer at a time.

Sampled inference (``TrainConfig.inference: sampled``) embeds each node from a sampled
``len(fanouts)``-hop neighbourhood: an estimate (deterministic under the seed), and costly — a
node's ``fanout_1 x fanout_2`` second-hop neighbours are encoded again for every node that
samples them. Layer-wise inference (``inference: layerwise``, the way PyG's and DGL's GraphSAGE
examples embed a whole graph) computes layer 0 (the input encoders) for every node, then layer
``l + 1`` of every node from layer ``l`` of ALL its neighbours, in chunks of destination nodes:
exact (no sampling: the same result for any seed or chunk size, up to float summation order),
and each layer costs one pass over the edges. It is what the model's forward computes on
``HeteroCSRGraph.full_batch`` (``mode: full``), without holding the whole graph's input features
or per-relation messages at once: memory is ``(layers + 1) x nodes x hidden_dim`` floats plus one
chunk's one-hop neighbourhood (the states are kept in host memory, the chunks computed on the
model's device). Called by every rank of a job together (``rank``/``world_size``/``allreduce_sum``), each computes
its slice of every layer and the backend's ``allreduce_sum`` assembles it (every rank needs the
whole layer below); called by one rank alone, it computes everything. A layer with ``combine: attention`` runs over all the nodes of a
type at once: its relation weights are means over the destination nodes it is given.

Example:
    >>> vectors = layerwise_embeddings(model, graph, encode, chunk_size=4096)
    >>> vectors["item"].shape          # (num_nodes["item"], hidden_dim), on the host
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from graphlake.training.distributed.base import rank_rows
from graphlake.training.model import HeteroGraphSAGE
from graphlake.training.model.hetero_sage import local_degrees
from graphlake.training.sampling import CSRNeighborSampler, HeteroCSRGraph

Encode = Callable[[str, torch.Tensor], torch.Tensor]


@torch.no_grad()
def layerwise_embeddings(model: HeteroGraphSAGE, graph: HeteroCSRGraph, encode: Encode, chunk_size: int,
                         degrees: Mapping | None = None, rank: int = 0, world_size: int = 1,
                         allreduce_sum: Callable[[torch.Tensor, str], torch.Tensor] | None = None
                         ) -> dict[str, torch.Tensor]:
    """The model's output for every node of every type of ``graph``, over full neighbourhoods.

    Args:
        model: the trained model (put in eval mode by the caller: dropout, batch-norm statistics).
        graph: the graph whose relations the model was built on (every node type of it is computed).
        encode: ``encode(node_type, ids int64 (n,)) -> (n, hidden_dim)``: the model's input
            encoder for those nodes (their features gathered, cold-start rows masked).
        chunk_size: destination nodes per chunk (an int >= 1).
        degrees: weight-free layers: FULL-graph degrees ``{rel: (deg_src, deg_dst)}`` by global id.
        rank, world_size, allreduce_sum: with ``world_size > 1`` (every rank calls this), each rank
            computes its contiguous slice of every type at every layer and ``allreduce_sum(matrix,
            name)`` (the backend's :meth:`Backend.allreduce_sum`) assembles the zero-padded slices,
            so every rank holds the whole layer for the next one; the result is the same as one
            process's. Layers with ``combine: attention`` are computed whole on every rank.

    Returns:
        ``{node_type: (num_nodes, hidden_dim)}`` on the host (each layer's states are kept there and
        a chunk's rows go to the model's device: device memory holds one chunk); rows by node id.
    """
    if not isinstance(model, HeteroGraphSAGE):
        raise TypeError(f"model: expected a HeteroGraphSAGE, got {type(model).__name__}")
    if not isinstance(graph, HeteroCSRGraph):
        raise TypeError(f"graph: expected a HeteroCSRGraph, got {type(graph).__name__}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected an int >= 1, got {chunk_size!r}")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1 or \
            isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank, world_size: expected 0 <= rank < world_size, got {rank!r}, {world_size!r}")
    if world_size > 1 and not callable(allreduce_sum):
        raise ValueError("allreduce_sum: expected the backend's allreduce_sum with world_size > 1, got None")
    counts, device = graph.num_nodes, model.encoder_param().device

    def whole(name: str, t: str, size: int, rows: Callable[[torch.Tensor], torch.Tensor], split: bool):
        n = counts[t]
        if world_size == 1 or not split:
            return _by_chunks(0, n, size, rows)
        lo, hi = rank_rows(n, rank, world_size)
        part = _by_chunks(lo, hi, size, rows)
        full = part.new_zeros((n, *part.shape[1:]))
        full[lo:hi] = part
        return allreduce_sum(full, f"graphlake.layerwise.{name}.{t}")

    h = {t: whole("input", t, chunk_size, lambda ids, t=t: encode(t, ids), True) for t in counts}
    total = {t: v.clone() for t, v in h.items()} if model.layer_combination == "mean" else None
    one_hop = CSRNeighborSampler(graph, [-1])  # every neighbour: no randomness is drawn
    for i, layer in enumerate(model.layers):
        def layer_rows(ids: torch.Tensor, t: str, h=h, layer=layer) -> torch.Tensor:
            batch = one_hop.sample({t: ids}, generator=torch.Generator().manual_seed(0))
            block = batch.blocks[0]
            x = {s: h[s].index_select(0, batch.node_ids[s].to(h[s].device)).to(device) for s in block.num_src}
            local = local_degrees(degrees, block, batch.node_ids) if model.weight_free and degrees is not None \
                else None
            return layer(block, x, degrees=local)[t]

        # semantic attention weighs a relation by its mean score over the destination nodes of the
        # forward: all of them at once keeps the weights the whole graph's (chunks would change them)
        attention = layer.combine == "attention"
        size = max([1, *counts.values()]) if attention else chunk_size
        h = {t: whole(f"layer{i}", t, size, lambda ids, t=t: layer_rows(ids, t), not attention) for t in counts}
        if total is not None:
            total = {t: total[t] + h[t] for t in counts}
    if total is not None:
        return {t: v / (model.num_layers + 1) for t, v in total.items()}
    return h


def _by_chunks(lo: int, hi: int, chunk_size: int, rows: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``rows(ids)`` over ``arange(lo, hi)`` in chunks, concatenated on the host (one chunk of
    nothing when ``lo == hi``, for its shape)."""
    parts = [_to_host(rows(torch.arange(start, min(hi, start + chunk_size), dtype=torch.int64)))
             for start in range(lo, max(hi, lo + 1), chunk_size)]
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def _to_host(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` in host memory; ``meta`` tensors (the device-contract test's, no data) stay."""
    return rows if rows.device.type == "meta" else rows.cpu()
