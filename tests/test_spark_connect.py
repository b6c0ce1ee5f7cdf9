"""graphlake on a Spark Connect server (#22 item 3): the CLI with ``--remote`` and ``udfs.register``
on a Connect session, against a real server this module starts (:mod:`graphlake.app.connect_server`).

Every Connect client runs in a subprocess: creating a Connect session flips PySpark process-wide
into Connect mode (``SPARK_CONNECT_MODE_ENABLED``), which would break the classic session the
other tests of this xdist worker share. A Connect session has no ``sparkContext`` and no JVM in
the client: a stage that touched either would fail here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import TEST_SPARK_CONF

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_YAML = ("train:\n  epochs: 1\n  batch_size: 256\n  fanouts: [5, 3]\n  validation_fraction: 0.1\n"
              "  lr: 0.01\n  model: {hidden_dim: 16}\n")


def _env() -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    for key in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET",
                "GRAPHLAKE_SPARK_REMOTE"):
        env.pop(key, None)
    return env


def cli(*args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graphlake.app.cli", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from graphlake.app.cluster import group_members
    from graphlake.app.connect_server import LocalConnectServer

    srv = LocalConnectServer(str(tmp_path_factory.mktemp("connect")),  # the test session's settings
                             conf={**TEST_SPARK_CONF, "spark.default.parallelism": "2"})
    srv.start()
    try:
        yield srv
    finally:
        pgid = srv.pid
        srv.stop()
        left = group_members(pgid)
        assert not left, f"Spark Connect server processes left after stop(): {left}"


@pytest.fixture(scope="module")
def connect_lake(spark, server, tmp_path_factory):
    """Raw logs written here (classic session), then every stage over the server with ``--remote``:
    etl, graph build, train (1 epoch, width 16), publish. Returns what each printed."""
    from graphlake.etl.generator import GeneratorConfig, generate

    root = tmp_path_factory.mktemp("connect-lake")
    raw, lake_dir = str(root / "raw"), str(root / "lake")
    generate(spark, raw, GeneratorConfig(users=80, items=50, days=1, seed=11, target_events=1200))
    (root / "train.yaml").write_text(TRAIN_YAML)
    remote = ["--lake", lake_dir, "--remote", server.url, "--json"]
    out, seconds = {"lake": lake_dir}, {}
    for stage, args in (("etl", ["etl", "--raw", raw]), ("graph", ["graph", "build"]),
                        ("train", ["train", "--config", str(root / "train.yaml"), "--seed", "3"]),
                        ("publish", ["publish"])):
        started = time.monotonic()
        out[stage] = last_json(cli(*args, *remote))
        seconds[stage] = round(time.monotonic() - started, 1)
    print(f"stages over Spark Connect, seconds: {seconds}")  # shown with -s
    return out


def test_every_stage_runs_through_the_cli_on_a_connect_server(spark, connect_lake):
    from graphlake.core import lake, tables

    etl, graph, published = connect_lake["etl"], connect_lake["graph"], connect_lake["publish"]
    assert etl["validation"]["success"] and graph["validation"]["success"] and graph["graph_version"] == 0
    lake_dir = connect_lake["lake"]
    clean = lake.read_table(spark, tables.table_path(lake_dir, tables.CLEAN_EVENTS))  # read back classically
    assert clean.count() == etl["events"]["clean"] > 0
    user_map = lake.read_table(spark, tables.table_path(lake_dir, tables.id_map("user")))
    assert user_map.count() == graph["node_counts"]["user"] >= clean.select("user_id").distinct().count()
    assert connect_lake["train"]["steps"] > 0 and connect_lake["train"]["graph_version"] == 0
    assert published["assets"]["item_embeddings"]["rows"] == graph["node_counts"]["item"]
    assert published["outputs"]["assets/recommendations"]["rows"] > 0


def test_the_top_k_tables_written_over_connect_are_the_readers_answers(connect_lake):
    """The publish step's Arrow tasks ran on the server: its top-K rows equal what
    ``graphlake.assets.open`` (no Spark) computes from the same files."""
    import polars as pl

    import graphlake.assets

    lake_dir = connect_lake["lake"]
    items = graphlake.assets.open(lake_dir, version="latest")
    recs = pl.read_delta(f"{lake_dir}/assets/recommendations").filter(pl.col("asset_version") == items.version.version)
    users = sorted(recs["user_key"].unique().to_list())[:5]
    for user in users:
        got = recs.filter(pl.col("user_key") == user).sort("rank")
        expected = items.recommend(user, 20)
        assert got["item_key"].to_list() == [k for k, _ in expected], user
        assert got["score"].to_list() == pytest.approx([s for _, s in expected], abs=1e-4)


REGISTER_ON_CONNECT = """
import json, sys
from graphlake import udfs
from graphlake.core.spark import get_spark, is_connect

url, lake, user, item = sys.argv[1:5]
spark = get_spark(remote=url)
versions = udfs.register(spark, lake=lake, version="latest")
udfs.register_views(spark, lake, versions)
row = spark.sql(f"SELECT gl_recommend('{user}', 5) AS rec, gl_similar_items('{item}', 3) AS sim, "
                f"gl_embedding('item', '{item}') AS emb").first()
mean = spark.sql(f"SELECT gl_mean_embedding(key) AS m FROM item_embeddings WHERE key = '{item}'").first()
try:
    spark.sql(f"SELECT gl_recommend('{user}', 0)").collect()
    bad = None
except Exception as exc:
    bad = str(exc)
print(json.dumps({"connect": is_connect(spark), "versions": versions,
                  "rec": [(r["item_key"], r["score"]) for r in row["rec"]],
                  "sim": [(r["item_key"], r["score"]) for r in row["sim"]],
                  "emb": list(row["emb"]), "mean": list(mean["m"]), "bad": bad}))
"""


def test_udfs_register_on_a_connect_session(server, connect_lake):
    import graphlake.assets

    lake_dir = connect_lake["lake"]
    items = graphlake.assets.open(lake_dir, version="latest")
    user = sorted(_user_keys(lake_dir))[0]
    item = sorted(_item_keys(lake_dir))[0]
    proc = subprocess.run([sys.executable, "-c", REGISTER_ON_CONNECT, server.url, lake_dir, user, item], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=300)
    got = last_json(proc)
    assert got["connect"] and got["versions"]["item_embeddings"] == items.version.version
    assert [k for k, _ in got["rec"]] == [k for k, _ in items.recommend(user, 5)]
    assert [s for _, s in got["rec"]] == pytest.approx([s for _, s in items.recommend(user, 5)], abs=1e-4)
    assert [k for k, _ in got["sim"]] == [k for k, _ in items.similar(item, 3)]
    vector = items.vectors([item])[0]
    assert got["emb"] == pytest.approx(list(vector), abs=1e-6) and got["mean"] == pytest.approx(list(vector), abs=1e-6)
    assert got["bad"] is not None and "gl_recommend: k must be in 1..1000, got 0" in got["bad"]


def _user_keys(lake_dir):
    import polars as pl

    return pl.read_delta(f"{lake_dir}/assets/recommendations")["user_key"].unique().to_list()


def _item_keys(lake_dir):
    import polars as pl

    return pl.read_delta(f"{lake_dir}/assets/similar_items")["item_key"].unique().to_list()


def test_the_cli_names_what_cannot_run_on_connect(server, connect_lake):
    lake_dir = connect_lake["lake"]
    both = cli("assets", "list", "--lake", lake_dir, "--master", "local[1]", "--remote", server.url)
    assert both.returncode == 0  # a registry read starts no session at all
    both = cli("sql", "SELECT 1", "--lake", lake_dir, "--version", "latest", "--master", "local[1]",
               "--remote", server.url)
    assert both.returncode == 2 and "exclude each other" in both.stderr
    bad_url = cli("sql", "SELECT 1", "--lake", lake_dir, "--version", "latest", "--remote", "http://x:1")
    assert bad_url.returncode == 2 and "expected a Spark Connect URL like 'sc://host:15002'" in bad_url.stderr
    static = cli("sql", "SELECT 1", "--lake", lake_dir, "--version", "latest", "--remote", server.url,
                 "--conf", "spark.driver.memory=2g")
    assert static.returncode == 2 and "'spark.driver.memory' is fixed when the Spark Connect server starts" \
        in static.stderr
    thrift = cli("sql-server", "--lake", lake_dir, "--remote", server.url)
    assert thrift.returncode == 2 and "cannot use a Spark Connect session" in thrift.stderr
