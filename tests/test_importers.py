"""Importers of public datasets: tiny inline files per format (exact rows), errors, and the real
datasets in ../shared/datasets (counts from its README)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from graphlake.core import lake, tables
from graphlake.etl import importers as I
from graphlake.etl import schema as S
from tests.conftest import assert_same_rows

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DT = "2020-01-01"


def _write(folder: Path, files: dict[str, str | bytes]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(folder)


def _table(spark, lake_dir, name, drop_ingested=True):
    df = lake.read_table(spark, tables.table_path(str(lake_dir), name))
    return df.drop(S.INGESTED_AT) if drop_ingested and S.INGESTED_AT in df.columns else df


def _rows(spark, lake_dir, name, schema):
    """All rows of a table as a sorted list of tuples (timestamps as UTC strings, no ingested_at):
    comparing two such lists is an exact multiset comparison, and costs one Spark job."""
    df = _table(spark, lake_dir, name, drop_ingested=False)
    assert df.schema.fieldNames() == schema.fieldNames(), df.schema.fieldNames()
    df = df.select(*[F.date_format(c, "yyyy-MM-dd HH:mm:ss").alias(c) if c == S.TS else F.col(c)
                     for c in df.columns if c != S.INGESTED_AT])
    return sorted((tuple(r) for r in df.collect()), key=repr)


def _same(actual, expected):
    assert actual == sorted(expected, key=repr)


def _event(eid, user, item, etype, ts="2020-01-01 00:00:00", dt=DT):
    return (eid, user, item, etype, ts, None, None, None, dt, dt)


def _q(stage, reason, key, raw, src):
    return (stage, reason, key, raw, src, DT)


def _user(user_id, age=None, gender=None, region=None):
    return (user_id, age, gender, region, None, None)


def _item(item_id, title=None, category=None, brand=None):
    return (item_id, title, category, brand, None, None, None)


# ------------------------------------------------------------------------------ tiny inline files


def test_lightgcn_tiny_exact_rows_and_rerun_overwrites(spark, tmp_path):
    src = _write(tmp_path / "ds", {
        "train.txt": "0 1 2\n1 2 x3\n2\n   \n3 007 1\n",
        "test.txt": "0 3\n1 1\n",
        "user_list.txt": "org_id remap_id\n100 0\n101 1\n102 2\n103 3\n104 4\n",
        "item_list.txt": "org_id remap_id\n9 0\nabc\n",
    })
    lk = tmp_path / "lake"
    report = I.import_dataset(spark, "lightgcn", src, str(lk))
    assert report["events"] == {"purchase": 4}
    assert (report["users"], report["items"], report["test_interactions"], report["quarantined"]) == (5, 5, 2, 3)
    train = f"{src}/train.txt"
    _same(_rows(spark, lk, tables.CLEAN_EVENTS, S.CLEAN_EVENTS_SCHEMA), [
        _event("lightgcn:train.txt:1:0", "0", "1", "purchase"),
        _event("lightgcn:train.txt:1:1", "0", "2", "purchase", "2020-01-01 00:00:01"),
        _event("lightgcn:train.txt:5:0", "3", "7", "purchase"),
        _event("lightgcn:train.txt:5:1", "3", "1", "purchase", "2020-01-01 00:00:01"),
    ])
    _same(_rows(spark, lk, I.IMPORT_TEST, I.IMPORT_TEST_SCHEMA), [("0", "3", "test"), ("1", "1", "test")])
    _same(_rows(spark, lk, tables.QUARANTINE_EVENTS, S.QUARANTINE_SCHEMA), [
        _q("events", "import_unparseable_line", "train.txt:2", "1 2 x3", train),
        _q("events", "import_empty_line", "train.txt:4", "   ", train),
    ])
    _same(_rows(spark, lk, tables.QUARANTINE_ITEMS, S.QUARANTINE_SCHEMA),
          [_q("items", "import_unparseable_line", "item_list.txt:3", "abc", f"{src}/item_list.txt")])
    _same(_rows(spark, lk, tables.QUARANTINE_USERS, S.QUARANTINE_SCHEMA), [])
    _same(_rows(spark, lk, tables.CLEAN_USERS, S.CLEAN_USERS_SCHEMA), [_user(u) for u in "01234"])
    _same(_rows(spark, lk, tables.CLEAN_ITEMS, S.CLEAN_ITEMS_SCHEMA), [_item(i) for i in "01237"])
    users = _table(spark, lk, tables.CLEAN_USERS, drop_ingested=False)
    assert users.filter(F.col(S.INGESTED_AT).isNull()).count() == 0

    again = I.import_dataset(spark, "lightgcn", src, str(lk))  # deterministic, overwrites
    assert {k: v["version"] for k, v in again["tables"].items()} == {k: 1 for k in report["tables"]}
    assert {k: v["rows"] for k, v in again["tables"].items()} == {k: v["rows"] for k, v in report["tables"].items()}
    assert_same_rows(_table(spark, lk, tables.CLEAN_EVENTS),  # same rows and event ids as version 0
                     lake.read_table(spark, tables.table_path(str(lk), tables.CLEAN_EVENTS), version=0))
    json.dumps(again)


def test_ml100k_tiny_ratings_users_latin1_items(spark, tmp_path):
    flags = ["0"] * 19
    comedy_drama = flags.copy()
    comedy_drama[5] = comedy_drama[8] = "1"
    item_lines = [
        "1|Les Mis\xe9rables (1995)|01-Jan-1995||http://x|" + "|".join(comedy_drama),
        "2|No Genre (1990)|01-Jan-1990||http://y|" + "|".join(flags),
        "3|Broken|01-Jan-1990||http://z|" + "|".join(flags[:5]),
    ]
    src = _write(tmp_path / "ml", {
        "u.data": "1\t1\t5\t881250949\n1\t2\t3\t0\n2\t1\t0\t881250949\nx\t1\t4\t1\n2\t3\t4\t86399\n",
        "u.user": "1|24|M|technician|85711\n2|53|F|other|T8H1N\n2|54|F|other|94043\nbad|line\n",
        "u.item": ("\n".join(item_lines) + "\n").encode("latin-1"),
    })
    lk = tmp_path / "lake"
    report = I.import_dataset(spark, "ml100k", src, str(lk))
    assert report["events"] == {"click": 1, "purchase": 2}
    assert report["test_interactions"] == 0
    _same(_rows(spark, lk, tables.CLEAN_EVENTS, S.CLEAN_EVENTS_SCHEMA), [
        _event("ml100k:u.data:1:0", "1", "1", "purchase", "1997-12-04 15:55:49", "1997-12-04"),
        _event("ml100k:u.data:2:0", "1", "2", "click", "1970-01-01 00:00:00", "1970-01-01"),
        _event("ml100k:u.data:5:0", "2", "3", "purchase", "1970-01-01 23:59:59", "1970-01-01"),
    ])
    data, user = f"{src}/u.data", f"{src}/u.user"
    _same(_rows(spark, lk, tables.QUARANTINE_EVENTS, S.QUARANTINE_SCHEMA), [
        _q("events", "import_bad_value", "u.data:3", "2\t1\t0\t881250949", data),
        _q("events", "import_unparseable_line", "u.data:4", "x\t1\t4\t1", data),
    ])
    _same(_rows(spark, lk, tables.QUARANTINE_USERS, S.QUARANTINE_SCHEMA), [
        _q("users", "import_duplicate_id", "u.user:2", "2|53|F|other|T8H1N", user),
        _q("users", "import_unparseable_line", "u.user:4", "bad|line", user),
    ])
    _same(_rows(spark, lk, tables.QUARANTINE_ITEMS, S.QUARANTINE_SCHEMA),
          [_q("items", "import_unparseable_line", "u.item:3", item_lines[2], f"{src}/u.item")])
    _same(_rows(spark, lk, tables.CLEAN_USERS, S.CLEAN_USERS_SCHEMA),
          [_user("1", 24, "M", "857"), _user("2", 54, "F", "940")])
    _same(_rows(spark, lk, tables.CLEAN_ITEMS, S.CLEAN_ITEMS_SCHEMA), [
        _item("1", "Les Misérables (1995)", "movie>Comedy"), _item("2", "No Genre (1990)", "movie"), _item("3")])
    _same(_rows(spark, lk, I.IMPORT_TEST, I.IMPORT_TEST_SCHEMA), [])


def test_mule_tiny_behaviours_and_held_out_split(spark, tmp_path):
    src = _write(tmp_path / "tm", {
        "buy.txt": "1 10\n2 11\n1 12\n1 2 3\n",
        "cart.txt": "1 12\n",
        "collect.txt": "2 10\n\n",
        "valid.txt": "1 13\n",
        "test.txt": "3 14\n",
    })
    lk = tmp_path / "lake"
    report = I.import_dataset(spark, "mule", src, str(lk))
    assert report["events"] == {"cart": 1, "fav": 1, "purchase": 3}
    _same(_rows(spark, lk, tables.CLEAN_EVENTS, S.CLEAN_EVENTS_SCHEMA), [
        _event("mule:buy.txt:1:0", "1", "10", "purchase"),
        _event("mule:buy.txt:2:0", "2", "11", "purchase"),
        _event("mule:buy.txt:3:0", "1", "12", "purchase", "2020-01-01 00:00:01"),  # user 1's 2nd buy
        _event("mule:cart.txt:1:0", "1", "12", "cart"),
        _event("mule:collect.txt:1:0", "2", "10", "fav"),
    ])
    _same(_rows(spark, lk, I.IMPORT_TEST, I.IMPORT_TEST_SCHEMA), [("1", "13", "valid"), ("3", "14", "test")])
    _same(_rows(spark, lk, tables.QUARANTINE_EVENTS, S.QUARANTINE_SCHEMA), [
        _q("events", "import_unparseable_line", "buy.txt:4", "1 2 3", f"{src}/buy.txt"),
        _q("events", "import_empty_line", "collect.txt:2", "", f"{src}/collect.txt"),
    ])
    _same(_rows(spark, lk, tables.CLEAN_USERS, S.CLEAN_USERS_SCHEMA), [_user(u) for u in "123"])
    _same(_rows(spark, lk, tables.CLEAN_ITEMS, S.CLEAN_ITEMS_SCHEMA),
          [_item(i) for i in ("10", "11", "12", "13", "14")])


def test_s3rec_tiny_time_order_and_brand_rule(spark, tmp_path):
    attrs = {"1": [10, 20, 30], "2": [20, 31], "3": [11, 20, 30, 30], "4": [], "x": [1]}
    src = _write(tmp_path / "bt", {"Toys.txt": "1 1 2 3\n2 4 5\n", "Toys_item2attributes.json": json.dumps(attrs)})
    lk = tmp_path / "lake"
    report = I.import_dataset(spark, "s3rec", src, str(lk))
    assert report["events"] == {"purchase": 5}
    _same(_rows(spark, lk, tables.CLEAN_EVENTS, S.CLEAN_EVENTS_SCHEMA), [
        _event(f"s3rec:Toys.txt:{line}:{k}", user, item, "purchase", f"2020-01-01 00:00:0{k}")
        for line, user, items in ((1, "1", "123"), (2, "2", "45")) for k, item in enumerate(items)
    ])
    _same(_rows(spark, lk, tables.CLEAN_ITEMS, S.CLEAN_ITEMS_SCHEMA), [
        _item("1", None, "attr_20>attr_30", "attr_10"),  # 10 is never a later id: a brand
        _item("2", None, "attr_20>attr_31"),  # 20 occurs later in item 1: a category, so no brand
        _item("3", None, "attr_20>attr_30", "attr_11"),  # a repeated id is kept once
        _item("4"), _item("5")])
    _same(_rows(spark, lk, tables.QUARANTINE_ITEMS, S.QUARANTINE_SCHEMA), [
        _q("items", "import_unparseable_line", "Toys_item2attributes.json:5", '{"x": [1]}',
           f"{src}/Toys_item2attributes.json")])


def test_read_lines_numbers_lines_across_splits_and_files(spark, tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("".join(f"{i}\n" for i in range(3000)))
    b = tmp_path / "b.txt"
    b.write_text("x\n\ny\n")
    old = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "2000")
    try:
        df = I.read_lines(spark, [str(a), str(b)]).cache()
        assert spark.read.text(str(a)).rdd.getNumPartitions() > 1
        got_a = df.filter(F.col(S.SOURCE_FILE) == str(a)).collect()
        got_b = sorted((r[I.LINE_NO], r["value"]) for r in df.filter(F.col(S.SOURCE_FILE) == str(b)).collect())
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", old)
    assert len(got_a) == 3000 and all(r[I.LINE_NO] == int(r["value"]) + 1 for r in got_a)
    assert got_b == [(1, "x"), (2, ""), (3, "y")]


def test_bad_arguments_name_the_argument_and_expected_files(spark, tmp_path):
    with pytest.raises(ValueError, match="fmt: expected one of"):
        I.import_dataset(spark, "csv", str(tmp_path), str(tmp_path / "lake"))
    with pytest.raises(FileNotFoundError, match="path: no dataset folder"):
        I.import_dataset(spark, "lightgcn", str(tmp_path / "nope"), str(tmp_path / "lake"))
    src = _write(tmp_path / "half", {"train.txt": "0 1\n"})
    with pytest.raises(FileNotFoundError, match=r"lacks required file\(s\) \['test.txt'\].*train.txt"):
        I.import_dataset(spark, "lightgcn", src, str(tmp_path / "lake"))
    two = _write(tmp_path / "two", {"A.txt": "1 1\n", "B.txt": "1 1\n"})
    with pytest.raises(FileNotFoundError, match="holds 2 .txt files"):
        I.import_dataset(spark, "s3rec", two, str(tmp_path / "lake"))
    bad_json = _write(tmp_path / "bj", {"A.txt": "1 1\n", "A_item2attributes.json": "[1, 2]"})
    with pytest.raises(ValueError, match="must hold a JSON object"):
        I.import_dataset(spark, "s3rec", bad_json, str(tmp_path / "lake"))
    with pytest.raises(TypeError, match="seed"):
        I.import_dataset(spark, "mule", src, str(tmp_path / "lake"), seed="1")
    assert not (tmp_path / "lake").exists()


# ------------------------------------------------------------------------------ real datasets


def _real(name: str) -> str:
    folder = DATASETS / name
    if not folder.is_dir():
        pytest.skip(f"public dataset folder {folder} is absent")
    return str(folder)


def test_real_ml100k(spark, tmp_path):
    report = I.import_dataset(spark, "ml100k", _real("ml-100k"), str(tmp_path))
    assert report["events"] == {"click": 44625, "purchase": 55375}  # rating >= 4 → purchase (awk count)
    assert (report["users"], report["items"], report["quarantined"]) == (943, 1682, 0)
    genres = [line.split("|")[0] for line in (DATASETS / "ml-100k" / "u.genre").read_text().split("\n") if line]
    assert tuple(genres) == I.ML100K_GENRES
    items = _table(spark, tmp_path, tables.CLEAN_ITEMS).filter(F.col(S.ITEM_ID).isin("1", "267", "543"))
    assert sorted((r[S.ITEM_ID], r[S.TITLE], r[S.CATEGORY]) for r in items.collect()) == [
        ("1", "Toy Story (1995)", "movie>Animation"), ("267", "unknown", "movie>unknown"),
        ("543", "Misérables, Les (1995)", "movie>Drama")]  # latin-1 decoded
    events = _table(spark, tmp_path, tables.CLEAN_EVENTS)
    assert events.filter(F.to_date(S.TS).cast("string") != F.col(S.DT)).count() == 0


def test_real_beauty(spark, tmp_path):
    report = I.import_dataset(spark, "s3rec", _real("beauty"), str(tmp_path))
    assert report["events"] == {"purchase": 198502}
    assert (report["users"], report["items"], report["quarantined"]) == (22363, 12101, 0)
    brands = _table(spark, tmp_path, tables.CLEAN_ITEMS).agg(F.count(S.BRAND), F.count_distinct(S.BRAND)).first()
    assert tuple(brands) == (7492, 435)  # items with a brand, brand ids (see the importer's brand rule)


def test_real_tmall(spark, tmp_path):
    report = I.import_dataset(spark, "mule", _real("tmall"), str(tmp_path))
    assert report["events"] == {"cart": 1996, "fav": 221514, "purchase": 255586}
    assert (report["test_interactions"], report["quarantined"]) == (74158 + 31572, 0)
    splits = _table(spark, tmp_path, I.IMPORT_TEST).groupBy(I.SPLIT).count().collect()
    assert dict((r[0], r[1]) for r in splits) == {"valid": 74158, "test": 31572}


def test_real_gowalla(spark, tmp_path):
    start = time.time()
    report = I.import_dataset(spark, "lightgcn", _real("gowalla"), str(tmp_path))
    assert report["events"] == {"purchase": 810128}
    assert (report["test_interactions"], report["users"], report["items"], report["quarantined"]) == (
        217242, 29858, 40981, 0)
    events = _table(spark, tmp_path, tables.CLEAN_EVENTS)
    # line n of train.txt holds user n-1: checks line numbering across Spark's splits of the file
    line = F.element_at(F.split(S.EVENT_ID, ":"), 3).cast("int")
    assert events.filter(line - 1 != F.col(S.USER_ID).cast("int")).count() == 0
    assert [r[0] for r in events.select(S.DT).distinct().collect()] == [DT]
    print(f"gowalla import: {time.time() - start:.1f} s")
