"""graphlake.app.compare: float rounding and order-free checksums for cross-engine table comparison."""

from __future__ import annotations

import pytest

from graphlake.app.compare import FLOAT_DECIMALS, round_floats, table_checksum
from tests.conftest import assert_same_rows

SCHEMA = "id long, name string, pr double, w float, vec array<double>"


def test_round_floats_rounds_scalars_and_arrays_only(spark):
    df = spark.createDataFrame([(1, "a", 0.1 + 0.2, 1.5, [0.1 + 0.2, 2.0]), (2, None, None, None, None)], SCHEMA)
    expected = spark.createDataFrame([(1, "a", 0.3, 1.5, [0.3, 2.0]), (2, None, None, None, None)], SCHEMA)
    got = round_floats(df)
    assert got.schema == df.schema
    assert_same_rows(got, expected)


def test_checksum_ignores_sum_order_noise_and_partitioning(spark):
    a = spark.createDataFrame([(i, str(i), i / 3 + 1e-17 * (i % 2), 0.5, [i / 7]) for i in range(50)], SCHEMA)
    b = spark.createDataFrame([(i, str(i), i / 3, 0.5, [i / 7]) for i in reversed(range(50))], SCHEMA)
    assert table_checksum(a) == table_checksum(b.repartition(3))
    assert table_checksum(a)[0] == 50


def test_checksum_sees_a_real_difference(spark):
    a = spark.createDataFrame([(1, "x", 0.25, 1.0, [1.0])], SCHEMA)
    b = spark.createDataFrame([(1, "x", 0.25 + 10 ** -(FLOAT_DECIMALS - 2), 1.0, [1.0])], SCHEMA)
    c = spark.createDataFrame([(1, "x", 0.25, 1.0, [1.0]), (1, "x", 0.25, 1.0, [1.0])], SCHEMA)
    assert table_checksum(a) != table_checksum(b)
    assert table_checksum(a) != table_checksum(c)


@pytest.mark.parametrize("decimals", [-1, 1.5, True])
def test_round_floats_rejects_bad_decimals(spark, decimals):
    with pytest.raises(ValueError, match="decimals: expected an int >= 0"):
        round_floats(spark.createDataFrame([(1, "a", 0.1, 0.1, [0.1])], SCHEMA), decimals)
