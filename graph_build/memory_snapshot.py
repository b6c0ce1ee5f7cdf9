"""An in-memory training snapshot: the reading interface of :class:`graphlake.graph_build.snapshot.Snapshot`
over arrays a caller already holds (a notebook's graph, a benchmark's synthetic one, a test's).

The trainer, the samplers and inference read a snapshot through ``edge_types``, ``node_types``,
``num_nodes``, ``csr``, ``feature_names``, ``features`` and ``manifest`` (``feature_spec``,
``graph_version``); :class:`MemorySnapshot` answers the same calls without a folder. Nothing is
copied: the arrays are used as given (keep them unchanged while a trainer reads them).

Example:
    >>> snap = MemorySnapshot({"user": 3, "item": 2},
    ...                       {"user__click__item": (np.array([0, 1, 1, 3]), np.array([1, 0, 1]), np.ones(3))},
    ...                       features={"item": {"text": np.zeros((2, 4), np.float32)}})
    >>> snap.csr("user__click__item")[1].tolist(), snap.features("item", "text").shape
    ([1, 0, 1], (2, 4))
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from graphlake.core.edge_types import parse_edge_type


class MemorySnapshot:
    """A snapshot held in memory (see the module docstring).

    Args:
        num_nodes: ``{node_type: n}``; node ids are ``0..n-1``.
        edges: ``{"<src>__<rel>__<dst>": (indptr (n_src + 1,), indices (nnz,), weights (nnz,))}``,
            the CSR of each stored relation, rows = source ids, indices = destination ids.
        features: ``{node_type: {name: (n, dim) array}}`` with names from ``numeric``,
            ``numeric_missing``, ``categorical`` (integer codes, 0 = missing), ``text``, ``image``,
            ``has_image``; None = no features.
        feature_spec: the manifest's ``feature_spec`` (e.g. ``{"item": {"categorical":
            {"cardinalities": [5]}}}``); None = derived from the data where needed.
        graph_version: recorded in ``manifest``.

    Raises:
        TypeError / ValueError: a malformed argument, named (unknown node type, a CSR whose
        ``indptr`` does not fit its source type, an index outside its destination type, a feature
        matrix with another row count).
    """

    def __init__(self, num_nodes: Mapping[str, int], edges: Mapping[str, tuple],
                 features: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                 feature_spec: Mapping | None = None, graph_version: int = 0) -> None:
        if not isinstance(num_nodes, Mapping) or not num_nodes:
            raise TypeError(f"num_nodes: expected a non-empty {{node_type: count}} mapping, got {num_nodes!r}")
        for t, n in num_nodes.items():
            if not isinstance(t, str) or isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ValueError(f"num_nodes: expected {{str: int >= 0}}, got {t!r}: {n!r}")
        self._num = {t: int(n) for t, n in num_nodes.items()}
        if not isinstance(edges, Mapping):
            raise TypeError(f"edges: expected a {{edge_type: (indptr, indices, weights)}} mapping, got "
                            f"{type(edges).__name__}")
        self._csr = {name: self._checked_csr(name, csr) for name, csr in edges.items()}
        self._features = {t: self._checked_features(t, feats) for t, feats in (features or {}).items()}
        self.manifest = {
            "graph_version": int(graph_version), "feature_spec": dict(feature_spec or {}),
            "edge_types": {name: {"nnz": int(len(csr[1]))} for name, csr in sorted(self._csr.items())},
            "node_types": {t: {"num_nodes": n, "features": sorted(self._features.get(t, {}))}
                           for t, n in sorted(self._num.items())},
        }

    def _checked_csr(self, name, csr) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = parse_edge_type(name, "edges") if isinstance(name, str) and name.count("__") == 2 else ()
        if len(parts) != 3 or parts[0] not in self._num or parts[2] not in self._num:
            raise ValueError(f"edges: expected keys '<src>__<rel>__<dst>' over the types {sorted(self._num)}, "
                             f"got {name!r}")
        if not isinstance(csr, (tuple, list)) or len(csr) != 3:
            raise ValueError(f"edges[{name!r}]: expected (indptr, indices, weights), got {type(csr).__name__}")
        indptr, indices, weights = (np.asarray(x) for x in csr)
        src, dst = self._num[parts[0]], self._num[parts[2]]
        if indptr.shape != (src + 1,) or (src + 1 and (indptr[0] != 0 or indptr[-1] != len(indices))):
            raise ValueError(f"edges[{name!r}]: indptr must be ({src + 1},) from 0 to nnz {len(indices)}, got shape "
                             f"{indptr.shape}")
        if weights.shape != indices.shape or indices.ndim != 1:
            raise ValueError(f"edges[{name!r}]: indices and weights must be (nnz,), got {indices.shape} and "
                             f"{weights.shape}")
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= dst):
            raise ValueError(f"edges[{name!r}]: indices must be in [0, {dst}) ({parts[2]}), got range "
                             f"[{int(indices.min())}, {int(indices.max())}]")
        return indptr, indices, weights

    def _checked_features(self, node_type, feats) -> dict[str, np.ndarray]:
        if node_type not in self._num:
            raise ValueError(f"features: unknown node type {node_type!r} (types: {sorted(self._num)})")
        out = {}
        for name, mat in feats.items():
            mat = np.asarray(mat)
            if mat.ndim != 2 or mat.shape[0] != self._num[node_type]:
                raise ValueError(f"features[{node_type!r}][{name!r}]: expected ({self._num[node_type]}, dim), got "
                                 f"{mat.shape}")
            out[name] = mat
        return out

    @property
    def graph_version(self) -> int:
        return self.manifest["graph_version"]

    @property
    def edge_types(self) -> list[str]:
        return sorted(self._csr)

    @property
    def node_types(self) -> list[str]:
        return sorted(self._num)

    def num_nodes(self, node_type: str) -> int:
        if node_type not in self._num:
            raise KeyError(f"node_type: {node_type!r} not in snapshot (has {self.node_types})")
        return self._num[node_type]

    def feature_names(self, node_type: str) -> list[str]:
        return sorted(self._features.get(node_type, {}))

    def csr(self, edge_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if edge_type not in self._csr:
            raise KeyError(f"edge_type: {edge_type!r} not in snapshot (has {self.edge_types})")
        return self._csr[edge_type]

    def features(self, node_type: str, name: str) -> np.ndarray:
        feats = self._features.get(node_type, {})
        if name not in feats:
            raise KeyError(f"name: feature {name!r} of {node_type!r} not in snapshot (has {sorted(feats)})")
        return feats[name]
