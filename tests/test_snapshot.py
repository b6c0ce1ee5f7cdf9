"""Training snapshot export: exact CSR and feature arrays, manifest, determinism, atomic publish."""

from __future__ import annotations

import glob
import hashlib
import json
import os

import numpy as np
import pytest

from graphlake.graph_build import schema as G
from graphlake.graph_build import snapshot as S

COUNTS = {"user": 5, "item": 6, "shop": 2}
CLICKS = [(2, 5, 2.0), (0, 3, 1.5), (3, 3, 0.25), (0, 1, 0.5), (2, 0, 1.0)]  # users 1 and 4: no edges
BELONGS = [(4, 0, 1.0), (0, 0, 1.0), (1, 1, 1.0)]
ITEM_FEATURES = [  # node 4 has no row; text null for node 2; image always null
    (3, [3.0, 0.5, 1.0], [False, True, False], [3, 1], [0.3, 0.3, 0.3, 0.3], None, False),
    (0, [0.0, 0.5, 1.0], [False, False, False], [1, 2], [0.0, 0.1, 0.2, 0.3], None, False),
    (5, [5.0, 0.5, 1.0], [True, False, False], [0, 0], [0.5, 0.5, 0.5, 0.5], None, True),
    (2, [2.0, 0.5, 1.0], [False, False, True], [2, 1], None, None, False),
    (1, [1.0, 0.5, 1.0], [False, False, False], [1, 1], [0.1, 0.1, 0.1, 0.1], None, True),
]


def edges_df(spark, rows):
    return spark.createDataFrame([(s, d, w, 1, None, None) for s, d, w in rows], G.EDGE_SCHEMA)


@pytest.fixture(scope="module")
def inputs(spark):
    edges = {
        "user__click__item": edges_df(spark, CLICKS),
        "item__belongs_to__shop": edges_df(spark, BELONGS),
        "user__follows__user": edges_df(spark, []),
    }
    features = {"item": spark.createDataFrame(ITEM_FEATURES, G.FEATURES_SCHEMA)}
    return edges, features


@pytest.fixture(scope="module")
def snap_dir(spark, inputs, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("snap") / "v3")
    manifest = S.export_snapshot(spark, *inputs, COUNTS, out, 3, feature_spec={"item": {"categorical": [4, 3]}},
                                 num_partitions=3)
    return out, manifest


def test_csr_exact(snap_dir):
    snap = S.open_snapshot(snap_dir[0])
    indptr, indices, weights = snap.csr("user__click__item")
    assert indptr.tolist() == [0, 2, 2, 4, 5, 5]
    assert indices.tolist() == [1, 3, 0, 5, 3]
    assert weights.tolist() == [0.5, 1.5, 1.0, 2.0, 0.25]
    assert (indptr.dtype, indices.dtype, weights.dtype) == (np.int64, np.int32, np.float32)
    indptr, indices, _ = snap.csr("item__belongs_to__shop")
    assert indptr.tolist() == [0, 1, 2, 2, 2, 3, 3] and indices.tolist() == [0, 1, 0]
    indptr, indices, weights = snap.csr("user__follows__user")
    assert indptr.tolist() == [0] * 6 and indices.shape == (0,) and weights.shape == (0,)
    for arr in snap.csr("user__click__item"):
        assert isinstance(arr, np.memmap) and not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0] = 1
    with pytest.raises(KeyError, match="edge_type"):
        snap.csr("user__nope__item")


def test_features_exact(snap_dir):
    snap = S.open_snapshot(snap_dir[0])
    assert snap.feature_names("item") == ["categorical", "has_image", "image", "numeric", "numeric_missing", "text"]
    numeric = snap.features("item", "numeric")
    assert numeric.dtype == np.float32 and numeric.shape == (6, 3)
    assert numeric[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 0.0, 5.0]  # row i = node i, node 4 zeros
    assert snap.features("item", "categorical").tolist() == [[1, 2], [1, 1], [2, 1], [3, 1], [0, 0], [0, 0]]
    assert snap.features("item", "categorical").dtype == np.int32
    text = snap.features("item", "text")
    assert text.shape == (6, 4) and text[2].tolist() == [0.0] * 4 and text[1].tolist() == pytest.approx([0.1] * 4)
    missing = snap.features("item", "numeric_missing")
    assert missing.dtype == np.bool_ and missing[5].tolist() == [True, False, False]
    assert snap.features("item", "has_image").tolist() == [[False], [True], [False], [False], [False], [True]]
    assert snap.features("item", "image").shape == (6, 0)
    assert not numeric.flags.writeable
    feats = snap.manifest["node_types"]["item"]["features"]
    assert [feats[c]["rows_present"] for c in ("numeric", "text", "image")] == [5, 4, 0]
    assert snap.feature_names("user") == [] and snap.num_nodes("user") == 5
    with pytest.raises(KeyError, match="name"):
        snap.features("item", "nope")


def test_manifest_contents(snap_dir):
    out, manifest = snap_dir
    with open(os.path.join(out, "manifest.json")) as f:
        assert json.load(f) == manifest
    assert manifest["graph_version"] == 3 and manifest["format"] == S.FORMAT
    assert manifest["feature_spec"] == {"item": {"categorical": [4, 3]}}
    rel = manifest["edge_types"]["user__click__item"]
    assert {k: rel[k] for k in ("src_type", "relation", "dst_type", "n_src", "n_dst", "nnz")} == {
        "src_type": "user", "relation": "click", "dst_type": "item", "n_src": 5, "n_dst": 6, "nnz": 5}
    assert rel["files"]["indices"]["dtype"] == "int32" and rel["files"]["indptr"]["shape"] == [6]
    entries = [f for r in manifest["edge_types"].values() for f in r["files"].values()]
    entries += [f for t in manifest["node_types"].values() for f in t["features"].values()]
    for e in entries:
        path = os.path.join(out, e["file"])
        assert os.path.getsize(path) == e["bytes"]
        assert hashlib.sha256(open(path, "rb").read()).hexdigest() == e["sha256"]
    assert manifest["total_bytes"] == sum(e["bytes"] for e in entries)
    assert manifest["node_types"]["shop"] == {"num_nodes": 2, "features": {}}
    S.open_snapshot(out).verify()
    # nothing but the layout: no chunk files, no temporary siblings
    assert sorted(os.listdir(out)) == ["edges", "features", "manifest.json"]
    assert glob.glob(out + ".tmp-*") == []


def npy_bytes(root):
    files = sorted(glob.glob(f"{root}/**/*.npy", recursive=True))
    return {os.path.relpath(p, root): open(p, "rb").read() for p in files}


def test_deterministic(spark, inputs, snap_dir, tmp_path):
    out, manifest = snap_dir
    again = S.export_snapshot(spark, *inputs, COUNTS, str(tmp_path / "again"), 3,
                              feature_spec={"item": {"categorical": [4, 3]}}, num_partitions=2)
    assert npy_bytes(out) == npy_bytes(str(tmp_path / "again"))
    assert {**again, "created_at": None} == {**manifest, "created_at": None}


def test_failure_publishes_nothing(spark, inputs, tmp_path, monkeypatch):
    out = str(tmp_path / "snap")
    bad = {"user__click__item": edges_df(spark, CLICKS + [(1, 6, 1.0)])}  # item 6 does not exist
    with pytest.raises(ValueError, match="dst_id: ids .* outside 0..5"):
        S.export_snapshot(spark, bad, {}, COUNTS, out, 1)
    assert os.listdir(tmp_path) == []

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(S, "_export_features", boom)  # fails after every relation was written
    with pytest.raises(RuntimeError, match="disk full"):
        S.export_snapshot(spark, *inputs, COUNTS, out, 1)
    assert os.listdir(tmp_path) == []


def test_exists_and_overwrite(spark, inputs, tmp_path):
    out = str(tmp_path / "snap")
    S.export_snapshot(spark, {"item__belongs_to__shop": inputs[0]["item__belongs_to__shop"]}, {}, COUNTS, out, 1)
    with pytest.raises(FileExistsError, match="out_dir"):
        S.export_snapshot(spark, {}, {}, COUNTS, out, 2)
    S.export_snapshot(spark, {}, {}, COUNTS, out, 2, overwrite=True)
    snap = S.open_snapshot(out)
    assert snap.graph_version == 2 and snap.edge_types == []
    assert sorted(os.listdir(tmp_path)) == ["snap"]


def test_int64_indices_for_huge_destination_types(spark, tmp_path):
    counts = {"user": 2, "item": 2**31}
    S.export_snapshot(spark, {"user__click__item": edges_df(spark, [(1, 2**31 - 1, 1.0)])}, {}, counts,
                      str(tmp_path / "s"), 1)
    indptr, indices, _ = S.open_snapshot(str(tmp_path / "s")).csr("user__click__item")
    assert indices.dtype == np.int64 and indices.tolist() == [2**31 - 1] and indptr.tolist() == [0, 0, 1]


def test_argument_errors(spark, inputs, tmp_path):
    edges, features = inputs
    out = str(tmp_path / "s")
    with pytest.raises(TypeError, match="spark"):
        S.export_snapshot(None, edges, features, COUNTS, out, 1)
    with pytest.raises(ValueError, match="not in node_counts"):
        S.export_snapshot(spark, edges, features, {"user": 5, "item": 6}, out, 1)
    with pytest.raises(ValueError, match="graph_version"):
        S.export_snapshot(spark, edges, features, COUNTS, out, -1)
    with pytest.raises(TypeError, match="feature_spec"):
        S.export_snapshot(spark, edges, features, COUNTS, out, 1, feature_spec={"x": object()})
    with pytest.raises(ValueError, match="missing columns"):
        S.export_snapshot(spark, {"user__click__item": features["item"]}, {}, COUNTS, out, 1)
    with pytest.raises(FileNotFoundError, match="manifest"):
        S.open_snapshot(str(tmp_path))
    assert os.listdir(tmp_path) == []
