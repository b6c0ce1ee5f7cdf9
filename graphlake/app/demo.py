"""``graphlake demo``: every stage that exists, on synthetic logs, with what it produced.

Stages so far: generate -> ETL (clean tables, quarantine, GE gate) -> graph build (id maps, nodes,
edges, features, stats, GE gate, manifest) -> training snapshot -> training (embeddings as Delta
tables, validation Recall/NDCG, HTML report) -> publish + quality gate + promote (embedding assets)
-> three SQL queries with the gl_* functions, printed with their real output -> the HTML pipeline
report (graphlake/report.py). Later stages append here.
"""

from __future__ import annotations

import os
import time

from graphlake.core import lake, tables

_SHOWN_TABLES = (tables.CLEAN_EVENTS, tables.CLEAN_USERS, tables.CLEAN_ITEMS, tables.QUARANTINE_EVENTS,
                 tables.QUARANTINE_ITEMS, tables.QUARANTINE_USERS)


def _demo_train_config():
    from graphlake.training.config import TrainConfig

    # sized so that ~1M events train in a few minutes on 2 cores (the demo's budget is 15 min in all)
    return TrainConfig(epochs=1, batch_size=2048, fanouts=(5, 3), validation_fraction=0.1, lr=0.005,
                       negatives={"uniform": 0.5, "popularity": 0.5},
                       model={"hidden_dim": 32, "aggr": "weighted_mean", "combine": "attention", "fusion": "gated"})


def _step(msg: str) -> float:
    print(f"==> {msg}", flush=True)
    return time.time()


def run_demo(spark, lake_dir: str, raw_dir: str | None = None, events: int = 300_000, seed: int = 7) -> dict:
    """Generate ``events`` synthetic events, run the pipeline into ``lake_dir``, print a summary."""
    from graphlake.app.report import write_pipeline_report
    from graphlake.etl.generator import GeneratorConfig, generate
    from graphlake.etl.job import run_etl
    from graphlake.graph_build.export import export_graph
    from graphlake.graph_build.job import build_graph
    from graphlake.graph_build.manifest import table_rows
    from graphlake.training.job import embeddings_table, train

    if not isinstance(events, int) or events < 1000:
        raise ValueError(f"events: expected an int >= 1000, got {events!r}")
    raw_dir = raw_dir or os.path.join(os.path.dirname(os.path.abspath(lake_dir)), "raw-demo")
    users = max(200, events // 30)
    config = GeneratorConfig(users=users, items=max(100, events // 100), days=3, seed=seed, target_events=events)
    t = _step(f"generate: ~{events:,} events, {config.users:,} users, {config.items:,} items, "
              f"{config.days} days -> {raw_dir}")
    gen = generate(spark, raw_dir, config)
    print(f"    {gen.get('events_total', 0):,} event lines written in {time.time() - t:.1f} s", flush=True)

    t = _step(f"etl: raw -> clean Delta tables in {lake_dir} (with Great Expectations gate)")
    report = run_etl(spark, raw_dir, lake_dir)
    ev = report["events"]
    print(f"    {ev['input']:,} in = {ev['clean']:,} clean + {ev['quarantined']:,} quarantined + "
          f"{ev['duplicates']:,} duplicates ({time.time() - t:.1f} s)", flush=True)
    for reason, n in ev["reasons"].items():
        print(f"      quarantined {reason:<28} {n:>8,}")

    t = _step("graph build: clean tables -> graph version (stable ids, nodes, edges, features, stats; GE gate)")
    graph = build_graph(spark, lake_dir)
    print(f"    graph version {graph['graph_version']} committed ({time.time() - t:.1f} s, config "
          f"{graph['config_hash']})", flush=True)
    for node_type, n in graph["node_counts"].items():
        print(f"      nodes {node_type:<10} {n:>10,}")
    for edge_type, n in graph["edge_counts"].items():
        print(f"      edges {edge_type:<34} {n:>10,}")

    t = _step("graph export: training snapshot (memory-mappable CSR per relation + feature matrices)")
    snapshot = export_graph(spark, lake_dir)
    print(f"    {snapshot['path']} ({snapshot['total_bytes'] / 1e6:,.1f} MB, {time.time() - t:.1f} s)", flush=True)

    t = _step("train: heterogeneous GraphSAGE (every relation, text/numeric/categorical features), 10% held out")
    trained = train(spark, lake_dir, _demo_train_config())
    print(f"    run {trained['run_id']}: {trained['steps']} steps in {time.time() - t:.1f} s", flush=True)
    for name, value in sorted((trained["validation"] or {}).items()):
        if "@" in name:
            print(f"      {name:<44} {value:.4f}")
    print(f"    training report: {trained['report']}")

    published = _publish_and_query(spark, lake_dir, trained["run_id"])

    print("\n==> tables", flush=True)
    produced = {}
    embedding_tables = [embeddings_table(t) for t in trained["tables"]]
    for name in [*_SHOWN_TABLES, *graph["outputs"], tables.GRAPH_MANIFEST, *embedding_tables, tables.TRAIN_RUNS,
                 tables.ASSETS_RECOMMENDATIONS, tables.ASSETS_SIMILAR_ITEMS]:
        path = tables.table_path(lake_dir, name)
        if lake.table_exists(path):
            produced[name] = {"version": lake.table_version(path), "rows": table_rows(path)}
            entry = produced[name]
            print(f"    {name:<42} version {entry['version']:>3}  rows {entry['rows']:>10,}")
    print("\n==> sample of clean/events", flush=True)
    lake.read_table(spark, tables.table_path(lake_dir, tables.CLEAN_EVENTS)).orderBy("ts", "event_id").show(5, truncate=False)
    docs = report.get("validation", {}).get("data_docs")
    print(f"==> Great Expectations Data Docs: {docs}")
    page = write_pipeline_report(spark, lake_dir, etl_dates=report["dates"], graph_version=graph["graph_version"],
                                 train_run_id=trained["run_id"], seed=seed)
    print(f"==> pipeline report: {page}", flush=True)
    return {"generate": gen, "etl": report, "graph": graph, "snapshot": snapshot, "train": trained, "tables": produced,
            "data_docs": docs, **published, "report": page}


DEMO_QUERIES = (
    ("recommendations", "SELECT user_id, gl_recommend(user_id, 5) AS top5 FROM users ORDER BY user_id LIMIT 3"),
    ("similar items", "SELECT item_id, category, gl_similar_items(item_id, 3) AS similar FROM items "
                      "ORDER BY item_id LIMIT 3"),
    ("interests and why", "SELECT user_id, gl_interests(user_id, 3) AS interests, "
                          "gl_explain(user_id, gl_recommend(user_id, 1)[0].item_key, 3) AS why_top1 "
                          "FROM (SELECT DISTINCT user_id FROM events WHERE event_type = 'purchase') "
                          "ORDER BY user_id LIMIT 2"),
)


def _publish_and_query(spark, lake_dir: str, run_id: str) -> dict:
    from graphlake import udfs
    from graphlake.assets.publish import publish

    t = _step("publish: embeddings -> versioned assets (Delta + FAISS index), quality gate, promote")
    pub = publish(spark, lake_dir, run_id=run_id, promote=True)
    for asset, r in pub["assets"].items():
        print(f"    {asset:<16} v{r['version']}: {r['rows']:,} rows x {r['dim']}, status {r['status']}", flush=True)
        if r.get("gate"):
            print("      " + r["gate"].replace("\n", "\n      "))
    for name, o in pub["outputs"].items():  # top-K tables for readers without Spark (DuckDB, polars, delta-rs)
        print(f"    {name:<24} {o['rows']:,} rows (asset_version {o['asset_version']})", flush=True)
    print(f"    ({time.time() - t:.1f} s)")
    version = "production" if all(r["status"] == "production" for r in pub["assets"].values()) else "latest"
    versions = udfs.register(spark, lake=lake_dir, version=version)
    udfs.register_views(spark, lake_dir, versions)
    answers = {}
    for title, sql in DEMO_QUERIES:
        _step(f"sql ({title}): graphlake sql --lake {lake_dir} \"{sql}\"")
        df = spark.sql(sql)
        df.show(truncate=False, vertical=True)
        answers[title] = [r.asDict(recursive=True) for r in df.collect()]
    return {"publish": pub, "queries": answers}
