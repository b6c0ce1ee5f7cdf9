"""One session-scoped Spark for the whole suite, plus small shared helpers.

``make test`` runs three xdist workers; the costly read-only fixtures (``demo_run``, ``tiny_graph``)
are built once per test session, not once per worker (:func:`shared_across_workers`).
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from filelock import FileLock

from graphlake.core.spark import read_spark_defaults

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: see graphlake.app.cli.main
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


# Every Spark JVM the suite starts reads tests/spark-conf/spark-defaults.conf (tiny-data settings: two
# shuffle partitions, no whole-stage codegen, the C1 JIT and the serial GC; why and what they save: that
# file). Subprocesses (graphlake commands, DAG runs, the cluster's drivers) inherit $SPARK_CONF_DIR; the
# Spark Connect server has its own conf folder and is given TEST_SPARK_CONF. Users' sessions keep
# graphlake's defaults (graphlake.core.spark).
TEST_SPARK_CONF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spark-conf")
os.environ["SPARK_CONF_DIR"] = TEST_SPARK_CONF_DIR  # hermetic: not the developer's own Spark settings


TEST_SPARK_CONF = read_spark_defaults(os.path.join(TEST_SPARK_CONF_DIR, "spark-defaults.conf"))


def shared_across_workers(tmp_path_factory, worker_id: str, name: str, build):
    """``build(folder)`` once per test session: the first xdist worker that asks builds it under a
    file lock and leaves its JSON-able result beside the workers' temp folders; the others wait
    for the lock and read that result. Only for fixtures no test changes (tests copy them first).
    A failed build leaves no result, so the next worker that asks builds again (and fails alike)."""
    if worker_id == "master":  # not under xdist
        return build(tmp_path_factory.mktemp(name))
    result = tmp_path_factory.getbasetemp().parent / f"shared-{name}.json"
    with FileLock(f"{result}.lock"):
        if result.is_file():
            return json.loads(result.read_text())
        value = build(tmp_path_factory.mktemp(name))
        result.write_text(json.dumps(value))
        return value


@pytest.fixture(scope="session")
def spark():
    from graphlake.core.spark import get_spark

    s = get_spark(
        master="local[2]",
        app_name="graphlake-tests",
        conf={"spark.default.parallelism": "4", "spark.ui.enabled": "false"},  # + TEST_SPARK_CONF: the conf dir
    )
    yield s
    s.stop()


@pytest.fixture(scope="session")
def planted(spark, tmp_path_factory):
    """A lake with the planted-community dataset (tests/planted.py) imported, built and exported:
    ``(lake_dir, snapshot_dir)``. Shared by the training tests (training never changes it)."""
    from graphlake.etl.importers import import_dataset
    from graphlake.graph_build.config import GraphConfig
    from graphlake.graph_build.export import export_graph
    from graphlake.graph_build.job import build_graph
    from tests.planted import write_planted

    root = tmp_path_factory.mktemp("planted")
    write_planted(str(root / "data"))
    lake_dir = str(root / "lake")
    import_dataset(spark, "lightgcn", str(root / "data"), lake_dir)
    build_graph(spark, lake_dir, GraphConfig(text_model="hashing", text_dim=16), build_docs=False)
    return lake_dir, export_graph(spark, lake_dir)["path"]


def assert_same_rows(actual, expected):
    """Compare two DataFrames exactly, both directions (as multisets of rows)."""
    assert actual.columns == expected.columns, (actual.columns, expected.columns)
    assert actual.exceptAll(expected).count() == 0, actual.exceptAll(expected).collect()[:5]
    assert expected.exceptAll(actual).count() == 0, expected.exceptAll(actual).collect()[:5]


@pytest.fixture(scope="session")
def tiny_graph(spark, tmp_path_factory, worker_id):
    """A lake with the tiny hand-checkable graph of tests/asset_fixtures.py built (graph v0), one
    per test session. Tests that change it take a copy: ``shutil.copytree(tiny_graph, their_dir)``."""
    from tests.asset_fixtures import build_tiny_graph

    def build(root) -> str:
        lake_dir = str(root / "lake")
        build_tiny_graph(spark, lake_dir)
        return lake_dir

    return shared_across_workers(tmp_path_factory, worker_id, "tiny_graph", build)


@pytest.fixture(scope="session")
def published_tiny(spark, tiny_graph, tmp_path_factory, worker_id):
    """The ``tiny_graph`` lake with the hand-made run ``hand-1`` (tests/asset_fixtures.py) published
    and promoted (gate ``nn_k=2``, top-K tables included): asset version 1 of each node type, one per
    test session, for the tests that only read it (test_udfs, test_exit_codes); a test that changes
    it takes a copy."""
    import shutil

    from graphlake.assets.config import AssetConfig
    from graphlake.assets.publish import publish
    from tests.asset_fixtures import hand_run

    def build(root) -> str:
        lake_dir = str(root / "lake")
        shutil.copytree(tiny_graph, lake_dir)
        hand_run(spark, lake_dir, "hand-1")
        publish(spark, lake_dir, config=AssetConfig(nn_k=2), promote=True, build_docs=False)
        return lake_dir

    return shared_across_workers(tmp_path_factory, worker_id, "published_tiny", build)


@pytest.fixture(scope="session")
def demo_run(spark, tmp_path_factory, worker_id):
    """``(lake_dir, summary, stdout)`` of ``graphlake demo --json`` on ~4000 generated events: every
    stage once per test session, shared by tests/test_demo.py, test_report.py, test_cluster.py and
    test_embed_new.py (it is the slowest fixture; none of them changes the lake)."""
    import contextlib
    import io

    from graphlake.app import cli

    def build(root) -> list:
        lake_dir, out = str(root / "lake"), io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(["demo", "--lake", lake_dir, "--raw", str(root / "raw"), "--events", "4000",
                             "--json"]) == 0
        text = out.getvalue()
        return [lake_dir, json.loads(text.strip().splitlines()[-1]), text]

    return tuple(shared_across_workers(tmp_path_factory, worker_id, "demo", build))


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory):
    """A Spark standalone master + 2 one-core workers on 127.0.0.1 (:mod:`graphlake.app.cluster`),
    stopped by PID at the end of the session, also when a test fails."""
    from graphlake.app.cluster import LocalCluster

    cluster = LocalCluster(str(tmp_path_factory.mktemp("cluster")), workers=2, cores=1, memory="1g")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        left = cluster.process_group_pids()
        assert not left, f"cluster processes left running after stop(): {left}"
