"""``graphlake sql-server``: Spark's Thrift JDBC/ODBC server over a small published lake, started as a
process (the CLI) on 127.0.0.1 and a free port, used with PyHive (DB-API) and beeline. One server for
the whole module: the tests run in file order and the last one stops it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pyspark
import pytest
from pyhive import hive

from tests.asset_fixtures import ITEM_VECTORS, USER_VECTORS, hand_run

ROOT = Path(__file__).resolve().parents[1]
BEELINE = Path(pyspark.__file__).parent / "bin" / "beeline"  # Hive's beeline ships in pyspark
READY_S = 240  # a cold start on a busy 2-core machine: Spark, the Thrift server, the views
REFRESH_S = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_lake(spark, tiny_graph, tmp_path_factory):
    from graphlake.assets.config import AssetConfig
    from graphlake.assets.publish import publish

    lake_dir = str(tmp_path_factory.mktemp("sql_server") / "lake")
    shutil.copytree(tiny_graph, lake_dir)
    hand_run(spark, lake_dir, "hand-1")
    publish(spark, lake_dir, config=AssetConfig(nn_k=2), promote=True, build_docs=False)
    return lake_dir


class Server:
    def __init__(self, lake_dir: str, log_path: Path):
        self.port, self.log_path = free_port(), log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graphlake.app.cli", "sql-server", "--lake", lake_dir, "--port", str(self.port),
             "--refresh-seconds", str(REFRESH_S), "--master", "local[2]", "--json"],
            stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True, cwd=str(ROOT), start_new_session=True)
        self.pgid = self.proc.pid
        self.ready = self._read_ready_line()

    def _read_ready_line(self) -> dict:
        found: list = []
        reader = threading.Thread(target=lambda: found.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(READY_S)
        if not found or not found[0]:
            self.proc.kill()
            raise AssertionError(f"no ready line within {READY_S} s; server log:\n{self.log()[-3000:]}")
        return json.loads(found[0])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connect(self):
        return hive.connect(host="127.0.0.1", port=self.port)

    def wait_log(self, pattern: str, timeout_s: float = 30) -> str:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            found = re.search(pattern, self.log(), flags=re.M)
            if found:
                return found.group(0)
            time.sleep(0.5)
        raise AssertionError(f"{pattern!r} not in the server log:\n{self.log()[-3000:]}")


@pytest.fixture(scope="module")
def server(served_lake, tmp_path_factory):
    srv = Server(served_lake, tmp_path_factory.mktemp("sql_server_log") / "server.log")
    yield srv
    if srv.proc.poll() is None:  # a test failed before the stop test
        os.killpg(srv.pgid, signal.SIGKILL)
        srv.proc.wait(30)


def one(cursor, sql: str):
    cursor.execute(sql)
    return cursor.fetchall()[0][0]


def versioned(cursor, sql: str) -> list:
    cursor.execute(sql)
    return [(pairs(r), v) for r, v in cursor.fetchall()]


def pairs(value: str, field: str = "score") -> list:
    return [(r["item_key"], round(r[field], 5)) for r in json.loads(value)]


def error_of(cursor, sql: str) -> str:
    with pytest.raises(Exception) as info:
        cursor.execute(sql)
        cursor.fetchall()
    return str(info.value)


def test_the_ready_line_names_the_endpoint_and_the_versions(server):
    assert server.ready["url"] == f"jdbc:hive2://127.0.0.1:{server.port}/"
    assert server.ready["versions"] == {"item_embeddings": 1, "user_embeddings": 1}
    assert server.ready["version"] == "production"


def test_every_function_and_view_over_pyhive(server):
    cur = server.connect().cursor()
    assert pairs(one(cur, "SELECT gl_recommend('u1', 2)")) == [("i3", 0.8), ("i6", 0.2)]
    assert pairs(one(cur, "SELECT gl_similar_items('i4', 3)")) == [("i5", 0.9), ("i6", 0.8), ("i3", 0.2)]
    interests = json.loads(one(cur, "SELECT gl_interests('u1', 1)"))  # one interest holding both A items
    assert len(interests) == 1 and sorted(interests[0]["items"]) == ["i1", "i2"]
    assert interests[0]["weight"] == pytest.approx(1)
    assert pairs(one(cur, "SELECT gl_explain('u1', 'i4', 3)"), "contribution") == [("i2", 1.0)]  # i4 ⟂ i1
    cur.execute("SELECT category, gl_mean_embedding(item_id) FROM items GROUP BY category ORDER BY category")
    rows = cur.fetchall()
    assert [r[0] for r in rows] == ["A", "B"]
    assert np.allclose(json.loads(rows[0][1]), [0.9, 0.1]) and np.allclose(json.loads(rows[1][1]), [0.1, 0.9])
    assert one(cur, "SELECT gl_recommend('nobody', 2)") is None
    cur.execute("SELECT inline(gl_recommend('u1', 2))")  # rows and columns instead of JSON text
    assert [(k, round(v, 5)) for k, v in cur.fetchall()] == [("i3", 0.8), ("i6", 0.2)]
    cur.execute("SELECT count(*), max(asset_version) FROM item_embeddings")
    assert cur.fetchall() == [(6, 1)]
    cur.execute("SHOW TABLES")
    assert {r[1] for r in cur.fetchall()} == {"events", "items", "users", "item_embeddings", "user_embeddings"}
    assert one(cur, "SELECT count(*) FROM users") == 3


def test_beeline(server):
    proc = subprocess.run([str(BEELINE), "-u", server.ready["url"], "--silent=true", "--outputformat=tsv2", "-e",
                           "SELECT gl_similar_items('i4', 3) AS similar; SELECT gl_score('u2', 'i5') AS score;"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines[0] == "similar" and pairs(lines[1]) == [("i5", 0.9), ("i6", 0.8), ("i3", 0.2)]
    assert lines[2] == "score" and float(lines[3]) == pytest.approx(0.9)


def test_several_clients_at_once(server):
    expected = {"u1": [("i3", 0.8), ("i6", 0.2)]}
    cur = server.connect().cursor()
    for user in ("u2", "u3"):
        expected[user] = pairs(one(cur, f"SELECT gl_recommend('{user}', 3)"))

    def client(n: int) -> list:
        c = server.connect().cursor()
        got = []
        for i in range(4):
            user = ("u1", "u2", "u3")[(n + i) % 3]
            got.append((user, pairs(one(c, f"SELECT gl_recommend('{user}', {2 if user == 'u1' else 3})"))))
        return got

    with ThreadPoolExecutor(6) as pool:
        answers = [a for batch in pool.map(client, range(6)) for a in batch]
    assert len(answers) == 24 and all(got == expected[user] for user, got in answers)


@pytest.mark.parametrize("sql, message", [
    ("SELEC gl_recommend('u1', 2)", r"PARSE_SYNTAX_ERROR"),
    ("SELECT gl_recommend(no_such_column, 2) FROM users", r"UNRESOLVED_COLUMN"),
    ("SELECT gl_recommend('u1', -1)", r"ValueError: gl_recommend: k must be in 1\.\.1000, got -1"),
    ("SELECT gl_recommend('u1', CAST(NULL AS INT))", r"ValueError: gl_recommend: k must not be NULL"),
    ("SELECT gl_similar_items(1.5D, 3)", r"TypeError: gl_similar_items: item_key must be a string"),
    ("SELECT gl_interests('u1', 0)", r"ValueError: gl_interests: n must be in 1\.\.100, got 0"),
])
def test_a_bad_query_fails_for_its_client_only(server, sql, message):
    cur = server.connect().cursor()
    assert re.search(message, error_of(cur, sql))
    assert pairs(one(cur, "SELECT gl_recommend('u1', 2)")) == [("i3", 0.8), ("i6", 0.2)]  # same connection, still served


def test_each_statement_is_logged_with_its_seconds(server):
    server.wait_log(r"query \d+\.\d{3} s ok: SELECT gl_similar_items\('i4', 3\)")
    line = server.wait_log(r"query \d+\.\d{3} s failed: SELECT gl_recommend\('u1', -1\).*$")
    assert "gl_recommend: k must be in 1..1000, got -1" in line


def _lake_files(lake_dir: str) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in Path(lake_dir).rglob("*") if p.is_file() and "_logs" not in p.parts}


def test_read_only(server, served_lake, tmp_path):
    events = os.path.join(served_lake, "clean", "events")
    target = tmp_path / "written"
    before = _lake_files(served_lake)
    cur = server.connect().cursor()
    refused = [
        f"INSERT OVERWRITE DIRECTORY '{target}' USING parquet SELECT * FROM events",
        f"INSERT OVERWRITE DIRECTORY '{events}' USING parquet SELECT 1 AS a",
        "CREATE TABLE copied USING parquet AS SELECT * FROM items",
        f"CREATE TABLE ext (a INT) USING parquet LOCATION '{events}'",
        "CREATE OR REPLACE TEMP VIEW item_embeddings AS SELECT 1 AS a",
        "DROP VIEW items",
        "CREATE DATABASE other",
        "CACHE TABLE items",
        "ADD JAR /nonexistent.jar",
        "SET spark.sql.ansi.enabled=true",
        f"EXECUTE IMMEDIATE 'INSERT OVERWRITE DIRECTORY ''{target}'' USING parquet SELECT 1'",
        f"BEGIN INSERT OVERWRITE DIRECTORY '{target}' USING parquet SELECT 1; END",
    ]
    for sql in refused:
        assert "graphlake sql-server is read-only" in error_of(cur, sql), sql
    # Spark itself has no INSERT into a path
    assert "TABLE_OR_VIEW_NOT_FOUND" in error_of(cur, f"INSERT INTO parquet.`{events}` SELECT * FROM events")
    # static Java calls are not in the session
    assert "UNRESOLVED_ROUTINE" in error_of(cur, "SELECT reflect('java.lang.System', 'exit', 0)")
    assert "UNRESOLVED_ROUTINE" in error_of(cur, "SELECT java_method('java.lang.System', 'exit', 0)")
    assert not target.exists() and _lake_files(served_lake) == before
    # reading is allowed, the views are intact
    assert one(cur, "SET spark.sql.ansi.enabled") == "spark.sql.ansi.enabled"
    assert one(cur, "SELECT count(*) FROM item_embeddings") == 6
    cur.execute("DESCRIBE items")
    assert cur.fetchall()[0][0] == "item_id"
    assert one(cur, "SELECT count(*) FROM parquet.`{}`".format(events)) > 0
    assert pairs(one(cur, "SELECT gl_recommend('u1', 2)")) == [("i3", 0.8), ("i6", 0.2)]


def test_promotion_and_rollback_reach_the_running_server(server, served_lake, spark):
    """hand-2 moves u1 to [0, 1]: its recommendations become the B items. Clients keep querying during
    the swap; every answer comes from one version set (the recommendation and the view agree)."""
    from graphlake.assets import lifecycle
    from graphlake.assets.config import AssetConfig
    from graphlake.assets.publish import publish

    old, new = [("i3", 0.8), ("i6", 0.2)], [("i4", 1.0), ("i5", 0.9)]
    query = "SELECT gl_recommend('u1', 2), (SELECT max(asset_version) FROM user_embeddings)"
    kept = server.connect().cursor()  # a connection opened before the promotion
    assert versioned(kept, query) == [(old, 1)]
    seen, stop = [], threading.Event()

    def watch():
        cur = server.connect().cursor()
        while not stop.is_set():
            seen.extend(versioned(cur, query))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    hand_run(spark, served_lake, "hand-2", vectors={"user": {**USER_VECTORS, "u1": [0, 1]}, "item": ITEM_VECTORS})
    publish(spark, served_lake, config=AssetConfig(nn_k=2), promote=True, build_docs=False)
    server.wait_log(r"now serving item_embeddings v2, user_embeddings v2", timeout_s=60)
    assert versioned(kept, query) == [(new, 2)]
    assert pairs(one(server.connect().cursor(), "SELECT gl_recommend('u1', 2)")) == new  # a new connection
    for asset in ("user_embeddings", "item_embeddings"):  # both: a user and an item version of one run
        lifecycle.rollback(spark, served_lake, asset)
    server.wait_log(r"now serving item_embeddings v1, user_embeddings v1 \(was", timeout_s=60)
    time.sleep(2 * REFRESH_S)
    stop.set()
    watcher.join(60)
    assert versioned(kept, query) == [(old, 1)]
    assert seen and set(map(repr, seen)) <= {repr((old, 1)), repr((new, 2))}, seen
    assert (new, 2) in seen  # the watcher saw the promoted version too


def test_sigterm_stops_it_cleanly(server):
    members = [p for p in psutil.process_iter() if _pgid(p) == server.pgid]
    assert any("java" in p.name() for p in members)  # the JVM is in the server's process group
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(120) == 0, server.log()[-3000:]
    deadline = time.time() + 30
    while time.time() < deadline and any(_pgid(p) == server.pgid for p in psutil.process_iter()):
        time.sleep(0.5)
    assert not [p.cmdline() for p in psutil.process_iter() if _pgid(p) == server.pgid]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)
    assert "sql-server: stopping" in server.log()


def _pgid(proc) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except (ProcessLookupError, psutil.Error):
        return None
