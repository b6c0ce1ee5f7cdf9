"""The ``graphlake`` command line. Every command accepts ``--lake DIR`` and ``--json``.

Examples:
    graphlake generate --out raw --users 20000 --items 5000 --days 3 --seed 7
    graphlake etl --raw raw --lake lakehouse [--date 2024-01-01 ...] [--config etl.yaml]
    graphlake import --format lightgcn ../shared/datasets/gowalla --lake lakehouse
    graphlake validate --stage etl --lake lakehouse
    graphlake lake history clean/events --lake lakehouse
    graphlake lake cleanup --lake lakehouse --older-than-minutes 60
    graphlake demo --lake lakehouse
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

DEFAULT_LAKE = "./lakehouse"


def _spark(args):
    from graphlake.spark import get_spark

    conf = {}
    for item in args.conf or []:
        if "=" not in item:
            raise ValueError(f"--conf: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        conf[key] = value
    return get_spark(master=args.master, app_name=f"graphlake-{args.command}", conf=conf)


def _emit(args, summary: dict, human: str) -> None:
    if args.json:
        print(json.dumps(summary, default=str, sort_keys=True))
    else:
        print(human)


# ------------------------------------------------------------------------------ commands


def cmd_generate(args) -> dict:
    from etl.generator import GeneratorConfig, generate
    from graphlake.config import load_config

    overrides = {k: v for k, v in {"users": args.users, "items": args.items, "days": args.days,
                                    "seed": args.seed, "start_date": args.start_date,
                                    "target_events": args.events}.items() if v is not None}
    base = load_config(GeneratorConfig, args.config, section="generate") if args.config else GeneratorConfig()
    config = GeneratorConfig(**{**_asdict(base), **overrides})
    summary = generate(_spark(args), args.out, config)
    _emit(args, summary, f"generated {summary.get('events_total')} events, {config.users} users, "
                         f"{config.items} items over {config.days} days into {args.out}")
    return summary


def _asdict(config) -> dict:
    from graphlake.config import to_dict

    return to_dict(config)


def cmd_etl(args) -> dict:
    from etl.job import run_etl
    from etl.transforms import EtlRules
    from graphlake.config import load_config

    rules = load_config(EtlRules, args.config, section="etl")
    report = run_etl(_spark(args), args.raw, args.lake, dates=args.date, rules=rules,
                     validate=not args.no_validate)
    _emit(args, report, _etl_human(report))
    return report


def _etl_human(report: dict) -> str:
    ev = report["events"]
    lines = [
        f"ETL run {report['run_id']} for {', '.join(report['dates'])}: {report['seconds']} s",
        f"  events: {ev['input']} in = {ev['clean']} clean + {ev['quarantined']} quarantined + {ev['duplicates']} duplicates",
    ]
    for reason, n in ev["reasons"].items():
        lines.append(f"    quarantined {reason}: {n}")
    for name in ("items", "users"):
        part = report.get(name, {})
        lines.append(f"  {name}: {part.get('input', 0)} in = {part.get('clean', 0)} clean + "
                     f"{part.get('quarantined', 0)} quarantined + {part.get('superseded', 0)} superseded")
    validation = report.get("validation")
    if validation:
        lines.append(f"  data quality: {'passed' if validation['success'] else 'FAILED'}; Data Docs {validation['data_docs']}")
    return "\n".join(lines)


def cmd_import(args) -> dict:
    from etl.importers import import_dataset

    report = import_dataset(_spark(args), args.format, args.path, args.lake, seed=args.seed or 0)
    _emit(args, report, json.dumps(report, indent=2, default=str))
    return report


def cmd_validate(args) -> dict:
    from etl.job import last_run, validate_run
    from graphlake.quality import QualityError

    if args.stage != "etl":
        raise ValueError(f"--stage: expected one of ['etl'], got {args.stage!r}")
    spark = _spark(args)
    try:
        summary = validate_run(spark, args.lake, last_run(spark, args.lake))
    except QualityError as exc:
        _emit(args, exc.summary, str(exc))
        raise SystemExit(1) from exc
    _emit(args, summary, f"stage {args.stage}: all suites passed ({', '.join(summary['suites'])}); "
                         f"Data Docs {summary['data_docs']}")
    return summary


def cmd_lake(args) -> dict:
    from graphlake import lake, tables

    if args.lake_command == "history":
        rows = lake.history(tables.table_path(args.lake, args.table), limit=args.limit)
        _emit(args, {"table": args.table, "history": rows},
              "\n".join(_history_line(r) for r in rows))
        return {"history": rows}
    removed = {}
    for root, dirs, _files in os.walk(args.lake):
        if "_delta_log" in dirs:
            removed[os.path.relpath(root, args.lake)] = lake.cleanup(
                root, older_than_s=args.older_than_minutes * 60, dry_run=args.dry_run)
            dirs[:] = []
    total = sum(len(v) for v in removed.values())
    _emit(args, {"removed": removed, "dry_run": args.dry_run},
          f"{'would remove' if args.dry_run else 'removed'} {total} uncommitted files/folders "
          f"in {len(removed)} tables")
    return removed


def _history_line(entry: dict) -> str:
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(entry.get("timestamp", 0) / 1000, tz=timezone.utc).isoformat(timespec="seconds")
    params = entry.get("operationParameters") or {}
    return (f"v{entry['version']:<4} {when}  {entry.get('operation', ''):<13} mode={params.get('mode', '')} "
            f"job={entry.get('graphlake.job', '-')} run={entry.get('graphlake.run_id', '-')}")


def cmd_demo(args) -> dict:
    from graphlake.demo import run_demo

    summary = run_demo(_spark(args), args.lake, raw_dir=args.raw, events=args.events, seed=args.seed or 7)
    if args.json:
        print(json.dumps(summary, default=str, sort_keys=True))
    return summary


# ------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphlake", description="graph-embedding data assets on a lakehouse")
    sub = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lake", default=DEFAULT_LAKE, help=f"lake root (default {DEFAULT_LAKE})")
    common.add_argument("--json", action="store_true", help="print a JSON summary")
    common.add_argument("--master", default=None, help="Spark master URL (default local[*] or $GRAPHLAKE_SPARK_MASTER)")
    common.add_argument("--conf", action="append", help="extra Spark setting key=value (repeatable)")
    common.add_argument("--seed", type=int, default=None, help="random seed")

    def add(name, func, help_):
        p = sub.add_parser(name, help=help_, parents=[common])
        p.set_defaults(func=func)
        return p

    p = add("generate", cmd_generate, "write synthetic behaviour logs in the raw input contract")
    p.add_argument("--out", required=True, help="raw folder to write")
    p.add_argument("--users", type=int)
    p.add_argument("--items", type=int)
    p.add_argument("--days", type=int)
    p.add_argument("--events", type=int, help="total events wanted (derives the per-user rate)")
    p.add_argument("--start-date", dest="start_date")
    p.add_argument("--config", help="YAML file (top-level or under `generate:`)")

    p = add("etl", cmd_etl, "raw logs -> clean Delta tables and quarantine")
    p.add_argument("--raw", required=True, help="raw folder (events/dt=..., items/, users/)")
    p.add_argument("--date", action="append", help="YYYY-MM-DD to (re)process; repeatable; default all")
    p.add_argument("--config", help="YAML with ETL rules (top-level or under `etl:`)")
    p.add_argument("--no-validate", action="store_true", help="skip the Great Expectations gate")

    p = add("import", cmd_import, "import a public dataset into the clean tables")
    p.add_argument("--format", required=True, choices=["lightgcn", "ml100k", "mule", "s3rec"])
    p.add_argument("path", help="dataset folder")

    p = add("validate", cmd_validate, "run a stage's Great Expectations suites on the lake")
    p.add_argument("--stage", required=True, choices=["etl"])

    p = add("lake", cmd_lake, "lake maintenance: history, cleanup of failed writes")
    lake_sub = p.add_subparsers(dest="lake_command", required=True)
    h = lake_sub.add_parser("history", help="commit history of a table", parents=[common])
    h.add_argument("table", help="table name, e.g. clean/events")
    h.add_argument("--limit", type=int, default=20)
    c = lake_sub.add_parser("cleanup", help="remove files of failed or killed writes", parents=[common])
    c.add_argument("--older-than-minutes", type=float, default=60.0)
    c.add_argument("--dry-run", action="store_true")

    p = add("demo", cmd_demo, "run every stage on synthetic logs and print what it produced")
    p.add_argument("--raw", default=None, help="raw folder (default <lake>/../raw-demo)")
    p.add_argument("--events", type=int, default=300_000, help="events to generate")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("GRAPHLAKE_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    start = time.time()
    try:
        args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"graphlake {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a failed job: one readable line, the details in the log
        from etl.job import EtlError

        if isinstance(exc, EtlError):
            print(f"graphlake {args.command}: {exc}", file=sys.stderr)
            return 1
        raise
    logging.getLogger(__name__).info("%s finished in %.1f s", args.command, time.time() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
