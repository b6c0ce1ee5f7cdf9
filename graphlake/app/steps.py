"""The pipeline's steps, each declared once: its name, typed parameters (a frozen dataclass), the
function that runs it and a one-line help. :data:`STEPS` (name → :class:`~graphlake.app.stepkit.Step`,
in the DAG's order) is the registry everything else is generated from (:mod:`graphlake.app.stepkit`):
``run_step`` and ``spark-submit graphlake/app/pipeline.py <step> --key value``
(:mod:`graphlake.app.pipeline`), the options of the ``graphlake`` verbs the steps map to
(:mod:`graphlake.app.cli`), and both branches of the ``graphlake_daily`` DAG (its params, a local
task's kwargs, a spark-submit task's arguments).

Order: ``etl`` → ``validate_etl`` → ``build_graph`` → ``validate_graph`` → ``train`` → ``evaluate``
→ ``publish`` → ``gate`` → ``promote`` → ``report``. Each step runs one job on the lake and returns
a small JSON-able dict; steps are idempotent for their inputs where the job is (the ETL of a date
replaces that date's partitions).

Light on purpose: the DAG imports this module when Airflow parses it, so Spark, torch and the job
code are imported inside the run functions only.

Adding a parameter: one :func:`~graphlake.app.stepkit.param` field on the step's params class, read
in its run function. Adding a step: a params class, a run function and a :class:`Step` in ``STEPS``.

Example:
    >>> STEPS["train"].make(lake="lakehouse", graph_version=3, device="cuda", epochs=2)
    TrainParams(lake='lakehouse', graph_version=3, mode='incremental', ...)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from graphlake.app.stepkit import Step, StepParams, param
from graphlake.core.errors import UsageError

log = logging.getLogger(__name__)

TRAIN_MODES = ("incremental", "full")
BACKENDS = ("local", "ddp", "horovod")
LAUNCHERS = ("process", "spark")

_LAKE = dict(help="lake root")
_TRAIN_RUN = "xcom:train.run_id"


def _spark():
    from graphlake.core.spark import get_spark

    return get_spark(app_name="graphlake-pipeline")


def _config(cls, path: str | None, section: str):
    from graphlake.core.config import load_config

    return load_config(cls, path, section=section) if path else None


# ------------------------------------------------------------------------------ etl


@dataclass(frozen=True)
class EtlParams(StepParams):
    """The parameters of step ``etl`` (:func:`etl`)."""

    lake: str = param(**_LAKE)
    raw: str = param(help="raw folder (events/dt=..., items/, users/)")
    ds: str | None = param(None, dag="ds", flag="--date", cli={"action": "append", "metavar": "YYYY-MM-DD"},
                           help="the date YYYY-MM-DD to (re)process (CLI: repeatable); default all")
    config: str | None = param(None, dag="param:etl_config", help="YAML with ETL rules (top-level or under `etl:`)")


def etl(p: EtlParams) -> dict:
    """Clean the raw logs of ``ds`` into the lake (not yet validated: ``validate_etl``)."""
    from graphlake.etl.job import run_etl
    from graphlake.etl.transforms import EtlRules

    report = run_etl(_spark(), p.raw, p.lake, dates=[p.ds] if p.ds else None,
                     rules=_config(EtlRules, p.config, "etl"), validate=False)
    ev = report["events"]
    return {"run_id": report["run_id"], "dates": report["dates"], "input": ev["input"], "clean": ev["clean"],
            "quarantined": ev["quarantined"], "duplicates": ev["duplicates"], "table_version": ev["table_version"]}


@dataclass(frozen=True)
class ValidateEtlParams(StepParams):
    """The parameters of step ``validate_etl`` (:func:`validate_etl`)."""

    lake: str = param(**_LAKE)
    etl_run_id: str | None = param(None, dag="xcom:etl.run_id",
                                   help="with --stage etl: the ETL run to check (default: the newest)")
    ds: str | None = param(None, dag="ds", pipeline_only=True,
                           help="the logical date the newest ETL run must cover (without etl_run_id)")
    config: str | None = param(None, dag="param:etl_config",
                               help="with --stage etl: YAML with the ETL rules the run used")


def validate_etl(p: ValidateEtlParams) -> dict:
    """The ETL suites on what run ``etl_run_id`` committed (``None``: the newest run, which must
    cover ``ds``); a failure restores the tables."""
    from graphlake.etl.job import gate_run, last_run
    from graphlake.etl.transforms import EtlRules

    spark, run_id = _spark(), p.etl_run_id
    if run_id is None:
        newest = last_run(spark, p.lake)
        if p.ds is not None and not newest.covers(p.ds):
            raise UsageError(f"etl_run_id: the newest ETL run {newest.run_id} covers {list(newest.dates)}, not {p.ds}")
        run_id = newest.run_id
    summary = gate_run(spark, p.lake, run_id, rules=_config(EtlRules, p.config, "etl"))
    return {"run_id": run_id, "success": summary["success"], "suites": list(summary["suites"]),
            "data_docs": summary.get("data_docs")}


# ------------------------------------------------------------------------------ graph


@dataclass(frozen=True)
class BuildGraphParams(StepParams):
    """The parameters of step ``build_graph`` (:func:`build_graph`)."""

    lake: str = param(**_LAKE)
    ds: str | None = param(None, dag="ds", flag="--until-date", cli={"metavar": "YYYY-MM-DD"},
                           help="build from the events up to this date (default: all)")
    config: str | None = param(None, dag="param:graph_config",
                               help="YAML with graph rules (top-level or under `graph:`)")


def build_graph(p: BuildGraphParams) -> dict:
    """Build and commit the next graph version from the events up to ``ds`` (gated inside the build)."""
    from graphlake.graph_build.config import GraphConfig
    from graphlake.graph_build.job import build_graph as build

    summary = build(_spark(), p.lake, _config(GraphConfig, p.config, "graph"), build_docs=False, until_date=p.ds)
    return {"graph_version": summary["graph_version"], "config_hash": summary["config_hash"],
            "node_counts": summary["node_counts"], "edge_counts": summary["edge_counts"], "until_date": p.ds}


@dataclass(frozen=True)
class ValidateGraphParams(StepParams):
    """The parameters of step ``validate_graph`` (:func:`validate_graph`)."""

    lake: str = param(**_LAKE)
    graph_version: int | None = param(None, dag="xcom:build_graph.graph_version", minimum=0,
                                      help="with --stage graph: the graph version to check (default: latest)")
    ds: str | None = param(None, dag="ds", pipeline_only=True, help="the logical date (echoed in the result)")


def validate_graph(p: ValidateGraphParams) -> dict:
    """The graph suites on the committed ``graph_version`` (``None``: the newest), with Data Docs."""
    from graphlake.graph_build.job import validate_graph as validate
    from graphlake.graph_build.manifest import load_graph_version

    spark, version = _spark(), p.graph_version
    if version is None:
        version = load_graph_version(spark, p.lake).graph_version
    summary = validate(spark, p.lake, version=int(version))
    return {"graph_version": int(version), "success": summary["success"], "suites": list(summary["suites"]),
            "data_docs": summary.get("data_docs"), "ds": p.ds}


# ------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class TrainParams(StepParams):
    """The parameters of step ``train`` (:func:`train`)."""

    lake: str = param(**_LAKE)
    graph_version: int | None = param(None, dag="xcom:validate_graph.graph_version", minimum=0,
                                      help="the graph version to train on (default: latest)")
    mode: str = param("incremental", choices=TRAIN_MODES, dag="param:train_mode", pipeline_only=True,
                      help="incremental: start from the newest finished run's model (a full run when there is none); "
                           "full: from scratch (the CLI's --warm-start)")
    config: str | None = param(None, dag="param:train_config",
                               help="YAML with training rules (top-level or under `train:`); default: the recipe for "
                                    "the graph (training/recipe.py, docs/quality.md)")
    backend: str = param("local", choices=BACKENDS, help="training launcher: local (one process), ddp or horovod")
    workers: int = param(1, minimum=1, help="ranks (ddp / horovod)")
    device: str = param("auto", help="auto (a rank's GPU when torch sees one, else the CPU), cpu, cuda or cuda:N")
    launcher: str = param("process", choices=LAUNCHERS,
                          help="process: torchrun / horovodrun; spark: TorchDistributor / horovod.spark.run")
    launcher_args: str | None = param(None, cli={"metavar": "FLAGS"},
                                      help="extra horovodrun / torchrun flags, e.g. \"-H host1:4,host2:4\" for "
                                           "several hosts")
    epochs: int | None = param(None, minimum=1, help="override the config's (or the recipe's) epochs")
    timeout_s: float | None = param(None, flag="--timeout", dag="timeout", minimum=0,
                                    help="fail when the ranks run longer (seconds)")


def train(p: TrainParams) -> dict:
    """Train on ``graph_version``: ``incremental`` starts from the newest finished run's model
    (a full run when there is none yet), ``full`` from scratch."""
    import shlex

    from graphlake.training.config import TrainConfig
    from graphlake.training.job import latest_run
    from graphlake.training.job import train as run

    spark, warm = _spark(), None
    if p.mode == "incremental":
        try:
            warm = latest_run(spark, p.lake)["run_id"]
        except FileNotFoundError:
            log.warning("train: no finished run yet in %s; the incremental run starts from scratch", p.lake)
    summary = run(spark, p.lake, _config(TrainConfig, p.config, "train"), backend=p.backend, workers=p.workers,
                  graph_version=p.graph_version, warm_start=warm, timeout_s=p.timeout_s, progress=False,
                  device=p.device, launcher=p.launcher,
                  launcher_args=shlex.split(p.launcher_args) if p.launcher_args else None,
                  overrides={"epochs": p.epochs} if p.epochs is not None else None)
    return {"run_id": summary["run_id"], "graph_version": summary["graph_version"], "steps": summary["steps"],
            "warm_start": warm, "validation": summary["validation"], "report": summary.get("report"),
            "device": summary.get("device")}


@dataclass(frozen=True)
class EvaluateParams(StepParams):
    """The parameters of step ``evaluate`` (:func:`evaluate`)."""

    lake: str = param(**_LAKE)
    run_id: str | None = param(None, dag=_TRAIN_RUN, help="the training run (default: the newest finished run)")
    k: int = param(20, minimum=1, dag="param:eval_k", help="the cut-off K of Recall@K / NDCG@K")


def evaluate(p: EvaluateParams) -> dict:
    """Recall@K / NDCG@K of ``run_id``: on the lake's test table when it has one (an imported
    dataset), otherwise the run's own held-out validation slice (computed by the trainer)."""
    from graphlake.core import lake as lake_io
    from graphlake.core import tables
    from graphlake.training.evaluate import evaluate as run
    from graphlake.training.job import latest_run
    from graphlake.training.run import TrainRun

    spark = _spark()
    run_id = p.run_id or latest_run(spark, p.lake)["run_id"]
    if lake_io.table_exists(tables.table_path(p.lake, tables.IMPORT_TEST)):
        result = run(spark, p.lake, run_id=run_id, k=p.k)
        return {"run_id": run_id, "source": tables.IMPORT_TEST,
                **{n: v for n, v in result.items() if "@" in n or n in ("users", "test_pairs")}}
    with open(TrainRun.of(p.lake, run_id).done_path) as f:
        validation = json.load(f).get("validation") or {}
    if not validation:
        raise UsageError(f"run_id: run {run_id} has no test table to evaluate on and no validation slice "
                         "(train with validation_fraction > 0 or import a dataset with a test split)")
    return {"run_id": run_id, "source": "validation", **validation}


# ------------------------------------------------------------------------------ assets


_ASSET_CONFIG = dict(dag="param:asset_config", help="YAML with gate / index options (top-level or under `assets:`)")


def _check_assets(assets: dict | None) -> None:
    bad = [a for a, v in (assets or {}).items() if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise UsageError(f"assets: expected {{asset: version (an int)}}, got {assets!r}")


@dataclass(frozen=True)
class PublishParams(StepParams):
    """The parameters of step ``publish`` (:func:`publish`)."""

    lake: str = param(**_LAKE)
    run_id: str | None = param(None, dag=_TRAIN_RUN, help="the training run (default: the newest finished run)")
    config: str | None = param(None, **_ASSET_CONFIG)


def publish(p: PublishParams) -> dict:
    """New candidate versions of the run's user and item assets (Delta rows, files, FAISS index)."""
    from graphlake.assets.config import AssetConfig
    from graphlake.assets.publish import publish as run

    summary = run(_spark(), p.lake, run_id=p.run_id, config=_config(AssetConfig, p.config, "assets"))
    return {"run_id": summary["run_id"], "assets": {a: r["version"] for a, r in summary["assets"].items()}}


@dataclass(frozen=True)
class GateParams(StepParams):
    """The parameters of step ``gate`` (:func:`gate`)."""

    lake: str = param(**_LAKE)
    assets: dict | None = param(None, dag="xcom:publish.assets", pipeline_only=True,
                                help="{asset: version} to gate (the CLI gates one: --asset, --version)")
    run_id: str | None = param(None, dag=_TRAIN_RUN, pipeline_only=True,
                               help="without assets: gate the candidate versions of this run")
    config: str | None = param(None, **_ASSET_CONFIG)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_assets(self.assets)
        if self.assets is None and not self.run_id:
            raise UsageError("assets: expected {asset: version} or a run_id whose candidates to gate, got neither")


def _run_versions(lake: str, run_id: str) -> dict:
    from graphlake.assets import schema as A
    from graphlake.assets.registry import list_versions

    found = {v.asset: v.version for v in list_versions(lake) if v.run_id == run_id and v.status == A.CANDIDATE}
    if not found:
        raise UsageError(f"run_id: no candidate asset version of run {run_id!r} in the registry (publish it first)")
    return found


def gate(p: GateParams) -> dict:
    """The quality gate of every published version (``{asset: version}``, or the candidates of
    ``run_id``); recorded on the versions; fails when one fails (production untouched)."""
    from graphlake.assets.config import AssetConfig
    from graphlake.assets.lifecycle import gate as run

    assets = p.assets if p.assets is not None else _run_versions(p.lake, p.run_id)
    spark, asset_config = _spark(), _config(AssetConfig, p.config, "assets")
    out = {asset: run(spark, p.lake, asset, version, asset_config)["figures"]
           for asset, version in sorted(assets.items())}
    return {"assets": dict(assets), "figures": out}


@dataclass(frozen=True)
class PromoteParams(StepParams):
    """The parameters of step ``promote`` (:func:`promote`)."""

    lake: str = param(**_LAKE)
    assets: dict = param(dag="xcom:gate.assets", pipeline_only=True,
                         help="{asset: version} to promote (the CLI promotes one: --asset, --version)")
    config: str | None = param(None, **_ASSET_CONFIG)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_assets(self.assets)


def promote(p: PromoteParams) -> dict:
    """Make the gated versions production (atomically per asset; reuses the recorded gate)."""
    from graphlake.assets.config import AssetConfig
    from graphlake.assets.lifecycle import promote as run

    spark, asset_config = _spark(), _config(AssetConfig, p.config, "assets")
    for asset, version in sorted(p.assets.items()):
        run(spark, p.lake, asset, version, asset_config)
    return {"production": dict(p.assets)}


# ------------------------------------------------------------------------------ report


@dataclass(frozen=True)
class ReportParams(StepParams):
    """The parameters of step ``report`` (:func:`report`)."""

    lake: str = param(**_LAKE)
    graph_version: int | None = param(None, dag="xcom:train.graph_version", minimum=0,
                                      help="the graph version (default: latest)")
    run_id: str | None = param(None, dag=_TRAIN_RUN, help="training run (default: the newest of the graph version)")
    ds: str | None = param(None, dag="ds", flag="--date", cli={"action": "append", "metavar": "YYYY-MM-DD"},
                           help="ETL runs touching this date (CLI: repeatable); default all")


def report(p: ReportParams) -> dict:
    """The HTML pipeline report of this run (:mod:`graphlake.app.report`)."""
    from graphlake.app.report import write_pipeline_report

    path = write_pipeline_report(_spark(), p.lake, graph_version=p.graph_version, train_run_id=p.run_id,
                                 etl_dates=[p.ds] if p.ds else None)
    return {"report": path}


STEPS: dict[str, Step] = {s.name: s for s in (
    Step("etl", EtlParams, etl, "raw logs of a date -> clean Delta tables and quarantine", cli=("etl",), spark=True),
    Step("validate_etl", ValidateEtlParams, validate_etl, "the ETL suites on an ETL run (tables restored on failure)",
         cli=("validate",)),
    Step("build_graph", BuildGraphParams, build_graph, "clean tables -> the next graph version",
         cli=("graph", "build"), spark=True),
    Step("validate_graph", ValidateGraphParams, validate_graph, "the graph suites on a graph version",
         cli=("validate",)),
    Step("train", TrainParams, train, "heterogeneous GraphSAGE on a graph version; embeddings -> Delta",
         cli=("train",)),
    Step("evaluate", EvaluateParams, evaluate, "Recall@K / NDCG@K of a training run", cli=("evaluate",)),
    Step("publish", PublishParams, publish, "a training run -> candidate embedding asset versions",
         cli=("publish",), spark=True),
    Step("gate", GateParams, gate, "the quality gate of candidate versions", cli=("assets", "gate")),
    Step("promote", PromoteParams, promote, "gated versions -> production", cli=("assets", "promote")),
    Step("report", ReportParams, report, "the HTML pipeline report", cli=("report",)),
)}
