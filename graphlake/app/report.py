"""The HTML report of a pipeline run: what the lake holds for one ETL / graph / training / assets run.

``<lake>/_reports/pipeline/<name>/index.html`` with its PNG plots beside it (relative ``src``), in
seven sections: input and quarantine counts, graph statistics with degree distributions, training
curves, evaluation figures, a 2-D PCA projection of item embeddings coloured by category, example
recommendations with explanations, and links to the Great Expectations Data Docs. Every section
is built from the tables and files of the lake alone; a section whose input is absent says so.
The same inputs and seed give the same page and images (nothing in it depends on the clock).

Example:
    >>> write_pipeline_report(spark, "lakehouse")
    'lakehouse/_reports/pipeline/g0-g0-7a5b61a1-20261202T012119/index.html'
"""

from __future__ import annotations

import html
import json
import os
import re

import numpy as np
from pyspark.sql import functions as F

from graphlake.assets.lifecycle import list_assets
from graphlake.assets.publish import run_metrics
from graphlake.assets.registry import AssetError, AssetNotFoundError, open_version
from graphlake.core import lake, tables
from graphlake.core.errors import InputNotFoundError, UsageError
from graphlake.graph_build import analytics as A
from graphlake.graph_build.manifest import (
    GraphNotFoundError,
    GraphVersion,
    graph_summary,
    load_graph_version,
    read_graph_table,
    table_rows,
)
from graphlake.training.report import plots, png_bytes, read_history
from graphlake.training.run import TrainRun

SECTIONS = ("Input and quarantine", "Graph statistics", "Training", "Evaluation", "Item embeddings",
            "Example recommendations", "Data quality")
REPORT_DIR = "pipeline"  # under <lake>/_reports
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EXAMPLE_USERS, _TOP_K, _EXPLAIN_K, _MAX_GROUPS = 3, 5, 3, 9


def _esc(value) -> str:
    return html.escape(str(value))


def _num(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _esc(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _table(header, rows, keys=None) -> str:
    """An HTML table; ``keys[i]`` (when given) is the ``data-key`` of row i's last cell, whose raw
    value goes to ``data-value`` (for machine checks)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = [f"<td>{_num(v)}</td>" for v in row]
        if keys and keys[i]:
            cells[-1] = f'<td data-key="{_esc(keys[i])}" data-value="{_esc(row[-1])}">{_num(row[-1])}</td>'
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class _Figures:
    """Writes the PNG files of one report next to its ``index.html``."""

    def __init__(self, out_dir: str):
        self.out_dir, self.count = out_dir, 0

    def add(self, png: bytes, stem: str, alt: str) -> str:
        self.count += 1
        name = f"{self.count:02d}_{re.sub(r'[^A-Za-z0-9_-]+', '_', stem)}.png"
        with open(os.path.join(self.out_dir, name), "wb") as f:
            f.write(png)
        return f'<figure><img src="{_esc(name)}" alt="{_esc(alt)}"><figcaption>{_esc(alt)}</figcaption></figure>'

    def plot(self, fig, stem: str, alt: str) -> str:
        try:
            return self.add(png_bytes(fig), stem, alt)
        finally:
            _pyplot().close(fig)


def _barh(labels, values, xlabel: str, log: bool = False):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.28 * max(1, len(labels))))
    ax.barh(range(len(labels)), values, color="#4c72b0")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel), ax.grid(alpha=0.3, axis="x")
    return fig


def _log_ticks(axis, values) -> None:
    """Plain labels on a log axis: 1, 2, 5, 10, ... over at most two decades, else powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    narrow = bool(values) and max(values) <= 100 * max(min(values), 1)
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


# ------------------------------------------------------------------------------ 1. input and quarantine


def _input_section(spark, lake_dir: str, etl_dates, figs: _Figures) -> str:
    out = []
    path = tables.table_path(lake_dir, tables.ETL_RUNS)
    runs = lake.read_arrow(path).to_pylist() if lake.table_exists(path) else []
    runs = sorted((r for r in runs if etl_dates is None or set(r["dates"]) & set(etl_dates)),
                  key=lambda r: (r["finished_at"], r["run_id"]), reverse=True)
    if not runs:
        out.append(_note(f"No ETL run in {tables.ETL_RUNS}" + (f" for {', '.join(etl_dates)}." if etl_dates else ".")))
    else:
        rows = []
        for r in runs:
            rep = json.loads(r["report"])
            ev, it, us = rep.get("events", {}), rep.get("items", {}), rep.get("users", {})
            rows.append([r["run_id"], r["finished_at"].strftime("%Y-%m-%d %H:%M:%S"), ", ".join(r["dates"]),
                         ev.get("input", 0), ev.get("clean", 0), ev.get("duplicates", 0), it.get("clean", 0),
                         it.get("quarantined", 0), us.get("clean", 0), us.get("quarantined", 0), ev.get("quarantined", 0)])
        out.append(_table(["ETL run", "finished (UTC)", "dates", "events in", "clean", "duplicates", "items clean",
                           "items quarantined", "users clean", "users quarantined", "events quarantined"], rows,
                          [f"etl:{r['run_id']}:events_quarantined" for r in runs]))
        latest = json.loads(runs[0]["report"]).get("events", {})
        bars = [("clean", latest.get("clean", 0)), ("duplicates", latest.get("duplicates", 0))] + [
            (f"quarantined: {k}", v) for k, v in sorted(latest.get("reasons", {}).items())]
        bars = [(k, v) for k, v in bars if v > 0]
        if bars:
            out.append(figs.plot(_barh([k for k, _ in bars], [v for _, v in bars], "events (log scale)", log=True),
                                 "etl_events", f"Events of ETL run {runs[0]['run_id']}: clean, duplicates and "
                                               "quarantined per reason"))
    rows, keys, reasons = [], [], []
    for name in (tables.QUARANTINE_EVENTS, tables.QUARANTINE_ITEMS, tables.QUARANTINE_USERS):
        qpath = tables.table_path(lake_dir, name)
        if lake.table_exists(qpath):
            rows.append([name, lake.table_version(qpath), table_rows(qpath)])
            keys.append(f"{name}:rows")
    if not rows:
        return "".join(out) + _note("No quarantine/* table in the lake.")
    out.append("<h3>Quarantine tables (current versions)</h3>" + _table(["table", "Delta version", "rows"], rows, keys))
    qpath = tables.table_path(lake_dir, tables.QUARANTINE_EVENTS)
    if lake.table_exists(qpath):
        q = lake.read_table(spark, qpath)
        if etl_dates:
            q = q.filter(F.col("dt").isin(list(etl_dates)))
        reasons = [(r["reason"], int(r["n"])) for r in q.groupBy("reason").agg(F.count(F.lit(1)).alias("n"))
                   .orderBy("reason").collect()]
        scope = f" (dates {', '.join(etl_dates)})" if etl_dates else ""
        out.append(f"<h3>{_esc(tables.QUARANTINE_EVENTS)} per reason{_esc(scope)}</h3>" + _table(
            ["reason", "rows"], reasons, [f"quarantine_reason:{r}" for r, _ in reasons]))
    return "".join(out)


# ------------------------------------------------------------------------------ 2. graph statistics


def _graph_section(spark, lake_dir: str, graph: GraphVersion | None, figs: _Figures) -> str:
    if graph is None:
        return _note(f"No graph version in {tables.GRAPH_MANIFEST}.")
    summary = graph_summary(spark, lake_dir, graph.graph_version)
    out = [f"<p>Graph version {graph.graph_version}, created {_esc(graph.created_at)}, config "
           f"<code>{_esc(graph.config_hash)}</code>: {summary['nodes_total']:,} nodes, "
           f"{summary['edges_total']:,} edges.</p>"]
    nodes = sorted(graph.node_counts.items())
    out.append(_table(["node type", "nodes"], nodes, [f"nodes:{t}" for t, _ in nodes]))
    degrees = summary.get("degrees") or {}
    rows = []
    for name, n in sorted(graph.edge_counts.items()):
        d_out, d_in = degrees.get(f"{name}:{A.OUT}", {}), degrees.get(f"{name}:{A.IN}", {})
        rows.append([name, *(d.get(p, "") for d in (d_out, d_in) for p in ("p50", "p90", "max")), n])
    out.append(_table(["edge type", "out p50", "out p90", "out max", "in p50", "in p90", "in max", "edges"], rows,
                      [f"edges:{r[0]}" for r in rows]))
    comps = summary.get("components")
    if comps:
        out.append(f"<p>Connected components: {comps['components']:,} (largest {comps['largest_component']:,} "
                   f"nodes, {comps['singleton_components']:,} isolated nodes).</p>")
    if tables.GRAPH_STATS not in graph.tables:
        return "".join(out) + _note(f"No {tables.GRAPH_STATS} table in this graph version: no degree plots.")
    entry = graph.table(tables.GRAPH_STATS)
    hist: dict[str, dict[str, list]] = {}
    for r in sorted(lake.read_arrow(entry.path, entry.version).to_pylist(),
                    key=lambda r: (r[A.EDGE_TYPE], r[A.DIRECTION], r[A.DEGREE])):
        hist.setdefault(r[A.EDGE_TYPE], {}).setdefault(r[A.DIRECTION], []).append((r[A.DEGREE], r[A.NUM_NODES]))
    plt, plots, empty = _pyplot(), [], []
    for edge_type, by_dir in sorted(hist.items()):
        pts = {direction: [(d, n) for d, n in by_dir.get(direction, []) if d > 0] for direction in (A.OUT, A.IN)}
        if not any(pts.values()):  # no node has an edge of this type: nothing to draw on log axes
            empty.append(edge_type)
            continue
        fig, ax = plt.subplots(figsize=(3.6, 2.7))
        for direction, marker in ((A.OUT, "o"), (A.IN, "s")):
            if pts[direction]:
                ax.loglog(*zip(*pts[direction]), marker, ms=3, label=direction)
        for axis, i in ((ax.xaxis, 0), (ax.yaxis, 1)):
            _log_ticks(axis, [p[i] for v in pts.values() for p in v])
        ax.set_title(edge_type, fontsize=8), ax.set_xlabel("degree", fontsize=8), ax.set_ylabel("nodes", fontsize=8)
        ax.tick_params(labelsize=7), ax.grid(alpha=0.3), ax.legend(fontsize=7)
        plots.append(figs.plot(fig, f"degree_{edge_type}", f"Degree distribution of {edge_type} (log-log, "
                                                           "degree 0 left out)"))
    out.append('<h3>Degree distributions</h3><div class="grid">' + "".join(plots) + "</div>")
    if empty:
        out.append(_note(f"No edges (every degree 0), so no degree plot: {', '.join(empty)}."))
    ranked = []
    for t in graph.node_types:
        name = A.node_stats_table(t)
        if name in graph.tables:
            top = read_graph_table(spark, graph, name).orderBy(F.col(A.PAGERANK).desc(), "node_id").limit(10)
            keys = read_graph_table(spark, graph, tables.id_map(t)).select("node_id", "key")
            ranked += [(float(r[A.PAGERANK]), t, r["key"], int(r[A.DEGREE_IN]), int(r[A.DEGREE_OUT]))
                       for r in top.join(keys, "node_id", "left").collect()]
    if ranked:
        ranked = sorted(ranked, key=lambda r: (-r[0], r[1], str(r[2])))[:10]
        out.append("<h3>PageRank: top nodes</h3>" + _table(
            ["pagerank", "node type", "key", "in-degree", "out-degree"], [list(r) for r in ranked]))
    return "".join(out)


# ------------------------------------------------------------------------------ 3. training, 4. evaluation


def _training_section(run: dict | None, report_dir: str, figs: _Figures) -> str:
    if run is None:
        return _note(f"No finished training run in {tables.TRAIN_RUNS} for this graph version.")
    keys = ("run_id", "graph_version", "backend", "workers", "steps", "seconds", "config_hash")
    out = [_table(["", "value"], [[k, run.get(k)] for k in keys])]
    page = os.path.join(run["run_dir"], "report.html")
    if os.path.isfile(page):
        out.append(f'<p>The run\'s own report: <a href="{_esc(os.path.relpath(page, report_dir))}">report.html</a></p>')
    curves = plots(read_history(run["run_dir"]), encode=png_bytes)
    if not curves:
        out.append(_note(f"No metrics.jsonl records in {run['run_dir']}."))
    out += [f"<h3>{_esc(title)}</h3>" + figs.add(png, f"train_{title}", f"{title} of run {run['run_id']}")
            for title, png in curves]
    return "".join(out)


def _evaluation_section(lake_dir: str, run: dict | None, figs: _Figures) -> str:
    rows, out = [], []  # (source, metric, value): the run's validation and evaluation, its assets' registry metrics
    if run is not None:
        rows += [("run validation", k[4:] if k.startswith("val_") else k, float(v))
                 for k, v in sorted((run.get("validation") or {}).items()) if "@" in k]
        rows += [("run evaluation", k, v) for k, v in sorted(run_metrics(run["run_dir"]).items())]
        rows += [(f"{a['asset']} v{a['version']} ({a['status']})", k, float(v)) for a in list_assets(lake_dir)
                 if a["run_id"] == run["run_id"] for k, v in sorted(a["metrics"].items())]
    if not rows:
        out.append(_note("No validation, evaluation or registry metrics for this run."))
    else:
        warm = [r for r in rows if not r[1].startswith("cold_start_")]
        cold = [r for r in rows if r[1].startswith("cold_start_")]
        if warm:
            out.append(_table(["source", "metric", "value"], warm, [f"metric:{s}:{m}" for s, m, _ in warm]))
            out.append(figs.plot(_barh([f"{s}: {m}" for s, m, _ in warm], [v for *_, v in warm], "value"),
                                 "metrics", "Recall@K / NDCG@K per source"))
        out.append("<h3>Cold start</h3>" + (_table(["source", "metric", "value"], cold) if cold else _note(
            "No cold-start metrics (the run held out no items, or it was not evaluated).")))
    if run is not None:
        out.append(_by_degree_section(run["run_dir"], figs))
    assets = sorted(list_assets(lake_dir), key=lambda a: (a["created_at"], a["asset"], a["version"]), reverse=True)
    if assets:
        out.append("<h3>Assets registry (newest 20)</h3>" + _table(
            ["asset", "version", "status", "graph version", "run", "rows", "dim", "metrics"],
            [[a["asset"], a["version"], a["status"], a["graph_version"], a["run_id"], a["row_count"], a["dim"],
              len(a["metrics"])] for a in assets[:20]]))
    else:
        out.append(_note(f"Nothing is published ({tables.ASSETS_REGISTRY} is absent)."))
    return "".join(out)


def _by_degree_section(run_dir: str, figs: _Figures) -> str:
    """The run's evaluation by the users' training degree in the masked behaviour (where sparse
    users stand), from ``evaluation.json``."""
    ev = TrainRun(run_dir).evaluation() or {}
    groups = {name: g for name, g in (ev.get("by_degree") or {}).items() if g.get("users")}
    if not groups:
        return "<h3>By user activity</h3>" + _note("No evaluation by training degree (run `graphlake evaluate`).")
    k = ev["k"]
    names = [f"recall@{k}", f"ndcg@{k}", f"hr@{k}"]
    rows = [[name, g["users"], *[round(g[m], 4) for m in names]] for name, g in groups.items()]
    head = (f"<h3>By user activity</h3><p>Target {_esc(ev.get('target', ''))}; users binned by their number of "
            f"training items in {_esc(', '.join(ev.get('masked', [])))} (the masked behaviour).</p>")
    plot = figs.plot(_barh([f"degree {r[0]} ({r[1]:,} users)" for r in rows], [r[2] for r in rows], f"recall@{k}"),
                     "by_degree", f"Recall@{k} by the user's training degree")
    return head + _table(["training degree", "users", *names], rows) + plot


# ------------------------------------------------------------------------------ 5. item embeddings


def _item_categories(spark, lake_dir: str, graph: GraphVersion | None):
    """``(join column, DataFrame (join column, category))``: each item's deepest belongs_to category,
    else clean/items' category by key; ``(None, None)`` when neither exists."""
    edge = tables.edges("item", "belongs_to", "category")
    if graph is not None and edge in graph.tables and tables.nodes("category") in graph.tables:
        cats = read_graph_table(spark, graph, tables.nodes("category")).select(
            F.col("node_id").alias("dst_id"), F.col("key").alias("category"))
        best = F.max(F.struct(F.length("category"), "category"))["category"]
        return ("node_id", read_graph_table(spark, graph, edge).select(F.col("src_id").alias("node_id"), "dst_id")
                .join(cats, "dst_id").groupBy("node_id").agg(best.alias("category")))
    path = tables.table_path(lake_dir, tables.CLEAN_ITEMS)
    if lake.table_exists(path):
        return "key", lake.read_table(spark, path).select(F.col("item_id").alias("key"), "category")
    return None, None


def _embedding_sample(spark, lake_dir: str, run: dict | None, asset_version, sample: int, seed: int):
    """``(source, DataFrame (key, node_id, embedding), rows of the source)``: at most ``sample`` seeded rows
    (a Spark sample, ordered by node id, then a limit), or ``(why not, None, 0)``."""
    from graphlake.training.job import RUN_ID, embeddings_table

    try:
        v = open_version(lake_dir, "item_embeddings", asset_version)
        df, n = v.read(spark), v.row_count
        caption = f"item_embeddings v{v.version} ({v.status}, run {v.run_id})"
    except AssetNotFoundError as exc:
        path = tables.table_path(lake_dir, embeddings_table("item"))
        if run is None or not lake.table_exists(path):
            return f"No published item asset ({exc}) and no train/embeddings_item of a run.", None, 0
        df = lake.read_table(spark, path).filter(F.col(RUN_ID) == run["run_id"])
        n, caption = df.count(), f"train/embeddings_item of run {run['run_id']} (nothing published)"
    fraction = min(1.0, 1.5 * sample / max(n, 1))
    return caption, df.sample(False, fraction, seed).orderBy("node_id").limit(sample).select(
        "key", "node_id", "embedding"), n


def _embedding_section(spark, lake_dir: str, graph, run, asset_version, sample: int, seed: int, figs) -> str:
    caption, df, n = _embedding_sample(spark, lake_dir, run, asset_version, sample, seed)
    if df is None:
        return _note(caption)
    on, cats = _item_categories(spark, lake_dir, graph)
    if cats is not None:
        df = df.join(cats, on, "left")
    rows = sorted(df.collect(), key=lambda r: r["node_id"])
    caption = f"{caption}: {len(rows):,} of {n:,} rows sampled (seed {seed})"
    if len(rows) < 3:
        return _note(f"{caption}: too few rows ({len(rows)}) for a projection.")
    x = np.asarray([r["embedding"] for r in rows], dtype=np.float64)
    x -= x.mean(axis=0)
    if x.shape[1] < 2:
        return _note(f"{caption}: {x.shape[1]}-d embeddings need no projection.")
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt[:2] * np.sign(vt[:2, :][[0, 1], np.abs(vt[:2]).argmax(axis=1)])[:, None]  # deterministic signs
    xy, share = x @ vt.T, (s[:2] ** 2) / max(float((s ** 2).sum()), 1e-12)
    top = [str(r["category"] or "unknown").split(">")[0] if cats is not None else "unknown" for r in rows]
    counts = {g: top.count(g) for g in set(top)}
    groups = sorted(counts, key=lambda g: (-counts[g], g))
    shown = groups[:_MAX_GROUPS] if len(groups) > _MAX_GROUPS + 1 else groups
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for i, g in enumerate(shown + (["other"] if len(shown) < len(groups) else [])):
        mask = np.asarray([t == g if g in shown else t not in shown for t in top])
        ax.scatter(xy[mask, 0], xy[mask, 1], s=10, alpha=0.7,
                   color=plt.cm.tab10(i % 10) if g in shown else "#999999", label=f"{g} ({int(mask.sum())})")
    ax.set_xlabel(f"PC1 ({share[0]:.0%} of variance)"), ax.set_ylabel(f"PC2 ({share[1]:.0%} of variance)")
    ax.legend(fontsize=7, markerscale=1.5, loc="best"), ax.grid(alpha=0.3)
    source = "belongs_to category edges" if on == "node_id" else ("clean/items" if on else "none")
    return (f"<p>{_esc(caption)}; colour: top-level category (from {_esc(source)}).</p>"
            + figs.plot(fig, "items_pca", f"PCA of {len(rows):,} item embeddings coloured by top-level category"))


# ------------------------------------------------------------------------------ 6. recommendations, 7. links


def _recommendation_section(spark, lake_dir: str, graph, asset_version) -> str:
    from graphlake import udfs

    if graph is None or tables.id_map("user") not in graph.tables:
        return _note("Skipped: no graph version with users.")
    try:
        versions = udfs.register(spark, lake=lake_dir, version=asset_version)
    except AssetError as exc:
        return _note(f"Skipped: no asset is published at version {asset_version!r} ({exc}).")
    ids = read_graph_table(spark, graph, tables.id_map("user")).select("node_id", "key").orderBy("node_id")
    if A.node_stats_table("user") in graph.tables:  # the most active users (out-degree, all edge types)
        stats = read_graph_table(spark, graph, A.node_stats_table("user")).select("node_id", A.DEGREE_OUT)
        ids = ids.join(stats, "node_id").orderBy(F.col(A.DEGREE_OUT).desc(), "node_id")
    users = [r["key"] for r in ids.limit(_EXAMPLE_USERS).collect()]
    recs = spark.createDataFrame([(u,) for u in users], "user string").selectExpr(
        "user", f"posexplode(gl_recommend(user, {_TOP_K})) AS (pos, rec)").selectExpr(
        "user", "pos + 1 AS rank", "rec.item_key AS item", "rec.score AS score",
        f"gl_explain(user, rec.item_key, {_EXPLAIN_K}) AS why")
    rows = sorted(recs.collect(), key=lambda r: (users.index(r["user"]), r["rank"]))
    wanted = sorted({r["item"] for r in rows} | {w["item_key"] for r in rows for w in (r["why"] or [])})
    titles = {}
    if wanted and tables.nodes("item") in graph.tables:
        titles = {r["key"]: f"{r['key']} ({r['category']})" for r in read_graph_table(spark, graph, tables.nodes("item"))
                  .filter(F.col("key").isin(wanted)).select("key", "category").collect()}
    body = [[r["user"], r["rank"], titles.get(r["item"], r["item"]), float(r["score"]),
             "; ".join(f"{titles.get(w['item_key'], w['item_key'])} {w['contribution']:.0%}" for w in r["why"] or [])
             or "(no history)"] for r in rows]
    missing = [u for u in users if u not in {r["user"] for r in rows}]
    used = ", ".join(f"{a} v{v}" for a, v in sorted(versions.items()))
    return (f"<p>Assets {_esc(used)}: <code>gl_recommend(user, {_TOP_K})</code> for the {len(users)} most active "
            f"users, each explained by <code>gl_explain(user, item, {_EXPLAIN_K})</code> (history items and their "
            "share of the score).</p>" + _table(["user", "rank", "item (category)", "score", "because of"], body)
            + (_note(f"No recommendation for {', '.join(missing)}.") if missing else ""))


def _links_section(lake_dir: str, report_dir: str) -> str:
    docs = os.path.join(lake_dir, tables.DATA_DOCS_DIR, "index.html")
    if not os.path.isfile(docs):
        return _note(f"No Great Expectations Data Docs under {tables.DATA_DOCS_DIR}.")
    return (f'<p><a href="{_esc(os.path.relpath(docs, report_dir))}">Great Expectations Data Docs</a>: the '
            "validation results of every suite (ETL, graph build, asset quality gates).</p>")


# ------------------------------------------------------------------------------ entry point


def _resolve(spark, lake_dir: str, graph_version, train_run_id) -> tuple[GraphVersion | None, dict | None]:
    path = tables.table_path(lake_dir, tables.TRAIN_RUNS)
    runs = lake.read_arrow(path).to_pylist() if lake.table_exists(path) else []
    run = None
    if train_run_id is not None:
        found = [r for r in runs if r["run_id"] == train_run_id]
        if not found:
            raise InputNotFoundError(f"train_run_id: no finished run {train_run_id!r} in {tables.TRAIN_RUNS} of {lake_dir!r}")
        run = found[0]
        if graph_version is not None and graph_version != run["graph_version"]:
            raise UsageError(f"graph_version: run {train_run_id} trained on graph version {run['graph_version']}, "
                             f"not {graph_version}")
        graph_version = int(run["graph_version"])
    try:
        graph = load_graph_version(spark, lake_dir, graph_version)
    except GraphNotFoundError as exc:
        if graph_version is not None:
            raise UsageError(f"graph_version: {exc}") from exc
        graph = None
    if run is None and graph is not None:
        mine = [r for r in runs if r["graph_version"] == graph.graph_version]
        run = max(mine, key=lambda r: (r["finished_at"], r["run_id"])) if mine else None
    if run is not None:
        # the run folder is where this lake keeps it (a summary's absolute path is stale once the lake moves)
        run = {**json.loads(run["summary"]), "config": json.loads(run["config"]),
               "run_dir": TrainRun.of(lake_dir, run["run_id"]).dir}
    return graph, run


def _check_args(lake_dir, name, etl_dates, graph_version, train_run_id, asset_version, sample, seed) -> None:
    def _int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if not isinstance(lake_dir, str) or not lake_dir:
        raise TypeError(f"lake_dir: expected a non-empty path string, got {lake_dir!r}")
    checks = [
        (os.path.isdir(lake_dir), "lake_dir", "an existing folder", lake_dir),
        (name is None or isinstance(name, str) and _NAME_RE.match(name), "name",
         "letters, digits, '.', '_' or '-' (at most 128)", name),
        (etl_dates is None or not isinstance(etl_dates, str) and all(
            isinstance(d, str) and _DATE_RE.match(d) for d in etl_dates), "etl_dates", "a list of YYYY-MM-DD", etl_dates),
        (graph_version is None or _int(graph_version) and graph_version >= 0, "graph_version",
         "a non-negative int or None", graph_version),
        (train_run_id is None or isinstance(train_run_id, str) and _NAME_RE.match(train_run_id), "train_run_id",
         "a run id like 'g0-1a2b3c4d-20261201T120000'", train_run_id),
        (asset_version in ("latest", "production") or _int(asset_version), "asset_version",
         "'latest', 'production' or an int", asset_version),
        (_int(sample) and 3 <= sample <= 100_000, "sample", "an int in 3..100000", sample)]
    for ok, arg, expected, got in checks:
        if not ok:
            raise UsageError(f"{arg}: expected {expected}, got {got!r}")
    if not _int(seed):
        raise TypeError(f"seed: expected an int, got {seed!r}")


_CSS = ("body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}table{border-collapse:collapse;"
        "margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}"
        "img{max-width:100%}figure{margin:.5em 0}figcaption{font-size:12px;color:#555}.note{color:#a60}"
        ".grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{width:340px}nav a{margin-right:1em}")


def write_pipeline_report(spark, lake_dir: str, *, name: str | None = None, etl_dates: list[str] | None = None,
                          graph_version: int | None = None, train_run_id: str | None = None,
                          asset_version: str | int = "latest", sample: int = 2000, seed: int = 7) -> str:
    """Write ``<lake>/_reports/pipeline/<name>/index.html`` (+ PNG files beside it); return its path.

    Args:
        spark: SparkSession (reads the lake; registers the ``gl_*`` functions for section 6).
        lake_dir: lake root.
        name: report folder name (default ``g<graph version>-<train run id or 'none'>``).
        etl_dates: ETL runs touching these dates (default: every recorded run).
        graph_version: default the latest, or the train run's graph version.
        train_run_id: default the newest run of ``meta/train_runs`` on that graph version.
        asset_version: ``"latest"``, ``"production"`` or a version number of the published assets.
        sample: at most this many item embeddings in the projection (a seeded Spark sample).
        seed: the sample's seed.

    Example:
        >>> write_pipeline_report(spark, "lakehouse", etl_dates=["2024-01-01"])
        'lakehouse/_reports/pipeline/g0-g0-7a5b61a1-20261202T012119/index.html'
    """
    _check_args(lake_dir, name, etl_dates, graph_version, train_run_id, asset_version, sample, seed)
    etl_dates = sorted(set(etl_dates)) if etl_dates is not None else None
    graph, run = _resolve(spark, lake_dir, graph_version, train_run_id)
    gv = graph.graph_version if graph is not None else "none"
    name = name or f"g{gv}-{run['run_id'] if run else 'none'}"
    report_dir = os.path.join(lake_dir, tables.REPORTS_DIR, REPORT_DIR, name)
    os.makedirs(report_dir, exist_ok=True)
    for old in os.listdir(report_dir):  # images of an earlier report of the same name
        if old.endswith(".png"):
            os.remove(os.path.join(report_dir, old))
    figs = _Figures(report_dir)
    bodies = [_input_section(spark, lake_dir, etl_dates, figs), _graph_section(spark, lake_dir, graph, figs),
              _training_section(run, report_dir, figs), _evaluation_section(lake_dir, run, figs),
              _embedding_section(spark, lake_dir, graph, run, asset_version, sample, seed, figs),
              _recommendation_section(spark, lake_dir, graph, asset_version), _links_section(lake_dir, report_dir)]
    anchors = [f"s{i + 1}" for i in range(len(SECTIONS))]
    nav = "".join(f'<a href="#{a}">{i + 1}. {_esc(t)}</a>' for i, (a, t) in enumerate(zip(anchors, SECTIONS)))
    sections = "".join(f'<section id="{a}"><h2>{i + 1}. {_esc(t)}</h2>{b}</section>'
                       for i, (a, t, b) in enumerate(zip(anchors, SECTIONS, bodies)))
    title = f"graphlake pipeline report {name}"
    page = (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{_esc(title)}</title><style>{_CSS}</style>'
            f"</head><body><h1>{_esc(title)}</h1><p>Lake <code>{_esc(os.path.abspath(lake_dir))}</code>, graph version "
            f"{_esc(gv)}, training run {_esc(run['run_id'] if run else 'none')}, assets {_esc(asset_version)}.</p>"
            f"<nav>{nav}</nav>{sections}</body></html>\n")
    path = os.path.join(report_dir, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path
