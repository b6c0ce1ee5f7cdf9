"""The recipe ``graphlake train`` uses without a config (training/recipe.py): a pure function of
the graph's edge and node counts."""

from __future__ import annotations

import pytest

from graphlake.core.edge_types import parse_edge_type
from graphlake.core.errors import UsageError
from graphlake.graph_build.manifest import GraphVersion
from graphlake.training.recipe import AUXILIARY_WEIGHT, FULL_GRAPH_MAX_EDGES, recommended_config

BUY, CART, FAV, CLICK = "user__purchase__item", "user__cart__item", "user__fav__item", "user__click__item"


def graph(edge_counts: dict, node_counts: dict | None = None) -> GraphVersion:
    """A graph version with these counts (the recipe reads nothing else)."""
    node_counts = node_counts or {}
    return GraphVersion(graph_version=0, created_at="", reference_ts="", reference_ts_us=0, config_hash="",
                        config={}, inputs={}, tables={}, node_counts=node_counts, edge_counts=edge_counts,
                        feature_spec={}, node_types=sorted(node_counts),
                        edge_types=[tuple(parse_edge_type(e)) for e in sorted(edge_counts)], manifest_version=0,
                        lake="/lake")


TMALL = graph({BUY: 255_586, CART: 1_996, FAV: 221_514, "item__co_purchase__item": 239_000},
              {"user": 41_484, "item": 23_719})


def test_multi_behaviour_graph_trains_purchase_with_weighted_auxiliaries():
    c = recommended_config(TMALL)
    assert c.targets == (BUY, CART, FAV) and AUXILIARY_WEIGHT == 1.0 and c.target_weights == {}  # equal weights
    assert c.edge_types == (CART, FAV, BUY)  # sorted; the derived co-purchase edges are left out
    assert (c.mode, c.batch_size, c.num_negatives, c.loss, c.shared_negatives) == (
        "full", 8192, 4096, "sampled_softmax", True)
    m = c.model_config()
    assert (m.hidden_dim, m.num_layers, m.weight_free, m.decoder, m.temperature, m.destination_bias) == (
        128, 3, True, "cosine", 0.1, True)
    cart_first = recommended_config(TMALL, target="cart", seed=4)
    assert cart_first.targets == (CART, FAV, BUY)
    assert cart_first.seed == 4


def test_single_behaviour_and_attribute_graphs():
    beauty = graph({BUY: 178_000, "item__belongs_to__brand": 7_492, "item__belongs_to__category": 30_000},
                   {"item": 12_101})
    c = recommended_config(beauty)
    assert c.targets == (BUY,) and c.target_weights == {}
    assert c.edge_types == ("item__belongs_to__brand", "item__belongs_to__category", BUY)
    clicks = recommended_config(graph({CLICK: 5_000, CART: 100}, {"item": 50}))
    # no purchase: every behaviour a target of weight 1; a small graph gets smaller batches and
    # no more negatives than items
    assert clicks.targets == (CART, CLICK) and clicks.target_weights == {}
    assert clicks.batch_size == 5_100 // 16 and clicks.num_negatives == 50


def test_a_graph_too_big_for_full_propagation_is_sampled():
    big = graph({BUY: FULL_GRAPH_MAX_EDGES + 1}, {"item": 10**6})
    c = recommended_config(big)
    assert c.mode == "sampled" and c.fanouts == (10, 5) and c.model_config().num_layers == 2


def test_bad_graphs_and_arguments_are_named():
    with pytest.raises(UsageError, match=r"graph: no user -> item behaviour edges .* edge types: \['item__co_view__item'\]"):
        recommended_config(graph({"item__co_view__item": 3}))
    with pytest.raises(UsageError, match=r"target: 'user__view__item' is not an edge type of the graph"):
        recommended_config(TMALL, target="view")
    with pytest.raises(TypeError, match=r"overrides: unknown TrainConfig fields \['epoch'\]"):
        recommended_config(TMALL, epoch=3)
    with pytest.raises(TypeError, match="graph: expected the GraphVersion load_graph_version returns, got dict"):
        recommended_config({"edge_counts": {BUY: 3}})
