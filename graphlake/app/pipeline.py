"""The pipeline's steps for an orchestrator: :func:`run_step` and the ``spark-submit`` entry point.

The steps themselves (name, typed parameters, run function) are declared once in
:mod:`graphlake.app.steps`; this module runs them. Each step takes its parameters (paths, a logical
date, ids from the step before), runs one job on the lake, and returns a small JSON-able dict (an
Airflow XCom).

The same steps run in-process (``run_step``: a Spark session in the task's process) or under
``spark-submit graphlake/app/pipeline.py <step> --lake ... [--key value ...]`` on a cluster, where
the step's JSON result is the last line of stdout. The ``--key value`` options are generated from
the step's params dataclass (``--graph-version 3``, ``--assets '{"item_embeddings": 2}'``,
``--config null``; ``pipeline.py <step> --help`` lists them); a bad value exits 2 with one line on
stderr, like the ``graphlake`` CLI (:func:`graphlake.app.cli.report_failure`).

Example:
    >>> run_step("etl", lake="lakehouse", raw="raw", ds="2024-01-02")
    {'run_id': '…', 'dates': ['2024-01-02'], 'clean': 10234, 'quarantined': 41, ...}
    >>> run_step("train", lake="lakehouse", graph_version=3, mode="incremental", device="cuda")
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from graphlake.app.stepkit import add_argv_options, from_namespace
from graphlake.app.steps import STEPS
from graphlake.core.errors import UsageError

__all__ = ["STEPS", "build_parser", "main", "run_step"]


def run_step(step: str, **kwargs) -> dict:
    """Run pipeline step ``step`` with ``kwargs`` (the fields of its params dataclass in
    :mod:`graphlake.app.steps`); returns its JSON-able result.

    Raises:
        UsageError: an unknown step, an unknown or missing parameter, a value of the wrong type.
    """
    if step not in STEPS:
        raise UsageError(f"step: expected one of {sorted(STEPS)}, got {step!r}")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    spec = STEPS[step]
    result = spec.run(spec.make(**kwargs))
    return json.loads(json.dumps(result, default=str))


def build_parser() -> argparse.ArgumentParser:
    """``<step> --key value ...``: one sub-command per step, its options from its params dataclass."""
    parser = argparse.ArgumentParser(prog="graphlake.app.pipeline", description="one step of the graphlake pipeline")
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for step in STEPS.values():
        add_argv_options(sub.add_parser(step.name, help=step.help, description=step.help), step)
    return parser


def main(argv=None) -> int:
    """``spark-submit graphlake/app/pipeline.py <step> --lake L [--key value ...]``; prints the
    step's result as one JSON line; returns the exit code (0, 1 a job failed, 2 the input, 3 a bug)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)  # an unknown option or a missing value exits 2 here
    logging.basicConfig(level=os.environ.get("GRAPHLAKE_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        step = STEPS[args.step]
        result = json.loads(json.dumps(step.run(from_namespace(step, args)), default=str))
    except Exception as exc:  # the CLI's exit codes and one-line errors (graphlake.core.errors)
        from graphlake.app.cli import report_failure

        return report_failure(f"pipeline {args.step}", getattr(args, "lake", None), argv, exc)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":  # spark-submit runs this file: its folder must not shadow top-level modules
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
    sys.exit(main())
