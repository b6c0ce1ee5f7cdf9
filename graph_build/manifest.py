"""``graph/manifest``: the commit point of a graph build, and how readers resolve a graph version.

One row per committed graph version (see :data:`graphlake.graph_build.schema.MANIFEST_SCHEMA`). The
graph tables are ordinary Delta tables that a build overwrites or appends to; a graph version
is the set of table *versions* its manifest row names. A build that fails before appending its
row leaves no graph version (the tables it touched are restored), so readers that go through
:func:`load_graph_version` never see a half-built graph.

Example:
    >>> g = load_graph_version(spark, "lakehouse")          # latest graph version: a GraphVersion
    >>> g.graph_version, g.node_counts["user"]
    (3, 20000)
    >>> clicks = g.read(spark, "graph/edges_user__click__item")
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql import functions as F

from graphlake.core import lake, tables
from graphlake.core.edge_types import parse_edge_type
from graphlake.core.errors import InputNotFoundError, UsageError
from graphlake.graph_build import analytics as A
from graphlake.graph_build import schema as G

_TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"


class GraphNotFoundError(InputNotFoundError):
    """The lake has no committed graph version (or not the requested one)."""


def table_rows(path: str, version: int | None = None) -> int:
    """Rows of a Delta table version from the per-file statistics of its log (no data scan)."""
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(os.path.abspath(path), version=version).get_add_actions(flatten=True))
    return int(sum(actions.column("num_records").to_pylist())) if actions.num_rows else 0


def manifest_row(spark, graph_version: int, config_hash: str, config_json: str, reference_us: int | None,
                 inputs: dict, outputs: dict, node_counts: dict, edge_counts: dict, feature_spec: dict | None = None):
    """The one-row DataFrame a build appends to ``graph/manifest`` (``created_at`` = now, UTC)."""
    values = {
        G.GRAPH_VERSION: F.lit(int(graph_version)),
        G.CREATED_AT: F.current_timestamp(),
        G.CONFIG_HASH: F.lit(config_hash),
        G.CONFIG_JSON: F.lit(config_json),
        G.REFERENCE_TS: F.timestamp_micros(F.lit(reference_us).cast("long")),
        G.INPUT_VERSIONS: F.lit(json.dumps(inputs, sort_keys=True)),
        G.OUTPUT_VERSIONS: F.lit(json.dumps(outputs, sort_keys=True)),
        G.NODE_COUNTS: F.lit(json.dumps(node_counts, sort_keys=True)),
        G.EDGE_COUNTS: F.lit(json.dumps(edge_counts, sort_keys=True)),
        G.FEATURE_SPEC: F.lit(json.dumps(feature_spec or {}, sort_keys=True)),
    }
    return spark.range(1).select(*[values[f.name].cast(f.dataType).alias(f.name) for f in G.MANIFEST_SCHEMA.fields])


@dataclass(frozen=True)
class GraphTable:
    """One table of a graph version: its Delta folder (absolute) and the Delta version the graph uses."""

    path: str
    version: int


@dataclass(frozen=True)
class GraphVersion:
    """A committed graph version: what ``graph build`` leaves for export, training, publishing,
    embed-new and the report (one manifest row, resolved). Read it with :func:`load_graph_version`.

    Attributes:
        graph_version: the version number (0, 1, ...).
        created_at, reference_ts: ISO-8601 UTC strings; ``reference_ts_us`` is the decay reference
            in epoch microseconds, as the build used it.
        config_hash, config: the build's :class:`~graphlake.graph_build.config.GraphConfig` (hash, dict).
        inputs: ``{clean table: Delta version}`` the build read.
        tables: ``{graph table name: GraphTable}``.
        node_counts, edge_counts: ``{node type: nodes}``, ``{edge type name: edges}``.
        feature_spec: see :func:`graphlake.graph_build.features.feature_spec`.
        node_types, edge_types: sorted node types; ``[(src, rel, dst)]``.
        manifest_version: the Delta version of ``graph/manifest`` it was read at.
        lake: the lake root (absolute).

    Example:
        >>> g = load_graph_version(spark, "lakehouse", 0)
        >>> g.has(tables.GRAPH_STATS), g.table("graph/nodes_user").version
        (True, 0)
    """

    graph_version: int
    created_at: str
    reference_ts: str
    reference_ts_us: int
    config_hash: str
    config: dict
    inputs: dict
    tables: dict
    node_counts: dict
    edge_counts: dict
    feature_spec: dict
    node_types: list
    edge_types: list
    manifest_version: int
    lake: str

    def has(self, name: str) -> bool:
        """Whether table ``name`` (e.g. ``graph/stats``) is part of this graph version."""
        return name in self.tables

    def table(self, name: str) -> GraphTable:
        """The :class:`GraphTable` of ``name``; ``KeyError`` naming the tables there are otherwise."""
        if name not in self.tables:
            raise KeyError(f"name: {name!r} is not part of graph version {self.graph_version} "
                           f"(tables: {sorted(self.tables)})")
        return self.tables[name]

    def read(self, spark, name: str):
        """Table ``name`` at the Delta version this graph version names (a DataFrame)."""
        entry = self.table(name)
        return lake.read_table(spark, entry.path, version=entry.version)


def _entry(row, lake_dir: str, manifest_version: int) -> GraphVersion:
    outputs = json.loads(row[G.OUTPUT_VERSIONS])
    node_counts = json.loads(row[G.NODE_COUNTS])
    edge_counts = json.loads(row[G.EDGE_COUNTS])
    return GraphVersion(
        graph_version=int(row[G.GRAPH_VERSION]),
        created_at=row["_created"],
        reference_ts=row["_ref"],
        reference_ts_us=row["_ref_us"],
        config_hash=row[G.CONFIG_HASH],
        config=json.loads(row[G.CONFIG_JSON]),
        inputs=json.loads(row[G.INPUT_VERSIONS]),
        tables={name: GraphTable(os.path.abspath(tables.table_path(lake_dir, name)), int(v))
                for name, v in sorted(outputs.items())},
        node_counts=node_counts,
        edge_counts=edge_counts,
        feature_spec=json.loads(row[G.FEATURE_SPEC] or "{}"),
        node_types=sorted(node_counts),
        edge_types=[tuple(parse_edge_type(name)) for name in sorted(edge_counts)],
        manifest_version=manifest_version,
        lake=os.path.abspath(lake_dir),
    )


def load_graph_version(spark, lake_dir: str, version: int | None = None) -> GraphVersion:
    """Resolve a committed graph version through the manifest.

    Args:
        spark: SparkSession.
        lake_dir: lake root.
        version: graph version; ``None`` takes the latest.

    Returns:
        the :class:`GraphVersion`.

    Raises:
        GraphNotFoundError: no graph was built yet, or ``version`` does not exist.
    """
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise UsageError(f"version: expected a non-negative int or None, got {version!r}")
    path = tables.table_path(lake_dir, tables.GRAPH_MANIFEST)
    manifest_version = lake.table_version(path)
    if manifest_version is None:
        raise GraphNotFoundError(f"lake: no graph built under {lake_dir!r} (run `graphlake graph build` first)")
    df = lake.read_table(spark, path, version=manifest_version)
    if version is not None:
        df = df.filter(F.col(G.GRAPH_VERSION) == version)
    df = df.orderBy(F.col(G.GRAPH_VERSION).desc()).limit(1).select(
        "*", F.date_format(G.CREATED_AT, _TS_FORMAT).alias("_created"),
        F.date_format(G.REFERENCE_TS, _TS_FORMAT).alias("_ref"), F.unix_micros(G.REFERENCE_TS).alias("_ref_us"))
    rows = df.collect()
    if not rows:
        raise GraphNotFoundError(f"version: graph version {version} is not in {path!r}")
    return _entry(rows[0], lake_dir, manifest_version)


def read_graph_table(spark, graph: GraphVersion, name: str):
    """Read table ``name`` (e.g. ``graph/nodes_user``) at the Delta version the graph version names
    (:meth:`GraphVersion.read`, for callers that hold the graph as an argument)."""
    if not isinstance(graph, GraphVersion):
        raise TypeError(f"graph: expected the GraphVersion load_graph_version returns, got {type(graph).__name__}")
    return graph.read(spark, name)


def _percentile(hist: list[tuple[int, int]], percent: int) -> int:
    """The percentile (nearest rank) of a degree histogram [(degree, nodes)] sorted by degree."""
    total = sum(n for _, n in hist)
    rank, seen = max(1, -(-percent * total // 100)), 0
    for degree, n in hist:
        seen += n
        if seen >= rank:
            return degree
    return hist[-1][0]


def graph_summary(spark, lake_dir: str, version: int | None = None) -> dict:
    """What ``graphlake graph stats`` prints: the manifest entry's counts and, when the graph
    version has ``graph/stats`` (the degree histogram of ``graphlake.graph_build.analytics``), degree
    percentiles per edge type and direction (p50, p90, p99, max over all nodes of the type, isolated
    nodes counted at degree 0)."""
    graph = load_graph_version(spark, lake_dir, version)
    out = {k: getattr(graph, k) for k in ("graph_version", "created_at", "reference_ts", "config_hash",
                                          "node_counts", "edge_counts", "inputs")}
    out["nodes_total"] = sum(graph.node_counts.values())
    out["edges_total"] = sum(graph.edge_counts.values())
    if graph.has(tables.GRAPH_STATS):
        hist: dict[tuple[str, str], list] = {}
        for r in read_graph_table(spark, graph, tables.GRAPH_STATS).collect():  # one row per distinct degree
            hist.setdefault((r[A.EDGE_TYPE], r[A.DIRECTION]), []).append((int(r[A.DEGREE]), int(r[A.NUM_NODES])))
        out["degrees"] = {
            f"{et}:{direction}": {"p50": _percentile(h, 50), "p90": _percentile(h, 90), "p99": _percentile(h, 99),
                                  "max": h[-1][0], "nodes": sum(n for _, n in h)}
            for (et, direction), h in sorted(hist.items()) for h in [sorted(h)]
        }
        if graph.has(A.GRAPH_COMPONENTS):
            out["components"] = A.component_summary(read_graph_table(spark, graph, A.GRAPH_COMPONENTS))
    return out
