"""``graphlake embed-new``: embeddings of users and items that appeared after the graph version of
a published asset, without retraining, appended to a new asset version.

Steps (a thin job over the lake; every transform is the graph build's own):

1. **source**: the asset versions to extend (``production`` by default) -> their training run,
   its graph version (manifest: id maps, feature spec, config, decay reference time) and the
   node / edge types the run modelled.
2. **new nodes** (Spark): the keys of the current clean tables
   (:func:`graphlake.graph_build.nodes.node_keys`) that the graph version's id maps lack get provisional
   ids after the graph's (:func:`graphlake.graph_build.ids.new_ids_by_type`, ascending key order; nothing
   is written to the id maps: the next graph build assigns the real ids). New shops, brands and
   categories are new nodes too when the run modelled their type, so a new item can hang off a
   new shop.
3. **features** (Spark): :func:`graphlake.graph_build.features.build_features` with ``fitted`` = the graph
   version's feature spec, so new nodes are standardised with the build's means/stds/medians
   and indexed with its vocabularies (a value outside them is "other"), text embedded by the
   same model.
4. **edges** (Spark): the graph build's edge registry
   (:mod:`graphlake.graph_build.edge_builders`), its ``inductive`` families (behaviour edges with
   the graph's weights and decay reference, ``belongs_to``, ``child_of``, ``follows``,
   ``searched``...) over the events that touch a new node on the family's event keys and the
   catalogue rows, kept when an endpoint is new and the run trains on the edge type
   (:func:`new_edge_frames`). Derived item-item edges (co-view, co-purchase) are not inductive:
   their per-item top-k needs the whole graph; the next build adds them.
5. **embed**: :func:`graphlake.training.inductive.embed_new_nodes` on the run's checkpoint (messages flow
   from the existing graph into new nodes, never back, so every existing embedding stays valid).
   The new nodes' features and edges are brought to this process for it: a bounded set
   (``max_new_nodes``, default 1M, is checked with a Spark count before anything is collected;
   above it, rebuild the graph and retrain instead).
6. **publish**: per asset a new version = the source version's trained rows + one
   ``origin = inductive`` row per new node (``node_id`` = the provisional id), its files (the
   item index rebuilt over all rows) and a registry row ``candidate`` with ``base_version`` =
   the source version, the run's metrics and a note; claimed, written and registered exactly as
   :func:`graphlake.assets.publish.publish` does (a concurrent publish gets a conflict, a failure marks the
   row failed). Gate and promote it like any version.

Re-running embed-new on a version it made recomputes every post-graph node from the current
clean tables (their histories grew), so versions never stack stale inductive rows.

Example:
    >>> summary = embed_new(spark, "lakehouse")                 # extend the production versions
    >>> summary["new_nodes"], summary["assets"]["item_embeddings"]["version"]
    ({'item': 12, 'user': 40}, 3)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Collection
from functools import reduce

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from graphlake.assets import schema as A
from graphlake.assets.bundle import bundle_dir, write_bundle
from graphlake.assets.config import AssetConfig
from graphlake.assets.outputs import write_outputs
from graphlake.assets.publish import (
    claim_versions,
    finished_run,
    item_like_types,
    mark_failed,
    promote_results,
    register_versions,
    run_metrics,
    score_and_history,
)
from graphlake.assets.registry import AssetError, AssetVersion, asset_table, read_registry, resolve
from graphlake.core import lake, tables
from graphlake.core.config import load_config
from graphlake.core.errors import UsageError
from graphlake.etl import schema as S
from graphlake.graph_build import schema as G
from graphlake.graph_build.config import GraphConfig
from graphlake.graph_build.edge_builders import EdgeInputs, edge_families, open_family
from graphlake.graph_build.features import build_features
from graphlake.graph_build.ids import new_ids_by_type
from graphlake.graph_build.job import read_inputs
from graphlake.graph_build.manifest import load_graph_version, read_graph_table
from graphlake.graph_build.nodes import node_keys, normalise_query
from graphlake.graph_build.snapshot import open_snapshot
from graphlake.training.config import TrainConfig
from graphlake.training.inductive import embed_new_nodes
from graphlake.training.run import TrainRun
from graphlake.training.run_data import resolve_targets, run_edge_types, trained_node_types

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_NODES = 1_000_000
_NEW = "_gl_new"
_EDGE_TYPE = "_gl_edge_type"


def embed_new(spark, lake_dir: str, version="production", node_types=None, config: AssetConfig | None = None,
              max_new_nodes: int = DEFAULT_MAX_NEW_NODES, promote: bool = False, build_docs: bool = True) -> dict:
    """Embed the nodes that arrived after the graph version of ``version`` and publish them.

    Args:
        spark: SparkSession.
        lake_dir: lake root.
        version: the source asset versions: ``"production"`` (default), ``"latest"`` or an int
            (the same number for every asset; they must all come from one training run).
        node_types: the assets to extend, by node type (default: the published ``user`` and
            ``item`` assets).
        config: :class:`AssetConfig` (index options of the new item index).
        max_new_nodes: refuse (before collecting anything) when more new nodes than this arrived.
        promote: run the quality gate on the new versions and promote those that pass.
        build_docs: write the gate's Great Expectations Data Docs.

    Returns:
        ``{"run_id", "graph_version", "source_versions" {asset: N}, "new_nodes" {type: n},
        "new_edges" {edge type: n}, "assets": {asset: {"version", "rows", "new_rows",
        "base_version", "dim", "table_version", "files", "index", "status"[, "gate"]}}, "seconds"}``.

    Raises:
        AssetError: nothing new arrived, too many new nodes, the sources come from different
            runs, or the graph version lacks what re-encoding needs (its recorded vocabularies).
        PublishConflictError: another publish changed the registry first; nothing was written.
    """
    started = time.time()
    config = config or AssetConfig()
    if not isinstance(config, AssetConfig):
        raise TypeError(f"config: expected AssetConfig, got {type(config).__name__}")
    if isinstance(max_new_nodes, bool) or not isinstance(max_new_nodes, int) or max_new_nodes < 1:
        raise UsageError(f"max_new_nodes: expected an int >= 1, got {max_new_nodes!r}")
    sources = _sources(lake_dir, version, node_types)
    run_ids = sorted({v.run_id for v in sources.values()})
    if len(run_ids) != 1:
        raise AssetError(f"version: the assets {sorted(sources)} at {version!r} come from different training runs "
                         f"{run_ids}; pass node_types of one run or an explicit version")
    run_id, run_dir, spec = finished_run(spark, lake_dir, run_ids[0])
    ctx = _context(spark, lake_dir, spec)
    fresh, counts = _new_ids(spark, lake_dir, ctx, max_new_nodes)
    wanted = {v.node_type for v in sources.values()}
    if not any(counts.get(t) for t in wanted):
        raise AssetError(f"lake: no new {sorted(wanted)} keys in the clean tables since graph version "
                         f"{ctx['graph'].graph_version} (run {run_id}); nothing to embed")
    log.info("embed-new: new nodes %s (%.1f s)", {t: n for t, n in counts.items() if n}, time.time() - started)
    new_nodes = _features(spark, ctx, fresh, counts)
    log.info("embed-new: features (%.1f s)", time.time() - started)
    new_edges = _edges(spark, ctx, fresh, counts)
    log.info("embed-new: edges (%.1f s)", time.time() - started)

    emb = embed_new_nodes(run_dir, new_nodes, {e: v for e, v in new_edges.items() if len(v[0])})
    log.info("embed-new: embedded (%.1f s)", time.time() - started)
    summary = {"run_id": run_id, "graph_version": spec["graph_version"],
               "source_versions": {a: v.version for a, v in sorted(sources.items())},
               "new_nodes": {t: int(n) for t, n in sorted(counts.items()) if n},
               "new_edges": {e: int(len(v[0])) for e, v in sorted(new_edges.items())}}
    summary["assets"], summary["outputs"] = _publish(spark, lake_dir, run_id, run_dir, spec, sources, fresh,
                                                     ctx["bases"], emb, config)
    if promote:
        promote_results(spark, lake_dir, summary["assets"], config, build_docs)
    summary["seconds"] = round(time.time() - started, 1)
    return summary


# ---------------------------------------------------------------- 1. source
def _sources(lake_dir: str, version, node_types) -> dict[str, AssetVersion]:
    rows, _ = read_registry(lake_dir)
    published = sorted({r["node_type"] for r in rows})
    if node_types is None:
        node_types = [t for t in (G.USER, G.ITEM) if t in published]
        if not node_types:
            raise AssetError(f"lake: no user or item embeddings are published under {lake_dir!r} "
                             "(run `graphlake publish` first)")
    if isinstance(node_types, str) or not node_types:
        raise UsageError(f"node_types: expected a non-empty list of node types, got {node_types!r}")
    return {A.asset_name(t): AssetVersion.from_row(resolve(rows, A.asset_name(t), version), lake_dir)
            for t in node_types}


def _context(spark, lake_dir: str, spec: dict) -> dict:
    graph = load_graph_version(spark, lake_dir, spec["graph_version"])
    snapshot = open_snapshot(spec["snapshot"])
    train_config = load_config(TrainConfig, spec["config"])
    edge_types = run_edge_types(snapshot, train_config, resolve_targets(snapshot, train_config))
    _, frames = read_inputs(spark, lake_dir)
    return {"graph": graph, "snapshot": snapshot, "config": load_config(GraphConfig, graph.config),
            "edge_types": edge_types, "node_types": trained_node_types(edge_types), "frames": frames,
            "reference_us": graph.reference_ts_us,
            "bases": {t: int(n) for t, n in graph.node_counts.items()}}  # first provisional id per type


# ---------------------------------------------------------------- 2. new nodes
def _new_ids(spark, lake_dir: str, ctx: dict, max_new_nodes: int) -> tuple[dict, dict]:
    graph, frames = ctx["graph"], ctx["frames"]
    keys = node_keys(frames[tables.CLEAN_EVENTS], frames[tables.CLEAN_ITEMS], frames[tables.CLEAN_USERS],
                     ctx["config"])
    types = [t for t in ctx["node_types"] if t in keys]
    existing = {t: read_graph_table(spark, graph, tables.id_map(t)) for t in types}
    fresh, counts = new_ids_by_type(existing, {t: keys[t] for t in types}, graph.graph_version + 1,
                                    bases={t: ctx["bases"][t] for t in types})
    total = sum(counts.values())
    if total > max_new_nodes:
        raise AssetError(f"max_new_nodes: {total} nodes arrived after graph version {graph.graph_version} "
                         f"({ {t: n for t, n in counts.items() if n} }), more than {max_new_nodes}: build a new "
                         "graph version and retrain (or raise max_new_nodes)")
    return fresh, counts


def _full_map(spark, ctx: dict, fresh: dict, node_type: str) -> DataFrame | None:
    if node_type not in fresh:
        return None
    old = read_graph_table(spark, ctx["graph"], tables.id_map(node_type)).select(G.KEY, G.NODE_ID)
    return old.unionByName(fresh[node_type].select(G.KEY, G.NODE_ID))


# ---------------------------------------------------------------- 3. features
def _features(spark, ctx: dict, fresh: dict, counts: dict) -> dict:
    types = [t for t in sorted(fresh) if counts.get(t)]
    snapshot, frames = ctx["snapshot"], ctx["frames"]
    inputs = {"events": frames[tables.CLEAN_EVENTS], "items": frames[tables.CLEAN_ITEMS],
              "users": frames[tables.CLEAN_USERS]}
    try:
        built = build_features(spark, inputs, {t: fresh[t] for t in types}, ctx["config"],
                               fitted=ctx["graph"].feature_spec)
    except ValueError as exc:
        raise AssetError(f"graph version {ctx['graph'].graph_version}: new nodes cannot be encoded like its "
                         f"nodes: {exc}") from exc
    out = {}
    for t in types:
        names = [n for n in snapshot.feature_names(t) if n in built[t].columns]
        pdf = built[t].select(G.NODE_ID, *names).orderBy(G.NODE_ID).toPandas()  # bounded: max_new_nodes
        base = ctx["bases"][t]
        if not np.array_equal(pdf[G.NODE_ID].to_numpy(), np.arange(base, base + counts[t])):
            raise AssetError(f"{t}: new node ids are not contiguous from {base} (id assignment changed?)")
        feats = {}
        for n in names:
            like = snapshot.features(t, n)
            width = like.shape[1] if like.ndim == 2 else 1
            if width == 0:  # e.g. no image vectors in the catalogue: the column is NULL
                mat = np.zeros((len(pdf), 0), like.dtype)
            elif isinstance(built[t].schema[n].dataType, T.ArrayType):
                mat = np.stack([np.asarray(v, like.dtype) for v in pdf[n]])
            else:
                mat = pdf[n].to_numpy().astype(like.dtype).reshape(-1, 1)
            feats[n] = mat.reshape(len(pdf), width)
        out[t] = {"count": int(counts[t]), "features": feats}
    return out


# ---------------------------------------------------------------- 4. edges
def _touching(df: DataFrame, column: str, fresh: DataFrame | None) -> DataFrame:
    """``df`` rows whose ``column`` is a new key (a column flag, for an OR across columns)."""
    if fresh is None:
        return df.withColumn(f"{_NEW}_{column}", F.lit(False))
    keys = fresh.select(F.col(G.KEY).alias(f"{_NEW}_k_{column}"), F.lit(True).alias(f"{_NEW}_{column}"))
    joined = df.join(keys, F.trim(F.col(column)) == F.col(f"{_NEW}_k_{column}"), "left").drop(f"{_NEW}_k_{column}")
    return joined.withColumn(f"{_NEW}_{column}", F.coalesce(F.col(f"{_NEW}_{column}"), F.lit(False)))


def _new_rows(df: DataFrame, keys: tuple[tuple[str, str], ...], fresh: dict) -> DataFrame:
    """``df`` rows whose key in one of ``keys`` (``(column, node type)`` pairs) is a new node."""
    for column, node_type in keys:
        df = _touching(df, column, fresh.get(node_type))
    cond = F.lit(False)
    for column, _ in keys:
        cond = cond | F.col(f"{_NEW}_{column}")
    return df.filter(cond).drop(*[f"{_NEW}_{column}" for column, _ in keys])


def new_edge_frames(inputs: EdgeInputs, fresh: dict, bases: dict, wanted: Collection[str]) -> dict[str, DataFrame]:
    """The new nodes' edges, per edge type: the registry's ``inductive`` families
    (:func:`graphlake.graph_build.edge_builders.edge_families`) over the events that touch a new
    node on the family's ``event_keys`` (the ``query`` column normalised first, like the build's
    query keys), for the edge types the run trains on, kept when an endpoint is new. Lazy: no
    Spark job runs.

    Args:
        inputs: the current clean tables, the full id maps (the graph's ids + the provisional
            ones), the graph version's config and decay reference time.
        fresh: ``{node type: the new keys' id map (key, node_id)}``; a type without new keys may
            be absent.
        bases: ``{node type: first provisional id}``: ids ``>= base`` are new nodes.
        wanted: the run's edge type names (``user__click__item``...).

    Returns:
        ``{edge type name: DataFrame (src_id, dst_id, weight, count, first_ts, last_ts)}`` with
        an entry for every wanted inductive edge type whose endpoint types have id maps (maybe empty).

    Example:
        >>> frames = new_edge_frames(inputs, {"user": new_users}, {"user": 940, "item": 1682},
        ...                          {"user__click__item", "item__co_view__item"})
        >>> sorted(frames)                                # co_view is not inductive
        ['user__click__item']
    """
    made: dict[str, DataFrame] = {}
    for family in edge_families(inductive=True):
        types = [t for t in family.types(inputs.config) if t.name in wanted]
        if not types:
            continue
        family_inputs = inputs
        if family.event_keys:
            events = inputs.events
            if any(column == S.QUERY for column, _ in family.event_keys):
                events = events.withColumn(S.QUERY, normalise_query(F.col(S.QUERY)))
            family_inputs = dataclasses.replace(inputs, events=_new_rows(events, family.event_keys, fresh))
        with open_family(family, family_inputs, types) as makers:
            for edge_type, make in makers.items():
                src, _, dst = edge_type
                made[edge_type.name] = make().filter((F.col(G.SRC_ID) >= bases[src]) | (F.col(G.DST_ID) >= bases[dst]))
    return made


def _edges(spark, ctx: dict, fresh: dict, counts: dict) -> dict:
    frames = ctx["frames"]
    maps = {t: _full_map(spark, ctx, fresh, t) for t in fresh}
    inputs = EdgeInputs(frames[tables.CLEAN_EVENTS], frames[tables.CLEAN_ITEMS], frames[tables.CLEAN_USERS], maps,
                        ctx["config"], ctx["reference_us"])
    made = new_edge_frames(inputs, fresh, ctx["bases"], set(ctx["edge_types"]))
    parts = [df.select(F.lit(name).alias(_EDGE_TYPE), G.SRC_ID, G.DST_ID, G.WEIGHT) for name, df in sorted(made.items())]
    out = {name: (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)) for name in made}
    if parts:  # one job for every edge type; new edges only: bounded by the new nodes' degrees
        pdf = reduce(DataFrame.unionByName, parts).orderBy(_EDGE_TYPE, G.SRC_ID, G.DST_ID).toPandas()
        for name, grp in pdf.groupby(_EDGE_TYPE, sort=True):
            out[name] = (grp[G.SRC_ID].to_numpy(np.int64), grp[G.DST_ID].to_numpy(np.int64),
                         grp[G.WEIGHT].to_numpy(np.float32))
    return out


# ---------------------------------------------------------------- 6. publish
def _publish(spark, lake_dir, run_id, run_dir, spec, sources, fresh, bases, emb, config) -> dict:
    score, history = score_and_history(spec)

    notes = {a: f"embed-new from v{v.version}: {len(emb.get(v.node_type, ()))} new nodes of run {run_id}"
             for a, v in sources.items()}
    types = [v.node_type for v in sources.values()]
    claimed = claim_versions(spark, lake_dir, run_id, spec, types, json.dumps(run_metrics(run_dir), sort_keys=True),
                     base_versions={a: v.version for a, v in sources.items()})
    results = {}
    try:
        for node_type, (asset, version) in claimed.items():
            src = sources[asset]
            new_keys = fresh.get(node_type)
            vectors = emb.get(node_type, np.zeros((0, src.dim), np.float32))
            source = src.read(spark).filter(F.col(A.ORIGIN) == A.ORIGIN_TRAINED)
            trained = source.select(A.KEY, A.NODE_ID, A.EMBEDDING, A.ORIGIN)
            parts = [trained]
            if len(vectors):
                base = bases[node_type]
                pdf = pd.DataFrame({A.NODE_ID: np.arange(base, base + len(vectors), dtype=np.int64),
                                    A.EMBEDDING: list(vectors.astype(np.float32))})
                new_vecs = spark.createDataFrame(pdf, f"{A.NODE_ID} long, {A.EMBEDDING} array<float>")
                parts.append(new_keys.select(G.KEY, G.NODE_ID).join(new_vecs, G.NODE_ID)
                             .select(A.KEY, A.NODE_ID, A.EMBEDDING, F.lit(A.ORIGIN_INDUCTIVE).alias(A.ORIGIN)))
            df = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
            df = df.withColumn(A.ASSET_VERSION, F.lit(version).cast("long"))
            res = lake.write_table(df, asset_table(lake_dir, asset), mode="overwrite", partition_by=[A.ASSET_VERSION],
                                   replace_partitions={A.ASSET_VERSION: [version]},
                                   metadata={"graphlake.job": "embed-new", "graphlake.run_id": run_id,
                                             "graphlake.asset_version": str(version),
                                             "graphlake.base_version": str(src.version)})
            out = bundle_dir(lake_dir, asset, version)
            if os.path.exists(out):  # left by a killed run of the same (failed) version number
                shutil.rmtree(out)
            meta = write_bundle(out, TrainRun(run_dir).embeddings_path(node_type), df.select(A.KEY, A.NODE_ID),
                                {"graph_version": spec["graph_version"], "run_id": run_id, "snapshot": spec["snapshot"],
                                 "score": score, "history_edge_types": history,
                                 "config_hash": spec["config_hash"], "asset": asset, "version": version,
                                 "node_type": node_type, "base_version": src.version,
                                 "inductive_rows": int(len(vectors))},
                                with_index=node_type in item_like_types(spec), config=config, extra_vectors=vectors)
            if meta["rows"] != res.rows_added:
                raise AssetError(f"{asset} v{version}: {res.rows_added} table rows but {meta['rows']} vectors")
            results[asset] = {"version": version, "rows": meta["rows"], "new_rows": int(len(vectors)),
                              "base_version": src.version, "dim": meta["dim"], "table_version": res.version,
                              "files": out, "index": meta["index"], "status": A.CANDIDATE}
        outputs = write_outputs(spark, lake_dir, results, config.output_k, run_id) if config.output_k else {}
    except BaseException as exc:
        mark_failed(spark, lake_dir, claimed, f"embed-new failed: {type(exc).__name__}: {exc}")
        raise
    register_versions(spark, lake_dir, results, notes)
    return results, outputs
