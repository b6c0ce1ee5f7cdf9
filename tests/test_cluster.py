"""The pipeline on a real Spark standalone cluster (a master and 2 one-core workers on 127.0.0.1,
:mod:`graphlake.app.cluster`): ``graphlake generate``, ``etl`` and ``graph build`` with
``--master spark://...`` write exactly the tables the same commands write in local mode.

The reduced check of the default suite (marker ``cluster``); the fault and training checks are in
tests/test_cluster_full.py (``make cluster-test``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from graphlake.app.compare import round_floats
from graphlake.core import lake
from tests.conftest import assert_same_rows

pytestmark = pytest.mark.cluster

GENERATE = ["--users", "300", "--items", "120", "--days", "2", "--events", "4000", "--seed", "7"]
# the model-free title features: the check is about the engine, not the text model
GRAPH_CONFIG = {"graph": {"text_model": "hashing", "text_dim": 16}}
# tables whose rows name their run (run ids, wall-clock times): compared by their counts only
RUN_TABLES = ("meta/etl_runs", "graph/manifest", "meta/train_runs", "assets/registry")
# columns that hold the wall-clock time of the run that wrote the row (etl.schema.INGESTED_AT)
RUN_COLUMNS = ("ingested_at",)
# columns naming the raw file a row came from: compared relative to the raw folder
PATH_COLUMNS = ("source_file",)

# runs several CLI commands in ONE driver process (one Spark application, one JVM start): argv is
# a JSON list of argument lists; every command prints its --json summary line
_DRIVER = ("import json, sys\nfrom graphlake.app import cli\n"
           "for argv in json.loads(sys.argv[1]):\n"
           "    code = cli.main(argv)\n"
           "    if code:\n        sys.exit(code)\n")


def pipeline_steps(root: str, lake_dir: str, extra: list[str] = ()) -> list[list[str]]:
    """generate -> etl -> graph build (every command with ``extra``, e.g. ``--master URL``)."""
    raw, config = os.path.join(root, "raw"), os.path.join(root, "graph.yaml")
    with open(config, "w") as f:
        yaml.safe_dump(GRAPH_CONFIG, f)
    common = ["--lake", lake_dir, "--json", *extra]
    return [["generate", "--out", raw, *GENERATE, *common],
            ["etl", "--raw", raw, "--no-validate", *common],
            ["graph", "build", "--config", config, "--no-validate", *common]]


def run_driver(steps: list[list[str]], timeout_s: float = 600, env: dict | None = None) -> list[dict]:
    """Run ``steps`` (CLI argument lists) in a fresh driver process; their JSON summaries.

    Raises:
        AssertionError: the driver failed (its exit code and the end of its output).
    """
    out = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(steps)], capture_output=True, text=True,
                         timeout=timeout_s, env={**os.environ, **(env or {})})
    assert out.returncode == 0, f"driver exited with {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return json_lines(out.stdout)


def json_lines(text: str) -> list[dict]:
    """The JSON object lines of a command's output (the ``--json`` summaries)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def run_in_process(steps: list[list[str]]) -> list[dict]:
    """Run ``steps`` with this process's (local-mode) session; their JSON summaries."""
    from graphlake.app import cli

    summaries = []
    for argv in steps:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(argv) == 0, argv
        summaries.append(json_lines(out.getvalue())[-1])
    return summaries


def lake_tables(lake_dir: str) -> list[str]:
    """Names (``clean/events``...) of every Delta table under ``lake_dir``."""
    names = []
    for root, dirs, _files in os.walk(lake_dir):
        if lake.DELTA_LOG_DIR in dirs:
            names.append(os.path.relpath(root, lake_dir))
            dirs[:] = []
    return sorted(names)


def assert_same_tables(spark, actual_dir: str, expected_dir: str, names) -> None:
    """Tables ``names`` of the two lakes hold the same rows (both directions; run tables: counts)."""
    for name in names:
        a = lake.read_table(spark, os.path.join(actual_dir, name))
        b = lake.read_table(spark, os.path.join(expected_dir, name))
        if name in RUN_TABLES:
            assert a.count() == b.count(), name
            continue
        try:
            assert_same_rows(comparable(a), comparable(b))
        except AssertionError as exc:
            raise AssertionError(f"table {name} differs: {exc}") from None


def comparable(df):
    """``df`` without run metadata: no RUN_COLUMNS, raw paths relative to the raw folder, floats
    rounded to :data:`graphlake.app.compare.FLOAT_DECIMALS` (float aggregates are sums whose order
    depends on how tasks ran)."""
    from pyspark.sql import functions as F

    df = df.drop(*RUN_COLUMNS)
    df = df.select([(F.regexp_replace(F.col(c), r"^.*/raw/", "") if c in PATH_COLUMNS else F.col(c)).alias(c)
                    for c in df.columns])
    return round_floats(df)


def assert_same_lakes(spark, actual_dir: str, expected_dir: str) -> list[str]:
    """Both lakes hold the same tables with the same rows; returns the table names."""
    names = lake_tables(expected_dir)
    assert lake_tables(actual_dir) == names
    assert_same_tables(spark, actual_dir, expected_dir, names)
    return names


def assert_same_summaries(cluster: list[dict], local: list[dict]) -> None:
    """The commands' summaries agree on every count."""
    (_, etl_c, graph_c), (_, etl_l, graph_l) = cluster, local
    assert etl_c["events"] == etl_l["events"]
    for key in ("node_counts", "edge_counts", "graph_version", "config_hash"):
        assert graph_c[key] == graph_l[key], key


@pytest.mark.timeout(1800)  # the demo_run fixture it shares takes minutes on a loaded machine
def test_etl_and_graph_build_on_cluster_match_local_mode(spark, local_cluster, demo_run, tiny_graph,
                                                                   tmp_path):
    """The reduced check: one driver on the cluster runs ``etl`` on the demo's raw logs (compared
    with the ``demo_run`` lake) and ``graph build`` on the clean tables of the ``tiny_graph`` lake
    (compared with its graph): the local references are fixtures the suite builds anyway, so this
    adds only the cluster side. (``generate`` on the cluster: ``make cluster-test``.)"""
    demo_lake, tiny = demo_run[0], str(tmp_path / "tiny")
    shutil.copytree(os.path.join(tiny_graph, "clean"), os.path.join(tiny, "clean"))
    raw, lake_dir = os.path.join(os.path.dirname(demo_lake), "raw"), str(tmp_path / "lake")
    config = str(tmp_path / "graph.yaml")
    with open(config, "w") as f:
        yaml.safe_dump(GRAPH_CONFIG, f)
    on_cluster = ["--json", "--master", local_cluster.master_url, *local_cluster.conf_args()]
    summaries = run_driver([["etl", "--raw", raw, "--lake", lake_dir, "--no-validate", *on_cluster],
                            ["graph", "build", "--lake", tiny, "--config", config, "--no-validate", *on_cluster]])
    apps = local_cluster.state()["completedapps"]
    assert any(app["name"] == "graphlake-etl" for app in apps), \
        f"no graphlake application ran on {local_cluster.master_url}: {[a['name'] for a in apps]}"
    assert len(local_cluster.alive_workers()) == 2
    assert summaries[0]["events"] == demo_run[1]["etl"]["events"]
    assert_same_tables(spark, lake_dir, demo_lake, ["clean/events", "clean/users", "clean/items",
                                                    "quarantine/events"])
    graph_tables = [n for n in lake_tables(tiny_graph) if n.startswith("graph/")]
    assert {"graph/id_map_user", "graph/id_map_item", "graph/edges_user__click__item"} <= set(graph_tables)
    assert_same_tables(spark, tiny, tiny_graph, graph_tables)
    assert summaries[1]["graph_version"] == 0 and sum(summaries[1]["edge_counts"].values()) > 0


def test_harness_rejects_bad_input(tmp_path):
    from graphlake.app.cluster import LocalCluster

    with pytest.raises(ValueError, match=r"workers: expected an int >= 1, got 0"):
        LocalCluster(str(tmp_path), workers=0)
    with pytest.raises(ValueError, match=r"cores: expected an int >= 1, got 'x'"):
        LocalCluster(str(tmp_path), cores="x")
