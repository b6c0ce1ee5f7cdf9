"""Edges from the clean tables: behaviour, belongs_to, child_of, follows, searched.

Every function returns the edge columns of :data:`graphlake.graph_build.schema.EDGE_SCHEMA`
(``src_id, dst_id, weight, count, first_ts, last_ts``), one row per ``(src_id, dst_id)``.
Reverse edges are never stored: training derives them.

Weights of event-based edges (``user -<event type>-> item`` and ``query -searched-> item``)::

    weight = sum over the pair's events e of  w[type(e)] * 0.5 ** (age_days(e) / half_life_days)
    age_days(e) = max(0, reference_time - ts(e)) in days

``w`` is ``GraphConfig.behaviour_weights``; the reference time is the latest event ``ts`` of the
input unless the config fixes it (never "now", so the same input gives the same weights). Terms
are summed in fixed point (units of 1e-9), which makes the sum independent of the order Spark
adds them in; edges below ``min_weight`` are dropped. Structural edges (belongs_to, child_of,
follows) have weight 1.0, count 1 and NULL timestamps.

Example (half-life 1 day, reference 2024-01-03T00:00): a click (w=1) at 2024-01-02T00:00 and a
click at 2024-01-03T00:00 between the same user and item give one ``click`` edge with count 2,
weight 1 * 0.5 + 1 * 1 = 1.5, first_ts 2024-01-02, last_ts 2024-01-03.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from graphlake.etl import schema as S
from graphlake.graph_build import schema as G
from graphlake.graph_build.config import GraphConfig
from graphlake.graph_build.ids import attach_id
from graphlake.graph_build.nodes import category_nodes, leaf_category, normalise_query

WEIGHT_SCALE = 1_000_000_000  # fixed-point unit of summed weights: 1e-9
_EPOCH = datetime(1970, 1, 1)
_DAY_US = 86_400_000_000
_SRC, _DST, _W = "_gl_src", "_gl_dst", "_gl_w"


def check_until_date(until_date) -> str | None:
    """``until_date`` when it is ``None`` or a ``YYYY-MM-DD`` string; ``ValueError`` otherwise."""
    if until_date is None:
        return None
    try:
        day = date.fromisoformat(until_date).isoformat() if isinstance(until_date, str) else None
    except ValueError:
        day = None
    if day is None or day != until_date:
        raise ValueError(f"until_date: expected a YYYY-MM-DD string or None, got {until_date!r}")
    return day


def events_until(events: DataFrame, until_date: str | None) -> DataFrame:
    """The events of ``dt <= until_date`` (``YYYY-MM-DD``; ``None``: all): the graph of a logical
    date, also when it is built after later dates were loaded (a backfill).

    Example:
        >>> events_until(clean_events, "2024-01-01")   # late events of later files dated 01-01 stay
    """
    day = check_until_date(until_date)
    return events if day is None else events.filter(F.col(S.DT) <= F.lit(day))


def to_micros(ts: datetime) -> int:
    """A naive UTC datetime as epoch microseconds (exact)."""
    return (ts - _EPOCH) // timedelta(microseconds=1)


def reference_micros(events: DataFrame, config: GraphConfig) -> int | None:
    """The decay's reference time in epoch microseconds: ``config.reference_time`` or else the
    latest event ``ts`` of ``events`` (``None`` when there are no events). One aggregate."""
    if not isinstance(config, GraphConfig):
        raise TypeError(f"config: expected GraphConfig, got {type(config).__name__}")
    fixed = config.reference_datetime()
    if fixed is not None:
        return to_micros(fixed)
    top = events.agg(F.max(F.unix_micros(F.col(S.TS)))).first()[0]
    return None if top is None else int(top)


def decay(ts: Column, reference_us: int | None, half_life_days: float | None) -> Column:
    """``0.5 ** (age_days / half_life_days)`` with age clamped at 0; 1.0 without decay."""
    if half_life_days is None or reference_us is None:
        return F.lit(1.0)
    age_days = F.greatest(F.lit(0.0), (F.lit(reference_us) - F.unix_micros(ts)).cast("double") / _DAY_US)
    return F.pow(F.lit(0.5), age_days / F.lit(float(half_life_days)))


def fixed_point_sum(col: Column) -> Column:
    """Sum of a double column in units of 1e-9: exact and independent of the addition order."""
    return (F.sum(F.round(col * WEIGHT_SCALE).cast("long")) / F.lit(float(WEIGHT_SCALE))).cast("double")


def edge_columns(df: DataFrame) -> DataFrame:
    """``df`` reduced to the edge schema's columns and types, in its order."""
    return df.select(*[F.col(f.name).cast(f.dataType) for f in G.EDGE_SCHEMA.fields])


def _behaviour_weight(config: GraphConfig) -> Column:
    expr = None
    for event_type, w in config.behaviour_weights.items():
        cond = F.col(S.EVENT_TYPE) == event_type
        expr = F.when(cond, F.lit(w)) if expr is None else expr.when(cond, F.lit(w))
    return expr


def _aggregate(df: DataFrame, keys: list[str]) -> DataFrame:
    """Events ``(keys..., ts, _gl_w)`` -> one row per key tuple with count, first/last ts, weight."""
    return df.groupBy(*keys).agg(
        F.count(F.lit(1)).alias(G.COUNT),
        F.min(S.TS).alias(G.FIRST_TS),
        F.max(S.TS).alias(G.LAST_TS),
        fixed_point_sum(F.col(_W)).alias(G.WEIGHT),
    )


def _structural(df: DataFrame) -> DataFrame:
    return edge_columns(
        df.select(G.SRC_ID, G.DST_ID).distinct()
        .withColumn(G.WEIGHT, F.lit(1.0)).withColumn(G.COUNT, F.lit(1))
        .withColumn(G.FIRST_TS, F.lit(None).cast("timestamp")).withColumn(G.LAST_TS, F.lit(None).cast("timestamp"))
    )


def behaviour_edges(events: DataFrame, user_map: DataFrame, item_map: DataFrame, config: GraphConfig,
                    reference_us: int | None) -> DataFrame:
    """``user -<event type>-> item`` edges for every event type of ``config.behaviour_weights``.

    Args:
        events: ``clean/events`` (``user_id, item_id, event_type, ts``).
        user_map, item_map: id maps (``key, node_id``).
        config: weights, half-life, min weight.
        reference_us: decay reference time (epoch micros), see :func:`reference_micros`.

    Returns:
        DataFrame ``(relation, src_id, dst_id, weight, count, first_ts, last_ts)``; ``relation``
        is the event type. Events whose user or item has no id are dropped.
    """
    if not isinstance(config, GraphConfig):
        raise TypeError(f"config: expected GraphConfig, got {type(config).__name__}")
    ev = events.filter(F.col(S.EVENT_TYPE).isin(list(config.behaviour_weights))).select(
        F.trim(F.col(S.USER_ID)).alias(_SRC),
        F.trim(F.col(S.ITEM_ID)).alias(_DST),
        F.col(S.EVENT_TYPE).alias(G.RELATION),
        F.col(S.TS),
        (_behaviour_weight(config) * decay(F.col(S.TS), reference_us, config.half_life_days)).alias(_W),
    )
    agg = _aggregate(ev, [_SRC, _DST, G.RELATION]).filter(F.col(G.WEIGHT) >= config.min_weight)
    joined = attach_id(attach_id(agg, _SRC, user_map, G.SRC_ID), _DST, item_map, G.DST_ID)
    return joined.select(F.col(G.RELATION), *[F.col(f.name).cast(f.dataType) for f in G.EDGE_SCHEMA.fields])


def searched_edges(events: DataFrame, query_map: DataFrame, item_map: DataFrame, config: GraphConfig,
                   reference_us: int | None) -> DataFrame:
    """``query -searched-> item``: events that carried a (normalised) query, weighted like behaviour
    edges (the event type's weight, decayed), aggregated per (query, item)."""
    if not isinstance(config, GraphConfig):
        raise TypeError(f"config: expected GraphConfig, got {type(config).__name__}")
    ev = events.filter(F.col(S.EVENT_TYPE).isin(list(config.behaviour_weights))).select(
        normalise_query(F.col(S.QUERY)).alias(_SRC),
        F.trim(F.col(S.ITEM_ID)).alias(_DST),
        F.col(S.TS),
        (_behaviour_weight(config) * decay(F.col(S.TS), reference_us, config.half_life_days)).alias(_W),
    ).filter(F.col(_SRC).isNotNull())
    agg = _aggregate(ev, [_SRC, _DST]).filter(F.col(G.WEIGHT) >= config.min_weight)
    return edge_columns(attach_id(attach_id(agg, _SRC, query_map, G.SRC_ID), _DST, item_map, G.DST_ID))


_BELONGS_TO_COLUMNS = {G.SHOP: S.SHOP_ID, G.BRAND: S.BRAND, G.CATEGORY: S.CATEGORY}


def belongs_to_edges(items: DataFrame, item_map: DataFrame, target_map: DataFrame, target: str) -> DataFrame:
    """``item -belongs_to-> shop | brand | category`` (the item's leaf category).

    Args:
        items: ``clean/items``.
        item_map, target_map: id maps of ``item`` and of ``target``.
        target: ``"shop"``, ``"brand"`` or ``"category"``.
    """
    if target not in _BELONGS_TO_COLUMNS:
        raise ValueError(f"target: expected one of {list(_BELONGS_TO_COLUMNS)}, got {target!r}")
    value = leaf_category(F.col(S.CATEGORY)) if target == G.CATEGORY else F.trim(F.col(_BELONGS_TO_COLUMNS[target]))
    pairs = items.select(F.trim(F.col(S.ITEM_ID)).alias(_SRC), value.alias(_DST)) \
        .filter(F.col(_DST).isNotNull() & (F.length(_DST) > 0))
    return _structural(attach_id(attach_id(pairs, _SRC, item_map, G.SRC_ID), _DST, target_map, G.DST_ID))


def child_of_edges(items: DataFrame, category_map: DataFrame) -> DataFrame:
    """``category -child_of-> parent category`` for every non-top category of the items' paths."""
    pairs = category_nodes(items).filter(F.col(G.PARENT).isNotNull()).select(
        F.col(G.KEY).alias(_SRC), F.col(G.PARENT).alias(_DST))
    return _structural(attach_id(attach_id(pairs, _SRC, category_map, G.SRC_ID), _DST, category_map, G.DST_ID))


def follows_edges(users: DataFrame, user_map: DataFrame) -> DataFrame:
    """``user -follows-> user`` from ``clean/users.follows``; self-follows and targets that are
    not user nodes are dropped."""
    pairs = users.select(F.trim(F.col(S.USER_ID)).alias(_SRC), F.explode(F.col(S.FOLLOWS)).alias(_DST)) \
        .select(_SRC, F.trim(F.col(_DST)).alias(_DST)) \
        .filter(F.col(_DST).isNotNull() & (F.length(_DST) > 0) & (F.col(_SRC) != F.col(_DST)))
    return _structural(attach_id(attach_id(pairs, _SRC, user_map, G.SRC_ID), _DST, user_map, G.DST_ID))
