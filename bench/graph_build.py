"""Graph build benchmark: events/s and edges/s from the clean tables to a committed graph version
(id maps, nodes, edges, features, stats, GE gate, manifest), for generated logs of several sizes.

Prints one JSON line, e.g.::

    {"bench": "graph_build", "sizes": [{"events": 1000000, "build_s": ..., "events_per_s": ...,
     "edges_per_s": ..., "peak_rss_mb": ...}, ...], "time_ratio": ..., "size_ratio": ...}

For each size a first process generates the logs and runs the ETL (``validate=False``); that time
is reported as ``prepare_s`` and is NOT part of the figures. A second, fresh process (new Spark
JVM) runs only ``build_graph``, so its peak resident memory (VmHWM of the process tree: Python
driver, JVM, Python workers) belongs to the build alone. ``time_ratio`` = largest / smallest build
time; cost should grow linearly (``linear_ok``: time ratio <= 1.2 x size ratio).

Usage:
    python bench/graph_build.py                         # 1M, 10M, 50M events (long!)
    python bench/graph_build.py --sizes 1000000         # one size
    python bench/graph_build.py --sizes 1000000 --text-model hashing   # model-free title features
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _bench_etl():
    """bench/etl.py as a module (its process-tree memory helpers); named so it does not shadow ``etl``."""
    spec = importlib.util.spec_from_file_location("bench_etl", os.path.join(ROOT, "bench", "etl.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spark():
    from graphlake.core.spark import get_spark

    return get_spark(app_name="bench-graph-build", conf={"spark.ui.enabled": "false", "spark.driver.memory": "8g"})


def prepare(events: int, work: str, seed: int) -> dict:
    """Generate ``events`` synthetic events and ETL them (no GE gate) into ``<work>/lake``."""
    from graphlake.etl.generator import GeneratorConfig, generate
    from graphlake.etl.job import run_etl

    shutil.rmtree(work, ignore_errors=True)
    spark = _spark()
    raw, lake_dir = os.path.join(work, "raw"), os.path.join(work, "lake")
    config = GeneratorConfig(users=max(1000, events // 50), items=max(500, events // 200), days=7, seed=seed,
                             target_events=events)
    t0 = time.time()
    generate(spark, raw, config)
    report = run_etl(spark, raw, lake_dir, validate=False)
    spark.stop()
    shutil.rmtree(raw, ignore_errors=True)
    return {"clean_events": report["events"]["clean"], "prepare_s": round(time.time() - t0, 1)}


def build(work: str, text_model: str) -> dict:
    """Time ``build_graph`` on ``<work>/lake`` in this (fresh) process."""
    from graphlake.core import tables
    from graphlake.graph_build import job
    from graphlake.graph_build.config import GraphConfig
    from graphlake.graph_build.manifest import table_rows

    lake_dir = os.path.join(work, "lake")
    spark = _spark()
    spark.range(1).count()  # JVM warm-up is not part of the build
    t0 = time.time()
    summary = job.build_graph(spark, lake_dir, GraphConfig(text_model=text_model), build_docs=False)
    seconds = time.time() - t0
    helpers = _bench_etl()
    peak = helpers._peak_rss_mb(helpers._descendants(os.getpid()))
    spark.stop()
    events = table_rows(tables.table_path(lake_dir, tables.CLEAN_EVENTS))
    n_edges = sum(summary["edge_counts"].values())
    return {"events": events, "edges": n_edges, "nodes": sum(summary["node_counts"].values()),
            "build_s": round(seconds, 1), "events_per_s": round(events / seconds),
            "edges_per_s": round(n_edges / seconds),
            "peak_rss_mb": peak, "text_backend": summary["feature_spec"].get("item", {}).get("text", {}).get("backend"),
            "edge_counts": summary["edge_counts"]}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"bench step {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000,50000000", help="comma-separated event counts")
    parser.add_argument("--work", default="/tmp/graphlake-bench-graph")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--text-model", default="all-MiniLM-L6-v2", help="title embeddings ('hashing': model-free)")
    parser.add_argument("--keep", action="store_true", help="keep the lakes under --work")
    parser.add_argument("--prepare", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare is not None:
        print(json.dumps(prepare(args.prepare, args.work, args.seed)))
        return {}
    if args.build:
        print(json.dumps(build(args.work, args.text_model)))
        return {}
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        work = os.path.join(args.work, str(size))
        prep = _child(["--prepare", str(size), "--work", work, "--seed", str(args.seed)])
        res = _child(["--build", "--work", work, "--text-model", args.text_model])
        results.append({"generated": size, **prep, **res})
        print(f"# {results[-1]}", file=sys.stderr, flush=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    summary = {"bench": "graph_build", "cores": os.cpu_count(), "text_model": args.text_model,
               "sizes": [{k: v for k, v in r.items() if k != "edge_counts"} for r in results],
               "edge_counts": {r["generated"]: r["edge_counts"] for r in results}}
    if len(results) >= 2:
        small, large = results[0], results[-1]
        summary["time_ratio"] = round(large["build_s"] / small["build_s"], 2)
        summary["size_ratio"] = round(large["events"] / small["events"], 2)
        summary["linear_ok"] = summary["time_ratio"] <= 1.2 * summary["size_ratio"]
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
