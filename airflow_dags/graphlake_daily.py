"""``graphlake_daily``: for a logical date, ETL → validate → graph build → validate → train → evaluate
→ publish → gate → promote → report.

Every task calls ONE packaged entry point, :func:`graphlake.app.pipeline.run_step`; nothing heavy is
imported and no data is touched when Airflow parses this file. Runs are one at a time, in date
order (``max_active_runs=1``: training starts from the previous run's model), so a backfill over
a date range (``airflow backfill create --dag-id graphlake_daily --from-date … --to-date …``)
replays the dates in order; the ETL of a date replaces that date's partitions, so a backfill or a
retry never duplicates rows, and each graph version uses the events up to its logical date only.

Settings (DAG params, overridable per run with ``--conf`` / ``run_conf``; defaults from env):
``lake`` (``$GRAPHLAKE_LAKE``), ``raw`` (``$GRAPHLAKE_RAW``: the raw log contract, one
``events/dt=YYYY-MM-DD`` folder per date), ``train_mode`` (``incremental`` | ``full``),
``backend`` / ``workers`` (the Horovod or DDP launcher), ``epochs`` and the YAML configs of the
stages. With ``$GRAPHLAKE_SPARK_CONN_ID`` set (an Airflow Spark connection), the Spark steps
(ETL, graph build, publish) run through ``SparkSubmitOperator`` on that cluster
(``$GRAPHLAKE_SPARK_PACKAGES``: e.g. the Delta and GraphFrames packages), and the steps after
them find what they wrote in the lake; otherwise every step runs in the task's process with a
local Spark session.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

LAKE = os.environ.get("GRAPHLAKE_LAKE", "./lakehouse")
RAW = os.environ.get("GRAPHLAKE_RAW", "./raw")
SPARK_CONN_ID = os.environ.get("GRAPHLAKE_SPARK_CONN_ID")

DEFAULT_ARGS = {
    "owner": "graphlake",
    "retries": int(os.environ.get("GRAPHLAKE_RETRIES", "2")),
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=2),
}
TRAIN_TIMEOUT = timedelta(hours=int(os.environ.get("GRAPHLAKE_TRAIN_TIMEOUT_HOURS", "8")))


def _step(step: str, **kwargs) -> dict:
    from graphlake.app.pipeline import run_step  # imported when the task runs, not when the DAG is parsed

    return run_step(step, **kwargs)


def _spark_submit(task_id: str, step: str, args: list[str]):
    """The step as a ``spark-submit`` of graphlake/pipeline.py on the configured cluster."""
    from importlib.util import find_spec

    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    return SparkSubmitOperator(task_id=task_id, conn_id=SPARK_CONN_ID, application=find_spec("graphlake.app.pipeline").origin,
                               application_args=[step, *args], name=f"graphlake-{step}-{{{{ ds }}}}",
                               packages=os.environ.get("GRAPHLAKE_SPARK_PACKAGES") or None)


with DAG(
    dag_id="graphlake_daily",
    description="behaviour logs of a day -> graph -> GraphSAGE embeddings -> gated, promoted data assets",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["graphlake"],
    params={
        "lake": Param(LAKE, type="string", description="lake root"),
        "raw": Param(RAW, type="string", description="raw log root (events/dt=YYYY-MM-DD, items/, users/)"),
        "train_mode": Param("incremental", enum=["incremental", "full"],
                            description="incremental: start from the newest run's model; full: from scratch"),
        "backend": Param("horovod", enum=["local", "horovod", "ddp"], description="training launcher"),
        "workers": Param(2, type="integer", minimum=1, description="training ranks"),
        "epochs": Param(None, type=["null", "integer"], description="override the training config's epochs"),
        "etl_config": Param(None, type=["null", "string"], description="YAML with ETL rules"),
        "graph_config": Param(None, type=["null", "string"], description="YAML with graph rules"),
        "train_config": Param(None, type=["null", "string"], description="YAML with training rules"),
        "asset_config": Param(None, type=["null", "string"], description="YAML with gate / index options"),
    },
    doc_md=__doc__,
) as dag:

    @task(task_id="etl")
    def etl(params=None, ds=None) -> dict:
        return _step("etl", lake=params["lake"], raw=params["raw"], ds=ds, config=params["etl_config"])

    @task(task_id="validate_etl")
    def validate_etl(etl_run: dict | None, params=None, ds=None) -> dict:
        return _step("validate_etl", lake=params["lake"], etl_run_id=(etl_run or {}).get("run_id"), ds=ds,
                     config=params["etl_config"])

    @task(task_id="build_graph")
    def build_graph(_validated: dict, params=None, ds=None) -> dict:
        return _step("build_graph", lake=params["lake"], ds=ds, config=params["graph_config"])

    @task(task_id="validate_graph")
    def validate_graph(graph: dict | None, params=None, ds=None) -> dict:
        return _step("validate_graph", lake=params["lake"], graph_version=(graph or {}).get("graph_version"), ds=ds)

    @task(task_id="train", execution_timeout=TRAIN_TIMEOUT)
    def train(validated: dict, params=None) -> dict:
        return _step("train", lake=params["lake"], graph_version=validated["graph_version"],
                     mode=params["train_mode"], config=params["train_config"], backend=params["backend"],
                     workers=params["workers"], epochs=params["epochs"],
                     timeout_s=TRAIN_TIMEOUT.total_seconds())

    @task(task_id="evaluate")
    def evaluate(trained: dict, params=None) -> dict:
        return _step("evaluate", lake=params["lake"], run_id=trained["run_id"])

    @task(task_id="publish")
    def publish(evaluated: dict, params=None) -> dict:
        return _step("publish", lake=params["lake"], run_id=evaluated["run_id"], config=params["asset_config"])

    @task(task_id="gate")
    def gate(published: dict | None, trained: dict, params=None) -> dict:
        return _step("gate", lake=params["lake"], assets=(published or {}).get("assets"), run_id=trained["run_id"],
                     config=params["asset_config"])

    @task(task_id="promote")
    def promote(gated: dict, params=None) -> dict:
        return _step("promote", lake=params["lake"], assets=gated["assets"], config=params["asset_config"])

    @task(task_id="report")
    def report(promoted: dict, trained: dict, params=None, ds=None) -> dict:
        return _step("report", lake=params["lake"], graph_version=trained["graph_version"], run_id=trained["run_id"],
                     ds=ds)

    if SPARK_CONN_ID:  # the Spark steps on the cluster; the next steps read what they committed
        lake_args = ["--lake", "{{ params.lake }}"]
        etl_run = _spark_submit("etl", "etl", [*lake_args, "--raw", "{{ params.raw }}", "--ds", "{{ ds }}"])
        validated_etl = validate_etl(None)
        etl_run >> validated_etl
        graph = _spark_submit("build_graph", "build_graph", [*lake_args, "--ds", "{{ ds }}"])
        validated_etl >> graph
        validated_graph = validate_graph(None)
        graph >> validated_graph
        trained = train(validated_graph)
        evaluated = evaluate(trained)
        published = _spark_submit("publish", "publish", [*lake_args, "--run-id", "{{ ti.xcom_pull(task_ids='train')['run_id'] }}"])
        evaluated >> published
        gated = gate(None, trained)
        published >> gated
    else:
        validated_graph = validate_graph(build_graph(validate_etl(etl())))
        trained = train(validated_graph)
        gated = gate(publish(evaluate(trained)), trained)
    report(promote(gated), trained)
