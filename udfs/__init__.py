"""udfs: graphlake's Spark SQL functions over published embedding assets.

Example:
    >>> from graphlake import udfs
    >>> udfs.register(spark, lake="lakehouse", version="production")
    >>> spark.sql("SELECT user_id, gl_recommend(user_id, 20) FROM users").show()
"""

from graphlake.udfs.register import FUNCTIONS, register, register_views

__all__ = ["FUNCTIONS", "register", "register_views"]
