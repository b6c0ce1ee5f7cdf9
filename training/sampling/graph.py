"""The heterogeneous training graph: one CSR per message relation, keyed by the aggregating node.

Every stored edge type ``<s>__<r>__<d>`` (a CSR indexed by the stored source, as the training
snapshot writes it) gives the two message relations of :func:`message_relations`:

* ``(s, r, d)``: aggregated at ``d``; its CSR is the *reverse* of the stored one (row ``v`` of
  type ``d`` lists the sources ``u`` of the stored edges ``u -> v``, sorted by id). It is built
  once, vectorised (a stable sort of the stored dst ids).
* ``(d, rev_r, s)``: aggregated at ``s``; its CSR is the stored one (row ``u`` lists ``u``'s
  stored destinations, sorted by id).

Per message relation the graph holds ``indptr`` int64 ``(n_rows + 1,)``, ``indices`` int64
``(nnz,)`` (ids of the neighbours, i.e. of the relation's *source* type) and ``weights`` float32
``(nnz,)``, as in-memory torch tensors. Memory: ``2 x (8 + 4)`` bytes per stored edge plus
``8`` bytes per node and relation (≈ 120 MB for 5M edges).

Example:
    >>> g = HeteroCSRGraph({"user": 3, "item": 2},
    ...                    {"user__click__item": (np.array([0, 2, 2, 3]), np.array([0, 1, 1]),
    ...                                           np.array([1.0, 2.0, 3.0], dtype=np.float32))})
    >>> g.relations
    [('item', 'rev_click', 'user'), ('user', 'click', 'item')]
    >>> g.csr(("user", "click", "item"))[1]      # users of item 0, then of item 1
    tensor([0, 0, 2])
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from graphlake.core.edge_types import parse_edge_type
from graphlake.training.sampling.base import Block, Relation, SampledBatch, message_relations, relation_name

CSR = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


# ---------------------------------------------------------------- vectorised CSR helpers
def _as_int64(x, name: str) -> torch.Tensor:
    """A 1-D int64 tensor from a numpy array / memmap / torch tensor of integers."""
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"{name}: expected an integer array, got dtype {x.dtype}")
        x = torch.from_numpy(np.array(x, dtype=np.int64, copy=True))
    elif isinstance(x, torch.Tensor):
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise TypeError(f"{name}: expected an integer tensor, got dtype {x.dtype}")
        x = x.to(torch.int64)
    else:
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if x.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {tuple(x.shape)}")
    return x.contiguous()


def _as_float32(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise TypeError(f"{name}: expected a numeric array, got dtype {x.dtype}")
        x = torch.from_numpy(np.array(x, dtype=np.float32, copy=True))
    elif isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or x.dtype.is_complex:
            raise TypeError(f"{name}: expected a numeric tensor, got dtype {x.dtype}")
        x = x.to(torch.float32)
    else:
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if x.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {tuple(x.shape)}")
    return x.contiguous()


def check_ids(ids, num_nodes: int, name: str) -> torch.Tensor:
    """``ids`` as a 1-D int64 tensor; TypeError for non-integers, ValueError outside ``0..num_nodes-1``."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name}: expected an int64 torch tensor, got {type(ids).__name__}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"{name}: expected an integer tensor, got dtype {ids.dtype}")
    if ids.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D tensor, got shape {tuple(ids.shape)}")
    ids = ids.to(torch.int64)
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= num_nodes):
        raise ValueError(f"{name}: expected ids in 0..{num_nodes - 1}, got [{int(ids.min())}, {int(ids.max())}]")
    return ids


def csr_find_range(indptr: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor,
                   cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``[lo, hi)`` of the entries equal to ``cols[i]`` in CSR row ``rows[i]`` (rows sorted).

    A vectorised binary search (``O(log max_degree)`` passes over the queries, no loop per
    query); ``hi == lo`` where the pair is absent.

    Args:
        indptr: int64 ``(n_rows + 1,)``; indices: int64 ``(nnz,)``, every row sorted ascending.
        rows, cols: int64 ``(Q,)`` query pairs.
    Returns:
        ``(lo, hi)`` int64 ``(Q,)``.

    Example:
        >>> csr_find_range(torch.tensor([0, 3]), torch.tensor([1, 4, 4]), torch.tensor([0]), torch.tensor([4]))
        (tensor([1]), tensor([3]))
    """
    start, end = indptr.index_select(0, rows), indptr.index_select(0, rows + 1)
    if len(rows) == 0 or len(indices) == 0:
        return start, start.clone()
    steps = int(end.sub(start).max()).bit_length() + 1
    last = len(indices) - 1

    def bound(strict: bool) -> torch.Tensor:  # first position whose value is >= col (> col when strict)
        lo, hi = start.clone(), end.clone()
        for _ in range(steps):
            mid = (lo + hi) // 2
            val = indices.index_select(0, mid.clamp(max=last))
            right = (val <= cols) if strict else (val < cols)
            active = lo < hi
            lo = torch.where(active & right, mid + 1, lo)
            hi = torch.where(active & ~right, mid, hi)
        return lo

    return bound(False), bound(True)


def csr_contains(indptr: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Bool ``(Q,)``: whether ``cols[i]`` is in CSR row ``rows[i]`` (see :func:`csr_find_range`)."""
    lo, hi = csr_find_range(indptr, indices, rows, cols)
    return hi > lo


def _expand_ranges(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``cat([arange(lo[i], hi[i]) for i])`` without a loop."""
    counts = (hi - lo).clamp(min=0)
    total = int(counts.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.int64)
    first = torch.repeat_interleave(lo - (torch.cumsum(counts, 0) - counts), counts)
    return first + torch.arange(total, dtype=torch.int64)


def csr_rows(indptr: torch.Tensor) -> torch.Tensor:
    """Row id of every CSR entry: int64 ``(nnz,)``."""
    return torch.repeat_interleave(torch.arange(len(indptr) - 1, dtype=torch.int64), indptr.diff())


def _transpose(indptr: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor, n_cols: int) -> CSR:
    """The CSR of the transpose; rows of the result sorted by id (stable sort of the column ids)."""
    rows = csr_rows(indptr)
    order = torch.sort(indices, stable=True).indices  # within a column, rows stay ascending
    counts = torch.bincount(indices, minlength=n_cols)
    t_indptr = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(counts, 0)])
    return t_indptr, rows.index_select(0, order), weights.index_select(0, order)


def _check_csr(name: str, indptr, indices, weights, n_src: int, n_dst: int) -> CSR:
    where = f"csr[{name!r}]"
    indptr = _as_int64(indptr, f"{where} indptr")
    indices = _as_int64(indices, f"{where} indices")
    weights = _as_float32(weights, f"{where} weights")
    if len(indptr) != n_src + 1:
        raise ValueError(f"{where} indptr: expected length num_nodes[src] + 1 = {n_src + 1}, got {len(indptr)}")
    if int(indptr[0]) != 0 or int(indptr[-1]) != len(indices) or bool((indptr.diff() < 0).any()):
        raise ValueError(f"{where} indptr: expected non-decreasing from 0 to nnz = {len(indices)}, "
                         f"got {int(indptr[0])} .. {int(indptr[-1])}")
    if len(weights) != len(indices):
        raise ValueError(f"{where} weights: expected length nnz = {len(indices)}, got {len(weights)}")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n_dst):
        raise ValueError(f"{where} indices: expected ids in 0..{n_dst - 1}, "
                         f"got [{int(indices.min())}, {int(indices.max())}]")
    if not bool(torch.isfinite(weights).all()):
        raise ValueError(f"{where} weights: expected finite values")
    if len(indices) > 1:  # rows must be sorted by id: sort them (stable) when they are not
        rows = csr_rows(indptr)
        key = rows * max(n_dst, 1) + indices
        if bool((key.diff() < 0).any()):
            order = torch.sort(key, stable=True).indices
            indices, weights = indices.index_select(0, order), weights.index_select(0, order)
    return indptr, indices, weights


class HeteroCSRGraph:
    """Heterogeneous graph for neighbour sampling and full-graph propagation.

    Args:
        num_nodes: ``{node_type: count}``.
        csr: ``{"<src>__<rel>__<dst>": (indptr (n_src+1,), indices (nnz,), weights (nnz,))}``,
            numpy arrays (memmaps included) or torch tensors, indexed by the stored source.
            Rows need not be sorted (they are sorted here, stably); indices may be int32 or int64.

    Raises:
        TypeError / ValueError naming the argument: unknown node types, bad shapes or ranges,
        two edge types that give the same message relation.

    Example:
        >>> g = HeteroCSRGraph.from_snapshot(open_snapshot("/data/snap/v7"))
        >>> g.degree(("user", "click", "item"), torch.tensor([0, 5]))   # clicks received by items 0, 5
    """

    def __init__(self, num_nodes: Mapping[str, int], csr: Mapping[str, tuple]):
        if not isinstance(num_nodes, Mapping):
            raise TypeError(f"num_nodes: expected a mapping node_type -> int, got {type(num_nodes).__name__}")
        for t, n in num_nodes.items():
            if not isinstance(t, str) or isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ValueError(f"num_nodes: expected {{str: int >= 0}}, got {t!r}: {n!r}")
        if not isinstance(csr, Mapping):
            raise TypeError("csr: expected a mapping edge_type -> (indptr, indices, weights), "
                            f"got {type(csr).__name__}")
        self._num_nodes = {t: int(n) for t, n in sorted(num_nodes.items())}
        self._csr: dict[Relation, CSR] = {}
        self._edge_type_of: dict[Relation, str] = {}
        self._stored: dict[str, tuple[Relation, Relation]] = {}
        for name in sorted(csr):
            fwd, rev = message_relations(name)
            s, _, d = fwd
            for t in (s, d):
                if t not in self._num_nodes:
                    raise ValueError(f"csr[{name!r}]: node type {t!r} not in num_nodes ({sorted(self._num_nodes)})")
            arrays = csr[name]
            if not isinstance(arrays, (tuple, list)) or len(arrays) != 3:
                raise ValueError(f"csr[{name!r}]: expected (indptr, indices, weights)")
            indptr, indices, weights = _check_csr(name, *arrays, self._num_nodes[s], self._num_nodes[d])
            for rel in (fwd, rev):
                if rel in self._csr:
                    raise ValueError(f"csr: edge types {self._edge_type_of[rel]!r} and {name!r} both give "
                                     f"message relation {rel}")
            self._csr[rev] = (indptr, indices, weights)
            self._csr[fwd] = _transpose(indptr, indices, weights, self._num_nodes[d])
            self._edge_type_of[fwd] = self._edge_type_of[rev] = name
            self._stored[name] = (fwd, rev)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_snapshot(cls, snap, edge_types=None, edge_ids: Mapping | None = None) -> "HeteroCSRGraph":
        """Build from an opened training snapshot (``graphlake.graph_build.snapshot.open_snapshot``).

        Args:
            snap: the snapshot (``csr``, ``num_nodes``, ``edge_types``, ``node_types``).
            edge_types: the stored edge types to load (default: all of them).
            edge_ids: optional ``{edge_type: int positions into the stored edge list}`` (the
                order of ``snap.csr(edge_type)``): only these edges enter the graph, e.g. the
                training split, so held-out edges never carry messages. Edge types not named
                keep every edge.

        Example:
            >>> g = HeteroCSRGraph.from_snapshot(snap, ["user__click__item"],
            ...                                  edge_ids={"user__click__item": train_positions})
        """
        available = list(snap.edge_types)
        names = available if edge_types is None else list(edge_types)
        for name in names:
            if name not in available:
                raise ValueError(f"edge_types: {name!r} not in the snapshot (has {available})")
        edge_ids = {} if edge_ids is None else edge_ids
        if not isinstance(edge_ids, Mapping):
            raise TypeError(f"edge_ids: expected a mapping edge_type -> positions, got {type(edge_ids).__name__}")
        for name in edge_ids:
            if name not in names:
                raise ValueError(f"edge_ids: {name!r} is not one of the loaded edge types {names}")
        csr = {}
        for name in names:
            indptr, indices, weights = snap.csr(name)
            if name in edge_ids:
                indptr, indices, weights = select_edges(name, np.asarray(indptr), indices, weights, edge_ids[name])
            csr[name] = (indptr, indices, weights)
        return cls({t: snap.num_nodes(t) for t in snap.node_types}, csr)

    def restrict_messages(self, levels: Mapping[str, torch.Tensor]) -> "HeteroCSRGraph":
        """A copy without the messages that flow from a higher level to a lower one.

        Nodes get an integer level (``levels[t]``: int ``(num_nodes[t],)`` >= 0; types not named
        are level 0). A message ``j -> i`` of relation ``(s, r, d)`` is kept iff
        ``levels[s][j] <= levels[d][i]``. With the trained graph at level 0 and held-out or new
        nodes above it, those nodes receive messages from the graph (and from their own level)
        but never send any into it: every level-0 node has exactly the neighbourhood it had
        before, under any sampling. Afterwards the two message relations of a stored edge type
        need not be transposes of each other (one-way edges); the stored relation is the one
        :meth:`train_edges` and :meth:`edge_count` read. Untouched relations share their tensors.

        Example:
            >>> lv = torch.zeros(g.num_nodes["item"], dtype=torch.int64); lv[held_out] = 1
            >>> g2 = g.restrict_messages({"item": lv})     # held-out items only receive messages
        """
        if not isinstance(levels, Mapping):
            raise TypeError(f"levels: expected a mapping node type -> int tensor, got {type(levels).__name__}")
        checked = {}
        for t, lv in levels.items():
            self._check_type(t, "levels")
            if not isinstance(lv, torch.Tensor) or lv.dtype.is_floating_point or lv.dtype == torch.bool \
                    or tuple(lv.shape) != (self._num_nodes[t],):
                raise ValueError(f"levels[{t!r}]: expected an integer tensor ({self._num_nodes[t]},), got {lv!r:.80}")
            if len(lv) and int(lv.min()) < 0:
                raise ValueError(f"levels[{t!r}]: expected levels >= 0, got {int(lv.min())}")
            checked[t] = lv.to(torch.int64)
        out = object.__new__(HeteroCSRGraph)
        out._num_nodes, out._edge_type_of, out._stored = dict(self._num_nodes), dict(self._edge_type_of), \
            dict(self._stored)
        out._csr = dict(self._csr)
        for rel, (indptr, indices, weights) in self._csr.items():
            s, _, d = rel
            if s not in checked or len(indices) == 0:  # level-0 sources reach every node
                continue
            rows = csr_rows(indptr)
            dst_level = checked[d].index_select(0, rows) if d in checked else torch.zeros_like(rows)
            keep = checked[s].index_select(0, indices) <= dst_level
            if bool(keep.all()):
                continue
            new_ptr = torch.zeros_like(indptr)
            torch.cumsum(torch.bincount(rows[keep], minlength=len(indptr) - 1), 0, out=new_ptr[1:])
            out._csr[rel] = (new_ptr, indices[keep], weights[keep])
        return out

    # ---------------------------------------------------------------- structure
    @property
    def num_nodes(self) -> dict[str, int]:
        """``{node_type: count}`` (a copy)."""
        return dict(self._num_nodes)

    @property
    def node_types(self) -> list[str]:
        return list(self._num_nodes)

    @property
    def edge_types(self) -> list[str]:
        """The stored edge types (sorted)."""
        return sorted(self._stored)

    @property
    def relations(self) -> list[Relation]:
        """All message relations, sorted."""
        return sorted(self._csr)

    def relations_into(self, node_type: str) -> list[Relation]:
        """The message relations aggregated at ``node_type`` (sorted)."""
        self._check_type(node_type, "node_type")
        return [rel for rel in self.relations if rel[2] == node_type]

    def edge_type_of(self, rel: Relation) -> str:
        """The stored edge type a message relation comes from."""
        return self._edge_type_of[self._rel(rel)]

    def csr(self, rel) -> CSR:
        """``(indptr int64 (n_dst+1,), indices int64 (nnz,), weights float32 (nnz,))`` of a message
        relation, rows = the aggregating (destination) nodes, indices = source node ids. Do not modify."""
        return self._csr[self._rel(rel)]

    def degree(self, rel, nodes: torch.Tensor) -> torch.Tensor:
        """int64 ``(len(nodes),)``: number of neighbours of each destination node in ``rel``."""
        rel = self._rel(rel)
        nodes = check_ids(nodes, self._num_nodes[rel[2]], "nodes")
        indptr = self._csr[rel][0]
        return indptr.index_select(0, nodes + 1) - indptr.index_select(0, nodes)

    def edge_count(self, edge_type: str) -> int:
        """Number of stored edges of ``edge_type``."""
        return len(self._csr[self._stored_rel(edge_type)][1])

    # ---------------------------------------------------------------- data parallelism
    def train_edges(self, edge_type: str, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``(src int64, dst int64)`` of rank ``rank``'s contiguous shard of the stored edge list.

        Shard ``r`` holds stored positions ``[E*r // W, E*(r+1) // W)``: shards are disjoint,
        cover all ``E`` edges and their sizes differ by at most one. Only that slice is read; the
        source ids come from a ``searchsorted`` on ``indptr``.

        Example:
            >>> src, dst = g.train_edges("user__click__item", rank=1, world_size=4)
        """
        rel = self._stored_rel(edge_type)
        for arg, v in (("rank", rank), ("world_size", world_size)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{arg}: expected an int, got {type(v).__name__}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank, world_size: expected 0 <= rank < world_size, "
                             f"got rank={rank}, world_size={world_size}")
        indptr, indices, _ = self._csr[rel]
        total = len(indices)
        lo, hi = total * rank // world_size, total * (rank + 1) // world_size
        if hi <= lo:
            return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
        bounds = torch.tensor([lo, hi - 1], dtype=torch.int64)
        row_lo, row_hi = (torch.searchsorted(indptr, bounds, right=True) - 1).tolist()
        counts = indptr[row_lo:row_hi + 2].clamp(lo, hi).diff()
        src = torch.repeat_interleave(torch.arange(row_lo, row_hi + 1, dtype=torch.int64), counts)
        return src, indices[lo:hi].clone()

    # ---------------------------------------------------------------- edge lookup
    def edge_positions(self, edge_type: str, src: torch.Tensor, dst: torch.Tensor) -> dict[Relation, torch.Tensor]:
        """Sorted unique positions, in each of the two message relations of ``edge_type``, of the
        edges equal to a pair ``(src[i], dst[i])`` (pairs that are not edges are ignored).

        Returns:
            ``{relation: int64 (K,)}`` positions into ``csr(relation)``'s ``indices``.
        """
        fwd, rev = self._stored[self._check_edge_type(edge_type)]
        src = check_ids(src, self._num_nodes[fwd[0]], "src")
        dst = check_ids(dst, self._num_nodes[fwd[2]], "dst")
        if len(src) != len(dst):
            raise ValueError(f"src, dst: expected the same length, got {len(src)} and {len(dst)}")
        out = {}
        for rel, rows, cols in ((fwd, dst, src), (rev, src, dst)):
            indptr, indices, _ = self._csr[rel]
            lo, hi = csr_find_range(indptr, indices, rows, cols)
            out[rel] = torch.unique(_expand_ranges(lo, hi))
        return out

    # ---------------------------------------------------------------- full graph
    def full_batch(self, node_types=None, num_layers: int = 1) -> SampledBatch:
        """Every node and every edge, ``num_layers`` times: LightGCN-style full propagation.

        Args:
            node_types: the node types to include (default: all); only relations between them
                are kept.
            num_layers: number of (identical) blocks.
        Returns:
            A :class:`SampledBatch` with ``node_ids[t] = arange(num_nodes[t])``, every node a
            seed, and in each block ``edges[rel] = (src ids, dst ids, weights)`` of all edges
            (the tensors are shared between blocks: do not modify them).

        Example:
            >>> batch = g.full_batch(num_layers=3)
        """
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers: expected an int >= 1, got {num_layers!r}")
        types = self.node_types if node_types is None else sorted(set(node_types))
        for t in types:
            self._check_type(t, "node_types")
        counts = {t: self._num_nodes[t] for t in types}
        edges = {}
        for rel in self.relations:
            if rel[0] in counts and rel[2] in counts:
                indptr, indices, weights = self._csr[rel]
                edges[rel] = (indices, csr_rows(indptr), weights)
        blocks = tuple(Block(counts, counts, edges) for _ in range(num_layers))
        ids = {t: torch.arange(n, dtype=torch.int64) for t, n in counts.items()}
        return SampledBatch(ids, blocks, dict(counts))

    # ---------------------------------------------------------------- internals
    def _check_type(self, node_type, arg: str) -> str:
        if node_type not in self._num_nodes:
            raise ValueError(f"{arg}: expected one of {list(self._num_nodes)}, got {node_type!r}")
        return node_type

    def _check_edge_type(self, edge_type) -> str:
        if edge_type not in self._stored:
            raise ValueError(f"edge_type: expected one of {self.edge_types}, got {edge_type!r}")
        return edge_type

    def _stored_rel(self, edge_type) -> Relation:
        """The relation that holds the stored CSR (indexed by the stored source)."""
        return self._stored[self._check_edge_type(edge_type)][1]

    def _rel(self, rel) -> Relation:
        try:
            key = tuple(parse_edge_type(rel, "rel"))
        except ValueError:
            key = None
        if key not in self._csr:
            raise ValueError(f"rel: expected one of {[relation_name(r) for r in self.relations]}, got {rel!r}")
        return key

    def __repr__(self) -> str:
        edges = {name: self.edge_count(name) for name in self.edge_types}
        return f"HeteroCSRGraph(num_nodes={self._num_nodes}, edges={edges})"


def select_edges(name: str, indptr: np.ndarray, indices, weights, positions) -> tuple:
    """The stored CSR restricted to the given edge positions (kept in stored order)."""
    pos = positions.numpy() if isinstance(positions, torch.Tensor) else np.asarray(positions)
    if not np.issubdtype(pos.dtype, np.integer) or pos.ndim != 1:
        raise TypeError(f"edge_ids[{name!r}]: expected 1-D integer positions, got dtype {pos.dtype}, shape {pos.shape}")
    nnz = int(indptr[-1])
    pos = np.unique(pos.astype(np.int64))
    if len(pos) and (pos[0] < 0 or pos[-1] >= nnz):
        raise ValueError(f"edge_ids[{name!r}]: expected positions in 0..{nnz - 1}, got [{pos[0]}, {pos[-1]}]")
    src = np.searchsorted(indptr, pos, side="right") - 1
    counts = np.bincount(src, minlength=len(indptr) - 1)
    new_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return new_indptr, np.asarray(indices)[pos], np.asarray(weights)[pos]
