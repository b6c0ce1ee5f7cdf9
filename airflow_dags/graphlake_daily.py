"""``graphlake_daily``: for a logical date, ETL → validate → graph build → validate → train → evaluate
→ publish → gate → promote → report.

Every task is generated from the step registry (:data:`graphlake.app.steps.STEPS`: one task per
step, in its order) and calls ONE packaged entry point, :func:`graphlake.app.pipeline.run_step`, with
every parameter of the step (each from its declared source: a DAG param, the logical date, a key of
an upstream task's result); nothing heavy is imported and no data is touched when Airflow parses
this file. Runs are one at a time, in date order (``max_active_runs=1``: training starts from the
previous run's model), so a backfill over a date range (``airflow backfill create --dag-id
graphlake_daily --from-date … --to-date …``) replays the dates in order; the ETL of a date replaces
that date's partitions, so a backfill or a retry never duplicates rows, and each graph version uses
the events up to its logical date only.

Settings (DAG params, generated from the steps' parameters, overridable per run with ``--conf`` /
``run_conf``): ``lake`` (``$GRAPHLAKE_LAKE``), ``raw`` (``$GRAPHLAKE_RAW``: the raw log contract, one
``events/dt=YYYY-MM-DD`` folder per date), ``train_mode`` (``incremental`` | ``full``),
``backend`` / ``workers`` / ``launcher`` / ``launcher_args`` (the Horovod or DDP launcher),
``device`` (``cuda`` asks for a GPU), ``epochs``, ``eval_k`` and the YAML configs of the stages
(``etl_config``, ``graph_config``, ``train_config``, ``asset_config``). With
``$GRAPHLAKE_SPARK_CONN_ID`` set (an Airflow Spark connection), the Spark steps (ETL, graph build,
publish) run through ``SparkSubmitOperator`` on that cluster (``$GRAPHLAKE_SPARK_PACKAGES``: e.g.
the Delta and GraphFrames packages) with the same parameters, and the steps after them find what
they wrote in the lake; otherwise every step runs in the task's process with a local Spark session.

Outputs are Airflow Assets (:data:`OUTLETS`), so a downstream DAG can be scheduled on them — e.g.
on a new production embedding: ``schedule=[Asset(name="graphlake.emb.item_embeddings",
uri="file://<lake>/emb/item_embeddings")]``. ``etl`` updates ``graphlake.clean.events``,
``build_graph`` ``graphlake.graph.manifest``, ``promote`` the production ``item_embeddings`` /
``user_embeddings`` and the top-K tables ``graphlake.assets.recommendations`` /
``graphlake.assets.similar_items``; a promotion the gate refuses fails the task, so it emits no
event. The URIs name ``$GRAPHLAKE_LAKE`` (assets are declared when the DAG is parsed); each event's
``extra`` carries the run's own ``lake``, ``ds`` and, from ``promote``, the versions now in
production.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, Param, task

from graphlake.app.stepkit import dag_application_args, dag_kwargs, dag_params
from graphlake.app.steps import STEPS  # declarations only: no Spark, torch or job code at parse time
from graphlake.core import tables

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
TIMEOUTS = {"train": TRAIN_TIMEOUT}  # the others: DEFAULT_ARGS'
# the DAG's defaults where they differ from the steps' (a scheduled run trains with two Horovod ranks)
PARAM_DEFAULTS = {"lake": LAKE, "raw": RAW, "backend": "horovod", "workers": 2}
# step -> the lake tables it changes, declared as Airflow Assets (the outlets of its task)
OUTLETS = {
    "etl": (tables.CLEAN_EVENTS,),
    "build_graph": (tables.GRAPH_MANIFEST,),
    "promote": (tables.embeddings("item_embeddings"), tables.embeddings("user_embeddings"),
                tables.ASSETS_RECOMMENDATIONS, tables.ASSETS_SIMILAR_ITEMS),
}


def lake_asset(name: str) -> Asset:
    """The Airflow Asset of lake table ``name`` (e.g. ``emb/item_embeddings``) under ``$GRAPHLAKE_LAKE``."""
    return Asset(name=f"graphlake.{name.replace('/', '.')}", uri=f"file://{os.path.abspath(LAKE)}/{name}",
                 group="graphlake")


def _outlets(step) -> list[Asset]:
    return [lake_asset(name) for name in OUTLETS.get(step.name, ())]


def _local(step):
    """The step as a task in the worker's process: ``run_step`` with every parameter."""
    timeout = TIMEOUTS.get(step.name, DEFAULT_ARGS["execution_timeout"])

    outlets = _outlets(step)

    @task(task_id=step.name, execution_timeout=timeout, doc=step.help, outlets=outlets)
    def run(params=None, ds=None, ti=None, outlet_events=None) -> dict:
        from graphlake.app.pipeline import run_step  # imported when the task runs, not when the DAG is parsed

        kwargs = dag_kwargs(step, params, ds, ti.xcom_pull, timeout.total_seconds())
        result = run_step(step.name, **kwargs)
        for asset in outlets:  # what a downstream DAG scheduled on the asset reads from the event
            outlet_events[asset].extra = {"lake": os.path.abspath(kwargs["lake"]), "ds": ds,
                                          **({"production": result["production"]} if "production" in result else {})}
        return result

    return run()


def _spark_submit(step):
    """The step as a ``spark-submit`` of graphlake/app/pipeline.py on the configured cluster."""
    from importlib.util import find_spec

    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    return SparkSubmitOperator(task_id=step.name, conn_id=SPARK_CONN_ID, doc=step.help,
                               application=find_spec("graphlake.app.pipeline").origin,
                               application_args=[step.name, *dag_application_args(step)],
                               name=f"graphlake-{step.name}-{{{{ ds }}}}", outlets=_outlets(step),
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
    params={name: Param(**spec) for name, spec in dag_params(STEPS.values(), PARAM_DEFAULTS).items()},
    doc_md=__doc__,
) as dag:
    previous = None
    for step in STEPS.values():  # a chain: each step reads what the one before committed (or its result)
        current = _spark_submit(step) if SPARK_CONN_ID and step.spark else _local(step)
        if previous is not None:
            previous >> current
        previous = current
