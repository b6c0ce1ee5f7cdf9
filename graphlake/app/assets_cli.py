"""CLI verbs of the asset layer: ``publish``, ``embed-new``,
``assets list|show|gate|promote|rollback|retire|vacuum|history`` and ``sql`` (added to ``graphlake``'s parser by :func:`add_commands`).

Each verb is ``fn(args, spark, emit)``: ``spark()`` returns the session, started on first call, so
the verbs that only read the registry (``assets list|show|history``) start no JVM.

Examples:
    graphlake publish --lake lakehouse [--run-id RUN] [--node-types user,item,shop] [--promote]
    graphlake embed-new --lake lakehouse [--version production|latest|N] [--node-types user,item] [--promote]
    graphlake assets list --lake lakehouse
    graphlake assets gate --lake lakehouse --asset item_embeddings --version 2 [--config assets.yaml]
    graphlake assets promote --lake lakehouse --asset item_embeddings --version 2 [--config assets.yaml]
    graphlake assets rollback --lake lakehouse --asset item_embeddings [--to-version 1]
    graphlake sql --lake lakehouse "SELECT gl_recommend('u1', 10)"
"""

from __future__ import annotations

import json
import re

from graphlake.core.errors import UsageError


def _config(path):
    from graphlake.assets.config import AssetConfig
    from graphlake.core.config import load_config

    return load_config(AssetConfig, path, section="assets")


def _asset_line(r: dict) -> str:
    metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(r["metrics"].items()))
    when = r["created_at"].isoformat(timespec="seconds") if r.get("created_at") else "-"
    return (f"{r['asset']:<18} v{r['version']:<3} {r['status']:<10} graph v{r['graph_version']} run {r['run_id']} "
            f"rows={r['row_count']} dim={r['dim']} {metrics}  {when}  {r['note'] or ''}")


def _node_types(arg: str | None) -> list[str] | None:
    return [t.strip() for t in arg.split(",") if t.strip()] if arg else None


def _emit_versions(emit, summary: dict, head: str, line) -> dict:
    lines = [head]
    for asset, r in summary["assets"].items():
        lines.append(line(asset, r))
        if r.get("gate"):
            lines.append("    " + r["gate"].replace("\n", "\n    "))
    for name, o in (summary.get("outputs") or {}).items():  # the top-K tables for readers without Spark
        lines.append(f"  {name:<27} asset_version={o['asset_version']}: {o['rows']:,} rows")
    emit(summary, "\n".join(lines))
    return summary


def cmd_publish(args, spark, emit) -> dict:
    from graphlake.assets.publish import publish

    summary = publish(spark(), args.lake, run_id=args.run_id, node_types=_node_types(args.node_types),
                      config=_config(args.config), promote=args.promote)
    return _emit_versions(
        emit, summary, f"published run {summary['run_id']} (graph version {summary['graph_version']}) in "
                       f"{summary['seconds']} s",
        lambda asset, r: f"  {asset:<18} v{r['version']}: {r['rows']:,} rows x {r['dim']}  status {r['status']}"
                         f"  index {r['index'] or '-'}  files {r['files']}")


def cmd_embed_new(args, spark, emit) -> dict:
    from graphlake.assets.embed_new import embed_new

    summary = embed_new(spark(), args.lake, version=_version_arg(args.version), node_types=_node_types(args.node_types),
                        config=_config(args.config), max_new_nodes=args.max_new_nodes, promote=args.promote)
    return _emit_versions(
        emit, summary, f"embedded {summary['new_nodes']} new nodes after graph version {summary['graph_version']} "
                       f"with run {summary['run_id']} ({sum(summary['new_edges'].values()):,} new edges) in "
                       f"{summary['seconds']} s",
        lambda asset, r: f"  {asset:<18} v{r['version']} (from v{r['base_version']}): {r['rows']:,} rows, "
                         f"{r['new_rows']:,} inductive  status {r['status']}  files {r['files']}")


def cmd_assets(args, spark, emit) -> dict:
    from graphlake.assets import lifecycle

    action = args.assets_command
    if action == "list":
        rows = lifecycle.list_assets(args.lake, args.asset)
        emit({"assets": rows}, "\n".join(_asset_line(r) for r in rows) or "nothing published yet")
        return {"assets": rows}
    if action == "show":
        from graphlake.assets.registry import open_version

        row = open_version(args.lake, args.asset, _version_arg(args.version)).to_dict()
        emit(row, json.dumps(row, default=str, indent=1, sort_keys=True))
        return row
    if action == "history":
        rows = lifecycle.registry_history(args.lake, limit=args.limit)
        emit({"history": rows}, "\n".join(f"registry v{r['registry_version']:<4} {r['action']:<14} {r['asset']} "
                                           f"{r['version'] or ''}" for r in rows))
        return {"history": rows}
    if action in ("gate", "promote"):
        run, outcome = ((lifecycle.gate, "passed the gate (still a candidate)") if action == "gate"
                        else (lifecycle.promote, "passed the gate and is production"))
        summary = run(spark(), args.lake, args.asset, args.version, _config(args.config))
        out = {"asset": args.asset, "version": args.version, "figures": summary["figures"],
               "data_docs": summary["data_docs"]}
        emit(out, f"{args.asset} v{args.version} {outcome} {summary['figures']}")
        return out
    if action == "rollback":
        moved = lifecycle.rollback(spark(), args.lake, args.asset, args.to_version)
        emit(moved, f"{moved['asset']}: production v{moved['from']} -> v{moved['to']}")
        return moved
    if action == "retire":
        lifecycle.retire(spark(), args.lake, args.asset, args.version)
        emit({"asset": args.asset, "retired": args.version}, f"{args.asset} v{args.version} retired")
        return {}
    gone = lifecycle.vacuum(spark(), args.lake, args.asset, retention_hours=args.retention_hours)
    emit({"asset": args.asset, "vacuumed": gone}, f"{args.asset}: vacuumed versions {gone or 'none'}")
    return {"vacuumed": gone}


def _version_arg(v: str):
    return int(v) if re.fullmatch(r"\d+", v or "") else v


def cmd_sql(args, spark, emit) -> dict:
    from graphlake import udfs

    session = spark()
    versions = udfs.register(session, lake=args.lake, version=_version_arg(args.version))
    udfs.register_views(session, args.lake, versions)
    try:
        df = session.sql(args.query)
        rows = [r.asDict(recursive=True) for r in df.limit(args.limit).collect()]
    except Exception as exc:
        explained = sql_usage_error(exc)
        if explained is None:
            raise
        raise explained from exc
    if args.json:
        print(json.dumps({"versions": versions, "columns": df.columns, "rows": rows}, default=str))
    else:
        df.show(args.limit, truncate=args.truncate or False, vertical=args.vertical)
    return {"rows": rows}


_AGGREGATES = ("gl_mean_embedding", "gl_weighted_mean_embedding")


def sql_usage_error(exc: Exception) -> UsageError | None:
    """The user's mistake in a failed ``graphlake sql`` query, as one line; ``None`` when it is not one.

    - a ``gl_*`` function rejected its arguments (``gl_recommend: k must be in 1..1000, got -1``);
    - Spark's analysis rejected the query (a syntax error, an unknown column or function);
    - ``gl_mean_embedding`` beside a built-in aggregate (Spark cannot mix a pandas group aggregate
      with other aggregates in one ``GROUP BY``): the message shows the two-step query that works.
    """
    from pyspark.errors import AnalysisException, ParseException

    udf_error = python_error(exc)
    if udf_error:
        return UsageError(udf_error)
    text = str(exc)
    if "INVALID_PANDAS_UDF_PLACEMENT" in text:
        return UsageError(
            f"{' / '.join(_AGGREGATES)} cannot share a GROUP BY with other aggregates (count, sum, ...: Spark runs "
            "pandas group aggregates on their own); aggregate in two steps and join, e.g. "
            "WITH e AS (SELECT shop_id, gl_mean_embedding(item_id) AS emb FROM items GROUP BY shop_id), "
            "c AS (SELECT shop_id, count(*) AS n FROM items GROUP BY shop_id) "
            "SELECT c.shop_id, c.n, e.emb FROM c JOIN e USING (shop_id)")
    if isinstance(exc, (AnalysisException, ParseException)):
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return UsageError(f"SQL: {first}")
    return None


def python_error(exc: Exception) -> str | None:
    """The ``XxxError: gl_fn: message`` line a ``gl_*`` function raised for its arguments, out of a
    Spark ``PythonException`` (other Python errors in a Spark job are not the user's: ``None``)."""
    found = re.findall(r"^(?:ValueError|TypeError): gl_\w+: .+$", str(exc), flags=re.M)
    return found[-1] if found else None


def add_commands(sub, common, wrap) -> dict:
    """Add the asset verbs to ``graphlake``'s subparsers (``wrap(fn)`` adapts a (args, spark, emit) command; ``spark`` is a
    zero-argument function returning the session).

    Returns:
        ``{verb path: parser}`` of the verbs that run a pipeline step (``("publish",)``, ``("assets", "gate")``,
        ``("assets", "promote")``): the caller adds the step's options (``--run-id``, ``--config``), which
        :mod:`graphlake.app.steps` declares.
    """
    p = pub = sub.add_parser("publish", help="publish a training run as new embedding asset versions", parents=[common])
    p.set_defaults(func=wrap(cmd_publish))
    p.add_argument("--node-types", dest="node_types", default=None, help="comma list (default: the run's)")
    p.add_argument("--promote", action="store_true", help="gate and promote the new versions")

    p = sub.add_parser("embed-new", help="embed users/items that arrived after the graph version (no retraining) "
                       "into new asset versions", parents=[common])
    p.set_defaults(func=wrap(cmd_embed_new))
    p.add_argument("--version", default="production", help="source asset versions: production (default), latest or N")
    p.add_argument("--node-types", dest="node_types", default=None, help="comma list (default: user,item)")
    p.add_argument("--max-new-nodes", dest="max_new_nodes", type=int, default=1_000_000,
                   help="refuse when more nodes than this arrived (rebuild and retrain instead)")
    p.add_argument("--promote", action="store_true", help="gate and promote the new versions")
    p.add_argument("--config", help="YAML with gate / index options (top-level or under `assets:`)")

    p = sub.add_parser("assets", help="registry of embedding assets: list, promote, rollback, ...", parents=[common])
    p.set_defaults(func=wrap(cmd_assets))
    a = p.add_subparsers(dest="assets_command", required=True)
    ls = a.add_parser("list", help="every published version", parents=[common])
    ls.add_argument("--asset", default=None)
    sh = a.add_parser("show", help="one version's registry row", parents=[common])
    sh.add_argument("--asset", required=True)
    sh.add_argument("--version", default="production", help="N, production or latest")
    hi = a.add_parser("history", help="registry commits, newest first", parents=[common])
    hi.add_argument("--limit", type=int, default=50)
    ga = a.add_parser("gate", help="quality gate only; the result is recorded on the version", parents=[common])
    ga.add_argument("--asset", required=True)
    ga.add_argument("--version", type=int, required=True)
    pr = a.add_parser("promote", help="quality gate (or a recorded pass), then production", parents=[common])
    pr.add_argument("--asset", required=True)
    pr.add_argument("--version", type=int, required=True)
    rb = a.add_parser("rollback", help="back to the previous production version", parents=[common])
    rb.add_argument("--asset", required=True)
    rb.add_argument("--to-version", dest="to_version", type=int, default=None)
    rt = a.add_parser("retire", help="mark a version retired (readable until vacuum)", parents=[common])
    rt.add_argument("--asset", required=True)
    rt.add_argument("--version", type=int, required=True)
    va = a.add_parser("vacuum", help="delete retired and failed versions' rows and files", parents=[common])
    va.add_argument("--asset", required=True)
    va.add_argument("--retention-hours", dest="retention_hours", type=int, default=0)

    p = sub.add_parser("sql", help="run Spark SQL with the gl_* functions and the lake's tables as views",
                       parents=[common])
    p.set_defaults(func=wrap(cmd_sql))
    p.add_argument("query", help="the SQL statement")
    p.add_argument("--version", default="production", help="asset version: production, latest or N")
    p.add_argument("--limit", type=int, default=20, help="rows to print")
    p.add_argument("--truncate", type=int, default=0, help="truncate cells to this width (0: no)")
    p.add_argument("--vertical", action="store_true", help="one line per column")
    return {("publish",): pub, ("assets", "gate"): ga, ("assets", "promote"): pr}
