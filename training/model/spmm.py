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


def _rows(keys: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.argsort(keys, stable=True)
    crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=keys.device)
    torch.cumsum(torch.bincount(keys, minlength=n_rows), 0, out=crow[1:])
    return perm, crow


def _layout(dst: torch.Tensor, src: torch.Tensor, nd: int, ns: int) -> tuple:
    key = (id(dst), id(src), nd, ns)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is dst and hit[1]() is src and hit[2] == (dst._version, src._version):
        _CACHE.move_to_end(key)
        return hit[3]
    perm_d, crow_d = _rows(dst, nd)
    perm_s, crow_s = _rows(src, ns)
    layout = (perm_d, crow_d, src.index_select(0, perm_d), perm_s, crow_s, dst.index_select(0, perm_s))
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
        perm_d, crow_d, col_d, perm_s, crow_s, col_s = layout
        a = torch.sparse_csr_tensor(crow_d, col_d, coef.index_select(0, perm_d), (nd, ns), check_invariants=False)
        ctx.layout, ctx.shape = layout, (nd, ns)
        ctx.save_for_backward(coef)
        return a @ x

    @staticmethod
    def backward(ctx, grad):
        (coef,) = ctx.saved_tensors
        perm_d, crow_d, col_d, perm_s, crow_s, col_s = ctx.layout
        nd, ns = ctx.shape
        grad_x = None
        if ctx.needs_input_grad[1]:
            at = torch.sparse_csr_tensor(crow_s, col_s, coef.index_select(0, perm_s), (ns, nd), check_invariants=False)
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
    layout = _layout(dst, src, int(num_dst), int(x.shape[0]))
    return _SpMM.apply(coef.to(x.dtype), x.contiguous(), layout, int(num_dst), int(x.shape[0]))
