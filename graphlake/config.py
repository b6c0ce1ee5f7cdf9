"""YAML config files loaded into the frozen, self-checking dataclasses of each stage.

Example:
    >>> from etl.transforms import EtlRules
    >>> rules = load_config(EtlRules, "etl.yaml")        # file with e.g. `bot_max_events_per_day: 500`
    >>> rules = load_config(EtlRules, {"max_late_days": 7})
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TypeVar

import yaml

C = TypeVar("C")


def load_config(cls: type[C], source: str | Mapping | None, section: str | None = None) -> C:
    """Build dataclass ``cls`` from a YAML file path, a mapping, or ``None`` (defaults).

    Args:
        cls: a dataclass whose ``__post_init__`` checks its values.
        source: path of a YAML file, or an already-parsed mapping, or ``None``.
        section: read only this top-level key of the document (e.g. ``"etl"``), if present.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the document is not a mapping, or names a key ``cls`` does not have.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"cls: expected a dataclass type, got {cls!r}")
    if source is None:
        return cls()
    if isinstance(source, str):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"config: no such file {source!r}")
        with open(source, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        where = source
    elif isinstance(source, Mapping):
        data, where = dict(source), "mapping"
    else:
        raise TypeError(f"source: expected a YAML path or a mapping, got {type(source).__name__}")
    if not isinstance(data, Mapping):
        raise ValueError(f"config {where}: expected a mapping at the top level, got {type(data).__name__}")
    if section is not None and section in data:
        data = data[section]
        if not isinstance(data, Mapping):
            raise ValueError(f"config {where}: section {section!r} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"config {where}: unknown keys {unknown} for {cls.__name__} (known: {sorted(known)})")
    return cls(**data)


def to_dict(config) -> dict:
    """A dataclass config as a plain dict (for JSON summaries and hashing)."""
    return dataclasses.asdict(config)


def parse_iso_utc(name: str, value: str) -> datetime:
    """An ISO-8601 string (``Z`` or an offset; none means UTC) as an aware UTC datetime.

    Raises:
        TypeError: ``value`` is not a string. ValueError: it is not ISO-8601 (both name ``name``).
    """
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected an ISO-8601 string, got {type(value).__name__} {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{name}: expected an ISO-8601 time like 2024-01-31T00:00:00Z, got {value!r}") from exc
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
