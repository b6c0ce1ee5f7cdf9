"""A tiny lake whose published embeddings are chosen by hand, so SQL answers can be checked by hand.

The graph is built for real (clean tables -> ``build_graph`` -> training snapshot); the "training
run" is the real run folder layout and tables (``run.json``, ``DONE``, ``embeddings/<type>.npy``,
``train/embeddings_<type>`` written by :func:`graphlake.training.job.write_embeddings`, ``meta/train_runs``)
with the vectors below instead of learned ones.

Items i1-i3 are in category A and point along x; i4-i6 are in B and point along y:

    i1 [1, 0]   i2 [.9, .1]   i3 [.8, .2]   i4 [0, 1]   i5 [.1, .9]   i6 [.2, .8]
    u1 [1, 0]   u2 [0, 1]     u3 [.6, .4]

Histories (clicks, u1 also purchases i1): u1 {i1, i2}, u2 {i4, i5}, u3 {i1, i4}.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import numpy as np

from tests.test_graph_build import FAST, ev, ts, write_clean

ITEMS = [(f"i{n}", f"item {n}", "A" if n <= 3 else "B", "brand", f"s{(n - 1) // 3 + 1}", float(n), None, None)
         for n in range(1, 7)]
USERS = [(u, 30, "F", "US", None, None, None) for u in ("u1", "u2", "u3")]
EVENTS = [ev("e1", "u1", "i1", "click", ts(1, 10)), ev("e2", "u1", "i2", "click", ts(1, 11)),
          ev("e3", "u1", "i1", "purchase", ts(1, 12)), ev("e4", "u2", "i4", "click", ts(1, 10)),
          ev("e5", "u2", "i5", "click", ts(1, 11)), ev("e6", "u3", "i1", "click", ts(1, 10)),
          ev("e7", "u3", "i4", "click", ts(1, 11))]
ITEM_VECTORS = {"i1": [1, 0], "i2": [.9, .1], "i3": [.8, .2], "i4": [0, 1], "i5": [.1, .9], "i6": [.2, .8]}
USER_VECTORS = {"u1": [1, 0], "u2": [0, 1], "u3": [.6, .4]}


def build_tiny_graph(spark, lake_dir: str) -> None:
    from graphlake.graph_build.job import build_graph

    write_clean(spark, lake_dir, EVENTS, ITEMS, USERS)
    build_graph(spark, lake_dir, FAST, build_docs=False)


def hand_run(spark, lake_dir: str, run_id: str, vectors: dict | None = None, evaluation: dict | None = None,
             model: dict | None = None) -> str:
    """Write a finished run ``run_id`` with the given ``{node_type: {key: vector}}`` (and ``model:``
    section, default a dot decoder); returns its folder."""
    from graphlake.core import lake, tables
    from graphlake.graph_build.export import export_graph
    from graphlake.graph_build.manifest import load_graph_version, read_graph_table
    from graphlake.training.config import TrainConfig, config_hash, config_json
    from graphlake.training.job import RUNS_SCHEMA, write_embeddings
    from graphlake.training.run import DONE_FILE, RUN_FILE, TrainRun

    vectors = vectors or {"user": USER_VECTORS, "item": ITEM_VECTORS}
    graph = load_graph_version(spark, lake_dir)
    snap = export_graph(spark, lake_dir)
    config = TrainConfig(targets=("user__click__item", "user__purchase__item"), model=model or {"decoder": "dot"})
    run_dir = TrainRun.of(lake_dir, run_id).dir
    os.makedirs(os.path.join(run_dir, "embeddings"))
    for node_type, by_key in vectors.items():
        ids = {r["key"]: r["node_id"] for r in read_graph_table(spark, graph, tables.id_map(node_type)).collect()}
        if set(ids) != set(by_key):
            raise ValueError(f"vectors: {node_type} keys {sorted(by_key)} != graph keys {sorted(ids)}")
        mat = np.zeros((len(ids), len(next(iter(by_key.values())))), np.float32)
        for key, vec in by_key.items():
            mat[ids[key]] = vec
        np.save(os.path.join(run_dir, "embeddings", f"{node_type}.npy"), mat)
    spec = {"run_id": run_id, "graph_version": graph.graph_version, "snapshot": snap["path"],
            "config": json.loads(config_json(config)), "config_hash": config_hash(config), "lake": lake_dir}
    with open(os.path.join(run_dir, RUN_FILE), "w") as f:
        json.dump(spec, f)
    with open(os.path.join(run_dir, DONE_FILE), "w") as f:
        json.dump({"steps": 0}, f)
    if evaluation is not None:
        with open(os.path.join(run_dir, "evaluation.json"), "w") as f:
            json.dump(evaluation, f)
    write_embeddings(spark, lake_dir, graph, run_id, run_dir, sorted(vectors))
    row = (run_id, datetime.now(timezone.utc).replace(tzinfo=None), graph.graph_version, spec["config_hash"],
           config_json(config), "local", 1, json.dumps({"run_id": run_id}))
    lake.write_table(spark.createDataFrame([row], RUNS_SCHEMA), tables.table_path(lake_dir, tables.TRAIN_RUNS),
                     mode="append")
    return run_dir
