"""``graphlake.udfs.register(spark, lake=..., version="production")``: resolve the asset versions, register the functions.

The registry is read once on the driver (metadata only). ``version`` is ``"production"``,
``"latest"``, an int (the same version number of every asset), or a mapping
``{asset: version}`` (e.g. ``{"item_embeddings": 3, "user_embeddings": "production"}``).
``user_embeddings`` and ``item_embeddings`` are required; other published node types
(``shop_embeddings``, ...) are available to ``gl_embedding`` at the same ``version``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from graphlake.assets import schema as A
from graphlake.assets.bundle import open_bundle
from graphlake.assets.lifecycle import read_asset
from graphlake.assets.registry import AssetError, AssetNotFoundError, AssetVersion, read_registry, resolve
from graphlake.core import lake as lake_layer
from graphlake.core import tables
from graphlake.udfs.functions import make_functions

SQL_VIEWS = {"events": "clean/events", "items": "clean/items", "users": "clean/users"}
FUNCTIONS = ("gl_embedding", "gl_score", "gl_similar_items", "gl_recommend", "gl_interests", "gl_explain",
             "gl_mean_embedding", "gl_weighted_mean_embedding")


def _version_for(version, asset: str):
    if isinstance(version, Mapping):
        return version.get(asset, "production")
    return version


def resolve_spec(lake_dir: str, version="production", user_type: str = "user", item_type: str = "item") -> dict:
    """The folders the functions read (see :func:`graphlake.udfs.functions.make_functions`) and the versions used."""
    if not (isinstance(version, (str, int, Mapping)) and not isinstance(version, bool)):
        raise TypeError(f"version: expected 'production', 'latest', an int or a mapping, got {version!r}")
    if isinstance(version, str) and version not in ("production", "latest"):
        raise ValueError(f"version: expected 'production', 'latest', an int or a mapping, got {version!r}")
    rows, _ = read_registry(lake_dir)
    if not rows:
        raise AssetNotFoundError(f"lake: nothing is published under {lake_dir!r} (run `graphlake publish` first)")
    chosen = {}
    for asset in sorted({r["asset"] for r in rows}):
        required = asset in (A.asset_name(user_type), A.asset_name(item_type))
        try:
            chosen[asset] = AssetVersion.from_row(resolve(rows, asset, _version_for(version, asset)), lake_dir)
        except AssetNotFoundError:
            if required:
                raise
    for t in (user_type, item_type):
        if A.asset_name(t) not in chosen:
            raise AssetNotFoundError(f"lake: no {A.asset_name(t)} asset is published under {lake_dir!r}")
    user, item = chosen[A.asset_name(user_type)], chosen[A.asset_name(item_type)]
    if user.graph_version != item.graph_version or user.run_id != item.run_id:
        raise AssetError(f"version: {user.asset} v{user.version} (run {user.run_id}) and {item.asset} "
                         f"v{item.version} (run {item.run_id}) come from different training runs; their "
                         "scores are not comparable — choose versions of the same run")
    types = {v.node_type: v.files for v in chosen.values() if v.dim == item.dim}
    meta = open_bundle(item.files).meta
    if not os.path.isdir(meta["snapshot"]):
        raise AssetError(f"snapshot: the users' histories come from {meta['snapshot']}, which is missing "
                         f"(re-export it: graphlake graph export --version {meta['graph_version']})")
    return {"user": user.files, "item": item.files, "types": types, "snapshot": meta["snapshot"],
            "history": list(meta["history_edge_types"]),
            "versions": {a: v.version for a, v in chosen.items()}}


def register(spark, lake: str, version="production", user_type: str = "user", item_type: str = "item") -> dict:
    """Register the ``gl_*`` functions on ``spark``; returns ``{asset: version}`` used.

    Re-registering (e.g. after a promotion) replaces the functions; cached asset files of other
    versions stay in the workers' memory until they exit.
    """
    spec = resolve_spec(lake, version, user_type, item_type)
    for name, fn in make_functions(spec).items():
        spark.udf.register(name, fn)
    return spec["versions"]


def register_views(spark, lake: str, versions: dict) -> list[str]:
    """Temp views for SQL: ``events``, ``items``, ``users`` (the clean tables, where present) and
    one per asset (its rows at the version in ``versions``). Returns the view names."""
    made = []
    for view, table in SQL_VIEWS.items():
        path = tables.table_path(lake, table)
        if lake_layer.table_exists(path):
            lake_layer.read_table(spark, path).createOrReplaceTempView(view)
            made.append(view)
    for asset, v in versions.items():
        read_asset(spark, lake, asset, v).createOrReplaceTempView(asset)
        made.append(asset)
    return made
