"""graphlake.core.pyspark_daemon: PySpark's worker daemon without the per-task re-read of Spark's
zip archives (Python < 3.12), with the Arrow modules shared by the forked workers."""

from __future__ import annotations

import sys
import zipfile
import zipimport

import pytest

from graphlake.core import pyspark_daemon


def _zip(path, names) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.writestr(name, "x = 1\n")
    return str(path)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12+ invalidates zip importers lazily")
def test_startup_archives_keep_their_directory_and_others_are_reread(tmp_path, monkeypatch):
    spark_zip, user_zip = _zip(tmp_path / "spark.zip", ["a.py"]), _zip(tmp_path / "user.zip", ["a.py"])
    monkeypatch.setattr(pyspark_daemon, "_STARTUP_ARCHIVES", frozenset({spark_zip}))
    monkeypatch.setattr(zipimport.zipimporter, "invalidate_caches", zipimport.zipimporter.invalidate_caches)
    assert pyspark_daemon.keep_startup_archives() is True
    spark_imp, user_imp = zipimport.zipimporter(spark_zip), zipimport.zipimporter(user_zip)
    _zip(tmp_path / "spark.zip", ["a.py", "b.py"])  # both archives change on disk
    _zip(tmp_path / "user.zip", ["a.py", "b.py"])
    spark_imp.invalidate_caches()
    user_imp.invalidate_caches()
    assert sorted(spark_imp._files) == ["a.py"]  # Spark's own archive: not re-read
    assert sorted(user_imp._files) == ["a.py", "b.py"]  # any other archive: re-read as before


def test_graphlake_sessions_run_their_python_tasks_under_the_daemon(spark):
    """The test session is a graphlake session: its Python workers are forked by this module's
    daemon (patched importer, pandas imported before the fork, the daemon's objects frozen)."""
    assert spark.conf.get("spark.python.daemon.module") == "graphlake.core.pyspark_daemon"

    def probe(batches):
        import gc
        import importlib
        import os
        import sys as worker_sys
        import zipimport as zi

        import pandas as pd

        importlib.invalidate_caches()  # what PySpark does before each task
        for _ in batches:
            yield pd.DataFrame({"daemon": [os.path.basename(worker_sys.argv[0])],
                                "patched": [zi.zipimporter.invalidate_caches.__qualname__],
                                "frozen": [gc.get_freeze_count()]})

    row = spark.range(1, numPartitions=1).mapInPandas(probe, "daemon string, patched string, frozen long").first()
    assert row["daemon"] == "pyspark_daemon.py"
    patched = "keep_startup_archives.<locals>.invalidate_caches"
    assert row["patched"] == (patched if sys.version_info < (3, 12) else "zipimporter.invalidate_caches")
    assert row["frozen"] > 10_000  # numpy, pyarrow and pandas' objects, imported before the fork
