"""training.optim: RowAdam against torch.optim.SparseAdam, state compatibility, input errors; dense_adam."""

from __future__ import annotations

import copy

import pytest
import torch

from graphlake.training import optim
from graphlake.training.optim import RowAdam, dense_adam


@pytest.fixture(params=["numba", "torch"])
def kernel(request, monkeypatch):
    """Run a test with the numba kernel (checked present) and again with the torch-ops update."""
    if request.param == "numba":
        assert optim._row_adam_kernel() is not None, "numba is a dependency: the fused kernel must be there"
    else:
        monkeypatch.setattr(optim, "_KERNEL", [None])
    return request.param


def _pair(rows: int, dim: int, seed: int = 0):
    torch.manual_seed(seed)
    weight = torch.randn(rows, dim)
    a = torch.nn.Embedding(rows, dim, sparse=True)
    b = torch.nn.Embedding(rows, dim, sparse=True)
    a.weight.data.copy_(weight)
    b.weight.data.copy_(weight)
    return a, b


def _run(batches, maximize=False, lr=0.01, rows=50):
    ref, ours = _pair(rows, 6)
    opt_ref = torch.optim.SparseAdam(ref.parameters(), lr=lr, maximize=maximize)
    opt = RowAdam(ours.parameters(), lr=lr, maximize=maximize)
    g = torch.Generator().manual_seed(1)
    for idx in batches:
        target = torch.randn(len(idx), 6, generator=g)
        for emb, o in ((ref, opt_ref), (ours, opt)):
            o.zero_grad()
            ((emb(idx) - target) ** 2).sum().backward()
            o.step()
    return ref, ours, opt_ref, opt


@pytest.mark.parametrize("maximize", [False, True])
def test_row_adam_matches_sparse_adam_on_distinct_rows(maximize, kernel):
    batches = [torch.tensor([4, 1, 9, 30]), torch.tensor([1, 2, 3]), torch.tensor([49, 0, 4])]
    ref, ours, opt_ref, opt = _run(batches, maximize=maximize)
    torch.testing.assert_close(ours.weight, ref.weight, rtol=1e-6, atol=1e-7)
    p_ref, p = ref.weight, ours.weight
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(opt.state[p][key], opt_ref.state[p_ref][key], rtol=1e-6, atol=1e-7)
    assert opt.state[p]["step"] == opt_ref.state[p_ref]["step"] == 3
    untouched = torch.tensor([5, 6, 7, 8, 10, 48])
    assert torch.equal(ours.weight[untouched], _pair(50, 6)[0].weight[untouched])


@pytest.mark.parametrize("rows", [50, 5000])  # duplicates found by counting over the table / by a sort
def test_row_adam_sums_duplicate_rows_like_sparse_adam(rows, kernel):
    batches = [torch.tensor([3, 3, 3, 7, 1, 7]), torch.tensor([7, 2, 2]), torch.tensor([3]), torch.tensor([9, 4])]
    ref, ours, _, _ = _run(batches, rows=rows)
    torch.testing.assert_close(ours.weight, ref.weight, rtol=1e-6, atol=1e-7)


def test_row_adam_state_dict_round_trips_with_sparse_adam(kernel):
    ref, ours, opt_ref, _ = _run([torch.tensor([0, 5, 8])])
    fresh = RowAdam(ours.parameters(), lr=0.01)
    # as through a checkpoint file: copies (load_state_dict may keep the given tensors)
    fresh.load_state_dict(copy.deepcopy(opt_ref.state_dict()))  # a SparseAdam checkpoint resumes under RowAdam
    back = torch.optim.SparseAdam(ref.parameters(), lr=0.01)
    back.load_state_dict(copy.deepcopy(fresh.state_dict()))
    idx, target = torch.tensor([5, 9]), torch.ones(2, 6)
    for emb, o in ((ref, back), (ours, fresh)):
        o.zero_grad()
        ((emb(idx) - target) ** 2).sum().backward()
        o.step()
    torch.testing.assert_close(ours.weight, ref.weight, rtol=1e-6, atol=1e-7)
    assert fresh.state[ours.weight]["step"] == 2


def test_row_adam_skips_an_empty_gradient_but_counts_the_step(kernel):
    emb = torch.nn.Embedding(5, 3, sparse=True)
    before = emb.weight.detach().clone()
    opt = RowAdam(emb.parameters())
    emb(torch.tensor([], dtype=torch.long)).sum().backward()
    opt.step()
    assert torch.equal(emb.weight, before)
    assert opt.state[emb.weight]["step"] == 1


def test_row_adam_rejects_dense_gradients_and_bad_options():
    lin = torch.nn.Linear(3, 2)
    opt = RowAdam(lin.parameters())
    lin(torch.ones(1, 3)).sum().backward()
    with pytest.raises(ValueError, match="expected sparse gradients"):
        opt.step()
    params = torch.nn.Embedding(3, 2, sparse=True).parameters
    with pytest.raises(ValueError, match=r"lr: expected a number > 0, got -1"):
        RowAdam(params(), lr=-1)
    with pytest.raises(ValueError, match=r"betas: expected two numbers in \[0, 1\), got \(0.9, 1.0\)"):
        RowAdam(params(), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="eps: expected a number > 0, got 0"):
        RowAdam(params(), eps=0)
    with pytest.raises(TypeError, match="maximize: expected a bool, got str"):
        RowAdam(params(), maximize="yes")
    with pytest.raises(ValueError, match="params: expected dense real floating-point tensors, got one of dtype "
                                         "torch.int64"):
        RowAdam([torch.zeros(3, dtype=torch.long)])


def test_dense_adam_is_fused_on_cpu_and_matches_plain_adam():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    fused, plain = dense_adam(a.parameters(), lr=0.01, weight_decay=1e-3), torch.optim.Adam(
        b.parameters(), lr=0.01, weight_decay=1e-3)
    assert fused.param_groups[0]["fused"] is True
    x = torch.randn(16, 8)
    for _ in range(5):
        for m, o in ((a, fused), (b, plain)):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    torch.testing.assert_close(a.weight, b.weight, rtol=1e-5, atol=1e-6)
    assert dense_adam([torch.zeros(2, dtype=torch.float64, requires_grad=True)], lr=0.1).param_groups[0]["fused"]


def test_the_numba_kernel_and_the_torch_ops_agree_in_double_precision(monkeypatch):
    torch.manual_seed(3)
    start = torch.randn(300, 2, 4, dtype=torch.float64)  # a row shape of two dimensions
    results = []
    for use_kernel in (True, False):
        monkeypatch.setattr(optim, "_KERNEL", [] if use_kernel else [None])
        p = torch.nn.Parameter(start.clone())
        opt = RowAdam([p], lr=0.05, betas=(0.8, 0.99))
        for step in range(4):
            g = torch.Generator().manual_seed(step)
            idx = torch.randperm(300, generator=g)[:70]
            p.grad = torch.sparse_coo_tensor(idx.unsqueeze(0), torch.randn(70, 2, 4, dtype=torch.float64, generator=g),
                                             p.shape, check_invariants=True)
            opt.step()
        assert (optim._KERNEL[0] is not None) == use_kernel
        results.append((p.detach(), opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-14)


def test_the_kernel_split_over_threads_equals_the_torch_ops(monkeypatch):
    rows = 3 * optim._MIN_ROWS_PER_THREAD  # enough rows for two slices
    monkeypatch.setattr(optim, "_POOL", [])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = []
        for use_kernel in (True, False):
            monkeypatch.setattr(optim, "_KERNEL", [] if use_kernel else [None])
            p = torch.nn.Parameter(torch.ones(rows + 100, 8))
            opt = RowAdam([p], lr=0.1)
            g = torch.Generator().manual_seed(5)
            idx = torch.randperm(rows + 100, generator=g)[:rows]
            p.grad = torch.sparse_coo_tensor(idx.unsqueeze(0), torch.randn(rows, 8, generator=g), p.shape,
                                             check_invariants=True)
            opt.step()
            results.append((p.detach(), opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]))
        assert optim._POOL, "two torch threads and enough rows: the update was split over a thread pool"
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


def test_resident_grads_give_the_dense_gradient_in_the_same_buffer_every_step():
    torch.manual_seed(0)
    table = torch.nn.Embedding(50, 4)
    reference = copy.deepcopy(table)
    resident = optim.ResidentGrads([table.weight])
    buffer = resident.buffers[0]
    ids = [torch.tensor([3, 7, 3, 49]), torch.tensor([0, 1])]
    for step_ids in ids:
        table.weight.grad = None  # what a zero_grad(set_to_none=True) leaves
        resident.attach()
        out = torch.nn.functional.embedding(step_ids, table.weight, sparse=True)
        (out * torch.arange(4.0)).sum().backward()
        reference.weight.grad = None
        (reference(step_ids) * torch.arange(4.0)).sum().backward()
        assert table.weight.grad is buffer and not buffer.is_sparse
        torch.testing.assert_close(table.weight.grad, reference.weight.grad, rtol=0, atol=0)
        torch.testing.assert_close(reference.weight.grad, table.weight.grad, rtol=0, atol=0)
    assert float(buffer[3].abs().sum()) == 0.0  # last step's rows were zeroed by attach
    with pytest.raises(TypeError, match=r"params\[0\]: expected a dense tensor that requires grad, got Tensor"):
        optim.ResidentGrads([torch.zeros(3)])
