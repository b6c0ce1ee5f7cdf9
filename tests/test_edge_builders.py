"""The edge-builder registry (``graphlake.graph_build.edge_builders``) as embed-new walks it: only
the inductive families, only the run's edge types, over the events that touch a new node; and a
family added to the registry reaches embed-new. Tiny inline data, no pipeline run (the graph
build's side is tests/test_graph_build.py::test_the_build_writes_exactly_the_registry_edge_types).

The data: the tiny graph of tests/test_graph_build.py plus a new user ``u9`` (id 3) who clicks the
old item ``i1``, and a new item ``i9`` (id 3, shop ``s1``, category ``Home``) that the old user
``u1`` views.
"""

from __future__ import annotations

import dataclasses

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from graphlake.assets.embed_new import new_edge_frames
from graphlake.core.edge_types import EdgeType
from graphlake.etl import schema as S
from graphlake.graph_build import edge_builders as EB
from graphlake.graph_build import schema as G
from graphlake.graph_build.config import GraphConfig
from graphlake.graph_build.edges import edge_columns
from graphlake.graph_build.ids import attach_id
from tests.test_graph_build import DAY1_EVENTS, DAY1_ITEMS, DAY1_USERS, ev, frames, id_map, ts

EVENTS = DAY1_EVENTS + [ev("e20", "u9", "i1", "click", ts(2, 13)), ev("e21", "u1", "i9", "view", ts(2, 14))]
ITEMS = DAY1_ITEMS + [("i9", "Mug", "Home", None, "s1", 3.0, None, None)]
BASES = {"user": 3, "item": 3, "shop": 2, "brand": 1, "category": 4, "query": 1}
CONFIG = GraphConfig(half_life_days=None)


@pytest.fixture(scope="module")
def new_nodes(spark):
    """``(EdgeInputs with the full id maps, fresh {type: new keys' map})``."""
    events, items, users = frames(spark, EVENTS, ITEMS, DAY1_USERS)
    maps = {"user": id_map(spark, ["u1", "u2", "u3", "u9"]), "item": id_map(spark, ["i1", "i2", "i3", "i9"]),
            "shop": id_map(spark, ["s1", "s2"]), "brand": id_map(spark, ["nike"]),
            "category": id_map(spark, ["Fashion", "Fashion>Shirts", "Fashion>Shoes", "Home"]),
            "query": id_map(spark, ["red shoes"])}
    fresh = {"user": id_map(spark, ["u9"], start=3), "item": id_map(spark, ["i9"], start=3)}
    return EB.EdgeInputs(events, items, users, maps, CONFIG, None), fresh


def pairs_by_type(made: dict) -> dict:
    """{edge type: sorted (src_id, dst_id)} of new_edge_frames' output, in one Spark job."""
    parts = [df.select(F.lit(name).alias("t"), G.SRC_ID, G.DST_ID) for name, df in sorted(made.items())]
    union = parts[0]
    for p in parts[1:]:
        union = union.unionByName(p)
    out = {name: [] for name in made}
    for r in union.orderBy("t", G.SRC_ID, G.DST_ID).collect():
        out[r["t"]].append((r[G.SRC_ID], r[G.DST_ID]))
    return out


def test_embed_new_makes_the_wanted_inductive_edge_types_of_new_nodes(new_nodes):
    inputs, fresh = new_nodes
    assert [f.name for f in EB.edge_families(inductive=True)] == ["behaviour", "belongs_to", "child_of", "follows",
                                                                   "searched"]
    every = {t.name for f in EB.edge_families() for t in f.types(CONFIG)}
    inductive = {t.name for f in EB.edge_families(inductive=True) for t in f.types(CONFIG)}
    assert set(new_edge_frames(inputs, fresh, BASES, every)) == inductive  # lazy: no Spark job
    wanted = {"user__click__item", "user__view__item", "item__belongs_to__shop", "item__co_view__item"}
    made = new_edge_frames(inputs, fresh, BASES, wanted)
    assert sorted(made) == ["item__belongs_to__shop", "user__click__item", "user__view__item"]  # co_view: not inductive
    assert pairs_by_type(made) == {"user__click__item": [(3, 0)],  # u9 -> i1; old users' clicks are not new
                                   "user__view__item": [(0, 3)],  # u1 -> i9
                                   "item__belongs_to__shop": [(3, 0)]}  # i9 -> s1


def _touched(inputs: EB.EdgeInputs, edge_type: EdgeType, shared) -> DataFrame:
    pairs = inputs.events.select(F.trim(S.USER_ID).alias("_u"), F.trim(S.ITEM_ID).alias("_i")).distinct()
    pairs = attach_id(attach_id(pairs, "_u", inputs.id_maps[G.USER], G.SRC_ID), "_i", inputs.id_maps[G.ITEM], G.DST_ID)
    return edge_columns(pairs.withColumn(G.WEIGHT, F.lit(1.0)).withColumn(G.COUNT, F.lit(1))
                        .withColumn(G.FIRST_TS, F.lit(None)).withColumn(G.LAST_TS, F.lit(None)))


TOUCHED = EB.EdgeFamily("touched", lambda config: (EdgeType(G.USER, "touched", G.ITEM),), _touched,
                        event_keys=((S.USER_ID, G.USER),))


def test_a_family_added_to_the_registry_reaches_embed_new(new_nodes, monkeypatch):
    inputs, fresh = new_nodes
    monkeypatch.setattr(EB, "EDGE_FAMILIES", EB.EDGE_FAMILIES + (TOUCHED,))
    assert EB.edge_families()[-1] is TOUCHED and EB.edge_families(inductive=True)[-1] is TOUCHED
    made = new_edge_frames(inputs, fresh, BASES, {"user__touched__item", "item__co_view__item"})
    assert list(made) == ["user__touched__item"]
    # its event key is the user only: u9's events, not u1's view of the new item i9
    assert pairs_by_type(made) == {"user__touched__item": [(3, 0)]}
    monkeypatch.setattr(EB, "EDGE_FAMILIES", EB.EDGE_FAMILIES[:-1] + (dataclasses.replace(TOUCHED, inductive=False),))
    assert new_edge_frames(inputs, fresh, BASES, {"user__touched__item"}) == {}


def test_families_and_inputs_are_checked(new_nodes):
    inputs, _ = new_nodes
    with pytest.raises(ValueError, match="event_keys"):
        dataclasses.replace(TOUCHED, event_keys=("user_id",))
    with pytest.raises(TypeError, match="inductive"):
        dataclasses.replace(TOUCHED, inductive="yes")
    with pytest.raises(ValueError, match="name"):
        dataclasses.replace(TOUCHED, name="")
    with pytest.raises(TypeError, match="config"):
        dataclasses.replace(inputs, config={})
    with pytest.raises(ValueError, match="bad.edge_types"):
        dataclasses.replace(TOUCHED, name="bad", edge_types=lambda config: ("user_touched_item",)).types(CONFIG)
    with pytest.raises(TypeError, match="family"):
        with EB.open_family("behaviour", inputs):
            pass
