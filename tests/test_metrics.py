"""Full-ranking Recall@K / NDCG@K on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from graphlake.training.metrics import degree_buckets, group_by_user, ranking_metrics

# 2 users, 4 items, 1-d embeddings: scores are user * item
USERS = torch.tensor([[1.0], [-1.0]])
ITEMS = torch.tensor([[4.0], [3.0], [2.0], [1.0]])  # user 0 ranks 0 > 1 > 2 > 3; user 1 ranks 3 > 2 > 1 > 0


def test_recall_and_ndcg_without_mask():
    # user 0: test {1}; top-2 = [0, 1] -> recall 1, ndcg = (1/log2 3) / 1
    # user 1: test {0, 2}; top-2 = [3, 2] -> recall 1/2, dcg = 1/log2 3, idcg = 1 + 1/log2 3
    m = ranking_metrics(USERS, ITEMS, torch.tensor([0, 1, 1]), torch.tensor([1, 0, 2]), k=2)
    assert m["users"] == 2 and m["test_pairs"] == 3
    assert m["recall@2"] == pytest.approx((1 + 0.5) / 2)
    d = 1 / math.log2(3)
    assert m["ndcg@2"] == pytest.approx((d + d / (1 + d)) / 2)


def test_training_items_are_masked_out():
    # user 0 trained on item 0: top-2 becomes [1, 2] -> test item 1 at rank 1: ndcg 1
    indptr, indices = group_by_user(torch.tensor([0]), torch.tensor([0]), 2)
    m = ranking_metrics(USERS, ITEMS, torch.tensor([0]), torch.tensor([1]), indptr, indices, k=2)
    assert m["users"] == 1 and m["recall@2"] == 1.0 and m["ndcg@2"] == pytest.approx(1.0)


def test_users_without_test_items_are_not_counted_and_chunks_agree():
    args = (USERS, ITEMS, torch.tensor([1]), torch.tensor([3]))
    assert ranking_metrics(*args, k=1) == ranking_metrics(*args, k=1, chunk=1)
    assert ranking_metrics(*args, k=1)["users"] == 1


def test_group_by_user_is_a_sorted_csr():
    indptr, items = group_by_user(torch.tensor([2, 0, 2, 0]), torch.tensor([5, 3, 1, 4]), 3)
    assert indptr.tolist() == [0, 2, 2, 4] and items.tolist() == [3, 4, 1, 5]


def test_bad_arguments():
    with pytest.raises(ValueError, match="k: expected an int in 1..4"):
        ranking_metrics(USERS, ITEMS, torch.tensor([0]), torch.tensor([1]), k=5)
    with pytest.raises(ValueError, match="equal lengths"):
        ranking_metrics(USERS, ITEMS, torch.tensor([0, 1]), torch.tensor([1]), k=2)
    with pytest.raises(ValueError, match="ids outside"):
        ranking_metrics(USERS, ITEMS, torch.tensor([0]), torch.tensor([9]), k=2)
    with pytest.raises(ValueError, match="one d"):
        ranking_metrics(USERS, torch.ones(4, 2), torch.tensor([0]), torch.tensor([1]), k=2)
    with pytest.raises(TypeError, match="user_emb: expected a tensor"):
        ranking_metrics([[1.0]], ITEMS, torch.tensor([0]), torch.tensor([1]), k=2)


def test_hit_ratio_and_figures_per_user_group():
    # k=1: user 0's top-1 is item 0 (test {0}: hit), user 1's top-1 is item 3 (test {0, 2}: miss)
    m = ranking_metrics(USERS, ITEMS, torch.tensor([0, 1, 1]), torch.tensor([0, 0, 2]), k=1,
                        user_groups=torch.tensor([1, 0]), group_names=["cold", "warm", "empty"])
    assert m["hr@1"] == 0.5 and m["recall@1"] == 0.5
    assert m["by_group"]["warm"] == {"recall@1": 1.0, "ndcg@1": 1.0, "hr@1": 1.0, "users": 1}
    assert m["by_group"]["cold"] == {"recall@1": 0.0, "ndcg@1": 0.0, "hr@1": 0.0, "users": 1}
    assert m["by_group"]["empty"]["users"] == 0 and math.isnan(m["by_group"]["empty"]["hr@1"])
    with pytest.raises(ValueError, match=r"user_groups: expected shape \(2,\), got \(3,\)"):
        ranking_metrics(USERS, ITEMS, torch.tensor([0]), torch.tensor([0]), k=1, user_groups=torch.tensor([0, 0, 0]))


def test_degree_buckets():
    groups, names = degree_buckets(torch.tensor([0, 1, 2, 3, 5, 6, 10, 11, 400]))
    assert names == ["0", "1-2", "3-5", "6-10", "11+"]
    assert groups.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4]
    with pytest.raises(ValueError, match=r"leave degrees \[0\] uncovered"):
        degree_buckets(torch.tensor([0, 3]), bounds=((1, None),))
