"""Multi-behaviour training and evaluation on planted data (MuLe's format): purchase is the
behaviour evaluated by default, an auxiliary behaviour that carries the signal raises recall when the
model propagates over it, evaluation masks only the target behaviour's training items and breaks
the figures down by the users' training degree."""

from __future__ import annotations

import os

import numpy as np
import pytest

from training.config import TrainConfig
from training.evaluate import evaluate
from training.job import train

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
    from etl.importers import import_dataset
    from graph_build.config import GraphConfig
    from graph_build.job import build_graph

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
    from training.evaluate import _evaluated_target

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
