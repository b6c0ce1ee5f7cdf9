"""`graphlake demo` end to end on a small generated set: every stage runs and reports."""

from __future__ import annotations

import os

from graphlake.core import tables


def test_demo_runs_every_stage(demo_run):
    _lake_dir, summary, out = demo_run
    for stage in ("==> generate", "==> etl", "==> graph build", "==> graph export", "==> train", "==> publish",
                  "==> sql (recommendations)", "==> sql (similar items)", "==> sql (interests and why)", "==> tables"):
        assert stage in out, stage
    assert summary["etl"]["events"]["clean"] > 0 and summary["graph"]["graph_version"] == 0
    assert summary["train"]["steps"] > 0 and os.path.isfile(summary["train"]["report"])
    assert tables.TRAIN_RUNS in summary["tables"]
    assert summary["tables"]["train/embeddings_item"]["rows"] == summary["graph"]["node_counts"]["item"]
    assert any(k.endswith("recall@20") for k in summary["train"]["validation"])
    assert {a: r["version"] for a, r in summary["publish"]["assets"].items()} == {"item_embeddings": 1,
                                                                                 "user_embeddings": 1}
    recs = summary["queries"]["recommendations"]
    assert len(recs) == 3 and all(len(r["top5"]) == 5 for r in recs)
    assert all(len(r["similar"]) == 3 and r["item_id"] not in [s["item_key"] for s in r["similar"]]
               for r in summary["queries"]["similar items"])
    assert all(r["interests"] for r in summary["queries"]["interests and why"])
    # the top-20 tables for readers without Spark: 20 answers per item, at most 20 per user
    items, users = summary["graph"]["node_counts"]["item"], summary["graph"]["node_counts"]["user"]
    assert summary["tables"][tables.ASSETS_SIMILAR_ITEMS]["rows"] == items * min(20, items - 1)
    assert 0 < summary["tables"][tables.ASSETS_RECOMMENDATIONS]["rows"] <= users * 20
