"""graphlake.core.spark's settings for a new classic session: graphlake's defaults yield to the
user's own Spark configuration, the settings the lake layer relies on never do (pure: no JVM)."""

from __future__ import annotations

from graphlake.core.spark import _DEFAULT_CONF, _REQUIRED_CONF, read_spark_defaults, session_settings, user_conf_keys


def test_user_conf_keys_from_submit_args_and_spark_defaults(tmp_path):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text(
        "# a comment\n\nspark.default.parallelism   16\nspark.sql.adaptive.enabled=false\n")
    env = {"PYSPARK_SUBMIT_ARGS": "--conf spark.sql.shuffle.partitions=2 --conf=spark.ui.enabled=false "
                                  "--driver-memory 1g --master local[1] pyspark-shell",
           "SPARK_CONF_DIR": str(conf_dir)}
    assert user_conf_keys(env) == {"spark.sql.shuffle.partitions", "spark.ui.enabled", "spark.driver.memory",
                                   "spark.default.parallelism", "spark.sql.adaptive.enabled"}
    # SPARK_HOME/conf when SPARK_CONF_DIR is not set; nothing at all when neither names a file
    (tmp_path / "conf" / "spark-defaults.conf").write_text("spark.driver.memory 2g\n")
    assert user_conf_keys({"SPARK_HOME": str(tmp_path)}) == {"spark.driver.memory"}
    assert user_conf_keys({"SPARK_HOME": str(tmp_path / "nowhere")}) == set()
    assert user_conf_keys({}) == set()


def test_defaults_yield_to_the_user_and_the_required_settings_to_nobody():
    user = {"spark.sql.shuffle.partitions", "spark.driver.memory", "spark.sql.session.timeZone"}
    settings = session_settings({"spark.executor.memory": "2g", "spark.sql.session.timeZone": "Europe/Paris"}, user)
    expected = {k: v for k, v in _DEFAULT_CONF.items() if k not in user}
    expected.update({"spark.executor.memory": "2g", **_REQUIRED_CONF})
    assert settings == expected
    assert "spark.sql.shuffle.partitions" not in settings and settings["spark.sql.session.timeZone"] == "UTC"
    # the caller's conf (graphlake --conf) wins over a default as before
    assert session_settings({"spark.sql.shuffle.partitions": 3})["spark.sql.shuffle.partitions"] == "3"
    assert session_settings(None) == {**_DEFAULT_CONF, **_REQUIRED_CONF}


def test_read_spark_defaults_takes_both_separators_and_skips_comments(tmp_path):
    path = tmp_path / "spark-defaults.conf"
    path.write_text("# a comment\n\nspark.driver.memory   2g\nspark.sql.shuffle.partitions=3\n"
                    "spark.driver.defaultJavaOptions -XX:TieredStopAtLevel=1 -XX:+UseSerialGC\n  spark.flag\n")
    assert read_spark_defaults(str(path)) == {
        "spark.driver.memory": "2g", "spark.sql.shuffle.partitions": "3",
        "spark.driver.defaultJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC", "spark.flag": ""}
