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
model's device). A layer with ``combine: attention`` runs over all the nodes of a
type at once: its relation weights are means over the destination nodes it is given.

Example:
    >>> vectors = layerwise_embeddings(model, graph, encode, chunk_size=4096)
    >>> vectors["item"].shape          # (num_nodes["item"], hidden_dim), on the host
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from training.model import HeteroGraphSAGE
from training.model.hetero_sage import local_degrees
from training.sampling import CSRNeighborSampler, HeteroCSRGraph

Encode = Callable[[str, torch.Tensor], torch.Tensor]


@torch.no_grad()
def layerwise_embeddings(model: HeteroGraphSAGE, graph: HeteroCSRGraph, encode: Encode, chunk_size: int,
                         degrees: Mapping | None = None) -> dict[str, torch.Tensor]:
    """The model's output for every node of every type of ``graph``, over full neighbourhoods.

    Args:
        model: the trained model (put in eval mode by the caller: dropout, batch-norm statistics).
        graph: the graph whose relations the model was built on (every node type of it is computed).
        encode: ``encode(node_type, ids int64 (n,)) -> (n, hidden_dim)``: the model's input
            encoder for those nodes (their features gathered, cold-start rows masked).
        chunk_size: destination nodes per chunk (an int >= 1).
        degrees: weight-free layers: FULL-graph degrees ``{rel: (deg_src, deg_dst)}`` by global id.

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
    counts, device = graph.num_nodes, model.encoder_param().device
    h = {t: _by_chunks(n, chunk_size, lambda ids, t=t: encode(t, ids)) for t, n in counts.items()}
    total = {t: v.clone() for t, v in h.items()} if model.layer_combination == "mean" else None
    one_hop = CSRNeighborSampler(graph, [-1])  # every neighbour: no randomness is drawn
    for layer in model.layers:
        def layer_rows(ids: torch.Tensor, t: str, h=h, layer=layer) -> torch.Tensor:
            batch = one_hop.sample({t: ids}, generator=torch.Generator().manual_seed(0))
            block = batch.blocks[0]
            x = {s: h[s].index_select(0, batch.node_ids[s].to(h[s].device)).to(device) for s in block.num_src}
            local = local_degrees(degrees, block, batch.node_ids) if model.weight_free and degrees is not None \
                else None
            return layer(block, x, degrees=local)[t]

        # semantic attention weighs a relation by its mean score over the destination nodes of the
        # forward: all of them at once keeps the weights the whole graph's (chunks would change them)
        size = chunk_size if layer.combine != "attention" else max([1, *counts.values()])
        h = {t: _by_chunks(n, size, lambda ids, t=t: layer_rows(ids, t)) for t, n in counts.items()}
        if total is not None:
            total = {t: total[t] + h[t] for t in counts}
    if total is not None:
        return {t: v / (model.num_layers + 1) for t, v in total.items()}
    return h


def _by_chunks(n: int, chunk_size: int, rows: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``rows(ids)`` over ``arange(n)`` in chunks, concatenated on the host (one chunk of nothing for ``n == 0``)."""
    parts = [_to_host(rows(torch.arange(start, min(n, start + chunk_size), dtype=torch.int64)))
             for start in range(0, max(n, 1), chunk_size)]
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def _to_host(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` in host memory; ``meta`` tensors (the device-contract test's, no data) stay."""
    return rows if rows.device.type == "meta" else rows.cpu()
