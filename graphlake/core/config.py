"""YAML config files loaded into the frozen, self-checking dataclasses of each stage.

Example:
    >>> from graphlake.etl.transforms import EtlRules
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

from graphlake.core.errors import ConfigError, InputNotFoundError

C = TypeVar("C")


def load_config(cls: type[C], source: str | Mapping | None, section: str | None = None) -> C:
    """Build dataclass ``cls`` from a YAML file path, a mapping, or ``None`` (defaults).

    Args:
        cls: a dataclass whose ``__post_init__`` checks its values.
        source: path of a YAML file, or an already-parsed mapping, or ``None``.
        section: read only this top-level key of the document (e.g. ``"etl"``), if present.

    Raises:
        InputNotFoundError: the file does not exist.
        ConfigError: the file is not valid YAML (the message gives file:line:column), the document
            is not a mapping, names a key ``cls`` does not have, or a value ``cls`` rejects.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"cls: expected a dataclass type, got {cls!r}")
    if source is None:
        return cls()
    if isinstance(source, str):
        data, where = _read_yaml(source), source
    elif isinstance(source, Mapping):
        data, where = dict(source), "mapping"
    else:
        raise TypeError(f"source: expected a YAML path or a mapping, got {type(source).__name__}")
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {where}: expected a mapping at the top level, got {type(data).__name__}")
    if section is not None and section in data:
        data = data[section]
        if not isinstance(data, Mapping):
            raise ConfigError(f"config {where}: section {section!r} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"config {where}: unknown keys {unknown} for {cls.__name__} (known: {sorted(known)})")
    try:
        return cls(**data)
    except (ValueError, TypeError) as exc:  # __post_init__ names the field; say which file it came from
        raise ConfigError(f"config {where}: {exc}") from exc


def _read_yaml(path: str):
    if not os.path.isfile(path):
        raise InputNotFoundError(f"config: no such file {path!r}")
    with open(path, encoding="utf-8") as fh:
        try:
            return yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"config {where}: not valid YAML ({problem})") from exc


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
