"""ETL job entry point: raw logs -> clean Delta tables + quarantine, gated by GE.

``run_etl`` reads, calls the pure transforms of :mod:`graphlake.etl.transforms`, writes through the lake
layer, validates the committed versions and reports counts. Re-running a date replaces what
that date's folder produced and nothing else, late records included: clean events carry the
folder they arrived in (``source_dt``), and the partitions they landed in are rewritten with the
other folders' rows kept. If a suite fails, every table is restored to its version before the
run and the job fails with a readable summary (Data Docs under ``<lake>/_reports/data_docs``).

Example:
    >>> report = run_etl(spark, "raw", "lakehouse", dates=["2024-01-01"])
    >>> report["events"]["input"] == sum(report["events"][k] for k in ("clean", "quarantined", "duplicates"))
    True
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import uuid
from datetime import datetime, timezone

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from graphlake.core import lake, tables
from graphlake.core.errors import InputNotFoundError, UsageError
from graphlake.core.quality import QualityError, run_suites
from graphlake.etl import quality as Q
from graphlake.etl import schema as S
from graphlake.etl import transforms as X
from graphlake.etl.run import CATALOGS, EtlRun

log = logging.getLogger(__name__)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RAW_GLOB = "*.jsonl*"
# what parses each catalogue of etl.run.CATALOGS: its parser and clean schema
_CATALOG_PARSERS = {"items": (X.parse_items, S.CLEAN_ITEMS_SCHEMA), "users": (X.parse_users, S.CLEAN_USERS_SCHEMA)}


class EtlError(RuntimeError):
    """The ETL failed; tables are unchanged (restored when it failed after committing)."""


def available_dates(raw_dir: str) -> list[str]:
    """Dates of the ``raw/events/dt=YYYY-MM-DD`` folders, sorted."""
    root = os.path.join(raw_dir, S.RAW_EVENTS_DIR)
    if not os.path.isdir(root):
        raise InputNotFoundError(f"raw: expected folder {root!r} with dt=YYYY-MM-DD subfolders; it does not exist")
    found = []
    for name in os.listdir(root):
        if name.startswith("dt=") and _DATE_RE.match(name[3:]):
            found.append(name[3:])
    return sorted(found)


def _check_dates(raw_dir: str, dates) -> list[str]:
    have = available_dates(raw_dir)
    if dates is None:
        if not have:
            raise InputNotFoundError(f"raw: no dt=YYYY-MM-DD folders under {os.path.join(raw_dir, S.RAW_EVENTS_DIR)!r}")
        return have
    if isinstance(dates, str):
        dates = [dates]
    bad = [d for d in dates if not isinstance(d, str) or not _DATE_RE.match(d)]
    if bad:
        raise UsageError(f"dates: expected YYYY-MM-DD strings, got {bad}")
    missing = [d for d in dates if d not in have]
    if missing:
        raise InputNotFoundError(f"dates: no raw folder for {missing} (available: {have[:10]}{'...' if len(have) > 10 else ''})")
    return sorted(set(dates))


def read_raw_lines(spark, paths: list[str]) -> DataFrame:
    """Raw ``*.jsonl[.gz]`` lines of files or folders, with ``source_file`` and the split's ``_block_start``."""
    return spark.read.option("pathGlobFilter", _RAW_GLOB).text(paths).select(
        F.col("value"),
        F.col("_metadata.file_path").alias(S.SOURCE_FILE),
        F.col("_metadata.file_block_start").alias("_block_start"),
    )


def _events_input(spark, raw_dir: str, dates: list[str]) -> DataFrame:
    paths = []
    for d in dates:
        folder = os.path.join(raw_dir, S.RAW_EVENTS_DIR, f"dt={d}")
        if glob.glob(os.path.join(folder, _RAW_GLOB)):
            paths.append(folder)
    if not paths:
        return spark.createDataFrame([], f"value string, {S.SOURCE_FILE} string, {S.DT} string")
    raw = read_raw_lines(spark, paths).drop("_block_start")
    return raw.withColumn(S.DT, X.folder_date(F.col(S.SOURCE_FILE)))


def _reason_counts(df: DataFrame) -> dict[str, int]:
    return {r[S.REASON]: int(r["count"]) for r in df.groupBy(S.REASON).count().collect()}


def run_etl(spark, raw_dir: str, lake_dir: str, dates=None, rules: X.EtlRules | None = None,
            validate: bool = True) -> dict:
    """Run the ETL for ``dates`` (default: every date folder) and return the JSON-able report.

    Args:
        spark: SparkSession.
        raw_dir: root of the raw input contract (``events/``, ``items/``, ``users/``).
        lake_dir: lake root.
        dates: ``YYYY-MM-DD`` strings of the event folders to (re)process.
        rules: validation rules (:class:`graphlake.etl.transforms.EtlRules`).
        validate: run the GE suites on the committed versions.

    Raises:
        FileNotFoundError / ValueError: bad ``raw_dir`` or ``dates``.
        EtlError: a data quality gate failed (tables restored).
    """
    rules = rules or X.EtlRules()
    if not isinstance(rules, X.EtlRules):
        raise TypeError(f"rules: expected EtlRules, got {type(rules).__name__}")
    dates = _check_dates(raw_dir, dates)
    run_id = uuid.uuid4().hex[:16]
    started = datetime.now(timezone.utc)
    events_path = tables.table_path(lake_dir, tables.CLEAN_EVENTS)
    quarantine_path = tables.table_path(lake_dir, tables.QUARANTINE_EVENTS)
    before = {p: lake.table_version(p) for p in (events_path, quarantine_path,
                                                 tables.table_path(lake_dir, tables.CLEAN_ITEMS),
                                                 tables.table_path(lake_dir, tables.CLEAN_USERS),
                                                 tables.table_path(lake_dir, tables.QUARANTINE_ITEMS),
                                                 tables.table_path(lake_dir, tables.QUARANTINE_USERS))}
    report = {"run_id": run_id, "dates": dates, "raw": os.path.abspath(raw_dir), "lake": os.path.abspath(lake_dir),
              "before": before}

    parsed = X.mark_bots(X.parse_events(_events_input(spark, raw_dir, dates), rules), rules)
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
    persisted = [parsed]
    try:
        reasons = _reason_counts(parsed)
        valid = parsed.filter(F.col(S.REASON).isNull())
        rejected = parsed.filter(F.col(S.REASON).isNotNull())
        new_dts = {d for d, in valid.select(S.DT).distinct().collect()}

        read_version = before[events_path]
        existing = kept = None
        affected = set(new_dts)
        if read_version is not None:
            existing = lake.read_table(spark, events_path, version=read_version)
            affected |= {d for d, in existing.filter(F.col(S.SOURCE_DT).isin(dates)).select(S.DT).distinct().collect()}
            kept = existing.filter(F.col(S.DT).isin(sorted(affected)) & ~F.col(S.SOURCE_DT).isin(dates))
        first, _dups = X.drop_duplicate_events(valid, kept)
        clean_new = X.to_clean_events(first).persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(clean_new)
        final = clean_new if kept is None else kept.select(*clean_new.columns).unionByName(clean_new)
        final = final.select(*[F.col(f.name).cast(f.dataType) for f in S.CLEAN_EVENTS_SCHEMA.fields])
        n_dups = reasons.get(None, 0) - clean_new.count()  # valid = kept once + duplicates
        n_input = sum(reasons.values())
        n_quarantined = n_input - reasons.get(None, 0)
        report["events"] = {
            "input": n_input,
            "clean": reasons.get(None, 0) - n_dups,
            "quarantined": n_quarantined,
            "duplicates": n_dups,
            "reasons": {k: v for k, v in sorted(reasons.items(), key=lambda kv: str(kv[0])) if k is not None},
            "partitions_rewritten": sorted(affected),
        }
        if affected:
            w = lake.write_table(final, events_path, mode="overwrite", partition_by=[S.DT],
                                 replace_partitions={S.DT: sorted(affected)}, read_version=read_version,
                                 metadata={"graphlake.job": "etl", "graphlake.run_id": run_id})
        elif read_version is None:
            w = lake.write_table(final, events_path, mode="overwrite", partition_by=[S.DT],
                                 metadata={"graphlake.job": "etl", "graphlake.run_id": run_id})
        else:
            w = None
        report["events"]["table_version"] = w.version if w else read_version
        report["events"]["partition_rows"] = (w.rows_added if w else 0)

        q = X.to_quarantine(rejected, "events", S.EVENT_ID, X.SOURCE_DT)
        qw = lake.write_table(q, quarantine_path, mode="overwrite", partition_by=[S.DT],
                              replace_partitions={S.DT: dates} if before[quarantine_path] is not None else None,
                              metadata={"graphlake.job": "etl", "graphlake.run_id": run_id})
        report["quarantine_version"] = qw.version
    finally:
        for df in persisted:
            df.unpersist()

    for catalog in CATALOGS:
        report[catalog.name] = _run_catalog(spark, raw_dir, lake_dir, catalog, rules, started, run_id)

    report["seconds"] = round((datetime.now(timezone.utc) - started).total_seconds(), 2)
    if validate:
        report["validation"] = _gate(spark, lake_dir, report, rules)
    _record_run(spark, lake_dir, report)
    return report


def _gate(spark, lake_dir: str, report: dict, rules: X.EtlRules | None) -> dict:
    try:
        return validate_run(spark, lake_dir, EtlRun.from_report(report), rules)
    except QualityError as exc:
        restored = _restore(report["before"])
        raise EtlError(f"{exc}\nETL run {report['run_id']} rolled back: restored {restored}") from exc


def gate_run(spark, lake_dir: str, run_id: str, rules: X.EtlRules | None = None) -> dict:
    """Validate an ETL run that ran with ``validate=False`` (the orchestrated "ETL → validate"
    order); a failure restores the tables to their versions before that run.

    Args:
        run_id: the run's id (``meta/etl_runs``).
        rules: the rules the run used.

    Returns:
        The GE summary (``meta/etl_runs`` keeps one row per run: the run's own report).

    Raises:
        EtlError: a suite failed (tables restored), or a later write touched the run's tables (not
            restored automatically: the message names the versions).
    """
    run = get_run(spark, lake_dir, run_id)
    committed = run.table_versions[tables.CLEAN_EVENTS]
    now = lake.table_version(tables.table_path(lake_dir, tables.CLEAN_EVENTS))
    if now != committed:
        raise EtlError(f"run_id: {tables.CLEAN_EVENTS} is at version {now}, not the version "
                       f"{committed} ETL run {run_id} committed; validate the newer run")
    return _gate(spark, lake_dir, run.report, rules)


def _run_catalog(spark, raw_dir, lake_dir, catalog, rules, started, run_id):
    name, key, clean_table, q_table = catalog.name, catalog.key, catalog.clean, catalog.quarantine
    parser, clean_schema = _CATALOG_PARSERS[name]
    files = sorted(glob.glob(os.path.join(raw_dir, name, _RAW_GLOB)))
    if not files:
        return {"input": 0, "clean": 0, "quarantined": 0, "superseded": 0, "skipped": f"no {name} files"}
    raw = X.with_line_order(read_raw_lines(spark, files))
    parsed = parser(raw, rules).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        clean, rejected, superseded = X.latest_valid(parsed, key, clean_schema, F.lit(started))
        reasons = _reason_counts(parsed)
        n_superseded = superseded.count()
        meta = {"graphlake.job": "etl", "graphlake.run_id": run_id}
        cw = lake.write_table(clean, tables.table_path(lake_dir, clean_table), mode="overwrite", metadata=meta)
        q = X.to_quarantine(rejected, name, key, F.lit(started.strftime("%Y-%m-%d")))
        qw = lake.write_table(q, tables.table_path(lake_dir, q_table), mode="overwrite", metadata=meta)
    finally:
        parsed.unpersist()
    n_input = sum(reasons.values())
    return {
        "input": n_input,
        "clean": reasons.get(None, 0) - n_superseded,
        "quarantined": n_input - reasons.get(None, 0),
        "superseded": n_superseded,
        "reasons": {k: v for k, v in sorted(reasons.items(), key=lambda kv: str(kv[0])) if k is not None},
        "table_version": cw.version,
        "quarantine_version": qw.version,
    }


def validate_run(spark, lake_dir: str, run: EtlRun, rules: X.EtlRules | None = None, build_docs: bool = True) -> dict:
    """Run the ETL suites on the table versions run ``run`` committed (see :func:`run_etl`)."""
    if not isinstance(run, EtlRun):
        raise TypeError(f"run: expected an EtlRun (get_run / last_run), got {type(run).__name__}")
    rules = rules or X.EtlRules()
    report, versions = run.report, run.table_versions
    events = report["events"]
    batches = []
    if events.get("partitions_rewritten"):
        clean = lake.read_table(spark, tables.table_path(lake_dir, tables.CLEAN_EVENTS),
                                version=versions[tables.CLEAN_EVENTS])
        batches.append((Q.clean_events_suite(events["partition_rows"], rules),
                        clean.filter(F.col(S.DT).isin(events["partitions_rewritten"]))))
    quarantine = lake.read_table(spark, tables.table_path(lake_dir, tables.QUARANTINE_EVENTS),
                                 version=versions[tables.QUARANTINE_EVENTS])
    batches.append((Q.quarantine_suite(events["quarantined"]), quarantine.filter(F.col(S.DT).isin(report["dates"]))))
    for catalog in CATALOGS:
        if catalog.clean in versions:
            df = lake.read_table(spark, tables.table_path(lake_dir, catalog.clean), version=versions[catalog.clean])
            batches.append((Q.catalog_suite(catalog.name, catalog.key, report[catalog.name]["clean"]), df))
    return run_suites(batches, lake=lake_dir, build_docs=build_docs)


def _restore(before: dict) -> dict:
    restored = {}
    for path, version in before.items():
        now = lake.table_version(path)
        if now is None or now == version:
            continue
        if version is None:
            restored[path] = "created by this run; left in place (no earlier version to restore)"
        else:
            restored[path] = f"restored to version {version} as version {lake.restore(path, version)}"
    return restored


RUNS_SCHEMA = "run_id string, finished_at timestamp, dates array<string>, report string"


def _record_run(spark, lake_dir: str, report: dict) -> None:
    row = [(report["run_id"], datetime.now(timezone.utc), report["dates"], json.dumps(report, default=str))]
    lake.write_table(spark.createDataFrame(row, RUNS_SCHEMA), tables.table_path(lake_dir, tables.ETL_RUNS))


def _runs(spark, lake_dir: str):
    """``meta/etl_runs`` (``FileNotFoundError`` when no ETL run was recorded)."""
    path = tables.table_path(lake_dir, tables.ETL_RUNS)
    if not lake.table_exists(path):
        raise InputNotFoundError(f"lake: no ETL run recorded under {lake_dir!r} (run `graphlake etl` first)")
    return lake.read_table(spark, path)


def get_run(spark, lake_dir: str, run_id: str) -> EtlRun:
    """ETL run ``run_id`` (its newest row in ``meta/etl_runs``)."""
    if not isinstance(run_id, str) or not run_id:
        raise UsageError(f"run_id: expected an ETL run id, got {run_id!r}")
    found = [json.loads(r["report"]) for r in _runs(spark, lake_dir).filter(F.col("run_id") == run_id)
             .orderBy(F.col("finished_at").desc()).limit(1).collect()]
    if not found:
        raise UsageError(f"run_id: no ETL run {run_id!r} in {tables.ETL_RUNS}")
    return EtlRun.from_report(found[0])


def last_run(spark, lake_dir: str) -> EtlRun:
    """The latest ETL run recorded in ``meta/etl_runs``."""
    latest = _runs(spark, lake_dir).orderBy(F.col("finished_at").desc()).limit(1).collect()
    return EtlRun.from_report(json.loads(latest[0]["report"]))
