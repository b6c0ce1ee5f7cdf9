"""Full cluster checks (marker ``cluster_full``, ``make cluster-test``; minutes each): the whole
pipeline on the cluster vs local mode, a worker SIGKILLed while ``graph build`` runs, training
through ``horovod.spark.run`` and TorchDistributor on the cluster's executors, and a killed rank
followed by ``--resume``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from graphlake.app.cluster import LocalCluster, free_port, log_tail, running_tasks
from graphlake.assets.schema import FILES_DIR, INDEX_FILE, KEY, META_FILE, NODE_ID
from graphlake.core import lake, tables
from graphlake.training.config import TrainConfig, config_json
from graphlake.training.distributed.launch import _descendants
from graphlake.training.run import TrainRun
from tests.conftest import assert_same_rows
from tests.test_cluster import (
    GRAPH_CONFIG,
    assert_same_lakes,
    assert_same_summaries,
    assert_same_tables,
    json_lines,
    lake_tables,
    pipeline_steps,
    run_driver,
    run_in_process,
)
from tests.test_distributed import require_horovod
from tests.test_training import BASE
from tests.test_training_distributed import CONFIG, _last_epoch_loss, local_run, rank_process  # noqa: F401 - fixture

pytestmark = pytest.mark.cluster_full


# training and publishing on top of the graph: one tiny epoch with the local backend in the
# driver (the model is the same process either way; the snapshot export, the embedding tables and
# the asset tables and files are Spark's work on the executors)
TRAIN_CONFIG = {"train": {"epochs": 1, "batch_size": 256, "fanouts": [5, 3], "validation_fraction": 0.1,
                          "model": {"hidden_dim": 16}}}
RUN_ID, SEED = "cmp", "3"
# registry columns that do not name a run's time, code or paths
REGISTRY_COMPARED = ("asset", "version", "node_type", "graph_version", "run_id", "config_hash", "metrics", "dim",
                     "row_count", "status", "table_version", "base_version")


def full_pipeline_steps(root: str, lake_dir: str, extra: list[str] = ()) -> list[list[str]]:
    """generate -> etl -> graph build -> train (run ``cmp``, seed 3) -> publish."""
    config = os.path.join(root, "train.yaml")
    with open(config, "w") as f:
        yaml.safe_dump(TRAIN_CONFIG, f)
    common = ["--lake", lake_dir, "--json", "--seed", SEED, *extra]
    return [*pipeline_steps(root, lake_dir, extra),
            ["train", "--config", config, "--run-id", RUN_ID, *common],
            ["publish", "--run-id", RUN_ID, *common]]


@pytest.fixture(scope="module")
def local_lake(spark, tmp_path_factory):
    """The whole pipeline in local mode (this process's session): ``(lake_dir, summaries)``."""
    root = str(tmp_path_factory.mktemp("local_pipeline"))
    lake_dir = os.path.join(root, "lake")
    return lake_dir, run_in_process(full_pipeline_steps(root, lake_dir))


def _asset_files(lake_dir: str) -> dict[str, str]:
    """{path under assets/files: sha256} of every asset file but ``meta.json`` (it names times and
    paths); a Parquet folder written by Spark (``keys.parquet``: part-file names hold a write UUID)
    counts as one entry, the sha256 of its rows in key order."""
    import pyarrow.parquet as pq

    found = {}
    root = os.path.join(lake_dir, FILES_DIR)
    for folder, dirs, files in os.walk(root):
        for name in [d for d in dirs if d.endswith(".parquet")]:
            rows = pq.read_table(os.path.join(folder, name)).sort_by([(c, "ascending") for c in (KEY, NODE_ID)])
            found[os.path.relpath(os.path.join(folder, name), root)] = hashlib.sha256(
                json.dumps(rows.to_pydict(), sort_keys=True, default=str).encode()).hexdigest()
        dirs[:] = [d for d in dirs if not d.endswith(".parquet")]
        for name in files:
            if name != META_FILE:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    found[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return found


@pytest.mark.timeout(1800)
def test_pipeline_on_cluster_matches_local_mode(spark, local_cluster, local_lake, tmp_path):
    """generate, etl, graph build, train and publish with ``--master spark://...``: the same
    summaries, every Delta table with the same rows (embedding and asset tables exactly), the same
    registry entries and byte-identical asset files (vectors, keys, index)."""
    lake_dir = str(tmp_path / "lake")
    steps = full_pipeline_steps(str(tmp_path), lake_dir, ["--master", local_cluster.master_url,
                                                          *local_cluster.conf_args()])
    summaries = run_driver(steps, timeout_s=1700)
    assert_same_summaries(summaries[:3], local_lake[1][:3])
    (train_c, publish_c), (train_l, publish_l) = summaries[3:], local_lake[1][3:]
    assert (train_c["steps"], train_c["validation"]) == (train_l["steps"], train_l["validation"])
    assert {k: (r["version"], r["rows"], r["index"]) for k, r in publish_c["assets"].items()} == \
        {k: (r["version"], r["rows"], r["index"]) for k, r in publish_l["assets"].items()}
    names = assert_same_lakes(spark, lake_dir, local_lake[0])
    assert {"clean/events", "graph/id_map_user", "graph/edges_user__click__item", "train/embeddings_user",
            "emb/item_embeddings", tables.ASSETS_REGISTRY} <= set(names), names
    registry = [lake.read_table(spark, tables.table_path(d, tables.ASSETS_REGISTRY)).select(*REGISTRY_COMPARED)
                for d in (lake_dir, local_lake[0])]
    assert_same_rows(*registry)
    files = _asset_files(lake_dir)
    assert files == _asset_files(local_lake[0]) and any(f.endswith(INDEX_FILE) for f in files), files


def _kill_when_busy(cluster: LocalCluster, proc: subprocess.Popen, ui_url: str, min_jobs: int,
                    timeout_s: float) -> tuple[int, dict]:
    """SIGKILL the worker running one of the application's tasks once ``min_jobs`` jobs succeeded;
    returns (worker index, the application's state at that moment)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        state = running_tasks(ui_url)
        if state.get("jobs_succeeded", 0) >= min_jobs and state["active_stages"] and state["busy_executors"]:
            worker = cluster.worker_of_executor(state["busy_executors"][0])
            if worker is not None:
                cluster.kill_worker(worker)
                return worker, state
        time.sleep(0.2)
    out = proc.communicate(timeout=60)[0] if proc.poll() is not None else ""
    pytest.fail(f"no running task to kill within {timeout_s} s (exit {proc.poll()}):\n{out[-2000:]}")


def _assert_no_partial_versions(actual_dir: str, expected_dir: str, names: list[str]) -> None:
    """Every table has exactly the commits of the undisturbed run, each a complete JSON log entry,
    and no data file outside a commit (no staging leftovers of the killed tasks)."""
    for name in names:
        a, b = os.path.join(actual_dir, name), os.path.join(expected_dir, name)
        assert lake.table_version(a) == lake.table_version(b), name
        for entry in sorted(os.listdir(os.path.join(a, lake.DELTA_LOG_DIR))):
            if entry.endswith(".json"):
                with open(os.path.join(a, lake.DELTA_LOG_DIR, entry)) as f:
                    [json.loads(line) for line in f]
        assert lake.cleanup(a, older_than_s=0, dry_run=True) == [], f"{name}: uncommitted files left"


@pytest.mark.timeout(3000)
def test_worker_killed_during_graph_build(spark, local_lake, tmp_path):
    """One of the two workers (with its executor and Python workers) is SIGKILLed while a stage of
    ``graph build`` runs: Spark reruns the lost tasks on the other worker, the build commits, and
    the graph equals the undisturbed local build, with no extra or partial table version."""
    reference = local_lake[0]
    lake_dir, config = str(tmp_path / "lake"), str(tmp_path / "graph.yaml")
    shutil.copytree(os.path.join(reference, "clean"), os.path.join(lake_dir, "clean"))
    with open(config, "w") as f:
        yaml.safe_dump(GRAPH_CONFIG, f)
    ui_port = free_port()
    with LocalCluster(str(tmp_path / "cluster"), workers=2) as cluster:
        cmd = [sys.executable, "-m", "graphlake.app.cli", "graph", "build", "--lake", lake_dir, "--config", config,
               "--no-validate", "--json", "--master", cluster.master_url,
               *cluster.conf_args(**{"spark.ui.enabled": "true", "spark.ui.port": str(ui_port)})]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            worker, state = _kill_when_busy(cluster, proc, f"http://127.0.0.1:{ui_port}", min_jobs=3,
                                            timeout_s=600)
            try:
                out = proc.communicate(timeout=1800)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail(f"graph build did not finish within 1800 s after worker {worker} was killed "
                            f"({state}); output:\n{proc.communicate()[0][-3000:]}\nmaster log "
                            f"{cluster.log_path('master')}:\n{log_tail(cluster.log_path('master'))}")
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, f"graph build failed after worker {worker} was killed:\n{out[-3000:]}"
        alive = cluster.alive_workers()
        assert len(alive) == 1, f"expected the killed worker gone from the master: {alive}"
    print(f"killed worker {worker} after {state['jobs_succeeded']} jobs, executors busy {state['busy_executors']}")
    summary = json_lines(out)[-1]
    assert summary["graph_version"] == local_lake[1][2]["graph_version"]
    assert summary["edge_counts"] == local_lake[1][2]["edge_counts"]
    graph_tables = [n for n in lake_tables(reference) if n.startswith("graph/")]
    assert [n for n in lake_tables(lake_dir) if n.startswith("graph/")] == graph_tables
    assert_same_tables(spark, lake_dir, reference, graph_tables)
    _assert_no_partial_versions(lake_dir, reference, graph_tables)


# ------------------------------------------------------------------------------ training


def _train_cmd(cluster: LocalCluster, lake_dir: str, yaml_path: str, backend: str, run_id: str,
               *extra: str) -> list[str]:
    return [sys.executable, "-m", "graphlake.app.cli", "train", "--lake", lake_dir, "--config", yaml_path,
            "--backend", backend, "--workers", "2", "--launcher", "spark", "--run-id", run_id, "--json",
            "--master", cluster.master_url, *cluster.conf_args(), *extra]


def _write_config(path, config: TrainConfig) -> str:
    path.write_text(yaml.safe_dump({"train": json.loads(config_json(config))}))
    return str(path)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["horovod", "ddp"])
def test_training_on_cluster_learns_like_one_process(planted, local_run, local_cluster, tmp_path, backend):  # noqa: F811
    """horovod.spark.run / TorchDistributor: 2 ranks as tasks on the 2 workers' executors, reading
    the snapshot from the shared lake; the same steps and loss curve as one process."""
    if backend == "horovod":
        require_horovod()
    lake_dir, _ = planted
    local, _ = local_run
    run_id = f"cluster-{backend}"
    start = time.monotonic()
    out = subprocess.run(_train_cmd(local_cluster, lake_dir, _write_config(tmp_path / "t.yaml", CONFIG), backend,
                                    run_id, "--timeout", "600"), capture_output=True, text=True, timeout=800)
    seconds = time.monotonic() - start
    assert out.returncode == 0, f"{backend} on the cluster failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    summary = json_lines(out.stdout)[-1]
    print(f"{backend} on the cluster: {seconds:.1f} s")
    assert summary["workers"] == 2 and summary["steps"] == local["steps"]
    assert _last_epoch_loss(summary) < 0.3 and abs(_last_epoch_loss(summary) - _last_epoch_loss(local)) <= 0.1
    app_names = [a["name"] for a in local_cluster.state()["completedapps"]]
    assert "graphlake-train" in app_names, app_names


@pytest.mark.timeout(1200)
def test_killed_rank_on_cluster_fails_clearly_and_resume_completes(planted, local_cluster, tmp_path):
    require_horovod()
    lake_dir, _ = planted
    config = TrainConfig(**{**BASE, "epochs": 40, "batch_size": 32, "checkpoint_every": 25}, seed=8)
    yaml_path = _write_config(tmp_path / "t.yaml", config)
    cmd = _train_cmd(local_cluster, lake_dir, yaml_path, "horovod", "cluster-killed", "--timeout", "600")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = TrainRun.of(lake_dir, "cluster-killed").dir
    latest = os.path.join(run_dir, "checkpoints", "LATEST")
    deadline, victim = time.time() + 600, None
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(latest):
            # horovod's task service starts the rank in a new session (setsid), outside the workers'
            # process groups: it is a descendant of a worker's executor
            below_workers = {pid for worker in local_cluster.worker_pids for pid in _descendants(worker)}
            victim = rank_process(run_dir, 1, below_workers)
            if victim is not None:
                victim.send_signal(signal.SIGKILL)
                break
        time.sleep(0.1)
    out, _ = proc.communicate(timeout=700)
    assert victim is not None, f"no rank 1 found to kill before the run ended:\n{out[-2000:]}"
    assert proc.returncode == 1, out[-3000:]
    assert "horovod launch failed" in out and "--resume --run-id cluster-killed" in out, out[-3000:]
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=800)
    assert resumed.returncode == 0, f"resume failed:\n{resumed.stdout[-3000:]}\n{resumed.stderr[-3000:]}"
    summary = json_lines(resumed.stdout)[-1]
    assert summary["workers"] == 2 and summary["steps"] > 0
    assert len(local_cluster.alive_workers()) == 2


@pytest.mark.timeout(300)
def test_worker_that_cannot_start_names_master_and_log(tmp_path):
    """A worker that exits at start (an invalid --memory): ClusterError with the master URL, the
    worker's log file and its last lines; the master that did start is stopped."""
    from graphlake.app.cluster import ClusterError

    cluster = LocalCluster(str(tmp_path), workers=1, memory="lots", register_timeout_s=120)
    with pytest.raises(ClusterError, match=r"worker-0 of spark://127\.0\.0\.1:\d+ exited with code") as info:
        cluster.start()
    assert os.path.join(str(tmp_path), "logs", "worker-0.log") in str(info.value)
    assert cluster.process_group_pids() == []
