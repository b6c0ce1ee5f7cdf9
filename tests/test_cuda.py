"""The training path on a real GPU: skipped where torch sees none (CI; tests/test_device_contract.py
checks the device contract there). Run on a CUDA machine with ``pytest tests/test_cuda.py``, or with
``bench/gpu_check.sh``, which also measures throughput.

``GRAPHLAKE_CUDA_TEST_DEVICE`` (default ``cuda``) names the device; ``cpu`` runs these tests without a
GPU, which checks the tests themselves, not CUDA.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from graphlake.training import checkpoint as ckpt
from graphlake.training.config import TrainConfig
from graphlake.training.distributed.base import LocalBackend
from graphlake.training.trainer import Trainer
from tests.test_device_contract import CONFIGS, snapshot, train_steps, training_config

DEVICE = os.environ.get("GRAPHLAKE_CUDA_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="no CUDA GPU seen by torch")


def _config(name: str, model_extra: dict | None = None, **overrides) -> TrainConfig:
    """Wider than the contract test's (16 dims, fanouts [4, 3], batches of 64), prefetch on."""
    return training_config(name, hidden_dim=16, model_extra=model_extra, **{
        "fanouts": (4, 3), "batch_size": 64, "seed": 3, "prefetch": True, **overrides})


def _steps(trainer: Trainer, steps: int) -> list[float]:
    return [float(loss) for loss, _ in train_steps(trainer, steps)]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_configuration_trains_on_the_gpu_like_on_the_cpu(name, tmp_path):
    """Same seed, same batches: the device's losses follow the CPU's (float32 kernels differ in
    summation order only) and every parameter lives on the device."""
    config = _config(name)
    on_device = Trainer(snapshot(), config, str(tmp_path / "d"), LocalBackend(device=DEVICE), progress=False)
    assert {p.device.type for p in on_device.model.parameters()} == {torch.device(DEVICE).type}
    on_cpu = Trainer(snapshot(), config, str(tmp_path / "c"), LocalBackend(device="cpu"), progress=False)
    device_losses, cpu_losses = _steps(on_device, 4), _steps(on_cpu, 4)
    assert all(np.isfinite(device_losses))
    np.testing.assert_allclose(device_losses, cpu_losses, rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("optimizer", ["adagrad", "sgd"])
@pytest.mark.parametrize("sparse_id", [False, True])
def test_the_other_optimizers_train_on_the_gpu_like_on_the_cpu(optimizer, sparse_id, tmp_path):
    """Adagrad and SGD step the ID tables themselves (sparse gradients where ``sparse_id_embedding``:
    torch's sparse kernels on the device, which the meta-device contract test cannot run)."""
    config = _config("default", model_extra={"sparse_id_embedding": sparse_id}, optimizer=optimizer, lr=0.05)
    on_device = Trainer(snapshot(), config, str(tmp_path / "d"), LocalBackend(device=DEVICE), progress=False)
    on_cpu = Trainer(snapshot(), config, str(tmp_path / "c"), LocalBackend(device="cpu"), progress=False)
    device_losses, cpu_losses = _steps(on_device, 4), _steps(on_cpu, 4)
    assert all(np.isfinite(device_losses)) and device_losses != device_losses[:1] * 4  # it trains
    np.testing.assert_allclose(device_losses, cpu_losses, rtol=2e-3, atol=1e-4)
    for (name, p_dev), (_, p_cpu) in zip(on_device.model.named_parameters(), on_cpu.model.named_parameters()):
        assert p_dev.device.type == torch.device(DEVICE).type, name
        np.testing.assert_allclose(p_dev.detach().cpu().numpy(), p_cpu.detach().numpy(), rtol=1e-3, atol=1e-4,
                                   err_msg=name)


def test_fit_checkpoints_and_embeds_and_the_cpu_reads_its_checkpoint(tmp_path):
    """A run trained on the device: its embeddings for every node, and its checkpoint read by a CPU
    trainer (a run moved to a machine without a GPU) gives the same embeddings."""
    config = _config("default", epochs=2, checkpoint_every=5)
    run_dir = str(tmp_path / "run")
    trainer = Trainer(snapshot(), config, run_dir, LocalBackend(device=DEVICE), progress=False)
    history = trainer.fit()
    assert len([h for h in history if "loss" in h]) == 2 * trainer.steps_per_epoch
    emb = trainer.embed_all(["user", "item"])
    assert emb["user"].shape == (300, 16) and emb["item"].shape == (200, 16) and np.isfinite(emb["item"]).all()
    state = ckpt.load_latest(run_dir)
    assert all(t.device.type == "cpu" for t in state["model"].values() if isinstance(t, torch.Tensor))
    cpu = Trainer(snapshot(), config, str(tmp_path / "cpu"), LocalBackend(device="cpu"), progress=False)
    cpu.model.load_state_dict(state["model"])
    cpu_emb = cpu.embed_all(["item"])["item"]
    np.testing.assert_allclose(cpu_emb, emb["item"], rtol=1e-3, atol=1e-4)


def test_layerwise_inference_on_the_device_equals_the_cpu(tmp_path):
    """``inference: layerwise`` (every node over its full neighbourhood) computed on the device."""
    config = _config("attention_combine")
    on_device = Trainer(snapshot(), config, str(tmp_path / "d"), LocalBackend(device=DEVICE), progress=False)
    _steps(on_device, 3)
    on_cpu = Trainer(snapshot(), config, str(tmp_path / "c"), LocalBackend(device="cpu"), progress=False)
    on_cpu.model.load_state_dict({k: v.cpu() for k, v in on_device.model.state_dict().items()})
    got, expected = on_device.embed_all(), on_cpu.embed_all()
    for t in ("user", "item"):
        np.testing.assert_allclose(got[t], expected[t], rtol=1e-3, atol=1e-4, err_msg=t)


@pytest.mark.parametrize("sparse_id", [False, True])
def test_one_rank_ddp_on_the_device(sparse_id, tmp_path, monkeypatch):
    """DDP on the device's collective (NCCL on a GPU): model wrapping with device_ids, the sparse
    ID-table hook, the score bias's outside-forward hook, metric all-reduces."""
    from graphlake.training.distributed.ddp_backend import DdpBackend

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    backend = DdpBackend(find_unused_parameters=True, device=DEVICE)
    try:
        name = "shared_softmax_bias"
        config = _config(name, model_extra={"sparse_id_embedding": sparse_id})
        trainer = Trainer(snapshot(), config, str(tmp_path), backend, progress=False)
        losses = _steps(trainer, 3)
        assert all(np.isfinite(losses)) and backend.allreduce_mean(2.0, "x") == 2.0
        reference = Trainer(snapshot(), config, str(tmp_path / "c"), LocalBackend(device="cpu"), progress=False)
        np.testing.assert_allclose(losses, _steps(reference, 3), rtol=2e-3, atol=1e-4)
    finally:
        backend.shutdown()
