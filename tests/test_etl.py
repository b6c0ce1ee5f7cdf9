"""The log ETL: every quarantine rule, dedup, idempotent re-runs, late records, catalogs, GE gate."""

from __future__ import annotations

import json
import os

import pytest
from pyspark.sql import functions as F

from graphlake.core import lake, tables
from graphlake.etl import schema as S
from graphlake.etl.job import last_run, run_etl, validate_run
from graphlake.etl.transforms import EtlRules
from tests.conftest import assert_same_rows

LONG_ID = "u" * 129

# (line, expected reason or None); ts 1704103200000 = 2024-01-01T10:00:00Z
DAY1 = [
    ('{"event_id":"e1","user_id":"u1","item_id":"i1","event_type":"click","ts":"2024-01-01T10:00:00Z","session_id":"s1"}', None),
    ('{"event_id":"e2","user_id":"u1","item_id":"i1","event_type":"CART","ts":1704103260000,"price":"9.5"}', None),
    ('{"event_id":"e3","user_id":42,"item_id":"i2","event_type":"purchase","ts":"2024-01-01 11:00:00","query":"red shoes","price":12.0}', None),
    ('{"event_id":"e1","user_id":"u1","item_id":"i1","event_type":"click","ts":"2024-01-01T10:00:00Z","session_id":"s1"}', "duplicate"),
    ('{"event_id":"e4","user_id":"u2","item_id":"i1","event_type":"cl', S.R_INVALID_JSON),
    ('[1, 2, 3]', S.R_INVALID_JSON),
    ('{"user_id":"u2","item_id":"i1","event_type":"click","ts":"2024-01-01T10:00:00Z"}', "missing_field:event_id"),
    ('{"event_id":"e5","item_id":"i1","event_type":"click","ts":"2024-01-01T10:00:00Z"}', "missing_field:user_id"),
    ('{"event_id":"e6","user_id":"u2","event_type":"click","ts":"2024-01-01T10:00:00Z"}', "missing_field:item_id"),
    ('{"event_id":"e7","user_id":"u2","item_id":"i1","ts":"2024-01-01T10:00:00Z"}', "missing_field:event_type"),
    ('{"event_id":"e8","user_id":"u2","item_id":"i1","event_type":"click"}', "missing_field:ts"),
    ('{"event_id":"e9","user_id":null,"item_id":"i1","event_type":"click","ts":"2024-01-01T10:00:00Z"}', "missing_field:user_id"),
    ('{"event_id":"e10","user_id":{"id":1},"item_id":"i1","event_type":"click","ts":"2024-01-01T10:00:00Z"}', "bad_type:user_id"),
    ('{"event_id":"e11","user_id":"u2","item_id":"i1","event_type":"click","ts":"2024-01-01T10:00:00Z","price":"abc"}', "bad_type:price"),
    ('{"event_id":"e12","user_id":"","item_id":"i1","event_type":"click","ts":"2024-01-01T10:00:00Z"}', "empty_id:user_id"),
    (json.dumps({"event_id": "e13", "user_id": LONG_ID, "item_id": "i1", "event_type": "click", "ts": "2024-01-01T10:00:00Z"}), "id_too_long:user_id"),
    ('{"event_id":"e14","user_id":"u2","item_id":"i1","event_type":"teleport","ts":"2024-01-01T10:00:00Z"}', S.R_UNKNOWN_EVENT_TYPE),
    ('{"event_id":"e15","user_id":"u2","item_id":"i1","event_type":"click","ts":"yesterday at noon"}', S.R_BAD_TIMESTAMP),
    ('{"event_id":"e16","user_id":"u2","item_id":"i1","event_type":"click","ts":0}', S.R_TS_OUT_OF_RANGE),
    ('{"event_id":"e17","user_id":"u2","item_id":"i1","event_type":"click","ts":"2100-06-01T00:00:00Z"}', S.R_TS_OUT_OF_RANGE),
    ('{"event_id":"e18","user_id":"u2","item_id":"i1","event_type":"click","ts":"2024-01-03T10:00:00Z"}', S.R_TS_OUT_OF_RANGE),
    ('{"event_id":"e19","user_id":"u2","item_id":"i1","event_type":"purchase","ts":"2024-01-01T10:00:00Z","price":-1}', S.R_NEGATIVE_PRICE),
]
BOT_LINES = [
    (json.dumps({"event_id": f"b{i}", "user_id": "bot1", "item_id": "i1", "event_type": "click",
                 "ts": 1704103200000 + i}), S.R_BOT)
    for i in range(6)
]
DAY2 = [
    ('{"event_id":"e20","user_id":"u1","item_id":"i2","event_type":"fav","ts":"2024-01-02T08:00:00Z"}', None),
    # a late record: arrives in the 2024-01-02 folder, belongs to 2024-01-01
    ('{"event_id":"e21","user_id":"u3","item_id":"i2","event_type":"view","ts":"2023-12-31T23:59:00Z"}', None),
]
RULES = EtlRules(bot_max_events_per_day=5)


def _write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    _write(str(root / "events" / "dt=2024-01-01" / "part-0.jsonl"), [line for line, _ in DAY1 + BOT_LINES])
    _write(str(root / "events" / "dt=2024-01-02" / "part-0.jsonl"), [line for line, _ in DAY2])
    _write(str(root / "items" / "a.jsonl"), [
        '{"item_id":"i1","title":"  Red   shoe ","category":"Fashion > Shoes>>Sneakers","brand":"acme","shop_id":7,"price":10.0,"image_vec":[0.1,0.2]}',
        '{"item_id":"i2","title":"Old title","category":"Home","price":5}',
        '{"title":"no id"}',
        '{"item_id":"i3","price":"cheap"}',
    ])
    _write(str(root / "items" / "b.jsonl"), [
        '{"item_id":"i2","title":"New title","category":"Home>Kitchen","price":6}',
        'not json',
    ])
    _write(str(root / "users" / "a.jsonl"), [
        '{"user_id":"u1","age":30,"gender":"female","region":"north","signup_ts":"2023-01-01T00:00:00Z","follows":["u2"," u3 "]}',
        '{"user_id":"u2","age":"old"}',
        '{"user_id":"u3","age":200}',
        '{"user_id":"u4","gender":"x"}',
    ])
    return str(root)


def _quarantine(spark, lake_dir):
    return lake.read_table(spark, tables.table_path(lake_dir, tables.QUARANTINE_EVENTS))


def _events(spark, lake_dir):
    return lake.read_table(spark, tables.table_path(lake_dir, tables.CLEAN_EVENTS))


def test_every_quarantine_reason_is_exact(spark, raw, tmp_path):
    lake_dir = str(tmp_path / "lake")
    report = run_etl(spark, raw, lake_dir, dates=["2024-01-01"], rules=RULES)
    # the key of a record whose JSON is broken is unknown
    expected = sorted((json.loads(line).get("event_id", "") if r != S.R_INVALID_JSON else "", r)
                      for line, r in DAY1 + BOT_LINES if r not in (None, "duplicate"))
    got = sorted((r[S.RECORD_KEY] or "", r[S.REASON]) for r in _quarantine(spark, lake_dir).collect())
    assert got == expected
    ev = report["events"]
    assert ev["input"] == len(DAY1) + len(BOT_LINES)
    assert ev["duplicates"] == 1
    assert ev["clean"] == 3
    assert ev["clean"] + ev["quarantined"] + ev["duplicates"] == ev["input"]
    assert ev["reasons"][S.R_BOT] == 6
    assert report["validation"]["success"]


def test_clean_events_are_typed_and_normalised(spark, raw, tmp_path):
    lake_dir = str(tmp_path / "lake")
    run_etl(spark, raw, lake_dir, dates=["2024-01-01"], rules=RULES, validate=False)
    rows = {r[S.EVENT_ID]: r for r in _events(spark, lake_dir).collect()}
    assert sorted(rows) == ["e1", "e2", "e3"]
    assert rows["e2"][S.EVENT_TYPE] == "cart" and rows["e2"][S.PRICE] == 9.5
    assert rows["e3"][S.USER_ID] == "42" and rows["e3"][S.QUERY] == "red shoes"
    assert rows["e2"][S.TS].isoformat() == "2024-01-01T10:01:00"  # epoch millis, UTC session
    assert {r[S.DT] for r in rows.values()} == {"2024-01-01"}
    assert {r[S.SOURCE_DT] for r in rows.values()} == {"2024-01-01"}


def test_rerun_of_a_date_is_idempotent_and_late_records_keep_their_day(spark, raw, tmp_path):
    lake_dir = str(tmp_path / "lake")
    run_etl(spark, raw, lake_dir, rules=RULES, validate=False)
    first = _events(spark, lake_dir)
    first_rows = first.collect()
    late = [r for r in first_rows if r[S.EVENT_ID] == "e21"][0]
    assert late[S.DT] == "2023-12-31" and late[S.SOURCE_DT] == "2024-01-02"
    first_q = _quarantine(spark, lake_dir).collect()
    report = run_etl(spark, raw, lake_dir, dates=["2024-01-02"], rules=RULES, validate=False)
    assert report["events"]["partitions_rewritten"] == ["2023-12-31", "2024-01-02"]
    assert_same_rows(_events(spark, lake_dir), spark.createDataFrame(first_rows, first.schema))
    assert sorted(map(tuple, _quarantine(spark, lake_dir).collect())) == sorted(map(tuple, first_q))
    run_etl(spark, raw, lake_dir, dates=["2024-01-01"], rules=RULES, validate=False)
    assert_same_rows(_events(spark, lake_dir), spark.createDataFrame(first_rows, first.schema))


def test_duplicate_of_an_already_stored_event_is_counted_not_stored(spark, raw, tmp_path):
    lake_dir = str(tmp_path / "lake")
    run_etl(spark, raw, lake_dir, dates=["2024-01-01"], rules=RULES, validate=False)
    # the same e1 event arrives again in the next day's folder
    _write(os.path.join(raw, "events", "dt=2024-01-02", "part-1.jsonl"), [DAY1[0][0]])
    report = run_etl(spark, raw, lake_dir, dates=["2024-01-02"], rules=RULES, validate=False)
    assert report["events"]["duplicates"] == 1
    assert _events(spark, lake_dir).filter(F.col(S.EVENT_ID) == "e1").count() == 1


def test_items_latest_record_wins_and_bad_ones_are_quarantined(spark, raw, tmp_path):
    lake_dir = str(tmp_path / "lake")
    report = run_etl(spark, raw, lake_dir, dates=["2024-01-01"], rules=RULES, validate=False)
    items = {r[S.ITEM_ID]: r for r in lake.read_table(spark, tables.table_path(lake_dir, tables.CLEAN_ITEMS)).collect()}
    assert sorted(items) == ["i1", "i2"]
    assert items["i2"][S.TITLE] == "New title" and items["i2"][S.CATEGORY] == "Home>Kitchen"
    assert items["i1"][S.TITLE] == "Red shoe" and items["i1"][S.CATEGORY] == "Fashion>Shoes>Sneakers"
    assert items["i1"][S.SHOP_ID] == "7" and items["i1"][S.IMAGE_VEC] == pytest.approx([0.1, 0.2])
    q = lake.read_table(spark, tables.table_path(lake_dir, tables.QUARANTINE_ITEMS))
    assert sorted((r[S.RECORD_KEY] or "", r[S.REASON]) for r in q.collect()) == sorted(
        [("", "missing_field:item_id"), ("i3", "bad_type:price"), ("", S.R_INVALID_JSON)]
    )
    assert report["items"] | {"reasons": None} == report["items"] | {
        "input": 6, "clean": 2, "quarantined": 3, "superseded": 1, "reasons": None}


def test_users_are_normalised_and_bad_values_quarantined(spark, raw, tmp_path):
    lake_dir = str(tmp_path / "lake")
    run_etl(spark, raw, lake_dir, dates=["2024-01-01"], rules=RULES, validate=False)
    users = {r[S.USER_ID]: r for r in lake.read_table(spark, tables.table_path(lake_dir, tables.CLEAN_USERS)).collect()}
    assert sorted(users) == ["u1", "u4"]
    assert users["u1"][S.GENDER] == "F" and users["u1"][S.FOLLOWS] == ["u2", "u3"]
    assert users["u4"][S.GENDER] == "U" and users["u4"][S.AGE] is None
    q = lake.read_table(spark, tables.table_path(lake_dir, tables.QUARANTINE_USERS))
    assert sorted((r[S.RECORD_KEY], r[S.REASON]) for r in q.collect()) == [("u2", "bad_type:age"), ("u3", "bad_type:age")]


def test_failed_gate_restores_tables_and_explains(spark, raw, tmp_path):
    lake_dir = str(tmp_path / "lake")
    run_etl(spark, raw, lake_dir, dates=["2024-01-01"], rules=RULES)
    version = lake.table_version(tables.table_path(lake_dir, tables.CLEAN_EVENTS))
    # a narrower rule at validation time than at cleaning time makes the suite fail
    strict = EtlRules(bot_max_events_per_day=5, max_id_length=1)
    report = last_run(spark, lake_dir)
    with pytest.raises(Exception, match=r"expect_column_value_lengths_to_be_between"):
        validate_run(spark, lake_dir, report, strict)
    assert os.path.exists(os.path.join(lake_dir, tables.DATA_DOCS_DIR, "index.html"))
    assert lake.table_version(tables.table_path(lake_dir, tables.CLEAN_EVENTS)) == version


def test_bad_arguments_name_what_was_wrong(spark, raw, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dates: no raw folder for \['2024-02-01'\]"):
        run_etl(spark, raw, str(tmp_path / "lake"), dates=["2024-02-01"])
    with pytest.raises(ValueError, match=r"dates: expected YYYY-MM-DD strings, got \['Jan 1'\]"):
        run_etl(spark, raw, str(tmp_path / "lake"), dates=["Jan 1"])
    with pytest.raises(FileNotFoundError, match=r"raw: expected folder"):
        run_etl(spark, str(tmp_path / "nothing"), str(tmp_path / "lake"))
    with pytest.raises(ValueError, match=r"min_ts/max_ts: expected min_ts < max_ts"):
        EtlRules(min_ts="2030-01-01T00:00:00Z", max_ts="2020-01-01T00:00:00Z")
    with pytest.raises(ValueError, match=r"bot_max_events_per_day: expected a non-negative int, got -1"):
        EtlRules(bot_max_events_per_day=-1)


def test_gzip_input_is_read(spark, raw, tmp_path):
    import gzip

    folder = os.path.join(raw, "events", "dt=2024-01-02")
    with gzip.open(os.path.join(folder, "part-9.jsonl.gz"), "wt") as fh:
        fh.write('{"event_id":"g1","user_id":"u9","item_id":"i9","event_type":"click","ts":"2024-01-02T01:00:00Z"}\n')
    lake_dir = str(tmp_path / "lake")
    run_etl(spark, raw, lake_dir, dates=["2024-01-02"], rules=RULES, validate=False)
    assert _events(spark, lake_dir).filter(F.col(S.EVENT_ID) == "g1").count() == 1
