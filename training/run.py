"""What a training run leaves for the next stages: :class:`TrainRun`, the one owner of its folder's names.

A run lives in ``<lake>/_runs/train/<run_id>/``:

- ``run.json`` — the driver's spec (graph version, snapshot path, config, warm start), written first;
- ``DONE`` — the ranks' summary, written by rank 0 last: a run without it did not finish;
- ``metrics.jsonl`` — one record per step / validation;
- ``embeddings/<node type>.npy`` — float32 ``(num_nodes, dim)``, row = node id;
- ``evaluation.json`` — the newest ``graphlake evaluate`` of the run;
- ``checkpoints/`` (:mod:`graphlake.training.checkpoint`), ``ranks/`` (:mod:`graphlake.training.worker`).

Evaluation, publishing, embed-new and the report read a run through this record only. It
imports no torch and no Spark.

Example:
    >>> run = TrainRun.of("lakehouse", "g0-1a2b3c4d-20260101T000000")
    >>> run.is_done(), run.embedded_types()
    (True, ['item', 'user'])
    >>> vectors = np.load(run.embeddings_path("item"), mmap_mode="r")
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from graphlake.core import tables
from graphlake.core.errors import InputNotFoundError

RUN_FILE = "run.json"
DONE_FILE = "DONE"
METRICS_FILE = "metrics.jsonl"
EVALUATION_FILE = "evaluation.json"
EMBEDDINGS_DIR = "embeddings"
RUNS_SUBDIR = "train"  # under <lake>/<tables.RUNS_DIR>


@dataclass(frozen=True)
class TrainRun:
    """A training run's folder and the names in it.

    Attributes:
        dir: the run folder (absolute).
    """

    dir: str

    def __post_init__(self):
        if not isinstance(self.dir, str) or not self.dir:
            raise TypeError(f"dir: expected a run folder path, got {self.dir!r}")
        object.__setattr__(self, "dir", os.path.abspath(self.dir))

    @classmethod
    def of(cls, lake_dir: str, run_id: str) -> TrainRun:
        """The run ``run_id`` of the lake at ``lake_dir`` (it need not exist yet)."""
        if not isinstance(run_id, str) or not run_id or os.sep in run_id or run_id in (".", ".."):
            raise ValueError(f"run_id: expected a run id (a folder name), got {run_id!r}")
        return cls(os.path.join(os.path.abspath(lake_dir), tables.RUNS_DIR, RUNS_SUBDIR, run_id))

    @property
    def run_id(self) -> str:
        return os.path.basename(self.dir)

    @property
    def spec_path(self) -> str:
        return os.path.join(self.dir, RUN_FILE)

    @property
    def done_path(self) -> str:
        return os.path.join(self.dir, DONE_FILE)

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.dir, METRICS_FILE)

    @property
    def evaluation_path(self) -> str:
        return os.path.join(self.dir, EVALUATION_FILE)

    @property
    def embeddings_dir(self) -> str:
        return os.path.join(self.dir, EMBEDDINGS_DIR)

    def embeddings_path(self, node_type: str) -> str:
        """``embeddings/<node_type>.npy``."""
        return os.path.join(self.embeddings_dir, f"{node_type}.npy")

    def exists(self) -> bool:
        """The driver wrote the run's spec."""
        return os.path.isfile(self.spec_path)

    def is_done(self) -> bool:
        """Rank 0 wrote ``DONE``: the run finished and its embeddings are complete."""
        return os.path.isfile(self.done_path)

    def spec(self) -> dict:
        """``run.json``.

        Raises:
            InputNotFoundError: no such run (names the runs folder and its newest runs).
        """
        if not self.exists():
            runs = os.path.dirname(self.dir)
            known = sorted(n for n in os.listdir(runs) if os.path.isfile(os.path.join(runs, n, RUN_FILE))) \
                if os.path.isdir(runs) else []
            raise InputNotFoundError(f"run_id: no training run {self.run_id!r} in {runs} "
                                     f"(no {RUN_FILE} there; runs there: {known[-5:] if known else 'none'})")
        with open(self.spec_path) as f:
            return json.load(f)

    def done(self) -> dict:
        """The ranks' summary in ``DONE`` (steps, world size, device, validation).

        Raises:
            InputNotFoundError: the run has not finished.
        """
        if not self.is_done():
            raise InputNotFoundError(f"run_id: training run {self.run_id} did not finish (no {DONE_FILE} in "
                                     f"{self.dir}); finish it with `graphlake train --resume --run-id ...` first")
        with open(self.done_path) as f:
            return json.load(f)

    def embedded_types(self) -> list[str]:
        """The node types with an ``embeddings/<type>.npy`` (sorted; ``[]`` before the ranks wrote any)."""
        if not os.path.isdir(self.embeddings_dir):
            return []
        return sorted(n[:-4] for n in os.listdir(self.embeddings_dir) if n.endswith(".npy"))

    def evaluation(self) -> dict | None:
        """``evaluation.json`` (``None`` when the run was never evaluated)."""
        if not os.path.isfile(self.evaluation_path):
            return None
        with open(self.evaluation_path) as f:
            return json.load(f)

    def history(self) -> list[dict]:
        """The records of ``metrics.jsonl`` (``[]`` when the run wrote none)."""
        if not os.path.isfile(self.metrics_path):
            return []
        with open(self.metrics_path) as f:
            return [json.loads(line) for line in f if line.strip()]

