"""Point lookups on a published asset version without Spark: :func:`open_asset` (``graphlake.assets.open``).

For a service that wants embeddings, similar items or recommendations in its own process: the
version is resolved through the registry (a Delta table read with delta-rs), the vectors are
memory-mapped, the FAISS index and the users' histories (the training snapshot of the graph
version) are loaded on first use. The answers are those of the SQL functions — the same search
code (:mod:`graphlake.assets.search`), the same scores (the trained decoder's), the same
exclusions (``recommend`` leaves out what the user already interacted with; ``similar`` never
returns the item itself).

A reader is bound to the versions it resolved when it was opened: a promotion afterwards does
not change its answers; open it again to follow production.

Example:
    >>> import graphlake.assets
    >>> items = graphlake.assets.open("lakehouse", "item_embeddings", version="production")
    >>> items.vectors(["i17", "i3"]).shape
    (2, 64)
    >>> items.similar("i17", k=3)
    [('i41', 0.93), ('i8', 0.91), ('i3', 0.88)]
    >>> items.recommend("u5", k=2)
    [('i3', 4.1), ('i99', 3.7)]
"""

from __future__ import annotations

import numpy as np

from graphlake.assets import schema as A
from graphlake.assets import search as R
from graphlake.assets.bundle import Bundle, open_bundle
from graphlake.assets.registry import (
    AssetError,
    AssetNotFoundError,
    AssetVersion,
    list_versions,
    open_version,
)

_USER, _ITEM = "user", "item"


def open_asset(lake: str, asset: str = "item_embeddings", version="production") -> EmbeddingReader:
    """Open ``asset`` of the lake at ``lake`` for point lookups (no Spark).

    Args:
        lake: the lake root.
        asset: ``item_embeddings``, ``user_embeddings`` or another ``<node type>_embeddings``.
        version: ``"production"`` (default), ``"latest"`` or a version number.

    Returns:
        An :class:`EmbeddingReader`.

    Raises:
        AssetNotFoundError: nothing published, no such asset or version, no production version.
        TypeError / ValueError: a malformed ``asset`` or ``version``.
    """
    if not isinstance(lake, str) or not lake:
        raise TypeError(f"lake: expected the lake root (a path), got {lake!r}")
    return EmbeddingReader(open_version(lake, asset, version))


def _keys_list(keys, arg: str) -> list[str]:
    if isinstance(keys, str) or not hasattr(keys, "__iter__"):
        raise TypeError(f"{arg}: expected a list of keys (strings), got {type(keys).__name__}")
    out = list(keys)
    bad = [k for k in out if not isinstance(k, str)]
    if bad:
        raise TypeError(f"{arg}: expected string keys, got {bad[0]!r}")
    return out


def _k(k, arg: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= R.MAX_K:
        raise ValueError(f"{arg}: expected an int in 1..{R.MAX_K}, got {k!r}")
    return int(k)


class EmbeddingReader:
    """One asset version opened for lookups (see the module docstring). Thread-safe for reads.

    Attributes:
        version: the :class:`~graphlake.assets.registry.AssetVersion` read.
    """

    def __init__(self, version: AssetVersion):
        if not isinstance(version, AssetVersion):
            raise TypeError(f"version: expected an AssetVersion (open_version), got {type(version).__name__}")
        self.version = version
        self._bundle: Bundle = open_bundle(version.files)
        self._partner: EmbeddingReader | None = None

    def __repr__(self) -> str:
        v = self.version
        return f"EmbeddingReader({v.asset} v{v.version}, {v.status}, {len(self)} keys, dim {self.dim})"

    def __len__(self) -> int:
        return int(self._bundle.vectors.shape[0])

    def __contains__(self, key) -> bool:
        return isinstance(key, str) and bool(self._bundle.rows_of([key])[0] >= 0)

    @property
    def dim(self) -> int:
        return int(self._bundle.vectors.shape[1])

    @property
    def keys(self) -> np.ndarray:
        """Every key of the version, in node-id order (object array of strings)."""
        return self._bundle.keys

    def _rows(self, keys: list[str], arg: str) -> np.ndarray:
        rows = self._bundle.rows_of(keys)
        unknown = [k for k, r in zip(keys, rows) if r < 0]
        if unknown:
            raise KeyError(f"{arg}: {len(unknown)} key(s) not in {self.version.asset} v{self.version.version}: "
                           f"{unknown[:5]}")
        return rows

    def vectors(self, keys) -> np.ndarray:
        """The embeddings of ``keys`` (a list of strings): ``(len(keys), dim)`` float32, in order.

        Raises:
            KeyError: some key is not in the version (the message names up to five).
        """
        rows = self._rows(_keys_list(keys, "keys"), "keys")
        return np.asarray(self._bundle.vectors[rows], dtype=np.float32)

    def similar(self, key: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest items to item ``key`` by the trained score (never ``key`` itself),
        best first: ``[(item key, score)]`` — what ``gl_similar_items(key, k)`` returns.

        Raises:
            KeyError: ``key`` is not in the version. ValueError: ``k`` outside 1..1000, or the
            asset has no ANN index (only item-like assets have one).
        """
        if not isinstance(key, str):
            raise TypeError(f"key: expected a string key, got {key!r}")
        kk = _k(k)
        top, scores = R.similar_rows(self._bundle, self._rows([key], "key"), np.array([kk]))
        return self._scored(self._bundle, top[0], scores[0])

    def recommend(self, user_key: str, k: int = 10, exclude_seen: bool = True) -> list[tuple[str, float]]:
        """The ``k`` best items for user ``user_key``, best first: ``[(item key, score)]`` — what
        ``gl_recommend(user_key, k, exclude_seen)`` returns. The user vectors come from the
        ``user_embeddings`` version of the same training run (its production version when that is
        of the run, else its newest readable one); ``exclude_seen`` leaves out the items the user
        interacted with in the graph version's history.

        Raises:
            KeyError: unknown user. ValueError: bad ``k``. AssetNotFoundError / AssetError: no
            user (or item) version of the same run is readable.
        """
        if not isinstance(user_key, str):
            raise TypeError(f"user_key: expected a string key, got {user_key!r}")
        if not isinstance(exclude_seen, bool):
            raise TypeError(f"exclude_seen: expected True or False, got {exclude_seen!r}")
        kk = _k(k)
        users, items = self._pair()
        urow = users._rows([user_key], "user_key")
        ib = items._bundle
        top, scores = R.recommend_rows(users._bundle, ib, urow, np.array([kk]),
                                       R.history_of(ib) if exclude_seen else None)
        return self._scored(ib, top[0], scores[0])

    def _pair(self) -> tuple[EmbeddingReader, EmbeddingReader]:
        """(users, items) of this reader's run; this reader is one of them."""
        node_type = self.version.node_type
        if node_type not in (_USER, _ITEM):
            raise AssetError(f"recommend: needs the user or the item asset, not {self.version.asset}")
        if self._partner is None:
            other = _USER if node_type == _ITEM else _ITEM
            self._partner = EmbeddingReader(_same_run(self.version, A.asset_name(other)))
        return (self, self._partner) if node_type == _USER else (self._partner, self)

    @staticmethod
    def _scored(bundle: Bundle, rows: np.ndarray, scores: np.ndarray) -> list[tuple[str, float]]:
        keep = rows >= 0
        return [(str(bundle.keys[r]), float(s)) for r, s in zip(rows[keep], scores[keep])]


def _same_run(version: AssetVersion, asset: str) -> AssetVersion:
    """The readable version of ``asset`` trained in ``version``'s run with the same vector width:
    its production version when that is of the run, else the newest."""
    mine = [v for v in list_versions(version.lake, asset)
            if v.readable and v.run_id == version.run_id and v.dim == version.dim]
    if not mine:
        raise AssetNotFoundError(f"recommend: no readable {asset} version of run {version.run_id} (the run of "
                                 f"{version.asset} v{version.version}); publish the run's {asset}")
    production = [v for v in mine if v.status == A.PRODUCTION]
    return production[0] if production else mine[-1]
