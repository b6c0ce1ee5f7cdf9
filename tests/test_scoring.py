"""training.scoring: the exported scoring vectors with a popularity prior, and the config check."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphlake.training.model import ModelConfig, shared_softmax_loss
from graphlake.training.model.decoder import score, with_score_bias
from graphlake.training.scoring import exported_dim, prior_roles, ranking_score, scoring_vectors

ROLES = ({"user"}, {"item"})


def test_without_a_prior_the_vectors_and_the_decoder_are_kept():
    config = ModelConfig(decoder="cosine")
    rows = np.array([[3.0, 4.0]], np.float32)
    assert scoring_vectors(rows, "user", config, ROLES) is rows
    assert ranking_score(config) == "cosine" and exported_dim(config) == 64


def test_cosine_prior_vectors_dot_to_the_scaled_cosine_plus_the_prior():
    config = ModelConfig(decoder="cosine", temperature=0.5, popularity_prior=0.3, hidden_dim=2)
    users = scoring_vectors(np.array([[3.0, 4.0]], np.float32), "user", config, ROLES)
    items = scoring_vectors(np.array([[4.0, 3.0], [0.0, 2.0]], np.float32), "item", config, ROLES,
                            degrees=np.array([9, 0]))
    np.testing.assert_allclose(users, [[0.6 / 0.5, 0.8 / 0.5, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(items, [[0.8, 0.6, 0.3 * math.log(10)], [0.0, 1.0, 0.0]], rtol=1e-6)
    # the dot product is the model's score: cos / t + beta * log(1 + deg)
    np.testing.assert_allclose(users @ items.T, [[0.96 / 0.5 + 0.3 * math.log(10), 0.8 / 0.5]], rtol=1e-6)
    others = scoring_vectors(np.array([[1.0, 0.0]], np.float32), "shop", config, ROLES)
    np.testing.assert_allclose(others, [[1.0, 0.0, 0.0]])
    assert ranking_score(config) == "dot" and exported_dim(config) == 3


def test_dot_prior_vectors_keep_the_norms():
    config = ModelConfig(decoder="dot", temperature=2.0, popularity_prior=1.0, hidden_dim=2)
    users = scoring_vectors(np.array([[3.0, 4.0]], np.float32), "user", config, ROLES)
    items = scoring_vectors(np.array([[1.0, 1.0]], np.float32), "item", config, ROLES, degrees=np.array([1]))
    np.testing.assert_allclose(users @ items.T, [[7.0 / 2.0 + math.log(2)]], rtol=1e-6)


def test_bad_prior_input_is_named():
    with pytest.raises(ValueError, match="popularity_prior: expected a finite number >= 0, got -0.1"):
        ModelConfig(popularity_prior=-0.1)
    with pytest.raises(ValueError, match="popularity_prior: expected a finite number >= 0, got True"):
        ModelConfig(popularity_prior=True)
    with pytest.raises(ValueError, match=r"node types \['item'\] are both a source and a destination"):
        prior_roles(["user__purchase__item", "item__co_view__item"])
    assert prior_roles(["user__purchase__item", "user__click__item"]) == ({"user"}, {"item"})
    config = ModelConfig(popularity_prior=0.5, hidden_dim=2)
    with pytest.raises(ValueError, match=r"degrees: expected shape \(1,\), got \(2,\)"):
        scoring_vectors(np.ones((1, 2), np.float32), "item", config, ROLES, degrees=np.ones(2))


def test_a_learned_bias_joins_the_prior_in_the_destinations_column():
    config = ModelConfig(decoder="cosine", temperature=0.5, popularity_prior=0.3, destination_bias=True, hidden_dim=2)
    items = scoring_vectors(np.array([[4.0, 3.0], [0.0, 2.0]], np.float32), "item", config, ROLES,
                            degrees=np.array([9, 0]), bias=np.array([-0.25, 0.5]))
    np.testing.assert_allclose(items[:, -1], [0.3 * math.log(10) - 0.25, 0.5], rtol=1e-6)
    bias_only = ModelConfig(decoder="dot", destination_bias=True, hidden_dim=2)
    items = scoring_vectors(np.array([[1.0, 1.0]], np.float32), "item", bias_only, ROLES, degrees=np.array([5]),
                            bias=np.array([0.75]))
    np.testing.assert_allclose(items, [[1.0, 1.0, 0.75]])  # no prior: the degree does not count
    assert ranking_score(bias_only) == "dot" and exported_dim(bias_only) == 3
    with pytest.raises(ValueError, match=r"bias: expected shape \(1,\), got \(3,\)"):
        scoring_vectors(np.ones((1, 2), np.float32), "item", bias_only, ROLES, bias=np.ones(3))
    with pytest.raises(TypeError, match="destination_bias: expected true or false, got 'yes'"):
        ModelConfig(destination_bias="yes")


def test_with_score_bias_makes_the_loss_score_a_plain_dot_plus_the_bias():
    u = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    v = torch.tensor([[4.0, 3.0]], dtype=torch.float64)
    n = torch.tensor([[0.0, 2.0], [1.0, 0.0]], dtype=torch.float64)
    bias = torch.tensor([0.0, 0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    u2, v2, n2 = with_score_bias(u, v, n, bias, torch.tensor([1]), torch.tensor([2, 3]), "cosine", 0.5)
    torch.testing.assert_close(score(u2, v2), torch.tensor([0.96 / 0.5 + 0.5], dtype=torch.float64))
    torch.testing.assert_close(u2 @ n2.T, torch.tensor([[0.8 / 0.5 - 1.0, 0.6 / 0.5 + 2.0]], dtype=torch.float64))
    loss = shared_softmax_loss(u2, v2, n2, "dot", 1.0, pos_ids=torch.tensor([1]), neg_ids=torch.tensor([2, 3]))
    loss.backward()
    logits = torch.tensor([0.96 / 0.5 + 0.5, 0.8 / 0.5 - 1.0, 0.6 / 0.5 + 2.0], dtype=torch.float64)
    p = torch.softmax(logits, 0)
    torch.testing.assert_close(loss.detach(), -torch.log(p[0]))
    torch.testing.assert_close(bias.grad, torch.stack([torch.tensor(0.0, dtype=torch.float64), p[0] - 1, p[1], p[2]]))
    with pytest.raises(ValueError, match=r"neg_ids: expected int64 \(2,\) rows of bias, got torch.int64 \(3,\)"):
        with_score_bias(u, v, n, bias, torch.tensor([1]), torch.tensor([2, 3, 0]))
    with pytest.raises(ValueError, match=r"bias: expected one scalar per destination node \(N,\), got shape \(4, 1\)"):
        with_score_bias(u, v, n, bias.detach()[:, None], torch.tensor([1]), torch.tensor([2, 3]))
