"""One session-scoped Spark for the whole suite, plus small shared helpers."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: see graphlake.app.cli.main
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    from graphlake.core.spark import get_spark

    s = get_spark(
        master="local[2]",
        app_name="graphlake-tests",
        conf={
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "4",
            "spark.ui.enabled": "false",
        },
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
def tiny_graph(spark, tmp_path_factory):
    """A lake with the tiny hand-checkable graph of tests/asset_fixtures.py built (graph v0).
    Tests that change it take a copy: ``shutil.copytree(tiny_graph, their_dir)``."""
    from tests.asset_fixtures import build_tiny_graph

    lake_dir = str(tmp_path_factory.mktemp("tiny_graph") / "lake")
    build_tiny_graph(spark, lake_dir)
    return lake_dir


@pytest.fixture(scope="session")
def demo_run(spark, tmp_path_factory):
    """``(lake_dir, summary, stdout)`` of ``graphlake demo --json`` on ~4000 generated events: every
    stage once, shared by tests/test_demo.py and tests/test_report.py (it is the slowest fixture)."""
    import contextlib
    import io
    import json

    from graphlake.app import cli

    root = tmp_path_factory.mktemp("demo")
    lake_dir, out = str(root / "lake"), io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["demo", "--lake", lake_dir, "--raw", str(root / "raw"), "--events", "4000", "--json"]) == 0
    text = out.getvalue()
    return lake_dir, json.loads(text.strip().splitlines()[-1]), text


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
