"""Embedding assets: publishing, the registry and its lifecycle, and reading them without Spark.

``graphlake.assets.open(lake, asset, version)`` opens a published version for point lookups in
the caller's process (:mod:`graphlake.assets.reader`).
"""

from graphlake.assets.reader import EmbeddingReader
from graphlake.assets.reader import open_asset as open  # noqa: A001 (the documented name: graphlake.assets.open)

__all__ = ["EmbeddingReader", "open"]
