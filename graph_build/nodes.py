"""Node keys and node tables: which keys each node type has, and ``graph/nodes_<type>``.

Node types and where their keys come from (clean tables of the ETL):

* ``user``: ``events.user_id`` and ``users.user_id``;
* ``item``: ``events.item_id`` and ``items.item_id``;
* ``shop`` / ``brand``: ``items.shop_id`` / ``items.brand``;
* ``category``: every prefix of ``items.category`` (``a``, ``a>b``, ``a>b>c`` for ``a>b>c``), so
  the hierarchy is part of the graph (``category -child_of-> parent``, ``item -belongs_to-> leaf``);
* ``query``: the normalised ``events.query`` (lower case, trimmed, inner white space collapsed).

Example:
    >>> keys = node_keys(events, items, users, GraphConfig())
    >>> sorted(keys)
    ['brand', 'category', 'item', 'query', 'shop', 'user']
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from graphlake.etl import schema as S
from graphlake.graph_build import schema as G
from graphlake.graph_build.config import GraphConfig
from graphlake.graph_build.ids import candidate_keys


def normalise_query(col: Column) -> Column:
    """Lower case, trimmed, inner white space collapsed; NULL when nothing is left."""
    q = F.lower(F.trim(F.regexp_replace(col, r"\s+", " ")))
    return F.when(F.length(q) > 0, q)


def category_prefixes(path: Column) -> Column:
    """``array`` of the path's prefixes, shortest first: ``a>b>c`` -> ``[a, a>b, a>b>c]``.

    Empty segments are dropped (the ETL already normalises paths); NULL or empty paths give an
    empty array.
    """
    parts = F.filter(F.split(F.coalesce(path, F.lit("")), S.CATEGORY_SEPARATOR), lambda p: F.length(F.trim(p)) > 0)
    parts = F.transform(parts, lambda p: F.trim(p))
    prefixes = F.transform(F.sequence(F.lit(1), F.size(parts)),
                           lambda i: F.array_join(F.slice(parts, 1, i), S.CATEGORY_SEPARATOR))
    return F.when(F.size(parts) > 0, prefixes).otherwise(F.array().cast("array<string>"))


def leaf_category(path: Column) -> Column:
    """The full normalised path (the leaf category key), NULL when the path is empty."""
    prefixes = category_prefixes(path)
    return F.when(F.size(prefixes) > 0, F.element_at(prefixes, -1))


def category_nodes(items: DataFrame) -> DataFrame:
    """Every category node with its attributes.

    Args:
        items: ``clean/items`` (needs ``category``).

    Returns:
        DataFrame ``(key, level, name, parent)``, one row per distinct path prefix; ``parent`` is
        NULL at level 1. Example: ``a>b`` gives ``(a, 1, a, NULL)`` and ``(a>b, 2, b, a)``.
    """
    exploded = items.select(F.explode(category_prefixes(F.col(S.CATEGORY))).alias(G.KEY)).distinct()
    parts = F.split(F.col(G.KEY), S.CATEGORY_SEPARATOR)
    level = F.size(parts)
    return exploded.select(
        F.col(G.KEY),
        level.cast("int").alias(G.LEVEL),
        F.element_at(parts, -1).alias(G.NAME),
        F.when(level > 1, F.array_join(F.slice(parts, 1, level - 1), S.CATEGORY_SEPARATOR)).alias(G.PARENT),
    )


def node_keys(events: DataFrame, items: DataFrame, users: DataFrame, config: GraphConfig) -> dict[str, DataFrame]:
    """Candidate keys per node type (``key`` column, distinct, non-empty).

    Args:
        events: ``clean/events``; items: ``clean/items``; users: ``clean/users``.
        config: decides whether ``query`` nodes are built (``include_queries``).

    Returns:
        ``{node type: DataFrame(key)}`` for user, item, shop, brand, category and, when
        ``config.include_queries``, query (possibly empty). Keys are trimmed and non-empty but may
        repeat: :func:`graphlake.graph_build.ids.new_ids_by_type` deduplicates all types in one shuffle.
    """
    if not isinstance(config, GraphConfig):
        raise TypeError(f"config: expected GraphConfig, got {type(config).__name__}")
    def keys_of(df, column):
        return candidate_keys(df, column, distinct=False)

    keys = {
        G.USER: keys_of(events, S.USER_ID).unionByName(keys_of(users, S.USER_ID)),
        G.ITEM: keys_of(events, S.ITEM_ID).unionByName(keys_of(items, S.ITEM_ID)),
        G.SHOP: keys_of(items, S.SHOP_ID),
        G.BRAND: keys_of(items, S.BRAND),
        G.CATEGORY: items.select(F.explode(category_prefixes(F.col(S.CATEGORY))).alias(G.KEY)),
    }
    if config.include_queries:
        keys[G.QUERY] = keys_of(events.select(normalise_query(F.col(S.QUERY)).alias(S.QUERY)), S.QUERY)
    return keys


def node_table(node_type: str, id_map: DataFrame, items: DataFrame, users: DataFrame) -> DataFrame:
    """``graph/nodes_<type>``: every id of the map with the attributes of the current input.

    Args:
        node_type: one of :data:`graphlake.graph_build.schema.NODE_TYPES`.
        id_map: the full id map of that type (``key, node_id, ...``).
        items, users: ``clean/items`` and ``clean/users`` (attributes of item / user / category).

    Returns:
        DataFrame with :data:`graphlake.graph_build.schema.NODE_SCHEMAS` ``[node_type]``'s columns, one row
        per id; attributes NULL for keys the current input does not describe.
    """
    if node_type not in G.NODE_SCHEMAS:
        raise ValueError(f"node_type: expected one of {list(G.NODE_SCHEMAS)}, got {node_type!r}")
    schema = G.NODE_SCHEMAS[node_type]
    base = id_map.select(G.NODE_ID, G.KEY)
    attrs = None
    if node_type == G.USER:
        attrs = users.select(F.trim(F.col(S.USER_ID)).alias(G.KEY), *[F.col(f.name) for f in schema.fields[2:]])
    elif node_type == G.ITEM:
        attrs = items.select(F.trim(F.col(S.ITEM_ID)).alias(G.KEY), *[F.col(f.name) for f in schema.fields[2:]])
    elif node_type == G.CATEGORY:
        attrs = category_nodes(items)
    if attrs is not None:
        attrs = attrs.dropDuplicates([G.KEY])  # clean catalogs have one row per key already
        base = base.join(attrs, G.KEY, "left")
    return base.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])
