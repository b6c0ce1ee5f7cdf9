"""Layer-wise inference (training.layerwise, ``TrainConfig.inference: layerwise``): every node over
its full neighbourhood equals the model's forward on the whole graph, for any chunk size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from graphlake.graph_build.memory_snapshot import MemorySnapshot
from graphlake.training.config import TrainConfig, config_hash, config_json
from graphlake.training.distributed.base import LocalBackend
from graphlake.training.layerwise import layerwise_embeddings
from graphlake.training.trainer import Trainer

CLICK, CART, BELONGS = "user__click__item", "user__cart__item", "item__belongs_to__category"


def _csr(rng, n_src: int, n_dst: int, max_degree: int) -> tuple:
    degree = rng.integers(0, max_degree + 1, n_src)
    indptr = np.concatenate([[0], np.cumsum(degree)]).astype(np.int64)
    indices = np.concatenate([np.sort(rng.choice(n_dst, d, replace=False)) for d in degree]).astype(np.int32)
    return indptr, indices, rng.uniform(0.5, 2.0, len(indices)).astype(np.float32)


def hetero_snapshot() -> MemorySnapshot:
    """120 users, 80 items, 6 categories; clicks, carts, item -> category; item features."""
    rng = np.random.default_rng(7)
    users, items, cats = 120, 80, 6
    belongs = (np.arange(items + 1, dtype=np.int64), rng.integers(0, cats, items).astype(np.int32),
               np.ones(items, np.float32))
    features = {"item": {"numeric": rng.standard_normal((items, 3)).astype(np.float32),
                         "categorical": rng.integers(0, 4, (items, 1)).astype(np.int32),
                         "text": rng.standard_normal((items, 8)).astype(np.float32)}}
    return MemorySnapshot({"user": users, "item": items, "category": cats},
                          {CLICK: _csr(rng, users, items, 12), CART: _csr(rng, users, items, 4), BELONGS: belongs},
                          features, feature_spec={"item": {"categorical": {"cardinalities": [4]}}})


MODELS = {
    "default": {},
    "attention_weighted_gated": {"combine": "attention", "aggr": "weighted_mean", "fusion": "gated"},
    "weight_free_mean": {"weight_free": True, "layer_combination": "mean"},
    "three_layers_batch_norm": {"num_layers": 3, "norm": "batch"},
}


def _config(model: dict, **overrides) -> TrainConfig:
    layers = model.get("num_layers", 2)
    base = dict(targets=(CLICK,), fanouts=(4, 3, 2)[:layers], batch_size=32, epochs=1, lr=0.01, seed=0,
                prefetch=False, inference="layerwise", model={"hidden_dim": 8, **model})
    return TrainConfig(**{**base, **overrides})


def _trained(tmp_path, config: TrainConfig, steps: int = 3) -> Trainer:
    trainer = Trainer(hetero_snapshot(), config, str(tmp_path), LocalBackend(device="cpu"), progress=False)
    for step in range(steps):  # move the parameters (and batch-norm statistics) off their initial values
        trainer.optimizer.zero_grad()
        loss, _ = trainer._step_loss(0, step)
        loss.backward()
        trainer.optimizer.step()
    trainer.model.eval()
    return trainer


def _full_forward(trainer: Trainer) -> dict:
    """The model's forward over the whole graph (every node a seed, every edge in every block)."""
    with torch.no_grad():
        return trainer._forward(trainer.graph.full_batch(trainer.node_types, num_layers=trainer.model.num_layers))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_layerwise_equals_the_forward_over_the_whole_graph_for_any_chunk_size(name, tmp_path):
    trainer = _trained(tmp_path, _config(MODELS[name]))
    expected = _full_forward(trainer)
    for chunk in (7, 1000):
        got = layerwise_embeddings(trainer.model, trainer.graph, trainer._encode, chunk, trainer.degrees)
        assert sorted(got) == sorted(expected) == ["category", "item", "user"]
        for t in expected:
            assert got[t].shape == (trainer.graph.num_nodes[t], 8)
            np.testing.assert_allclose(got[t].numpy(), expected[t].numpy(), rtol=1e-5, atol=1e-6, err_msg=t)
    emb = trainer.embed_all()
    for t in ("user", "item"):
        np.testing.assert_allclose(emb[t], expected[t].numpy(), rtol=1e-5, atol=1e-6, err_msg=t)


def test_cold_start_rows_are_embedded_from_features_like_the_whole_graph_forward(tmp_path):
    trainer = _trained(tmp_path, _config({}, cold_start_fraction=0.2))
    assert trainer.cold is not None  # items held out of training: embed_all still embeds them
    expected = _full_forward(trainer)["item"].numpy()
    np.testing.assert_allclose(trainer.embed_all(["item"])["item"], expected, rtol=1e-5, atol=1e-6)


def test_no_randomness_rank_slices_and_the_sampled_path_differs(tmp_path):
    """Layer-wise rows do not depend on the seed used for inference or on how ranks slice them;
    the sampled path (same model) gives other vectors: the switch is real."""
    trainer = _trained(tmp_path, _config({}))
    first = trainer.embed_all()
    again = trainer.embed_all(["item"])["item"]
    np.testing.assert_array_equal(first["item"], again)
    lo, hi, rows = trainer.embed_all(["item"], rank_slice=True)["item"]
    assert (lo, hi) == (0, 80)
    np.testing.assert_array_equal(rows, first["item"])
    sampled = Trainer(hetero_snapshot(), _config({}, inference="sampled"), str(tmp_path / "s"),
                      LocalBackend(device="cpu"), progress=False)
    sampled.model.load_state_dict(trainer.model.state_dict())
    assert not np.allclose(sampled.embed_all(["user"])["user"], first["user"], atol=1e-4)


def test_ranks_compute_slices_and_assemble_what_one_process_computes(tmp_path):
    """Two ranks as two threads with a summing collective between them (the contract of
    ``Backend.allreduce_sum``; the real DDP / Horovod ones run in test_training_distributed)."""
    import threading

    trainer = _trained(tmp_path, _config({"layer_combination": "mean"}))
    expected = layerwise_embeddings(trainer.model, trainer.graph, trainer._encode, 16)
    barrier, deposits, names = threading.Barrier(2), {}, {0: [], 1: []}

    def make_allreduce(rank):
        def allreduce_sum(tensor, name):
            names[rank].append(name)
            deposits[rank] = tensor
            barrier.wait()
            out = deposits[0] + deposits[1]
            barrier.wait()
            return out
        return allreduce_sum

    results = {}

    def run(rank):
        results[rank] = layerwise_embeddings(trainer.model, trainer.graph, trainer._encode, 16, rank=rank,
                                             world_size=2, allreduce_sum=make_allreduce(rank))

    threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert names[0] == names[1] and len(names[0]) == 3 * 3  # (input + 2 layers) x 3 types, in one order
    for rank in (0, 1):
        for t in expected:
            np.testing.assert_allclose(results[rank][t].numpy(), expected[t].numpy(), rtol=1e-6, atol=1e-7)


def test_inference_is_checked_and_the_default_keeps_recorded_hashes():
    with pytest.raises(ValueError, match=r"inference: expected one of \['sampled', 'layerwise'\], got 'exact'"):
        TrainConfig(inference="exact")
    assert TrainConfig().inference == "layerwise" and "inference" not in json.loads(config_json(TrainConfig()))
    assert config_hash(TrainConfig()) == config_hash(TrainConfig(inference="layerwise"))
    assert config_hash(TrainConfig(inference="sampled")) != config_hash(TrainConfig())


def test_bad_arguments_are_named(tmp_path):
    trainer = _trained(tmp_path, _config({}), steps=0)
    with pytest.raises(ValueError, match="chunk_size: expected an int >= 1, got 0"):
        layerwise_embeddings(trainer.model, trainer.graph, trainer._encode, 0)
    with pytest.raises(TypeError, match="graph: expected a HeteroCSRGraph, got dict"):
        layerwise_embeddings(trainer.model, {}, trainer._encode, 8)
    with pytest.raises(ValueError, match=r"rank, world_size: expected 0 <= rank < world_size, got 2, 2"):
        layerwise_embeddings(trainer.model, trainer.graph, trainer._encode, 8, rank=2, world_size=2)
    with pytest.raises(ValueError, match="allreduce_sum: expected the backend's allreduce_sum"):
        layerwise_embeddings(trainer.model, trainer.graph, trainer._encode, 8, rank=0, world_size=2)
