"""The edge-builder registry: every edge family of the graph declared once, for the graph build
and for ``embed-new``.

An :class:`EdgeFamily` says which edge types it makes (``src, relation, dst``; the behaviour
family has one per event type of ``GraphConfig.behaviour_weights``), how to make one edge type's
table from the inputs (:class:`EdgeInputs`: clean events / items / users, id maps, config, decay
reference time) with the transforms of :mod:`graphlake.graph_build.edges` and
:mod:`graphlake.graph_build.derived`, which of its edge types the data holds, whether ``embed-new``
makes it for new nodes (``inductive``) and which event columns make an event "new" for it.

Two walks read :data:`EDGE_FAMILIES`, in its order:

* the graph build (:func:`graphlake.graph_build.job.build_graph`) writes every edge type whose two
  endpoint types have nodes and that the data holds;
* ``embed-new`` (:mod:`graphlake.assets.embed_new`) makes the edge types of the ``inductive``
  families that the run trains on, over the events that touch a new node on the family's
  ``event_keys``. The derived item-item families (co-view, co-purchase) are not inductive: their
  per-item top-k is a window over all events; the next build adds them.

So a new edge type is one entry here (see docs/extending.md).

A family whose edge types are cut from one frame (behaviour: one aggregation, split per event
type) gives ``shared``; :func:`open_family` makes it once and, for the build, persists it
(``MEMORY_AND_DISK``) while the tables are written, then unpersists it.

Example:
    >>> inputs = EdgeInputs(events, items, users, id_maps, GraphConfig(), reference_us)
    >>> for family in edge_families():
    ...     with open_family(family, inputs, persist=True, only_present=True) as makers:
    ...         for edge_type, make in makers.items():      # EdgeType -> () -> DataFrame
    ...             write(edge_type, make())    # (src_id, dst_id, weight, count, first_ts, last_ts)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from graphlake.core.edge_types import EdgeType, parse_edge_type
from graphlake.etl import schema as S
from graphlake.graph_build import schema as G
from graphlake.graph_build.config import GraphConfig
from graphlake.graph_build.derived import co_purchase_edges, co_view_edges
from graphlake.graph_build.edges import (
    behaviour_edges,
    belongs_to_edges,
    child_of_edges,
    follows_edges,
    searched_edges,
)

__all__ = ["EDGE_FAMILIES", "EdgeFamily", "EdgeInputs", "edge_families", "open_family"]


@dataclass(frozen=True, eq=False)
class EdgeInputs:
    """What edge families are made from.

    Args:
        events: ``clean/events`` (the graph build: up to its ``until_date``; embed-new: the rows
            touching a new node on the family's ``event_keys``).
        items: ``clean/items``.
        users: ``clean/users``.
        id_maps: ``{node type: id map (key, node_id, ...)}``; a type without nodes is absent.
        config: the graph's :class:`GraphConfig`.
        reference_us: the decay reference time (epoch micros) or ``None``.

    Example:
        >>> EdgeInputs(events, items, users, {"user": umap, "item": imap}, GraphConfig(), None)
    """

    events: DataFrame
    items: DataFrame
    users: DataFrame
    id_maps: Mapping[str, DataFrame]
    config: GraphConfig
    reference_us: int | None

    def __post_init__(self):
        for name in ("events", "items", "users"):
            if not isinstance(getattr(self, name), DataFrame):
                raise TypeError(f"{name}: expected a DataFrame, got {type(getattr(self, name)).__name__}")
        if not isinstance(self.id_maps, Mapping):
            raise TypeError(f"id_maps: expected a mapping node type -> id map, got {type(self.id_maps).__name__}")
        if not isinstance(self.config, GraphConfig):
            raise TypeError(f"config: expected GraphConfig, got {type(self.config).__name__}")
        if self.reference_us is not None and (isinstance(self.reference_us, bool)
                                              or not isinstance(self.reference_us, int)):
            raise TypeError(f"reference_us: expected an int (epoch micros) or None, got {self.reference_us!r}")


@dataclass(frozen=True)
class EdgeFamily:
    """One family of edge types and how to make them.

    Args:
        name: the family's name (unique in the registry), e.g. ``"behaviour"``.
        edge_types: ``config -> (EdgeType, ...)``: every edge type the family makes.
        make: ``(inputs, edge_type, shared) -> DataFrame``: the edge table of one of its types,
            columns of :data:`graphlake.graph_build.schema.EDGE_SCHEMA`; ``shared`` is the frame
            ``shared`` made (``None`` without one). Only called when both endpoint types have id maps.
        shared: ``inputs -> DataFrame``: one frame all the family's types are cut from (made once
            per walk; the build persists it while it writes them). ``None``: none.
        present: ``(inputs, shared) -> the family's edge types the data holds`` (a Spark job; the
            graph build writes only those). ``None``: all of them.
        inductive: ``embed-new`` makes this family for new nodes (``False`` for edges that need
            the whole graph, like the co-view / co-purchase top-k).
        event_keys: ``((events column, node type), ...)``: embed-new feeds the family the events
            whose key in one of these columns is a new node; ``()`` when it reads no events.

    Example:
        >>> EdgeFamily("follows", lambda c: (EdgeType("user", "follows", "user"),),
        ...            lambda inputs, et, shared: follows_edges(inputs.users, inputs.id_maps["user"]))
    """

    name: str
    edge_types: Callable[[GraphConfig], tuple[EdgeType, ...]]
    make: Callable[[EdgeInputs, EdgeType, DataFrame | None], DataFrame]
    shared: Callable[[EdgeInputs], DataFrame] | None = None
    present: Callable[[EdgeInputs, DataFrame | None], Collection[EdgeType]] | None = None
    inductive: bool = True
    event_keys: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")
        for arg in ("edge_types", "make"):
            if not callable(getattr(self, arg)):
                raise TypeError(f"{arg}: expected a callable, got {getattr(self, arg)!r}")
        for arg in ("shared", "present"):
            if getattr(self, arg) is not None and not callable(getattr(self, arg)):
                raise TypeError(f"{arg}: expected a callable or None, got {getattr(self, arg)!r}")
        if not isinstance(self.inductive, bool):
            raise TypeError(f"inductive: expected a bool, got {self.inductive!r}")
        keys = self.event_keys
        if not isinstance(keys, tuple) or not all(
                isinstance(k, tuple) and len(k) == 2 and all(isinstance(p, str) and p for p in k) for k in keys):
            raise ValueError(f"event_keys: expected a tuple of (events column, node type) pairs, got {keys!r}")

    def types(self, config: GraphConfig) -> tuple[EdgeType, ...]:
        """The family's edge types under ``config``, checked.

        Raises:
            ValueError: ``edge_types`` returned something that is not an edge type (names the family).
        """
        return tuple(parse_edge_type(t, f"{self.name}.edge_types") for t in self.edge_types(config))


# ------------------------------------------------------------------------------ the families


def _behaviour_types(config: GraphConfig) -> tuple[EdgeType, ...]:
    return tuple(EdgeType(G.USER, rel, G.ITEM) for rel in config.behaviour_weights)


def _behaviour_all(inputs: EdgeInputs) -> DataFrame:
    return behaviour_edges(inputs.events, inputs.id_maps[G.USER], inputs.id_maps[G.ITEM], inputs.config,
                           inputs.reference_us)


def _behaviour_present(inputs: EdgeInputs, shared: DataFrame | None) -> set[EdgeType]:
    return {EdgeType(G.USER, rel, G.ITEM) for (rel,) in shared.select(G.RELATION).distinct().collect()}


def _behaviour_cut(inputs: EdgeInputs, edge_type: EdgeType, shared: DataFrame | None) -> DataFrame:
    return shared.filter(F.col(G.RELATION) == edge_type.relation).drop(G.RELATION)


def _belongs_to(inputs: EdgeInputs, edge_type: EdgeType, shared: DataFrame | None) -> DataFrame:
    return belongs_to_edges(inputs.items, inputs.id_maps[G.ITEM], inputs.id_maps[edge_type.dst], edge_type.dst)


def _child_of(inputs: EdgeInputs, edge_type: EdgeType, shared: DataFrame | None) -> DataFrame:
    return child_of_edges(inputs.items, inputs.id_maps[G.CATEGORY])


_FOLLOWS = (EdgeType(G.USER, G.FOLLOWS, G.USER),)


def _follows(inputs: EdgeInputs, edge_type: EdgeType, shared: DataFrame | None) -> DataFrame:
    return follows_edges(inputs.users, inputs.id_maps[G.USER])


def _someone_follows(inputs: EdgeInputs, shared: DataFrame | None) -> tuple[EdgeType, ...]:
    return _FOLLOWS if inputs.users.filter(F.size(F.col(S.FOLLOWS)) > 0).limit(1).count() else ()


def _searched(inputs: EdgeInputs, edge_type: EdgeType, shared: DataFrame | None) -> DataFrame:
    return searched_edges(inputs.events, inputs.id_maps[G.QUERY], inputs.id_maps[G.ITEM], inputs.config,
                          inputs.reference_us)


def _co_view(inputs: EdgeInputs, edge_type: EdgeType, shared: DataFrame | None) -> DataFrame:
    return co_view_edges(inputs.events, inputs.id_maps[G.ITEM], inputs.config, inputs.reference_us)


def _co_purchase(inputs: EdgeInputs, edge_type: EdgeType, shared: DataFrame | None) -> DataFrame:
    return co_purchase_edges(inputs.events, inputs.id_maps[G.ITEM], inputs.config, inputs.reference_us)


def _fixed(*edge_types: EdgeType) -> Callable[[GraphConfig], tuple[EdgeType, ...]]:
    return lambda config: edge_types


EDGE_FAMILIES: tuple[EdgeFamily, ...] = (
    EdgeFamily("behaviour", _behaviour_types, _behaviour_cut, shared=_behaviour_all, present=_behaviour_present,
               event_keys=((S.USER_ID, G.USER), (S.ITEM_ID, G.ITEM))),
    EdgeFamily("belongs_to", _fixed(*(EdgeType(G.ITEM, G.BELONGS_TO, t) for t in (G.SHOP, G.BRAND, G.CATEGORY))),
               _belongs_to),
    EdgeFamily("child_of", _fixed(EdgeType(G.CATEGORY, G.CHILD_OF, G.CATEGORY)), _child_of),
    EdgeFamily("follows", _fixed(*_FOLLOWS), _follows, present=_someone_follows),
    EdgeFamily("searched", _fixed(EdgeType(G.QUERY, G.SEARCHED, G.ITEM)), _searched,
               event_keys=((S.QUERY, G.QUERY), (S.ITEM_ID, G.ITEM))),
    EdgeFamily("co_view", _fixed(EdgeType(G.ITEM, G.CO_VIEW, G.ITEM)), _co_view, inductive=False),
    EdgeFamily("co_purchase", _fixed(EdgeType(G.ITEM, G.CO_PURCHASE, G.ITEM)), _co_purchase, inductive=False),
)
"""The registry, in the graph build's commit order."""


# ------------------------------------------------------------------------------ walking it


def edge_families(inductive: bool | None = None) -> tuple[EdgeFamily, ...]:
    """The registry (:data:`EDGE_FAMILIES`, read at call time), all families or only the
    (non-)inductive ones.

    Example:
        >>> [f.name for f in edge_families(inductive=False)]
        ['co_view', 'co_purchase']
    """
    if inductive is not None and not isinstance(inductive, bool):
        raise TypeError(f"inductive: expected a bool or None, got {inductive!r}")
    return tuple(f for f in EDGE_FAMILIES if inductive is None or f.inductive == inductive)


@contextlib.contextmanager
def open_family(family: EdgeFamily, inputs: EdgeInputs, edge_types: Iterable[EdgeType] | None = None, *,
                persist: bool = False, only_present: bool = False) -> Iterator[dict[EdgeType, Callable[[], DataFrame]]]:
    """The makers of a family's edge tables over ``inputs``, for the duration of a ``with`` block.

    Args:
        family: the :class:`EdgeFamily`.
        inputs: :class:`EdgeInputs`.
        edge_types: the edge types wanted (default: all of ``family.types(inputs.config)``); those
            not of the family, or with an endpoint type that has no id map in ``inputs``, are left out.
        persist: persist the family's ``shared`` frame (``MEMORY_AND_DISK``) until the block
            exits, then unpersist it (the graph build writes several tables from it).
        only_present: keep only the types the data holds (``family.present``, a Spark job; the
            graph build's rule).

    Yields:
        ``{EdgeType: () -> DataFrame}`` in the family's order; ``{}`` when nothing applies
        (``shared`` is then never made). Without ``persist`` the frames stay valid after the block.

    Example:
        >>> with open_family(family, inputs, persist=True, only_present=True) as makers:
        ...     counts = {str(t): make().count() for t, make in makers.items()}
    """
    if not isinstance(family, EdgeFamily):
        raise TypeError(f"family: expected EdgeFamily, got {type(family).__name__}")
    if not isinstance(inputs, EdgeInputs):
        raise TypeError(f"inputs: expected EdgeInputs, got {type(inputs).__name__}")
    own = family.types(inputs.config)
    wanted = None if edge_types is None else {parse_edge_type(t, "edge_types") for t in edge_types}
    types = [t for t in own if (wanted is None or t in wanted) and t.src in inputs.id_maps and t.dst in inputs.id_maps]
    if not types:
        yield {}
        return
    shared = family.shared(inputs) if family.shared is not None else None
    cached = persist and shared is not None
    if cached:
        shared = shared.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        if only_present and family.present is not None:
            held = set(family.present(inputs, shared))
            types = [t for t in types if t in held]
        yield {t: (lambda t=t: family.make(inputs, t, shared)) for t in types}
    finally:
        if cached:
            shared.unpersist()
