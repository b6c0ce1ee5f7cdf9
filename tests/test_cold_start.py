"""Cold start: held-out items never seen in training, their feature-only ranking, and inductive
embeddings of brand-new nodes (``graphlake.training.cold_start``, ``graphlake.training.inductive``).

The planted dataset of ``tests/planted.py`` has no item features and no attribute edges, so a
held-out item there has nothing to be embedded from. These tests write a small snapshot in the
export format directly (no Spark; a Spark-built lake takes minutes on a shared 2-core machine):
users and items in planted communities, items with features that reflect their community and
``belongs_to`` edges to one category per community, and a count feature described by a
``graph_build``-style feature spec.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from graphlake.app import cli
from graphlake.graph_build.snapshot import open_snapshot
from graphlake.training import checkpoint as ckpt
from graphlake.training.cold_start import COLD_START_FILE, attribute_popularity, select_cold_items
from graphlake.training.config import TrainConfig, config_hash, config_json
from graphlake.training.distributed import get_backend
from graphlake.training.evaluate import cold_start_metrics, evaluate
from graphlake.training.inductive import embed_new_nodes
from graphlake.training.model import gather_features
from graphlake.training.run import TrainRun
from graphlake.training.trainer import Trainer
from graphlake.training.worker import run

USERS, ITEMS, COMMUNITIES, PER_USER = 80, 64, 4, 8
TARGET, BELONGS = "user__purchase__item", "item__belongs_to__category"
COUNT_MEAN, COUNT_STD = 1.5, 0.5  # the spec's stats of the item count feature (column 4 of numeric)
COLD = dict(epochs=10, batch_size=64, fanouts=(-1, -1), lr=0.02, cold_start_fraction=0.25, seed=1,
            model={"hidden_dim": 16, "combine": "sum"})


def write_snapshot(folder: str, num_nodes: dict, edges: dict, features: dict, feature_spec=None) -> str:
    """A snapshot folder in ``graphlake.graph_build.snapshot``'s layout from in-memory edge lists and matrices."""
    manifest = {"format": "graphlake-snapshot", "format_version": 1, "graph_version": 0, "edge_types": {},
                "node_types": {}, "feature_spec": feature_spec}

    def save(rel: str, arr: np.ndarray) -> dict:
        os.makedirs(os.path.dirname(os.path.join(folder, rel)), exist_ok=True)
        np.save(os.path.join(folder, rel), arr)
        return {"file": rel}

    for name, (src, dst, w) in edges.items():
        order = np.lexsort((dst, src))
        src, dst, w = np.asarray(src)[order], np.asarray(dst)[order], np.asarray(w, np.float32)[order]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=num_nodes[name.split("__")[0]]))])
        manifest["edge_types"][name] = {"nnz": len(dst), "files": {
            "indptr": save(f"edges/{name}/indptr.npy", indptr.astype(np.int64)),
            "indices": save(f"edges/{name}/indices.npy", dst.astype(np.int32)),
            "weights": save(f"edges/{name}/weights.npy", w)}}
    for t, n in num_nodes.items():
        manifest["node_types"][t] = {"num_nodes": n, "features": {
            k: save(f"features/{t}/{k}.npy", a) for k, a in (features.get(t) or {}).items()}}
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return folder


def community_snapshot(folder: str, seed: int = 0) -> str:
    """Users buy ``PER_USER`` items of their community (id mod 4); an item's numeric features are a
    noisy one-hot of its community plus a standardised log purchase count; it belongs to the
    category of its community."""
    rng = np.random.RandomState(seed)
    src, dst = [], []
    for u in range(USERS):
        group = [i for i in range(ITEMS) if i % COMMUNITIES == u % COMMUNITIES]
        for i in rng.choice(group, size=PER_USER, replace=False):
            src.append(u)
            dst.append(int(i))
    community = np.arange(ITEMS) % COMMUNITIES
    counts = np.bincount(dst, minlength=ITEMS)
    numeric = np.concatenate([np.eye(COMMUNITIES)[community] + 0.3 * rng.randn(ITEMS, COMMUNITIES),
                              ((np.log1p(counts) - COUNT_MEAN) / COUNT_STD)[:, None]], axis=1).astype(np.float32)
    names = [f"f{c}" for c in range(COMMUNITIES)] + ["n_purchase"]
    stats = {n: {"transform": "identity", "impute": "median", "standardised": False} for n in names[:-1]}
    stats["n_purchase"] = {"transform": "log1p", "impute": "zero", "standardised": True, "mean": COUNT_MEAN,
                           "std": COUNT_STD}
    spec = {"item": {"numeric": {"names": names, "dim": len(names), "stats": stats}}}
    features = {"item": {"numeric": numeric, "numeric_missing": np.zeros(numeric.shape, bool),
                         "categorical": rng.randint(1, 4, size=(ITEMS, 1)).astype(np.int32)}}
    edges = {TARGET: (np.array(src), np.array(dst), np.ones(len(src))),
             BELONGS: (np.arange(ITEMS), community, np.ones(ITEMS))}
    return write_snapshot(folder, {"user": USERS, "item": ITEMS, "category": COMMUNITIES}, edges, features, spec)


def train_run(lake_dir: str, run_id: str, snapshot: str, config: TrainConfig) -> str:
    """A finished run in ``<lake>/_runs/train/<run_id>`` (what ``graphlake train`` leaves, minus Delta)."""
    run_dir = os.path.join(lake_dir, "_runs", "train", run_id)
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        json.dump({"run_id": run_id, "graph_version": 0, "snapshot": snapshot, "config_hash": config_hash(config),
                   "config": json.loads(config_json(config))}, f)
    run(run_dir, get_backend("local"), progress=False)
    return run_dir


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("cold")
    return str(root / "lake"), community_snapshot(str(root / "snap"))


@pytest.fixture(scope="module")
def cold_run(lake):
    lake_dir, snap = lake
    return train_run(lake_dir, "cold", snap, TrainConfig(**COLD))


def _cold_ids(run_dir: str) -> list[int]:
    with open(os.path.join(run_dir, COLD_START_FILE)) as f:
        return json.load(f)["node_ids"]


def _csr(snap, edge_type):
    return tuple(np.asarray(a) for a in snap.csr(edge_type))


# ------------------------------------------------------------------ config and hold-out
def test_config_is_checked_and_default_hash_unchanged():
    for bad, exc in ((0.5, ValueError), (-0.1, ValueError), ("0.2", TypeError), (True, TypeError)):
        with pytest.raises(exc, match="cold_start_fraction"):
            TrainConfig(cold_start_fraction=bad)
    assert "cold_start_fraction" not in config_json(TrainConfig())  # runs without it keep their hash
    assert json.loads(config_json(TrainConfig(cold_start_fraction=0.2)))["cold_start_fraction"] == 0.2


def test_held_out_items_are_absent_from_training(lake, cold_run, tmp_path):
    _, snap_dir = lake
    snap = open_snapshot(snap_dir)
    with open(os.path.join(cold_run, COLD_START_FILE)) as f:
        saved = json.load(f)
    cold = saved["node_ids"]
    assert saved["node_type"] == "item" and saved["candidates"] == ITEMS and len(cold) == round(0.25 * ITEMS)
    assert select_cold_items(snap, [TARGET], 0.25, 1).node_ids.tolist() == cold  # deterministic from the seed
    assert select_cold_items(snap, [TARGET], 0.25, 2).node_ids.tolist() != cold

    trainer = Trainer(snap, TrainConfig(**COLD), str(tmp_path / "t"), get_backend("local"), progress=False)
    g, held = trainer.graph, torch.zeros(ITEMS, dtype=torch.bool)
    held[cold] = True
    # no target edge of a held-out item, in either direction; none in the training shards
    assert g.degree(("user", "purchase", "item"), torch.tensor(cold)).sum() == 0
    assert not held[g.csr(("item", "rev_purchase", "user"))[1]].any()
    assert not held[trainer.shards[TARGET][1]].any()
    # attribute edges only into the held-out item: categories never aggregate them
    assert not held[g.csr(("item", "belongs_to", "category"))[1]].any()
    assert (g.degree(("category", "rev_belongs_to", "item"), torch.tensor(cold)) == 1).all()
    # never a negative
    neg = trainer.negatives[TARGET].sample(torch.zeros(4000, dtype=torch.int64), torch.zeros(4000, dtype=torch.int64),
                                           4, torch.Generator().manual_seed(0))
    assert not held[neg.reshape(-1)].any()
    # their ID rows never got a gradient: still the initial values after training
    init = trainer.model.encoder.encoders["item"].id_embedding.weight.detach()
    trained = ckpt.load_latest(cold_run)["model"]["encoder.encoders.item.id_embedding.weight"]
    assert torch.equal(trained[cold], init[cold]) and not torch.equal(trained[~held], init[~held])
    # their count feature reads as a zero count; the other columns are kept
    ids = torch.tensor(cold[:3] + [int((~held).nonzero()[0])])
    feats = gather_features(trainer.features, {"item": ids})
    raw = feats["item"]["numeric"].clone()
    feats, mask = trainer.cold.prepare(feats, {"item": ids}, trainer.id_types)
    num = feats["item"]["numeric"]
    assert torch.allclose(num[:3, 4], torch.full((3,), -COUNT_MEAN / COUNT_STD)) and torch.equal(num[3], raw[3])
    assert torch.equal(num[:, :4], raw[:, :4]) and mask["item"].tolist() == [False, False, False, True]


def test_resume_with_cold_start_equals_an_uninterrupted_run(lake, tmp_path):
    _, snap_dir = lake
    snap, backend = open_snapshot(snap_dir), get_backend("local")
    base = {**COLD, "fanouts": (3, 3)}
    full = Trainer(snap, TrainConfig(**{**base, "epochs": 2}), str(tmp_path / "a"), backend, progress=False)
    full.fit()
    Trainer(snap, TrainConfig(**{**base, "epochs": 1, "checkpoint_every": 3}), str(tmp_path / "b"), backend,
            progress=False).fit()
    resumed = Trainer(snap, TrainConfig(**{**base, "epochs": 2}), str(tmp_path / "b"), backend, progress=False)
    resumed.fit(resume=True)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    a, b = full.embed_all(), resumed.embed_all()
    assert all(np.array_equal(a[t], b[t]) for t in a)


# ------------------------------------------------------------------ cold-start evaluation
def test_attribute_popularity_ranks_new_items_by_their_attributes_kept_items(tmp_path):
    """Items 0-3 kept (3, 1, 0, 2 buys), 4-7 held out. Category 0 holds 0, 1 and 4; category 1
    holds 2 and 5; brand 0 holds 3 and 5; category 2 holds only held-out 6 (whose 5 buys, the
    ground truth, must not count); 7 has no attribute."""
    src = [0, 1, 2, 0, 0, 1, 0, 1, 2, 0, 1]
    dst = [0, 0, 0, 1, 3, 3, 6, 6, 6, 6, 6]
    snap = open_snapshot(write_snapshot(str(tmp_path / "s"), {"user": 3, "item": 8, "category": 3, "brand": 1}, {
        TARGET: (np.array(src), np.array(dst), np.ones(len(src))),
        BELONGS: (np.array([0, 1, 2, 4, 5, 6]), np.array([0, 0, 1, 0, 1, 2]), np.ones(6)),
        "item__belongs_to__brand": (np.array([3, 5]), np.array([0, 0]), np.ones(2))}, {}))
    scores = attribute_popularity(snap, [TARGET], torch.tensor([4, 5, 6, 7]))
    # 4: category 0 = mean(3, 1); 5: mean(category 1 = 0, brand 0 = 2); 6: category 2 has no kept
    # item; 7: the kept items' mean, (3 + 1 + 0 + 2) / 4
    assert scores.tolist() == [2.0, 1.0, 0.0, 1.5]


def test_cold_start_ranking_beats_random(lake, cold_run, monkeypatch, capsys):
    lake_dir, snap_dir = lake
    snap, cold = open_snapshot(snap_dir), _cold_ids(cold_run)
    indptr, indices, _ = _csr(snap, TARGET)
    pairs = int(np.isin(indices, cold).sum())
    users = len({u for u in range(USERS) if np.isin(indices[indptr[u]:indptr[u + 1]], cold).any()})
    m = cold_start_metrics(cold_run, k=5)
    assert (m["items"], m["pairs"], m["users"]) == (len(cold), pairs, users)
    assert m["random_recall@5"] == pytest.approx(5 / len(cold))
    # four held-out items per community, ~2 per user: the features and categories find them
    assert m["recall@5"] >= 0.8 and m["recall@5"] >= 2 * m["random_recall@5"], m
    assert m["ndcg@5"] >= 1.5 * m["random_ndcg@5"], m
    assert 0.0 <= m["popularity_recall@5"] <= 1.0 and 0.0 <= m["popularity_ndcg@5"] <= 1.0
    # through evaluate (no test pairs needed) and the CLI flag; saved in evaluation.json
    result = evaluate(None, lake_dir, run_id="cold", k=5, cold_start=True)
    assert result["cold_start"] == m and "recall@5" not in result
    with open(os.path.join(cold_run, "evaluation.json")) as f:
        assert json.load(f)["cold_start"]["recall@5"] == m["recall@5"]
    monkeypatch.setattr(cli, "_spark", lambda args: None)
    capsys.readouterr()
    assert cli.main(["evaluate", "--lake", lake_dir, "--run-id", "cold", "--k", "5", "--cold-start", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["cold_start"] == m
    assert cli.main(["evaluate", "--lake", lake_dir, "--run-id", "cold", "--k", "5", "--cold-start"]) == 0
    assert f"{len(cold)} held-out items" in capsys.readouterr().out


def test_cold_start_evaluation_needs_held_out_items(lake, tmp_path):
    _, snap_dir = lake
    run_dir = train_run(str(tmp_path / "lake"), "plain", snap_dir, TrainConfig(**{**COLD, "cold_start_fraction": 0.0,
                                                                                 "epochs": 1}))
    assert not os.path.exists(os.path.join(run_dir, COLD_START_FILE))
    with pytest.raises(FileNotFoundError, match="held no items out"):
        evaluate(None, str(tmp_path / "lake"), run_id="plain", cold_start=True)


# ------------------------------------------------------------------ inductive inference
def _item_rows(snap, ids):
    return {k: np.asarray(snap.features("item", k))[ids] for k in snap.feature_names("item")}


def _held_out_items_as_new(run_dir: str, snap_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """The run's held-out items embedded again as new items (same features, no purchases, their
    category edge): ``(new rows, the run's stored rows of those items)``."""
    snap, cold = open_snapshot(snap_dir), _cold_ids(run_dir)
    feats = _item_rows(snap, cold)
    feats["numeric"][:, 4] = -COUNT_MEAN / COUNT_STD  # a new item has no purchases yet
    edges = {BELONGS: (ITEMS + np.arange(len(cold)), np.asarray(cold) % COMMUNITIES, None)}
    new = embed_new_nodes(run_dir, {"item": {"count": len(cold), "features": feats}}, edges)
    again = embed_new_nodes(run_dir, {"item": {"count": len(cold), "features": feats}}, edges)
    assert np.array_equal(again["item"], new["item"])
    return new["item"], np.load(TrainRun(run_dir).embeddings_path("item"))[cold]


def test_a_held_out_item_embedded_as_new_equals_its_feature_only_embedding(lake, cold_run):
    new, stored = _held_out_items_as_new(cold_run, lake[1])
    assert new.dtype == np.float32 and new.shape == (len(stored), 16)
    np.testing.assert_allclose(new, stored, rtol=0, atol=1e-5)


def test_a_layerwise_run_embeds_new_items_like_its_own_held_out_ones(lake, tmp_path):
    """Small fanouts: sampled inference would draw other neighbourhoods; layer-wise inference (the
    run's tables and embed-new alike) takes every neighbour, so the rows agree (exactly as the
    full-fanout run above, whichever fanouts the run trained with)."""
    config = TrainConfig(**{**COLD, "fanouts": (2, 2), "epochs": 2})  # inference: layerwise, the default
    run_dir = train_run(str(tmp_path / "lake"), "layerwise", lake[1], config)
    new, stored = _held_out_items_as_new(run_dir, lake[1])
    np.testing.assert_allclose(new, stored, rtol=0, atol=1e-5)


def test_a_present_user_embedded_as_new_equals_its_id_masked_embedding(lake, tmp_path):
    _, snap_dir = lake
    config = TrainConfig(**{**COLD, "cold_start_fraction": 0.0, "fanouts": (-1,), "epochs": 3})
    run_dir = train_run(str(tmp_path / "lake"), "one-layer", snap_dir, config)
    snap = open_snapshot(snap_dir)
    trainer = Trainer(snap, config, str(tmp_path / "ref"), get_backend("local"), progress=False)
    trainer.model.load_state_dict(ckpt.load_latest(run_dir)["model"])
    trainer.model.eval()
    indptr, indices, weights = _csr(snap, TARGET)
    for u in (0, 13):
        batch = trainer.sampler.sample({"user": torch.tensor([u])})
        with torch.no_grad():
            ref = trainer.model(batch, gather_features(trainer.features, batch.node_ids),
                                id_mask={"user": batch.node_ids["user"] != u})["user"][0].numpy()
        items = indices[indptr[u]:indptr[u + 1]].astype(np.int64)
        new = embed_new_nodes(run_dir, {"user": {"count": 1}},
                              {TARGET: (np.full(len(items), USERS), items, weights[indptr[u]:indptr[u + 1]])})
        np.testing.assert_allclose(new["user"][0], ref, rtol=0, atol=1e-5)
        assert not np.allclose(new["user"][0], np.load(TrainRun(run_dir).embeddings_path("user"))[u], atol=1e-3)  # ID gone


def test_lightgcn_new_nodes_follow_the_propagation_rule(lake, tmp_path):
    """ID-only LightGCN (full mode, 2 layers, mean over layers 0..2): a new node has no ID row,
    so its layer 0 is 0; with ``k`` new edges, layer ``l`` is ``sum_j h_{l-1}[j] / sqrt(k d_j)``
    over its neighbours ``j`` with their trained degrees ``d_j`` (new edges never reach existing
    nodes); its embedding is ``(h_1 + h_2) / 3``, i.e. a degree-weighted mean of its
    neighbours' layer 0 + 1 states."""
    _, snap_dir = lake
    indptr, indices, _ = _csr(open_snapshot(snap_dir), TARGET)  # the same purchases, users and items only
    src = np.repeat(np.arange(USERS), np.diff(indptr))
    snap_dir = write_snapshot(str(tmp_path / "snap"), {"user": USERS, "item": ITEMS},
                              {TARGET: (src, indices, np.ones(len(src)))}, {})
    lightgcn = {"hidden_dim": 8, "num_layers": 2, "weight_free": True, "layer_combination": "mean",
                "use_features": False}
    config = TrainConfig(epochs=3, batch_size=64, lr=0.05, mode="full", edge_types=(TARGET,), model=lightgcn)
    run_dir = train_run(str(tmp_path / "lake"), "lightgcn", snap_dir, config)
    state = ckpt.load_latest(run_dir)["model"]
    eu, ei = (state[f"encoder.encoders.{t}.id_embedding.weight"].double().numpy() for t in ("user", "item"))
    pairs = [(u, int(i)) for u in range(USERS) for i in indices[indptr[u]:indptr[u + 1]]]
    du, di = np.bincount([p[0] for p in pairs], minlength=USERS), np.bincount([p[1] for p in pairs], minlength=ITEMS)
    h1u, h1i = np.zeros_like(eu), np.zeros_like(ei)  # the existing nodes' layer 1
    for u, i in pairs:
        h1u[u] += ei[i] / np.sqrt(du[u] * di[i])
        h1i[i] += eu[u] / np.sqrt(du[u] * di[i])
    a, b = 0, 4  # the new user U buys items a and b and the new item I; I is also bought by users v1, v2
    v1, v2 = 1, 5
    new = embed_new_nodes(run_dir, {"user": {"count": 1}, "item": {"count": 1}},
                          {TARGET: (np.array([USERS, USERS, USERS, v1, v2]), np.array([a, b, ITEMS, ITEMS, ITEMS]),
                                    None)})
    h1_new_user = ei[a] / np.sqrt(3 * di[a]) + ei[b] / np.sqrt(3 * di[b])  # + I's layer 0, which is 0
    h1_new_item = eu[v1] / np.sqrt(du[v1] * 3) + eu[v2] / np.sqrt(du[v2] * 3)
    h2_new_user = h1i[a] / np.sqrt(3 * di[a]) + h1i[b] / np.sqrt(3 * di[b]) + h1_new_item / 3
    h2_new_item = h1u[v1] / np.sqrt(du[v1] * 3) + h1u[v2] / np.sqrt(du[v2] * 3) + h1_new_user / 3
    np.testing.assert_allclose(new["user"][0], (h1_new_user + h2_new_user) / 3, rtol=0, atol=1e-5)
    np.testing.assert_allclose(new["item"][0], (h1_new_item + h2_new_item) / 3, rtol=0, atol=1e-5)
    # a user of the two items only: the degree-weighted mean of their layer 0 + 1 states
    only = embed_new_nodes(run_dir, {"user": {"count": 1}}, {TARGET: (np.array([USERS, USERS]), np.array([a, b]), None)})
    mean = sum((ei[i] + h1i[i]) / np.sqrt(2 * di[i]) for i in (a, b)) / 3
    np.testing.assert_allclose(only["user"][0], mean, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"new_edges: unknown edge type 'user__click__item'"):
        embed_new_nodes(run_dir, {"item": {"count": 1}}, {"user__click__item": (np.array([0]), np.array([ITEMS]), None)})


def test_sampled_inference_of_new_nodes_is_deterministic(lake, tmp_path):
    _, snap_dir = lake
    run_dir = train_run(str(tmp_path / "lake"), "sampled", snap_dir,
                        TrainConfig(**{**COLD, "fanouts": (2, 2), "epochs": 1, "inference": "sampled"}))
    edges = {TARGET: (np.full(6, USERS), np.array([1, 5, 9, 13, 17, 21]), None)}
    a = embed_new_nodes(run_dir, {"user": {"count": 1}}, edges)
    b = embed_new_nodes(run_dir, {"user": {"count": 1}}, edges)
    assert np.array_equal(a["user"], b["user"]) and np.isfinite(a["user"]).all()


def test_embed_new_nodes_rejects_bad_arguments(lake, cold_run):
    _, snap_dir = lake
    feats = _item_rows(open_snapshot(snap_dir), [0])
    one = {"item": {"count": 1, "features": feats}}
    edge = {BELONGS: (np.array([ITEMS]), np.array([0]), None)}
    cases = [
        ({"shop": {"count": 1}}, {}, ValueError, "new_nodes: unknown node type 'shop'"),
        ({"item": {"n": 1}}, {}, ValueError, r"new_nodes\['item'\]: unknown keys \['n'\]"),
        ({"item": {"count": 1.0}}, {}, TypeError, r"new_nodes\['item'\]\['count'\]: expected an int"),
        ({"item": {"count": 1, "features": {**feats, "colour": feats["numeric"]}}}, edge, ValueError,
         r"unknown features \['colour'\]"),
        ({"item": {"count": 1, "features": {"numeric": feats["numeric"]}}}, edge, ValueError,
         r"new_nodes\['item'\]\['features'\]: missing \['categorical', 'numeric_missing'\]"),
        ({"item": {"count": 2, "features": feats}}, edge, ValueError,
         r"new_nodes\['item'\]\['features'\]\['categorical'\]: expected shape \(2, 1\), got \(1, 1\)"),
        ({"item": {"count": 1, "features": {**feats, "categorical": feats["categorical"] + 0.5}}}, edge, TypeError,
         r"\['categorical'\]: expected integer codes"),
        ({"item": {"count": 1, "features": {**feats, "categorical": feats["categorical"] + 10}}}, edge, ValueError,
         r"\['categorical'\]: column 0 expects codes in \[0, 4\)"),
        (one, {"item__similar__item": (np.array([ITEMS]), np.array([0]), None)}, ValueError,
         "new_edges: unknown edge type 'item__similar__item'"),
        (one, {BELONGS: (np.array([ITEMS + 1]), np.array([0]), None)}, ValueError,
         r"new_edges\['item__belongs_to__category'\] src_ids: expected item ids in 0\.\.64"),
        (one, {BELONGS: (np.array([ITEMS]), np.array([COMMUNITIES]), None)}, ValueError, "dst_ids: expected category"),
        (one, {BELONGS: (np.array([3]), np.array([0]), None)}, ValueError, "joins two existing nodes"),
        (one, {BELONGS: (np.array([ITEMS, ITEMS]), np.array([0, 0]), None)}, ValueError, "duplicate"),
        (one, {BELONGS: (np.array([ITEMS]), np.array([0, 1]), None)}, ValueError, "differ in length"),
        (one, {BELONGS: (np.array([ITEMS]), np.array([0]), np.array([-1.0]))}, ValueError, "weights > 0"),
        (one, {BELONGS: (np.array([float(ITEMS)]), np.array([0]), None)}, TypeError, "src_ids: expected integer ids"),
        (one, {BELONGS: [ITEMS, 0]}, TypeError, r"new_edges\['item__belongs_to__category'\]: expected a tuple"),
    ]
    for nodes, edges, exc, message in cases:
        with pytest.raises(exc, match=message):
            embed_new_nodes(cold_run, nodes, edges)
    with pytest.raises(FileNotFoundError, match="run.json"):
        embed_new_nodes(os.path.join(cold_run, "nope"), one, edge)


@pytest.mark.parametrize("mode", ["sampled", "full"])
def test_a_type_outside_the_edge_types_is_neither_modelled_nor_embedded(lake, tmp_path, mode):
    # the snapshot has user, item and category; the run trains on user -> item only
    model = {"hidden_dim": 8, "use_features": False, **({"weight_free": True} if mode == "full" else {})}
    config = TrainConfig(epochs=1, batch_size=64, mode=mode, edge_types=(TARGET,), seed=1, model=model)
    run_dir = train_run(str(tmp_path / "lake"), f"only-{mode}", lake[1], config)
    assert sorted(os.listdir(os.path.join(run_dir, "embeddings"))) == ["item.npy", "user.npy"]
    assert np.load(TrainRun(run_dir).embeddings_path("user")).shape == (USERS, 8)
    trainer = Trainer(open_snapshot(lake[1]), config, run_dir, get_backend("local"), progress=False)
    assert sorted(trainer.model.encoder.encoders) == ["item", "user"]
    with pytest.raises(ValueError, match=r"node_types: \['category'\] are in none of the run's edge types"):
        trainer.embed_all(["category"])
    with pytest.raises(ValueError, match=r"new_nodes: node types \['category'\] are in none of the run's edge types"):
        embed_new_nodes(run_dir, {"category": {"count": 1}}, {})
