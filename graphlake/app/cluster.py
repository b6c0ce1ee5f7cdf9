"""A real Spark standalone cluster on this machine: one master and N workers on 127.0.0.1.

Used by the cluster tests (``tests/test_cluster*.py``, ``make cluster-test``) and by
``bench/cluster.py``. Every daemon is a JVM started from the installed pyspark distribution
(``pyspark/bin/spark-class``; the pip package has no ``sbin/start-*.sh``), in its own process group,
with its own log file and work/local folders under ``root``. :meth:`LocalCluster.stop` kills every
process group by PID (executors and their Python workers are children of a worker JVM, so they go
with it); the context manager and the pytest fixture call it also when the body fails.

Example:
    >>> from graphlake.app.cluster import LocalCluster
    >>> with LocalCluster(root="/tmp/gl-cluster", workers=2) as cluster:    # doctest: +SKIP
    ...     subprocess.run(["graphlake", "graph", "build", "--lake", lake,
    ...                     "--master", cluster.master_url, *cluster.conf_args()])
    ...     cluster.kill_worker(0)                                           # SIGKILL, by PID

Executors run the driver's Python (``PYSPARK_PYTHON``, set here for the daemons and by
:func:`graphlake.core.spark.get_spark` for drivers), so graphlake must be importable from it (the
project's venv: ``pip install -e .``). The lake path must be readable by every process; on one
machine a local folder is.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

_LOG_TAIL_LINES = 30
_STOP_GRACE_S = 5.0


class ClusterError(RuntimeError):
    """The local cluster could not start, or a daemon died."""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> str:
    """The installed pyspark distribution (holds ``bin/spark-class`` and ``jars/``)."""
    import pyspark

    home = os.path.dirname(os.path.abspath(pyspark.__file__))
    if not os.access(os.path.join(home, "bin", "spark-class"), os.X_OK):
        raise ClusterError(f"{home}/bin/spark-class is missing or not executable: reinstall pyspark")
    return home


def log_tail(path: str, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def fetch_json(url: str, timeout_s: float = 5.0):
    """GET ``url`` and parse its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - 127.0.0.1 only
        return json.loads(resp.read().decode())


class LocalCluster:
    """A Spark standalone master and ``workers`` workers on 127.0.0.1.

    Args:
        root: folder for the daemons' logs, work and local (shuffle) folders; created.
        workers: number of worker daemons (>= 1).
        cores: cores each worker offers.
        memory: memory each worker offers (``1g``); executors get ``executor_memory``.
        executor_memory: ``spark.executor.memory`` of applications (<= ``memory``).
        python: interpreter of the executors' Python workers (default: this one).
        register_timeout_s: how long :meth:`start` waits for every worker to register.

    Attributes:
        master_url: ``spark://127.0.0.1:<port>`` (after :meth:`start`).
        webui_url: the master's web UI, whose ``/json/`` gives the cluster state.
    """

    def __init__(self, root: str, workers: int = 2, cores: int = 1, memory: str = "1g",
                 executor_memory: str = "768m", python: str | None = None,
                 register_timeout_s: float = 120.0) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
        if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
            raise ValueError(f"cores: expected an int >= 1, got {cores!r}")
        self.root = os.path.abspath(root)
        self.n_workers, self.cores, self.memory = workers, cores, memory
        self.executor_memory = executor_memory
        self.python = python or sys.executable
        self.register_timeout_s = register_timeout_s
        self.master_url = ""
        self.webui_url = ""
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, str] = {}
        self._killed: set[str] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "LocalCluster":
        """Start the master and the workers; return once every worker is registered ALIVE.

        Raises:
            ClusterError: a daemon exited, or a worker did not register in time (names the
                master URL, the log file and its last lines). Whatever started is stopped.
        """
        try:
            self._start_master()
            for i in range(self.n_workers):
                self._start_worker(i)
            self.wait_for_workers(self.n_workers, self.register_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, main_class: str, args: list[str], extra_env: dict[str, str]) -> None:
        home = spark_home()
        for sub in ("logs", f"work/{name}", f"local/{name}", "conf"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        log_path = os.path.join(self.root, "logs", f"{name}.log")
        env = {**spark_process_env(self.python, os.path.join(self.root, "conf"),
                                   os.path.join(self.root, "local", name)),
               "SPARK_DAEMON_MEMORY": "256m", **extra_env}
        with open(log_path, "ab") as log:
            # a new session: the daemon and everything it forks (executors, Python workers) form
            # one process group that stop()/kill_worker() end with one killpg
            proc = subprocess.Popen([os.path.join(home, "bin", "spark-class"), main_class, *args],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        self._procs[name], self._logs[name] = proc, log_path

    def _start_master(self) -> None:
        port, webui = free_port(), free_port()
        self._spawn("master", "org.apache.spark.deploy.master.Master",
                    ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(webui)], {})
        self.master_url, self.webui_url = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{webui}"
        deadline = time.monotonic() + self.register_timeout_s
        while time.monotonic() < deadline:
            self._check_alive("master")
            try:
                fetch_json(self.webui_url + "/json/", timeout_s=2)
                return
            except (OSError, ValueError):
                time.sleep(0.5)
        raise ClusterError(self._failure("master", f"master at {self.master_url} did not answer on "
                                                   f"{self.webui_url}/json/ within {self.register_timeout_s} s"))

    def _start_worker(self, i: int) -> None:
        name = f"worker-{i}"
        self._spawn(name, "org.apache.spark.deploy.worker.Worker",
                    ["--host", "127.0.0.1", "--port", str(free_port()), "--webui-port", str(free_port()),
                     "--cores", str(self.cores), "--memory", self.memory,
                     "--work-dir", os.path.join(self.root, "work", name), self.master_url], {})

    def wait_for_workers(self, n: int, timeout_s: float) -> list[dict]:
        """Poll the master until ``n`` workers are ALIVE; return their JSON entries."""
        deadline, alive = time.monotonic() + timeout_s, []
        while time.monotonic() < deadline:
            for name in self._procs:
                if name not in self._killed:
                    self._check_alive(name)
            alive = self.alive_workers()
            if len(alive) >= n:
                return alive
            time.sleep(0.5)
        missing = [name for name in self._procs if name.startswith("worker-")][len(alive):] or ["worker-0"]
        raise ClusterError(self._failure(missing[0], f"only {len(alive)} of {n} workers registered with "
                                                     f"{self.master_url} within {timeout_s} s"))

    def stop(self) -> None:
        """Stop every daemon by its process group: SIGTERM, then SIGKILL what is left. Idempotent."""
        stop_groups(list(self._procs.values()))

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ state and faults

    @property
    def worker_pids(self) -> list[int]:
        """PIDs of the worker JVMs, in start order (also of killed ones)."""
        return [p.pid for name, p in self._procs.items() if name.startswith("worker-")]

    @property
    def master_pid(self) -> int:
        return self._procs["master"].pid

    def state(self) -> dict:
        """The master's JSON state (workers, active and completed applications)."""
        return fetch_json(self.webui_url + "/json/")

    def alive_workers(self) -> list[dict]:
        try:
            return [w for w in self.state().get("workers", []) if w.get("state") == "ALIVE"]
        except (OSError, ValueError):
            return []

    def kill_worker(self, i: int) -> int:
        """SIGKILL worker ``i`` with its executors and their Python workers (its process group), as
        if its machine died. Returns the worker JVM's PID."""
        name = f"worker-{i}"
        if name not in self._procs:
            raise ValueError(f"i: expected 0 <= i < {self.n_workers}, got {i}")
        proc = self._procs[name]
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self._killed.add(name)
        return proc.pid

    def process_group_pids(self) -> list[int]:
        """Live PIDs of every daemon's process group (JVMs, executors, Python workers)."""
        return group_members(*(p.pid for p in self._procs.values()))

    def worker_of_executor(self, executor_id: str) -> int | None:
        """Index of the worker whose process group runs executor ``executor_id`` (None: none)."""
        for i, name in enumerate(n for n in self._procs if n.startswith("worker-")):
            for pid in group_members(self._procs[name].pid):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"--executor-id" in argv and argv[argv.index(b"--executor-id") + 1].decode() == str(executor_id):
                    return i
        return None

    def log_path(self, name: str) -> str:
        """Log file of ``master`` or ``worker-<i>``."""
        return self._logs[name]

    def spark_conf(self) -> dict[str, str]:
        """Settings an application needs on this cluster (executor size, this machine's address)."""
        return {"spark.executor.memory": self.executor_memory, "spark.executor.cores": str(self.cores),
                "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                "spark.pyspark.python": self.python}

    def conf_args(self, **extra: str) -> list[str]:
        """``--conf key=value`` arguments for a graphlake command (``spark_conf()`` plus ``extra``)."""
        out = []
        for key, value in {**self.spark_conf(), **extra}.items():
            out += ["--conf", f"{key}={value}"]
        return out

    def _check_alive(self, name: str) -> None:
        code = self._procs[name].poll()
        if code is not None:
            raise ClusterError(self._failure(name, f"{name} of {self.master_url or 'the cluster'} "
                                                   f"exited with code {code}"))

    def _failure(self, name: str, message: str) -> str:
        path = self._logs.get(name, "")
        return f"{message}; log {path}, last lines:\n{log_tail(path)}"


def running_tasks(ui_url: str) -> dict:
    """What an application is doing, from its driver's REST API (``spark.ui.port``):
    ``{"app_id", "jobs_succeeded", "active_stages", "busy_executors": [executor ids with a task]}``;
    ``{}`` while the driver's UI is not up yet."""
    try:
        apps = fetch_json(f"{ui_url}/api/v1/applications", timeout_s=3)
        if not apps:
            return {}
        app = f"{ui_url}/api/v1/applications/{apps[0]['id']}"
        jobs = fetch_json(f"{app}/jobs?status=succeeded", timeout_s=3)
        stages = fetch_json(f"{app}/stages?status=active", timeout_s=3)
        executors = fetch_json(f"{app}/executors", timeout_s=3)
    except (OSError, ValueError, KeyError, IndexError):
        return {}
    return {"app_id": apps[0]["id"], "jobs_succeeded": len(jobs), "active_stages": len(stages),
            "busy_executors": [e["id"] for e in executors if e["id"] != "driver" and e.get("activeTasks", 0) > 0]}


def group_members(*pgids: int) -> list[int]:
    """Live (non-zombie) PIDs whose process group is one of ``pgids`` (Linux /proc)."""
    groups, found = set(pgids), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) in groups and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def spark_process_env(python: str, conf_dir: str, local_dir: str) -> dict[str, str]:
    """The environment of a Spark JVM this module starts on 127.0.0.1: the installed pyspark as
    ``SPARK_HOME``, ``python`` for its Python workers, its own conf folder (no stray
    spark-defaults.conf) and local folder; no gateway or Spark Connect settings of the caller's."""
    env = {**os.environ, "SPARK_HOME": spark_home(), "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python,
           "SPARK_CONF_DIR": conf_dir, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_DIRS": local_dir}
    for key in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED",
                "GRAPHLAKE_SPARK_REMOTE"):
        env.pop(key, None)
    return env


def stop_groups(procs: list[subprocess.Popen], grace_s: float = _STOP_GRACE_S) -> None:
    """End each process's group (started with ``start_new_session``): SIGTERM, up to ``grace_s``
    for the leaders to exit, then SIGKILL what is left (executors, Python workers that outlived
    their JVM). Groups already gone are skipped."""
    for proc in procs:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
