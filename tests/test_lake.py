"""The lake layer: atomic Delta commits, time travel, schema enforcement, conflicts, cleanup."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql import types as T

from graphlake.core import lake
from tests import delta_rs
from tests.conftest import assert_same_rows

SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType(), False),
        T.StructField("name", T.StringType(), True),
        T.StructField("ts", T.TimestampType(), True),
        T.StructField("vec", T.ArrayType(T.FloatType()), True),
        T.StructField("dt", T.StringType(), False),
    ]
)
TS = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)


def rows(spark, data):
    return spark.createDataFrame(data, SCHEMA)


@pytest.fixture
def base(spark):
    return rows(
        spark,
        [
            (1, "a", TS, [1.0, 2.0], "2024-01-01"),
            (2, "b", TS, None, "2024-01-01"),
            (3, None, None, [0.5], "2024-01-02"),
        ],
    )


def test_write_then_read_back_exactly(spark, tmp_path, base):
    path = str(tmp_path / "t")
    result = lake.write_table(base, path, mode="overwrite", partition_by=["dt"])
    assert result.version == 0 and result.rows_added == 3
    assert_same_rows(lake.read_table(spark, path), base)
    assert lake.read_table(spark, path).schema.fieldNames() == SCHEMA.fieldNames()


def test_unpartitioned_append_and_time_travel(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path)
    more = rows(spark, [(4, "d", TS, [], "2024-01-03")])
    v1 = lake.write_table(more, path).version
    assert v1 == 1
    assert_same_rows(lake.read_table(spark, path, version=0), base)
    assert_same_rows(lake.read_table(spark, path), base.unionByName(more))
    assert [h["version"] for h in lake.history(path)] == [1, 0]


def test_readable_by_delta_rs_and_pyarrow(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path, mode="overwrite", partition_by=["dt"])
    by_rs = sorted(delta_rs.scan(path), key=lambda r: r["id"])
    assert [r["id"] for r in by_rs] == [1, 2, 3]
    assert [r["dt"] for r in by_rs] == ["2024-01-01", "2024-01-01", "2024-01-02"]
    assert [r["vec"] for r in by_rs] == [[1.0, 2.0], None, [0.5]]
    # pyarrow alone (no delta-rs scan): the files delta-rs lists, as a dataset with Hive partitions
    table = DeltaTable(path)
    dataset = pads.dataset(table.file_uris(), format="parquet", partitioning="hive",
                           partition_base_dir=os.path.abspath(path))
    assert dataset.to_table(filter=pads.field("dt") == "2024-01-02").num_rows == 1
    # per-file statistics from the Parquet footers make data skipping possible
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    assert sum(a["num_records"] for a in actions) == 3
    assert all(a["min.id"] is not None and a["max.id"] >= a["min.id"] for a in actions)


def test_read_arrow_equals_delta_rs_scan(spark, tmp_path, base):
    """The lake layer's Arrow read (file list from delta-rs, files read by pyarrow) gives delta-rs'
    rows exactly, partition columns included, for every version."""
    path = str(tmp_path / "t")
    lake.write_table(base, path, mode="overwrite", partition_by=["dt"])
    lake.write_table(rows(spark, [(7, "q", TS, [2.0], "2024-01-02")]), path, mode="overwrite",
                     replace_partitions={"dt": ["2024-01-02"]})
    got = lake.read_arrow(path)
    assert got.schema.names == SCHEMA.fieldNames()
    key = lambda r: r["id"]  # noqa: E731
    assert sorted(_json_rows(got), key=key) == sorted(delta_rs.scan(path), key=key)
    assert sorted(lake.read_arrow(path, version=0).column("id").to_pylist()) == [1, 2, 3]
    assert lake.read_arrow(path).column("ts").type == pa.timestamp("us", tz="UTC")


def test_read_arrow_of_an_empty_table(spark, tmp_path):
    path = str(tmp_path / "t")
    lake.write_table(rows(spark, []), path, partition_by=["dt"])
    empty = lake.read_arrow(path)
    assert empty.num_rows == 0 and empty.schema.names == SCHEMA.fieldNames()


def _json_rows(table: pa.Table) -> list[dict]:
    import json

    return json.loads(json.dumps(table.to_pylist(), default=str))


def test_partition_values_with_special_characters(spark, tmp_path):
    path = str(tmp_path / "t")
    df = rows(spark, [(1, "x", TS, None, "a:b c"), (2, "y", TS, None, "x/y%z")])
    lake.write_table(df, path, partition_by=["dt"])
    assert_same_rows(lake.read_table(spark, path), df)
    assert sorted(r["dt"] for r in delta_rs.scan(path)) == ["a:b c", "x/y%z"]
    assert sorted(lake.read_arrow(path).column("dt").to_pylist()) == ["a:b c", "x/y%z"]


def test_overwrite_given_partitions_only(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path, mode="overwrite", partition_by=["dt"])
    new_day = rows(spark, [(9, "z", TS, None, "2024-01-01")])
    lake.write_table(new_day, path, mode="overwrite", replace_partitions={"dt": ["2024-01-01"]})
    expected = new_day.unionByName(base.filter(F.col("dt") == "2024-01-02"))
    assert_same_rows(lake.read_table(spark, path), expected)


def test_replace_where_sql_of_the_native_path_selects_exactly_the_partitions(spark):
    """delta-spark's ``replaceWhere`` text (built without the JVM, so it works on Spark Connect):
    quotes and backslashes in values and backticks in names stay literal."""
    values = ["2024-01-01", "it's", "a\\b", "x` OR 1=1"]
    sql = lake._replace_where({"d`t": values, "k": ["1"]})
    df = spark.createDataFrame([(v, k) for v in [*values, "2024-01-02", "its"] for k in ("1", "2")], "`d``t` string, k string")
    got = sorted(r[0] for r in df.where(sql).collect())
    assert got == sorted(values)


def test_replace_partitions_rejects_rows_outside(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path, mode="overwrite", partition_by=["dt"])
    with pytest.raises(ValueError, match=r"dt='2024-01-02'.*outside the partitions being replaced"):
        lake.write_table(base, path, mode="overwrite", replace_partitions={"dt": ["2024-01-01"]})
    assert lake.table_version(path) == 0
    assert lake.cleanup(path, older_than_s=0) == []  # the failed write left nothing behind


def test_schema_mismatch_names_column_and_types(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path, partition_by=["dt"])
    bad = base.withColumn("id", F.col("id").cast("string"))
    with pytest.raises(lake.SchemaMismatchError, match=r"column 'id': table has bigint, incoming has string"):
        lake.write_table(bad, path)
    extra = base.withColumn("extra", F.lit(1))
    with pytest.raises(lake.SchemaMismatchError, match=r"column 'extra': table has no such column, incoming has int"):
        lake.write_table(extra, path)
    with pytest.raises(lake.SchemaMismatchError, match=r"column 'name': table has string, incoming has no such column"):
        lake.write_table(base.drop("name"), path)
    assert lake.table_version(path) == 0
    assert_same_rows(lake.read_table(spark, path), base)


def test_overwrite_schema_allows_a_new_schema(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path)
    changed = base.withColumn("extra", F.lit(1))
    lake.write_table(changed, path, mode="overwrite", overwrite_schema=True)
    assert "extra" in lake.read_table(spark, path).columns


def test_conflicting_commit_fails_and_leaves_table_unchanged(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path, mode="overwrite", partition_by=["dt"])
    read_by_both = lake.table_version(path)
    winner = rows(spark, [(10, "w", TS, None, "2024-01-01")])
    loser = rows(spark, [(20, "l", TS, None, "2024-01-01")])
    lake.write_table(winner, path, mode="overwrite", read_version=read_by_both)
    files_before = sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))
    with pytest.raises(lake.CommitConflictError, match=r"concurrent commit made after version 0"):
        lake.write_table(loser, path, mode="overwrite", read_version=read_by_both)
    assert lake.table_version(path) == 1
    assert_same_rows(lake.read_table(spark, path), winner)
    # the loser's files were removed, never made visible
    assert sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True)) == files_before


def test_append_against_stale_snapshot_conflicts(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path)
    lake.write_table(base, path)  # someone else appended after we read version 0
    with pytest.raises(lake.CommitConflictError):
        lake.write_table(base, path, read_version=0)
    assert lake.table_version(path) == 1


def test_must_create_conflicts_when_another_writer_created_the_table(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path, must_create=True)  # nobody there yet: creates version 0
    with pytest.raises(lake.CommitConflictError, match="created by a concurrent writer after this job saw none"):
        lake.write_table(base, path, mode="overwrite", must_create=True)
    with pytest.raises(ValueError, match="must_create: cannot be combined with read_version"):
        lake.write_table(base, path, read_version=0, must_create=True)
    assert lake.table_version(path) == 0


def test_failed_spark_job_commits_nothing(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path)
    boom = base.withColumn("name", F.raise_error(F.lit("boom in a task")).cast("string"))
    with pytest.raises(Exception, match="boom in a task"):
        lake.write_table(boom, path)
    assert lake.table_version(path) == 0
    assert lake.cleanup(path, older_than_s=0) == []


def test_cleanup_removes_files_of_a_killed_writer(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path, partition_by=["dt"])
    committed = sorted(glob.glob(os.path.join(path, "dt=*", "*.parquet")))
    # what a writer killed between Spark's write and the commit leaves behind
    orphan = os.path.join(path, "dt=2024-01-01", "part-99999-orphan.c000.snappy.parquet")
    shutil.copy(committed[0], orphan)
    staging = os.path.join(path, lake.STAGING_DIR, "123-dead")
    os.makedirs(os.path.join(staging, "dt=2024-01-01"))
    shutil.copy(committed[0], os.path.join(staging, "dt=2024-01-01", "part-0.parquet"))
    assert lake.cleanup(path, older_than_s=3600) == []  # too young: maybe a write in flight
    removed = lake.cleanup(path, older_than_s=0)
    assert removed == sorted([os.path.join(lake.STAGING_DIR, "123-dead"), os.path.relpath(orphan, path)])
    assert sorted(glob.glob(os.path.join(path, "dt=*", "*.parquet"))) == committed
    assert_same_rows(lake.read_table(spark, path), base)


def test_missing_table_and_version_errors(spark, tmp_path, base):
    with pytest.raises(lake.TableNotFoundError, match="no Delta table"):
        lake.read_table(spark, str(tmp_path / "nope"))
    path = str(tmp_path / "t")
    lake.write_table(base, path)
    with pytest.raises(lake.TableNotFoundError, match="has no version 5"):
        lake.read_table(spark, path, version=5)
    with pytest.raises(ValueError, match=r"mode: expected one of"):
        lake.write_table(base, path, mode="upsert")
    with pytest.raises(ValueError, match=r"partition_by: table .* is partitioned by \[\], got \['dt'\]"):
        lake.write_table(base, path, partition_by=["dt"])


def test_empty_dataframe_creates_readable_table(spark, tmp_path):
    path = str(tmp_path / "t")
    lake.write_table(rows(spark, []), path, partition_by=["dt"])
    assert lake.read_table(spark, path).count() == 0
    assert lake.read_table(spark, path).schema.fieldNames() == SCHEMA.fieldNames()


def _delta_jars() -> list[str]:
    candidates = os.environ.get("GRAPHLAKE_DELTA_JARS", "")
    jars = [j for j in candidates.split(os.pathsep) if j]
    for root in (os.path.expanduser("~/.ivy2/jars"), os.path.expanduser("~/.ivy2.5.2/jars")):
        jars += glob.glob(os.path.join(root, "io.delta_delta-*.jar"))
    return jars


@pytest.mark.skipif(
    not _delta_jars(),
    reason="Delta Lake JARs (io.delta:delta-spark_2.13) are not on this machine and Maven is unreachable; "
    "set GRAPHLAKE_DELTA_JARS to their paths to run this check",
)
def test_readable_by_delta_spark(spark, tmp_path, base):
    path = str(tmp_path / "t")
    lake.write_table(base, path, partition_by=["dt"])
    code = (
        "from pyspark.sql import SparkSession;"
        f"s=SparkSession.builder.master('local[1]').config('spark.jars',{','.join(_delta_jars())!r})"
        ".config('spark.sql.extensions','io.delta.sql.DeltaSparkSessionExtension')"
        ".config('spark.sql.catalog.spark_catalog','org.apache.spark.sql.delta.catalog.DeltaCatalog').getOrCreate();"
        f"print(sorted(r.id for r in s.read.format('delta').load({path!r}).collect()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().endswith("[1, 2, 3]"), out.stderr[-2000:]


def test_pyspark_python_and_jvm_versions_agree(spark):
    import pyspark

    assert spark.version == pyspark.__version__, (
        f"pyspark Python files are {pyspark.__version__} but the JVM runs Spark {spark.version}: "
        "a package (e.g. pyspark-client) overwrote pyspark's files"
    )
