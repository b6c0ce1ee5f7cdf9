"""Table names (paths relative to the lake root), one place for all stages.

Example:
    >>> from graphlake.core import tables
    >>> tables.table_path("./lakehouse", tables.CLEAN_EVENTS)
    './lakehouse/clean/events'
"""

from __future__ import annotations

import os

CLEAN_EVENTS = "clean/events"
CLEAN_USERS = "clean/users"
CLEAN_ITEMS = "clean/items"
QUARANTINE_EVENTS = "quarantine/events"
QUARANTINE_ITEMS = "quarantine/items"
QUARANTINE_USERS = "quarantine/users"
ETL_RUNS = "meta/etl_runs"
IMPORT_TEST = "import/test_interactions"  # held-out interactions of an imported dataset

GRAPH_MANIFEST = "graph/manifest"
GRAPH_STATS = "graph/stats"
ASSETS_REGISTRY = "assets/registry"
ASSETS_RECOMMENDATIONS = "assets/recommendations"  # top-K per user and item_embeddings version
ASSETS_SIMILAR_ITEMS = "assets/similar_items"  # top-K per item and item_embeddings version

DATA_DOCS_DIR = "_reports/data_docs"
REPORTS_DIR = "_reports"


def id_map(node_type: str) -> str:
    """``graph/id_map_<type>``."""
    return f"graph/id_map_{node_type}"


def nodes(node_type: str) -> str:
    """``graph/nodes_<type>``."""
    return f"graph/nodes_{node_type}"


def features(node_type: str) -> str:
    """``graph/features_<type>``."""
    return f"graph/features_{node_type}"


def edges(src_type: str, relation: str, dst_type: str) -> str:
    """``graph/edges_<src>__<rel>__<dst>``."""
    return f"graph/edges_{src_type}__{relation}__{dst_type}"


def embeddings(asset: str) -> str:
    """``emb/<asset>``."""
    return f"emb/{asset}"


def table_path(lake: str, name: str) -> str:
    """Absolute-or-relative path of table ``name`` under lake root ``lake``."""
    if not isinstance(lake, str) or not lake:
        raise ValueError(f"lake: expected a non-empty path, got {lake!r}")
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name.split("/"):
        raise ValueError(f"name: expected a relative table name like 'clean/events', got {name!r}")
    return os.path.join(lake, name)


SNAPSHOTS_DIR = "snapshots"


def snapshot_dir(lake: str, graph_version: int) -> str:
    """``<lake>/snapshots/graph_v<N>``: the training snapshot of graph version ``N``."""
    if isinstance(graph_version, bool) or not isinstance(graph_version, int) or graph_version < 0:
        raise ValueError(f"graph_version: expected a non-negative int, got {graph_version!r}")
    return os.path.join(lake, SNAPSHOTS_DIR, f"graph_v{graph_version}")


RUNS_DIR = "_runs"
TRAIN_RUNS = "meta/train_runs"
