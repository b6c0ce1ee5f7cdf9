"""Exit codes a scheduler can trust: every read-only command exits 0, run after run, in a fresh
process (the delta-rs abort at interpreter exit made some exit 134 after doing their work); every
documented bad input exits 2 with one line on stderr that names what was wrong and the log file
that holds the trace; an internal error exits 3, never 2. (The other SQL mistakes' one-line
messages are checked in-process in tests/test_udfs.py: each fresh process here costs a JVM start.)

One tiny published lake (tests/asset_fixtures.py) serves every command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from graphlake.core.errors import EXIT_INTERNAL, EXIT_USAGE

_ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "GRAPHLAKE_SPARK_MASTER": "local[1]"}


@pytest.fixture(scope="module")
def cli_lake(published_tiny):
    """The shared published tiny lake (conftest ``published_tiny``, run ``hand-1``): the commands
    here only read it (the internal-error test breaks a copy)."""
    return published_tiny


def graphlake(*args: str, log_dir: str | None = None) -> subprocess.CompletedProcess:
    env = dict(_ENV, GRAPHLAKE_LOG_DIR=log_dir) if log_dir else _ENV
    return subprocess.run([sys.executable, "-m", "graphlake.app.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def _explain(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-4000:]}"


def test_registry_read_exits_0_thirty_times(cli_lake):
    """``assets list`` reads the registry with the lake layer's Arrow path (no Spark): 30 fresh
    processes, two at a time, all exit 0 with the same JSON."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _: graphlake("assets", "list", "--lake", cli_lake, "--json"), range(30)))
    failed = [_explain(r) for r in runs if r.returncode != 0]
    assert not failed, f"{len(failed)} of 30 runs failed; first:\n{failed[0]}"
    assert len({r.stdout for r in runs}) == 1
    assert '"item_embeddings"' in runs[0].stdout


@pytest.mark.parametrize("args, times", [  # (repeated fresh processes: the thirty `assets list` above)
    (("assets", "show", "--asset", "item_embeddings", "--version", "production", "--json"), 1),
    (("assets", "history", "--json"), 1),
    (("lake", "history", "assets/registry", "--json"), 1),
    (("graph", "stats", "--json"), 1),
    (("sql", "SELECT gl_similar_items('i1', 2) AS s", "--json"), 1),
    (("report", "--json"), 1),
])
def test_read_only_commands_exit_0(cli_lake, args, times):
    for _ in range(times):
        done = graphlake(*args, "--lake", cli_lake)
        assert done.returncode == 0, _explain(done)


def _bad_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: [unclosed\n")
    return str(path)


def _unknown_key(tmp_path):
    path = tmp_path / "unknown.yaml"
    path.write_text("train:\n  epochs: 1\n  learning_rat: 0.1\n")
    return str(path)


@pytest.mark.parametrize("case, make_args, message", [
    ("malformed YAML", lambda lake, tmp: ("train", "--lake", lake, "--config", _bad_yaml(tmp)),
     r"config .*bad\.yaml:3:1: not valid YAML"),
    ("unknown config key", lambda lake, tmp: ("train", "--lake", lake, "--config", _unknown_key(tmp)),
     r"config .*unknown\.yaml: unknown keys \['learning_rat'\] for TrainConfig"),
    ("missing lake", lambda lake, tmp: ("assets", "list", "--lake", str(tmp / "no-such-lake")),
     r"--lake: no lake at '.*no-such-lake' \(the folder does not exist"),
    ("missing lake, Spark command", lambda lake, tmp: ("graph", "stats", "--lake", str(tmp / "nope")),
     r"--lake: no lake at '.*nope'"),
    ("unknown version", lambda lake, tmp: ("assets", "show", "--lake", lake, "--asset", "item_embeddings",
                                           "--version", "99"),
     r"version: item_embeddings has no version 99 \(versions: \[1\]\)"),
    ("unknown asset", lambda lake, tmp: ("assets", "show", "--lake", lake, "--asset", "shop_embeddings",
                                         "--version", "1"),
     r"asset: no asset named 'shop_embeddings' is published"),
    ("unknown run", lambda lake, tmp: ("evaluate", "--lake", lake, "--run-id", "no-such-run"),
     r"run_id: no training run 'no-such-run' in .*_runs/train \(no run\.json there; runs there: \['hand-1'\]\)"),
    ("bad SQL argument", lambda lake, tmp: ("sql", "--lake", lake, "SELECT gl_recommend('u1', -1)"),
     r"gl_recommend: k must be in 1\.\.1000, got -1"),
])
def test_bad_input_exits_2_with_one_line(cli_lake, tmp_path, case, make_args, message):
    logs = str(tmp_path / "logs")
    done = graphlake(*make_args(cli_lake, tmp_path), log_dir=logs)
    assert done.returncode == EXIT_USAGE, _explain(done)
    assert "Traceback" not in done.stderr and "at org.apache" not in done.stderr, _explain(done)
    ours = [line for line in done.stderr.splitlines() if line.startswith("graphlake ")]
    assert len(ours) == 1, _explain(done)
    assert re.search(message, ours[0]), f"{case}: {ours[0]!r} does not match {message!r}"
    log_path = re.search(r"\(trace: (\S+\.log)\)$", ours[0]).group(1)
    assert log_path.startswith(logs) and "Traceback" in open(log_path).read()


def test_internal_error_exits_3_never_2(cli_lake, tmp_path):
    """An error inside a stage that is not about the user's input (here delta-rs failing on a
    corrupt commit file of the registry) exits 3 and names the log, never 2."""
    lake_dir = str(tmp_path / "lake")
    shutil.copytree(cli_lake, lake_dir)
    log_dir = os.path.join(lake_dir, "assets", "registry", "_delta_log")
    newest = sorted(n for n in os.listdir(log_dir) if n.endswith(".json"))[-1]
    with open(os.path.join(log_dir, newest), "w") as fh:
        fh.write('{"add": {"path": 12, "not": "an action"\n')
    done = graphlake("lake", "history", "assets/registry", "--lake", lake_dir, log_dir=str(tmp_path / "logs"))
    assert done.returncode == EXIT_INTERNAL, _explain(done)
    line = [x for x in done.stderr.splitlines() if x.startswith("graphlake ")][-1]
    assert re.match(r"graphlake lake: internal error \(a bug, not your input\): \w+: .+ \(trace: \S+\.log\)$",
                    line), line
