"""The quality gate an asset version must pass before it becomes ``production`` (Great Expectations).

Two suites per asset version:

* ``assets.<asset>.rows`` on the version's rows (a Spark DataFrame, the whole partition):
  key not null and unique, every embedding of the declared dimension, no NaN/inf component,
  L2 norm within ``[min_norm, max_norm]``.
* ``assets.<asset>.checks`` on one row of figures computed with Spark:
  ``missing_keys`` (nodes of the graph version without an embedding) = 0;
  ``category_lift`` ≥ ``min_category_lift`` for node types with a ``belongs_to`` category edge:
  over a deterministic sample of ``nn_sample`` items, the share of each item's ``nn_k`` nearest
  neighbours (FAISS index of the version) that share its leaf category, divided by the share a
  random item would (``Σ (n_c − 1) / (N − 1)`` over the sample); and for each evaluation metric of
  the production version, ``ratio_<metric>`` = candidate / production ≥ ``1 − max_regression``.

Example:
    >>> summary = run_gate(spark, "lakehouse", rows, candidate_row, AssetConfig())
    >>> summary["success"], summary["figures"]["category_lift"]
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from graphlake.assets import schema as A
from graphlake.assets.bundle import open_bundle
from graphlake.assets.config import AssetConfig
from graphlake.assets.registry import AssetVersion, production
from graphlake.core import quality, tables
from graphlake.core.edge_types import parse_edge_type
from graphlake.graph_build import schema as G
from graphlake.graph_build.manifest import GraphVersion, load_graph_version, read_graph_table

log = logging.getLogger(__name__)


def _row_suite(name: str, dim: int, config: AssetConfig):
    import great_expectations as gx

    E = gx.expectations
    return quality.Suite(name, (
        E.ExpectColumnValuesToNotBeNull(column=A.KEY),
        E.ExpectColumnValuesToBeUnique(column=A.KEY),
        E.ExpectColumnValuesToBeBetween(column="dim", min_value=dim, max_value=dim),
        E.ExpectColumnValuesToBeInSet(column="non_finite", value_set=[0]),
        E.ExpectColumnValuesToBeBetween(column="norm", min_value=config.min_norm, max_value=config.max_norm),
    ))


def _category_lift(spark, row: dict, graph: GraphVersion, config: AssetConfig) -> float | None:
    """See the module docstring; ``None`` when the node type has no category edges."""
    edge = f"{row['node_type']}__belongs_to__{G.CATEGORY}"
    if tables.edges(*parse_edge_type(edge)) not in graph.tables:
        return None
    bundle = open_bundle(row["files"])
    n = bundle.vectors.shape[0]
    rng = np.random.default_rng(config.seed)
    sample = np.sort(rng.choice(n, size=min(n, config.nn_sample), replace=False))
    k = min(config.nn_k, n - 1)
    if k < 1:
        return None
    queries = bundle.scoring_vectors()[sample]
    _, nbrs = bundle.index().search(np.ascontiguousarray(queries), k + 1)
    cats = read_graph_table(spark, graph, tables.edges(*parse_edge_type(edge))).select(G.SRC_ID, G.DST_ID)
    # categories of the sampled items and their neighbours only: a bounded set of ids
    wanted = np.unique(np.concatenate([sample, nbrs[nbrs >= 0].ravel()]))
    ids = spark.createDataFrame(pd.DataFrame({G.SRC_ID: wanted.astype(np.int64)}))
    known = cats.join(F.broadcast(ids), G.SRC_ID).cache()
    cat_of = {r[G.SRC_ID]: r[G.DST_ID] for r in known.collect()}
    sizes = {r[G.DST_ID]: r["n"] for r in cats.join(F.broadcast(known.select(G.DST_ID).distinct()), G.DST_ID)
             .groupBy(G.DST_ID).agg(F.count("*").alias("n")).collect()}
    known.unpersist()
    total = cats.count()
    same, pairs, chance = 0, 0, []
    for q, row_nbrs in zip(sample, nbrs):
        c = cat_of.get(int(q))
        if c is None:
            continue
        others = [int(j) for j in row_nbrs if j >= 0 and j != q][:k]
        same += sum(cat_of.get(j) == c for j in others)
        pairs += len(others)
        chance.append((sizes[c] - 1) / max(total - 1, 1))
    if not pairs or not chance or np.mean(chance) == 0:
        return None
    return float((same / pairs) / np.mean(chance))


def gate_figures(spark, lake_dir: str, rows: list[dict], row: dict, graph: GraphVersion, df, config: AssetConfig) -> dict:
    """The figures of the ``checks`` suite (computed with Spark; see the module docstring)."""
    id_map = read_graph_table(spark, graph, tables.id_map(row["node_type"])).select(G.KEY)
    figures: dict = {"missing_keys": id_map.join(df.select(A.KEY), G.KEY, "left_anti").count()}
    lift = _category_lift(spark, row, graph, config)
    if lift is not None:
        figures["category_lift"] = lift
    prod = production(rows, row["asset"])
    figures["production_version"] = prod["version"] if prod and prod["version"] != row["version"] else None
    if figures["production_version"] is not None:
        ours, theirs = json.loads(row["metrics"] or "{}"), json.loads(prod["metrics"] or "{}")
        for metric, base in sorted(theirs.items()):
            if base > 0:
                figures[f"ratio_{metric}"] = round(ours[metric] / base, 6) if metric in ours else (
                    0.0 if config.require_metrics else None)
        figures = {k: v for k, v in figures.items() if v is not None or k == "production_version"}
    return figures


def _checks_suite(name: str, figures: dict, config: AssetConfig):
    import great_expectations as gx

    E = gx.expectations
    exps = [E.ExpectColumnValuesToBeBetween(column="missing_keys", min_value=0, max_value=0)]
    if "category_lift" in figures:
        exps.append(E.ExpectColumnValuesToBeBetween(column="category_lift", min_value=config.min_category_lift))
    for k in sorted(figures):
        if k.startswith("ratio_"):
            exps.append(E.ExpectColumnValuesToBeBetween(column=k, min_value=1.0 - config.max_regression))
    return quality.Suite(name, tuple(exps))


def run_gate(spark, lake_dir: str, rows: list[dict], row: dict, config: AssetConfig, build_docs: bool = True) -> dict:
    """Validate asset version ``row`` (a registry row); returns the GE summary plus ``figures``.

    Never raises for a failed expectation (``summary["success"]`` says); raises for bad input.
    """
    if row["status"] not in (A.CANDIDATE, A.PRODUCTION, A.RETIRED):
        raise ValueError(f"row: {row['asset']} v{row['version']} is {row['status']}; only published versions are gated")
    graph = load_graph_version(spark, lake_dir, row["graph_version"])
    df = AssetVersion.from_row(row, lake_dir).read(spark).select(
        A.KEY, F.size(A.EMBEDDING).alias("dim"),
        F.size(F.filter(A.EMBEDDING, lambda x: F.isnan(x) | (F.abs(x) == float("inf")))).alias("non_finite"),
        F.sqrt(F.aggregate(A.EMBEDDING, F.lit(0.0).cast("double"), lambda acc, x: acc + x * x)).alias("norm"))
    figures = gate_figures(spark, lake_dir, rows, row, graph, df, config)
    base = f"assets.{row['asset']}.v{row['version']}"
    frame = pd.DataFrame([{k: v for k, v in figures.items() if k != "production_version"}])
    summary = quality.run_suites([(_row_suite(f"{base}.rows", int(row["dim"]), config), df),
                                  (_checks_suite(f"{base}.checks", figures, config), frame)],
                                 lake=lake_dir, build_docs=build_docs, raise_on_failure=False)
    summary["figures"] = figures
    log.info("gate %s: %s %s", base, "passed" if summary["success"] else "FAILED", figures)
    return summary
