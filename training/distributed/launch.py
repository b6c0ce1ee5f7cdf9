"""Run a Python module on N data-parallel ranks with Horovod or torch DDP, as processes or on Spark.

    launch("ddp", 2, "graphlake.training.worker", ["--config", "train.yaml"], timeout_s=600)

process mode, one host (the defaults):
    horovod  `horovodrun -np N --gloo -H localhost:N python -m ENTRY ARGS...`
    ddp      `python -m torch.distributed.run --standalone --nnodes 1 --nproc_per_node N -m ENTRY ARGS...`
    local    `python -m ENTRY ARGS...` (workers must be 1)
process mode, several hosts (`launcher_args` replaces the one-host flags):
    horovod  launcher_args=["-H", "host1:4,host2:4"] (or ["--hostfile", F]; add
             ["--network-interface", "eth0"] when hosts have several NICs); horovodrun reaches the
             other hosts over passwordless ssh and needs the same venv path on each; workers is the
             total number of ranks.
    ddp      run launch() on every host with workers = ranks per host and launcher_args=["--nnodes",
             "2", "--node_rank", "<i>", "--rdzv_backend", "c10d", "--rdzv_endpoint", "host1:29400",
             "--rdzv_id", "<job id>"].
spark mode (ranks run as tasks on the given SparkSession's cluster):
    horovod  `horovod.spark.run(fn, num_proc=N)`
    ddp      `pyspark.ml.torch.distributor.TorchDistributor(num_processes=N, local_mode=...,
             use_gpu=...).run(fn)`; local_mode=True runs torchrun on the driver instead.

Every worker gets GRAPHLAKE_BACKEND=<backend>, so `training.distributed.get_backend()` needs no
argument. Workers' output is streamed to this process's stdout as it comes. A rank that fails or is
killed makes `launch` raise LaunchError (backend, first failing rank when the launcher reports it,
exit code); `timeout_s` bounds the whole run, after which every process of the job is killed.
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib.util
import os
import re
import runpy
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from graphlake.core.spark import is_connect

BACKEND_ENV = "GRAPHLAKE_BACKEND"  # == base.BACKEND_ENV; kept here so the launcher does not import torch
LAUNCH_BACKENDS = ("horovod", "ddp", "local")
MODES = ("process", "spark")
_ROOT = str(Path(__file__).resolve().parents[2])
_TAIL_LINES = 400
_TERM_GRACE_S = 5.0
BUILD_HINT = ("horovod is not installed in this virtualenv: run "
              "`bash training/distributed/build_horovod.sh` (or `make install`)")


class LaunchError(RuntimeError):
    """A distributed run failed, was killed or timed out.

    Attributes:
        backend: "horovod", "ddp" or "local".
        rank: the first failing rank when the launcher reports it, else None.
        exit_code: that rank's exit code (negative: killed by that signal) or the launcher's;
            None on a timeout or a Spark failure.
    """

    def __init__(self, backend: str, message: str, rank: int | None = None,
                 exit_code: int | None = None) -> None:
        self.backend, self.rank, self.exit_code = backend, rank, exit_code
        where = [f"rank {rank}"] if rank is not None else []
        if exit_code is not None:
            where.append(f"exit code {exit_code}{_signal_name(exit_code)}")
        prefix = " ".join(where) + ": " if where else ""
        super().__init__(f"{backend} launch failed: {prefix}{message}")


def launch(backend: str, workers: int, entry: str, args: list[str] | tuple[str, ...] = (),
           mode: str = "process", spark: object = None, timeout_s: float | None = None, *,
           launcher_args: list[str] | None = None, env: dict[str, str] | None = None,
           local_mode: bool = False, use_gpu: bool | None = None, check: bool = True) -> int:
    """Run python module `entry` with `args` on `workers` ranks and wait for it.

    Args:
        backend: "horovod", "ddp", or "local" (one plain process; workers must be 1).
        workers: number of ranks (process mode, one host: processes on this host).
        entry: importable module name run as `python -m entry`, e.g. "graphlake.training.worker".
        args: command-line arguments for the module (strings).
        mode: "process" (horovodrun / torchrun subprocesses) or "spark" (tasks of `spark`).
        spark: the SparkSession, required for mode="spark".
        timeout_s: kill the whole job and raise LaunchError after this many seconds (None: wait).
        launcher_args: extra horovodrun / torchrun flags; for ddp they replace "--standalone
            --nnodes 1", for horovod a "-H"/"--hostfile" in them replaces "-H localhost:N" (see the
            module doc for multi-host use).
        env: extra environment variables for the workers (process mode).
        local_mode: ddp spark mode only: TorchDistributor's local_mode (torchrun on the driver).
        use_gpu: ddp spark mode only: TorchDistributor's use_gpu; None = torch.cuda.is_available().
        check: raise LaunchError on failure (default); False returns the exit code instead
            (process mode; spark mode always raises).

    Returns:
        0 on success (or the non-zero exit code when check=False).

    Raises:
        LaunchError: a rank failed or was killed, the launcher failed, or the timeout passed.

    Example:
        >>> launch("ddp", 2, "graphlake.training.distributed.selftest", ["--out", "/tmp/st"], timeout_s=120)
        ... # doctest: +SKIP
        0
    """
    args = _check_args(backend, workers, entry, args, mode, spark, timeout_s, launcher_args, env)
    if backend == "horovod" and importlib.util.find_spec("horovod") is None:
        raise LaunchError(backend, BUILD_HINT)
    if mode == "spark":
        return _launch_spark(backend, workers, entry, args, spark, timeout_s, local_mode, use_gpu)
    cmd = _command(backend, workers, entry, args, list(launcher_args or []))
    return _run_process(backend, cmd, _worker_env(backend, workers, env), timeout_s, check)


def _check_args(backend, workers, entry, args, mode, spark, timeout_s, launcher_args, env) -> list[str]:
    if backend not in LAUNCH_BACKENDS:
        raise ValueError(f"backend: expected one of {LAUNCH_BACKENDS}, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    if backend == "local" and workers != 1:
        raise ValueError(f"workers: the local backend runs exactly 1 worker, got {workers}")
    if not isinstance(entry, str) or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", entry):
        raise ValueError(f"entry: expected a dotted module name like 'graphlake.training.worker', got {entry!r}")
    if isinstance(args, (str, bytes)) or not isinstance(args, (list, tuple)) \
            or not all(isinstance(a, str) for a in args):
        raise TypeError(f"args: expected a list of str, got {args!r}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if mode == "spark":
        if backend == "local":
            raise ValueError("mode: 'spark' needs backend 'horovod' or 'ddp', got backend 'local'")
        if spark is None or not hasattr(spark, "udf"):
            raise TypeError(f"spark: expected a SparkSession for mode='spark', got {type(spark).__name__}")
        if is_connect(spark):
            raise ValueError("mode: 'spark' runs the ranks as a barrier job of this process's SparkContext, "
                             "which a Spark Connect session does not have; use mode 'process' (or a classic "
                             "session: --master instead of --remote)")
    if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                                  or timeout_s <= 0):
        raise ValueError(f"timeout_s: expected a number > 0 or None, got {timeout_s!r}")
    if launcher_args is not None and (not isinstance(launcher_args, (list, tuple))
                                      or not all(isinstance(a, str) for a in launcher_args)):
        raise TypeError(f"launcher_args: expected a list of str or None, got {launcher_args!r}")
    if env is not None and (not isinstance(env, dict)
                            or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise TypeError(f"env: expected a dict of str to str or None, got {env!r}")
    try:
        found = importlib.util.find_spec(entry) is not None
    except ImportError:  # a parent package is missing
        found = False
    if not found:
        raise ValueError(f"entry: expected an importable module, got {entry!r} (not found on sys.path)")
    return list(args)


def _command(backend: str, workers: int, entry: str, args: list[str], extra: list[str]) -> list[str]:
    py = sys.executable
    if backend == "horovod":
        hosts = [] if {"-H", "--hosts", "-hostfile", "--hostfile"} & set(extra) else ["-H", f"localhost:{workers}"]
        return [py, "-m", "horovod.runner.launch", "-np", str(workers), "--gloo", *hosts, *extra,
                py, "-m", entry, *args]
    if backend == "ddp":
        one_host = [] if extra else ["--standalone", "--nnodes", "1"]
        return [py, "-m", "torch.distributed.run", *one_host, *extra, "--nproc_per_node", str(workers),
                "--max_restarts", "0", "-m", entry, *args]
    return [py, "-m", entry, *args]


def _worker_env(backend: str, workers: int, extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env[BACKEND_ENV] = backend
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    # one BLAS/OpenMP pool per core: N ranks x all cores oversubscribes the CPU
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    env.update(extra or {})
    return env


def _run_process(backend: str, cmd: list[str], env: dict[str, str], timeout_s: float | None,
                 check: bool) -> int:
    print(f"[launch] {backend}: {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, text=True, errors="replace", bufsize=1)
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    reader = threading.Thread(target=_pump, args=(proc.stdout, tail), daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        reader.join(timeout=2)
        raise LaunchError(backend, f"timed out after {timeout_s} s; killed every process of the job") from None
    except BaseException:  # KeyboardInterrupt: do not leave ranks behind
        _kill_tree(proc)
        raise
    reader.join(timeout=5)
    print(f"[launch] {backend}: exit code {code} after {time.monotonic() - start:.1f} s", flush=True)
    if code == 0:
        return 0
    if not check:
        return code
    rank, rank_code = _failed_rank(backend, "".join(tail))
    last = "".join(list(tail)[-15:]).rstrip()
    raise LaunchError(backend, f"launcher exited with {code}; last output:\n{last}",
                      rank=rank, exit_code=rank_code if rank_code is not None else code)


def _pump(stream, tail: collections.deque) -> None:
    for line in iter(stream.readline, ""):
        tail.append(line)
        sys.stdout.write(line)
        sys.stdout.flush()
    stream.close()


def _failed_rank(backend: str, text: str) -> tuple[int | None, int | None]:
    """(first failing rank, its exit code) from the launcher's report, when it has one."""
    if backend == "horovod":
        m = re.search(r"Process name: (\d+)\s+Exit code: (-?\d+)", text) \
            or re.search(r"Process (\d+) exit with status code (-?\d+)", text)
        if m:
            return int(m.group(1)), int(m.group(2))
    elif backend == "ddp" and "Root Cause" in text:
        cause = text.split("Root Cause", 1)[1]
        rank = re.search(r"rank\s*:\s*(\d+)", cause)
        code = re.search(r"exitcode\s*:\s*(-?\d+)", cause)
        return (int(rank.group(1)) if rank else None), (int(code.group(1)) if code else None)
    return None, None


def _signal_name(code: int | None) -> str:
    if code is None:
        return ""
    num = -code if code < 0 else code - 128 if 128 < code < 160 else 0
    try:
        return f" ({signal.Signals(num).name})" if num else ""
    except ValueError:
        return ""


def _descendants(pid: int) -> list[int]:
    """All live descendants of `pid` (Linux /proc walk; torchrun/horovod start new sessions)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children[int(fields[1])].append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGTERM the launcher (it stops its ranks), then SIGKILL whatever is left of the tree."""
    tree = _descendants(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in [proc.pid, *tree]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGTERM:
            try:
                proc.wait(timeout=_TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            tree = [p for p in tree + _descendants(proc.pid) if Path(f"/proc/{p}").exists()]
    proc.wait()


def run_module(backend: str, entry: str, args: list[str]) -> int:
    """Run `python -m entry args` inside this process (a Spark task); returns 0 or raises.

    Used by spark mode as the function each rank runs; a non-zero SystemExit becomes RuntimeError so
    the Spark job fails.
    """
    os.environ[BACKEND_ENV] = backend
    saved = sys.argv
    sys.argv = [entry, *args]
    try:
        runpy.run_module(entry, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise RuntimeError(f"{entry} exited with code {exc.code}") from None
    finally:
        sys.argv = saved
    return 0


def _launch_spark(backend: str, workers: int, entry: str, args: list[str], spark, timeout_s,
                  local_mode: bool, use_gpu: bool | None) -> int:
    """Run the ranks as Spark tasks, in the calling (main) thread: horovod.spark.run installs signal
    handlers, which Python allows only there. A watchdog timer cancels the Spark jobs at timeout_s."""
    fn = functools.partial(run_module, backend, entry, args)
    if backend == "horovod":
        import horovod.spark

        def job():
            return horovod.spark.run(fn, num_proc=workers, use_gloo=True, start_timeout=timeout_s,
                                     stdout=sys.stdout, stderr=sys.stderr, verbose=1,
                                     env={**os.environ, BACKEND_ENV: backend, "PYTHONUNBUFFERED": "1"})
    else:
        import torch
        from pyspark.ml.torch.distributor import TorchDistributor

        gpu = torch.cuda.is_available() if use_gpu is None else use_gpu

        def job():
            return TorchDistributor(num_processes=workers, local_mode=local_mode, use_gpu=gpu).run(fn)

    if threading.current_thread() is not threading.main_thread() and backend == "horovod":
        raise LaunchError(backend, "mode='spark' must be called from the main thread (horovod.spark.run "
                                   "installs signal handlers)")
    print(f"[launch] {backend} on spark ({spark.sparkContext.master}): {workers} ranks of {entry}", flush=True)
    start = time.monotonic()
    timed_out = threading.Event()

    def on_timeout():
        timed_out.set()
        print(f"[launch] {backend} on spark: timeout after {timeout_s} s, cancelling the Spark jobs", flush=True)
        spark.sparkContext.cancelAllJobs()

    watchdog = threading.Timer(timeout_s, on_timeout) if timeout_s else None
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if watchdog:
            watchdog.daemon = True
            watchdog.start()
        job()
    except Exception as exc:  # noqa: BLE001 - every failure becomes a LaunchError
        if timed_out.is_set():
            raise LaunchError(backend, f"timed out after {timeout_s} s on spark; cancelled the Spark jobs") from exc
        rank, code = _failed_rank(backend, str(exc))
        raise LaunchError(backend, f"spark run failed: {type(exc).__name__}: {exc}",
                          rank=rank, exit_code=code) from exc
    finally:
        if watchdog:
            watchdog.cancel()
        for sig, handler in handlers.items():  # horovod leaves its own SIGINT/SIGTERM handlers behind
            signal.signal(sig, handler)
    if timed_out.is_set():
        raise LaunchError(backend, f"timed out after {timeout_s} s on spark; cancelled the Spark jobs")
    print(f"[launch] {backend} on spark: done after {time.monotonic() - start:.1f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI: `python -m training.distributed.launch --backend ddp --workers 2 ENTRY [-- ARGS...]`."""
    parser = argparse.ArgumentParser(prog="python -m training.distributed.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=LAUNCH_BACKENDS, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=None, help="seconds before the job is killed")
    parser.add_argument("entry", help="python module to run on every rank")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the module")
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    try:
        return launch(ns.backend, ns.workers, ns.entry, args, timeout_s=ns.timeout)
    except LaunchError as exc:
        print(f"[launch] {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
