"""A real Spark Connect server on this machine, for trying graphlake's ``--remote`` path locally.

Used by ``tests/test_spark_connect.py``. The server is Spark's own
``org.apache.spark.sql.connect.service.SparkConnectServer`` (the ``spark-connect`` JAR ships in
pyspark's ``jars/``), started by ``spark-submit`` from the installed pyspark in its own process
group, on 127.0.0.1 and a free port, with its log under ``root``. Its Python workers run this
interpreter (``PYSPARK_PYTHON``), so the gl_* functions and graphlake's Arrow tasks import
graphlake there; the lake must be at the same path for the client and the server (one machine,
or a shared file system). On a real deployment the server is started by its operators
(``sbin/start-connect-server.sh`` of a Spark distribution) with the same two conditions.

Example:
    >>> from graphlake.app.connect_server import LocalConnectServer
    >>> with LocalConnectServer(root="/tmp/gl-connect") as server:          # doctest: +SKIP
    ...     subprocess.run(["graphlake", "etl", "--remote", server.url, "--raw", raw, "--lake", lake])
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from graphlake.app.cluster import ClusterError, free_port, log_tail, spark_home, spark_process_env, stop_groups
from graphlake.core.spark import PYSPARK_DAEMON_MODULE

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
_STOP_GRACE_S = 10.0


class LocalConnectServer:
    """A Spark Connect server (``local[N]`` master) on ``127.0.0.1:<free port>``.

    Args:
        root: folder for the server's log and Spark local folders; created.
        master: the server's Spark master (default ``local[2]``).
        conf: extra ``--conf`` settings of the server (strings).
        start_timeout_s: seconds to wait for the gRPC port to accept connections.

    Attributes:
        url: ``sc://127.0.0.1:<port>`` once started (the ``--remote`` value).
        log_path: the server's log (stdout and stderr).
    """

    def __init__(self, root: str, master: str = "local[2]", conf: dict | None = None,
                 start_timeout_s: float = 180.0):
        if not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
            raise TypeError(f"root: expected a folder path, got {root!r}")
        if conf is not None and not isinstance(conf, dict):
            raise TypeError(f"conf: expected a dict of Spark settings, got {type(conf).__name__}")
        if isinstance(start_timeout_s, bool) or not isinstance(start_timeout_s, (int, float)) or start_timeout_s <= 0:
            raise ValueError(f"start_timeout_s: expected a number > 0, got {start_timeout_s!r}")
        self.root, self.master = os.path.abspath(os.fspath(root)), master
        self.conf, self.start_timeout_s = dict(conf or {}), float(start_timeout_s)
        self.port: int | None = None
        self.url: str | None = None
        self.log_path = os.path.join(self.root, "connect-server.log")
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> LocalConnectServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server; return its URL once its port accepts connections.

        Raises:
            ClusterError: the server exited or did not open its port in time (with its log's tail);
                it is stopped.
        """
        if self._proc is not None:
            raise ClusterError(f"the server is already started at {self.url}")
        home = spark_home()
        os.makedirs(os.path.join(self.root, "local"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "conf"), exist_ok=True)
        self.port = free_port()
        log4j = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "core", "log4j2.properties")
        conf = {"spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": str(self.port),
                "spark.ui.enabled": "false", "spark.sql.session.timeZone": "UTC",
                "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{log4j}",
                "spark.python.daemon.module": PYSPARK_DAEMON_MODULE, **self.conf}
        args = [os.path.join(home, "bin", "spark-submit"), "--master", self.master, "--class", SERVER_CLASS,
                "--name", "graphlake-connect-server"]
        for key, value in conf.items():
            args += ["--conf", f"{key}={value}"]
        env = spark_process_env(sys.executable, os.path.join(self.root, "conf"), os.path.join(self.root, "local"))
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([*args, "spark-internal"], stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.url = f"sc://127.0.0.1:{self.port}"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise ClusterError(f"the Spark Connect server exited with {code} before opening port "
                                   f"{self.port}; {self.log_path} ends:\n{log_tail(self.log_path)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self.url
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise ClusterError(f"the Spark Connect server did not open port {self.port} within "
                           f"{self.start_timeout_s:.0f} s; {self.log_path} ends:\n{log_tail(self.log_path)}")

    @property
    def pid(self) -> int | None:
        """The server's PID, also its process group's id (``None`` when not started)."""
        return None if self._proc is None else self._proc.pid

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL what is left after a grace period; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_groups([proc], grace_s=_STOP_GRACE_S)
