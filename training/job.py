"""``graphlake train``: snapshot -> ranks (local, Horovod or DDP) -> embeddings as Delta tables.

The driver (this module) resolves the graph version, exports its training snapshot when it is
not there yet (:mod:`graphlake.graph_build.export`), writes ``run.json`` into the run folder
``<lake>/_runs/train/<run_id>``, starts the ranks (in-process for ``local``, otherwise through
:func:`graphlake.training.distributed.launch.launch`), and finally writes the embeddings of every node type
to ``train/embeddings_<type>`` (Delta, partitioned by ``run_id``; columns ``run_id, key, node_id,
embedding``: keyed by the ORIGINAL ids through the graph version's id maps) and one row to
``meta/train_runs``. The Delta write is a Spark job over node-id ranges that reads rows of the
memory-mapped embedding files on the executors: nothing is collected on the driver.

``resume=True`` continues an interrupted run (same run id) from its last checkpoint; the result
equals an uninterrupted run with the same seed.

Example:
    >>> summary = train(spark, "lakehouse", TrainConfig(epochs=2), backend="ddp", workers=2)
    >>> summary["run_id"], summary["tables"]["item"]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
from pyspark.sql import functions as F
from pyspark.sql import types as T

from graphlake.core import lake, tables
from graphlake.core.errors import InputNotFoundError, UsageError
from graphlake.core.spark import default_parallelism
from graphlake.graph_build import schema as G
from graphlake.graph_build.export import export_graph
from graphlake.graph_build.manifest import GraphVersion, load_graph_version, read_graph_table
from graphlake.training import checkpoint as ckpt
from graphlake.training.config import TrainConfig, config_hash, config_json
from graphlake.training.distributed import get_backend
from graphlake.training.distributed.base import resolve_device
from graphlake.training.distributed.launch import LaunchError, launch
from graphlake.training.recipe import recommended_config
from graphlake.training.report import write_training_report
from graphlake.training.run import DONE_FILE, TrainRun
from graphlake.training.worker import run

log = logging.getLogger(__name__)

BACKENDS = ("local", "horovod", "ddp")
RUN_ID, EMBEDDING = "run_id", "embedding"
RUNS_SCHEMA = T.StructType([
    T.StructField(RUN_ID, T.StringType(), False),
    T.StructField("finished_at", T.TimestampType(), False),
    T.StructField(G.GRAPH_VERSION, T.LongType(), False),
    T.StructField("config_hash", T.StringType(), False),
    T.StructField("config", T.StringType(), False),
    T.StructField("backend", T.StringType(), False),
    T.StructField("workers", T.LongType(), False),
    T.StructField("summary", T.StringType(), False),
])


class TrainError(RuntimeError):
    """A training run failed (a rank died, a launcher error); the run folder keeps its checkpoints."""


def embeddings_table(node_type: str) -> str:
    return f"train/embeddings_{node_type}"


def _new_run_id(graph_version: int, config: TrainConfig) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"g{graph_version}-{config_hash(config)[:8]}-{stamp}"


def _warm_start(spark, lake_dir: str, warm_start: str) -> dict:
    """``{"run_id", "checkpoint", "graph_version"}`` of the finished run to start from (``"latest"``: the newest)."""
    if not isinstance(warm_start, str) or not warm_start:
        raise TypeError(f"warm_start: expected a run id or 'latest', got {warm_start!r}")
    if warm_start == "latest":
        warm_start = latest_run(spark, lake_dir)["run_id"]
    run_dir = TrainRun.of(lake_dir, warm_start).dir
    if not TrainRun(run_dir).is_done():
        raise UsageError(f"warm_start: run {warm_start!r} has not finished under {lake_dir!r} (no {DONE_FILE} in "
                         f"{run_dir})")
    path = ckpt.latest_path(run_dir)
    if path is None:
        raise UsageError(f"warm_start: run {warm_start!r} has no checkpoint")
    return {"run_id": warm_start, "checkpoint": path, "graph_version": TrainRun(run_dir).spec()["graph_version"]}


def _prepare(spark, lake_dir, config, graph_version, run_id, resume, warm_start=None,
             overrides=None) -> tuple[str, dict]:
    if resume:
        if not run_id:
            raise UsageError("run_id: --resume needs the id of the run to continue")
        run_dir = TrainRun.of(lake_dir, run_id).dir
        spec = TrainRun(run_dir).spec()
        if config is not None and config_hash(config) != spec["config_hash"]:
            raise UsageError(f"config: differs from the one run {run_id} started with (hash {spec['config_hash']}); "
                             "resume with the same config, or start a new run")
        return run_dir, spec
    start_from = _warm_start(spark, lake_dir, warm_start) if warm_start is not None else None
    exported = export_graph(spark, lake_dir, version=graph_version)
    if config is None:  # the recipe for this graph version (training.recipe)
        config = recommended_config(load_graph_version(spark, lake_dir, exported["graph_version"]), **(overrides or {}))
    if start_from is not None and start_from["graph_version"] > exported["graph_version"]:
        raise UsageError(f"warm_start: run {start_from['run_id']} trained on graph version "
                         f"{start_from['graph_version']}, newer than the {exported['graph_version']} trained now")
    run_id = run_id or _new_run_id(exported["graph_version"], config)
    run_dir = TrainRun.of(lake_dir, run_id).dir
    if TrainRun(run_dir).exists():
        raise UsageError(f"run_id: run {run_id} exists already (pass resume=True to continue it)")
    os.makedirs(run_dir, exist_ok=True)
    spec = {"run_id": run_id, "graph_version": exported["graph_version"], "snapshot": exported["path"],
            "config": json.loads(config_json(config)), "config_hash": config_hash(config), "lake": os.path.abspath(lake_dir)}
    if start_from is not None:
        spec["warm_start"] = start_from
    with open(TrainRun(run_dir).spec_path, "w") as f:
        json.dump(spec, f, indent=1, sort_keys=True)
    return run_dir, spec


def _check_device(device) -> None:
    """Syntax only: whether a rank has the GPU it names is for the rank to say (it may be elsewhere)."""
    if not isinstance(device, str):
        raise TypeError(f"device: expected a str ('auto', 'cpu', 'cuda', 'cuda:N'), got {type(device).__name__}")
    if device != "auto":
        import torch

        try:
            kind = torch.device(device).type
        except RuntimeError:
            kind = None
        if kind not in ("cpu", "cuda"):
            raise UsageError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def _run_ranks(run_dir, backend, workers, resume, launcher, timeout_s, progress, spark, launcher_args=None,
               device: str = "auto") -> None:
    if backend == "local":
        run(run_dir, get_backend("local", device=device), resume=resume, progress=progress)
        return

    args = ["--run-dir", run_dir, "--backend", backend, "--device", device] + (["--resume"] if resume else []) + \
        ([] if progress else ["--no-progress"])
    try:
        launch(backend, workers, "graphlake.training.worker", args, mode=launcher, spark=spark, timeout_s=timeout_s,
               launcher_args=list(launcher_args) if launcher_args else None,
               use_gpu=None if device == "auto" else device.startswith("cuda"))  # TorchDistributor's GPUs
    except LaunchError as exc:
        raise TrainError(f"training run {os.path.basename(run_dir)} failed: {exc}\nthe checkpoints are kept: continue "
                         f"with `graphlake train --resume --run-id {os.path.basename(run_dir)}`") from exc


def _embedding_rows(path: str, dim: int):
    """mapInArrow task: node ids -> (node_id, embedding) rows read from the memory-mapped ``path``."""
    def run(batches):
        emb = np.load(path, mmap_mode="r")
        for batch in batches:
            ids = batch.column(0).to_numpy()
            rows = np.ascontiguousarray(emb[ids], dtype=np.float32)
            values = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), dim).cast(pa.list_(pa.float32()))
            yield pa.RecordBatch.from_arrays([pa.array(ids, pa.int64()), values], names=[G.NODE_ID, EMBEDDING])
    return run


def write_embeddings(spark, lake_dir: str, graph: GraphVersion, run_id: str, run_dir: str, node_types) -> dict:
    """``train/embeddings_<type>`` partition ``run_id=<run_id>`` of every type; {type: Delta version}."""
    written = {}
    for t in node_types:
        path = TrainRun(run_dir).embeddings_path(t)
        n, dim = np.load(path, mmap_mode="r").shape
        parts = max(1, min(n // 100_000 + 1, 4 * default_parallelism(spark)))
        rows = spark.range(0, n, numPartitions=parts).withColumnRenamed("id", G.NODE_ID).mapInArrow(
            _embedding_rows(path, dim), f"{G.NODE_ID} long, {EMBEDDING} array<float>")
        keys = read_graph_table(spark, graph, tables.id_map(t)).select(G.KEY, G.NODE_ID)
        df = rows.join(keys, G.NODE_ID, "inner").select(
            F.lit(run_id).alias(RUN_ID), G.KEY, G.NODE_ID, EMBEDDING)
        target = tables.table_path(lake_dir, embeddings_table(t))
        res = lake.write_table(df, target, mode="overwrite", partition_by=[RUN_ID], replace_partitions={RUN_ID: [run_id]},
                               metadata={"graphlake.job": "train", "graphlake.run_id": run_id})
        written[t] = res.version
    return written


def train(spark, lake_dir: str, config: TrainConfig | None = None, backend: str = "local", workers: int = 1,
          graph_version: int | None = None, run_id: str | None = None, resume: bool = False,
          launcher: str = "process", timeout_s: float | None = None, progress: bool = True,
          warm_start: str | None = None, launcher_args=None, device: str = "auto",
          overrides: dict | None = None) -> dict:
    """Train on a graph version and write the embeddings (see the module docstring).

    Args:
        spark: SparkSession (snapshot export, Delta writes, ``launcher="spark"``).
        lake_dir: lake root with a committed graph version.
        config: :class:`TrainConfig` (defaults when ``None``; with ``resume`` the run's own).
        backend: ``local`` (one process), ``horovod`` or ``ddp``.
        workers: ranks (``local``: must be 1).
        graph_version: default the latest.
        run_id: the run's id (default ``g<graph version>-<config hash>-<UTC time>``).
        resume: continue run ``run_id`` from its last checkpoint.
        launcher: ``process`` (horovodrun / torchrun) or ``spark`` (horovod.spark.run /
            TorchDistributor on the session's cluster).
        timeout_s: fail the run when the ranks take longer.
        warm_start: incremental training: the id of a finished run (or ``"latest"``) whose final
            model initialises this one (ID rows of existing nodes kept, new nodes freshly
            initialised; :func:`graphlake.training.checkpoint.warm_start_state`). ``None``: a full run.
        launcher_args: extra ``horovodrun`` / ``torchrun`` flags for several hosts, e.g.
            ``["-H", "host1:4,host2:4"]`` (:func:`graphlake.training.distributed.launch.launch`).
        device: where each rank trains: ``"auto"`` (its GPU when torch sees one, else the CPU),
            ``"cpu"``, ``"cuda"`` (rank ``local_rank``'s GPU; an error where there is none) or
            ``"cuda:N"``. Not part of the config: the same run may resume elsewhere.
        overrides: TrainConfig fields set on top of ``config``, or of the recipe for the graph
            when ``config`` is ``None`` (``{"epochs": 2}``); with ``resume``, only on a ``config``.

    Returns:
        ``{"run_id", "run_dir", "graph_version", "config_hash", "backend", "workers", "steps",
        "validation", "tables" {type: Delta version}, "seconds", "device"}``.

    Raises:
        ValueError / TypeError: bad arguments. TrainError: a rank failed (checkpoints kept).
    """
    started = time.time()
    if backend not in BACKENDS:
        raise UsageError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers: expected an int >= 1, got {workers!r}")
    if backend == "local" and workers != 1:
        raise UsageError(f"workers: the local backend runs one process, got {workers} (use --backend ddp|horovod)")
    if launcher not in ("process", "spark"):
        raise UsageError(f"launcher: expected 'process' or 'spark', got {launcher!r}")
    _check_device(device)
    if backend == "local":  # this process is the rank: a GPU it lacks is an error before anything is written
        resolve_device(0, device)
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected TrainConfig, got {type(config).__name__}")
    if overrides and config is not None:  # without a config: on the recipe (_prepare)
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown:
            raise TypeError(f"overrides: unknown TrainConfig fields {unknown}")
        config = dataclasses.replace(config, **overrides)
    elif overrides and resume:
        raise UsageError(f"overrides: a resumed run keeps the config it started with, got {overrides}")
    run_dir, spec = _prepare(spark, lake_dir, config, graph_version, run_id, resume, warm_start, overrides)
    train_run = TrainRun(run_dir)
    if train_run.is_done():
        os.remove(train_run.done_path)
    if launcher_args and backend == "local":
        raise UsageError("launcher_args: the local backend has no launcher (use --backend ddp|horovod)")
    _run_ranks(run_dir, backend, workers, resume, launcher, timeout_s, progress, spark, launcher_args, device)
    if not train_run.is_done():
        raise TrainError(f"training run {spec['run_id']}: the ranks exited without finishing (no {DONE_FILE})")
    done = train_run.done()
    graph = load_graph_version(spark, lake_dir, spec["graph_version"])
    node_types = train_run.embedded_types()
    written = write_embeddings(spark, lake_dir, graph, spec["run_id"], run_dir, node_types)
    summary = {"run_id": spec["run_id"], "run_dir": run_dir, "graph_version": spec["graph_version"],
               "config_hash": spec["config_hash"], "backend": backend, "workers": workers,
               "steps": done["steps"], "validation": done.get("validation"), "tables": written,
               "seconds": round(time.time() - started, 1),
               "warm_start": (spec.get("warm_start") or {}).get("run_id"), "device": done.get("device")}
    row = spark.createDataFrame([(spec["run_id"], datetime.now(timezone.utc).replace(tzinfo=None), spec["graph_version"],
                                  spec["config_hash"], json.dumps(spec["config"], sort_keys=True), backend, workers,
                                  json.dumps(summary, sort_keys=True))], RUNS_SCHEMA)
    lake.write_table(row, tables.table_path(lake_dir, tables.TRAIN_RUNS), mode="append")
    summary["report"] = write_training_report(run_dir, spec, summary)
    return summary


def latest_run(spark, lake_dir: str) -> dict:
    """The newest finished run of ``meta/train_runs`` (``FileNotFoundError`` when there is none)."""
    path = tables.table_path(lake_dir, tables.TRAIN_RUNS)
    if not lake.table_exists(path):
        raise InputNotFoundError(f"lake: no finished training run under {lake_dir!r} (run `graphlake train` first)")
    row = lake.read_table(spark, path).orderBy(F.col("finished_at").desc(), F.col(RUN_ID).desc()).first()
    return {**json.loads(row["summary"]), "config": json.loads(row["config"])}
