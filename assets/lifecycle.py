"""Promote, roll back, retire and vacuum asset versions; read an asset at any version.

Each state change is ONE registry commit (:func:`graphlake.assets.registry.update_registry`), so
``production`` moves atomically from one version to the next and every move is in the registry's
Delta history. Statuses: ``candidate`` → ``production`` (the previous production version
goes back to ``candidate``, still readable) → ``retired`` (explicitly; still readable) →
vacuumed (its rows and files removed; no longer readable).

Example:
    >>> gate(spark, "lakehouse", "item_embeddings", 2)             # gate only, recorded on the row
    >>> promote(spark, "lakehouse", "item_embeddings", 2)          # gate (or reuse a pass), production
    >>> rollback(spark, "lakehouse", "item_embeddings")            # back to the previous production
    >>> df = read_asset(spark, "lakehouse", "item_embeddings")      # production rows
    >>> old = read_asset(spark, "lakehouse", "item_embeddings", version=1)
"""

from __future__ import annotations

import json
import shutil

from graphlake.assets import schema as A
from graphlake.assets.config import AssetConfig
from graphlake.assets.gate import run_gate
from graphlake.assets.outputs import drop_outputs
from graphlake.assets.registry import (
    AssetError,
    asset_table,
    list_versions,
    now,
    open_version,
    production,
    read_registry,
    registry_path,
    resolve,
    update_registry,
    versions_of,
)
from graphlake.core import lake, quality
from graphlake.core.errors import UsageError


class GateFailedError(AssetError):
    """The quality gate failed; production was not changed. ``summary`` holds the GE results."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


def _find(rows: list[dict], asset: str, version: int) -> dict:
    for r in rows:
        if r["asset"] == asset and r["version"] == version:
            return r
    resolve(rows, asset, version)  # raises the precise error
    raise AssetError(f"{asset} v{version} not found")


def _check_version(version) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UsageError(f"version: expected an asset version number >= 1, got {version!r}")
    return version


def _gate_json(summary: dict) -> str:
    return json.dumps({"success": summary["success"], "figures": summary["figures"], "data_docs": summary["data_docs"],
                       "failed": [f for s in summary["suites"].values() for f in s["failed"]]}, sort_keys=True,
                      default=str)


def _recorded_gate(rows: list[dict], row: dict) -> dict | None:
    """The passing gate recorded on ``row`` by :func:`gate`, if production has not moved since."""
    if not row.get("gate"):
        return None
    recorded = json.loads(row["gate"])
    prod = production(rows, row["asset"])
    prod_version = prod["version"] if prod and prod["version"] != row["version"] else None
    if not recorded.get("success") or recorded.get("figures", {}).get("production_version") != prod_version:
        return None
    return {**recorded, "suites": {}, "reused": True}


def _candidate(lake_dir: str, asset: str, version: int) -> tuple[list[dict], dict]:
    rows, _ = read_registry(lake_dir)
    row = resolve(rows, asset, version)
    if row["status"] != A.CANDIDATE:
        raise AssetError(f"version: {asset} v{version} is {row['status']}; only a candidate can be gated or promoted")
    return rows, row


def gate(spark, lake_dir: str, asset: str, version: int, config: AssetConfig | None = None,
         build_docs: bool = True) -> dict:
    """Run the quality gate on candidate ``asset`` v``version`` and record the result on its row.

    Production is not changed. A later :func:`promote` reuses a recorded pass while production
    is still the version the gate compared against (otherwise it gates again).

    Raises:
        GateFailedError: an expectation failed (recorded on the row). AssetError: not a candidate.

    Example:
        >>> gate(spark, "lakehouse", "item_embeddings", 2)["figures"]["category_lift"]
    """
    config = config or AssetConfig()
    version = _check_version(version)
    rows, row = _candidate(lake_dir, asset, version)
    summary = run_gate(spark, lake_dir, rows, row, config, build_docs=build_docs)
    recorded = _gate_json(summary)

    def change(current):
        target = _find(current, asset, version)
        target.update(gate=recorded, note="gate passed" if summary["success"] else "gate failed", updated_at=now())
        return current

    update_registry(spark, lake_dir, change, "gate" if summary["success"] else "gate-failed", asset, version)
    if not summary["success"]:
        raise GateFailedError(f"{asset} v{version} failed its quality gate: " + quality.format_failures(summary), summary)
    return summary


def promote(spark, lake_dir: str, asset: str, version: int, config: AssetConfig | None = None,
            build_docs: bool = True, reuse_gate: bool = True) -> dict:
    """Gate ``asset`` v``version`` and make it production; returns the gate summary.

    Args:
        reuse_gate: skip the gate when :func:`gate` recorded a pass on this version and production
            has not changed since (the summary then has ``"reused": True``).

    Raises:
        GateFailedError: an expectation failed (the result is recorded on the candidate's row;
            production is untouched). AssetNotFoundError / AssetError: no such candidate.
    """
    config = config or AssetConfig()
    version = _check_version(version)
    rows, row = _candidate(lake_dir, asset, version)
    summary = _recorded_gate(rows, row) if reuse_gate else None
    if summary is None:
        summary = run_gate(spark, lake_dir, rows, row, config, build_docs=build_docs)
    gate_json = row["gate"] if summary.get("reused") else _gate_json(summary)

    def change(current):
        target = _find(current, asset, version)
        if target["status"] != A.CANDIDATE:
            raise AssetError(f"version: {asset} v{version} became {target['status']} meanwhile; not promoted")
        target.update(gate=gate_json, updated_at=now())
        if not summary["success"]:
            target["note"] = "gate failed"
            return current
        if summary.get("reused") and _recorded_gate(current, target) is None:
            raise AssetError(f"version: production of {asset} moved while v{version} was promoted; gate it again")
        old = production(current, asset)
        if old is not None:
            old.update(status=A.CANDIDATE, note=f"superseded by v{version}", updated_at=now())
        target.update(status=A.PRODUCTION, promoted_at=now(), note="promoted" + (
            f" (previous production v{old['version']})" if old else ""))
        return current

    update_registry(spark, lake_dir, change, "promote" if summary["success"] else "gate-failed", asset, version)
    if not summary["success"]:
        raise GateFailedError(f"{asset} v{version} was not promoted: " + quality.format_failures(summary), summary)
    return summary


def rollback(spark, lake_dir: str, asset: str, to_version: int | None = None) -> dict:
    """Make the previous production version (or ``to_version``) production again, atomically.

    The version rolled back from becomes a candidate; the gate is not re-run (the target passed
    it when it was promoted). Returns ``{"asset", "from", "to"}``.
    """
    if to_version is not None:
        _check_version(to_version)
    moved = {}

    def change(current):
        cur = production(current, asset)
        if cur is None:
            raise AssetError(f"asset: {asset} has no production version to roll back from")
        if to_version is not None:
            target = _find(current, asset, to_version)
            if target["status"] != A.CANDIDATE or target["vacuumed"] or target["promoted_at"] is None:
                raise AssetError(f"to_version: {asset} v{to_version} is {target['status']}"
                                 f"{' and was never in production' if target['promoted_at'] is None else ''}; "
                                 "roll back only to an earlier production version that is still a candidate")
        else:
            earlier = [r for r in versions_of(current, asset) if r["status"] == A.CANDIDATE and not r["vacuumed"]
                       and r["promoted_at"] is not None and r["promoted_at"] < cur["promoted_at"]]
            if not earlier:
                raise AssetError(f"asset: {asset} has no earlier production version to roll back to "
                                 f"(production is v{cur['version']})")
            target = max(earlier, key=lambda r: r["promoted_at"])
        cur.update(status=A.CANDIDATE, note=f"rolled back to v{target['version']}", updated_at=now())
        target.update(status=A.PRODUCTION, note=f"rollback from v{cur['version']}", updated_at=now())
        moved.update({"asset": asset, "from": cur["version"], "to": target["version"]})
        return current

    update_registry(spark, lake_dir, change, "rollback", asset, to_version)
    return moved


def retire(spark, lake_dir: str, asset: str, version: int) -> None:
    """Mark a non-production version retired (still readable until :func:`vacuum`)."""
    version = _check_version(version)

    def change(current):
        row = _find(current, asset, version)
        if row["status"] == A.PRODUCTION:
            raise AssetError(f"version: {asset} v{version} is production; promote or roll back to another first")
        if row["status"] == A.PENDING:
            raise AssetError(f"version: {asset} v{version} is being published")
        row.update(status=A.RETIRED, note="retired", updated_at=now())
        return current

    update_registry(spark, lake_dir, change, "retire", asset, version)


def vacuum(spark, lake_dir: str, asset: str, retention_hours: int = 0) -> list[int]:
    """Delete the rows and files of ``asset``'s retired and failed versions; returns those versions.

    Their partitions are removed from ``emb/<asset>`` in one commit (for ``item_embeddings`` also
    from ``assets/recommendations`` and ``assets/similar_items``), then Delta files no table
    version within ``retention_hours`` references are deleted (the other versions' rows are in
    the latest table version and stay).
    """
    if isinstance(retention_hours, bool) or not isinstance(retention_hours, int) or retention_hours < 0:
        raise UsageError(f"retention_hours: expected an int >= 0, got {retention_hours!r}")
    rows, _ = read_registry(lake_dir)
    gone = sorted(r["version"] for r in versions_of(rows, asset)
                  if r["status"] in (A.RETIRED, A.FAILED) and not r["vacuumed"])
    if not gone:
        return []
    path = asset_table(lake_dir, asset)
    if lake.table_exists(path):
        empty = lake.read_table(spark, path).limit(0)
        lake.write_table(empty, path, mode="overwrite", replace_partitions={A.ASSET_VERSION: gone},
                         metadata={"graphlake.job": "assets-vacuum", "graphlake.asset_versions": str(gone)})
        lake.vacuum(path, retention_hours=retention_hours, dry_run=False)
    if asset == A.asset_name("item"):  # the top-K tables are keyed by the item version
        drop_outputs(spark, lake_dir, gone, retention_hours)

    def change(current):
        for r in current:
            if r["asset"] == asset and r["version"] in gone:
                if r["files"]:
                    shutil.rmtree(r["files"], ignore_errors=True)
                r.update(vacuumed=True, note=f"{r['note']}; vacuumed", updated_at=now())
        return current

    update_registry(spark, lake_dir, change, "vacuum", asset, None)
    return gone


def read_asset(spark, lake_dir: str, asset: str, version="production"):
    """The rows ``(key, node_id, embedding, origin, asset_version)`` of an asset version
    (``"production"``, ``"latest"`` or a number)."""
    return open_version(lake_dir, asset, version).read(spark)


def list_assets(lake_dir: str, asset: str | None = None) -> list[dict]:
    """Every registered version (all, or one asset's) as dicts (:meth:`AssetVersion.to_dict`:
    metrics and gate parsed from JSON), for ``graphlake assets list``."""
    return [v.to_dict() for v in list_versions(lake_dir, asset)]


def registry_history(lake_dir: str, limit: int | None = 50) -> list[dict]:
    """The registry's commits, newest first: version, time, action, asset, asset version."""
    if not lake.table_exists(registry_path(lake_dir)):
        return []
    return [{"registry_version": h.get("version"), "timestamp": h.get("timestamp"),
             "action": h.get("graphlake.action"), "asset": h.get("graphlake.asset"),
             "version": h.get("graphlake.version")} for h in lake.history(registry_path(lake_dir), limit)]

