"""Quality benchmark on the public datasets, through the product's own path: ``import`` ->
``graph build`` -> ``train`` -> ``evaluate`` (full ranking over all items, the user's training
items of the target behaviour masked).

Datasets (``../shared/datasets``; anchors in its README):
  gowalla  LightGCN's split, Recall@20 / NDCG@20, config ``bench/configs/gowalla.yaml``
  tmall    MuLe's copy (buy, cart, collect), target purchase, HR@10 / NDCG@10,
           config ``bench/configs/tmall.yaml``
  beauty   S3-Rec's Amazon Beauty with brand and category attributes, no test file: cold start
           (``cold_start_fraction``: held-out items ranked from their attributes, Recall@20 /
           NDCG@20 against the attribute-popularity and random references) and warm items
           (``--validation``: a slice of the kept items' interactions), config ``bench/configs/beauty.yaml``

The imported and built lake is cached under ``--work``, in a folder keyed by the dataset's files
(names and contents): other data never reuses it. With ``--validation F`` each run
holds out a share F of the target's training edges and reports the validation metrics only (tune
there); without it the run is scored once on the dataset's test file. ``--seeds N`` trains N runs
(seeds 0..N-1). Every run prints one JSON line (metrics, seconds, config hash, seed, test
evaluations so far in this work folder); the last line is the mean and sd over the seeds.

Usage:
    python bench/quality.py --dataset tmall [--config C | --recipe] [--seeds 3] [--validation 0.1] [--epochs N]
        [--width D] [--set key=value ...]     (a TrainConfig field, YAML value: --set edge_types=[user__purchase__item])
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads (graphlake.app.cli.main)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DATA = os.path.join(ROOT, "..", "shared", "datasets")

DATASETS = {
    "gowalla": {"format": "lightgcn", "k": 20, "metrics": ("recall@20", "ndcg@20"),
                "anchors": {"LightGCN (paper, dim 64)": {"recall@20": 0.1830, "ndcg@20": 0.1554}}},
    "tmall": {"format": "mule", "k": 10, "metrics": ("hr@10", "ndcg@10"),
              "anchors": {"LightGCN (buy only)": {"hr@10": 0.0393, "ndcg@10": 0.0209},
                          "MB-CGCN": {"hr@10": 0.0984, "ndcg@10": 0.0558},
                          "MB-HGCN": {"hr@10": 0.1443, "ndcg@10": 0.0769},
                          "MuLe": {"hr@10": 0.2112, "ndcg@10": 0.1177}},
              "anchor_note": "published models also trained on 1.8M view interactions this copy does not have"},
    "beauty": {"format": "s3rec", "k": 20, "metrics": ("recall@20", "ndcg@20"), "test_file": False, "anchors": {},
               "anchor_note": "no published cold-start figure uses this protocol: compare with the popularity "
                              "and random references of the same run"},
}


def data_key(folder: str) -> str:
    """A key of the dataset's files (names and contents, SHA-256): a changed dataset gets a new
    lake, and the same files keep theirs wherever they were copied or touched."""
    names = sorted(n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n)))
    if not names:
        raise FileNotFoundError(f"--data: no files in {folder!r}")
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        with open(os.path.join(folder, name), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def _record(ledger: str, run_id: str, out: dict, label, seed: int) -> int:
    """Append one test evaluation to the work folder's ledger; the number of them so far."""
    with open(ledger, "a") as fh:
        fh.write(json.dumps({"run_id": run_id, "config_hash": out["config_hash"], "label": label, "seed": seed}) + "\n")
    with open(ledger) as fh:
        return sum(1 for _ in fh)


def _figures(out: dict, spec: dict) -> dict:
    """The figures of one run that the mean and sd are taken over: the test metrics, else the
    cold-start ones (``cold_*``, with their references), else the validation ones."""
    if spec["metrics"][0] in out:
        return {m: out[m] for m in spec["metrics"]}
    if "cold_start" in out:
        return {f"cold_{m}": v for m, v in out["cold_start"].items()
                if isinstance(v, float) and ("recall@" in m or "ndcg@" in m)}
    return {m: v for m, v in out.get("validation", {}).items() if "recall@" in m or "ndcg@" in m or "hr@" in m}


def _overrides(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for item in pairs:
        if "=" not in item:
            raise SystemExit(f"--set: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--data", default=None, help="dataset folder (default ../shared/datasets/<dataset>)")
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/graphlake/bench-quality"))
    parser.add_argument("--config", default=None, help="default bench/configs/<dataset>.yaml")
    parser.add_argument("--recipe", action="store_true",
                        help="train with what `graphlake train` uses without a config (training/recipe.py)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", dest="first_seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--validation", type=float, default=None, help="hold out this share of the target's edges")
    parser.add_argument("--width", type=int, default=None, help="the model's hidden_dim (the rest of `model` kept)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="TrainConfig field=YAML value")
    parser.add_argument("--label", default=None, help="a name for this configuration in the JSON lines")
    args = parser.parse_args(argv)
    spec = DATASETS[args.dataset]
    data = args.data or os.path.join(DATA, args.dataset)
    config_path = args.config or os.path.join(ROOT, "bench", "configs", f"{args.dataset}.yaml")

    from graphlake.core import lake, tables
    from graphlake.core.config import load_config, to_dict
    from graphlake.core.spark import get_spark
    from graphlake.etl.importers import import_dataset
    from graphlake.graph_build.config import GraphConfig
    from graphlake.graph_build.job import build_graph
    from graphlake.training.config import TrainConfig, config_hash
    from graphlake.training.evaluate import evaluate
    from graphlake.training.job import train

    spark = get_spark(app_name="bench-quality", conf={"spark.ui.enabled": "false", "spark.driver.memory": "6g"})
    work = os.path.join(args.work, f"{args.dataset}-{data_key(data)}")
    lake_dir = os.path.join(work, "lake")
    prep = {}
    if not lake.table_exists(tables.table_path(lake_dir, tables.GRAPH_MANIFEST)):
        t0 = time.time()
        import_dataset(spark, spec["format"], data, lake_dir)
        build_graph(spark, lake_dir, GraphConfig(text_model="hashing", text_dim=16), build_docs=False)
        prep["prepare_s"] = round(time.time() - t0, 1)
    if args.recipe:
        from graphlake.graph_build.manifest import load_graph_version
        from graphlake.training.recipe import recommended_config

        base, config_path = recommended_config(load_graph_version(spark, lake_dir)), "training/recipe.py"
    else:
        base = load_config(TrainConfig, config_path, section="train")
    overrides = {k: v for k, v in {"epochs": args.epochs, "validation_fraction": args.validation}.items()
                 if v is not None}
    overrides.update(_overrides(args.sets))
    if args.width is not None:
        overrides["model"] = {**dict(overrides.get("model", base.model)), "hidden_dim": args.width}
    probe = TrainConfig(**{**to_dict(base), **overrides})
    if not spec.get("test_file", True) and probe.validation_fraction == 0 and probe.cold_start_fraction == 0:
        raise SystemExit(f"--dataset {args.dataset} has no test file: train with cold_start_fraction > 0 "
                         f"(--set cold_start_fraction=0.1) and/or --validation F")
    ledger = os.path.join(work, "test_evaluations.jsonl")  # every scoring of the test file, for the docs
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        config = TrainConfig(**{**to_dict(base), **overrides, "seed": seed})
        t0 = time.time()
        summary = train(spark, lake_dir, config, progress=sys.stderr.isatty())
        train_s = time.time() - t0
        out = {"bench": "quality", "dataset": args.dataset, "label": args.label, "seed": seed,
               "config": os.path.relpath(config_path, ROOT) if os.path.isabs(config_path) else config_path,
               "overrides": dict(overrides),
               "config_hash": config_hash(config), "run_id": summary["run_id"], "train_s": round(train_s, 1),
               "steps": summary["steps"], "epochs": config.epochs, "dim": config.model.get("hidden_dim"), **prep}
        if config.validation_fraction > 0:
            out["validation"] = {k: round(v, 4) for k, v in (summary["validation"] or {}).items()
                                 if isinstance(v, float)}
        if config.cold_start_fraction > 0:  # the held-out items are this run's test set: scored once
            cold = evaluate(spark, lake_dir, run_id=summary["run_id"], k=spec["k"], cold_start=True)["cold_start"]
            out["cold_start"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in cold.items()
                                 if k not in ("targets", "node_type")}
            out["test_evaluations_in_work_folder"] = _record(ledger, summary["run_id"], out, args.label, seed)
        elif config.validation_fraction == 0:
            result = evaluate(spark, lake_dir, run_id=summary["run_id"], k=spec["k"])
            out.update({m: round(result[m], 4) for m in (*spec["metrics"], f"recall@{spec['k']}")})
            out.update(target=result["target"], masked=result["masked"], users=result["users"],
                       by_degree={n: {m: round(g[m], 4) for m in spec["metrics"]} | {"users": g["users"]}
                                  for n, g in result["by_degree"].items() if g["users"]})
            out["test_evaluations_in_work_folder"] = _record(ledger, summary["run_id"], out, args.label, seed)
        prep = {}
        results.append(out)
        print(json.dumps(out), flush=True)
    figures = [_figures(r, spec) for r in results]
    if len(figures) > 1 and figures[0]:
        summary = {m: {"mean": round(statistics.mean(f[m] for f in figures), 4),
                       "sd": round(statistics.stdev(f[m] for f in figures), 4)} for m in figures[0]}
        print(json.dumps({"bench": "quality", "dataset": args.dataset, "label": args.label, "seeds": len(figures),
                          **summary, "anchors": spec["anchors"], "anchor_note": spec.get("anchor_note")}), flush=True)
    return results


if __name__ == "__main__":
    main()
