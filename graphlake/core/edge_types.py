"""Edge types: ``<src>__<relation>__<dst>`` names, the one parser and the one formatter.

An edge type names a stored relation of the graph (``user__purchase__item``): the suffix of its
table ``graph/edges_<name>``, a snapshot folder, a key of ``edge_counts`` and of a training
config's ``edge_types`` / ``targets``. Every stage parses names with :func:`parse_edge_type`
and builds them with :func:`edge_type_name`, so the separator rule lives here only.

Example:
    >>> et = parse_edge_type("user__purchase__item")
    >>> et.src, et.relation, et.dst
    ('user', 'purchase', 'item')
    >>> str(et)
    'user__purchase__item'
    >>> edge_type_name("item", "belongs_to", "brand")
    'item__belongs_to__brand'
"""

from __future__ import annotations

from typing import NamedTuple

SEPARATOR = "__"


class EdgeType(NamedTuple):
    """A parsed edge type; unpacks as ``src, relation, dst`` and prints as its name."""

    src: str
    relation: str
    dst: str

    def __str__(self) -> str:
        return SEPARATOR.join(self)

    @property
    def name(self) -> str:
        """``<src>__<relation>__<dst>``."""
        return str(self)


def _check_part(arg: str, value) -> str:
    if not isinstance(value, str) or not value or SEPARATOR in value or "/" in value:
        raise ValueError(f"{arg}: expected a non-empty name without {SEPARATOR!r} or '/', got {value!r}")
    return value


def edge_type_name(src: str, rel: str, dst: str) -> str:
    """``<src>__<rel>__<dst>``, the suffix of ``graph/edges_...`` and of snapshot folders.

    Raises:
        ValueError: a part is empty, not a string, or contains ``__`` or ``/`` (names the part).
    """
    return SEPARATOR.join(_check_part(arg, v) for arg, v in (("src", src), ("rel", rel), ("dst", dst)))


def parse_edge_type(value, name: str = "edge_type") -> EdgeType:
    """``"user__click__item"`` → ``EdgeType("user", "click", "item")``; an EdgeType or a 3-tuple
    of names passes through (checked).

    Args:
        value: the edge type's name (or its three parts).
        name: the argument to name in the error (``"targets"``, ``"edges"``...).

    Raises:
        ValueError: not three non-empty parts separated by ``__`` (names ``name`` and the value).
    """
    parts = value.split(SEPARATOR) if isinstance(value, str) else list(value) if isinstance(value, tuple) else []
    if len(parts) != 3 or not all(isinstance(p, str) and p and "/" not in p for p in parts):
        raise ValueError(f"{name}: expected an edge type '<src>__<rel>__<dst>', got {value!r}")
    return EdgeType(*parts)
