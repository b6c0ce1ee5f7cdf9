"""Spark session factory shared by every stage.

Every job gets its session from :func:`get_spark`, so the settings the lake layer relies on
(UTC session time zone, Parquet timestamps as INT64 micros, Arrow for pandas UDFs) are set once.

Example:
    >>> from graphlake.core.spark import get_spark
    >>> spark = get_spark(app_name="etl")            # local[*] embedded default
    >>> spark = get_spark(master="spark://host:7077")  # a standalone cluster
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[*]"

# Settings the lake layer and the transforms depend on. A caller's ``conf`` may add to them.
_REQUIRED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # Delta wants INT64 timestamps (micros), not Spark's legacy INT96.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "static",
    # Partition values such as dt=2024-01-01 must stay strings we control, not inferred dates.
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}

_DEFAULT_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "8",
    "spark.driver.memory": "4g",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.ansi.enabled": "false",
    # graphlake's logging: WARN and up to stderr, stdout left to the commands' output
    "spark.driver.extraJavaOptions": "-Dlog4j2.configurationFile=file:"
                                     + os.path.join(os.path.dirname(os.path.abspath(__file__)), "log4j2.properties"),
}


def get_spark(
    master: str | None = None,
    app_name: str = "graphlake",
    conf: Mapping[str, str] | None = None,
    log_level: str = "WARN",
):
    """Return the active SparkSession, or build one.

    Args:
        master: Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``...). ``None`` uses
            ``$GRAPHLAKE_SPARK_MASTER`` or ``local[*]``. Ignored when a session is already active.
        app_name: application name shown in the Spark UI.
        conf: extra Spark settings (strings), applied on top of graphlake's defaults.
        log_level: log level of the SparkContext.

    Returns:
        pyspark.sql.SparkSession
    """
    from pyspark.sql import SparkSession

    if conf is not None and not isinstance(conf, Mapping):
        raise TypeError(f"conf: expected a mapping of Spark settings, got {type(conf).__name__}")
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Executors must run the same interpreter as the driver (the project's venv).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    # under spark-submit (a JVM gateway is already up) the submitted --master applies unless one is given
    if master or os.environ.get("GRAPHLAKE_SPARK_MASTER") or not os.environ.get("PYSPARK_GATEWAY_PORT"):
        builder = builder.master(master or os.environ.get("GRAPHLAKE_SPARK_MASTER", DEFAULT_MASTER))
    settings = {**_DEFAULT_CONF, **dict(conf or {}), **_REQUIRED_CONF}
    for key, value in settings.items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(log_level)
    _quiet_listener_bus(spark)
    return spark


def _quiet_listener_bus(spark) -> None:
    """Silence ``ExecutionListenerBus``: a query that fails analysis and is then handled by the
    caller (Great Expectations tries a window-function filter and falls back) makes PySpark's
    ``Observation`` listener re-raise it in the listener thread, which logs a 250-line stack trace
    at ERROR for an error nobody has. The query's own exception still reaches its caller."""
    try:
        jvm = spark.sparkContext._jvm
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
            "org.apache.spark.sql.util.ExecutionListenerBus", jvm.org.apache.logging.log4j.Level.OFF)
    except Exception as exc:  # a cluster with another logging backend: keep its logging as it is
        log.debug("could not quiet ExecutionListenerBus: %s", exc)


def has_native_delta(spark) -> bool:
    """True when the session runs Delta Lake's own Spark extension (delta-spark JARs present)."""
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    if "io.delta.sql.DeltaSparkSessionExtension" not in extensions:
        return False
    try:
        spark.sparkContext._jvm.java.lang.Class.forName("io.delta.tables.DeltaTable")
    except Exception:  # the JVM raises Py4JJavaError when the class is absent
        return False
    return True
