"""Graph build job: clean tables -> one committed graph version (all or nothing).

``build_graph`` reads ``clean/events``, ``clean/items`` and ``clean/users`` at their current
Delta versions, extends the id maps (append-only), overwrites the node tables and the edge
tables of every edge type of the registry (:mod:`graphlake.graph_build.edge_builders`), calls
the feature and analytics steps, validates what it committed with the graph's Great
Expectations suites and finally appends ONE row to ``graph/manifest``: that row is the commit
point. If anything fails before it, every table this run changed is restored to its previous
version and no graph version appears; readers resolve graph versions through the manifest
(:func:`graphlake.graph_build.manifest.load_graph_version`), so they never see a partial build.

Example:
    >>> summary = build_graph(spark, "lakehouse", GraphConfig(half_life_days=14))
    >>> summary["graph_version"], summary["edge_counts"]["user__click__item"]
    (0, 181234)
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid

from graphlake.core import lake, tables
from graphlake.core.edge_types import parse_edge_type
from graphlake.core.errors import InputNotFoundError
from graphlake.core.quality import run_suites
from graphlake.etl import schema as S
from graphlake.graph_build import schema as G
from graphlake.graph_build.analytics import graph_stats
from graphlake.graph_build.config import GraphConfig, config_hash, config_json
from graphlake.graph_build.edge_builders import EdgeInputs, edge_families, open_family
from graphlake.graph_build.edges import check_until_date, events_until, reference_micros
from graphlake.graph_build.features import build_features, feature_spec
from graphlake.graph_build.ids import new_ids_by_type
from graphlake.graph_build.manifest import (
    GraphNotFoundError,
    GraphVersion,
    load_graph_version,
    manifest_row,
    read_graph_table,
    table_rows,
)
from graphlake.graph_build.nodes import node_keys, node_table
from graphlake.graph_build.quality import graph_suites

log = logging.getLogger(__name__)
__all__ = ["GraphBuildError", "build_graph", "validate_graph", "load_graph_version", "read_graph_table"]

_INPUTS = ((tables.CLEAN_EVENTS, S.CLEAN_EVENTS_SCHEMA), (tables.CLEAN_ITEMS, S.CLEAN_ITEMS_SCHEMA),
           (tables.CLEAN_USERS, S.CLEAN_USERS_SCHEMA))


class GraphBuildError(RuntimeError):
    """The build failed; no graph version was committed and the touched tables were restored.
    ``summary`` holds the GE summary when a data-quality check failed."""

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary


class _Writes:
    """The tables one build touches: versions before, versions written, and the rollback."""

    def __init__(self, lake_dir: str, run_id: str, graph_version: int):
        self.lake_dir, self.before, self.written, self.outputs = lake_dir, {}, {}, {}
        self.meta = {"graphlake.job": "graph_build", "graphlake.run_id": run_id, "graph.version": str(graph_version)}

    def path(self, name: str) -> str:
        return tables.table_path(self.lake_dir, name)

    def snapshot(self, name: str) -> int | None:
        if name not in self.before:
            self.before[name] = lake.table_version(self.path(name))
        return self.before[name]

    def write(self, name: str, df, mode: str = "overwrite", overwrite_schema: bool = False) -> lake.WriteResult:
        read_version = self.snapshot(name)
        res = lake.write_table(df, self.path(name), mode=mode, read_version=read_version,
                               overwrite_schema=overwrite_schema and read_version is not None and mode == "overwrite",
                               metadata=self.meta)
        self.written[name] = self.outputs[name] = res.version
        return res

    def keep(self, name: str, version: int) -> int:
        self.outputs[name] = version
        return version

    def rollback(self) -> dict:
        restored = {}
        for name, version in self.written.items():
            path, before = self.path(name), self.before[name]
            try:
                now = lake.table_version(path)
                if now != version:
                    restored[name] = f"left at version {now}: another writer committed after this run's {version}"
                elif before is None:
                    restored[name] = "created by this run; left in place (no graph version references it)"
                else:
                    restored[name] = f"restored to version {before} as version {lake.restore(path, before)}"
            except Exception as exc:  # keep restoring the others; report this one
                restored[name] = f"RESTORE FAILED: {exc}"
        return restored


def read_inputs(spark, lake_dir: str) -> tuple[dict, dict]:
    """The graph's input tables at their current Delta versions: ``({table: version or None},
    {table: DataFrame})`` (an absent ``clean/items`` / ``clean/users`` is an empty frame).

    Raises:
        InputNotFoundError: no ``clean/events`` in the lake.
    """
    events_path = tables.table_path(lake_dir, tables.CLEAN_EVENTS)
    if not lake.table_exists(events_path):
        raise InputNotFoundError(f"lake: no {tables.CLEAN_EVENTS} under {lake_dir!r} (run `graphlake etl` or "
                                "`graphlake import` first)")
    versions, frames = {}, {}
    for name, schema in _INPUTS:
        path = tables.table_path(lake_dir, name)
        versions[name] = lake.table_version(path)
        frames[name] = (lake.read_table(spark, path, version=versions[name]) if versions[name] is not None
                        else spark.createDataFrame([], schema))
    return versions, frames


def _previous(spark, lake_dir: str) -> GraphVersion | None:
    try:
        return load_graph_version(spark, lake_dir)
    except GraphNotFoundError:
        return None


def build_graph(spark, lake_dir: str, config: GraphConfig | None = None, validate: bool = True,
                build_docs: bool = True, until_date: str | None = None) -> dict:
    """Build and commit the next graph version from the lake's clean tables.

    Args:
        spark: SparkSession.
        lake_dir: lake root (with ``clean/events``; ``clean/items`` and ``clean/users`` optional).
        config: :class:`GraphConfig` (default rules when ``None``).
        validate: run the graph's GE suites before committing (a failure rolls the build back).
        build_docs: write the GE Data Docs under ``<lake>/_reports/data_docs``.
        until_date: ``YYYY-MM-DD``: only events of ``dt <= until_date`` (an orchestrated run for a
            logical date, also when it is a backfill after later dates were loaded); ``None``: all.

    Returns:
        JSON-able summary: ``graph_version``, ``config_hash``, ``reference_ts_us``, ``inputs``
        {table: Delta version}, ``outputs`` {graph table: Delta version, as in the manifest row},
        ``manifest_version`` (the manifest's Delta version with this row), ``node_counts``,
        ``edge_counts``, ``features`` / ``stats`` (tables written), ``feature_spec`` (names, dims,
        cardinalities per node type, also in the manifest), ``validation`` (GE summary), ``seconds``.

    Raises:
        FileNotFoundError: no ``clean/events`` in the lake.
        GraphBuildError: any step failed (tables restored, no manifest row).
    """
    config = GraphConfig() if config is None else config
    if not isinstance(config, GraphConfig):
        raise TypeError(f"config: expected GraphConfig, got {type(config).__name__}")
    check_until_date(until_date)
    started, run_id = time.time(), uuid.uuid4().hex[:16]
    inputs, frames = read_inputs(spark, lake_dir)
    frames[tables.CLEAN_EVENTS] = events_until(frames[tables.CLEAN_EVENTS], until_date)
    previous = _previous(spark, lake_dir)
    graph_version = 0 if previous is None else previous.graph_version + 1
    writes = _Writes(lake_dir, run_id, graph_version)
    writes.snapshot(tables.GRAPH_MANIFEST)
    try:
        summary = _build(spark, lake_dir, config, frames, previous, graph_version, writes, validate, build_docs)
        outputs = dict(sorted(writes.outputs.items()))
        row = manifest_row(spark, graph_version, config_hash(config), config_json(config), summary["reference_ts_us"],
                           inputs, outputs, summary["node_counts"], summary["edge_counts"],
                           summary["feature_spec"])
        committed = writes.write(tables.GRAPH_MANIFEST, row, mode="append")  # the commit point
    except BaseException as exc:
        restored = writes.rollback()
        if not isinstance(exc, Exception):
            raise
        raise GraphBuildError(f"graph build {run_id} (graph version {graph_version}) failed, nothing committed: "
                              f"{exc}\nrolled back: {restored}", getattr(exc, "summary", None)) from exc
    summary.update(graph_version=graph_version, run_id=run_id, until_date=until_date, config_hash=config_hash(config),
                   inputs=inputs, outputs=outputs, manifest_version=committed.version, seconds=round(time.time() - started, 2))
    log.info("graph version %d committed in %.1f s", graph_version, summary["seconds"])
    return summary


def _id_maps(spark, writes: _Writes, keys: dict, previous: GraphVersion | None, graph_version: int) -> tuple[dict, dict]:
    """Extend every ``graph/id_map_<type>``; returns ({type: committed full map}, {type: nodes}).

    A type with no key at all (e.g. no queries in the logs) is left out of the graph version.
    """
    existing, n_old, latest, known = {}, {}, {}, {}
    for node_type in keys:
        name = tables.id_map(node_type)
        latest[node_type] = writes.snapshot(name)
        known[node_type] = previous.table(name).version if previous is not None and previous.has(name) else None
        existing[node_type] = None
        n_old[node_type] = 0
        if known[node_type] is not None:
            existing[node_type] = lake.read_table(spark, writes.path(name), version=known[node_type])
            n_old[node_type] = table_rows(writes.path(name), known[node_type])
    fresh, n_new = new_ids_by_type(existing, keys, graph_version, bases=n_old)
    id_maps, counts = {}, {}
    for node_type in keys:
        name, old = tables.id_map(node_type), existing[node_type]
        if n_old[node_type] + n_new[node_type] == 0:
            continue
        if old is not None and latest[node_type] == known[node_type]:  # append the new keys, conflict-checked
            version = (writes.write(name, fresh[node_type], mode="append").version if n_new[node_type]
                       else writes.keep(name, known[node_type]))
        else:  # first build, or commits no graph version references (a failed run): rewrite the map
            full = fresh[node_type] if old is None else \
                old.select(G.KEY, G.NODE_ID, G.ADDED_IN).unionByName(fresh[node_type])
            version = writes.write(name, full, mode="overwrite").version
        id_maps[node_type] = lake.read_table(spark, writes.path(name), version=version)
        counts[node_type] = n_old[node_type] + n_new[node_type]
    return id_maps, counts


def _build(spark, lake_dir, config, frames, previous, graph_version, writes, validate, build_docs) -> dict:
    events, items, users = frames[tables.CLEAN_EVENTS], frames[tables.CLEAN_ITEMS], frames[tables.CLEAN_USERS]
    reference_us = reference_micros(events, config)
    id_maps, node_counts = _id_maps(spark, writes, node_keys(events, items, users, config), previous, graph_version)
    for node_type, id_map in id_maps.items():
        writes.write(tables.nodes(node_type), node_table(node_type, id_map, items, users))

    edge_counts, committed = {}, {}
    inputs = EdgeInputs(events, items, users, id_maps, config, reference_us)
    for family in edge_families():  # the registry, in its order; shared frames persisted while written
        with open_family(family, inputs, persist=True, only_present=True) as makers:
            for edge_type, make in makers.items():
                name = tables.edges(*edge_type)
                res = writes.write(name, make())
                edge_counts[edge_type.name] = res.rows_added
                committed[edge_type.name] = lake.read_table(spark, writes.path(name), version=res.version)

    features, spec = _features(spark, writes, frames, id_maps, config)
    validation = None
    if validate:  # before the analytics: bad tables fail with the gate's summary, not inside PageRank
        validation = _validate(spark, lake_dir, writes.outputs, node_counts, edge_counts, config, build_docs)
    stats = _stats(spark, writes, node_counts, committed)
    return {"reference_ts_us": reference_us, "node_counts": node_counts, "edge_counts": edge_counts,
            "features": features, "feature_spec": spec, "stats": stats, "validation": validation}


def _features(spark, writes, frames, id_maps, config) -> tuple[list, dict]:
    """Write ``graph/features_<type>``; returns (tables written, the feature spec for the manifest)."""
    written, built = [], build_features(spark, dict(frames), dict(id_maps), config)
    for node_type, df in sorted(built.items()):
        if node_type not in id_maps:
            raise ValueError(f"build_features returned features for {node_type!r}, which has no nodes "
                             f"(node types: {sorted(id_maps)})")
        writes.write(tables.features(node_type), df, overwrite_schema=True)
        written.append(tables.features(node_type))
    return written, feature_spec(built)


def _stats(spark, writes, node_counts, committed) -> list:
    written = []
    for name, df in sorted(graph_stats(spark, dict(node_counts), dict(committed)).items()):
        writes.write(name, df, overwrite_schema=True)
        written.append(name)
    return written


def _feature_dims(config: GraphConfig) -> dict:
    return {G.TEXT: config.text_dim, G.IMAGE: config.image_dim}


def _validate(spark, lake_dir, outputs, node_counts, edge_counts, config, build_docs) -> dict:
    def read(name):
        return lake.read_table(spark, tables.table_path(lake_dir, name), version=outputs[name])

    types = sorted(node_counts)
    edges = {name: read(tables.edges(*parse_edge_type(name))) for name in edge_counts}
    features = {t: read(tables.features(t)) for t in types if tables.features(t) in outputs}
    batches = graph_suites({t: read(tables.id_map(t)) for t in types}, {t: read(tables.nodes(t)) for t in types},
                           edges, features, node_counts, edge_counts, _feature_dims(config))
    return run_suites(batches, lake=lake_dir, build_docs=build_docs)


def validate_graph(spark, lake_dir: str, version: int | None = None, build_docs: bool = True) -> dict:
    """Re-run the graph suites on a committed graph version (default: the latest).

    Raises:
        GraphNotFoundError: no such graph version.
        graphlake.core.quality.QualityError: a check failed (``summary`` attached).
    """
    graph = load_graph_version(spark, lake_dir, version)
    outputs = {name: t.version for name, t in graph.tables.items()}
    known = {f.name for f in dataclasses.fields(GraphConfig)}
    config = GraphConfig(**{k: v for k, v in graph.config.items() if k in known})
    return _validate(spark, lake_dir, outputs, graph.node_counts, graph.edge_counts, config, build_docs)
