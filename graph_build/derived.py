"""Derived ``item -> item`` edges: ``co_view`` (same session) and ``co_purchase`` (same user,
within a window), with explicit skew handling.

Pipeline (both relations)::

    events ─▶ distinct (group, item) with the item's latest ts in the group
           ─▶ CAP: keep the N most recent distinct items per group          (skew: hyperactive group)
           ─▶ self-join on the group, pairs a != b with |ts_a - ts_b| <= window
           ─▶ aggregate per (a, b): count = groups, weight = sum of decayed co-occurrences
           ─▶ TOP-K: keep the k heaviest b per a                            (skew: hot item)

*group* is ``(user_id, session_id)`` for co_view and ``user_id`` for co_purchase.

Skew strategy: **capping per key**, no salting. A group contributes at most ``N * (N - 1)``
pairs (``max_items_per_session`` / ``max_items_per_user``), so a session or user with 100k
events cannot blow up the self-join, and the join is keyed by the group, never by the item, so a
hot item does not concentrate the join in one task either. The cap keeps the N items with the
latest ts (ties: smaller item key), deterministic. Both the cap and the top-k are ``row_number()
<= n`` filters, which Spark plans as a partial ``WindowGroupLimit`` *before* the shuffle, so a hot
group or a hot item ships at most n rows per map task. Pairs are directed: ``a -> b`` exists when
b is among a's top-k (the co-occurrence score itself is symmetric); the reverse relation is
derived by training like every other reverse edge.

Weights: each co-occurrence counts ``0.5 ** (age_days / half_life_days)`` with the age of the
later of the two events (1 without decay), summed in fixed point; ``count`` is the number of
groups, ``first_ts`` / ``last_ts`` the earliest / latest co-occurrence time.

Example:
    >>> edges = co_view_edges(events, item_map, GraphConfig(top_k=10), reference_us)
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from graphlake.etl import schema as S
from graphlake.graph_build import schema as G
from graphlake.graph_build.config import GraphConfig
from graphlake.graph_build.edges import decay, edge_columns, fixed_point_sum
from graphlake.graph_build.ids import attach_id

ITEM_A, ITEM_B, PAIR_TS = "item_a", "item_b", "pair_ts"
_ITEM, _TS, _RN = "_gl_item", "_gl_ts", "_gl_rn"
_US_PER_MINUTE, _US_PER_DAY = 60_000_000, 86_400_000_000


def _check_cap(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")


def cap_recent_items(df: DataFrame, group_cols: list[str], cap: int) -> DataFrame:
    """The ``cap`` most recent distinct items per group.

    Args:
        df: rows ``(group_cols..., item_id, ts)``.
        group_cols: the grouping key, e.g. ``["user_id", "session_id"]``.
        cap: items kept per group (latest ts first, ties by smaller item key).

    Returns:
        DataFrame ``(group_cols..., _gl_item, _gl_ts)``: one row per kept (group, item), ``_gl_ts``
        the item's latest ts in the group.
    """
    _check_cap("cap", cap)
    per_item = df.groupBy(*group_cols, F.col(S.ITEM_ID).alias(_ITEM)).agg(F.max(S.TS).alias(_TS))
    order = Window.partitionBy(*group_cols).orderBy(F.col(_TS).desc(), F.col(_ITEM).asc())
    return per_item.withColumn(_RN, F.row_number().over(order)).filter(F.col(_RN) <= cap).drop(_RN)


def group_pairs(capped: DataFrame, group_cols: list[str], window_us: int) -> DataFrame:
    """Directed pairs of distinct items of the same group at most ``window_us`` apart.

    Returns:
        DataFrame ``(item_a, item_b, pair_ts)`` (item keys; ``pair_ts`` the later of the two ts),
        one row per (group, a, b).
    """
    _check_cap("window_us", window_us)
    a = capped.select(*group_cols, F.col(_ITEM).alias(ITEM_A), F.col(_TS).alias("_ts_a"))
    b = capped.select(*group_cols, F.col(_ITEM).alias(ITEM_B), F.col(_TS).alias("_ts_b"))
    gap = F.abs(F.unix_micros(F.col("_ts_a")) - F.unix_micros(F.col("_ts_b")))
    return a.join(b, group_cols).filter((F.col(ITEM_A) != F.col(ITEM_B)) & (gap <= window_us)).select(
        ITEM_A, ITEM_B, F.greatest(F.col("_ts_a"), F.col("_ts_b")).alias(PAIR_TS))


def top_k_pairs(pairs: DataFrame, config: GraphConfig, reference_us: int | None) -> DataFrame:
    """Aggregate ``(item_a, item_b, pair_ts)`` per pair and keep each ``item_a``'s top-k.

    Returns:
        DataFrame ``(item_a, item_b, weight, count, first_ts, last_ts)`` with at most
        ``config.top_k`` rows per ``item_a`` (heaviest first, ties by smaller ``item_b``).
    """
    agg = pairs.groupBy(ITEM_A, ITEM_B).agg(
        F.count(F.lit(1)).alias(G.COUNT),
        F.min(PAIR_TS).alias(G.FIRST_TS),
        F.max(PAIR_TS).alias(G.LAST_TS),
        fixed_point_sum(decay(F.col(PAIR_TS), reference_us, config.half_life_days)).alias(G.WEIGHT),
    ).filter(F.col(G.WEIGHT) >= config.min_weight)
    order = Window.partitionBy(ITEM_A).orderBy(F.col(G.WEIGHT).desc(), F.col(ITEM_B).asc())
    return agg.withColumn(_RN, F.row_number().over(order)).filter(F.col(_RN) <= config.top_k).drop(_RN)


def _with_ids(top: DataFrame, item_map: DataFrame) -> DataFrame:
    return edge_columns(attach_id(attach_id(top, ITEM_A, item_map, G.SRC_ID), ITEM_B, item_map, G.DST_ID))


def _group_events(events: DataFrame, event_types: tuple, group_cols: list[str]) -> DataFrame:
    ev = events.filter(F.col(S.EVENT_TYPE).isin(list(event_types)))
    for c in group_cols:
        ev = ev.filter(F.col(c).isNotNull() & (F.length(F.col(c)) > 0))
    return ev.select(*group_cols, F.trim(F.col(S.ITEM_ID)).alias(S.ITEM_ID), S.TS)


def co_view_pairs(events: DataFrame, config: GraphConfig) -> DataFrame:
    """Capped same-session pairs ``(item_a, item_b, pair_ts)`` before aggregation; events without
    a session are skipped. At most ``max_items_per_session * (max_items_per_session - 1)`` rows
    per session."""
    groups = [S.USER_ID, S.SESSION_ID]
    capped = cap_recent_items(_group_events(events, config.co_view_event_types, groups), groups,
                              config.max_items_per_session)
    return group_pairs(capped, groups, int(config.co_view_window_minutes * _US_PER_MINUTE))


def co_purchase_pairs(events: DataFrame, config: GraphConfig) -> DataFrame:
    """Capped same-user pairs ``(item_a, item_b, pair_ts)`` of purchases at most
    ``co_purchase_window_days`` apart; at most ``max_items_per_user * (max_items_per_user - 1)``
    rows per user."""
    groups = [S.USER_ID]
    capped = cap_recent_items(_group_events(events, config.co_purchase_event_types, groups), groups,
                              config.max_items_per_user)
    return group_pairs(capped, groups, int(config.co_purchase_window_days * _US_PER_DAY))


def co_view_edges(events: DataFrame, item_map: DataFrame, config: GraphConfig, reference_us: int | None) -> DataFrame:
    """``item -co_view-> item`` edges (edge schema), top-k per source item.

    Args:
        events: ``clean/events``.
        item_map: the item id map.
        config: event types, window, cap, top-k, decay.
        reference_us: decay reference time (epoch micros).
    """
    if not isinstance(config, GraphConfig):
        raise TypeError(f"config: expected GraphConfig, got {type(config).__name__}")
    return _with_ids(top_k_pairs(co_view_pairs(events, config), config, reference_us), item_map)


def co_purchase_edges(events: DataFrame, item_map: DataFrame, config: GraphConfig,
                      reference_us: int | None) -> DataFrame:
    """``item -co_purchase-> item`` edges (edge schema), top-k per source item."""
    if not isinstance(config, GraphConfig):
        raise TypeError(f"config: expected GraphConfig, got {type(config).__name__}")
    return _with_ids(top_k_pairs(co_purchase_pairs(events, config), config, reference_us), item_map)
