"""The ``graphlake_daily`` DAG: parse integrity, and real ``dag.test()`` runs over two logical dates
plus a re-run (backfill) of the first, on a tiny generated dataset, in a temp ``AIRFLOW_HOME``.

Airflow runs in a subprocess (tests/airflow_runner.py): it reads ``AIRFLOW_HOME`` at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from graphlake.core import lake, tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAIN = ["etl", "validate_etl", "build_graph", "validate_graph", "train", "evaluate", "publish", "gate", "promote",
         "report"]


def _runner(args: list[str], home: str, env: dict | None = None, timeout: int = 840) -> list[dict]:
    full_env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "GRAPHLAKE_RETRIES": "0", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "tests.airflow_runner", "--home", home, *args], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"runner failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n" \
                                           f"{proc.stderr[-6000:]}"
    for line in lines:
        if "seconds" in line:
            print(f"dag run {line['ds']}: task seconds {line['seconds']}")  # shown with -s / on failure
    return lines


@pytest.mark.parametrize("spark_conn", [None, "spark_default"])
def test_dagbag_has_no_errors_warnings_or_cycles(tmp_path, spark_conn):
    env = {"GRAPHLAKE_SPARK_CONN_ID": spark_conn} if spark_conn else {}
    (out,) = _runner(["--lake", "x", "--raw", "y", "--check"], str(tmp_path / "home"), env=env, timeout=300)
    assert out["import_errors"] == {} and out["dag_warnings"] == [] and out["parse_warnings"] == []
    assert out["cycles"] == {} and out["dag_ids"] == ["graphlake_daily"]
    assert out["heavy_imports"] == []  # parsing imports no Spark, torch, GE or graphlake job code
    tasks = out["tasks"]["graphlake_daily"]
    assert sorted(tasks) == sorted(CHAIN)
    for before, after in zip(CHAIN, CHAIN[1:]):
        assert before in tasks[after]["upstream"], (before, after)
    assert all(t["timeout_s"] and t["timeout_s"] > 0 for t in tasks.values())
    spark_steps = {"etl", "build_graph", "publish"}
    for task_id, t in tasks.items():
        expected = "SparkSubmitOperator" if spark_conn and task_id in spark_steps else "_PythonDecoratedOperator"
        assert t["operator"] == expected, (task_id, t["operator"])


@pytest.fixture(scope="module")
def raw_two_days(spark, tmp_path_factory):
    from graphlake.etl.generator import GeneratorConfig, generate

    raw = str(tmp_path_factory.mktemp("airflow-raw") / "raw")
    generate(spark, raw, GeneratorConfig(users=300, items=150, days=2, seed=3, target_events=6000))
    return raw


def _counts_by_dt(spark, lake_dir: str, table: str = tables.CLEAN_EVENTS) -> dict:
    df = lake.read_table(spark, tables.table_path(lake_dir, table))
    return {r["dt"]: r["count"] for r in df.groupBy("dt").count().collect()}


@pytest.mark.slow
def test_dag_runs_two_dates_then_a_backfill_of_the_first(spark, tmp_path, raw_two_days):
    from graphlake.assets.registry import read_registry

    lake_dir = str(tmp_path / "lake")
    train_yaml = tmp_path / "train.yaml"
    train_yaml.write_text("train:\n  epochs: 1\n  batch_size: 512\n  fanouts: [5, 3]\n  validation_fraction: 0.1\n"
                          "  lr: 0.01\n  model: {hidden_dim: 16}\n")
    graph_yaml = tmp_path / "graph.yaml"
    graph_yaml.write_text("graph:\n  text_model: hashing\n  text_dim: 16\n")
    assets_yaml = tmp_path / "assets.yaml"  # 300 users / 150 items: noisy figures, looser gate
    assets_yaml.write_text("assets:\n  min_category_lift: 1.0\n  max_regression: 0.5\n")
    conf = {"backend": "ddp", "workers": 2, "train_config": str(train_yaml), "graph_config": str(graph_yaml),
            "asset_config": str(assets_yaml)}
    after_etl = "^(build_graph|validate_graph|train|evaluate|publish|gate|promote|report)$"
    runs = _runner(["--lake", lake_dir, "--raw", raw_two_days, "--conf", json.dumps(conf),
                    "2024-01-01", "2024-01-02"],
                   str(tmp_path / "home"))
    assert [r["ds"] for r in runs] == ["2024-01-01", "2024-01-02"]
    for r in runs:
        assert r["state"] == "success" and r["tasks"] == {t: "success" for t in CHAIN}, r

    # the registry: two versions of each asset, the second promoted, the first superseded but readable
    rows, _ = read_registry(lake_dir)
    status = {(r["asset"], r["version"]): r["status"] for r in rows}
    assert status == {("item_embeddings", 1): "candidate", ("item_embeddings", 2): "production",
                      ("user_embeddings", 1): "candidate", ("user_embeddings", 2): "production"}
    second = {r["asset"]: r for r in rows if r["version"] == 2}
    assert json.loads(second["item_embeddings"]["gate"])["success"] is True
    assert second["item_embeddings"]["graph_version"] == 1
    # the second day's run trained incrementally from the first day's model
    runs_table = lake.read_table(spark, tables.table_path(lake_dir, tables.TRAIN_RUNS))
    summaries = [json.loads(r["summary"]) for r in runs_table.orderBy("finished_at").collect()]
    assert [s["warm_start"] for s in summaries] == [None, summaries[0]["run_id"]]
    reports = [p for p in os.listdir(os.path.join(lake_dir, tables.REPORTS_DIR, "pipeline"))]
    assert len(reports) == 2 and all(os.path.isfile(os.path.join(lake_dir, tables.REPORTS_DIR, "pipeline", p,
                                                                  "index.html")) for p in reports)

    # a backfill: 2024-01-01 again after 2024-01-02 (its ETL and gate run; the later tasks are marked
    # done to keep the suite short: graph_build's events_until is tested in test_graph_build.py)
    before = _counts_by_dt(spark, lake_dir)
    quarantined = _counts_by_dt(spark, lake_dir, tables.QUARANTINE_EVENTS)
    assert sorted(before) == ["2024-01-01", "2024-01-02"] and all(n > 0 for n in before.values())
    (rerun,) = _runner(["--lake", lake_dir, "--raw", raw_two_days, "--conf", json.dumps(conf),
                        "--mark-success", f"2024-01-01={after_etl}", "2024-01-01"], str(tmp_path / "home"))
    assert rerun["state"] == "success", rerun
    assert _counts_by_dt(spark, lake_dir) == before  # the date's partitions replaced, not appended
    assert rerun["tasks"]["etl"] == rerun["tasks"]["validate_etl"] == "success"
    assert _counts_by_dt(spark, lake_dir, tables.QUARANTINE_EVENTS) == quarantined

    # the SparkSubmitOperator's application: the same step under a real spark-submit
    import pyspark

    submit = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")
    proc = subprocess.run([submit, "--master", "local[1]", os.path.join(ROOT, "graphlake", "app", "pipeline.py"),
                           "validate_graph", "--lake", lake_dir, "--ds", "2024-01-01"], cwd=str(tmp_path),
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYSPARK_PYTHON": sys.executable,
                               "PYSPARK_DRIVER_PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["success"] is True and result["graph_version"] == 1 and result["ds"] == "2024-01-01"
