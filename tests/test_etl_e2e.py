"""The whole generate -> etl path through the CLI, and the gate's rollback inside a real run."""

from __future__ import annotations

import json

import great_expectations as gx
import pytest
from pyspark.sql import functions as F

from graphlake.app import cli
from graphlake.core import lake, tables
from graphlake.core.quality import Suite
from graphlake.etl import job as etl_job
from graphlake.etl import schema as S
from graphlake.etl.generator import GeneratorConfig, generate
from tests.conftest import assert_same_rows


@pytest.fixture(scope="module")
def generated(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    raw, lake_dir = str(root / "raw"), str(root / "lake")
    summary = generate(spark, raw, GeneratorConfig(users=400, items=300, days=2, seed=11, target_events=20000))
    return raw, lake_dir, summary


def test_generate_cli(tmp_path, capsys):
    out = str(tmp_path / "raw")
    assert cli.main(["generate", "--out", out, "--users", "60", "--items", "40", "--days", "1", "--seed", "3",
                     "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["users"] == 60 and summary["items"] == 40 and summary["events_total"] > 0
    assert list(summary["events_per_day"]) == ["2024-01-01"]


def test_generate_then_etl_accounts_for_every_record(spark, generated, capsys):
    raw, lake_dir, summary = generated
    capsys.readouterr()
    assert cli.main(["etl", "--raw", raw, "--lake", lake_dir, "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ev = report["events"]
    assert ev["input"] == summary["events_total"]
    assert ev["clean"] + ev["quarantined"] + ev["duplicates"] == ev["input"]
    # every kind of bad record the generator planted is quarantined with its own reason
    for reason, n in summary["bad_counts"].items():
        if reason in ("duplicate_event_id", "late_event"):
            continue
        assert ev["reasons"].get(reason) == n, (reason, n, ev["reasons"])
    q = lake.read_table(spark, tables.table_path(lake_dir, tables.QUARANTINE_EVENTS))
    # a re-sent copy of a bot's event is quarantined as bot_user (reasons come before dedup)
    bot_copies = (q.filter(F.col(S.REASON) == S.R_BOT).groupBy(S.RECORD_KEY).count()
                  .select(F.sum(F.col("count") - 1)).collect()[0][0]) or 0
    assert ev["duplicates"] + bot_copies == summary["duplicates"]
    bots = {r[S.RECORD_KEY] for r in q.filter(F.col(S.REASON) == S.R_BOT).select(S.RECORD_KEY).collect()}
    assert bots, "bot events must be quarantined"
    clean = lake.read_table(spark, tables.table_path(lake_dir, tables.CLEAN_EVENTS))
    assert clean.filter(F.col(S.USER_ID).isin(summary["bots"])).count() == 0
    assert clean.count() == ev["clean"]
    # late records keep their own day and remember their folder
    assert clean.filter(F.col(S.DT) < F.col(S.SOURCE_DT)).count() >= summary["late"] > 0
    assert report["validation"]["success"]


def test_validate_cli_and_history(spark, generated, capsys):
    raw, lake_dir, _ = generated
    if not lake.table_exists(tables.table_path(lake_dir, tables.CLEAN_EVENTS)):
        cli.main(["etl", "--raw", raw, "--lake", lake_dir, "--no-validate"])
    capsys.readouterr()
    assert cli.main(["validate", "--stage", "etl", "--lake", lake_dir, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["success"] and "etl.clean_events" in summary["suites"]
    assert cli.main(["lake", "history", "clean/events", "--lake", lake_dir, "--json"]) == 0
    history = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["history"]
    assert history[0]["graphlake.job"] == "etl"


def test_cli_bad_input_is_a_clear_error(generated, capsys):
    raw, lake_dir, _ = generated
    assert cli.main(["etl", "--raw", raw, "--lake", lake_dir, "--date", "1999-01-01"]) == 2
    assert "dates: no raw folder for ['1999-01-01']" in capsys.readouterr().err


def test_failing_gate_rolls_the_run_back(spark, generated, monkeypatch):
    raw, lake_dir, _ = generated
    path = tables.table_path(lake_dir, tables.CLEAN_EVENTS)
    etl_job.run_etl(spark, raw, lake_dir, validate=False)
    before_version = lake.table_version(path)
    before = lake.read_table(spark, path, version=before_version)

    def impossible(expected_rows, rules):
        return Suite("etl.clean_events", (gx.expectations.ExpectTableRowCountToEqual(value=expected_rows + 1),))

    monkeypatch.setattr(etl_job.Q, "clean_events_suite", impossible)
    with pytest.raises(etl_job.EtlError, match=r"(?s)expect_table_row_count_to_equal.*rolled back: restored"):
        etl_job.run_etl(spark, raw, lake_dir, dates=["2024-01-01"])
    assert lake.table_version(path) > before_version  # the restore is itself a commit
    assert_same_rows(lake.read_table(spark, path), before)
