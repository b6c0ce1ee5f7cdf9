"""``graphlake sql-server``: Spark's Thrift JDBC/ODBC server over the lake, with the ``gl_*`` functions
and the lake's views in every connection; read-only; it follows promotions without a restart.

How it works (everything ships in pyspark's jars: spark-hive-thriftserver, hive-jdbc, beeline):

- **one local Spark session** (:func:`graphlake.core.spark.get_spark`) runs
  ``HiveThriftServer2.startWithSparkSession`` in single-session mode: every connection uses the
  *serving session*, which holds the views and functions of ``graphlake sql``
  (:func:`graphlake.udfs.register` and :func:`graphlake.udfs.register_views`).
- **read-only** (:mod:`graphlake.app.sql_readonly`): a check rule (``SparkSessionExtensions.injectCheckRule``,
  a Python object behind py4j) sees the analysed plan of every statement before it runs and refuses every command except
  ``SHOW ...``, ``DESCRIBE ...``, ``EXPLAIN ...``, ``USE`` and reading a setting (``SET`` / ``SET key``):
  no ``INSERT``, ``CREATE``, ``DROP``, ``DELETE``, ``MERGE``, ``ADD JAR``, ``CACHE``, ``SET key=value``.
  ``reflect`` / ``java_method`` / ``try_reflect`` (static Java calls) are removed from the session.
- **promotions**: every ``refresh_seconds`` the registry's Delta version is read (no Spark); when the
  resolved asset versions changed, a complete new serving session (functions and views of the new
  set) is built and swapped in as one step: new connections and the next statement of open
  connections use it. A statement takes its session once, when it is submitted, so it runs on one
  version set from start to end, never on two.
- **query log**: one line per statement (seconds, state, the statement), read from the Thrift
  server's own statement records (those behind the Spark UI's JDBC/ODBC tab).

Example:
    >>> serve("lakehouse", port=10000)          # blocks until SIGINT / SIGTERM; then returns 0
    $ beeline -u jdbc:hive2://127.0.0.1:10000/ -e "SELECT gl_recommend('u1', 10)"
"""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import threading
import time

from pyspark.java_gateway import ensure_callback_server_started
from pyspark.sql import SparkSession

from graphlake import udfs
from graphlake.app.sql_readonly import REMOVED_FUNCTIONS, CheckBuilder
from graphlake.assets.registry import read_registry
from graphlake.core.errors import UsageError
from graphlake.core.spark import get_spark
from graphlake.udfs.register import resolve_spec

log = logging.getLogger(__name__)

_THRIFT = "org.apache.spark.sql.hive.thriftserver"
# a client's bad statement made each of these print a page of stack trace (the query log has one line)
QUIET_LOGGERS = {f"{_THRIFT}.SparkExecuteStatementOperation": "OFF",
                 "org.apache.hive.service.cli.thrift.ThriftCLIService": "ERROR",
                 "org.apache.spark.scheduler.DAGScheduler": "ERROR",  # "Failed to cancel job group" of a closed one
                 "org.apache.hadoop.hive.metastore.ObjectStore": "ERROR"}  # the Thrift server's scratch metastore


def server_conf(host: str, port: int) -> dict:
    """The Spark settings of the server's session: the Thrift endpoint, one shared session, no UI."""
    return {"spark.sql.hive.thriftServer.singleSession": "true",
            "spark.hadoop.hive.server2.thrift.bind.host": host,
            "spark.hadoop.hive.server2.thrift.port": str(port),
            "spark.hadoop.hive.server2.transport.mode": "binary",
            "spark.sql.thriftServer.ui.retainedStatements": "2000",
            "spark.ui.enabled": "false"}


class SqlServer:
    """The Thrift server of one lake. :meth:`start`, then :meth:`refresh` now and then, :meth:`stop`.

    Args:
        lake: lake root (published assets under it).
        host / port: the Thrift (JDBC/ODBC) endpoint.
        version: ``"production"`` (follows promotions), ``"latest"`` or an int (see :func:`graphlake.udfs.register`).
        master / conf: the Spark master and extra settings (as ``graphlake --master / --conf``).

    Example:
        >>> server = SqlServer("lakehouse", port=10001)
        >>> server.start()["versions"]
        {'item_embeddings': 3, 'user_embeddings': 3}
    """

    def __init__(self, lake: str, host: str = "127.0.0.1", port: int = 10000, version="production",
                 master: str | None = None, conf: dict | None = None):
        if not (version in ("production", "latest") or (isinstance(version, int) and not isinstance(version, bool))):
            raise UsageError(f"--version: expected production, latest or a version number, got {version!r}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise UsageError(f"--port: expected a TCP port 1..65535, got {port!r}")
        self.lake, self.host, self.port, self.version = lake, host, port, version
        self.master, self.conf = master, dict(conf or {})
        self.building: set[int] = set()  # identities of the sessions being built: the only writable ones
        self.spark = self._jvm = None
        self.versions: dict = {}
        self.registry_version = None
        self._sessions: list = []  # serving sessions, newest last (the previous one may still run statements)
        self._server = None
        self._logged: dict[str, float] = {}  # statement id -> end (ms): logged already
        self._floor_ms = 0

    # -------------------------------------------------------------- start / stop

    def start(self) -> dict:
        """Start Spark and the Thrift server; returns ``{"url", "host", "port", "versions"}`` once it accepts connections."""
        _check_port_free(self.host, self.port)
        resolve_spec(self.lake, self.version)  # an unknown version or an empty lake fails here, before Spark starts
        self.spark = get_spark(master=self.master, app_name="graphlake-sql-server",
                               conf={**self.conf, **server_conf(self.host, self.port)})
        jvm = self.spark.sparkContext._jvm
        self._jvm = jvm
        ensure_callback_server_started(self.spark.sparkContext._gateway)
        self.command_class = jvm.java.lang.Class.forName("org.apache.spark.sql.catalyst.plans.logical.Command")
        log4j = jvm.org.apache.logging.log4j
        for logger, level in QUIET_LOGGERS.items():  # a client's failed statement: one line in the query log
            log4j.core.config.Configurator.setLevel(logger, getattr(log4j.Level, level))
        self._builder = CheckBuilder(self.building, self.command_class, self.identity)
        self.spark._jsparkSession.extensions().injectCheckRule(self._builder)
        self.registry_version = read_registry(self.lake)[1]
        session = self._serving_session()
        self._server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithSparkSession(
            session._jsparkSession, False)
        _wait_listening(self.host, self.port, timeout_s=60)
        return {"url": f"jdbc:hive2://{self.host}:{self.port}/", "host": self.host, "port": self.port,
                "versions": dict(self.versions)}

    def stop(self) -> None:
        """Stop the Thrift server and Spark (open connections are closed)."""
        if self._server is not None:
            self.log_queries()
            self._server.stop()
            self._server = None
        if self.spark is not None:
            self.spark.stop()
            self.spark = None

    def identity(self, jsession) -> int:
        return self._jvm.java.lang.System.identityHashCode(jsession)

    # -------------------------------------------------------------- serving sessions and promotions

    def _serving_session(self):
        """A new session with the views and functions of one resolved version set, sealed read-only."""
        jsession = self.spark._jsparkSession.newSession()
        key = self.identity(jsession)
        self.building.add(key)
        try:
            session = SparkSession(self.spark.sparkContext, jsparkSession=jsession)
            versions = udfs.register(session, lake=self.lake, version=self.version)
            udfs.register_views(session, self.lake, versions)
            registry = jsession.sessionState().functionRegistry()
            for name in REMOVED_FUNCTIONS:
                registry.dropFunction(self._jvm.org.apache.spark.sql.catalyst.FunctionIdentifier.apply(name))
        finally:
            self.building.discard(key)
        self.versions = versions
        self._sessions = [*self._sessions[-1:], session]
        return session

    def refresh(self) -> bool:
        """Swap in the asset versions ``version`` resolves to now, when they changed (a promotion or a
        rollback committed to the registry); returns True when it swapped."""
        registry_version = read_registry(self.lake)[1]
        if registry_version == self.registry_version:
            self._swap(self._sessions[-1]._jsparkSession, only_strays=True)
            return False
        if resolve_spec(self.lake, self.version)["versions"] == self.versions:  # e.g. a new candidate, not promoted
            self.registry_version = registry_version
            return False
        before = dict(self.versions)
        session = self._serving_session()
        self._swap(session._jsparkSession)
        self.registry_version = registry_version
        log.warning("sql-server: now serving %s (was %s)", _versions_text(self.versions), _versions_text(before))
        return True

    def _swap(self, jsession, only_strays: bool = False) -> None:
        """Make ``jsession`` the session of new connections and of every open one: the session manager's
        session (a private field of Spark 4.1's ``SparkSQLSessionManager``: set by reflection) and the
        operation manager's session per connection. ``only_strays``: just move the connections still on
        another session (one opened while the last swap ran; checked at every refresh)."""
        services = self._server.getServices().toArray()
        cli = next(s for s in services if s.getClass().getName().endswith("SparkSQLCLIService"))
        manager = cli.getSessionManager()
        if not only_strays:
            field = manager.getClass().getDeclaredField("sparkSession")
            field.setAccessible(True)
            field.set(manager, jsession)
        contexts, key = manager.getOperationManager().sessionToContexts(), self.identity(jsession)
        for handle in contexts.keySet().toArray():
            current = contexts.get(handle)
            if current is not None and (not only_strays or self.identity(current) != key):
                contexts.replace(handle, jsession)

    # -------------------------------------------------------------- query log

    def log_queries(self) -> int:
        """Log each statement that ended since the last call: seconds, state, the statement's first 200
        characters (and a failed one's error); returns how many it logged.

        Two views of the Thrift server's statement records by their ``finishTime`` index: the active ones
        (index -1: running, or finished and not yet closed by the client) and the ended ones (closed, failed,
        cancelled: index = finish time) from a little before the newest seen, so an idle call costs a few
        py4j calls, not one per retained statement."""
        cls = self._jvm.java.lang.Class.forName(f"{_THRIFT}.ui.ExecutionInfo")
        store = self.spark.sparkContext._jsc.sc().statusStore().store()
        active = store.view(cls).index("finishTime").first(-(2 ** 40)).last(2 ** 31)  # Long bounds around -1
        ended = store.view(cls).index("finishTime").first(max(self._floor_ms, 2 ** 31))
        logged = 0
        for view in (active, ended):
            for info in view.iterator():
                key = info.execId()
                if key in self._logged:
                    continue
                state, finish = info.state().toString(), info.finishTimestamp()
                if state in ("STARTED", "COMPILED", "RUNNING") or (state == "FINISHED" and finish <= 0):
                    continue
                end = finish if finish > 0 else info.closeTimestamp()
                self._logged[key] = end
                self._floor_ms = max(self._floor_ms, end - 2000)
                error = _error_line(info.detail())
                outcome = "failed" if error else {"FINISHED": "ok", "CLOSED": "ok"}.get(state, state.lower())
                log.info("query %.3f s %s: %s%s", (end - info.startTimestamp()) / 1000, outcome,
                         _one_line(info.statement())[:200], f" -- {error[:300]}" if error else "")
                logged += 1
        if len(self._logged) > 10_000:  # forget the oldest: they are behind the floor
            self._logged = dict(sorted(self._logged.items(), key=lambda kv: kv[1])[-5_000:])
        return logged


def _error_line(detail) -> str:
    """The line of a failed statement's error that says what was wrong (a gl_* function's argument, the
    read-only refusal), else its first line."""
    text = str(detail or "").strip()
    found = re.findall(r"^\S*(?:UsageError|ValueError|TypeError): .+$", text, flags=re.M)
    return _one_line(found[-1] if found else text.splitlines()[0] if text else "")


def _keep_serving(server: SqlServer, what: str, step) -> None:
    """Run ``step``; a failure (a registry being written, a vanished snapshot) is logged, the server goes on."""
    try:
        step()
    except Exception as exc:
        log.warning("sql-server: %s failed, still serving %s: %s", what, _versions_text(server.versions),
                    _one_line(exc)[:500])


def _one_line(text) -> str:
    return " ".join(str(text or "").split())


def _versions_text(versions: dict) -> str:
    return ", ".join(f"{asset} v{v}" for asset, v in sorted(versions.items())) or "nothing"


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UsageError(f"--host/--port: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                             "choose another --port") from exc


def _wait_listening(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Thrift server did not listen on {host}:{port} within {timeout_s:.0f} s")
            time.sleep(0.2)


def serve(lake: str, host: str = "127.0.0.1", port: int = 10000, version="production", refresh_seconds: float = 10.0,
          master: str | None = None, conf: dict | None = None, json_line: bool = False) -> dict:
    """Run the server until SIGINT or SIGTERM (then stop it cleanly and return its summary).

    Prints one line when it accepts connections (the JDBC URL and the versions served); logs one line
    per statement on stderr; checks the registry every ``refresh_seconds`` (see :meth:`SqlServer.refresh`).

    Args:
        lake, host, port, version, master, conf: see :class:`SqlServer`.
        refresh_seconds: seconds between two reads of the registry (> 0).
        json_line: print the ready line as JSON (``url``, ``host``, ``port``, ``versions``, ``version``,
            ``refresh_seconds``).

    Example:
        >>> serve("lakehouse", port=10000, refresh_seconds=10)
        graphlake sql-server: serving jdbc:hive2://127.0.0.1:10000/ ...
    """
    if not isinstance(refresh_seconds, (int, float)) or isinstance(refresh_seconds, bool) or refresh_seconds <= 0:
        raise UsageError(f"--refresh-seconds: expected a number of seconds > 0, got {refresh_seconds!r}")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)  # the query log is the server's output on stderr
    server = SqlServer(lake, host=host, port=port, version=version, master=master, conf=conf)
    try:
        ready = server.start()
        ready.update(version=version, refresh_seconds=refresh_seconds)
        print(json.dumps(ready, sort_keys=True) if json_line else
              f"graphlake sql-server: serving {ready['url']} ({_versions_text(ready['versions'])}; version {version}, "
              f"checked every {refresh_seconds:g} s); stop with Ctrl-C or SIGTERM", flush=True)
        next_refresh = time.monotonic() + refresh_seconds
        while not stop.wait(1.0):
            _keep_serving(server, "the query log", server.log_queries)
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + refresh_seconds
                _keep_serving(server, "refresh", server.refresh)
        log.warning("sql-server: stopping")
        return {"url": ready["url"], "versions": server.versions}
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
