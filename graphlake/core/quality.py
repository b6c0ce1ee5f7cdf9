"""Great Expectations gates shared by every stage.

A stage describes its suites as :class:`Suite` objects (a name and a list of GE expectations);
:func:`run_suites` validates Spark DataFrames against them with an ephemeral GE context, writes
Data Docs HTML under ``<lake>/_reports/data_docs`` and returns a readable summary.

Example:
    >>> import great_expectations as gx
    >>> suite = Suite("etl.clean_events", (gx.expectations.ExpectColumnValuesToNotBeNull(column="event_id"),))
    >>> summary = run_suites([(suite, events_df)], lake="./lakehouse")
    >>> summary["success"]
    True
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass

from graphlake.core import tables

log = logging.getLogger(__name__)
DOCS_SITE = "graphlake_docs"  # not "local_site": GE's default context has that one already


class QualityError(RuntimeError):
    """A Great Expectations suite failed; ``summary`` holds the readable results."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class Suite:
    """A named list of GE expectation objects for one table."""

    name: str
    expectations: tuple

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")
        if not isinstance(self.expectations, tuple) or not self.expectations:
            raise ValueError(f"expectations: expected a non-empty tuple, got {self.expectations!r}")


def docs_dir(lake: str) -> str:
    """Folder of the Data Docs site under the lake."""
    return os.path.join(os.path.abspath(lake), tables.DATA_DOCS_DIR)


def _describe(result) -> dict:
    cfg = result.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
    res = result.result or {}
    observed = {k: res[k] for k in ("observed_value", "unexpected_count", "unexpected_percent", "element_count")
                if k in res}
    partial = res.get("partial_unexpected_list")
    if partial:
        observed["examples"] = [str(x) for x in partial[:5]]
    if result.exception_info and result.exception_info.get("raised_exception"):
        observed["exception"] = str(result.exception_info.get("exception_message"))[:300]
    return {"expectation": cfg.type, "kwargs": kwargs, "success": bool(result.success), **observed}


def run_suites(batches, lake: str, build_docs: bool = True, raise_on_failure: bool = True) -> dict:
    """Validate DataFrames against suites; write Data Docs; summarise.

    Args:
        batches: sequence of ``(Suite, DataFrame)``: a Spark DataFrame, or a pandas DataFrame for
            small frames already on the driver (e.g. one row of metrics per table), which GE then
            validates without Spark jobs.
        lake: lake root; Data Docs go to ``<lake>/_reports/data_docs``.
        build_docs: write the Data Docs HTML.
        raise_on_failure: raise :class:`QualityError` when any expectation fails.

    Returns:
        ``{"success": bool, "suites": {name: {"success", "failed": [...], "results": [...]}}, "data_docs": path}``
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    batches = list(batches)
    if not batches:
        raise ValueError("batches: expected at least one (Suite, DataFrame) pair, got none")
    context = gx.get_context(mode="ephemeral")
    # no tqdm bar per suite ("Calculating Metrics"): the jobs print their own progress
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    site_dir = docs_dir(lake)
    if build_docs:
        os.makedirs(site_dir, exist_ok=True)
        context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": site_dir},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    sources: dict = {}
    summary: dict = {"success": True, "suites": {}, "data_docs": os.path.join(site_dir, "index.html") if build_docs else None}
    for suite_def, df in batches:
        if not isinstance(suite_def, Suite):
            raise TypeError(f"batches: expected (Suite, DataFrame) pairs, got {type(suite_def).__name__}")
        asset = _source(context, sources, df).add_dataframe_asset(name=suite_def.name)
        batch_def = asset.add_batch_definition_whole_dataframe(f"{suite_def.name}.all")
        suite = context.suites.add(gx.ExpectationSuite(name=suite_def.name))
        for expectation in suite_def.expectations:
            suite.add_expectation(copy.deepcopy(expectation))
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite_def.name}.validation", data=batch_def, suite=suite)
        )
        actions = [UpdateDataDocsAction(name="docs", site_names=[DOCS_SITE])] if build_docs else []
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(name=f"{suite_def.name}.checkpoint", validation_definitions=[validation], actions=actions)
        )
        run = checkpoint.run(batch_parameters={"dataframe": df})
        results = [_describe(r) for vr in run.run_results.values() for r in vr.results]
        ok = bool(run.success)
        summary["suites"][suite_def.name] = {
            "success": ok,
            "evaluated": len(results),
            "failed": [r for r in results if not r["success"]],
        }
        summary["success"] = summary["success"] and ok
        log.info("GE suite %s: %s (%d expectations)", suite_def.name, "passed" if ok else "FAILED", len(results))
    if raise_on_failure and not summary["success"]:
        raise QualityError(format_failures(summary), summary)
    return summary


def _source(context, sources: dict, df):
    """The context's Spark or pandas data source for ``df`` (created on first use)."""
    import pandas as pd

    kind = "pandas" if isinstance(df, pd.DataFrame) else "spark"
    if kind not in sources:
        add = context.data_sources.add_pandas if kind == "pandas" else context.data_sources.add_spark
        sources[kind] = add(name="graphlake" if kind == "spark" else "graphlake_pandas")
    return sources[kind]


def format_failures(summary: dict) -> str:
    """A readable, multi-line account of the failed expectations of a summary."""
    lines = ["data quality gate failed:"]
    for name, suite in summary["suites"].items():
        for f in suite["failed"]:
            detail = {k: v for k, v in f.items() if k not in ("expectation", "kwargs", "success")}
            lines.append(f"  [{name}] {f['expectation']} {f['kwargs']} -> {detail}")
    if summary.get("data_docs"):
        lines.append(f"  Data Docs: {summary['data_docs']}")
    return "\n".join(lines)
