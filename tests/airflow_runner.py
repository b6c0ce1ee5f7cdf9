"""Run ``graphlake_daily`` with ``dag.test()`` for some logical dates in a fresh ``AIRFLOW_HOME``.

Used by tests/test_airflow.py in a subprocess (Airflow reads ``AIRFLOW_HOME`` and its config at
import, so the test's own process must not import it first). Prints one JSON line per DAG run:
``{"ds", "state", "tasks": {task_id: state}, "seconds": {task_id: duration}, "asset_events":
[{"task", "name", "uri", "extra"}]}`` (the Airflow Asset events the run's tasks emitted).

    python -m tests.airflow_runner --home H --lake L --raw R --conf '{"backend": "ddp"}' 2024-01-01 2024-01-02
"""

from __future__ import annotations

import argparse
import json
import os
import sys

DAGS_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "airflow_dags")


def configure(home: str) -> None:
    """Point Airflow at ``home`` (sqlite metadata DB) and the project's DAG folder."""
    os.makedirs(home, exist_ok=True)
    os.environ.update({
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": DAGS_FOLDER,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{os.path.join(home, 'airflow.db')}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    })


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--conf", default="{}", help="JSON run_conf (DAG params)")
    parser.add_argument("--mark-success", dest="mark_success", default=None,
                        help="regex of task ids marked success instead of run (per date: DATE=REGEX)")
    parser.add_argument("--check", action="store_true", help="only parse: import errors, warnings, cycles")
    parser.add_argument("dates", nargs="*")
    args = parser.parse_args(argv)
    configure(args.home)

    from datetime import datetime, timezone

    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import resetdb

    if args.check:
        return check()
    marker = os.path.join(args.home, ".db-initialised")  # later calls keep the DAG runs of earlier ones
    if not os.path.isfile(marker):
        resetdb(skip_init=False)
        open(marker, "w").close()
    bag = DagBag(dag_folder=DAGS_FOLDER)
    if bag.import_errors:
        print(json.dumps({"import_errors": {k: str(v) for k, v in bag.import_errors.items()}}))
        return 1
    dag = bag.get_dag("graphlake_daily")
    marks = dict(m.split("=", 1) for m in (args.mark_success or "").split(",") if m)
    conf = {"lake": args.lake, "raw": args.raw, **json.loads(args.conf)}
    for ds in args.dates:
        day = datetime.fromisoformat(ds).replace(tzinfo=timezone.utc)
        run = dag.test(logical_date=day, run_conf=conf, mark_success_pattern=marks.get(ds))
        tis = run.get_task_instances()
        tasks = {ti.task_id: str(ti.state) for ti in tis}
        seconds = {ti.task_id: round(ti.duration, 1) for ti in tis if ti.duration is not None}
        print(json.dumps({"ds": ds, "state": str(run.state), "tasks": tasks, "seconds": seconds,
                          "asset_events": asset_events(run.run_id)}), flush=True)
    return 0


def asset_events(run_id: str) -> list[dict]:
    """The Asset events DAG run ``run_id`` emitted, in task order."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(AssetEvent).filter(AssetEvent.source_run_id == run_id).order_by(AssetEvent.id).all()
        return [{"task": e.source_task_id, "name": e.name, "uri": e.uri, "extra": e.extra} for e in events]


HEAVY_MODULES = ("pyspark", "torch", "deltalake", "great_expectations", "graphlake.app.pipeline", "graphlake.etl", "graphlake.training")


def check() -> int:
    """Parse the DAG folder; print import errors, DAG warnings, cycles, tasks and heavy imports."""
    import warnings

    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=DAGS_FOLDER)
    out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dag_ids": sorted(bag.dag_ids),
           "dag_warnings": [str(w) for w in bag.dag_warnings],
           "parse_warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught
                                     if DAGS_FOLDER in str(w.filename)}),
           "heavy_imports": [m for m in HEAVY_MODULES if m in sys.modules], "cycles": {}, "tasks": {}}
    for dag_id, dag in bag.dags.items():
        try:
            dag.check_cycle()
        except Exception as exc:  # AirflowDagCycleException
            out["cycles"][dag_id] = str(exc)
        out["tasks"][dag_id] = {t.task_id: {"upstream": sorted(t.upstream_task_ids), "retries": t.retries,
                                            "timeout_s": t.execution_timeout.total_seconds()
                                            if t.execution_timeout else None, "operator": type(t).__name__}
                                for t in dag.tasks}
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
