"""Column names, statuses and schemas of the embedding assets (one module for the package).

An asset is a versioned Delta table ``emb/<asset>`` (partitioned by ``asset_version``) plus a
folder of files per version under ``<lake>/assets/files/<asset>/v<N>/`` (row-aligned vectors,
keys, the FAISS index of item-like assets, ``meta.json``), registered in ``assets/registry``.
"""

from __future__ import annotations

from pyspark.sql import types as T

KEY, NODE_ID, EMBEDDING, ASSET_VERSION, ORIGIN = "key", "node_id", "embedding", "asset_version", "origin"
ORIGIN_TRAINED, ORIGIN_INDUCTIVE = "trained", "inductive"

ASSET_SCHEMA = T.StructType([
    T.StructField(KEY, T.StringType(), False),
    T.StructField(NODE_ID, T.LongType(), False),
    T.StructField(EMBEDDING, T.ArrayType(T.FloatType(), False), False),
    T.StructField(ORIGIN, T.StringType(), False),
    T.StructField(ASSET_VERSION, T.LongType(), False),
])

# registry statuses: pending (a publish in flight or killed), candidate, production, retired, failed
PENDING, CANDIDATE, PRODUCTION, RETIRED, FAILED = "pending", "candidate", "production", "retired", "failed"
STATUSES = (PENDING, CANDIDATE, PRODUCTION, RETIRED, FAILED)

REGISTRY_FIELDS = (
    ("asset", T.StringType()), ("version", T.LongType()), ("node_type", T.StringType()),
    ("graph_version", T.LongType()), ("run_id", T.StringType()), ("config_hash", T.StringType()),
    ("code_version", T.StringType()), ("metrics", T.StringType()), ("dim", T.LongType()),
    ("row_count", T.LongType()), ("status", T.StringType()), ("table_version", T.LongType()),
    ("files", T.StringType()), ("base_version", T.LongType()), ("gate", T.StringType()),
    ("note", T.StringType()), ("created_at", T.TimestampType()), ("updated_at", T.TimestampType()),
    ("promoted_at", T.TimestampType()), ("vacuumed", T.BooleanType()),
)
REGISTRY_COLUMNS = tuple(name for name, _ in REGISTRY_FIELDS)
REGISTRY_SCHEMA = T.StructType([T.StructField(n, t, True) for n, t in REGISTRY_FIELDS])

# outputs for readers without Spark (graphlake.assets.outputs): long form, one row per answer
USER_KEY, ITEM_KEY, SIMILAR_KEY, RANK, SCORE = "user_key", "item_key", "similar_key", "rank", "score"
USER_ASSET_VERSION = "user_asset_version"
RECOMMENDATIONS_SCHEMA = T.StructType([
    T.StructField(USER_KEY, T.StringType(), False),
    T.StructField(RANK, T.IntegerType(), False),
    T.StructField(ITEM_KEY, T.StringType(), False),
    T.StructField(SCORE, T.FloatType(), False),
    T.StructField(USER_ASSET_VERSION, T.LongType(), False),
    T.StructField(ASSET_VERSION, T.LongType(), False),  # the item_embeddings version
])
SIMILAR_ITEMS_SCHEMA = T.StructType([
    T.StructField(ITEM_KEY, T.StringType(), False),
    T.StructField(RANK, T.IntegerType(), False),
    T.StructField(SIMILAR_KEY, T.StringType(), False),
    T.StructField(SCORE, T.FloatType(), False),
    T.StructField(ASSET_VERSION, T.LongType(), False),
])

# files of one asset version
VECTORS_FILE, KEYS_FILE, INDEX_FILE, META_FILE = "vectors.npy", "keys.parquet", "index.faiss", "meta.json"
FILES_DIR = "assets/files"


def asset_name(node_type: str) -> str:
    """``user`` -> ``user_embeddings``."""
    if not isinstance(node_type, str) or not node_type.isidentifier():
        raise ValueError(f"node_type: expected an identifier like 'item', got {node_type!r}")
    return f"{node_type}_embeddings"


def node_type_of(asset: str) -> str:
    """``item_embeddings`` -> ``item``."""
    if not isinstance(asset, str) or not asset.endswith("_embeddings") or asset == "_embeddings":
        raise ValueError(f"asset: expected '<node type>_embeddings' like 'item_embeddings', got {asset!r}")
    return asset[: -len("_embeddings")]
