"""The pipeline's steps for an orchestrator: one function per task of the ``graphlake_daily`` DAG.

Each step takes plain arguments (paths, a logical date, ids from the step before), runs one job
on the lake, and returns a small JSON-able dict (an Airflow XCom). Steps are idempotent for their
inputs where the job is: the ETL of a date replaces that date's partitions (a backfill or a retry
never duplicates rows), a graph version is built from the events up to the logical date.

The same steps run in-process (``run_step``: a Spark session in the task's process) or under
``spark-submit graphlake/pipeline.py <step> --lake ... [--key value ...]`` on a cluster, where
the step's JSON result is the last line of stdout.

Order (the DAG's): ``etl`` → ``validate_etl`` → ``build_graph`` → ``validate_graph`` → ``train``
→ ``evaluate`` → ``publish`` → ``gate`` → ``promote`` → ``report``.

Example:
    >>> run_step("etl", lake="lakehouse", raw="raw", ds="2024-01-02")
    {'run_id': '…', 'dates': ['2024-01-02'], 'clean': 10234, 'quarantined': 41, ...}
    >>> run_step("train", lake="lakehouse", graph_version=3, mode="incremental")
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys

from graphlake.core.errors import UsageError

log = logging.getLogger(__name__)

TRAIN_MODES = ("incremental", "full")


def _spark(master: str | None = None):
    from graphlake.core.spark import get_spark

    return get_spark(master=master, app_name="graphlake-pipeline")


def _config(cls, path: str | None, section: str):
    from graphlake.core.config import load_config

    return load_config(cls, path, section=section) if path else None


def etl(lake: str, raw: str, ds: str, config: str | None = None) -> dict:
    """Clean the raw logs of logical date ``ds`` into the lake (not yet validated: ``validate_etl``)."""
    from graphlake.etl.job import run_etl
    from graphlake.etl.transforms import EtlRules

    report = run_etl(_spark(), raw, lake, dates=[ds], rules=_config(EtlRules, config, "etl"), validate=False)
    ev = report["events"]
    return {"run_id": report["run_id"], "dates": report["dates"], "input": ev["input"], "clean": ev["clean"],
            "quarantined": ev["quarantined"], "duplicates": ev["duplicates"], "table_version": ev["table_version"]}


def validate_etl(lake: str, etl_run_id: str | None = None, ds: str | None = None, config: str | None = None) -> dict:
    """The ETL suites on what run ``etl_run_id`` committed (``None``: the newest run, which must
    cover ``ds``); a failure restores the tables."""
    from graphlake.etl.job import gate_run, last_run
    from graphlake.etl.transforms import EtlRules

    spark = _spark()
    if etl_run_id is None:
        newest = last_run(spark, lake)
        if ds is not None and ds not in newest["dates"]:
            raise UsageError(f"etl_run_id: the newest ETL run {newest['run_id']} covers {newest['dates']}, not {ds}")
        etl_run_id = newest["run_id"]
    summary = gate_run(spark, lake, etl_run_id, rules=_config(EtlRules, config, "etl"))
    return {"run_id": etl_run_id, "success": summary["success"], "suites": list(summary["suites"]),
            "data_docs": summary.get("data_docs")}


def build_graph(lake: str, ds: str | None = None, config: str | None = None) -> dict:
    """Build and commit the next graph version from the events up to ``ds`` (gated inside the build)."""
    from graphlake.graph_build.config import GraphConfig
    from graphlake.graph_build.job import build_graph as build

    summary = build(_spark(), lake, _config(GraphConfig, config, "graph"), build_docs=False, until_date=ds)
    return {"graph_version": summary["graph_version"], "config_hash": summary["config_hash"],
            "node_counts": summary["node_counts"], "edge_counts": summary["edge_counts"], "until_date": ds}


def validate_graph(lake: str, graph_version: int | None = None, ds: str | None = None) -> dict:
    """The graph suites on the committed ``graph_version`` (``None``: the newest, which must be
    built up to ``ds``), with Data Docs."""
    from graphlake.graph_build.job import validate_graph as validate
    from graphlake.graph_build.manifest import load_graph_version

    spark = _spark()
    if graph_version is None:
        graph_version = load_graph_version(spark, lake)["graph_version"]
    summary = validate(spark, lake, version=int(graph_version))
    return {"graph_version": int(graph_version), "success": summary["success"], "suites": list(summary["suites"]),
            "data_docs": summary.get("data_docs"), "ds": ds}


def train(lake: str, graph_version: int, mode: str = "incremental", config: str | None = None,
          backend: str = "local", workers: int = 1, epochs: int | None = None,
          timeout_s: float | None = None) -> dict:
    """Train on ``graph_version``: ``incremental`` starts from the newest finished run's model
    (a full run when there is none yet), ``full`` from scratch."""
    from graphlake.training.config import TrainConfig
    from graphlake.training.job import latest_run, train as run

    if mode not in TRAIN_MODES:
        raise UsageError(f"mode: expected one of {list(TRAIN_MODES)}, got {mode!r}")
    spark = _spark()
    train_config = _config(TrainConfig, config, "train")  # None: the recipe for the graph (training.recipe)
    if epochs is not None:
        if train_config is None:
            from graphlake.graph_build.manifest import load_graph_version
            from graphlake.training.recipe import recommended_config

            train_config = recommended_config(load_graph_version(spark, lake, int(graph_version)), epochs=int(epochs))
        else:
            train_config = dataclasses.replace(train_config, epochs=int(epochs))
    warm = None
    if mode == "incremental":
        try:
            warm = latest_run(spark, lake)["run_id"]
        except FileNotFoundError:
            log.warning("train: no finished run yet in %s; the incremental run starts from scratch", lake)
    summary = run(spark, lake, train_config, backend=backend, workers=int(workers), graph_version=int(graph_version),
                  warm_start=warm, timeout_s=timeout_s, progress=False)
    return {"run_id": summary["run_id"], "graph_version": summary["graph_version"], "steps": summary["steps"],
            "warm_start": warm, "validation": summary["validation"], "report": summary.get("report")}


def evaluate(lake: str, run_id: str, k: int = 20) -> dict:
    """Recall@K / NDCG@K of ``run_id``: on the lake's test table when it has one (an imported
    dataset), otherwise the run's own held-out validation slice (computed by the trainer)."""
    from graphlake.core import lake as lake_io, tables
    from graphlake.training.evaluate import evaluate as run
    from graphlake.training.job import run_dir_of
    from graphlake.training.worker import DONE_FILE

    if lake_io.table_exists(tables.table_path(lake, tables.IMPORT_TEST)):
        result = run(_spark(), lake, run_id=run_id, k=int(k))
        return {"run_id": run_id, "source": tables.IMPORT_TEST,
                **{n: v for n, v in result.items() if "@" in n or n in ("users", "test_pairs")}}
    done = os.path.join(run_dir_of(lake, run_id), DONE_FILE)
    with open(done) as f:
        validation = json.load(f).get("validation") or {}
    if not validation:
        raise UsageError(f"run_id: run {run_id} has no test table to evaluate on and no validation slice "
                         "(train with validation_fraction > 0 or import a dataset with a test split)")
    return {"run_id": run_id, "source": "validation", **validation}


def publish(lake: str, run_id: str, config: str | None = None) -> dict:
    """New candidate versions of the run's user and item assets (Delta rows, files, FAISS index)."""
    from graphlake.assets.config import AssetConfig
    from graphlake.assets.publish import publish as run

    summary = run(_spark(), lake, run_id=run_id, config=_config(AssetConfig, config, "assets"))
    return {"run_id": run_id, "assets": {a: r["version"] for a, r in summary["assets"].items()}}


def _run_versions(lake: str, run_id: str) -> dict:
    from graphlake.assets import schema as A
    from graphlake.assets.registry import read_registry

    rows, _ = read_registry(lake)
    found = {r["asset"]: int(r["version"]) for r in rows if r["run_id"] == run_id and r["status"] == A.CANDIDATE}
    if not found:
        raise UsageError(f"run_id: no candidate asset version of run {run_id!r} in the registry (publish it first)")
    return found


def gate(lake: str, assets: dict | None = None, run_id: str | None = None, config: str | None = None) -> dict:
    """The quality gate of every published version (``{asset: version}``, or the candidates of
    ``run_id``); recorded on the versions; fails when one fails (production untouched)."""
    from graphlake.assets.config import AssetConfig
    from graphlake.assets.lifecycle import gate as run

    if assets is None:
        if not run_id:
            raise UsageError("assets: expected {asset: version} or a run_id whose candidates to gate")
        assets = _run_versions(lake, run_id)
    spark, asset_config = _spark(), _config(AssetConfig, config, "assets")
    out = {asset: run(spark, lake, asset, int(version), asset_config)["figures"]
           for asset, version in sorted(assets.items())}
    return {"assets": dict(assets), "figures": out}


def promote(lake: str, assets: dict, config: str | None = None) -> dict:
    """Make the gated versions production (atomically per asset; reuses the recorded gate)."""
    from graphlake.assets.config import AssetConfig
    from graphlake.assets.lifecycle import promote as run

    spark, asset_config = _spark(), _config(AssetConfig, config, "assets")
    for asset, version in sorted(assets.items()):
        run(spark, lake, asset, int(version), asset_config)
    return {"production": dict(assets)}


def report(lake: str, graph_version: int | None = None, run_id: str | None = None, ds: str | None = None) -> dict:
    """The HTML pipeline report of this run (:mod:`graphlake.app.report`)."""
    from graphlake.app.report import write_pipeline_report

    path = write_pipeline_report(_spark(), lake, graph_version=None if graph_version is None else int(graph_version),
                                 train_run_id=run_id, etl_dates=[ds] if ds else None)
    return {"report": path}


STEPS = {f.__name__: f for f in (etl, validate_etl, build_graph, validate_graph, train, evaluate, publish, gate,
                                 promote, report)}


def run_step(step: str, **kwargs) -> dict:
    """Run pipeline step ``step`` with ``kwargs`` (see each step's function); returns its JSON-able result."""
    if step not in STEPS:
        raise UsageError(f"step: expected one of {sorted(STEPS)}, got {step!r}")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    result = STEPS[step](**kwargs)
    return json.loads(json.dumps(result, default=str))


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv=None) -> int:
    """``spark-submit graphlake/pipeline.py <step> --lake L [--key value ...]`` (values: JSON or strings)."""
    parser = argparse.ArgumentParser(prog="graphlake.app.pipeline", description="one step of the graphlake pipeline")
    parser.add_argument("step", choices=sorted(STEPS))
    args, rest = parser.parse_known_args(argv)
    if len(rest) % 2 or any(not k.startswith("--") for k in rest[::2]):
        parser.error(f"expected --key value pairs after the step, got {rest}")
    kwargs = {k[2:].replace("-", "_"): _parse_value(v) for k, v in zip(rest[::2], rest[1::2])}
    logging.basicConfig(level=os.environ.get("GRAPHLAKE_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    try:
        result = run_step(args.step, **kwargs)
    except Exception as exc:  # the CLI's exit codes and one-line errors (graphlake.core.errors)
        from graphlake.app.cli import report_failure

        return report_failure(f"pipeline {args.step}", kwargs.get("lake"), argv if argv is not None else sys.argv[1:],
                              exc)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":  # spark-submit runs this file: its folder must not shadow top-level modules
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
    sys.exit(main())
