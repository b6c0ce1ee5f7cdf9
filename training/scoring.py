"""Scoring vectors: what a run exports, so that ranking users' items is a dot product of its vectors.

Without a popularity prior (``model.popularity_prior: 0``, the default) or a learned destination
bias (``model.destination_bias: false``) a run exports the model's outputs and ranks with its
decoder (``dot`` or ``cosine``). With either, the score of a destination node ``i`` (an item) for
a source node ``u`` (a user) is::

    s(u, i) = decoder(u, i) / t + β * log(1 + deg(i)) + b_i

``deg(i)``: ``i``'s training edges over the run's target edge types (0 for a node the run never
trained on: held-out cold-start items, nodes embedded later). Sampled softmax with uniform
negatives learns ``decoder / t`` on a bounded cosine scale; the prior adds the popularity a
user's next items follow (measured on a validation slice of Gowalla: +0.008 Recall@20 at β 0.3).
``b_i`` is the model's learned bias of ``i`` (``HeteroGraphSAGE.score_bias``; trained in the loss,
0 without ``destination_bias`` and for nodes embedded later). The exported vectors make ``s`` a
plain dot product::

    source types        [h_u / t, 1]
    destination types   [h_i, β * log(1 + deg(i)) + b_i]
    other types         [h, 0]

with ``h`` L2-normalised for the cosine decoder (raw for dot). Evaluation, validation, the asset
index and the SQL functions then rank by the dot product of the published vectors
(:func:`ranking_score` is ``"dot"``): one score everywhere. Similarity between two items (or two
users) then includes the product of their extra coordinates.

Example:
    >>> roles = prior_roles(["user__purchase__item"])          # ({"user"}, {"item"})
    >>> vectors = scoring_vectors(rows, "item", model_config, roles, degrees=item_degrees)
"""

from __future__ import annotations

import numpy as np

from graphlake.core.edge_types import parse_edge_type


def has_score_column(model_config) -> bool:
    """Whether the run exports scoring vectors with the extra column (a prior or a learned bias)."""
    return model_config.popularity_prior > 0 or model_config.destination_bias


def ranking_score(model_config) -> str:
    """The score the run's exported vectors are ranked by: ``"dot"`` with the extra column, else the decoder."""
    return "dot" if has_score_column(model_config) else model_config.decoder


def exported_dim(model_config) -> int:
    """Width of the exported vectors: ``hidden_dim``, plus one with a prior or a learned bias."""
    return model_config.hidden_dim + (1 if has_score_column(model_config) else 0)


def prior_roles(targets) -> tuple[set, set]:
    """``(source types, destination types)`` of the target edge types ``"src__rel__dst"``.

    Raises:
        ValueError: a type is both a source and a destination (the prior needs one side per type).
    """
    sources = {parse_edge_type(e).src for e in targets}
    dests = {parse_edge_type(e).dst for e in targets}
    both = sorted(sources & dests)
    if both:
        raise ValueError(f"model.popularity_prior / destination_bias: node types {both} are both a source and a "
                         f"destination of the target edge types {sorted(targets)}; the extra score column needs "
                         f"each type on one side")
    return sources, dests


def scoring_vectors(rows: np.ndarray, node_type: str, model_config, roles: tuple[set, set],
                    degrees: np.ndarray | None = None, bias: np.ndarray | None = None) -> np.ndarray:
    """The exported vectors of ``rows`` (model outputs of ``node_type``), see the module docstring.

    Args:
        rows: ``(n, hidden_dim)`` model outputs.
        node_type: their type.
        model_config: the run's :class:`graphlake.training.model.ModelConfig`.
        roles: :func:`prior_roles` of the run's targets.
        degrees: ``(n,)`` training degrees of these rows (destination types; None: all 0, e.g.
            nodes embedded after training).
        bias: ``(n,)`` learned biases of these rows (destination types; None: all 0).

    Returns:
        ``rows`` as they are without a prior or bias; else ``(n, hidden_dim + 1)`` float32.
    """
    beta = model_config.popularity_prior
    if not has_score_column(model_config):
        return rows
    x = np.asarray(rows, dtype=np.float32)
    if model_config.decoder == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sources, dests = roles
    extra = np.zeros((len(x), 1), np.float32)
    if node_type in sources:
        x = x / np.float32(model_config.temperature)
        extra[:] = 1.0
    elif node_type in dests:
        for name, value in (("degrees", degrees), ("bias", bias)):
            if value is not None and np.shape(value) != (len(x),):
                raise ValueError(f"{name}: expected shape ({len(x)},), got {np.shape(value)}")
        column = np.zeros(len(x), np.float64)
        if degrees is not None and beta > 0:
            column += beta * np.log1p(np.asarray(degrees).astype(np.float64))
        if bias is not None:
            column += np.asarray(bias, dtype=np.float64)
        extra[:, 0] = column
    return np.ascontiguousarray(np.hstack([x, extra]), dtype=np.float32)
