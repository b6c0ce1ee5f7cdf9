"""training.model: encoders, hetero SAGE layer, LightGCN propagation, decoder losses, config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graphlake.training.model import (
    HeteroEncoder,
    HeteroGraphSAGE,
    HeteroSAGEConv,
    ModelConfig,
    NodeEncoder,
    NodeFeatureSpec,
    bpr_loss,
    gather_features,
    l2_regularisation,
    sampled_softmax_loss,
    score,
    shared_negative_scores,
)
from graphlake.training.sampling.base import Block, SampledBatch

U, I = "user", "item"  # noqa: E741 (I: the item type, as in the papers)
CLICK, REV, FOLLOW, CO_VIEW = (U, "click", I), (I, "rev_click", U), (U, "follow", U), (I, "co_view", I)
S2, S3, S6 = math.sqrt(2), math.sqrt(3), math.sqrt(6)

# 3 users x 3 items: u0-{i0, i1}, u1-{i1}, u2-{i1, i2}; deg(user) = [2, 1, 2], deg(item) = [1, 3, 1]
UI_EDGES = ([0, 0, 1, 2, 2], [0, 1, 1, 1, 2])
E_USER = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
E_ITEM = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, -1.0]])


def edges(src, dst, weight=None):
    w = [1.0] * len(src) if weight is None else weight
    return torch.tensor(src, dtype=torch.long), torch.tensor(dst, dtype=torch.long), torch.tensor(w)


def full_block():
    u, i = UI_EDGES
    return Block({U: 3, I: 3}, {U: 3, I: 3}, {CLICK: edges(u, i), REV: edges(i, u)})


def plain_conv(relations, aggr="mean", combine="sum", dim=2):
    """A layer reduced to its aggregation: identity relation weights, no root, norm, act or residual."""
    conv = HeteroSAGEConv(relations, dim, dim, aggr=aggr, combine=combine, residual=False, norm=None,
                          activation=False)
    with torch.no_grad():
        for lin in conv.rel_lin.values():
            lin.weight.copy_(torch.eye(dim))
        for lin in conv.root_lin.values():
            lin.weight.zero_()
    return conv


# ------------------------------------------------------------------ weight-free (LightGCN)
def test_weight_free_layer_equals_hand_computed_lightgcn_propagation():
    conv = HeteroSAGEConv([CLICK, REV], 2, 2, weight_free=True)
    assert list(conv.parameters()) == []
    out = conv(full_block(), {U: E_USER, I: E_ITEM})
    want_item = torch.tensor([[1 / S2, 0.0], [2 / S6, 1 / S6 + 1 / S3], [1 / S2, 1 / S2]])
    want_user = torch.tensor([[S2, 2 / S6], [0.0, 2 / S3], [1 / S2, 2 / S6 - 1 / S2]])
    torch.testing.assert_close(out[I], want_item)
    torch.testing.assert_close(out[U], want_user)


def test_weight_free_uses_given_full_degrees_and_zeroes_a_type_without_edges():
    conv = HeteroSAGEConv([CLICK, REV], 2, 2, weight_free=True)
    blk = Block({U: 3, I: 3}, {U: 2, I: 3}, {CLICK: edges([0], [1])})  # one sampled edge u0 -> i1
    h = {U: E_USER, I: E_ITEM}
    out = conv(blk, h)  # block degrees: 1 and 1
    torch.testing.assert_close(out[I][1], E_USER[0])
    full = {CLICK: (torch.tensor([2.0, 1.0, 2.0]), torch.tensor([1.0, 3.0, 1.0]))}
    out = conv(blk, h, degrees=full)
    torch.testing.assert_close(out[I][1], E_USER[0] / S6)
    assert torch.equal(out[I][0], torch.zeros(2)) and torch.equal(out[U], torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"degrees\[.*expected shapes"):
        conv(blk, h, degrees={CLICK: (torch.ones(2), torch.ones(3))})
    with pytest.raises(ValueError, match="out_dim: weight_free"):
        HeteroSAGEConv([CLICK], 2, 3, weight_free=True)


def test_learned_relation_weights_scale_each_relations_message():
    """relation_weights='learned': relation r's LightGCN message times exp(s_r); s_r = 0 at the start
    (the plain sum), and a gradient reaches every s_r."""
    plain = HeteroSAGEConv([CLICK, REV, FOLLOW], 2, 2, weight_free=True)
    learned = HeteroSAGEConv([CLICK, REV, FOLLOW], 2, 2, weight_free=True, relation_weights="learned")
    assert sorted(learned.rel_scale) == sorted(["user__click__item", "item__rev_click__user", "user__follow__user"])
    u, i = UI_EDGES
    blk = Block({U: 3, I: 3}, {U: 3, I: 3}, {CLICK: edges(u, i), REV: edges(i, u), FOLLOW: edges([0, 1], [1, 2])})
    h = {U: E_USER, I: E_ITEM}
    torch.testing.assert_close(learned(blk, h)[U], plain(blk, h)[U])
    with torch.no_grad():
        learned.rel_scale["user__follow__user"].fill_(math.log(3.0))
    only_rev = plain(Block({U: 3, I: 3}, {U: 3, I: 3}, {REV: edges(i, u)}), h)[U]
    only_follow = plain(Block({U: 3, I: 3}, {U: 3, I: 3}, {FOLLOW: edges([0, 1], [1, 2])}), h)[U]
    out = learned(blk, h)
    torch.testing.assert_close(out[U], only_rev + 3.0 * only_follow)
    (out[U].sum() + out[I].sum()).backward()
    assert all(p.grad is not None for p in learned.rel_scale.values())
    with pytest.raises(ValueError, match="relation_weights: 'learned' scales the relations of weight-free"):
        HeteroSAGEConv([CLICK], 2, 2, relation_weights="learned")
    with pytest.raises(ValueError, match="relation_weights: 'learned' needs weight_free: true"):
        ModelConfig(relation_weights="learned")
    with pytest.raises(ValueError, match=r"relation_weights: expected one of \('equal', 'learned'\), got 'x'"):
        ModelConfig(weight_free=True, relation_weights="x")


def _lightgcn_with(emb_user, emb_item, num_layers):
    model = HeteroGraphSAGE.lightgcn({U: 3, I: 3}, [CLICK, REV], dim=2, num_layers=num_layers)
    with torch.no_grad():
        model.encoder.encoders[U].id_embedding.weight.copy_(emb_user)
        model.encoder.encoders[I].id_embedding.weight.copy_(emb_item)
    return model


def test_lightgcn_model_is_mean_over_layers_of_dense_normalised_propagation():
    model = _lightgcn_with(E_USER, E_ITEM, num_layers=2)
    batch = SampledBatch({U: torch.arange(3), I: torch.arange(3)}, (full_block(), full_block()), {U: 3, I: 3})
    out = model(batch)
    r = torch.zeros(3, 3)
    r[UI_EDGES] = 1.0
    a = torch.zeros(6, 6)
    a[:3, 3:], a[3:, :3] = r, r.T
    d = a.sum(1).rsqrt()
    a_hat = d[:, None] * a * d[None, :]
    e0 = torch.cat([E_USER, E_ITEM])
    want = (e0 + a_hat @ e0 + a_hat @ a_hat @ e0) / 3
    torch.testing.assert_close(out[U], want[:3])
    torch.testing.assert_close(out[I], want[3:])


def test_lightgcn_gathers_full_degrees_by_global_id_on_a_sampled_batch():
    model = _lightgcn_with(E_USER, E_ITEM, num_layers=1)
    # seed user 2; its sampled neighbours: items 1 and 2 (global), input order user [2, 0], item [1, 2]
    blk = Block({U: 2, I: 2}, {U: 1}, {REV: edges([0, 1], [0, 0])})
    batch = SampledBatch({U: torch.tensor([2, 0]), I: torch.tensor([1, 2])}, (blk,), {U: 1})
    deg_u, deg_i = torch.tensor([2.0, 1.0, 2.0]), torch.tensor([1.0, 3.0, 1.0])
    out = model(batch, degrees={CLICK: (deg_u, deg_i), REV: (deg_i, deg_u)})
    want = (E_USER[2] + E_ITEM[1] / S6 + E_ITEM[2] / S2) / 2
    torch.testing.assert_close(out[U], want.unsqueeze(0))


# ------------------------------------------------------------------ aggregation and combination
@pytest.mark.parametrize("aggr, want", [
    ("mean", [[0.5, 0.5], [3.0, 0.0]]),
    ("weighted_mean", [[0.25, 0.75], [3.0, 0.0]]),
    ("sum", [[1.0, 1.0], [6.0, 0.0]]),
])
def test_aggregation_is_exact(aggr, want):
    conv = plain_conv([CLICK], aggr=aggr)
    # item 0 <- u0 (w 1), u1 (w 3); item 1 <- u2 twice (multi-edge, weights 2 and 6)
    blk = Block({U: 3, I: 2}, {I: 2}, {CLICK: edges([0, 1, 2, 2], [0, 0, 1, 1], [1.0, 3.0, 2.0, 6.0])})
    h_user = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    out = conv(blk, {U: h_user, I: torch.zeros(2, 2)})
    torch.testing.assert_close(out[I], torch.tensor(want))


def test_weighted_mean_with_all_zero_weights_gives_zero_not_nan():
    conv = plain_conv([CLICK], aggr="weighted_mean")
    blk = Block({U: 1, I: 1}, {I: 1}, {CLICK: edges([0], [0], [0.0])})
    out = conv(blk, {U: torch.ones(1, 2), I: torch.zeros(1, 2)})
    assert torch.equal(out[I], torch.zeros(1, 2))


def test_self_term_uses_the_first_num_dst_rows_of_h_src():
    conv = plain_conv([CLICK])
    with torch.no_grad():
        conv.rel_lin["user__click__item"].weight.zero_()
        conv.root_lin[I].weight.copy_(torch.eye(2))
    h_item = torch.tensor([[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]])
    blk = Block({U: 1, I: 3}, {I: 2}, {CLICK: edges([0], [1])})
    out = conv(blk, {U: torch.ones(1, 2), I: h_item})
    torch.testing.assert_close(out[I], h_item[:2])


def test_identity_residual_adds_h_dst():
    conv = HeteroSAGEConv([CLICK], 2, 2, residual=True, norm=None, activation=False, self_loop=False, bias=False)
    with torch.no_grad():
        conv.rel_lin["user__click__item"].weight.copy_(torch.eye(2))
    blk = Block({U: 1, I: 1}, {I: 1}, {CLICK: edges([0], [0])})
    out = conv(blk, {U: torch.tensor([[1.0, 2.0]]), I: torch.tensor([[10.0, 20.0]])})
    torch.testing.assert_close(out[I], torch.tensor([[11.0, 22.0]]))


def test_dst_type_without_incoming_edges_gets_its_root_transform():
    conv = plain_conv([CLICK, REV])
    with torch.no_grad():
        conv.root_lin[U].weight.copy_(2 * torch.eye(2))
        conv.bias[U].copy_(torch.tensor([1.0, -1.0]))
    blk = Block({U: 3, I: 1}, {U: 2, I: 1}, {CLICK: edges([0], [0])})  # no item -> user edge
    out = conv(blk, {U: E_USER, I: torch.zeros(1, 2)})
    torch.testing.assert_close(out[U], 2 * E_USER[:2] + torch.tensor([1.0, -1.0]))
    assert out[I].shape == (1, 2)


def test_combine_mean_averages_the_relations_with_edges():
    conv = plain_conv([REV, FOLLOW], combine="mean")
    blk = Block({U: 2, I: 1}, {U: 1}, {REV: edges([0], [0]), FOLLOW: edges([1], [0])})
    out = conv(blk, {U: torch.tensor([[0.0, 0.0], [4.0, 0.0]]), I: torch.tensor([[0.0, 2.0]])})
    torch.testing.assert_close(out[U], torch.tensor([[2.0, 1.0]]))


def test_attention_weights_sum_to_one_and_mix_the_relation_messages():
    torch.manual_seed(0)
    conv = plain_conv([REV, FOLLOW], combine="attention")
    blk = Block({U: 3, I: 2}, {U: 2}, {REV: edges([0, 1], [0, 1]), FOLLOW: edges([2, 2], [0, 1])})
    h_user, h_item = torch.randn(3, 2), torch.randn(2, 2)
    out, att = conv(blk, {U: h_user, I: h_item}, return_attention=True)
    beta = att[U]
    assert set(beta) == {REV, FOLLOW}
    torch.testing.assert_close(beta[REV] + beta[FOLLOW], torch.tensor(1.0))
    assert 0 < float(beta[REV].detach()) < 1
    want = beta[REV] * h_item + beta[FOLLOW] * h_user[2].expand(2, 2)
    torch.testing.assert_close(out[U], want)


def test_conv_rejects_bad_inputs():
    conv = HeteroSAGEConv([CLICK], 2, 2)
    blk = Block({U: 2, I: 1}, {I: 1}, {CLICK: edges([0], [0])})
    with pytest.raises(ValueError, match=r"h_src\['user'\]: expected shape \(2, 2\)"):
        conv(blk, {U: torch.zeros(3, 2), I: torch.zeros(1, 2)})
    with pytest.raises(ValueError, match="h_src: missing node type 'item'"):
        conv(blk, {U: torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="not one of this layer"):
        conv(Block({U: 2, I: 1}, {U: 1}, {REV: edges([0], [0])}), {U: torch.zeros(2, 2), I: torch.zeros(1, 2)})
    with pytest.raises(ValueError, match="aggr: expected one of"):
        HeteroSAGEConv([CLICK], 2, 2, aggr="max")
    with pytest.raises(ValueError, match="relations: duplicates"):
        HeteroSAGEConv([CLICK, CLICK], 2, 2)


# ------------------------------------------------------------------ encoders
def test_node_feature_spec_checks_and_reads_the_feature_spec():
    spec = NodeFeatureSpec.from_feature_spec(5, {"numeric": {"dim": 2}, "categorical": {"cardinalities": [4, 7]},
                                                 "text": {"dim": 0}})
    assert spec == NodeFeatureSpec(5, numeric_dim=2, categorical_cardinalities=(4, 7))
    with pytest.raises(ValueError, match="num_nodes: expected an int >= 0"):
        NodeFeatureSpec(-1)
    with pytest.raises(ValueError, match=r"categorical_cardinalities\[1\]: expected an int >= 1"):
        NodeFeatureSpec(3, categorical_cardinalities=(2, 0))


def _set_gate(enc, bias):
    with torch.no_grad():
        enc.gate_weight.zero_()
        enc.gate_bias.copy_(torch.tensor(bias))


def test_gated_fusion_is_a_softmax_weighted_sum_over_present_modalities():
    torch.manual_seed(0)
    enc = NodeEncoder(NodeFeatureSpec(4, text_dim=3, image_dim=2), 5, use_id_embedding=True, fusion="gated")
    assert enc.modality_names == ("id", "text", "image")
    _set_gate(enc, [0.0, math.log(2.0), math.log(5.0)])  # weights 1/8, 2/8, 5/8 when all present
    feats = {"text": torch.randn(2, 3), "image": torch.randn(2, 2), "has_image": torch.tensor([[True], [False]])}
    ids = torch.tensor([1, 3])
    parts = enc.modalities(ids, feats)
    out = enc(ids, feats)
    m_id, m_text, m_img = (parts[k][0] for k in ("id", "text", "image"))
    torch.testing.assert_close(out[0], (m_id[0] + 2 * m_text[0] + 5 * m_img[0]) / 8)
    torch.testing.assert_close(out[1], (m_id[1] + 2 * m_text[1]) / 3)  # no image: renormalised over id, text


def test_sum_fusion_and_image_gated_by_has_image():
    torch.manual_seed(0)
    enc = NodeEncoder(NodeFeatureSpec(2, image_dim=2), 3, use_id_embedding=False)
    img = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    out = enc(torch.tensor([0, 1]), {"image": img, "has_image": torch.tensor([[True], [False]])})
    torch.testing.assert_close(out[0], enc.image_proj(img[0]))
    assert torch.equal(out[1], torch.zeros(3))


def test_cold_start_id_mask_zeroes_only_the_id_part():
    torch.manual_seed(0)
    enc = NodeEncoder(NodeFeatureSpec(5, numeric_dim=2), 4, use_id_embedding=True)
    feats = {"numeric": torch.tensor([[0.5, -1.0], [0.5, -1.0]]), "numeric_missing": torch.tensor([[False, True]] * 2)}
    ids = torch.tensor([2, 99])  # 99 has no trained row
    mask = torch.tensor([True, False])
    out = enc(ids, feats, id_mask=mask)
    numeric = enc.numeric_mlp(torch.tensor([[0.5, -1.0, 0.0, 1.0]]))[0]
    torch.testing.assert_close(out[1], numeric)
    torch.testing.assert_close(out[0], numeric + enc.id_embedding.weight[2])
    with torch.no_grad():
        enc.id_embedding.weight.add_(1.0)  # other ID rows: the cold node does not move
    torch.testing.assert_close(enc(ids, feats, id_mask=mask)[1], numeric)
    feats["numeric"] = torch.tensor([[0.5, -1.0], [2.0, 3.0]])  # ...its features do
    assert not torch.allclose(enc(ids, feats, id_mask=mask)[1], numeric)
    with pytest.raises(ValueError, match=r"node_ids: expected ids in \[0, 5\).*id_mask"):
        enc(ids, feats)
    with pytest.raises(ValueError, match=r"features\['numeric'\]: numeric_dim needs it"):
        enc(ids, {}, id_mask=mask)


def test_categorical_code_zero_is_a_zero_vector_and_bad_codes_raise():
    torch.manual_seed(0)
    enc = NodeEncoder(NodeFeatureSpec(3, categorical_cardinalities=(3, 4)), 2, use_id_embedding=False)
    out = enc(torch.tensor([0, 1]), {"categorical": torch.tensor([[0, 0], [2, 0]], dtype=torch.int32)})
    assert torch.equal(out[0], torch.zeros(2))
    torch.testing.assert_close(out[1], enc.categorical_embedding.weight[2])  # column 0, code 2 (offset 0)
    with pytest.raises(ValueError, match=r"column 1 expects codes in \[0, 4\)"):
        enc(torch.tensor([0]), {"categorical": torch.tensor([[1, 4]])})
    cat = NodeEncoder(NodeFeatureSpec(3, categorical_cardinalities=(3, 4)), 2, use_id_embedding=False,
                      categorical_combine="concat")
    assert cat(torch.tensor([0]), {"categorical": torch.tensor([[1, 3]])}).shape == (1, 2)


def test_featureless_type_without_id_embedding_gets_a_learned_constant():
    enc = HeteroEncoder({U: NodeFeatureSpec(3), I: NodeFeatureSpec(2)}, 4, use_id_embedding={U: True, I: False})
    out = enc({U: torch.tensor([0, 2]), I: torch.tensor([0, 1])})
    assert enc.encoders[I].modality_names == ("constant",)
    torch.testing.assert_close(out[I], enc.encoders[I].constant.expand(2, 4))
    with pytest.raises(ValueError, match=r"use_id_embedding: expected exactly the node types.*missing \['user'\]"):
        HeteroEncoder({U: NodeFeatureSpec(3), I: NodeFeatureSpec(2)}, 4, use_id_embedding={I: False})


# ------------------------------------------------------------------ the model
SPECS = {U: NodeFeatureSpec(10, numeric_dim=2, categorical_cardinalities=(3,)),
         I: NodeFeatureSpec(10, text_dim=4, image_dim=3)}
RELS = [CLICK, REV, FOLLOW, CO_VIEW]
SIZES = {1: [5, 2], 2: [5, 3, 2], 3: [6, 4, 3, 2]}


def layered_batch(num_layers, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = SIZES[num_layers]
    blocks = []
    for ns, nd in zip(sizes, sizes[1:]):
        blk_edges = {r: (torch.randint(0, ns, (8,), generator=g), torch.randint(0, nd, (8,), generator=g),
                         torch.rand(8, generator=g) + 0.1) for r in RELS}
        blocks.append(Block({U: ns, I: ns}, {U: nd, I: nd}, blk_edges))
    ids = {U: torch.randperm(10, generator=g)[: sizes[0]], I: torch.randperm(10, generator=g)[: sizes[0]]}
    feats = {U: {"numeric": torch.randn(sizes[0], 2, generator=g),
                 "categorical": torch.randint(0, 3, (sizes[0], 1), generator=g)},
             I: {"text": torch.randn(sizes[0], 4, generator=g), "image": torch.randn(sizes[0], 3, generator=g),
                 "has_image": torch.arange(sizes[0]).unsqueeze(1) % 2 == 0}}
    return SampledBatch(ids, tuple(blocks), {U: sizes[-1], I: sizes[-1]}), feats


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("layer_combination", ["last", "mean"])
def test_model_output_shapes(num_layers, layer_combination):
    torch.manual_seed(0)
    model = HeteroGraphSAGE(SPECS, RELS, hidden_dim=8, num_layers=num_layers, combine="attention",
                            layer_combination=layer_combination)
    batch, feats = layered_batch(num_layers)
    out = model(batch, feats)
    assert {t: tuple(v.shape) for t, v in out.items()} == {U: (2, 8), I: (2, 8)}
    with pytest.raises(ValueError, match=f"expected {num_layers} blocks"):
        model(layered_batch(1 if num_layers > 1 else 2)[0], feats)


def test_same_seed_gives_identical_outputs():
    batch, feats = layered_batch(2)

    def run(seed):
        torch.manual_seed(seed)
        model = HeteroGraphSAGE(SPECS, RELS, hidden_dim=8, num_layers=2, aggr="weighted_mean", fusion="gated")
        return model(batch, feats)

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(a[t], b[t]) for t in (U, I))
    assert not torch.allclose(a[U], c[U])


def test_gradients_reach_every_parameter_and_id_grads_are_sparse():
    torch.manual_seed(0)
    model = HeteroGraphSAGE(SPECS, RELS, hidden_dim=8, num_layers=2, aggr="weighted_mean", combine="attention",
                            fusion="gated", sparse_id_embedding=True)
    batch, feats = layered_batch(2)
    out = model(batch, feats)
    target = torch.randn(2, 8)
    (score(out[U], out[I]).sum() + (out[U] * target).sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        g = p.grad.coalesce().values() if p.grad.is_sparse else p.grad
        assert float(g.abs().sum()) > 0, name
    assert model.encoder.encoders[U].id_embedding.weight.grad.is_sparse


def test_model_cold_start_through_id_mask():
    torch.manual_seed(0)
    model = HeteroGraphSAGE(SPECS, RELS, hidden_dim=8, num_layers=1)
    batch, feats = layered_batch(1)
    mask = {U: torch.ones(5, dtype=torch.bool), I: torch.tensor([True, False, True, True, True])}
    out = model(batch, feats, id_mask=mask)
    with torch.no_grad():  # move the masked item's ID row: nothing changes
        model.encoder.encoders[I].id_embedding.weight[batch.node_ids[I][1]] += 5.0
    again = model(batch, feats, id_mask=mask)
    assert all(torch.equal(out[t], again[t]) for t in (U, I))


def test_gather_features_reads_rows_of_memmaps_and_tensors(tmp_path):
    np.save(tmp_path / "text.npy", np.arange(12, dtype=np.float32).reshape(4, 3))
    mm = np.load(tmp_path / "text.npy", mmap_mode="r")
    snap = {I: {"text": mm, "has_image": np.array([[True], [False], [True], [False]])},
            U: {"numeric": torch.tensor([[1.0], [2.0]])}}
    out = gather_features(snap, {I: torch.tensor([3, 1, 3]), U: torch.tensor([1]), "shop": torch.tensor([0])})
    assert torch.equal(out[I]["text"], torch.tensor([[9.0, 10.0, 11.0], [3.0, 4.0, 5.0], [9.0, 10.0, 11.0]]))
    assert out[I]["has_image"].dtype == torch.bool and out[I]["has_image"].flatten().tolist() == [False] * 3
    assert torch.equal(out[U]["numeric"], torch.tensor([[2.0]])) and out["shop"] == {}
    with pytest.raises(ValueError, match=r"node_ids\['item'\]: ids must be in \[0, 4\)"):
        gather_features(snap, {I: torch.tensor([4])})


# ------------------------------------------------------------------ decoder
def test_score_dot_cosine_temperature_and_candidates():
    u, v = torch.tensor([[3.0, 4.0]]), torch.tensor([[4.0, 3.0]])
    torch.testing.assert_close(score(u, v), torch.tensor([24.0]))
    torch.testing.assert_close(score(u, v, "cosine"), torch.tensor([0.96]))
    torch.testing.assert_close(score(u, v, temperature=2.0), torch.tensor([12.0]))
    cands = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    torch.testing.assert_close(score(u, cands), torch.tensor([[3.0, 4.0, 7.0]]))
    with pytest.raises(ValueError, match="kind: expected one of"):
        score(u, v, "l2")


def test_bpr_loss_on_hand_numbers():
    loss = bpr_loss(torch.tensor([2.0, 0.0]), torch.tensor([[1.0], [0.0]]))
    torch.testing.assert_close(loss, torch.tensor((math.log(1 + math.exp(-1)) + math.log(2)) / 2))
    with pytest.raises(ValueError, match=r"neg_scores: expected shape \(2, K\)"):
        bpr_loss(torch.tensor([1.0, 2.0]), torch.zeros(3, 1))


def test_sampled_softmax_loss_with_temperature_and_log_q_correction():
    pos, neg = torch.tensor([1.0]), torch.tensor([[0.0, 0.0]])
    torch.testing.assert_close(sampled_softmax_loss(pos, neg), torch.tensor(math.log(math.e + 2) - 1))
    torch.testing.assert_close(sampled_softmax_loss(pos, neg, temperature=0.5),
                               torch.tensor(math.log(math.e ** 2 + 2) - 2))
    log_q = torch.log(torch.tensor([0.5, 0.25]))  # popular negatives are penalised less: logits + 0.69, + 1.39
    torch.testing.assert_close(sampled_softmax_loss(pos, neg, log_q_correction=log_q),
                               torch.tensor(math.log(math.e + 2 + 4) - 1))
    with_pos = torch.log(torch.tensor([[0.5, 0.5, 0.25]]))  # column 0: the positive
    torch.testing.assert_close(sampled_softmax_loss(pos, neg, log_q_correction=with_pos),
                               torch.tensor(math.log(2 * math.e + 2 + 4) - (1 + math.log(2))))
    with pytest.raises(ValueError, match="log_q_correction: expected shape"):
        sampled_softmax_loss(pos, neg, log_q_correction=torch.zeros(3, 3))


@pytest.mark.parametrize("kind,temperature,fill", [("cosine", 0.1, -1e9), ("dot", 1.0, 0.0), ("dot", 0.5, -1e9)])
def test_shared_negative_scores_match_the_masked_pairwise_reference(kind, temperature, fill):
    g = torch.Generator().manual_seed(0)
    u0, n0 = torch.randn(64, 8, generator=g), torch.randn(16, 8, generator=g)
    pos_ids, neg_ids = torch.randint(0, 20, (64,), generator=g), torch.randint(0, 20, (16,), generator=g)
    assert (pos_ids.unsqueeze(1) == neg_ids.unsqueeze(0)).any()  # the masking is exercised
    grads = []
    for fast in (True, False):
        u, n = u0.clone().requires_grad_(), n0.clone().requires_grad_()
        if fast:
            s = shared_negative_scores(u, n, kind, temperature, pos_ids=pos_ids, neg_ids=neg_ids, fill=fill)
        else:
            s = score(u.unsqueeze(1).expand(-1, 16, -1), n.unsqueeze(0).expand(64, -1, -1), kind, temperature)
            s = s.masked_fill(pos_ids.unsqueeze(1) == neg_ids.unsqueeze(0), fill)
        loss = sampled_softmax_loss(torch.zeros(64), s) if fill < 0 else bpr_loss(torch.zeros(64), s)
        loss.backward()
        grads.append((s.detach(), u.grad, n.grad))
    for fast, reference in zip(*grads):
        torch.testing.assert_close(fast, reference)


def test_shared_negative_scores_reject_bad_input():
    u, n = torch.ones(3, 4), torch.ones(2, 4)
    with pytest.raises(ValueError, match=r"n: expected \(K, 4\) negatives"):
        shared_negative_scores(u, torch.ones(2, 5))
    with pytest.raises(ValueError, match="pos_ids / neg_ids: give both or neither"):
        shared_negative_scores(u, n, pos_ids=torch.arange(3))
    with pytest.raises(ValueError, match=r"expected shapes \(3,\) / \(2,\)"):
        shared_negative_scores(u, n, pos_ids=torch.arange(2), neg_ids=torch.arange(2))
    with pytest.raises(ValueError, match="kind: expected one of"):
        shared_negative_scores(u, n, "l2")


def test_l2_regularisation_is_half_sum_of_squares_over_batch():
    a, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0]])
    torch.testing.assert_close(l2_regularisation(a, b), torch.tensor(7.0))
    torch.testing.assert_close(l2_regularisation(a, b, batch_size=2), torch.tensor(3.5))


# ------------------------------------------------------------------ config
def test_model_config_from_dict_and_build():
    cfg = ModelConfig.from_dict({"model": {"hidden_dim": 8, "num_layers": 1, "norm": "none",
                                           "use_id_embedding": {U: True, I: False}}})
    assert cfg.norm is None and cfg.hidden_dim == 8
    model = cfg.build(SPECS, RELS)
    assert model.encoder.encoders[I].id_embedding is None and len(model.layers) == 1
    lgcn = ModelConfig(weight_free=True, layer_combination="mean", use_features=False).build(SPECS, RELS)
    assert [n for n, _ in lgcn.named_parameters()] == ["encoder.encoders.item.id_embedding.weight",
                                                       "encoder.encoders.user.id_embedding.weight"]
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({"model": {"hidden": 8}})
    with pytest.raises(ValueError, match=r"use_id_embedding: expected exactly the node types"):
        ModelConfig(use_id_embedding={U: True}).build(SPECS, RELS)


@pytest.mark.parametrize("field, value, match", [
    ("hidden_dim", 0, "hidden_dim: expected an int >= 1"),
    ("num_layers", 4, r"num_layers: expected an int in 1\.\.3"),
    ("aggr", "max", "aggr: expected one of"),
    ("combine", "concat", "combine: expected one of"),
    ("norm", "group", "norm: expected one of"),
    ("dropout", 1.0, r"dropout: expected a number in \[0, 1\)"),
    ("fusion", "concat", "fusion: expected one of"),
    ("residual", "yes", "residual: expected true or false"),
    ("layer_combination", "sum", "layer_combination: expected one of"),
    ("decoder", "mlp", "decoder: expected one of"),
    ("temperature", 0, "temperature: expected a number > 0"),
    ("use_id_embedding", "all", "use_id_embedding: expected true/false or a mapping"),
])
def test_model_config_names_the_bad_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**{field: value})


def test_spmm_layouts_are_reused_and_dropped_with_their_edges():
    from graphlake.training.model import spmm as spmm_mod

    spmm_mod._CACHE.clear()
    dst, src = torch.tensor([1, 0, 1, 2]), torch.tensor([0, 2, 1, 1])
    x, coef = torch.arange(6.0).reshape(3, 2), torch.tensor([1.0, 2.0, 3.0, 4.0])
    out = spmm_mod.spmm(dst, src, coef, 3, x)
    torch.testing.assert_close(out, torch.tensor([[8.0, 10.0], [6.0, 10.0], [8.0, 12.0]]))
    layout = next(iter(spmm_mod._CACHE.values()))[3]
    spmm_mod.spmm(dst, src, coef, 3, x)
    assert len(spmm_mod._CACHE) == 1 and next(iter(spmm_mod._CACHE.values()))[3] is layout  # sorted once
    dst.add_(0)  # modified in place: a new layout
    spmm_mod.spmm(dst, src, coef, 3, x)
    assert len(spmm_mod._CACHE) == 1 and next(iter(spmm_mod._CACHE.values()))[3] is not layout
    del dst, layout
    assert len(spmm_mod._CACHE) == 0  # the edge list is gone: so is its entry


@pytest.mark.parametrize("order", ["shuffled", "by_destination"])
def test_spmm_forward_and_backward_match_a_dense_product(order):
    """Edges in any order (sorted by destination, as full neighbourhoods come, skips the sort),
    repeated pairs, rows with no edge; the transpose of the backward is built on first use only."""
    from graphlake.training.model import spmm as spmm_mod

    g = torch.Generator().manual_seed(3)
    nd, ns = 7, 5
    dst, src = torch.randint(0, nd - 1, (40,), generator=g), torch.randint(0, ns, (40,), generator=g)  # row 6: none
    if order == "by_destination":
        keep = torch.argsort(dst, stable=True)
        dst, src = dst[keep], src[keep]
    coef = torch.rand(40, generator=g)
    x = torch.randn(ns, 3, generator=g, requires_grad=True)
    dense = torch.zeros(nd, ns).index_put_((dst, src), coef, accumulate=True)
    with torch.no_grad():
        spmm_mod.spmm(dst, src, coef, nd, x)
    layout = spmm_mod._layout(dst, src, nd, ns)
    assert layout._by_src is None and (layout.perm_d is None) == (order == "by_destination")
    w = torch.randn(nd, 3, generator=g)
    for fresh in (False, True):  # the transpose built on first use; built with a new layout (training)
        if fresh:
            spmm_mod._CACHE.clear()
        out = spmm_mod.spmm(dst, src, coef, nd, x)
        torch.testing.assert_close(out, dense @ x.detach())
        (grad,) = torch.autograd.grad((out * w).sum(), x)
        torch.testing.assert_close(grad, dense.T @ w)
        assert spmm_mod._layout(dst, src, nd, ns)._by_src[3] is not fresh  # its permutation's reference order
