"""JDBC/ODBC server benchmark: point queries over ``graphlake sql-server`` against the same query through
``graphlake sql`` (one process per query); prints one JSON line.

Measured on a published lake (``--lake``; e.g. the demo's, or any lake ``graphlake publish`` wrote):

* the server (``graphlake sql-server``, started by this script on a free port of 127.0.0.1, ``--master``
  ``local[2]`` by default) until its ready line: ``server_start_s``;
* ``gl_recommend('<user>', k)`` and ``gl_similar_items('<item>', k)`` over PyHive (the Thrift
  protocol JDBC drivers speak), each with 1 and with 8 concurrent clients (one connection each, opened
  before timing; ``--queries`` statements per client after ``--warmup`` untimed ones): latency p50 / p99
  (execute + fetch, seconds) and ``queries_per_s`` (all the clients' statements / wall seconds);
* the same statements through ``graphlake sql --json`` (``--cli-runs`` processes each; a process
  starts Spark, registers the functions, answers, exits): p50 seconds;
* ``ratio``: ``graphlake sql`` p50 / the server's 1-client p50 (how many times faster one answer
  comes back), and the server's 8-client queries/s x the CLI's p50 (how many CLI processes in a row
  the server's throughput replaces).

Every answer is checked against the first one (same rows), so a figure never counts an error.

Usage:
    .venv/bin/python bench/sql_server.py --lake lakehouse --user u1 --item i1
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from pyhive import hive

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(lake: str, port: int, master: str, log_path: str):
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "graphlake.app.cli", "sql-server", "--lake", lake, "--port",
                             str(port), "--master", master, "--json"], stdout=subprocess.PIPE,
                            stderr=open(log_path, "w"), text=True, cwd=str(ROOT), start_new_session=True)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the server did not start; its log: {log_path}")
    return proc, json.loads(line), time.perf_counter() - started


def run_clients(port: int, sql: str, clients: int, queries: int, warmup: int, expected) -> dict:
    cursors = [hive.connect(host="127.0.0.1", port=port).cursor() for _ in range(clients)]
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[str] = []

    def client(cur, timed: int):
        mine = []
        for _ in range(timed):
            t = time.perf_counter()
            cur.execute(sql)
            rows = cur.fetchall()
            mine.append(time.perf_counter() - t)
            if rows != expected:
                errors.append(repr(rows)[:200])
        with lock:
            latencies.extend(mine)

    for cur in cursors:
        client(cur, warmup)
    latencies.clear()
    threads = [threading.Thread(target=client, args=(cur, queries)) for cur in cursors]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    if errors:
        raise SystemExit(f"{sql}: {len(errors)} wrong answers, e.g. {errors[0]}")
    return {"clients": clients, "queries": len(latencies), "p50_s": round(float(np.percentile(latencies, 50)), 4),
            "p99_s": round(float(np.percentile(latencies, 99)), 4), "queries_per_s": round(len(latencies) / wall, 2)}


def run_cli(lake: str, sql: str, runs: int, master: str) -> dict:
    seconds = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "graphlake.app.cli", "sql", "--lake", lake, "--master", master,
                               "--json", sql], capture_output=True, text=True, cwd=str(ROOT))
        seconds.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"graphlake sql failed: {proc.stderr[-2000:]}")
    return {"runs": runs, "p50_s": round(float(np.percentile(seconds, 50)), 3), "min_s": round(min(seconds), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lake", required=True, help="a lake with published (production) embeddings")
    ap.add_argument("--user", default="u1", help="user key of gl_recommend")
    ap.add_argument("--item", default="i1", help="item key of gl_similar_items")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=40, help="timed statements per client")
    ap.add_argument("--warmup", type=int, default=3, help="untimed statements per client first")
    ap.add_argument("--cli-runs", dest="cli_runs", type=int, default=3, help="graphlake sql processes per query")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--log", default="/tmp/graphlake-bench-sql-server.log", help="the server's stderr")
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    port = free_port()
    proc, ready, start_s = start_server(args.lake, port, args.master, args.log)
    out = {"bench": "sql_server", "lake": os.path.abspath(args.lake), "versions": ready["versions"],
           "master": args.master, "cpus": os.cpu_count(), "load_avg_1m_before": round(os.getloadavg()[0], 2),
           "server_start_s": round(start_s, 2), "queries": {}}
    try:
        statements = {"gl_recommend": f"SELECT gl_recommend('{args.user}', {args.k})",
                      "gl_similar_items": f"SELECT gl_similar_items('{args.item}', {args.k})"}
        for name, sql in statements.items():
            cur = hive.connect(host="127.0.0.1", port=port).cursor()
            cur.execute(sql)
            expected = cur.fetchall()
            if not expected or expected[0][0] is None:
                raise SystemExit(f"{sql}: no answer (unknown key?) -- choose --user / --item of the lake")
            jdbc = [run_clients(port, sql, n, args.queries, args.warmup, expected) for n in (1, 8)]
            cli = run_cli(args.lake, sql, args.cli_runs, args.master)
            out["queries"][name] = {
                "sql": sql, "jdbc": jdbc, "graphlake_sql": cli,
                "ratio": {"latency_cli_p50_over_jdbc_p50": round(cli["p50_s"] / jdbc[0]["p50_s"], 1),
                          "jdbc_8_clients_queries_per_cli_process": round(jdbc[1]["queries_per_s"] * cli["p50_s"], 1)}}
    finally:
        proc.send_signal(signal.SIGTERM)
        out["server_exit_code"] = proc.wait(120)
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
