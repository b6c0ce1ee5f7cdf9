"""The shared base: config, Spark session, lake layer, table names, quality gates, errors.

Imports no stage and no entry point (``tests/test_layers.py``).
"""
