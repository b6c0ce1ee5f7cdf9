"""``graphlake publish``: a finished training run -> a new version of each embedding asset.

Steps (a thin job over the lake, the registry and the bundle writer):

1. **claim**: one registry commit adds a ``pending`` row per asset with the next version
   number, against the registry version this publish read. Of two concurrent publishers only
   one can make that commit; the other gets :class:`PublishConflictError` having written nothing.
2. **data**: per asset, a Spark job copies the run's ``train/embeddings_<type>`` partition into
   ``emb/<asset>`` partition ``asset_version=<N>`` (one Delta commit; earlier versions untouched).
3. **files**: vectors, keys and (item-like assets) the FAISS index (:mod:`graphlake.assets.bundle`).
   Then, unless ``output_k`` is 0, the top-K tables for readers without Spark
   (``assets/recommendations``, ``assets/similar_items``: :mod:`graphlake.assets.outputs`).
4. **register**: one registry commit turns the rows into ``candidate`` with the Delta table
   version, row count, dimension, metrics (``evaluation.json`` of the run) and file folder.
   Any failure in 2–4 marks the rows ``failed`` with the reason; readers never see a pending or
   failed version (:func:`graphlake.assets.registry.resolve`).

``promote=True`` then runs the quality gate and promotes each version that passes
(:func:`graphlake.assets.lifecycle.promote`).

Example:
    >>> summary = publish(spark, "lakehouse")                  # the newest training run
    >>> summary["assets"]["item_embeddings"]["version"]
    1
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time

from pyspark.sql import functions as F

from graphlake.assets import schema as A
from graphlake.assets.bundle import bundle_dir, write_bundle
from graphlake.assets.config import AssetConfig
from graphlake.assets.lifecycle import GateFailedError
from graphlake.assets.lifecycle import promote as promote_version
from graphlake.assets.outputs import write_outputs
from graphlake.assets.registry import (
    AssetError,
    RegistryConflictError,
    asset_table,
    code_version,
    commit_registry,
    next_version,
    now,
    read_registry,
    update_registry,
)
from graphlake.core import lake, tables
from graphlake.core.edge_types import parse_edge_type
from graphlake.core.errors import UsageError
from graphlake.graph_build.snapshot import open_snapshot
from graphlake.training.config import TrainConfig
from graphlake.training.job import RUN_ID, embeddings_table, latest_run
from graphlake.training.run import DONE_FILE, TrainRun
from graphlake.training.run_data import resolve_targets
from graphlake.training.scoring import ranking_score

log = logging.getLogger(__name__)


class PublishConflictError(AssetError):
    """A concurrent publish (or other registry change) won; this publish wrote nothing."""


def run_metrics(run_dir: str) -> dict:
    """The ranking metrics of the run's ``evaluation.json`` (``{}`` when it was not evaluated)."""
    ev = TrainRun(run_dir).evaluation()
    if ev is None:
        return {}
    out = {k: float(v) for k, v in ev.items() if k.startswith(("recall@", "ndcg@", "hr@"))
           and isinstance(v, (int, float))}
    cold = ev.get("cold_start")
    if isinstance(cold, dict):
        out.update({f"cold_start_{k}": float(v) for k, v in cold.items()
                    if (k.startswith("recall@") or k.startswith("ndcg@")) and isinstance(v, (int, float))})
    return out


def finished_run(spark, lake_dir: str, run_id: str | None) -> tuple[str, str, dict]:
    """``(run id, run folder, run.json)`` of a finished training run (``None``: the newest).

    Raises:
        AssetError: the run has not finished (no ``DONE``).
        InputNotFoundError: no such run, or no finished run at all.
    """
    run = TrainRun.of(lake_dir, run_id or latest_run(spark, lake_dir)["run_id"])
    spec = run.spec()
    if not run.is_done():
        raise AssetError(f"run_id: training run {run.run_id} did not finish (no {DONE_FILE} in {run.dir}); "
                         "finish it with `graphlake train --resume --run-id ...` first")
    return run.run_id, run.dir, spec


def item_like_types(spec: dict) -> set[str]:
    """Node types that are recommended (destinations of the run's targets, or items by default)."""
    targets = spec["config"].get("targets") or []
    return {parse_edge_type(t).dst for t in targets} or {"item"}


def score_and_history(spec: dict) -> tuple[str, list[str]]:
    """The score the run's vectors rank by (its decoder, or ``dot`` with a popularity prior:
    :func:`graphlake.training.scoring.ranking_score`) and its target edge types (the users' histories)."""
    config = TrainConfig(**spec["config"])
    return ranking_score(config.model_config()), resolve_targets(open_snapshot(spec["snapshot"]), config)


def publish(spark, lake_dir: str, run_id: str | None = None, node_types=None, config: AssetConfig | None = None,
            promote: bool = False, build_docs: bool = True) -> dict:
    """Publish run ``run_id`` (default: the newest finished run) as new asset versions.

    Args:
        spark: SparkSession.
        lake_dir: lake root.
        run_id: training run id (``meta/train_runs``).
        node_types: node types to publish (default: the run's targets' user and item types);
            others on request, e.g. ``["user", "item", "shop"]``.
        config: :class:`AssetConfig` (index options; gate thresholds when ``promote``).
        promote: run the quality gate and promote the versions that pass.
        build_docs: write the gate's Great Expectations Data Docs.

    Returns:
        ``{"run_id", "graph_version", "assets": {asset: {"version", "rows", "dim", "table_version",
        "files", "index", "status"[, "gate"]}}, "outputs": {table: {"asset_version", "rows",
        "table_version"}}, "seconds"}``.

    Raises:
        PublishConflictError: another publish changed the registry first; nothing was written.
        AssetError: the run did not finish or has no embeddings of a requested type.
    """

    started = time.time()
    config = config or AssetConfig()
    if not isinstance(config, AssetConfig):
        raise TypeError(f"config: expected AssetConfig, got {type(config).__name__}")
    run_id, run_dir, spec = finished_run(spark, lake_dir, run_id)
    available = TrainRun(run_dir).embedded_types()
    score, history = score_and_history(spec)
    if node_types is None:  # the run's user and item types; other types on request
        node_types = sorted({parse_edge_type(t)[i] for t in history for i in (0, 2)} & set(available)) or available
    if isinstance(node_types, str) or not node_types:
        raise UsageError(f"node_types: expected a non-empty list of node types, got {node_types!r}")
    missing = [t for t in node_types if t not in available]
    if missing:
        raise AssetError(f"node_types: run {run_id} has no embeddings of {missing} (it has {available}); "
                         "train with those types as targets to publish them")
    meta_common = {"graph_version": spec["graph_version"], "run_id": run_id, "snapshot": spec["snapshot"],
                   "score": score, "history_edge_types": history, "config_hash": spec["config_hash"]}
    metrics = json.dumps(run_metrics(run_dir), sort_keys=True)
    claimed = claim_versions(spark, lake_dir, run_id, spec, list(node_types), metrics)
    results = {}
    try:
        for node_type, (asset, version) in claimed.items():
            results[asset] = _publish_one(spark, lake_dir, run_id, node_type, asset, version,
                                          TrainRun(run_dir).embeddings_path(node_type), node_type in item_like_types(spec),
                                          meta_common, config)
        outputs = write_outputs(spark, lake_dir, results, config.output_k, run_id) if config.output_k else {}
    except BaseException as exc:
        mark_failed(spark, lake_dir, claimed, f"publish failed: {type(exc).__name__}: {exc}")
        raise
    register_versions(spark, lake_dir, results)
    summary = {"run_id": run_id, "graph_version": spec["graph_version"], "assets": results, "outputs": outputs}
    if promote:
        promote_results(spark, lake_dir, results, config, build_docs)
    summary["seconds"] = round(time.time() - started, 1)
    return summary


def promote_results(spark, lake_dir: str, results: dict, config: AssetConfig, build_docs: bool = True) -> None:
    """Gate and promote each new version of ``results`` ({asset: {"version", ...}}, updated in place:
    ``status`` production, or ``gate`` = why the gate failed; production then stays as it was)."""
    for asset, res in results.items():
        try:
            promote_version(spark, lake_dir, asset, res["version"], config, build_docs=build_docs)
            res["status"] = A.PRODUCTION
        except GateFailedError as exc:
            res["gate"] = str(exc)


def claim_versions(spark, lake_dir, run_id, spec, node_types, metrics, base_versions: dict | None = None) -> dict:
    """One registry commit of a ``pending`` row per node type's asset (``base_versions``: {asset:
    the version it extends}, for embed-new); :class:`PublishConflictError` when another change won."""
    rows, read_version = read_registry(lake_dir)
    claimed, stamp, code = {}, now(), code_version()
    new_rows = list(rows)
    for t in node_types:
        asset = A.asset_name(t)
        version = next_version(rows, asset)
        claimed[t] = (asset, version)
        new_rows.append({"asset": asset, "version": version, "node_type": t, "graph_version": spec["graph_version"],
                         "run_id": run_id, "config_hash": spec["config_hash"], "code_version": code, "metrics": metrics,
                         "status": A.PENDING, "note": f"publish of run {run_id} in progress", "created_at": stamp,
                         "updated_at": stamp, "vacuumed": False,
                         **({"base_version": base_versions[asset]} if base_versions and asset in base_versions else {})})
    label = ",".join(f"{a} v{v}" for a, v in claimed.values())
    try:
        commit_registry(spark, lake_dir, new_rows, read_version, "publish-claim", label, None)
    except RegistryConflictError as exc:
        raise PublishConflictError(
            f"publish conflict: another publish (or promote) changed the assets registry after version "
            f"{read_version} was read, so {label} of run {run_id} was not published and nothing was written; "
            "run the publish again") from exc
    return claimed


def _publish_one(spark, lake_dir, run_id, node_type, asset, version, vectors_path, item_like, meta_common,
                 config) -> dict:
    source = lake.read_table(spark, tables.table_path(lake_dir, embeddings_table(node_type))).filter(
        F.col(RUN_ID) == run_id)
    df = source.select(A.KEY, A.NODE_ID, A.EMBEDDING, F.lit(A.ORIGIN_TRAINED).alias(A.ORIGIN),
                       F.lit(version).cast("long").alias(A.ASSET_VERSION))
    res = lake.write_table(df, asset_table(lake_dir, asset), mode="overwrite", partition_by=[A.ASSET_VERSION],
                           replace_partitions={A.ASSET_VERSION: [version]},
                           metadata={"graphlake.job": "publish", "graphlake.run_id": run_id,
                                     "graphlake.asset_version": str(version)})
    out = bundle_dir(lake_dir, asset, version)
    if os.path.exists(out):  # left by a killed publish of the same (failed) version number
        shutil.rmtree(out)
    meta = write_bundle(out, vectors_path, df.select(A.KEY, A.NODE_ID),
                        {**meta_common, "asset": asset, "version": version, "node_type": node_type},
                        with_index=item_like, config=config)
    if meta["rows"] != res.rows_added:
        raise AssetError(f"{asset} v{version}: {res.rows_added} table rows but {meta['rows']} vectors "
                         "(the run's embeddings table and files disagree)")
    log.info("published %s v%d: %d rows x %d", asset, version, meta["rows"], meta["dim"])
    return {"version": version, "rows": meta["rows"], "dim": meta["dim"], "table_version": res.version,
            "files": out, "index": meta["index"], "status": A.CANDIDATE}


def register_versions(spark, lake_dir, results: dict, notes: dict | None = None) -> None:
    def change(rows):
        for r in rows:
            res = results.get(r["asset"])
            if res and r["version"] == res["version"]:
                r.update(status=A.CANDIDATE, row_count=res["rows"], dim=res["dim"], table_version=res["table_version"],
                         files=res["files"], note=(notes or {}).get(r["asset"], "published"), updated_at=now())
        return rows

    label = ",".join(f"{a} v{r['version']}" for a, r in results.items())
    update_registry(spark, lake_dir, change, "publish", label, None)


def mark_failed(spark, lake_dir, claimed: dict, note: str) -> None:
    wanted = {(a, v) for a, v in claimed.values()}

    def change(rows):
        for r in rows:
            if (r["asset"], r["version"]) in wanted and r["status"] == A.PENDING:
                r.update(status=A.FAILED, note=note[:1000], updated_at=now())
        return rows

    try:
        update_registry(spark, lake_dir, change, "publish-failed", ",".join(a for a, _ in claimed.values()), None)
    except Exception:  # the original error matters more; the rows stay pending (never readable)
        log.exception("could not mark the claimed asset versions as failed")
