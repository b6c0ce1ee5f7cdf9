"""Spark session factory shared by every stage.

Every job gets its session from :func:`get_spark`, so the settings the lake layer relies on
(UTC session time zone, Parquet timestamps as INT64 micros, Arrow for pandas UDFs) are set once.

A Spark Connect server works too (``remote="sc://host:15002"``, ``graphlake --remote`` or
``$GRAPHLAKE_SPARK_REMOTE``): graphlake's code then never touches ``sparkContext`` or the JVM
(:func:`is_connect` picks the Connect-safe path where a classic session would use them). The
server must see the lake's folders at the same paths (a shared file system or object store, as
for a cluster's executors) and import graphlake in its Python workers.

Example:
    >>> from graphlake.core.spark import get_spark
    >>> spark = get_spark(app_name="etl")            # local[*] embedded default
    >>> spark = get_spark(master="spark://host:7077")  # a standalone cluster
    >>> spark = get_spark(remote="sc://127.0.0.1:15002")  # a Spark Connect server
"""

from __future__ import annotations

import logging
import os
import re
import shlex
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

# PySpark's worker daemon as graphlake runs it (graphlake/core/pyspark_daemon.py; docs/cluster.md)
PYSPARK_DAEMON_MODULE = "graphlake.core.pyspark_daemon"

_DEFAULT_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "8",
    "spark.driver.memory": "4g",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.ansi.enabled": "false",
    # PySpark's worker daemon minus a per-task cost of Python 3.10/3.11 (0.2 s of CPU a task here)
    "spark.python.daemon.module": PYSPARK_DAEMON_MODULE,
    # graphlake's logging: WARN and up to stderr, stdout left to the commands' output
    "spark.driver.extraJavaOptions": "-Dlog4j2.configurationFile=file:"
                                     + os.path.join(os.path.dirname(os.path.abspath(__file__)), "log4j2.properties"),
}


def get_spark(
    master: str | None = None,
    app_name: str = "graphlake",
    conf: Mapping[str, str] | None = None,
    log_level: str = "WARN",
    remote: str | None = None,
):
    """Return the active SparkSession, or build one.

    Args:
        master: Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``...). ``None`` uses
            ``$GRAPHLAKE_SPARK_MASTER`` or ``local[*]``. Ignored when a session is already active.
        app_name: application name shown in the Spark UI.
        conf: extra Spark settings (strings), applied on top of graphlake's defaults. The
            defaults (``_DEFAULT_CONF``: shuffle partitions, driver memory...) also yield to the
            user's own Spark configuration: ``--conf`` in ``$PYSPARK_SUBMIT_ARGS``,
            ``spark-defaults.conf``, or what spark-submit was given (:func:`user_conf_keys`).
        log_level: log level of the SparkContext (a classic session only).
        remote: Spark Connect URL (``sc://host:port``); ``None`` uses ``$GRAPHLAKE_SPARK_REMOTE``
            when set. Exclusive with ``master``. On Connect, the settings graphlake relies on
            (UTC, INT64 timestamps, ...) and ``conf`` are set on the new session, the server's
            own settings stay otherwise; a ``conf`` key the server fixes at its start (a static
            setting such as ``spark.driver.memory``) raises ``ValueError`` naming it.

    Returns:
        pyspark.sql.SparkSession (a Spark Connect one with ``remote``)

    Raises:
        ValueError: ``remote`` not an ``sc://`` URL, given with ``master``, or a static ``conf`` key on Connect.
    """
    from pyspark.sql import SparkSession

    if conf is not None and not isinstance(conf, Mapping):
        raise TypeError(f"conf: expected a mapping of Spark settings, got {type(conf).__name__}")
    remote = resolve_remote(remote)
    if remote is not None:
        if not isinstance(remote, str) or not remote.startswith("sc://"):
            raise ValueError(f"remote: expected a Spark Connect URL like 'sc://host:15002', got {remote!r}")
        if master:
            raise ValueError(f"master: a Spark master ({master!r}) and a Spark Connect server ({remote!r}) "
                             "exclude each other; the server has its own master")
        return _connect(remote, app_name, conf)
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
    for key, value in session_settings(conf, user_conf_keys()).items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    if is_connect(spark):  # $SPARK_REMOTE turned the builder into a Connect client
        return spark
    spark.sparkContext.setLogLevel(log_level)
    _quiet_listener_bus(spark)
    return spark


def resolve_remote(remote: str | None = None) -> str | None:
    """The Spark Connect URL a session would use: ``remote``, else ``$GRAPHLAKE_SPARK_REMOTE``, else
    ``None`` (a classic session)."""
    return remote or os.environ.get("GRAPHLAKE_SPARK_REMOTE") or None


def session_settings(conf: Mapping[str, str] | None, user_keys=frozenset()) -> dict[str, str]:
    """The settings a new classic session is built with: graphlake's defaults (shuffle partitions,
    driver memory...) except the keys in ``user_keys`` (the user's own Spark configuration sets
    them: :func:`user_conf_keys`), then ``conf``, then the settings graphlake relies on (UTC, INT64
    timestamps...), which nothing undoes.

    Example:
        >>> session_settings({"spark.executor.memory": "2g"}, {"spark.sql.shuffle.partitions"})["spark.driver.memory"]
        '4g'
    """
    defaults = {k: v for k, v in _DEFAULT_CONF.items() if k not in user_keys}
    return {k: str(v) for k, v in {**defaults, **dict(conf or {}), **_REQUIRED_CONF}.items()}


# spark-submit options that stand for a setting (those graphlake has a default for)
_SUBMIT_OPTIONS = {"--driver-memory": "spark.driver.memory"}


def user_conf_keys(environ: Mapping[str, str] | None = None) -> set[str]:
    """The Spark settings the user's own configuration sets, to which graphlake's defaults yield:
    ``--conf key=value`` (and ``--driver-memory``) in ``$PYSPARK_SUBMIT_ARGS``, and the keys of
    ``spark-defaults.conf`` in ``$SPARK_CONF_DIR`` (else ``$SPARK_HOME/conf``). Under spark-submit
    (a JVM gateway is already up) its settings are in the JVM; they are read from there.

    Args:
        environ: the environment to read (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    keys: set[str] = set()
    if env.get("PYSPARK_GATEWAY_PORT") and environ is None:  # under spark-submit: what it was given
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()
        keys.update(k for k, _ in SparkConf().getAll())
    args = shlex.split(env.get("PYSPARK_SUBMIT_ARGS", ""))
    for i, arg in enumerate(args):
        value = args[i + 1] if i + 1 < len(args) else ""
        if arg.startswith("--conf="):
            value, arg = arg[len("--conf="):], "--conf"
        if arg in ("--conf", "-c") and "=" in value:
            keys.add(value.split("=", 1)[0].strip())
        elif arg in _SUBMIT_OPTIONS:
            keys.add(_SUBMIT_OPTIONS[arg])
    conf_dir = env.get("SPARK_CONF_DIR") or (os.path.join(env["SPARK_HOME"], "conf") if env.get("SPARK_HOME") else None)
    defaults_file = os.path.join(conf_dir, "spark-defaults.conf") if conf_dir else None
    if defaults_file and os.path.isfile(defaults_file):
        keys |= set(read_spark_defaults(defaults_file))
    return keys


def read_spark_defaults(path: str) -> dict[str, str]:
    """The settings of a ``spark-defaults.conf`` file: ``key value`` or ``key=value`` lines; blank
    lines and ``#`` comments skipped.

    Example:
        >>> read_spark_defaults(os.path.join(os.environ["SPARK_CONF_DIR"], "spark-defaults.conf"))["spark.driver.memory"]
        '2g'
    """
    settings = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, *value = re.split(r"\s*[\s=]\s*", line, maxsplit=1)
                settings[key] = value[0] if value else ""
    return settings


def _connect(remote: str, app_name: str, conf: Mapping[str, str] | None):
    """A Spark Connect session with the settings graphlake's code relies on (``_REQUIRED_CONF``) and
    the caller's; graphlake's defaults for sessions it launches itself (partitions, memory) are not
    applied: the server's operators chose its settings."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(remote).appName(app_name).getOrCreate()
    for key, value in dict(conf or {}).items():
        if not spark.conf.isModifiable(key):
            raise ValueError(f"conf: {key!r} is fixed when the Spark Connect server starts; set it on "
                             f"the server ({remote}), not per session")
        spark.conf.set(key, str(value))
    for key, value in _REQUIRED_CONF.items():  # after the caller's: these may not be undone
        spark.conf.set(key, str(value))
    return spark


def is_connect(spark) -> bool:
    """True for a Spark Connect session (no ``sparkContext``, no JVM in this process)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def check_session(spark, arg: str = "spark") -> None:
    """``TypeError`` naming ``arg`` unless ``spark`` is a SparkSession, classic or Spark Connect
    (a Connect session is not a subclass of the classic one)."""
    from pyspark.sql import SparkSession

    if isinstance(spark, SparkSession):
        return
    if is_connect(spark) and type(spark).__name__ == "SparkSession":
        return
    raise TypeError(f"{arg}: expected a SparkSession, got {type(spark).__name__}")


def default_parallelism(spark) -> int:
    """The session's default parallelism: ``sparkContext.defaultParallelism`` on a classic session;
    on Spark Connect ``spark.default.parallelism`` when the server sets it, else the shuffle
    partitions (Connect gives no view of the cluster's cores)."""
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    value = spark.conf.get("spark.default.parallelism", None) or spark.conf.get("spark.sql.shuffle.partitions")
    return max(1, int(value))


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
    if is_connect(spark):  # no JVM here: ask the server whether it knows the delta source
        return _connect_has_delta(spark)
    try:
        spark.sparkContext._jvm.java.lang.Class.forName("io.delta.tables.DeltaTable")
    except Exception:  # the JVM raises Py4JJavaError when the class is absent
        return False
    return True


_CONNECT_DELTA: dict[str, bool] = {}  # Connect session id -> has the delta source (asked once)


def _connect_has_delta(spark) -> bool:
    session_id = spark.session_id
    if session_id not in _CONNECT_DELTA:
        try:
            spark.read.format("delta").load("/graphlake-probe-of-the-delta-source").schema
            _CONNECT_DELTA[session_id] = True
        except Exception as exc:  # AnalysisException: no such path (delta present) or no such source
            _CONNECT_DELTA[session_id] = "DATA_SOURCE_NOT_FOUND" not in str(exc)
    return _CONNECT_DELTA[session_id]
