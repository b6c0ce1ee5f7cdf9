"""Training end to end on a planted-community dataset: learning, determinism, exact resume,
full-graph (LightGCN) mode, the CLI (train, evaluate) and embeddings keyed by original ids."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch
from pyspark.sql import functions as F

from graphlake.app import cli
from graphlake.core import lake, tables
from graphlake.graph_build.snapshot import open_snapshot
from graphlake.training import checkpoint as ckpt
from graphlake.training.config import TrainConfig, config_hash
from graphlake.training.distributed import get_backend
from graphlake.training.evaluate import evaluate
from graphlake.training.job import embeddings_table, train
from graphlake.training.model import NodeEncoder
from graphlake.training.run import TrainRun
from graphlake.training.trainer import Trainer

TARGET = "user__purchase__item"
BASE = dict(epochs=12, batch_size=64, fanouts=(5, 5), edge_types=(TARGET,), lr=0.02, model={"hidden_dim": 16})


def _embeddings(run_dir: str) -> dict:
    return {t: np.load(TrainRun(run_dir).embeddings_path(t)) for t in ("user", "item")}


class _Killed(Exception):
    """Stands for the kill of a training process."""


def _fit_killed_after(trainer: Trainer, steps: int) -> None:
    """``trainer.fit()`` killed (an exception) as its step number ``steps + 1`` starts."""
    step_loss, calls = trainer._step_loss, []

    def dies(epoch, step, prepared=None):
        calls.append(step)
        if len(calls) == steps + 1:
            raise _Killed
        return step_loss(epoch, step, prepared)

    trainer._step_loss = dies
    with pytest.raises(_Killed):
        trainer.fit()


def test_config_is_checked():
    with pytest.raises(ValueError, match=r"fanouts\[1\]: expected an int >= 1 or -1, got 0"):
        TrainConfig(fanouts=(5, 0))
    with pytest.raises(ValueError, match=r"lr_schedule: expected one of \['constant', 'cosine', 'linear'\], got 'step'"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ValueError, match=r"final_lr_ratio: expected a number in \[0, 1\], got 1.5"):
        TrainConfig(final_lr_ratio=1.5)
    cosine = TrainConfig(lr_schedule="cosine", final_lr_ratio=0.2)
    assert [round(cosine.lr_factor(t, 4), 6) for t in range(5)] == [1.0, 0.882843, 0.6, 0.317157, 0.2]
    assert TrainConfig(lr_schedule="linear").lr_factor(3, 4) == 0.25 and TrainConfig().lr_factor(3, 4) == 1.0
    with pytest.raises(ValueError, match="negatives: fractions must sum to 1"):
        TrainConfig(negatives={"uniform": 0.5})
    with pytest.raises(ValueError, match="negatives: unknown strategies"):
        TrainConfig(negatives={"nearest": 1.0})
    with pytest.raises(ValueError, match=r"targets\[0\]: expected an edge type"):
        TrainConfig(targets=("user_click_item",))
    with pytest.raises(ValueError, match="model.num_layers: 3 differs from len"):
        TrainConfig(fanouts=(5, 5), model={"num_layers": 3})
    with pytest.raises(ValueError, match="model."):
        TrainConfig(model={"aggr": "max"})


def test_training_learns_the_communities_and_writes_keyed_tables(spark, planted):
    lake_dir, _ = planted
    summary = train(spark, lake_dir, TrainConfig(**BASE, seed=3), progress=False)
    result = evaluate(spark, lake_dir, run_id=summary["run_id"], k=10)
    # a random ranking of the 34 unseen items finds ~10/34 = 0.29 of the test items
    assert result["users"] == 60 and result["test_pairs"] == 120 and result["unknown_pairs"] == 0
    assert result["recall@10"] >= 0.55, result
    users = lake.read_table(spark, tables.table_path(lake_dir, embeddings_table("user")))
    mine = users.filter(F.col("run_id") == summary["run_id"])
    assert sorted(int(r["key"]) for r in mine.select("key").collect()) == list(range(60))
    row = mine.filter(F.col("key") == "7").first()
    emb = _embeddings(summary["run_dir"])["user"]
    assert np.allclose(np.asarray(row["embedding"], dtype=np.float32), emb[row["node_id"]])
    assert os.path.isfile(summary["report"]) and "<img" in open(summary["report"]).read()


def test_same_seed_gives_identical_embeddings(spark, planted):
    lake_dir, _ = planted
    a = train(spark, lake_dir, TrainConfig(**{**BASE, "epochs": 1}, seed=11), progress=False)
    b = train(spark, lake_dir, TrainConfig(**{**BASE, "epochs": 1}, seed=11), progress=False)
    c = train(spark, lake_dir, TrainConfig(**{**BASE, "epochs": 1}, seed=12), progress=False)
    ea, eb, ec = _embeddings(a["run_dir"]), _embeddings(b["run_dir"]), _embeddings(c["run_dir"])
    assert all(np.array_equal(ea[t], eb[t]) for t in ea)
    assert not np.array_equal(ea["item"], ec["item"])


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(planted, tmp_path):
    _, snap_dir = planted
    snap, backend = open_snapshot(snap_dir), get_backend("local")
    full = Trainer(snap, TrainConfig(**{**BASE, "epochs": 2}, seed=5), str(tmp_path / "a"), backend, progress=False)
    full.fit()
    first = Trainer(snap, TrainConfig(**{**BASE, "epochs": 1, "checkpoint_every": 3}, seed=5), str(tmp_path / "b"),
                    backend, progress=False)
    first.fit()  # stops after epoch 0: the checkpoint is the point a killed run would restart from
    assert ckpt.load_latest(str(tmp_path / "b"))["epoch"] == 1
    resumed = Trainer(snap, TrainConfig(**{**BASE, "epochs": 2}, seed=5), str(tmp_path / "b"), backend, progress=False)
    resumed.fit(resume=True)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    a, b = full.embed_all(), resumed.embed_all()
    assert all(np.array_equal(a[t], b[t]) for t in a)


class _RunsCode:
    """A pickle payload: unpickling it would create a file (stands for running any code)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoints_are_read_without_running_code(planted, tmp_path):
    """Checkpoints hold tensors and plain values only and load with weights_only: a crafted pickle
    in the lake is refused (nothing runs), for resume and warm start alike."""
    _, snap_dir = planted
    snap, backend = open_snapshot(snap_dir), get_backend("local")
    run = tmp_path / "run"
    trainer = Trainer(snap, TrainConfig(**{**BASE, "epochs": 1}, seed=5, validation_fraction=0.1), str(run),
                      backend, progress=False)
    trainer.fit()
    state = ckpt.load_latest(str(run))  # weights_only=True: the real checkpoint (optimizer, history) loads
    assert state["epoch"] == 1 and any(str(k).startswith("val_") for h in state["history"] for k in h)
    marker = tmp_path / "pwned"
    evil = run / "checkpoints" / ckpt.latest_path(str(run)).split("/")[-1]
    torch.save({"model": {}, "global_step": 1, "payload": _RunsCode(str(marker))}, str(evil))
    with pytest.raises(ckpt.UnsafeCheckpointError, match=r"checkpoint .*step_\d+\.pt: refused to load it"):
        ckpt.load_latest(str(run))
    resumed = Trainer(snap, TrainConfig(**{**BASE, "epochs": 2}, seed=5, validation_fraction=0.1), str(run),
                      backend, progress=False)
    with pytest.raises(ckpt.UnsafeCheckpointError):
        resumed.fit(resume=True)
    fresh = Trainer(snap, TrainConfig(**BASE, seed=5), str(tmp_path / "warm"), backend, progress=False)
    with pytest.raises(ckpt.UnsafeCheckpointError):
        fresh.fit(warm_start=str(evil))
    assert not marker.exists()
    assert ckpt.plain_state({"a": np.float64(0.5), "b": [np.int64(3)], "c": np.ones(2)})["c"].dtype == torch.float64
    with pytest.raises(TypeError, match="a checkpoint holds tensors and plain values only, got _RunsCode"):
        ckpt.plain_state({"x": _RunsCode("nope")})


def test_prefetching_the_next_step_changes_nothing_but_the_speed(planted, tmp_path):
    _, snap_dir = planted
    snap, backend = open_snapshot(snap_dir), get_backend("local")
    config = dict(BASE, epochs=2, checkpoint_every=4, negatives={"uniform": 0.5, "popularity": 0.5})
    runs = {}
    for prefetch in (True, False):
        trainer = Trainer(snap, TrainConfig(**config, seed=9, prefetch=prefetch), str(tmp_path / str(prefetch)),
                          backend, progress=False)
        trainer.fit()
        runs[prefetch] = ([h["loss"] for h in trainer.history], trainer.embed_all())
    assert runs[True][0] == runs[False][0] and len(runs[True][0]) == 2 * trainer.steps_per_epoch
    assert all(np.array_equal(runs[True][1][t], runs[False][1][t]) for t in runs[True][1])
    assert config_hash(TrainConfig(**config, prefetch=False)) == config_hash(TrainConfig(**config))
    with pytest.raises(TypeError, match="prefetch: expected true or false, got 'yes'"):
        TrainConfig(prefetch="yes")


def test_resident_id_gradients_equal_the_plain_dense_ones(planted, tmp_path):
    _, snap_dir = planted
    snap, backend = open_snapshot(snap_dir), get_backend("local")
    config = TrainConfig(**BASE, seed=4)
    resident = Trainer(snap, config, str(tmp_path / "a"), backend, progress=False)
    plain = Trainer(snap, config, str(tmp_path / "b"), backend, progress=False)
    plain.optimizer.resident = None  # the usual path: nn.Embedding's dense gradient, a new tensor per step
    for module in plain.model.modules():
        if isinstance(module, NodeEncoder):
            module.sparse_id_lookup = False
    tables = [p for p in resident.optimizer.resident.params]
    assert len(tables) == 2 and all(not p.is_sparse for p in tables)  # users' and items' ID tables
    for step in range(3):
        for trainer in (resident, plain):
            trainer.optimizer.zero_grad()
            loss, _ = trainer._step_loss(0, step)
            loss.backward()
        for (name, a), b in zip(resident.model.named_parameters(), plain.model.parameters()):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-7, msg=name)
        assert all(p.grad is buf for p, buf in zip(tables, resident.optimizer.resident.buffers))
        resident.optimizer.step()
        plain.optimizer.step()


def test_hard_negatives_are_scored_by_the_epochs_model_and_resume_exactly(planted, tmp_path):
    _, snap_dir = planted
    snap, backend = open_snapshot(snap_dir), get_backend("local")
    config = TrainConfig(**{**BASE, "epochs": 2, "checkpoint_every": 3}, seed=6, num_negatives=2,
                         negatives={"uniform": 0.5, "hard": 0.5}, validation_fraction=0.1)
    full = Trainer(snap, config, str(tmp_path / "a"), backend, progress=False)
    full.fit()
    assert set(full.hard_tables) == {"user", "item"}
    # the hard column (the last: split_counts orders by STRATEGIES) scores above the uniform one
    # under the epoch's vectors
    plan = full._prepare_step(1, 0).plan
    (_, _, _, _, _, b, _, neg), = plan
    src, _ = full._rank_batch(TARGET, 1, 0)
    user, item = full.hard_tables["user"].index_select(0, src), full.hard_tables["item"]
    cols = (user.unsqueeze(1) * item.index_select(0, neg).reshape(b, 2, -1)).sum(-1)
    assert float(cols[:, 1].mean()) > float(cols[:, 0].mean()) + 0.5, cols.mean(0)
    serial = Trainer(snap, TrainConfig(**{**dataclasses.asdict(config), "prefetch": False}), str(tmp_path / "s"),
                     backend, progress=False)
    serial.fit()
    assert [h.get("loss") for h in serial.history] == [h.get("loss") for h in full.history]

    interrupted = Trainer(snap, config, str(tmp_path / "b"), backend, progress=False)
    _fit_killed_after(interrupted, interrupted.steps_per_epoch + 4)  # mid-way through epoch 1
    state = ckpt.load_latest(str(tmp_path / "b"))
    assert state["epoch"] == 1 and 0 < state["step"] < 5 and "hard_tables" in state
    resumed = Trainer(snap, config, str(tmp_path / "b"), backend, progress=False)
    resumed.fit(resume=True)
    assert [h.get("loss") for h in resumed.history] == [h.get("loss") for h in full.history]
    # killed as epoch 1 starts: the resumed run embeds afresh what the undisturbed one took from the
    # epoch-boundary validation pass (one inference pass for both): the same vectors, the same steps
    at_boundary = Trainer(snap, config, str(tmp_path / "c"), backend, progress=False)
    _fit_killed_after(at_boundary, at_boundary.steps_per_epoch)
    assert ckpt.load_latest(str(tmp_path / "c"))["step"] == 0
    resumed = Trainer(snap, config, str(tmp_path / "c"), backend, progress=False)
    resumed.fit(resume=True)
    assert [h.get("loss") for h in resumed.history] == [h.get("loss") for h in full.history]
    assert any("val_" + TARGET + "_recall@20" in h for h in full.history)
    with pytest.raises(ValueError, match="negatives: 'hard' picks negatives per positive"):
        TrainConfig(negatives={"hard": 1.0}, shared_negatives=True)


def test_lr_schedule_follows_the_global_step_through_a_resume(planted, tmp_path):
    """Cosine decay: the lr of each step is recorded, ends near lr * final_lr_ratio, and a run killed
    mid-epoch and resumed from its checkpoint takes exactly the same steps as an undisturbed one."""
    _, snap_dir = planted
    snap, backend = open_snapshot(snap_dir), get_backend("local")
    config = TrainConfig(**{**BASE, "epochs": 2, "checkpoint_every": 3}, seed=5, lr_schedule="cosine",
                         final_lr_ratio=0.1)
    full = Trainer(snap, config, str(tmp_path / "a"), backend, progress=False)
    full.fit()
    lrs = [h["lr"] for h in full.history if "lr" in h]
    total = 2 * full.steps_per_epoch
    assert len(lrs) == total and lrs[0] == pytest.approx(BASE["lr"])
    assert lrs[-1] == pytest.approx(BASE["lr"] * config.lr_factor(total - 1, total))
    assert all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.12 * BASE["lr"]

    interrupted = Trainer(snap, config, str(tmp_path / "b"), backend, progress=False)
    _fit_killed_after(interrupted, 4)
    assert ckpt.load_latest(str(tmp_path / "b"))["global_step"] == 3
    resumed = Trainer(snap, config, str(tmp_path / "b"), backend, progress=False)
    resumed.fit(resume=True)
    assert [(h["loss"], h["lr"]) for h in resumed.history if "lr" in h] == \
        [(h["loss"], h["lr"]) for h in full.history if "lr" in h]
    a, b = full.embed_all(), resumed.embed_all()
    assert all(np.array_equal(a[t], b[t]) for t in a)


def test_full_graph_lightgcn_mode(spark, planted):
    lake_dir, _ = planted
    lightgcn = {"hidden_dim": 16, "num_layers": 2, "weight_free": True, "layer_combination": "mean",
                "use_features": False, "decoder": "cosine", "temperature": 0.2}
    # the Gowalla benchmark's recipe: sampled softmax over negatives shared by the batch
    config = TrainConfig(**{**BASE, "epochs": 30, "batch_size": 128, "lr": 0.05, "l2": 0.0, "model": lightgcn},
                         mode="full", loss="sampled_softmax", num_negatives=16, shared_negatives=True)
    summary = train(spark, lake_dir, config, progress=False)
    assert evaluate(spark, lake_dir, run_id=summary["run_id"], k=10)["recall@10"] >= 0.5


def test_popularity_prior_exports_dot_scoring_vectors(spark, planted):
    """model.popularity_prior: users [h/|h|/t, 1], items [h/|h|, beta log(1 + training degree)], ranked by dot."""
    lake_dir, snap_dir = planted
    model = {"hidden_dim": 16, "num_layers": 2, "weight_free": True, "layer_combination": "mean",
             "use_features": False, "decoder": "cosine", "temperature": 0.2, "popularity_prior": 0.5}
    config = TrainConfig(**{**BASE, "epochs": 10, "batch_size": 128, "lr": 0.05, "l2": 0.0, "model": model},
                         mode="full", loss="sampled_softmax", num_negatives=16, shared_negatives=True)
    summary = train(spark, lake_dir, config, progress=False)
    emb, snap = _embeddings(summary["run_dir"]), open_snapshot(snap_dir)
    degrees = np.bincount(np.asarray(snap.csr(TARGET)[1]), minlength=snap.num_nodes("item"))
    assert emb["user"].shape == (snap.num_nodes("user"), 17) and emb["item"].shape == (snap.num_nodes("item"), 17)
    np.testing.assert_allclose(emb["user"][:, -1], 1.0)
    np.testing.assert_allclose(np.linalg.norm(emb["user"][:, :-1], axis=1), 1 / 0.2, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb["item"][:, :-1], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(emb["item"][:, -1], 0.5 * np.log1p(degrees), rtol=1e-6)
    assert evaluate(spark, lake_dir, run_id=summary["run_id"], k=10)["recall@10"] >= 0.5


def test_a_learned_destination_bias_is_trained_and_exported(spark, planted, tmp_path):
    """model.destination_bias: items [h/|h|, b_i] with b_i the model's trained bias, users [h/|h|/t, 1]."""
    lake_dir, snap_dir = planted
    model = {"hidden_dim": 16, "num_layers": 2, "weight_free": True, "layer_combination": "mean",
             "use_features": False, "decoder": "cosine", "temperature": 0.2, "destination_bias": True}
    config = TrainConfig(**{**BASE, "epochs": 10, "batch_size": 128, "lr": 0.05, "l2": 0.0, "model": model},
                         mode="full", loss="sampled_softmax", num_negatives=16, shared_negatives=True)
    summary = train(spark, lake_dir, config, progress=False)
    emb, snap = _embeddings(summary["run_dir"]), open_snapshot(snap_dir)
    bias = ckpt.load_latest(summary["run_dir"])["model"]["score_bias.item"].numpy()
    degrees = np.bincount(np.asarray(snap.csr(TARGET)[1]), minlength=snap.num_nodes("item"))
    assert emb["item"].shape == (snap.num_nodes("item"), 17) and bias.shape == (snap.num_nodes("item"),)
    np.testing.assert_allclose(emb["user"][:, -1], 1.0)
    np.testing.assert_allclose(emb["item"][:, -1], bias, rtol=1e-6)
    assert np.corrcoef(bias, degrees)[0, 1] > 0.5  # the softmax pushes popular items up
    assert evaluate(spark, lake_dir, run_id=summary["run_id"], k=10)["recall@10"] >= 0.5
    # sampled mode, BPR over per-positive negatives: the bias is in both scores
    sampled_config = TrainConfig(**{**BASE, "epochs": 1, "model": {"hidden_dim": 8, "destination_bias": True}})
    sampled = Trainer(open_snapshot(snap_dir), sampled_config, str(tmp_path / "s"), get_backend("local"),
                      progress=False)
    sampled.fit()
    assert float(sampled.model.score_bias["item"].detach().abs().sum()) > 0 and "user" not in sampled.model.score_bias
    assert sampled.embed_all(["item"])["item"].shape == (snap.num_nodes("item"), 9)


def test_cli_train_with_validation_and_evaluate(spark, planted, tmp_path, capsys):
    lake_dir, _ = planted
    config = tmp_path / "train.yaml"
    config.write_text("train:\n  epochs: 2\n  batch_size: 64\n  fanouts: [5, 5]\n  validation_fraction: 0.2\n"
                      "  edge_types: [user__purchase__item]\n  model: {hidden_dim: 16}\n")
    capsys.readouterr()
    assert cli.main(["train", "--lake", lake_dir, "--config", str(config), "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["device"] == "cpu"
    assert 0.0 <= summary["validation"][f"val_{TARGET}_recall@20"] <= 1.0
    assert summary["validation"][f"val_{TARGET}_users"] > 0
    assert cli.main(["evaluate", "--lake", lake_dir, "--k", "10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["run_id"] == summary["run_id"] and result["users"] == 60
    assert cli.main(["train", "--lake", lake_dir, "--backend", "local", "--workers", "2"]) == 2
    assert "workers: the local backend runs one process" in capsys.readouterr().err
    runs = sorted(os.listdir(os.path.join(lake_dir, tables.RUNS_DIR, "train")))
    assert cli.main(["train", "--lake", lake_dir, "--device", "tpu:0"]) == 2
    assert "device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu:0'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli.main(["train", "--lake", lake_dir, "--device", "cuda"]) == 2
        assert "device: 'cuda' asked for, but torch" in capsys.readouterr().err
    assert sorted(os.listdir(os.path.join(lake_dir, tables.RUNS_DIR, "train"))) == runs  # nothing was started
    assert cli.main(["evaluate", "--lake", lake_dir, "--run-id", "nope"]) == 2


def test_sampled_embeddings_of_a_type_do_not_depend_on_which_types_are_asked_for(tmp_path):
    """embed_all's neighbour samples are seeded by the type, not by its place in the request."""
    from tests.test_device_contract import TARGET as CLICKS
    from tests.test_device_contract import snapshot as memory_snapshot

    config = TrainConfig(targets=(CLICKS,), fanouts=(3, 2), batch_size=64, epochs=1, validation_fraction=0.0,
                         inference="sampled", model={"hidden_dim": 8})
    trainer = Trainer(memory_snapshot(), config, str(tmp_path), get_backend("local", device="cpu"), progress=False)
    np.testing.assert_array_equal(trainer.embed_all(["item"])["item"], trainer.embed_all(["user", "item"])["item"])
