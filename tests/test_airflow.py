"""The ``graphlake_daily`` DAG: parse integrity, and real ``dag.test()`` runs over two logical dates
plus a re-run (backfill) of the first, on a tiny generated dataset, in a temp ``AIRFLOW_HOME``.

Airflow runs in a subprocess (tests/airflow_runner.py): it reads ``AIRFLOW_HOME`` at import.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from graphlake.core import lake, tables
from tests.conftest import TEST_SPARK_CONF_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAIN = ["etl", "validate_etl", "build_graph", "validate_graph", "train", "evaluate", "publish", "gate", "promote",
         "report"]
# pytest-timeout of each test of one DAG run of the whole chain (setup included): the first, cold run
# is the longest (516 s measured on 2 cores at load average 10-16); the margin is for a loaded machine
RUN_TIMEOUT = 600
STEP_TIMEOUT = 420  # the spark-submit and the backfill: a few minutes at most when loaded
WAIT = STEP_TIMEOUT - 30  # s, a test's own wait for its subprocess: fails first, with the subprocess's output


def _runner_env(env: dict | None = None) -> dict:
    # the DAG's Spark sessions with the test session's settings: tests/spark-conf (graphlake's defaults
    # yield to spark-defaults.conf: graphlake.core.spark.user_conf_keys)
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "GRAPHLAKE_RETRIES": "0", "SPARK_CONF_DIR": TEST_SPARK_CONF_DIR,
            **(env or {})}


def _runner(args: list[str], home: str, env: dict | None = None, timeout: int = WAIT) -> list[dict]:
    """Run tests/airflow_runner.py to the end; its JSON lines. ``timeout``: below the test's own."""
    try:
        proc = subprocess.run([sys.executable, "-m", "tests.airflow_runner", "--home", home, *args], cwd=ROOT,
                              env=_runner_env(env), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out, err = (o.decode(errors="replace") if isinstance(o, bytes) else o or "" for o in (exc.stdout, exc.stderr))
        pytest.fail(f"runner still running after {timeout} s:\n{out[-4000:]}\n{err[-6000:]}")
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


# --- the daily DAG over two dates, then a backfill: one lake, several tests in file order ---------------
#
# The tests below share one module-scoped lake (``daily``) and run in file order (pytest-xdist's
# ``--dist loadfile`` keeps a file's tests on one worker, in order: Makefile). Each one records that it
# passed (``daily.passed``); a test needing an earlier one's state skips, naming it, when that test did
# not pass, and runs all its assertions when it did. The two dated runs are ONE runner process (one
# Airflow start, one warm Spark for both runs) that prints a line per DAG run as it finishes: the first
# test reads the first line, the second test the second, so each test's time is its own run's.


class DailyLake:
    """The shared state: lake, configs, ``AIRFLOW_HOME``, the runner of the two dated runs."""

    def __init__(self, root, raw: str):
        self.root, self.raw = str(root), raw
        self.lake_dir, self.home = str(root / "lake"), str(root / "home")
        train_yaml, graph_yaml, assets_yaml = root / "train.yaml", root / "graph.yaml", root / "assets.yaml"
        train_yaml.write_text("train:\n  epochs: 1\n  batch_size: 512\n  fanouts: [5, 3]\n"
                              "  validation_fraction: 0.1\n  lr: 0.01\n  model: {hidden_dim: 16}\n")
        graph_yaml.write_text("graph:\n  text_model: hashing\n  text_dim: 16\n")
        assets_yaml.write_text("assets:\n  min_category_lift: 1.0\n  max_regression: 0.5\n")  # 300 users: noisy
        self.conf = {"backend": "ddp", "workers": 2, "train_config": str(train_yaml),
                     "graph_config": str(graph_yaml), "asset_config": str(assets_yaml)}
        self.passed: set[str] = set()
        self.proc: subprocess.Popen | None = None
        self.out, self.err = os.path.join(self.root, "runner.out"), os.path.join(self.root, "runner.err")
        self.runs: list[dict] = []  # the dated runs' lines read so far

    def require(self, test_name: str, what: str) -> None:
        """Skip (naming ``test_name``) unless that earlier test passed: the state it leaves is needed."""
        if test_name not in self.passed:
            pytest.skip(f"needs {what} from {test_name}, which did not pass (failed, skipped or deselected)")

    def runner_args(self, *args: str) -> list[str]:
        return ["--lake", self.lake_dir, "--raw", self.raw, "--conf", json.dumps(self.conf), *args]

    def start(self, *dates: str) -> None:
        """Start the runner for ``dates`` in the background (its own process group: DDP ranks included)."""
        assert self.proc is None
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.airflow_runner", "--home", self.home,
                                          *self.runner_args(*dates)], cwd=ROOT, env=_runner_env(), stdout=out,
                                         stderr=err, text=True, start_new_session=True)

    def _output(self) -> str:
        with open(self.out) as f1, open(self.err) as f2:
            return f"runner stdout:\n{f1.read()[-4000:]}\nrunner stderr:\n{f2.read()[-6000:]}"

    def next_run(self, timeout: float = RUN_TIMEOUT - 60) -> dict:
        """The next dated run's line (``{"ds", "state", "tasks", "seconds"}``), as soon as it is printed."""
        try:
            return self._next_run(timeout)
        except BaseException:  # pytest-timeout's too: show how far the runner got
            print(self._output())
            raise

    def _next_run(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None  # before reading: a line printed before exit is seen
            with open(self.out) as f:
                complete = f.read().split("\n")[:-1]  # whole lines only
            lines = [json.loads(line) for line in complete if line.startswith("{")]
            assert all("ds" in line for line in lines), f"runner failed:\n{self._output()}"  # e.g. import errors
            if len(lines) > len(self.runs):
                run = lines[len(self.runs)]
                self.runs.append(run)
                print(f"dag run {run['ds']}: task seconds {run['seconds']}")  # shown with -s / on failure
                return run
            assert not exited, f"runner exited ({self.proc.returncode}) before run {len(self.runs) + 1}:\n" \
                               f"{self._output()}"
            assert time.monotonic() < deadline, f"no DAG run line within {timeout:.0f} s:\n{self._output()}"
            time.sleep(1)

    def wait_exit(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"runner still running {timeout} s after its last DAG run:\n{self._output()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:  # a test failed or timed out mid-run
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group this fixture started, by its id
            except ProcessLookupError:
                pass
            self.proc.wait(30)


@pytest.fixture(scope="module")
def daily(tmp_path_factory, raw_two_days):
    state = DailyLake(tmp_path_factory.mktemp("airflow-daily"), raw_two_days)
    yield state
    state.stop()


@pytest.mark.slow
def test_raw_logs_of_two_dates(daily):
    """The fixture's raw log contract (one ``events/dt=`` folder per date); its setup is the
    generation, so the first DAG run's test times the run alone."""
    days = sorted(d for d in os.listdir(os.path.join(daily.raw, "events")) if d.startswith("dt="))
    assert days == ["dt=2024-01-01", "dt=2024-01-02"]


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_dag_run_of_the_first_date(daily):
    daily.start("2024-01-01", "2024-01-02")  # the second date's run goes on while the next test starts
    run = daily.next_run()
    assert run["ds"] == "2024-01-01"
    assert run["state"] == "success" and run["tasks"] == {t: "success" for t in CHAIN}, run
    # the outputs as Airflow Assets: a downstream DAG can be scheduled on a new production embedding
    assert sorted((e["task"], e["name"]) for e in run["asset_events"]) == [
        ("build_graph", "graphlake.graph.manifest"), ("etl", "graphlake.clean.events"),
        ("promote", "graphlake.assets.recommendations"), ("promote", "graphlake.assets.similar_items"),
        ("promote", "graphlake.emb.item_embeddings"), ("promote", "graphlake.emb.user_embeddings")], run
    for e in run["asset_events"]:
        assert e["uri"].startswith("file://") and e["extra"]["lake"] == os.path.abspath(daily.lake_dir), e
        assert e["extra"]["ds"] == "2024-01-01" and e["extra"].get("production", {"item_embeddings": 1,
                                                                                "user_embeddings": 1}) == {
            "item_embeddings": 1, "user_embeddings": 1}, e
    daily.passed.add("test_dag_run_of_the_first_date")


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_dag_run_of_the_second_date_trains_warm_and_promotes(spark, daily):
    from graphlake.assets.registry import read_registry

    daily.require("test_dag_run_of_the_first_date", "the DAG run of 2024-01-01 (model, assets v1, graph v0)")
    run = daily.next_run()
    assert [r["ds"] for r in daily.runs] == ["2024-01-01", "2024-01-02"]
    assert run["state"] == "success" and run["tasks"] == {t: "success" for t in CHAIN}, run
    promoted = [e["extra"]["production"] for e in run["asset_events"] if e["task"] == "promote"]
    assert promoted == [{"item_embeddings": 2, "user_embeddings": 2}] * 4, run["asset_events"]
    assert daily.wait_exit() == 0, f"runner failed ({daily.proc.returncode}):\n{daily._output()}"
    lake_dir = daily.lake_dir

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
    daily.passed.add("test_dag_run_of_the_second_date_trains_warm_and_promotes")


@pytest.mark.slow
@pytest.mark.timeout(STEP_TIMEOUT)
def test_pipeline_app_under_spark_submit_validates_the_graph(daily):
    """The SparkSubmitOperator's application: the same step under a real spark-submit, on the graph of
    the second run (v1; it only reads, and runs before the backfill, which does not build a graph)."""
    import pyspark

    daily.require("test_dag_run_of_the_second_date_trains_warm_and_promotes", "graph v1 of the 2024-01-02 run")
    submit = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")
    proc = subprocess.run([submit, "--master", "local[1]", os.path.join(ROOT, "graphlake", "app", "pipeline.py"),
                           "validate_graph", "--lake", daily.lake_dir, "--ds", "2024-01-01"], cwd=daily.root,
                          env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYSPARK_PYTHON": sys.executable,
                               "PYSPARK_DRIVER_PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["success"] is True and result["graph_version"] == 1 and result["ds"] == "2024-01-01"


@pytest.mark.slow
@pytest.mark.timeout(STEP_TIMEOUT)
def test_backfill_of_the_first_date_replaces_its_partitions(spark, daily):
    """2024-01-01 again after 2024-01-02: its ETL and validation run; the later tasks are marked done to
    keep the suite short (graph_build's events_until is tested in test_graph_build.py)."""
    daily.require("test_dag_run_of_the_second_date_trains_warm_and_promotes", "the lake of both dated runs")
    lake_dir = daily.lake_dir
    after_etl = "^(build_graph|validate_graph|train|evaluate|publish|gate|promote|report)$"
    before = _counts_by_dt(spark, lake_dir)
    quarantined = _counts_by_dt(spark, lake_dir, tables.QUARANTINE_EVENTS)
    assert sorted(before) == ["2024-01-01", "2024-01-02"] and all(n > 0 for n in before.values())
    (rerun,) = _runner(daily.runner_args("--mark-success", f"2024-01-01={after_etl}", "2024-01-01"), daily.home,
                       timeout=WAIT)
    assert rerun["state"] == "success", rerun
    assert _counts_by_dt(spark, lake_dir) == before  # the date's partitions replaced, not appended
    assert rerun["tasks"]["etl"] == rerun["tasks"]["validate_etl"] == "success"
    assert _counts_by_dt(spark, lake_dir, tables.QUARANTINE_EVENTS) == quarantined
