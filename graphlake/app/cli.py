"""The ``graphlake`` command line. Every command accepts ``--lake DIR`` and ``--json``.

Examples:
    graphlake generate --out raw --users 20000 --items 5000 --days 3 --seed 7
    graphlake etl --raw raw --lake lakehouse [--date 2024-01-01 ...] [--config etl.yaml]
    graphlake import --format lightgcn ../shared/datasets/gowalla --lake lakehouse
    graphlake validate --stage etl --lake lakehouse
    graphlake graph build --lake lakehouse [--config graph.yaml]
    graphlake graph stats --lake lakehouse [--json]
    graphlake graph export --lake lakehouse [--graph-version N] [--out DIR]
    graphlake validate --stage graph --lake lakehouse
    graphlake train --lake lakehouse --config train.yaml [--backend local|ddp|horovod] [--workers N]
    graphlake train --lake lakehouse --resume --run-id RUN
    graphlake train --lake lakehouse --warm-start latest      (incremental, after a graph rebuild)
    graphlake evaluate --lake lakehouse [--run-id RUN] [--k 20] [--test-file test.txt]
    graphlake publish --lake lakehouse [--run-id RUN] [--promote]
    graphlake embed-new --lake lakehouse [--version production] [--promote]   (cold start, no retraining)
    graphlake assets list|show|promote|rollback|retire|vacuum|history --lake lakehouse ...
    graphlake sql --lake lakehouse "SELECT gl_recommend('u1', 10)"
    graphlake sql-server --lake lakehouse [--host 127.0.0.1] [--port 10000] [--version production]
    graphlake lake history clean/events --lake lakehouse
    graphlake lake cleanup --lake lakehouse --older-than-minutes 60
    graphlake demo --lake lakehouse
    graphlake report --lake lakehouse [--graph-version N] [--run-id RUN]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
import traceback

from graphlake.core.edge_types import parse_edge_type
from graphlake.core.errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, InputNotFoundError, UsageError

DEFAULT_LAKE = "./lakehouse"
VALIDATE_STAGES = ("etl", "graph")


def _spark(args):
    from graphlake.core.spark import get_spark

    try:
        return get_spark(master=args.master, app_name=f"graphlake-{args.command}", conf=_conf(args),
                         remote=args.remote)
    except ValueError as exc:  # --master with --remote, a bad URL, a static --conf on Connect
        raise UsageError(str(exc)) from exc


def _conf(args) -> dict:
    """``--conf key=value`` (repeatable) as a dict of Spark settings."""
    conf = {}
    for item in args.conf or []:
        if "=" not in item:
            raise UsageError(f"--conf: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        conf[key] = value
    return conf


def _emit(args, summary: dict, human: str) -> None:
    if args.json:
        print(json.dumps(summary, default=str, sort_keys=True))
    else:
        print(human)


# ------------------------------------------------------------------------------ commands


def cmd_generate(args) -> dict:
    from graphlake.core.config import load_config
    from graphlake.etl.generator import GeneratorConfig, generate

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
    from graphlake.core.config import to_dict

    return to_dict(config)


def cmd_etl(args) -> dict:
    from graphlake.core.config import load_config
    from graphlake.etl.job import run_etl
    from graphlake.etl.transforms import EtlRules

    rules = load_config(EtlRules, args.config, section="etl")
    report = run_etl(_spark(args), args.raw, args.lake, dates=args.ds, rules=rules,
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
    from graphlake.etl.importers import import_dataset

    report = import_dataset(_spark(args), args.format, args.path, args.lake, seed=args.seed or 0)
    _emit(args, report, json.dumps(report, indent=2, default=str))
    return report


def cmd_validate(args) -> dict:
    from graphlake.core.config import load_config
    from graphlake.core.quality import QualityError
    from graphlake.etl.job import get_run, last_run, validate_run
    from graphlake.etl.transforms import EtlRules

    if args.stage not in VALIDATE_STAGES:
        raise UsageError(f"--stage: expected one of {list(VALIDATE_STAGES)}, got {args.stage!r}")
    if args.stage == "graph" and (args.etl_run_id or args.config):
        raise UsageError("--etl-run-id / --config: only with --stage etl")
    spark = _spark(args)
    try:
        if args.stage == "graph":
            from graphlake.graph_build.job import validate_graph

            summary = validate_graph(spark, args.lake, version=args.graph_version)
        else:
            run = get_run(spark, args.lake, args.etl_run_id) if args.etl_run_id else last_run(spark, args.lake)
            rules = load_config(EtlRules, args.config, section="etl") if args.config else None
            summary = validate_run(spark, args.lake, run, rules=rules)
    except QualityError as exc:
        _emit(args, exc.summary, str(exc))
        raise SystemExit(1) from exc
    _emit(args, summary, f"stage {args.stage}: all suites passed ({', '.join(summary['suites'])}); "
                         f"Data Docs {summary['data_docs']}")
    return summary


def cmd_graph(args) -> dict:
    from graphlake.core.config import load_config
    from graphlake.graph_build.config import GraphConfig

    spark = _spark(args)
    if args.graph_command == "build":
        from graphlake.graph_build.job import build_graph

        config = load_config(GraphConfig, args.config, section="graph")
        summary = build_graph(spark, args.lake, config, validate=not args.no_validate, until_date=args.ds)
        _emit(args, summary, _graph_build_human(summary))
        return summary
    if args.graph_command == "export":
        from graphlake.graph_build.export import export_graph

        summary = export_graph(spark, args.lake, version=args.graph_version, out_dir=args.out,
                               overwrite=args.overwrite)
        _emit(args, summary, _graph_export_human(summary))
        return summary
    from graphlake.graph_build.manifest import graph_summary

    summary = graph_summary(spark, args.lake, version=args.graph_version)
    _emit(args, summary, _graph_stats_human(summary))
    return summary


def _graph_build_human(summary: dict) -> str:
    lines = [f"graph version {summary['graph_version']} committed in {summary['seconds']} s "
             f"(config {summary['config_hash']})"]
    lines += [f"  nodes {t:<10} {n:>12,}" for t, n in summary["node_counts"].items()]
    lines += [f"  edges {e:<36} {n:>12,}" for e, n in summary["edge_counts"].items()]
    validation = summary.get("validation")
    if validation:
        lines.append(f"  data quality: {'passed' if validation['success'] else 'FAILED'}; "
                     f"Data Docs {validation['data_docs']}")
    return "\n".join(lines)


def _graph_export_human(summary: dict) -> str:
    how = "reused (already exported)" if summary["reused"] else f"written in {summary['seconds']} s"
    lines = [f"training snapshot of graph version {summary['graph_version']}: {summary['path']} ({how}, "
             f"{summary['total_bytes'] / 1e6:,.1f} MB)"]
    lines += [f"  csr   {e:<36} {n:>12,} edges" for e, n in summary["edge_types"].items()]
    lines += [f"  nodes {t:<36} {n:>12,}" for t, n in summary["node_types"].items()]
    return "\n".join(lines)


def _graph_stats_human(summary: dict) -> str:
    lines = [f"graph version {summary['graph_version']} (created {summary['created_at']}, config "
             f"{summary['config_hash']}, decay reference {summary['reference_ts']})",
             f"  nodes: {summary['nodes_total']:,}"]
    lines += [f"    {t:<10} {n:>12,}" for t, n in sorted(summary["node_counts"].items())]
    lines.append(f"  edges: {summary['edges_total']:,}")
    for name, n in sorted(summary["edge_counts"].items()):
        src, rel, dst = parse_edge_type(name)
        label = f"{src} -{rel}-> {dst}"
        lines.append(f"    {label:<36} {n:>12,}")
    degrees = summary.get("degrees")
    if degrees:
        lines.append("  degrees (per edge type and direction, over all nodes of the type):")
        for key, d in degrees.items():
            lines.append(f"    {key:<40} p50 {d['p50']:>5}  p90 {d['p90']:>5}  p99 {d['p99']:>6}  max {d['max']:>7}")
    else:
        lines.append("  degrees: no graph/stats table in this graph version")
    comps = summary.get("components")
    if comps:
        lines.append(f"  connected components: {comps['components']:,} (largest {comps['largest_component']:,} nodes, "
                     f"{comps['singleton_components']:,} isolated)")
    return "\n".join(lines)


def cmd_train(args) -> dict:
    from graphlake.core.config import load_config
    from graphlake.training.config import TrainConfig
    from graphlake.training.job import train

    # --seed / --epochs go on top of the config, or of the recipe for the graph without one (training.recipe)
    config, overrides = None, {k: v for k, v in (("seed", args.seed), ("epochs", args.epochs)) if v is not None}
    if args.config:
        config = load_config(TrainConfig, args.config, section="train")
        if args.target is not None:
            from graphlake.training.run_data import behaviour_edge

            overrides["targets"] = (behaviour_edge(args.target),)
    elif args.resume:  # the run's own config (a resumed run keeps it)
        overrides = {}
    elif args.target is not None:  # the recipe with this target behaviour
        from graphlake.graph_build.manifest import load_graph_version
        from graphlake.training.recipe import recommended_config

        config = recommended_config(load_graph_version(_spark(args), args.lake, args.graph_version),
                                    target=args.target)
    summary = train(_spark(args), args.lake, config, backend=args.backend, workers=args.workers,
                    graph_version=args.graph_version, run_id=args.run_id, resume=args.resume,
                    launcher=args.launcher, timeout_s=args.timeout_s, progress=not args.json,
                    warm_start=args.warm_start, device=args.device, overrides=overrides or None,
                    launcher_args=shlex.split(args.launcher_args) if args.launcher_args else None)
    lines = [f"training run {summary['run_id']} ({summary['backend']}, {summary['workers']} worker(s) on "
             f"{summary['device']}): "
             f"{summary['steps']} steps in {summary['seconds']} s on graph version {summary['graph_version']}"]
    for name, value in sorted((summary.get("validation") or {}).items()):
        lines.append(f"  {name}: {value:.4f}" if isinstance(value, float) else f"  {name}: {value}")
    lines += [f"  embeddings {t:<10} -> train/embeddings_{t} (Delta version {v})" for t, v in summary["tables"].items()]
    if summary.get("report"):
        lines.append(f"  report: {summary['report']}")
    _emit(args, summary, "\n".join(lines))
    return summary


def cmd_evaluate(args) -> dict:
    from graphlake.training.evaluate import evaluate
    from graphlake.training.run import TrainRun

    if args.run_id:  # an unknown run fails before a Spark session starts
        TrainRun.of(args.lake, args.run_id).spec()

    result = evaluate(_spark(args), args.lake, run_id=args.run_id, test_table=args.test_table,
                      test_file=args.test_file, split=args.split or None, k=args.k, max_users=args.max_users,
                      seed=args.seed or 0, cold_start=True if args.cold_start else None, target=args.target,
                      mask=args.mask)
    k, lines = result["k"], []
    if f"recall@{k}" in result:
        lines.append(f"run {result['run_id']} (graph version {result['graph_version']}), target {result['target']} "
                     f"(masked: {', '.join(result['masked'])}): recall@{k} {result[f'recall@{k}']:.4f}  "
                     f"ndcg@{k} {result[f'ndcg@{k}']:.4f}  hr@{k} {result[f'hr@{k}']:.4f}  over {result['users']:,} "
                     f"users / {result['test_pairs']:,} pairs ({result['unknown_pairs']:,} pairs with ids unknown to "
                     f"the graph), {result['seconds']} s")
        lines.append("  by the user's training degree in the masked behaviour:")
        lines += [f"    {name:>5}: {g['users']:>7,} users  recall@{k} {g[f'recall@{k}']:.4f}  ndcg@{k} "
                  f"{g[f'ndcg@{k}']:.4f}  hr@{k} {g[f'hr@{k}']:.4f}"
                  for name, g in result["by_degree"].items() if g["users"]]
    if "cold_start" in result:
        c = result["cold_start"]
        lines.append(f"cold start (run {result['run_id']}): {c['items']:,} held-out items, {c['users']:,} users / "
                     f"{c['pairs']:,} pairs: recall@{k} {c[f'recall@{k}']:.4f} (popularity "
                     f"{c[f'popularity_recall@{k}']:.4f}, random {c[f'random_recall@{k}']:.4f})  ndcg@{k} "
                     f"{c[f'ndcg@{k}']:.4f} (popularity {c[f'popularity_ndcg@{k}']:.4f}, random {c[f'random_ndcg@{k}']:.4f})")
    _emit(args, result, "\n".join(lines))
    return result


def cmd_lake(args) -> dict:
    from graphlake.core import lake, tables

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
    from graphlake.app.demo import run_demo

    summary = run_demo(_spark(args), args.lake, raw_dir=args.raw, events=args.events, seed=args.seed or 7)
    if args.json:
        print(json.dumps(summary, default=str, sort_keys=True))
    return summary


def cmd_report(args) -> str:
    from graphlake.app.report import write_pipeline_report

    asset_version = int(args.asset_version) if args.asset_version.isdigit() else args.asset_version
    path = write_pipeline_report(_spark(args), args.lake, name=args.name, etl_dates=args.ds,
                                 graph_version=args.graph_version, train_run_id=args.run_id,
                                 asset_version=asset_version, sample=args.sample,
                                 seed=7 if args.seed is None else args.seed)
    _emit(args, {"report": path}, path)
    return path


def cmd_sql_server(args) -> dict:
    from graphlake.app.sql_server import serve
    from graphlake.core.spark import resolve_remote

    version = int(args.version) if args.version.isdigit() else args.version
    if resolve_remote(args.remote):
        raise UsageError("sql-server: Spark's Thrift server runs inside its own Spark driver and cannot "
                         "use a Spark Connect session (--remote / $GRAPHLAKE_SPARK_REMOTE); Spark Connect "
                         "clients call the gl_* functions after `graphlake.udfs.register(spark, lake=...)`")
    return serve(args.lake, host=args.host, port=args.port, version=version, refresh_seconds=args.refresh_seconds,
                 master=args.master, conf=_conf(args), json_line=args.json)


def _asset_command(fn):
    """Adapt an asset-layer command ``fn(args, spark, emit)`` (see :mod:`graphlake.app.assets_cli`): ``spark()``
    starts the session on first use, so registry reads start no JVM."""
    def run(args):
        return fn(args, lambda: _spark(args), lambda summary, human: _emit(args, summary, human))
    return run


# ------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphlake", description="graph-embedding data assets on a lakehouse")
    sub = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lake", default=DEFAULT_LAKE, help=f"lake root (default {DEFAULT_LAKE})")
    common.add_argument("--json", action="store_true", help="print a JSON summary")
    common.add_argument("--master", default=None, help="Spark master URL (default local[*] or $GRAPHLAKE_SPARK_MASTER)")
    common.add_argument("--remote", default=None, help="Spark Connect server URL sc://host:port (default "
                        "$GRAPHLAKE_SPARK_REMOTE); exclusive with --master")
    common.add_argument("--conf", action="append", help="extra Spark setting key=value (repeatable)")
    common.add_argument("--seed", type=int, default=None, help="random seed")

    verbs = {}  # verb path -> its parser: the pipeline steps' options go there (below)

    def add(name, func, help_):
        p = verbs[(name,)] = sub.add_parser(name, help=help_, parents=[common])
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
    p.add_argument("--no-validate", action="store_true", help="skip the Great Expectations gate")

    p = add("import", cmd_import, "import a public dataset into the clean tables")
    p.add_argument("--format", required=True, choices=["lightgcn", "ml100k", "mule", "s3rec"])
    p.add_argument("path", help="dataset folder")

    p = add("validate", cmd_validate, "run a stage's Great Expectations suites on the lake")
    p.add_argument("--stage", required=True, choices=list(VALIDATE_STAGES))

    p = add("graph", cmd_graph, "graph build: clean tables -> versioned graph tables; graph stats")
    graph_sub = p.add_subparsers(dest="graph_command", required=True)
    b = verbs[("graph", "build")] = graph_sub.add_parser("build", help="build and commit the next graph version",
                                                         parents=[common])
    b.add_argument("--no-validate", action="store_true", help="skip the Great Expectations gate")
    st = graph_sub.add_parser("stats", help="summary of a graph version", parents=[common])
    st.add_argument("--graph-version", dest="graph_version", type=int, default=None, help="default: latest")
    ex = graph_sub.add_parser("export", help="training snapshot (CSR + feature .npy files) of a graph version",
                              parents=[common])
    ex.add_argument("--graph-version", dest="graph_version", type=int, default=None, help="default: latest")
    ex.add_argument("--out", default=None, help="snapshot folder (default <lake>/snapshots/graph_v<N>)")
    ex.add_argument("--overwrite", action="store_true", help="re-export an existing snapshot")

    p = add("train", cmd_train, "train the heterogeneous GraphSAGE on a graph version; embeddings -> Delta")
    p.add_argument("--run-id", dest="run_id", default=None)
    p.add_argument("--resume", action="store_true", help="continue --run-id from its last checkpoint")
    p.add_argument("--warm-start", dest="warm_start", default=None, metavar="RUN|latest",
                   help="incremental: start from a finished run's final model (new nodes get fresh rows)")
    p.add_argument("--target", default=None, metavar="BEHAVIOUR|EDGE_TYPE",
                   help="the target behaviour (e.g. purchase = user__purchase__item): with --config it replaces the "
                        "config's targets (the others stay relations); without, the recipe trains it with the other "
                        "behaviours as auxiliary targets (default purchase)")

    p = add("evaluate", cmd_evaluate, "Recall@K / NDCG@K of a training run (full ranking)")
    p.add_argument("--test-table", dest="test_table", default="import/test_interactions")
    p.add_argument("--test-file", dest="test_file", default=None, help="'user item [item ...]' lines")
    p.add_argument("--split", default="test", help="split of the test table ('' = all)")
    p.add_argument("--max-users", dest="max_users", type=int, default=None, help="evaluate a sample of users")
    p.add_argument("--target", default=None, metavar="BEHAVIOUR|EDGE_TYPE",
                   help="the behaviour evaluated (default: the run's target behaviour)")
    p.add_argument("--mask", default="target", choices=["target", "targets"],
                   help="mask the user's training items of the evaluated behaviour only (default, MuLe's protocol) "
                        "or of every target behaviour of the run")
    p.add_argument("--cold-start", dest="cold_start", action="store_true",
                   help="only the run's held-out (cold-start) items, ranked among themselves; runs with held-out "
                        "items report them without the flag too")

    p = add("lake", cmd_lake, "lake maintenance: history, cleanup of failed writes")
    lake_sub = p.add_subparsers(dest="lake_command", required=True)
    h = lake_sub.add_parser("history", help="commit history of a table", parents=[common])
    h.add_argument("table", help="table name, e.g. clean/events")
    h.add_argument("--limit", type=int, default=20)
    c = lake_sub.add_parser("cleanup", help="remove files of failed or killed writes", parents=[common])
    c.add_argument("--older-than-minutes", type=float, default=60.0)
    c.add_argument("--dry-run", action="store_true")

    from graphlake.app.assets_cli import add_commands

    verbs.update(add_commands(sub, common, _asset_command))

    p = add("sql-server", cmd_sql_server, "Spark's Thrift JDBC/ODBC server over the lake: the gl_* functions and the "
            "views for beeline, BI tools, dbt; read-only; follows promotions")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=10000, help="JDBC/ODBC (Thrift binary) port (default 10000)")
    p.add_argument("--version", default="production", help="asset versions served: production (default; follows "
                   "promotions and rollbacks), latest or N")
    p.add_argument("--refresh-seconds", dest="refresh_seconds", type=float, default=10.0,
                   help="how often the registry is checked for a new production version (default 10)")

    p = add("demo", cmd_demo, "run every stage on synthetic logs and print what it produced")
    p.add_argument("--raw", default=None, help="raw folder (default <lake>/../raw-demo)")
    p.add_argument("--events", type=int, default=300_000, help="events to generate")

    p = add("report", cmd_report, "write the HTML report of a pipeline run under <lake>/_reports/pipeline/")
    p.add_argument("--asset-version", dest="asset_version", default="latest",
                   help="latest (default), production or N")
    p.add_argument("--name", default=None, help="report folder (default g<graph version>-<run id>)")
    p.add_argument("--sample", type=int, default=2000, help="item embeddings in the 2-D projection")
    _add_step_options(verbs, common)
    return parser


def _add_step_options(verbs: dict, common: argparse.ArgumentParser) -> None:
    """The options of every pipeline step on the verb it maps to (``Step.cli``): generated from the
    step's params dataclass (:mod:`graphlake.app.steps`), so a new parameter is one field there."""
    from graphlake.app.stepkit import add_cli_options
    from graphlake.app.steps import STEPS

    shared = set(vars(common.parse_args([])))  # --lake, --seed, ...: every verb has them
    added: dict[tuple, set] = {}
    for step in STEPS.values():
        if step.cli is not None:
            done = added.setdefault(step.cli, set(shared))
            done.update(add_cli_options(verbs[step.cli], step, skip=done))


# commands that create their lake (every other command needs an existing one)
_CREATES_LAKE = ("generate", "etl", "import", "demo")


def _check_lake(args) -> None:
    if args.command in _CREATES_LAKE or os.path.isdir(args.lake):
        return
    raise InputNotFoundError(f"--lake: no lake at {args.lake!r} (the folder does not exist; `graphlake etl` or "
                             "`graphlake import` creates one)")


def _job_failures() -> tuple[type, ...]:
    """Exceptions of a job or gate that failed (exit 1); imported here, where the CLI is the one
    place that knows every stage."""
    from graphlake.app.cluster import ClusterError
    from graphlake.assets.registry import AssetError
    from graphlake.core.lake import LakeError
    from graphlake.core.quality import QualityError
    from graphlake.etl.job import EtlError
    from graphlake.graph_build.job import GraphBuildError
    from graphlake.training.checkpoint import UnsafeCheckpointError
    from graphlake.training.distributed.launch import LaunchError
    from graphlake.training.job import TrainError

    return (EtlError, GraphBuildError, TrainError, AssetError, QualityError, LakeError, LaunchError, ClusterError,
            UnsafeCheckpointError)


def failure_log_dir(lake_dir: str | None) -> str:
    """Where a failed command writes its trace: ``$GRAPHLAKE_LOG_DIR``, else ``<lake>/_logs`` when
    the lake exists, else ``~/.cache/graphlake/logs``."""
    if os.environ.get("GRAPHLAKE_LOG_DIR"):
        return os.environ["GRAPHLAKE_LOG_DIR"]
    if lake_dir and os.path.isdir(lake_dir) and os.access(lake_dir, os.W_OK):
        return os.path.join(lake_dir, "_logs")
    return os.path.join(os.path.expanduser("~"), ".cache", "graphlake", "logs")


def _write_failure_log(command: str, lake_dir: str | None, argv, exc: BaseException) -> str:
    folder = failure_log_dir(lake_dir)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    name = command.replace(" ", "-")
    path = os.path.abspath(os.path.join(folder, f"graphlake-{name}-{stamp}-{os.getpid()}.log"))
    try:
        os.makedirs(folder, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"graphlake {' '.join(shlex.quote(a) for a in argv)}\n")
            fh.write("".join(traceback.format_exception(exc)))
    except OSError as log_exc:  # no writable log folder: say so rather than hide the failure
        return f"(no log written: {log_exc})"
    return path


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


def classify(exc: BaseException) -> tuple[int, str]:
    """``(exit code, message)`` for an exception a command raised (see :mod:`graphlake.core.errors`)."""
    from graphlake.app.assets_cli import sql_usage_error

    if isinstance(exc, UsageError):
        return EXIT_USAGE, f"error: {_one_line(exc)}"
    explained = sql_usage_error(exc)  # a SQL function's argument or a query Spark cannot analyse
    if explained is not None:
        return EXIT_USAGE, f"error: {_one_line(explained)}"
    if isinstance(exc, _job_failures()):
        return EXIT_FAILED, str(exc)
    return EXIT_INTERNAL, f"internal error (a bug, not your input): {type(exc).__name__}: {_one_line(exc)[:500]}"


def report_failure(command: str, lake_dir: str | None, argv, exc: BaseException) -> int:
    """Write ``exc``'s trace to a log file, print the one line ``graphlake <command>: <message>
    (trace: <log>)`` on stderr and return the exit code (:func:`classify`)."""
    code, message = classify(exc)
    log_path = _write_failure_log(command, lake_dir, argv, exc)
    print(f"graphlake {command}: {message} (trace: {log_path})", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0 success, 1 a job or gate failed, 2 the user's
    input, 3 an internal error: :mod:`graphlake.core.errors`)."""
    # OpenMP threads that spin while waiting slow torch down many times on a shared machine (a 2-thread
    # sort: 184 ms spinning vs 3.6 ms passive, measured with another process busy); the launched
    # training ranks inherit this
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=os.environ.get("GRAPHLAKE_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)  # a usage error exits 2 here, with argparse's message
    start = time.time()
    try:
        _check_lake(args)
        args.func(args)
    except KeyboardInterrupt:
        print(f"graphlake {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return report_failure(args.command, getattr(args, "lake", None), argv, exc)
    logging.getLogger(__name__).info("%s finished in %.1f s", args.command, time.time() - start)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
