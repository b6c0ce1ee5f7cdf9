"""One session-scoped Spark for the whole suite, plus small shared helpers."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    from graphlake.spark import get_spark

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


def assert_same_rows(actual, expected):
    """Compare two DataFrames exactly, both directions (as multisets of rows)."""
    assert actual.columns == expected.columns, (actual.columns, expected.columns)
    assert actual.exceptAll(expected).count() == 0, actual.exceptAll(expected).collect()[:5]
    assert expected.exceptAll(actual).count() == 0, expected.exceptAll(actual).collect()[:5]
