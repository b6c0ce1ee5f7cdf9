"""The device contract of a training step, checked on a machine without a GPU.

On CUDA every op of the step must find its tensor operands on the model's device, except the few
that CUDA itself accepts with host operands (copies, and indexing with host index tensors); the
sampler, the negatives and the feature gather work on the host. Here the model is put on PyTorch's
``meta`` device (shapes, no data) and a dispatch mode records every op that mixes a ``meta`` tensor
with a non-scalar host tensor: exactly the ops CUDA would refuse with "Expected all tensors to be on
the same device". Data-dependent ops, which meta cannot run, answer with placeholders of the right
shape (zeros, False), so the step runs to its end; the checks are about where tensors live, not
about values (tests/test_cuda.py runs the same configurations on a real GPU when there is one).
"""

from __future__ import annotations

import os
import traceback

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from graphlake.graph_build.memory_snapshot import MemorySnapshot
from graphlake.training.config import TrainConfig
from graphlake.training.distributed.base import LocalBackend
from graphlake.training.trainer import Trainer

aten = torch.ops.aten
# ops CUDA runs with host operands: copies, and advanced indexing with host index tensors
HOST_OPERANDS_ALLOWED = {aten._to_copy.default, aten.copy_.default, aten.index.Tensor, aten.index_put_.default,
                         aten._index_put_impl_.default, aten.index_put.default, aten.lift_fresh.default,
                         aten.detach.default, aten.set_.source_Tensor, aten._has_compatible_shallow_copy_type.default}
TARGET = "user__click__item"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class HostMixRecorder(TorchDispatchMode):
    """Records ``(op, call site)`` of every op mixing ``meta`` with non-scalar CPU tensors (then runs it
    with them moved, to go on); answers data-dependent ops on ``meta`` with placeholders."""

    def __init__(self):
        super().__init__()
        self.mixes: list[tuple[str, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        devices = {t.device.type for t in tensors if not (t.device.type == "cpu" and t.dim() == 0)}
        if {"meta", "cpu"} <= devices and func not in HOST_OPERANDS_ALLOWED:
            self.mixes.append((str(func), _call_site()))
            args, kwargs = tree_map(lambda t: t.to("meta") if isinstance(t, torch.Tensor) and t.dim() else t,
                                    (args, kwargs))
        if any(t.device.type == "meta" for t in tensors):
            placeholder = _placeholder(func, args, kwargs, tensors)
            if placeholder is not NotImplemented:
                return placeholder
        return func(*args, **kwargs)


def _placeholder(func, args, kwargs, tensors):
    """Shape-right answers for the data-dependent ops meta cannot compute (NotImplemented: run it)."""
    if func is aten._local_scalar_dense.default:  # .item(), bool(), int(), float()
        return False if args[0].dtype == torch.bool else 0
    if func is aten.bincount.default:
        minlength = kwargs.get("minlength", args[2] if len(args) > 2 else 0)
        return torch.zeros(max(minlength, 1), dtype=torch.int64, device="meta")
    if func is aten.nonzero.default:
        return torch.zeros((0, args[0].dim()), dtype=torch.int64, device="meta")
    if func is aten._unique2.default:
        x = args[0]
        return x.new_empty(x.shape), x.new_empty(x.shape, dtype=torch.int64), x.new_empty(0, dtype=torch.int64)
    csr = [t for t in tensors if t.layout == torch.sparse_csr]
    if csr and func in (aten.mm.default, aten.addmm.default):
        dense = [t for t in tensors if t.layout == torch.strided][-1]
        return torch.empty(csr[0].shape[0], dense.shape[1], dtype=dense.dtype, device="meta")
    if any(t.layout == torch.sparse_coo for t in tensors):
        if func is aten.add_.Tensor:
            return args[0]
        if func is aten.add.Tensor:
            return args[0].clone()
    if func in (aten._coalesce.default, aten.coalesce.default):
        return args[0]
    return NotImplemented


def _call_site() -> str:
    """The innermost project frames (file:line) of the current op."""
    frames = [f for f in traceback.extract_stack() if f.filename.startswith(ROOT + os.sep)
              and "/site-packages/" not in f.filename and not f.filename.endswith("test_device_contract.py")]
    return " <- ".join(f"{os.path.relpath(f.filename, ROOT)}:{f.lineno}" for f in reversed(frames[-3:])) or "?"


def snapshot() -> MemorySnapshot:
    """300 users, 200 items, ~2.4k clicks, item numeric + categorical + text features."""
    rng = np.random.default_rng(0)
    users, items = 300, 200
    degree = rng.integers(1, 15, users)
    indptr = np.concatenate([[0], np.cumsum(degree)]).astype(np.int64)
    indices = np.concatenate([np.sort(rng.choice(items, d, replace=False)) for d in degree]).astype(np.int32)
    features = {"item": {"numeric": rng.standard_normal((items, 3)).astype(np.float32),
                         "categorical": rng.integers(0, 4, (items, 2)).astype(np.int32),
                         "text": rng.standard_normal((items, 8)).astype(np.float32)}}
    return MemorySnapshot({"user": users, "item": items},
                          {TARGET: (indptr, indices, np.ones(len(indices), np.float32))}, features,
                          feature_spec={"item": {"categorical": {"cardinalities": [4, 4]}}})


CONFIGS = {
    "default": {},
    "features_only": {"model": {"use_id_embedding": False}},
    "sparse_id_row_adam": {"model": {"sparse_id_embedding": True}},
    "shared_softmax_bias": {"shared_negatives": True, "loss": "sampled_softmax",
                            "model": {"decoder": "cosine", "temperature": 0.2, "destination_bias": True}},
    "shared_bpr": {"shared_negatives": True, "loss": "bpr"},
    "bias_bpr_popularity": {"negatives": {"popularity": 1.0}, "model": {"destination_bias": True}},
    "weighted_mean_gated": {"model": {"aggr": "weighted_mean", "fusion": "gated"}},
    "weight_free_sampled": {"model": {"weight_free": True, "layer_combination": "mean"}},
    "full_lightgcn": {"mode": "full", "shared_negatives": True, "loss": "sampled_softmax",
                      "model": {"weight_free": True, "layer_combination": "mean", "use_features": False}},
    "cold_start": {"cold_start_fraction": 0.2},
    "attention_combine": {"model": {"combine": "attention"}},
}


def training_config(name: str, hidden_dim: int = 8, model_extra: dict | None = None, **overrides) -> TrainConfig:
    """``CONFIGS[name]`` on :func:`snapshot`'s click target (``overrides``: other TrainConfig fields)."""
    extra = dict(CONFIGS[name])
    model = {"hidden_dim": hidden_dim, "num_layers": 2, **extra.pop("model", {}), **(model_extra or {})}
    base = dict(targets=(TARGET,), fanouts=(3, 2), batch_size=32, epochs=1, lr=0.01, num_negatives=2,
                validation_fraction=0.0, seed=0, prefetch=False, model=model, **extra)
    return TrainConfig(**{**base, **overrides})


def train_steps(trainer: Trainer, steps: int) -> list[tuple[torch.Tensor, int]]:
    """``steps`` training steps of epoch 0 as ``fit`` takes them: (detached loss, positives) of each."""
    out = []
    for step in range(steps):
        trainer.optimizer.zero_grad()
        loss, count = trainer._step_loss(0, step)
        loss.backward()
        trainer.optimizer.step()
        out.append((loss.detach(), count))
    return out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_training_step_keeps_its_tensors_on_the_model_device(name, tmp_path):
    config = training_config(name)
    trainer = Trainer(snapshot(), config, str(tmp_path), LocalBackend(device="meta"), progress=False)
    assert {p.device.type for p in trainer.model.parameters()} == {"meta"}
    recorder = HostMixRecorder()
    with recorder:
        loss, count = train_steps(trainer, 2)[-1]
        trainer.model.eval()  # inference (embed_all's forward) on a batch of items
        with torch.no_grad():
            batch = trainer.full if config.mode == "full" else trainer.sampler.sample(
                {"item": torch.arange(50)}, generator=torch.Generator().manual_seed(0))
            out = trainer._forward(batch)
            if config.inference == "layerwise":  # embed_all's layer-wise pass over every node
                out = trainer._layerwise()
    assert loss.device.type == "meta" and count > 0 and out["item"].device.type == "meta"
    assert recorder.mixes == [], "ops CUDA would refuse (host and device operands):\n" + "\n".join(
        f"{op} at {site}" for op, site in dict.fromkeys(recorder.mixes))


def test_the_recorder_sees_a_mix():
    """The check above can fail: a host index into a device table is recorded."""
    table = torch.empty(5, 3, device="meta")
    with HostMixRecorder() as recorder:
        torch.nn.functional.embedding(torch.tensor([1, 2]), table)
    assert [op for op, _ in recorder.mixes] == ["aten.embedding.default"]
