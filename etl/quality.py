"""Great Expectations suites of the ETL's clean tables.

Example:
    >>> suites = etl_suites(report, rules)          # [(Suite, DataFrame)] after binding data
"""

from __future__ import annotations

from datetime import datetime, timezone

import great_expectations as gx

from graphlake.core.quality import Suite
from graphlake.etl import schema as S
from graphlake.etl.transforms import EtlRules

E = gx.expectations


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).replace(tzinfo=None)


def clean_events_suite(expected_rows: int, rules: EtlRules) -> Suite:
    """Suite of the rewritten partitions of ``clean/events``."""
    return Suite(
        "etl.clean_events",
        tuple(E.ExpectColumnValuesToNotBeNull(column=c) for c in (S.EVENT_ID, S.USER_ID, S.ITEM_ID, S.EVENT_TYPE, S.TS, S.DT))
        + (
            E.ExpectColumnValuesToBeInSet(column=S.EVENT_TYPE, value_set=list(S.EVENT_TYPES)),
            E.ExpectColumnValuesToBeBetween(column=S.TS, min_value=_utc(rules.min_ts), max_value=_utc(rules.max_ts)),
            E.ExpectColumnValuesToBeUnique(column=S.EVENT_ID),
            E.ExpectColumnValueLengthsToBeBetween(column=S.USER_ID, min_value=1, max_value=rules.max_id_length),
            E.ExpectColumnValueLengthsToBeBetween(column=S.ITEM_ID, min_value=1, max_value=rules.max_id_length),
            E.ExpectTableRowCountToEqual(value=int(expected_rows)),
        ),
    )


def quarantine_suite(expected_rows: int) -> Suite:
    """Suite of the run's ``quarantine/events`` partitions: every row has its reason."""
    return Suite(
        "etl.quarantine_events",
        (
            E.ExpectColumnValuesToNotBeNull(column=S.REASON),
            E.ExpectColumnValuesToNotBeNull(column=S.STAGE),
            E.ExpectColumnValuesToBeInSet(column=S.STAGE, value_set=["events"]),
            E.ExpectTableRowCountToEqual(value=int(expected_rows)),
        ),
    )


def catalog_suite(name: str, key: str, expected_rows: int) -> Suite:
    """Suite of ``clean/items`` or ``clean/users``: one non-null row per key."""
    return Suite(
        f"etl.clean_{name}",
        (
            E.ExpectColumnValuesToNotBeNull(column=key),
            E.ExpectColumnValuesToBeUnique(column=key),
            E.ExpectTableRowCountToEqual(value=int(expected_rows)),
        ),
    )
