"""Incremental training: a new run's model initialised from a previous run's (stable ids → more rows)."""

from __future__ import annotations

import pytest
import torch

from graphlake.training.checkpoint import warm_start_state


def test_warm_start_copies_grows_and_keeps_new_parameters():
    previous = {"id.user": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "w": torch.tensor([5.0, 6.0]),
                "gone": torch.zeros(1)}
    current = {"id.user": torch.full((3, 2), -1.0), "w": torch.zeros(2), "new_rel": torch.ones(2, 2)}
    state, report = warm_start_state(current, previous)
    assert torch.equal(state["id.user"], torch.tensor([[1.0, 2.0], [3.0, 4.0], [-1.0, -1.0]]))  # new id: fresh row
    assert torch.equal(state["w"], torch.tensor([5.0, 6.0]))
    assert torch.equal(state["new_rel"], torch.ones(2, 2))
    assert report == {"copied": ["w"], "grown": ["id.user"], "new": ["new_rel"], "dropped": ["gone"]}
    assert torch.equal(current["id.user"], torch.full((3, 2), -1.0))  # the fresh state is not modified


@pytest.mark.parametrize("old, new", [(torch.zeros(3, 2), torch.zeros(2, 2)),   # fewer rows: ids never vanish
                                      (torch.zeros(2, 4), torch.zeros(2, 8)),   # another hidden dimension
                                      (torch.zeros(4), torch.zeros(2, 2))])
def test_warm_start_refuses_incompatible_shapes(old, new):
    with pytest.raises(ValueError, match=r"warm_start: parameter 'p' has shape .* only more rows"):
        warm_start_state({"p": new}, {"p": old})
