"""Configuration of the graph build: a frozen dataclass, checked when it is built.

Load it from YAML with :func:`graphlake.core.config.load_config` (keys at the top level or under
``graph:``); an unknown key is an error naming it.

Example:
    >>> from graphlake.core.config import load_config
    >>> cfg = load_config(GraphConfig, {"half_life_days": 14, "behaviour_weights": {"click": 1, "purchase": 5}})
    >>> cfg.half_life_days, cfg.behaviour_weights["purchase"]
    (14.0, 5.0)
    >>> len(config_hash(cfg))
    16

YAML::

    graph:
      behaviour_weights: {click: 1.0, view: 0.5, cart: 2.0, fav: 2.0, purchase: 4.0}
      half_life_days: 30          # null: no time decay
      reference_time: null        # null: the latest event ts of the input (deterministic)
      co_view_window_minutes: 30
      co_purchase_window_days: 7
      max_items_per_session: 50   # skew cap before the co-view self-join
      max_items_per_user: 100     # skew cap before the co-purchase self-join
      top_k: 20                   # derived item -> item edges kept per item
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime

from graphlake.core.config import parse_iso_utc, to_dict
from graphlake.graph_build import schema as G

DEFAULT_BEHAVIOUR_WEIGHTS = {"click": 1.0, "view": 0.5, "cart": 2.0, "fav": 2.0, "purchase": 4.0}


def _positive_number(name: str, value, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0{' or null' if allow_none else ''}, got {value!r}")
    return float(value)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: expected an int > 0, got {value!r}")
    return value


def _event_types(name: str, value) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name}: expected a non-empty list of event types, got {value!r}")
    bad = [v for v in value if v not in G.BEHAVIOUR_RELATIONS]
    if bad:
        raise ValueError(f"{name}: unknown event types {bad} (known: {list(G.BEHAVIOUR_RELATIONS)})")
    return tuple(sorted(set(value), key=G.BEHAVIOUR_RELATIONS.index))


def parse_utc(name: str, value: str) -> datetime:
    """An ISO-8601 string as a naive UTC datetime (Spark's timestamp convention here)."""
    return parse_iso_utc(name, value).replace(tzinfo=None)


@dataclass(frozen=True)
class GraphConfig:
    """Rules of ``graphlake graph build``.

    Attributes:
        behaviour_weights: event type -> weight of one event of that type. Only these event
            types become ``user -> item`` edge tables; omit a type to leave it out of the graph.
        half_life_days: an event ``half_life_days`` older than the reference time counts half;
            ``None`` disables the decay.
        reference_time: ISO-8601 time the decay is measured from; ``None`` (default) takes the
            latest event ``ts`` of the input, so a rebuild of the same input gives the same weights.
        min_weight: edges whose summed weight is below this are dropped (keeps weights > 0).
        include_queries: build ``query`` nodes and ``query -> item`` ``searched`` edges when the
            events carry queries.
        co_view_event_types: event types that count as a view for ``co_view``.
        co_view_window_minutes: two items of one session are co-viewed when their latest views
            in the session are at most this far apart.
        co_purchase_event_types: event types that count as a purchase for ``co_purchase``.
        co_purchase_window_days: two items bought by one user at most this far apart.
        max_items_per_session: skew cap: only the most recent N distinct items of a session
            enter the co-view self-join (so a session yields at most N*(N-1) pairs).
        max_items_per_user: skew cap: the most recent N distinct purchased items of a user enter
            the co-purchase self-join.
        top_k: derived ``item -> item`` edges kept per source item (highest weight first).
        text_model, text_dim, text_batch_size, image_dim, categorical_vocab_size,
        category_levels, text_partitions, text_threads, text_device: options of the node
            features, passed through to ``graphlake.graph_build.features`` (which checks them); ``text_dim``
            and ``image_dim`` are also the sizes the graph's GE suite expects (``image_dim``
            ``None``: one common size). ``text_model: hashing`` uses the model-free fallback.
    """

    behaviour_weights: dict = field(default_factory=lambda: dict(DEFAULT_BEHAVIOUR_WEIGHTS))
    half_life_days: float | None = 30.0
    reference_time: str | None = None
    min_weight: float = 1e-6
    include_queries: bool = True
    co_view_event_types: tuple = ("click", "view")
    co_view_window_minutes: float = 30.0
    co_purchase_event_types: tuple = ("purchase",)
    co_purchase_window_days: float = 7.0
    max_items_per_session: int = 50
    max_items_per_user: int = 100
    top_k: int = 20
    text_model: str = "all-MiniLM-L6-v2"
    text_dim: int = 384
    text_batch_size: int = 256
    image_dim: int | None = None
    categorical_vocab_size: int = 1000
    category_levels: int = 3
    text_partitions: int | None = None
    text_threads: int | None = None
    text_device: str = "cpu"

    def __post_init__(self):
        weights = self.behaviour_weights
        if not isinstance(weights, dict) or not weights:
            raise ValueError(f"behaviour_weights: expected a non-empty mapping event type -> weight, got {weights!r}")
        bad = [k for k in weights if k not in G.BEHAVIOUR_RELATIONS]
        if bad:
            raise ValueError(f"behaviour_weights: unknown event types {bad} (known: {list(G.BEHAVIOUR_RELATIONS)})")
        normalised = {k: _positive_number(f"behaviour_weights[{k!r}]", weights[k])
                      for k in G.BEHAVIOUR_RELATIONS if k in weights}
        object.__setattr__(self, "behaviour_weights", normalised)
        object.__setattr__(self, "half_life_days", _positive_number("half_life_days", self.half_life_days, True))
        if self.reference_time is not None:
            parse_utc("reference_time", self.reference_time)
        object.__setattr__(self, "min_weight", _positive_number("min_weight", self.min_weight))
        if not isinstance(self.include_queries, bool):
            raise ValueError(f"include_queries: expected true or false, got {self.include_queries!r}")
        object.__setattr__(self, "co_view_event_types", _event_types("co_view_event_types", self.co_view_event_types))
        object.__setattr__(self, "co_purchase_event_types",
                           _event_types("co_purchase_event_types", self.co_purchase_event_types))
        for name in ("co_view_window_minutes", "co_purchase_window_days"):
            object.__setattr__(self, name, _positive_number(name, getattr(self, name)))
        for name in ("max_items_per_session", "max_items_per_user", "top_k", "text_dim", "text_batch_size"):
            _positive_int(name, getattr(self, name))
        if self.max_items_per_session < 2 or self.max_items_per_user < 2:
            raise ValueError("max_items_per_session / max_items_per_user: expected >= 2 (a pair needs two items), "
                             f"got {self.max_items_per_session} / {self.max_items_per_user}")
        for name in ("image_dim", "text_partitions", "text_threads"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        _positive_int("categorical_vocab_size", self.categorical_vocab_size)
        _positive_int("category_levels", self.category_levels)
        if not isinstance(self.text_device, str) or not self.text_device:
            raise ValueError(f"text_device: expected a device name like 'cpu' or 'cuda', got {self.text_device!r}")
        if not isinstance(self.text_model, str) or not self.text_model:
            raise ValueError(f"text_model: expected a non-empty model name, got {self.text_model!r}")

    def reference_datetime(self) -> datetime | None:
        """``reference_time`` as a naive UTC datetime, ``None`` when it is derived from the input."""
        return None if self.reference_time is None else parse_utc("reference_time", self.reference_time)


def config_json(config: GraphConfig) -> str:
    """The config as canonical JSON (sorted keys): what the manifest stores and hashes."""
    if not isinstance(config, GraphConfig):
        raise TypeError(f"config: expected GraphConfig, got {type(config).__name__}")
    return json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))


def config_hash(config: GraphConfig) -> str:
    """First 16 hex digits of the SHA-256 of :func:`config_json`."""
    return hashlib.sha256(config_json(config).encode("utf-8")).hexdigest()[:16]
