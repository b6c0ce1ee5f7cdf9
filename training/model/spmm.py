"""Sparse x dense aggregation ``out[i] = sum_{e: dst_e = i} coef_e * x[src_e]`` with CSR kernels.

``torch.sparse.mm`` on a COO matrix sorts (coalesces) it in the forward pass and again for the
transpose in the backward pass. Here the forward uses a CSR matrix sorted by destination and the
backward a CSR matrix sorted by source (the transpose), both CPU/GPU kernels of torch. The two
row layouts (permutation, row pointers, column indices) depend only on the edge lists: they are
cached per ``(dst, src)`` tensor pair, so a full-graph batch (LightGCN-style, the same edge
tensors every step) sorts its edges once per training run instead of twice per layer per step.
The cache holds weak references and checks tensor identity and version: a new or modified
edge list is never served a stale layout, and an entry goes as soon as its edge lists do (a
sampled batch's layouts do not outlive the batch: on a GPU they are device memory).

Example:
    >>> out = spmm(dst, src, coef, num_dst, x)       # (num_dst, d)
"""

from __future__ import annotations

import warnings
import weakref
from collections import OrderedDict

import torch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 32


def _rows(keys: torch.Tensor, n_rows: int) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``(perm, crow)``: the stable order of ``keys`` (None when they are sorted already, as a
    full neighbourhood's edges are: checked on the host only, a device check would sync) and the
    row pointers of ``n_rows`` rows."""
    perm = None
    if keys.device.type != "cpu" or (len(keys) > 1 and not bool((keys[1:] >= keys[:-1]).all())):
        perm = torch.argsort(keys, stable=True)
    crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=keys.device)
    torch.cumsum(torch.bincount(keys, minlength=n_rows), 0, out=crow[1:])
    return perm, crow


def _take(values: torch.Tensor, perm: torch.Tensor | None) -> torch.Tensor:
    return values if perm is None else values.index_select(0, perm)


class _Layout:
    """The CSR layouts of one edge list: by destination (the forward) and by source (the
    backward's transpose). The transpose is built with the layout when a gradient will need it
    (from the edge lists as they come; its permutation indexes their order), else on first use
    (from the destination layout; its permutation indexes the edges in destination order), so
    inference never builds it. Holds derived tensors only, never the edge lists themselves (the
    cache's weak references to those decide how long an entry lives)."""

    def __init__(self, dst: torch.Tensor, src: torch.Tensor, nd: int, ns: int, transpose: bool):
        self.nd, self.ns = nd, ns
        self.perm_d, self.crow_d = _rows(dst, nd)
        self.col_d = _take(src, self.perm_d)
        self._by_src = None
        if transpose:
            perm_s, crow_s = _rows(src, ns)
            self._by_src = (perm_s, crow_s, _take(dst, perm_s), False)

    def by_src(self) -> tuple:
        """``(perm, crow, col, in_destination_order)`` of the transpose."""
        if self._by_src is None:
            perm_s, crow_s = _rows(self.col_d, self.ns)
            rows_d = torch.repeat_interleave(torch.arange(self.nd, device=self.crow_d.device), self.crow_d.diff(),
                                             output_size=len(self.col_d))  # (no device sync)
            self._by_src = (perm_s, crow_s, _take(rows_d, perm_s), True)
        return self._by_src


def _layout(dst: torch.Tensor, src: torch.Tensor, nd: int, ns: int, transpose: bool = False) -> _Layout:
    key = (id(dst), id(src), nd, ns)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is dst and hit[1]() is src and hit[2] == (dst._version, src._version):
        _CACHE.move_to_end(key)
        return hit[3]
    layout = _Layout(dst, src, nd, ns, transpose)
    _CACHE[key] = (weakref.ref(dst, _forget(key)), weakref.ref(src, _forget(key)), (dst._version, src._version),
                   layout)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return layout


def _forget(key):
    """A weakref callback dropping the cache entry ``key`` (its edge list died: the id may be reused)."""
    return lambda _ref: _CACHE.pop(key, None)


class _SpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, coef, x, layout, nd, ns):
        coef_d = _take(coef, layout.perm_d)  # the coefficients in destination order
        a = torch.sparse_csr_tensor(layout.crow_d, layout.col_d, coef_d, (nd, ns), check_invariants=False)
        ctx.layout, ctx.shape = layout, (nd, ns)
        ctx.save_for_backward(coef, coef_d)
        return a @ x

    @staticmethod
    def backward(ctx, grad):
        coef, coef_d = ctx.saved_tensors
        nd, ns = ctx.shape
        grad_x = None
        if ctx.needs_input_grad[1]:
            perm_s, crow_s, col_s, in_dst_order = ctx.layout.by_src()
            values = _take(coef_d if in_dst_order else coef, perm_s)
            at = torch.sparse_csr_tensor(crow_s, col_s, values, (ns, nd), check_invariants=False)
            grad_x = at @ grad.contiguous()
        if ctx.needs_input_grad[0]:
            raise RuntimeError("spmm: gradients with respect to the edge coefficients are not supported")
        return None, grad_x, None, None, None


def spmm(dst: torch.Tensor, src: torch.Tensor, coef: torch.Tensor, num_dst: int, x: torch.Tensor) -> torch.Tensor:
    """``(num_dst, d)``: per destination the ``coef``-weighted sum of ``x[src]`` over its edges.

    Args:
        dst, src: int64 ``(E,)`` endpoints (``src < x.shape[0]``, ``dst < num_dst``).
        coef: ``(E,)`` edge coefficients (no gradient flows into them).
        num_dst: rows of the result.
        x: ``(num_src, d)`` source features.
    """
    if coef.requires_grad:
        raise ValueError("coef: expected edge coefficients without requires_grad (they are data, not parameters)")
    layout = _layout(dst, src, int(num_dst), int(x.shape[0]), transpose=torch.is_grad_enabled() and x.requires_grad)
    return _SpMM.apply(coef.to(x.dtype), x.contiguous(), layout, int(num_dst), int(x.shape[0]))
