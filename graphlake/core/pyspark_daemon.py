"""PySpark's Python worker daemon without a per-task cost of Python 3.10 and 3.11.

Spark starts its Python workers with ``python -m <spark.python.daemon.module> pyspark.worker``;
graphlake's sessions name this module (``spark.python.daemon.module`` in
:data:`graphlake.core.spark._DEFAULT_CONF`; a user's own setting wins).

Why: before every task, PySpark's worker calls :func:`importlib.invalidate_caches`
(``pyspark.worker_util.setup_spark_files``). On Python 3.10 and 3.11, a zip archive's importer
answers that by re-reading the archive's whole directory in pure Python, and Spark puts three
archives on every worker's ``sys.path``: ``pyspark.zip``, py4j's zip and the spark-core jar. Measured
here (Python 3.11, pip-installed pyspark 4.1): 0.2 s of CPU per task, about half of the Python
workers' CPU in ``graphlake demo``. Python 3.12 made that invalidation lazy (CPython gh-103200).

What this module changes:

- on Python < 3.12 only, invalidating the importer of an archive that was on ``sys.path`` when the
  daemon started (Spark's own: they do not change while a worker lives) does nothing; any other
  archive (a ``--py-files`` zip added later) is invalidated as before;
- numpy, pyarrow, pandas and ``pyspark.worker`` are imported once in the daemon, whose forked workers
  share them, and the daemon's objects are frozen (:func:`gc.freeze`) before it forks, so the
  ``gc.collect()`` PySpark runs after every task of a reused worker skips them.

Then it runs :func:`pyspark.daemon.manager` unchanged.

Example (what graphlake's sessions set; any PySpark session can)::

    SparkSession.builder.config("spark.python.daemon.module", "graphlake.core.pyspark_daemon")
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import zipimport

# what every graphlake Python task uses (they are all Arrow-based: mapInPandas, mapInArrow, pandas UDFs)
_SHARED_MODULES = ("numpy", "pyarrow", "pandas", "pyspark.worker")
# the archives on sys.path at the daemon's start: Spark's pyspark.zip, py4j zip and jar
_STARTUP_ARCHIVES = frozenset(p for p in sys.path if p.endswith((".zip", ".jar")))


def keep_startup_archives(original=zipimport.zipimporter.invalidate_caches):
    """Make :meth:`zipimport.zipimporter.invalidate_caches` a no-op for the archives of
    ``_STARTUP_ARCHIVES`` (Python < 3.12; later versions invalidate lazily and are left alone).

    Returns:
        bool: whether the importer was patched.
    """
    if sys.version_info >= (3, 12):
        return False

    def invalidate_caches(self):
        if self.archive in _STARTUP_ARCHIVES:
            return None
        return original(self)

    zipimport.zipimporter.invalidate_caches = invalidate_caches
    return True


def main() -> None:
    keep_startup_archives()
    import gc

    from pyspark import daemon  # reads the worker module from sys.argv[1], as under ``-m pyspark.daemon``

    for name in _SHARED_MODULES:  # imported once here, not once per worker: the workers are forked
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # the daemon's objects move to the permanent generation: the gc.collect() PySpark runs after
    # every task in a reused worker no longer walks them (the pre-fork pattern of the gc docs)
    gc.freeze()
    daemon.manager()


if __name__ == "__main__":
    main()
