"""Multi-behaviour training and evaluation on planted data (MuLe's format): purchase is the
behaviour evaluated by default, an auxiliary behaviour that carries the signal raises recall when the
model propagates over it, evaluation masks only the target behaviour's training items and breaks
the figures down by the users' training degree."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from graphlake.training.config import TrainConfig
from graphlake.training.evaluate import evaluate
from graphlake.training.job import train

BUY, FAV = "user__purchase__item", "user__fav__item"
USERS, ITEMS, GROUPS = 80, 48, 4
SMALL = dict(epochs=40, batch_size=16, fanouts=(8, 4), lr=0.02, model={"hidden_dim": 16}, seed=3)  # 200 steps


def write_planted_mule(folder: str, seed: int = 0) -> dict:
    """Users and items in ``GROUPS`` communities (id mod GROUPS). Each user bought 1 item of its
    community (buy.txt: too little to find the communities from), collected 6 (collect.txt: the
    signal) and buys 2 more in the test (test.txt); one of those test buys is an item the user had
    collected (as 10 % of Tmall's test buys are)."""
    rng = np.random.RandomState(seed)
    os.makedirs(folder, exist_ok=True)
    truth = {}
    with open(os.path.join(folder, "buy.txt"), "w") as buy, open(os.path.join(folder, "collect.txt"), "w") as fav, \
            open(os.path.join(folder, "test.txt"), "w") as test:
        for u in range(USERS):
            group = [i for i in range(ITEMS) if i % GROUPS == u % GROUPS]
            chosen = rng.choice(group, size=8, replace=False).tolist()
            bought, collected, later = chosen[:1], chosen[1:7], [chosen[7], chosen[1]]
            truth[u] = (bought, collected, later)
            buy.writelines(f"{u} {i}\n" for i in bought)
            fav.writelines(f"{u} {i}\n" for i in collected)
            test.writelines(f"{u} {i}\n" for i in later)
    return truth


@pytest.fixture(scope="module")
def mule_lake(spark, tmp_path_factory):
    from graphlake.etl.importers import import_dataset
    from graphlake.graph_build.config import GraphConfig
    from graphlake.graph_build.job import build_graph

    root = tmp_path_factory.mktemp("mule")
    write_planted_mule(str(root / "data"))
    lake_dir = str(root / "lake")
    import_dataset(spark, "mule", str(root / "data"), lake_dir)
    build_graph(spark, lake_dir, GraphConfig(text_model="hashing", text_dim=16), build_docs=False)
    return lake_dir


@pytest.fixture(scope="module")
def runs(spark, mule_lake):
    """(a) purchase only; (b) the target purchase over every relation (purchase + fav)."""
    only = train(spark, mule_lake, TrainConfig(**SMALL, targets=(BUY,), edge_types=(BUY,)), run_id="buy-only",
                 progress=False)
    both = train(spark, mule_lake, TrainConfig(**SMALL, targets=(BUY,)), run_id="buy-and-fav", progress=False)
    return only, both


def test_fav_as_an_auxiliary_relation_lifts_purchase_recall(spark, mule_lake, runs):
    only, both = runs
    a = evaluate(spark, mule_lake, run_id=only["run_id"], k=5)
    b = evaluate(spark, mule_lake, run_id=both["run_id"], k=5)
    assert b["targets"] == [BUY] and b["target"] == BUY and b["masked"] == [BUY]
    assert a["users"] == b["users"] == USERS and b["test_pairs"] == 2 * USERS
    # the collects carry the communities: propagating over them must lift recall well above purchase only
    assert b["recall@5"] > a["recall@5"] + 0.15, (a["recall@5"], b["recall@5"])
    assert b["hr@5"] >= b["recall@5"]
    # every user bought exactly one item: one degree bucket holds everyone
    assert {name: g["users"] for name, g in b["by_degree"].items()} == {"0": 0, "1-2": USERS, "3-5": 0, "6-10": 0,
                                                                        "11+": 0}
    assert b["by_degree"]["1-2"]["recall@5"] == pytest.approx(b["recall@5"])


def test_evaluation_defaults_to_the_purchase_behaviour():
    """A run trained on every behaviour (the default targets) is evaluated on purchase, with only
    the purchases masked."""
    from graphlake.training.evaluate import _evaluated_target

    assert _evaluated_target(None, [FAV, BUY], [FAV, BUY]) == BUY
    assert _evaluated_target(None, [FAV], [FAV, BUY]) == FAV
    assert _evaluated_target("fav", [BUY], [FAV, BUY]) == FAV


def test_only_the_target_behaviours_training_items_are_masked(spark, mule_lake, runs):
    """Half the test buys are items the user collected: masking every behaviour (the old default)
    would make them unhittable; the target mask keeps them rankable."""
    _, both = runs
    by_fav = evaluate(spark, mule_lake, run_id=both["run_id"], k=5, target="fav")  # a behaviour by name
    assert by_fav["target"] == FAV and by_fav["masked"] == [FAV]
    target = evaluate(spark, mule_lake, run_id=both["run_id"], k=5)
    # with the user's collects masked, the collected half of the test buys can never be in the list
    assert by_fav["recall@5"] <= 0.5 and target["recall@5"] > by_fav["recall@5"] + 0.05, \
        (target["recall@5"], by_fav["recall@5"])
    assert by_fav["by_degree"]["6-10"]["users"] == USERS  # 6 collects each
    with pytest.raises(ValueError, match=r"target: 'user__view__item' is not an edge type of the run's graph"):
        evaluate(spark, mule_lake, run_id=both["run_id"], target="view")
    with pytest.raises(ValueError, match=r"mask: expected one of \['target', 'targets'\], got 'all'"):
        evaluate(spark, mule_lake, run_id=both["run_id"], mask="all")


def test_target_weights_scale_each_targets_share_of_the_loss(spark, mule_lake, tmp_path):
    """A step's loss is ``sum_e w_e B_e L_e / sum_e w_e B_e``: two weightings of the same step
    give the per-target losses, which must predict a third weighting exactly."""
    import dataclasses

    from graphlake.graph_build.export import export_graph
    from graphlake.graph_build.snapshot import open_snapshot
    from graphlake.training.distributed import get_backend
    from graphlake.training.trainer import Trainer

    snap = open_snapshot(export_graph(spark, mule_lake)["path"])
    config = TrainConfig(**{**SMALL, "epochs": 1}, targets=(BUY, FAV), target_weights={FAV: 1.0})
    trainer = Trainer(snap, config, str(tmp_path / "w"), get_backend("local"), progress=False)
    prepared = trainer._prepare_step(0, 0)
    sizes = {e: b for e, _, _, _, _, b, _, _ in prepared.plan}
    assert sizes[BUY] > 0 and sizes[FAV] > 0

    def loss(weights: dict) -> float:
        trainer.config = dataclasses.replace(config, target_weights=weights)
        with torch.no_grad():
            value, count = trainer._step_loss(0, 0, prepared)
        assert count == sizes[BUY] + sizes[FAV]
        return float(value)

    b, f = sizes[BUY], sizes[FAV]
    one, three = loss({FAV: 1.0}), loss({FAV: 3.0})
    # one = (b L_b + f L_f) / (b + f); three = (b L_b + 3 f L_f) / (b + 3 f)
    l_fav = (three * (b + 3 * f) - one * (b + f)) / (2 * f)
    l_buy = (one * (b + f) - f * l_fav) / b
    assert loss({FAV: 0.25, BUY: 2.0}) == pytest.approx((2 * b * l_buy + 0.25 * f * l_fav) / (2 * b + 0.25 * f),
                                                        rel=1e-5)
    assert l_fav != pytest.approx(l_buy, rel=1e-3)  # the two targets' losses differ: the weights matter
    with pytest.raises(ValueError, match=r"target_weights: \['user__cart__item'\] are not targets of this run"):
        Trainer(snap, TrainConfig(**SMALL, target_weights={"user__cart__item": 1.0}), str(tmp_path / "x"),
                get_backend("local"), progress=False)
    with pytest.raises(ValueError, match=r"target_weights: 'user__cart__item' is not one of the targets"):
        TrainConfig(targets=(BUY,), target_weights={"user__cart__item": 1.0})
    with pytest.raises(ValueError, match=r"target_weights\['user__fav__item'\]: expected > 0.0, got 0"):
        TrainConfig(targets=(BUY, FAV), target_weights={FAV: 0})


def test_train_without_a_config_uses_the_recipe(spark, mule_lake, capsys):
    """``graphlake train`` with no config on a multi-behaviour lake: purchase the first target,
    fav an auxiliary target of equal weight, full-graph propagation over the behaviours."""
    import json

    from graphlake.app import cli
    from graphlake.training.run import TrainRun

    assert cli.main(["train", "--lake", mule_lake, "--epochs", "2", "--seed", "5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    config = TrainRun.of(mule_lake, summary["run_id"]).spec()["config"]
    assert config["targets"] == [BUY, FAV] and "target_weights" not in config  # equal weights: the default
    assert (config["mode"], config["epochs"], config["seed"], config["edge_types"]) == ("full", 2, 5, [FAV, BUY])
    # 80 buys + 480 collects: at least 16 steps an epoch; no more negatives than the 48 items
    assert (config["batch_size"], config["num_negatives"], summary["steps"]) == (64, 48, 18)
    result = evaluate(spark, mule_lake, run_id=summary["run_id"], k=5)
    assert result["target"] == BUY and result["masked"] == [BUY]
