"""Quality benchmark: Recall@20 / NDCG@20 on Gowalla (LightGCN's split), full ranking over all
items minus the user's training items, against LightGCN's published 0.1830 / 0.1554.

Runs the product's own path: ``graphlake import --format lightgcn`` -> ``graph build`` ->
``train`` (config ``bench/configs/gowalla.yaml``) -> ``evaluate`` on test.txt. The lake is kept
under ``--work`` so the import and graph build (≈ 15 min on 2 cores) are done once. With
``--validation`` the run holds out a slice of train.txt (``validation_fraction``) and reports the
validation metrics only: tune there, never on test.txt.

Prints one JSON line: recall@20, ndcg@20, their ratios to LightGCN's, training seconds, steps.

Usage:
    python bench/quality_gowalla.py [--config bench/configs/gowalla.yaml] [--epochs N] [--validation 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads (graphlake.cli.main)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
LIGHTGCN = {"recall@20": 0.1830, "ndcg@20": 0.1554}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "datasets", "gowalla"))
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/graphlake/bench-gowalla"))
    parser.add_argument("--config", default=os.path.join(ROOT, "bench", "configs", "gowalla.yaml"))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--validation", type=float, default=None, help="hold out this share of train.txt")
    args = parser.parse_args(argv)

    from graph_build.config import GraphConfig
    from graph_build.job import build_graph
    from etl.importers import import_dataset
    from graphlake import lake, tables
    from graphlake.config import load_config, to_dict
    from graphlake.spark import get_spark
    from training.config import TrainConfig
    from training.evaluate import evaluate
    from training.job import train

    spark = get_spark(app_name="bench-quality", conf={"spark.ui.enabled": "false", "spark.driver.memory": "6g"})
    lake_dir = os.path.join(args.work, "lake")
    prep = {}
    if not lake.table_exists(tables.table_path(lake_dir, tables.GRAPH_MANIFEST)):
        t0 = time.time()
        import_dataset(spark, "lightgcn", args.data, lake_dir)
        build_graph(spark, lake_dir, GraphConfig(text_model="hashing", text_dim=16), build_docs=False)
        prep["prepare_s"] = round(time.time() - t0, 1)
    config = load_config(TrainConfig, args.config, section="train")
    overrides = {k: v for k, v in {"epochs": args.epochs, "validation_fraction": args.validation}.items()
                 if v is not None}
    config = TrainConfig(**{**to_dict(config), **overrides})
    t0 = time.time()
    summary = train(spark, lake_dir, config)
    train_s = time.time() - t0
    out = {"bench": "quality_gowalla", "train_s": round(train_s, 1), "train_minutes": round(train_s / 60, 1),
           "steps": summary["steps"], "epochs": config.epochs, "run_id": summary["run_id"], **prep,
           "reference": LIGHTGCN}
    if config.validation_fraction > 0:
        out["validation"] = summary["validation"]
    else:
        result = evaluate(spark, lake_dir, run_id=summary["run_id"], k=20)
        out.update({k: round(result[k], 4) for k in LIGHTGCN})
        out["ratio"] = {k: round(result[k] / v, 3) for k, v in LIGHTGCN.items()}
        out["ok"] = all(result[k] >= v for k, v in LIGHTGCN.items()) and train_s <= 1800
        out["users"] = result["users"]
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
