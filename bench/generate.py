"""Benchmark of the synthetic log generator: prints one JSON line of figures.

Usage:
    python bench/generate.py --events 10000000 --out /tmp/gen10m
    # {"events": 10052310, "seconds": 151.2, "events_per_s": 66483.0, ...}

Sizes follow the events wanted: users = events / 50, items = events / 200 (10M events:
200k users, 50k items), over ``--days`` days. Time is wall time of :func:`graphlake.etl.generator.generate`
with a warm Spark session (session start-up excluded, reported separately).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events wanted")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--users", type=int, default=None, help="default: events / 50")
    parser.add_argument("--items", type=int, default=None, help="default: events / 200")
    parser.add_argument("--out", default="/tmp/graphlake-bench-generate")
    parser.add_argument("--master", default=None, help="Spark master (default local[*])")
    parser.add_argument("--compress", action="store_true", help="write .jsonl.gz events")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error(f"--events: expected a positive int, got {args.events}")

    from graphlake.core.spark import get_spark
    from graphlake.etl.generator import GeneratorConfig, generate

    t0 = time.perf_counter()
    spark = get_spark(master=args.master, app_name="bench-generate")
    spark.range(1).count()
    startup = time.perf_counter() - t0
    config = GeneratorConfig(
        users=args.users or max(1_000, args.events // 50),
        items=args.items or max(500, args.events // 200),
        days=args.days,
        seed=args.seed,
        target_events=args.events,
        compress=args.compress,
    )
    t1 = time.perf_counter()
    summary = generate(spark, args.out, config)
    seconds = time.perf_counter() - t1
    size = sum(os.path.getsize(f) for f in summary["paths"]["event_files"])
    figures = {
        "events": summary["events_total"],
        "seconds": round(seconds, 2),
        "events_per_s": round(summary["events_total"] / seconds, 1),
        "users": config.users,
        "items": config.items,
        "days": config.days,
        "event_files": len(summary["paths"]["event_files"]),
        "event_bytes": size,
        "bots": len(summary["bots"]),
        "bad_lines": sum(summary["bad_counts"].values()),
        "spark_startup_s": round(startup, 2),
        "cores": os.cpu_count(),
        "master": spark.sparkContext.master,
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
