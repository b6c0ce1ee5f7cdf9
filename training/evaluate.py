"""``graphlake evaluate``: Recall@K / NDCG@K of a training run, full ranking over all items minus
each user's training items (the LightGCN protocol), on held-out pairs.

The held-out pairs come from a table of ``(user_id, item_id, split)`` rows keyed by ORIGINAL ids
(default ``import/test_interactions``, what ``graphlake import`` writes for the public datasets)
or from a file of such pairs (``user item`` per line, or LightGCN's ``user item item ...``).
They are mapped to node ids through the run's graph version; pairs whose user or item is not in
the graph are counted (``unknown_pairs``), not silently dropped. The "training items" are the
run's target edges (``user -> item`` targets of its snapshot).

Scoring every user against every item is one chunked matrix product on the driver. A very large
test set can be bounded with ``max_users``: a deterministic hash sample of the users.

Cold start: when the run held items out of training (``cold_start_fraction``, see
:mod:`graphlake.training.cold_start`), the result also holds ``"cold_start"``: Recall@K / NDCG@K of the
held-out items' embeddings (computed from their features and their attribute edges to shop /
brand / category only, ID embeddings masked), ranked among the held-out items for every user
with a held-out interaction, next to a random ranking's expected figures. ``cold_start=True``
(``graphlake evaluate --cold-start``) evaluates only that and needs no test pairs.

Example:
    >>> result = evaluate(spark, "lakehouse", k=20)
    >>> result["recall@20"], result["ndcg@20"]
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import torch
from pyspark.sql import functions as F

from graphlake.core import lake, tables
from graphlake.core.config import load_config
from graphlake.core.edge_types import parse_edge_type
from graphlake.core.errors import InputNotFoundError, UsageError
from graphlake.etl import schema as S
from graphlake.graph_build import schema as G
from graphlake.graph_build.manifest import GraphVersion, load_graph_version, read_graph_table
from graphlake.graph_build.snapshot import open_snapshot
from graphlake.training.cold_start import (
    COLD_START_FILE,
    attribute_popularity,
    held_out_pairs,
    item_type_of,
    random_ranking_metrics,
    read_cold_items,
)
from graphlake.training.config import TrainConfig
from graphlake.training.job import latest_run
from graphlake.training.metrics import degree_buckets, group_by_user, ranking_metrics
from graphlake.training.run import TrainRun
from graphlake.training.run_data import TARGET_BEHAVIOUR, behaviour_edge, resolve_targets
from graphlake.training.sampling import csr_rows
from graphlake.training.scoring import ranking_score


def _pairs_frame(spark, test_table: str | None, test_file: str | None, lake_dir: str, split: str | None):
    if test_file is not None:
        if not os.path.isfile(test_file):
            raise InputNotFoundError(f"test_file: no such file {test_file!r}")
        lines = spark.read.text(test_file).select(F.split(F.trim("value"), r"\s+").alias("p"))
        lines = lines.filter(F.size("p") >= 2)
        return lines.select(F.col("p")[0].alias(S.USER_ID), F.explode(F.slice("p", 2, 1 << 30)).alias(S.ITEM_ID))
    path = tables.table_path(lake_dir, test_table)
    if not lake.table_exists(path):
        raise InputNotFoundError(f"test_table: no table {test_table!r} under {lake_dir!r} (import a dataset with held-out "
                                "interactions, or pass a test file)")
    df = lake.read_table(spark, path)
    for col in (S.USER_ID, S.ITEM_ID):
        if col not in df.columns:
            raise UsageError(f"test_table: {test_table!r} has no column {col!r} (columns: {df.columns})")
    if split is not None and S.SPLIT in df.columns:
        df = df.filter(F.col(S.SPLIT) == split)
    return df.select(S.USER_ID, S.ITEM_ID)


def _test_pairs(spark, pairs, graph: GraphVersion, user_type: str, item_type: str, max_users: int | None, seed: int):
    users = read_graph_table(spark, graph, tables.id_map(user_type)).select(
        F.col(G.KEY).alias(S.USER_ID), F.col(G.NODE_ID).alias("_u"))
    items = read_graph_table(spark, graph, tables.id_map(item_type)).select(
        F.col(G.KEY).alias(S.ITEM_ID), F.col(G.NODE_ID).alias("_i"))
    joined = pairs.select(F.trim(S.USER_ID).alias(S.USER_ID), F.trim(S.ITEM_ID).alias(S.ITEM_ID)).distinct() \
        .join(users, S.USER_ID, "left").join(items, S.ITEM_ID, "left")
    counts = joined.agg(F.count("*").alias("n"), F.count(F.when(F.col("_u").isNull() | F.col("_i").isNull(), 1))
                        .alias("unknown")).first()
    known = joined.filter(F.col("_u").isNotNull() & F.col("_i").isNotNull())
    total_users = known.select("_u").distinct().count()
    if max_users is not None and total_users > max_users:  # bounded: a deterministic hash sample of users
        fraction = max_users / total_users
        known = known.filter((F.abs(F.xxhash64(F.col("_u"), F.lit(seed))) % 1_000_000) < int(fraction * 1_000_000))
    arrow = known.select("_u", "_i").toArrow()
    return (torch.from_numpy(arrow.column("_u").to_numpy().astype(np.int64)),
            torch.from_numpy(arrow.column("_i").to_numpy().astype(np.int64)), int(counts["n"]), int(counts["unknown"]),
            total_users)


MASKS = ("target", "targets")


def _evaluated_target(target: str | None, run_targets: list[str], edge_types) -> str:
    """The edge type whose held-out pairs are scored: ``target`` (an edge type, or a behaviour
    name meaning ``user__<behaviour>__item``), else the run's target behaviour (purchase when the
    run trains it, else its first target)."""
    if target is None:
        purchase = behaviour_edge(TARGET_BEHAVIOUR)
        return purchase if purchase in run_targets else run_targets[0]
    if not isinstance(target, str) or not target:
        raise UsageError(f"target: expected an edge type or a behaviour name, got {target!r}")
    edge = behaviour_edge(target)
    if edge not in edge_types:
        raise UsageError(f"target: {edge!r} is not an edge type of the run's graph (edge types: {sorted(edge_types)})")
    return edge


def evaluate(spark, lake_dir: str, run_id: str | None = None, test_table: str = tables.IMPORT_TEST,
             test_file: str | None = None, split: str | None = "test", k: int = 20, max_users: int | None = None,
             seed: int = 0, target: str | None = None, cold_start: bool | None = None, mask: str = "target") -> dict:
    """Evaluate run ``run_id`` (default: the newest finished run) on held-out pairs.

    Args:
        spark: SparkSession.
        lake_dir: lake root.
        run_id: training run; ``None`` = the newest in ``meta/train_runs``.
        test_table: table of ``(user_id, item_id[, split])`` with original ids.
        test_file: instead of a table, a text file of ``user item [item ...]`` lines.
        split: keep only this ``split`` of the table (``None``: all rows).
        k: the K of Recall@K / NDCG@K.
        max_users: evaluate a deterministic sample of at most this many users.
        seed: the sample's seed.
        target: the behaviour evaluated: an edge type ``<user type>__<rel>__<item type>`` or a
            behaviour name (``purchase``); default the run's target behaviour (purchase when the
            run trains it, else its first target).
        mask: which training items are removed from a user's ranking: ``target`` (default: the
            user's training edges of the evaluated behaviour only, MuLe's protocol: an item the
            user only carted or collected can still be hit) or ``targets`` (every target
            behaviour of the run with the same node types).
        cold_start: ``None``: add the cold-start evaluation when the run held items out;
            ``True``: only the cold-start evaluation (error when the run held nothing out; no
            test pairs are read); ``False``: never.

    Returns:
        ``{"run_id", "graph_version", "recall@K", "ndcg@K", "hr@K", "users", "test_pairs",
        "unknown_pairs", "k", "target", "masked", "by_degree", "seconds"}`` (``by_degree``: the
        figures per bucket of the users' training degree in the masked behaviour, ``"0"``,
        ``"1-2"``, ``"3-5"``, ``"6-10"``, ``"11+"``) plus ``"cold_start": {"recall@K", "ndcg@K", "random_recall@K",
        "random_ndcg@K", "popularity_recall@K", "popularity_ndcg@K", "items", "users", "pairs", ...}`` (:func:`graphlake.training.cold_start.
        cold_start_metrics`) for a run with held-out items; with ``cold_start=True`` only
        ``{"run_id", "graph_version", "cold_start", "k", "seconds"}``. Also saved as
        ``evaluation.json`` in the run folder.
    """
    started = time.time()
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise UsageError(f"k: expected an int in 1..1000, got {k!r}")
    if max_users is not None and (isinstance(max_users, bool) or not isinstance(max_users, int) or max_users < 1):
        raise UsageError(f"max_users: expected a positive int or None, got {max_users!r}")
    if cold_start is not None and not isinstance(cold_start, bool):
        raise TypeError(f"cold_start: expected True, False or None, got {cold_start!r}")
    if mask not in MASKS:
        raise UsageError(f"mask: expected one of {list(MASKS)}, got {mask!r}")
    run_id = run_id or latest_run(spark, lake_dir)["run_id"]
    run = TrainRun.of(lake_dir, run_id)
    run_dir, spec = run.dir, run.spec()
    if cold_start:
        result = {"run_id": run_id, "graph_version": spec["graph_version"], "cold_start": cold_start_metrics(run_dir, k),
                  "k": k, "seconds": round(time.time() - started, 1)}
        return _save(run_dir, result)
    snap = open_snapshot(spec["snapshot"])
    config = TrainConfig(**{k_: v for k_, v in spec["config"].items()})
    run_targets = resolve_targets(snap, config)
    evaluated = _evaluated_target(target, run_targets, snap.edge_types)
    user_type, _, item_type = parse_edge_type(evaluated)
    masked = [evaluated] if mask == "target" else \
        [t for t in run_targets if parse_edge_type(t).src == user_type and parse_edge_type(t).dst == item_type]
    for name in (user_type, item_type):
        if not os.path.isfile(run.embeddings_path(name)):
            raise InputNotFoundError(f"run_id: run {run_id} has no {name} embeddings (did it finish?)")
    graph = load_graph_version(spark, lake_dir, spec["graph_version"])
    pairs = _pairs_frame(spark, test_table, test_file, lake_dir, split)
    users, items, n_pairs, unknown, total_users = _test_pairs(spark, pairs, graph, user_type, item_type, max_users, seed)
    src, dst = [], []
    for t in masked:  # the training items to mask
        indptr, indices, _ = snap.csr(t)
        src.append(csr_rows(torch.from_numpy(np.array(indptr, dtype=np.int64))))
        dst.append(torch.from_numpy(np.asarray(indices).astype(np.int64)))
    train_ptr, train_items = group_by_user(torch.cat(src), torch.cat(dst), snap.num_nodes(user_type))
    groups, names = degree_buckets(train_ptr[1:] - train_ptr[:-1])  # users by their training degree (masked edges)
    metrics = ranking_metrics(np.load(run.embeddings_path(user_type)), np.load(run.embeddings_path(item_type)),
                              users, items, train_ptr, train_items, k=k, score=ranking_score(config.model_config()),
                              user_groups=groups, group_names=names)
    by_degree = metrics.pop("by_group")
    result = {"run_id": run_id, "graph_version": spec["graph_version"], **metrics, "unknown_pairs": unknown,
              "input_pairs": n_pairs, "users_with_test_items": total_users, "k": k, "target": evaluated,
              "targets": run_targets, "masked": masked, "by_degree": by_degree,
              "sampled_users": max_users is not None and total_users > max_users,
              "seconds": round(time.time() - started, 1)}
    if cold_start is None and read_cold_items(run_dir) is not None:
        result["cold_start"] = cold_start_metrics(run_dir, k)
        result["seconds"] = round(time.time() - started, 1)
    return _save(run_dir, result)


def _save(run_dir: str, result: dict) -> dict:
    with open(TrainRun(run_dir).evaluation_path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    return result


def cold_start_metrics(run_dir: str, k: int = 20) -> dict:
    """Recall@K / NDCG@K of the run's held-out items (protocol: the module docstring).

    Uses the run's ``embeddings/<type>.npy`` (the held-out rows are the feature-only embeddings
    ``embed_all`` wrote) and its snapshot's target edges as the ground truth.

    Returns:
        ``{"recall@K", "ndcg@K", "random_recall@K", "random_ndcg@K", "popularity_recall@K",
        "popularity_ndcg@K", "items", "users", "pairs", "node_type", "targets", "k"}`` (``popularity_*``:
        the held-out items ranked by :func:`attribute_popularity`, the same list for every user); ``items`` = candidates (held-out items), ``pairs`` =
        held-out user -> item pairs, ``users`` = users with at least one.

    Raises:
        FileNotFoundError: the run held no items out, or has no embeddings yet.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise ValueError(f"k: expected an int in 1..1000, got {k!r}")
    held = read_cold_items(run_dir)
    if held is None:
        raise FileNotFoundError(f"run_dir: run {os.path.basename(os.path.normpath(run_dir))} held no items out "
                                f"(no {COLD_START_FILE}; train with cold_start_fraction > 0)")
    train_run = TrainRun(run_dir)
    spec = train_run.spec()
    config = load_config(TrainConfig, spec["config"])
    snap = open_snapshot(spec["snapshot"])
    targets = resolve_targets(snap, config)
    user_type, item_type = item_type_of(targets)
    targets = [t for t in targets if parse_edge_type(t).src == user_type]
    for t in (user_type, item_type):
        if not os.path.isfile(train_run.embeddings_path(t)):
            raise FileNotFoundError(f"run_dir: {run_dir} has no {t} embeddings (did the run finish?)")
    items = torch.tensor(held["node_ids"], dtype=torch.int64)
    users, pair_items = held_out_pairs(snap, targets, items)
    local = torch.searchsorted(items, pair_items)
    item_emb = np.asarray(np.load(train_run.embeddings_path(item_type), mmap_mode="r")[items.numpy()])
    user_emb = np.load(train_run.embeddings_path(user_type), mmap_mode="r")
    kk = min(k, len(items))
    m = ranking_metrics(user_emb, item_emb, users, local, k=kk, score=ranking_score(config.model_config()))
    per_user = torch.bincount(users, minlength=user_emb.shape[0])
    rnd = random_ranking_metrics(per_user[per_user > 0], len(items), k)
    # one ranking for every user: the held-out items by attribute popularity
    pop = ranking_metrics(torch.ones(user_emb.shape[0], 1), attribute_popularity(snap, targets, items)[:, None].float(),
                          users, local, k=kk)
    rnd.update({f"popularity_recall@{k}": pop[f"recall@{kk}"], f"popularity_ndcg@{k}": pop[f"ndcg@{kk}"]})
    return {f"recall@{k}": m[f"recall@{kk}"], f"ndcg@{k}": m[f"ndcg@{kk}"], **rnd, "items": int(len(items)),
            "users": m["users"], "pairs": int(len(users)), "node_type": item_type, "targets": targets, "k": k}
