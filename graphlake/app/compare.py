"""Comparing a table written by two engines (local mode vs a cluster, two task orders).

Float aggregates (PageRank, decayed weights, feature statistics) are sums whose order depends on
how Spark's tasks ran: a cluster and ``local[2]`` agree on them only to the last bits (measured:
at most 2.8e-17 apart in ``graph/node_stats_*``). :func:`round_floats` rounds every float column,
and every float inside an array column, to ``FLOAT_DECIMALS`` so equal results compare equal;
:func:`table_checksum` is the row count and the sum of ``xxhash64`` of every (rounded) row.

Example:
    >>> df = spark.createDataFrame([(1, 0.1 + 0.2)], "id long, pr double")
    >>> round_floats(df).first()["pr"]
    0.3
    >>> table_checksum(df) == table_checksum(spark.createDataFrame([(1, 0.3)], "id long, pr double"))
    True
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, DoubleType, FloatType

# equal to this many decimals = equal (sum-order noise is ~1e-16 relative)
FLOAT_DECIMALS = 9


def _rounded(col: Column, data_type: DataType, decimals: int) -> Column:
    if isinstance(data_type, (DoubleType, FloatType)):
        return F.round(col, decimals)
    if isinstance(data_type, ArrayType) and isinstance(data_type.elementType, (DoubleType, FloatType)):
        return F.transform(col, lambda x: F.round(x, decimals))
    return col


def round_floats(df: DataFrame, decimals: int = FLOAT_DECIMALS) -> DataFrame:
    """``df`` with its float / double columns and float / double arrays rounded to ``decimals``
    (column names, order and other columns unchanged)."""
    if isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0:
        raise ValueError(f"decimals: expected an int >= 0, got {decimals!r}")
    return df.select([_rounded(F.col(f.name), f.dataType, decimals).alias(f.name) for f in df.schema.fields])


def table_checksum(df: DataFrame, decimals: int = FLOAT_DECIMALS) -> list:
    """``[rows, str(sum of xxhash64 of every row)]`` of ``df`` with floats rounded to ``decimals``:
    equal for the same multiset of rows whatever the partitioning or the order."""
    rounded = round_floats(df, decimals)
    row = rounded.agg(F.count(F.lit(1)).alias("n"), F.sum(F.xxhash64(*rounded.columns)).alias("h")).first()
    return [row["n"], str(row["h"])]
