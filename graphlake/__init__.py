"""graphlake core: config, Spark session factory, the lake layer, table names, the CLI."""

__version__ = "0.1.0"
