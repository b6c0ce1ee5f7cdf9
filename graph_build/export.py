"""``graphlake graph export``: the training snapshot of a committed graph version.

A thin job: resolve the graph version through the manifest, read its edge and feature tables at
the Delta versions it names, and hand them to :func:`graphlake.graph_build.snapshot.export_snapshot`
(layout, memory cost and how it is written: that module's docstring). The default folder is
``<lake>/snapshots/graph_v<N>``; an existing complete snapshot of the same graph version is
reused (the tables of a graph version never change), unless ``overwrite`` — also one that another
job (a second training run of the same graph version) published while this one was writing.

Example:
    >>> summary = export_graph(spark, "lakehouse")            # latest graph version
    >>> snap = open_snapshot(summary["path"])
"""

from __future__ import annotations

import logging
import os
import time

from graphlake.core import tables
from graphlake.core.edge_types import parse_edge_type
from graphlake.core.errors import UsageError
from graphlake.graph_build.manifest import load_graph_version, read_graph_table
from graphlake.graph_build.snapshot import export_snapshot, open_snapshot

log = logging.getLogger(__name__)


def export_graph(spark, lake_dir: str, version: int | None = None, out_dir: str | None = None,
                 overwrite: bool = False, num_partitions: int | None = None) -> dict:
    """Export graph version ``version`` (default: latest) as a training snapshot.

    Args:
        spark: SparkSession.
        lake_dir: lake root with a committed graph version.
        version: graph version; ``None`` takes the latest.
        out_dir: snapshot folder (default ``<lake>/snapshots/graph_v<N>``); on a cluster it must be
            a filesystem that the executors and the driver share.
        overwrite: re-export even when a snapshot of this graph version is already there.
        num_partitions: Spark tasks per table (default: the default parallelism).

    Returns:
        ``{"graph_version", "path", "reused", "edge_types" {name: nnz}, "node_types" {type: n},
        "total_bytes", "seconds"}``.

    Raises:
        GraphNotFoundError: no such graph version. ValueError: ``out_dir`` holds a snapshot of
        another graph version (pass ``overwrite=True`` to replace it).
    """
    started = time.time()
    graph = load_graph_version(spark, lake_dir, version)
    gv = graph.graph_version
    out_dir = os.path.abspath(out_dir or tables.snapshot_dir(lake_dir, gv))
    reused = os.path.exists(out_dir) and not overwrite
    if not reused:
        edges = {name: read_graph_table(spark, graph, tables.edges(*parse_edge_type(name))) for name in graph.edge_counts}
        features = {t: read_graph_table(spark, graph, tables.features(t)) for t in graph.node_types
                    if tables.features(t) in graph.tables}
        try:
            manifest = export_snapshot(spark, edges, features, graph.node_counts, out_dir, gv,
                                       graph.feature_spec, num_partitions=num_partitions, overwrite=overwrite)
        except FileExistsError:
            # another job (a second training run of the same graph version, say) published it first: its
            # snapshot is the same one (the export is deterministic), so this job reads it
            if overwrite or not os.path.isdir(out_dir):
                raise
            reused = True
    if reused:
        manifest = _existing_manifest(out_dir, gv)
    log.info("snapshot of graph version %d at %s (%s)", gv, out_dir, "reused" if reused else "written")
    return {"graph_version": gv, "path": out_dir, "reused": reused,
            "edge_types": {n: e["nnz"] for n, e in sorted(manifest["edge_types"].items())},
            "node_types": {t: e["num_nodes"] for t, e in sorted(manifest["node_types"].items())},
            "total_bytes": manifest["total_bytes"], "seconds": round(time.time() - started, 2)}


def _existing_manifest(out_dir: str, graph_version: int) -> dict:
    """The manifest of the snapshot at ``out_dir``, which must be one of ``graph_version``."""
    snap = open_snapshot(out_dir)
    if snap.graph_version != graph_version:
        raise UsageError(f"out_dir: {out_dir} holds a snapshot of graph version {snap.graph_version}, not "
                         f"{graph_version} (pass overwrite=True to replace it)")
    return snap.manifest
