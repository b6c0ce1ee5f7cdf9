"""Column names and schemas of the graph tables (the contract between graph build and training).

Tables (names in :mod:`graphlake.core.tables`): ``graph/id_map_<type>``, ``graph/nodes_<type>``,
``graph/features_<type>``, ``graph/edges_<src>__<rel>__<dst>``, ``graph/stats``, ``graph/manifest``.
"""

from __future__ import annotations

from pyspark.sql import types as T

from graphlake.core.edge_types import edge_type_name  # noqa: F401  (G.edge_type_name: the one formatter)
from graphlake.etl import schema as ES

# ---------------------------------------------------------------- node and edge types
USER, ITEM, SHOP, BRAND, CATEGORY, QUERY = "user", "item", "shop", "brand", "category", "query"
NODE_TYPES = (USER, ITEM, SHOP, BRAND, CATEGORY, QUERY)

# user -> item behaviour relations (one per event type)
BEHAVIOUR_RELATIONS = ("click", "view", "cart", "fav", "purchase")
BELONGS_TO = "belongs_to"  # item -> shop / brand / category
CHILD_OF = "child_of"  # category -> parent category
FOLLOWS = "follows"  # user -> user
CO_VIEW = "co_view"  # item -> item, same session
CO_PURCHASE = "co_purchase"  # item -> item, same user within a window
SEARCHED = "searched"  # query -> item (events that carried a query)




# ---------------------------------------------------------------- columns
KEY = "key"  # the original id (string)
NODE_ID = "node_id"  # contiguous int64 from 0 per node type
ADDED_IN = "added_in"  # graph version that assigned the id

SRC_ID, DST_ID = "src_id", "dst_id"
WEIGHT, COUNT, FIRST_TS, LAST_TS = "weight", "count", "first_ts", "last_ts"

NUMERIC = "numeric"  # array<float>, normalised
NUMERIC_MISSING = "numeric_missing"  # array<boolean>, True where the value was imputed
CATEGORICAL = "categorical"  # array<int>, index 0 = missing / unknown
TEXT = "text"  # array<float>, title embedding (items)
IMAGE = "image"  # array<float>, upstream image vector (items)
HAS_IMAGE = "has_image"  # boolean

ID_MAP_SCHEMA = T.StructType(
    [
        T.StructField(KEY, T.StringType(), False),
        T.StructField(NODE_ID, T.LongType(), False),
        T.StructField(ADDED_IN, T.LongType(), False),
    ]
)

EDGE_SCHEMA = T.StructType(
    [
        T.StructField(SRC_ID, T.LongType(), False),
        T.StructField(DST_ID, T.LongType(), False),
        T.StructField(WEIGHT, T.DoubleType(), False),
        T.StructField(COUNT, T.LongType(), False),
        T.StructField(FIRST_TS, T.TimestampType(), True),
        T.StructField(LAST_TS, T.TimestampType(), True),
    ]
)

FEATURES_SCHEMA = T.StructType(
    [
        T.StructField(NODE_ID, T.LongType(), False),
        T.StructField(NUMERIC, T.ArrayType(T.FloatType(), False), False),
        T.StructField(NUMERIC_MISSING, T.ArrayType(T.BooleanType(), False), False),
        T.StructField(CATEGORICAL, T.ArrayType(T.IntegerType(), False), False),
        T.StructField(TEXT, T.ArrayType(T.FloatType(), False), True),
        T.StructField(IMAGE, T.ArrayType(T.FloatType(), False), True),
        T.StructField(HAS_IMAGE, T.BooleanType(), False),
    ]
)

# ---------------------------------------------------------------- node tables (graph/nodes_<type>)
# Every node table is the id map's (node_id, key) plus a few attributes of the current input;
# attributes are NULL for a key the current input no longer has (ids are never removed).
LEVEL = "level"  # category depth, 1 = top level
NAME = "name"  # category: the last path segment
PARENT = "parent"  # category: key (path) of the parent category, NULL at the top level

_USER_ATTRS = [
    T.StructField(ES.AGE, T.IntegerType(), True),
    T.StructField(ES.GENDER, T.StringType(), True),
    T.StructField(ES.REGION, T.StringType(), True),
    T.StructField(ES.SIGNUP_TS, T.TimestampType(), True),
]
_ITEM_ATTRS = [
    T.StructField(ES.TITLE, T.StringType(), True),
    T.StructField(ES.CATEGORY, T.StringType(), True),
    T.StructField(ES.BRAND, T.StringType(), True),
    T.StructField(ES.SHOP_ID, T.StringType(), True),
    T.StructField(ES.PRICE, T.DoubleType(), True),
]
_CATEGORY_ATTRS = [
    T.StructField(LEVEL, T.IntegerType(), True),
    T.StructField(NAME, T.StringType(), True),
    T.StructField(PARENT, T.StringType(), True),
]
_NODE_BASE = [T.StructField(NODE_ID, T.LongType(), False), T.StructField(KEY, T.StringType(), False)]
NODE_SCHEMAS = {
    USER: T.StructType(_NODE_BASE + _USER_ATTRS),
    ITEM: T.StructType(_NODE_BASE + _ITEM_ATTRS),
    SHOP: T.StructType(list(_NODE_BASE)),
    BRAND: T.StructType(list(_NODE_BASE)),
    CATEGORY: T.StructType(_NODE_BASE + _CATEGORY_ATTRS),
    QUERY: T.StructType(list(_NODE_BASE)),
}

# ---------------------------------------------------------------- intermediate column
RELATION = "relation"  # the relation of a user -> item behaviour edge before it is split per table

# ---------------------------------------------------------------- graph/manifest (one row per graph version)
GRAPH_VERSION = "graph_version"  # 0, 1, 2, ...
CREATED_AT = "created_at"
CONFIG_HASH = "config_hash"
CONFIG_JSON = "config"  # the GraphConfig as JSON
REFERENCE_TS = "reference_ts"  # the time the decay is measured from
INPUT_VERSIONS = "input_versions"  # JSON {table name: Delta version} of the clean tables read
OUTPUT_VERSIONS = "output_versions"  # JSON {table name: Delta version} of every graph table of the version
NODE_COUNTS = "node_counts"  # JSON {node type: nodes}
EDGE_COUNTS = "edge_counts"  # JSON {"<src>__<rel>__<dst>": edges}
FEATURE_SPEC = "feature_spec"  # JSON {node type: feature names, dims, cardinalities} (graph_build.features)

MANIFEST_SCHEMA = T.StructType(
    [
        T.StructField(GRAPH_VERSION, T.LongType(), False),
        T.StructField(CREATED_AT, T.TimestampType(), False),
        T.StructField(CONFIG_HASH, T.StringType(), False),
        T.StructField(CONFIG_JSON, T.StringType(), False),
        T.StructField(REFERENCE_TS, T.TimestampType(), True),
        T.StructField(INPUT_VERSIONS, T.StringType(), False),
        T.StructField(OUTPUT_VERSIONS, T.StringType(), False),
        T.StructField(NODE_COUNTS, T.StringType(), False),
        T.StructField(EDGE_COUNTS, T.StringType(), False),
        T.StructField(FEATURE_SPEC, T.StringType(), True),
    ]
)
