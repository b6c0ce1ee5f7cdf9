"""What an ETL run leaves for the graph build: :class:`EtlRun`, the typed form of a ``meta/etl_runs`` row.

An ETL run commits new versions of the clean tables (``clean/events``, ``clean/items``,
``clean/users``) and their quarantines, then records its report in ``meta/etl_runs``. The
graph build reads the clean tables at their current versions; validation, the orchestrated
"ETL → validate" step and the report read a run through this record.

Example:
    >>> run = last_run(spark, "lakehouse")                  # graphlake.etl.job.last_run
    >>> run.run_id, run.dates, run.table_versions["clean/events"]
    ('5f0c…', ('2024-01-01',), 3)
"""

from __future__ import annotations

from dataclasses import dataclass

from graphlake.core import tables
from graphlake.etl import schema as S


@dataclass(frozen=True)
class Catalog:
    """A catalogue the ETL cleans beside the events: its raw folder's name (``raw/<name>/``), its
    key column, and the clean and quarantine tables it commits."""

    name: str
    key: str
    clean: str
    quarantine: str


CATALOGS = (Catalog("items", S.ITEM_ID, tables.CLEAN_ITEMS, tables.QUARANTINE_ITEMS),
            Catalog("users", S.USER_ID, tables.CLEAN_USERS, tables.QUARANTINE_USERS))


@dataclass(frozen=True)
class EtlRun:
    """One recorded ETL run.

    Attributes:
        run_id: the run's id.
        dates: the ``YYYY-MM-DD`` event folders it (re)processed.
        raw, lake: the raw input root and the lake root it ran on (absolute).
        report: its JSON report, as :func:`graphlake.etl.job.run_etl` returned it (counts per
            table, quarantine reasons, table versions, validation).
    """

    run_id: str
    dates: tuple
    raw: str
    lake: str
    report: dict

    @classmethod
    def from_report(cls, report: dict) -> EtlRun:
        """The record of a run's report (``ValueError`` naming a missing key)."""
        if not isinstance(report, dict):
            raise TypeError(f"report: expected an ETL run report (dict), got {type(report).__name__}")
        missing = [k for k in ("run_id", "dates", "raw", "lake", "events", "quarantine_version") if k not in report]
        if missing or "table_version" not in (report.get("events") or {}):
            raise ValueError(f"report: not an ETL run report, missing {missing or ['events.table_version']}")
        return cls(report["run_id"], tuple(report["dates"]), report["raw"], report["lake"], report)

    @property
    def table_versions(self) -> dict[str, int]:
        """``{table name: Delta version}`` of every table the run committed or left current
        (``clean/events``, ``quarantine/events``, and the catalogue tables when it had their files)."""
        out = {tables.CLEAN_EVENTS: self.report["events"]["table_version"],
               tables.QUARANTINE_EVENTS: self.report["quarantine_version"]}
        for catalog in CATALOGS:
            part = self.report.get(catalog.name) or {}
            if "table_version" in part:
                out[catalog.clean], out[catalog.quarantine] = part["table_version"], part["quarantine_version"]
        return out

    def covers(self, date: str) -> bool:
        """Whether the run processed the event folder ``date``."""
        return date in self.dates
