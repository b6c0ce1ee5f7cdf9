"""``assets/registry``: one row per (asset, version), changed only by atomic Delta commits.

Every change (publish, promote, rollback, retire, vacuum) rewrites the small registry table as
ONE Delta commit made against the version it read (optimistic concurrency, no retries inside
the commit): two writers that read the same version cannot both commit, so the registry is
never half-updated and nothing is lost. The commit's metadata names the action
(``graphlake.action``, ``graphlake.asset``, ``graphlake.version``), so ``graphlake assets
history`` is the registry table's own Delta history, and any earlier registry state can be read
by time travel.

The registry is metadata of bounded size (one row per published asset version): reading it
into the driver is allowed.

Readers outside the registry's writers (the SQL functions, embed-new, the report, the CLI) get an
:class:`AssetVersion` — the typed hand-over of one published version — from :func:`open_version`
or :func:`list_versions`; the raw rows stay inside this package.

Example:
    >>> open_version("lakehouse", "item_embeddings", "production").version
    3
    >>> rows, registry_version = read_registry("lakehouse")     # the raw rows, for writers
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timezone

from pyspark.sql import functions as F

import graphlake
from graphlake.assets import schema as A
from graphlake.core import lake, tables
from graphlake.core.errors import InputNotFoundError

_MAX_RETRIES = 8


class AssetError(RuntimeError):
    """An asset operation could not be done; the message says why and what to do."""


class AssetNotFoundError(AssetError, InputNotFoundError, LookupError):
    """No such asset, version, or no production version."""


class RegistryConflictError(AssetError):
    """Another writer changed the registry first (e.g. a concurrent publish); nothing was committed."""


def now() -> datetime:
    """UTC now without tzinfo (Spark ``timestamp``)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def registry_path(lake_dir: str) -> str:
    return tables.table_path(lake_dir, tables.ASSETS_REGISTRY)


def asset_table(lake_dir: str, asset: str) -> str:
    """The Delta table of an embedding asset's rows (``assets/embeddings_<asset>``)."""
    return tables.table_path(lake_dir, tables.embeddings(asset))


def code_version() -> str:
    """``graphlake <version>`` plus the git commit of the code when it runs from a checkout."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        sha = subprocess.run(["git", "-C", here, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"graphlake {graphlake.__version__}" + (f" ({sha})" if sha else "")


def read_registry(lake_dir: str, version: int | None = None) -> tuple[list[dict], int | None]:
    """All registry rows (dicts, sorted by asset and version) and the registry's Delta version
    (``None`` and no rows when nothing was ever published)."""
    path = registry_path(lake_dir)
    if not lake.table_exists(path):
        return [], None
    table_version = lake.table_version(path) if version is None else version
    rows = lake.read_arrow(path, table_version).to_pylist()
    return sorted(rows, key=lambda r: (r["asset"], r["version"])), table_version


def commit_registry(spark, lake_dir: str, rows: list[dict], read_version: int | None, action: str,
                    asset: str, version: int | None) -> int:
    """Replace the registry with ``rows`` as one commit against ``read_version``; returns the new
    Delta version. Raises :class:`RegistryConflictError` when another commit landed first."""
    bad = [r for r in rows if r["status"] not in A.STATUSES]
    if bad:
        raise ValueError(f"rows: unknown status {bad[0]['status']!r} (expected one of {list(A.STATUSES)})")
    df = spark.createDataFrame([tuple(r.get(c) for c in A.REGISTRY_COLUMNS) for r in rows], A.REGISTRY_SCHEMA)
    meta = {"graphlake.job": "assets", "graphlake.action": action, "graphlake.asset": asset,
            "graphlake.version": "" if version is None else str(version)}
    try:
        res = lake.write_table(df.coalesce(1), registry_path(lake_dir), mode="overwrite", read_version=read_version,
                               metadata=meta, must_create=read_version is None)
    except lake.CommitConflictError as exc:
        raise RegistryConflictError(
            f"assets registry: another writer committed after version {read_version} was read "
            f"({action} {asset} v{version} was not applied): {exc}") from exc
    return res.version


def update_registry(spark, lake_dir: str, change: Callable[[list[dict]], list[dict]], action: str, asset: str,
                    version: int | None, retries: int = _MAX_RETRIES) -> tuple[list[dict], int]:
    """Read, apply ``change`` (a pure function of the rows; it may raise), commit; on a conflict
    re-read and re-apply (at most ``retries`` times). Returns (new rows, registry version)."""
    for attempt in range(retries + 1):
        rows, read_version = read_registry(lake_dir)
        new_rows = change([dict(r) for r in rows])
        try:
            return new_rows, commit_registry(spark, lake_dir, new_rows, read_version, action, asset, version)
        except RegistryConflictError:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


def versions_of(rows: list[dict], asset: str) -> list[dict]:
    return [r for r in rows if r["asset"] == asset]


def next_version(rows: list[dict], asset: str) -> int:
    return max((r["version"] for r in versions_of(rows, asset)), default=0) + 1


def production(rows: list[dict], asset: str) -> dict | None:
    prod = [r for r in versions_of(rows, asset) if r["status"] == A.PRODUCTION]
    if len(prod) > 1:
        raise AssetError(f"assets registry: {asset} has {len(prod)} production versions (corrupt registry)")
    return prod[0] if prod else None


def resolve(rows: list[dict], asset: str, version) -> dict:
    """The registry row of ``asset`` at ``version``: an int, ``"production"`` or ``"latest"``
    (the newest candidate or production version).

    Raises:
        AssetNotFoundError: unknown asset or version, no production version, a version that is
            not readable (pending, failed, or retired and vacuumed).
    """
    if not isinstance(asset, str) or not asset:
        raise TypeError(f"asset: expected a non-empty string, got {asset!r}")
    mine = versions_of(rows, asset)
    if not mine:
        known = sorted({r["asset"] for r in rows})
        raise AssetNotFoundError(f"asset: no asset named {asset!r} is published (known: {known})")
    if version == "production":
        row = production(rows, asset)
        if row is None:
            raise AssetNotFoundError(f"version: {asset} has no production version yet "
                                     f"(promote one: graphlake assets promote --asset {asset} --version N)")
        return row
    if version == "latest":
        ok = [r for r in mine if r["status"] in (A.CANDIDATE, A.PRODUCTION)]
        if not ok:
            raise AssetNotFoundError(f"version: {asset} has no candidate or production version")
        return ok[-1]
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"version: expected an int, 'production' or 'latest', got {version!r}")
    found = [r for r in mine if r["version"] == version]
    if not found:
        raise AssetNotFoundError(f"version: {asset} has no version {version} (versions: {[r['version'] for r in mine]})")
    row = found[0]
    if row["status"] in (A.PENDING, A.FAILED):
        raise AssetNotFoundError(f"version: {asset} v{version} is {row['status']} and cannot be read ({row['note']})")
    if row["vacuumed"]:
        raise AssetNotFoundError(f"version: {asset} v{version} was retired and vacuumed; it is no longer readable")
    return row


@dataclass(frozen=True)
class AssetVersion:
    """One version of an embedding asset, as the registry knows it: what ``publish`` leaves for the
    SQL functions, embed-new, the report and any reader (the typed form of a registry row).

    Attributes:
        asset, version: e.g. ``item_embeddings``, 3.
        node_type: the node type embedded (``item``).
        graph_version, run_id, config_hash, code_version: where the vectors came from.
        dim, row_count: vector width and rows (keys) in this version.
        status: ``pending``, ``candidate``, ``production``, ``retired`` or ``failed``.
        table_version: the Delta version of the asset table that holds this version's rows.
        files: the folder of its files (vectors, keys, FAISS index, meta; :mod:`graphlake.assets.bundle`).
        base_version: the version an embed-new version extends (``None`` for a trained one).
        metrics, gate: the evaluation metrics and the last gate's outcome (parsed JSON; ``gate`` may be ``None``).
        note: why it has its status; created_at, updated_at, promoted_at: UTC datetimes (or ``None``).
        vacuumed: its rows and files were removed after retirement.
        lake: the lake root (absolute).

    Example:
        >>> v = open_version("lakehouse", "item_embeddings")
        >>> v.status, v.dim, os.path.basename(v.files)
        ('production', 64, 'v3')
    """

    asset: str
    version: int
    node_type: str
    graph_version: int
    run_id: str
    config_hash: str
    code_version: str
    metrics: dict
    dim: int
    row_count: int
    status: str
    table_version: int | None
    files: str
    base_version: int | None
    gate: dict | None
    note: str
    created_at: datetime | None
    updated_at: datetime | None
    promoted_at: datetime | None
    vacuumed: bool
    lake: str

    @classmethod
    def from_row(cls, row: dict, lake_dir: str) -> AssetVersion:
        """The record of registry row ``row`` (a dict of :data:`graphlake.assets.schema.REGISTRY_COLUMNS`)."""
        missing = [c for c in A.REGISTRY_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"row: expected a registry row, missing columns {missing}")
        values = {c: row[c] for c in A.REGISTRY_COLUMNS}
        values.update(metrics=json.loads(row["metrics"] or "{}"), gate=json.loads(row["gate"] or "null"),
                      vacuumed=bool(row["vacuumed"]), lake=os.path.abspath(lake_dir))
        return cls(**values)

    @property
    def table_path(self) -> str:
        """The Delta table of the asset's rows (all versions; this one is ``asset_version = version``)."""
        return asset_table(self.lake, self.asset)

    @property
    def readable(self) -> bool:
        """Its rows and files can be read (candidate, production, or retired and not vacuumed)."""
        return self.status not in (A.PENDING, A.FAILED) and not self.vacuumed

    def read(self, spark):
        """Its rows ``(key, node_id, embedding, origin, asset_version)``: the asset table at
        :attr:`table_version`, filtered to this version."""
        df = lake.read_table(spark, self.table_path, version=self.table_version)
        return df.filter(F.col(A.ASSET_VERSION) == self.version)

    def to_dict(self) -> dict:
        """Every field in a dict (``graphlake assets show --json``; datetimes stay datetimes)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def open_version(lake_dir: str, asset: str, version="production") -> AssetVersion:
    """The readable :class:`AssetVersion` of ``asset`` at ``version`` (an int, ``"production"`` or
    ``"latest"``; see :func:`resolve` for the errors)."""
    rows, _ = read_registry(lake_dir)
    return AssetVersion.from_row(resolve(rows, asset, version), lake_dir)


def list_versions(lake_dir: str, asset: str | None = None) -> list[AssetVersion]:
    """Every registered version (of ``asset``, or of all assets), sorted by asset and version,
    whatever its status."""
    rows, _ = read_registry(lake_dir)
    return [AssetVersion.from_row(r, lake_dir) for r in rows if asset is None or r["asset"] == asset]
