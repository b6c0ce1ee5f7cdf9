"""graphlake: behaviour logs in, versioned user/item embeddings and Spark SQL functions out.

One import namespace, in layers (``tests/test_layers.py`` checks them):

- :mod:`graphlake.core` — the shared base every stage imports: config loading, the Spark session,
  the lake layer, table names, quality gates, errors. It imports no stage.
- the stages — :mod:`graphlake.etl`, :mod:`graphlake.graph_build`, :mod:`graphlake.training`,
  :mod:`graphlake.assets`, :mod:`graphlake.udfs` (folders ``etl/`` … ``udfs/`` of the repository).
  They import the core and the stages before them, never :mod:`graphlake.app`.
- :mod:`graphlake.app` — the entry points: the CLI, the pipeline steps the DAG calls, the demo, the
  pipeline report, the local cluster harness and the table comparison helpers.
"""

__version__ = "0.1.0"
