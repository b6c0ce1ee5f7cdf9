"""training.model.shared_softmax: the fused shared-negative sampled softmax equals the composed ops."""

from __future__ import annotations

import math

import pytest
import torch

from graphlake.training.model import sampled_softmax_loss, score, shared_negative_scores, shared_softmax_loss
from graphlake.training.model.decoder import with_score_bias


def _inputs(b=64, k=48, d=16, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    u, v, n = (torch.randn(s, d, generator=g, dtype=torch.float64) * scale for s in (b, b, k))
    pos_ids = torch.randint(0, 40, (b,), generator=g)
    neg_ids = torch.randint(0, 40, (k,), generator=g)  # many rows see their positive among the negatives
    return u, v, n, pos_ids, neg_ids


def _reference(u, v, n, kind, t, pos_ids, neg_ids, log_q):
    neg = shared_negative_scores(u, n, kind, t, pos_ids=pos_ids, neg_ids=neg_ids, fill=-math.inf)
    return sampled_softmax_loss(score(u, v, kind, t), neg, log_q_correction=log_q)


def _loss_and_grads(fn, u, v, n, *args):
    u, v, n = (x.clone().requires_grad_(True) for x in (u, v, n))
    loss = fn(u, v, n, *args)
    loss.backward()
    return loss.detach(), u.grad, v.grad, n.grad


@pytest.mark.parametrize("kind,t,scale", [("cosine", 0.1, 1.0), ("cosine", 1.0, 1.0), ("cosine", 0.01, 1.0),
                                          ("dot", 1.0, 1.0), ("dot", 0.5, 30.0)])
@pytest.mark.parametrize("with_log_q", [False, True])
def test_loss_and_gradients_equal_the_composed_ops(kind, t, scale, with_log_q):
    u, v, n, pos_ids, neg_ids = _inputs(scale=scale)
    log_q = torch.log(torch.rand(len(neg_ids), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
                      / len(neg_ids)) if with_log_q else None
    fused = _loss_and_grads(shared_softmax_loss, u, v, n, kind, t, pos_ids, neg_ids, log_q)
    ref = _loss_and_grads(_reference, u, v, n, kind, t, pos_ids, neg_ids, log_q)
    assert torch.isfinite(fused[0])
    for a, b in zip(fused, ref):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(b, a)


@pytest.mark.parametrize("kind,t,scale", [("cosine", 0.1, 1.0), ("cosine", 0.01, 1.0), ("dot", 0.5, 3.0)])
@pytest.mark.parametrize("with_log_q", [False, True])
def test_a_destination_bias_equals_the_biased_dot_vectors(kind, t, scale, with_log_q):
    """pos_bias / neg_bias: the loss and every gradient (the bias's included) of with_score_bias's
    vectors scored as plain dots — with the cosine head's constant shift (t 0.1) and without (t 0.01)."""
    u, v, n, pos_ids, neg_ids = _inputs(scale=scale)
    g = torch.Generator().manual_seed(2)
    log_q = torch.log(torch.rand(len(neg_ids), generator=g, dtype=torch.float64) / 48) if with_log_q else None
    bias0 = torch.randn(40, generator=g, dtype=torch.float64) * 3

    def fused(u, v, n, bias):
        return shared_softmax_loss(u, v, n, kind, t, pos_ids, neg_ids, log_q, pos_bias=bias[pos_ids],
                                   neg_bias=bias[neg_ids])

    def reference(u, v, n, bias):
        return _reference(*with_score_bias(u, v, n, bias, pos_ids, neg_ids, kind, t), "dot", 1.0, pos_ids, neg_ids,
                          log_q)

    results = []
    for fn in (fused, reference):
        u1, v1, n1, b1 = (x.clone().requires_grad_(True) for x in (u, v, n, bias0))
        loss = fn(u1, v1, n1, b1)
        loss.backward()
        results.append((loss.detach(), u1.grad, v1.grad, n1.grad, b1.grad))
    assert torch.isfinite(results[0][0]) and results[0][4].abs().sum() > 0
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(b, a)


def test_float32_matches_a_float64_reference():
    u, v, n, pos_ids, neg_ids = _inputs(b=256, k=512, d=32)
    fused = _loss_and_grads(shared_softmax_loss, u.float(), v.float(), n.float(), "cosine", 0.1, pos_ids, neg_ids, None)
    ref = _loss_and_grads(_reference, u, v, n, "cosine", 0.1, pos_ids, neg_ids, None)
    for a, b in zip(fused, ref):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-6)


def test_without_ids_nothing_is_masked_and_the_docstring_value_holds():
    # positives scored 1, three negatives scored 0: log(e + 3) - 1
    torch.testing.assert_close(shared_softmax_loss(torch.eye(2), torch.eye(2), torch.zeros(3, 2)),
                               torch.tensor(math.log(math.e + 3) - 1))
    # the same negative as the positive, with ids: masked out of the softmax -> log(e) - 1 = 0 for row 0
    loss = shared_softmax_loss(torch.eye(2)[:1], torch.eye(2)[:1], torch.eye(2)[:1], pos_ids=torch.tensor([7]),
                               neg_ids=torch.tensor([7]))
    torch.testing.assert_close(loss, torch.tensor(0.0))


def test_a_second_backward_through_the_same_loss_is_refused():
    u = torch.randn(4, 3, requires_grad=True)
    loss = shared_softmax_loss(u, torch.randn(4, 3), torch.randn(5, 3))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward through the same loss twice"):
        loss.backward()


def test_bad_input_is_named():
    u, v, n = torch.ones(2, 3), torch.ones(2, 3), torch.ones(4, 3)
    with pytest.raises(ValueError, match=r"v: expected the shape of u \(B, D\), got u \(2, 3\), v \(3, 3\)"):
        shared_softmax_loss(u, torch.ones(3, 3), n)
    with pytest.raises(ValueError, match=r"n: expected \(K, 3\) negatives with K >= 1, got \(4, 2\)"):
        shared_softmax_loss(u, v, torch.ones(4, 2))
    with pytest.raises(ValueError, match="pos_ids / neg_ids: give both or neither"):
        shared_softmax_loss(u, v, n, pos_ids=torch.arange(2))
    with pytest.raises(ValueError, match=r"pos_ids / neg_ids: expected shapes \(2,\) / \(4,\), got \(2,\) / \(3,\)"):
        shared_softmax_loss(u, v, n, pos_ids=torch.arange(2), neg_ids=torch.arange(3))
    with pytest.raises(ValueError, match=r"log_q: expected shape \(4,\), got \(2,\)"):
        shared_softmax_loss(u, v, n, log_q=torch.zeros(2))
    with pytest.raises(ValueError, match="kind: expected one of"):
        shared_softmax_loss(u, v, n, kind="l2")
    with pytest.raises(ValueError, match="pos_bias / neg_bias: give both or neither"):
        shared_softmax_loss(u, v, n, pos_bias=torch.zeros(2))
    with pytest.raises(ValueError, match=r"neg_bias: expected shape \(4,\), got \(2,\)"):
        shared_softmax_loss(u, v, n, pos_bias=torch.zeros(2), neg_bias=torch.zeros(2))
    with pytest.raises(ValueError, match="temperature: expected a number > 0, got 0"):
        shared_softmax_loss(u, v, n, temperature=0)
    with pytest.raises(TypeError, match="u: expected a torch.Tensor, got list"):
        shared_softmax_loss([[1.0]], v, n)
