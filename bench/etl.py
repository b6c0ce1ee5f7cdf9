"""ETL benchmark: events/s end to end (raw JSON lines -> committed, validated clean Delta tables)
for generated logs of several sizes, peak memory, and the linearity ratio.

Prints one JSON line, e.g.::

    {"sizes": [{"events": 1000000, "etl_s": ..., "events_per_s": ...}, ...], "ratio_10m_1m": ...}

Each size runs in its own process (fresh Spark JVM), so the peak resident memory of the Python
driver and the JVM (VmHWM from /proc) belongs to that size alone. Generation time is reported
separately and is not part of the ETL figure. The target: 10M takes <= 12x the time of 1M.

Usage:
    python bench/etl.py                       # 1M and 10M
    python bench/etl.py --sizes 1000000       # one size
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _peak_rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def run_one(events: int, work: str, seed: int) -> dict:
    from graphlake.core.spark import get_spark
    from graphlake.etl.generator import GeneratorConfig, generate
    from graphlake.etl.job import run_etl

    spark = get_spark(app_name="bench-etl", conf={"spark.ui.enabled": "false", "spark.driver.memory": "8g"})
    raw, lake_dir = os.path.join(work, "raw"), os.path.join(work, "lake")
    shutil.rmtree(work, ignore_errors=True)
    config = GeneratorConfig(users=max(1000, events // 50), items=max(500, events // 200), days=7, seed=seed,
                             target_events=events)
    t0 = time.time()
    gen = generate(spark, raw, config)
    t1 = time.time()
    report = run_etl(spark, raw, lake_dir)
    t2 = time.time()
    peak = _peak_rss_mb(_descendants(os.getpid()))
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    ev = report["events"]
    return {
        "events": ev["input"], "clean": ev["clean"], "quarantined": ev["quarantined"], "duplicates": ev["duplicates"],
        "generate_s": round(t1 - t0, 1), "etl_s": round(t2 - t1, 1),
        "events_per_s": round(ev["input"] / (t2 - t1)), "peak_rss_mb": peak,
        "generated_lines": gen.get("events_total"),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated event counts")
    parser.add_argument("--work", default="/tmp/graphlake-bench-etl")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--single", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.single is not None:
        print(json.dumps(run_one(args.single, args.work, args.seed)))
        return {}
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        out = subprocess.run([sys.executable, __file__, "--single", str(size), "--work", args.work,
                              "--seed", str(args.seed)], capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            raise SystemExit(f"bench for {size} events failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"# {results[-1]}", file=sys.stderr, flush=True)
    summary = {"bench": "etl", "cores": os.cpu_count(), "sizes": results}
    if len(results) >= 2:
        small, large = results[0], results[-1]
        summary["time_ratio"] = round(large["etl_s"] / small["etl_s"], 2)
        summary["size_ratio"] = round(large["events"] / small["events"], 2)
        summary["linear_ok"] = summary["time_ratio"] <= 1.2 * summary["size_ratio"]
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
