"""Cluster benchmark: graph build on ``local[2]`` vs a 2-worker Spark standalone cluster of this
machine (:mod:`graphlake.app.cluster`, 1 core per worker) for the same events, whether the two graphs
match, and the launch overhead of ``horovod.spark.run`` on that cluster vs ``horovodrun``.

Prints one JSON line, e.g.::

    {"bench": "cluster", "events": 5000000, "local_build_s": ..., "cluster_build_s": ...,
     "cluster_over_local": ..., "outputs_match": true, "tables_compared": 14,
     "horovodrun_s": ..., "horovod_spark_run_s": ..., "horovod_spark_overhead_s": ...}

Steps, each in a fresh process (own driver JVM), as in bench/graph_build.py (whose ``prepare`` and
``build`` it reuses): generate + ETL once (``prepare_s``, not part of the figures); copy the clean
tables to two lakes; ``build_graph`` with ``GRAPHLAKE_SPARK_MASTER=local[2]`` and with the
cluster's URL; checksums (row count + sum of xxhash64 of every row, floats rounded to 9 decimals:
:mod:`graphlake.app.compare`) of every graph table of both.
The Horovod figures are the wall time of ``launch("horovod", 2, training.distributed.selftest)``
(5 tiny steps: the time is launch overhead) with ``horovodrun`` and with ``horovod.spark.run`` on
the cluster (session already started).

Usage:
    python bench/cluster.py                  # 5M events (long on 2 cores)
    python bench/cluster.py --events 500000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SELFTEST = ["--steps", "5", "--batch-size", "16"]


def _bench_graph_build():
    """bench/graph_build.py as a module (its prepare / build steps)."""
    spec = importlib.util.spec_from_file_location("bench_graph_build", os.path.join(ROOT, "bench", "graph_build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _child(args: list[str], env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *args], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, **(env or {})})
    if out.returncode != 0:
        raise SystemExit(f"bench step {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def checksums(lake_dir: str) -> dict:
    """{graph table: [rows, sum of xxhash64(row)]} of the latest version of every graph table, floats
    rounded to :data:`graphlake.app.compare.FLOAT_DECIMALS` (PageRank sums differ in the last bits
    between task orders)."""
    from graphlake.app.compare import table_checksum
    from graphlake.core import lake
    from graphlake.core.spark import get_spark

    spark = get_spark(master="local[2]", app_name="bench-cluster-checksums", conf={"spark.ui.enabled": "false"})
    graph_dir, found = os.path.join(lake_dir, "graph"), {}
    for name in sorted(os.listdir(graph_dir)):
        path = os.path.join(graph_dir, name)
        if name == "manifest" or not lake.table_exists(path):
            continue  # the manifest row holds the build's wall-clock time
        found[f"graph/{name}"] = table_checksum(lake.read_table(spark, path))
    spark.stop()
    return found


def horovod_launch_s(master: str | None) -> float:
    """Wall time of a 5-step 2-rank Horovod selftest: horovodrun (``master`` None) or
    horovod.spark.run on ``master`` (its session is started before the clock)."""
    from graphlake.training.distributed.launch import launch

    spark = None
    if master:
        from graphlake.core.spark import get_spark

        spark = get_spark(master=master, app_name="bench-horovod-spark", conf={"spark.ui.enabled": "false"})
        spark.range(2).count()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.time()
        launch("horovod", 2, "graphlake.training.distributed.selftest", ["--out", out, *SELFTEST],
               mode="spark" if master else "process", spark=spark, timeout_s=600)
        seconds = time.time() - t0
    if spark is not None:
        spark.stop()
    return round(seconds, 1)


def _cluster_env(cluster) -> dict:
    return {"GRAPHLAKE_SPARK_MASTER": cluster.master_url, "SPARK_LOCAL_IP": "127.0.0.1"}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--work", default="/tmp/graphlake-bench-cluster")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--text-model", default="hashing", help="title features (default model-free)")
    parser.add_argument("--worker-memory", default="2g", help="memory each of the 2 workers offers")
    parser.add_argument("--no-horovod", action="store_true", help="skip the Horovod launch figures")
    parser.add_argument("--checksums", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--horovod", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.checksums:
        print(json.dumps(checksums(args.checksums)))
        return {}
    if args.horovod is not None:
        print(json.dumps({"seconds": horovod_launch_s(args.horovod or None)}))
        return {}
    from graphlake.app.cluster import LocalCluster

    bench_gb = os.path.join(ROOT, "bench", "graph_build.py")
    shutil.rmtree(args.work, ignore_errors=True)
    prep_dir = os.path.join(args.work, "prepared")
    prep = json.loads(subprocess.run([sys.executable, bench_gb, "--prepare", str(args.events), "--work", prep_dir,
                                      "--seed", str(args.seed)], capture_output=True, text=True, check=True,
                                     cwd=ROOT).stdout.strip().splitlines()[-1])
    for mode in ("local", "cluster"):
        shutil.copytree(os.path.join(prep_dir, "lake", "clean"), os.path.join(args.work, mode, "lake", "clean"))

    def build(mode: str, env: dict) -> dict:
        out = subprocess.run([sys.executable, bench_gb, "--build", "--work", os.path.join(args.work, mode),
                              "--text-model", args.text_model], capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, **env})
        if out.returncode != 0:
            raise SystemExit(f"{mode} build failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    local = build("local", {"GRAPHLAKE_SPARK_MASTER": "local[2]"})
    result = {"bench": "cluster", "cores": os.cpu_count(), "events": local["events"], "generated": args.events,
              "text_model": args.text_model, "prepare_s": prep["prepare_s"], "edges": local["edges"]}
    t0 = time.time()
    with LocalCluster(os.path.join(args.work, "daemons"), workers=2, cores=1, memory=args.worker_memory) as cluster:
        result["cluster_start_s"] = round(time.time() - t0, 1)  # until both workers are registered
        clustered = build("cluster", _cluster_env(cluster))
        if not args.no_horovod:
            result["horovodrun_s"] = _child(["--horovod", ""])["seconds"]
            result["horovod_spark_run_s"] = _child(["--horovod", cluster.master_url], _cluster_env(cluster))["seconds"]
            result["horovod_spark_overhead_s"] = round(result["horovod_spark_run_s"] - result["horovodrun_s"], 1)
    sums = {mode: _child(["--checksums", os.path.join(args.work, mode, "lake")]) for mode in ("local", "cluster")}
    result.update({"local_build_s": local["build_s"], "cluster_build_s": clustered["build_s"],
                   "cluster_over_local": round(clustered["build_s"] / local["build_s"], 2),
                   "local_peak_rss_mb": local["peak_rss_mb"], "outputs_match": sums["local"] == sums["cluster"],
                   "tables_compared": len(sums["local"]),
                   "edge_counts_match": local["edge_counts"] == clustered["edge_counts"]})
    if not result["outputs_match"]:
        result["differing_tables"] = sorted(k for k in sums["local"] if sums["local"][k] != sums["cluster"].get(k))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
