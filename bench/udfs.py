"""SQL-function benchmark: rows/s of ``gl_recommend(user, k)`` and ``gl_similar_items(item, k)``
(the vectorised Arrow UDFs of :mod:`graphlake.udfs.functions`) against a plain row-at-a-time Python UDF
that computes the same answer; prints one JSON line.

Setup (built once under ``--work``, reused when the same sizes/seed/vectors/index are asked
again): ``--users`` user and ``--items`` item vectors (float32, ``--dim``-d, dot score) written as
``.npy`` and turned into two asset bundles with :func:`graphlake.assets.bundle.write_bundle` (keys
``u<n>`` / ``i<n>`` from ``spark.range``; the item bundle gets the FAISS index the publisher
would build: ``--index auto`` = exact ``flat`` up to 50k items, ``ivf`` above, its ``nprobe``
calibrated at build time for ``--ivf-target-recall`` on the asset's own seeded calibration
queries), and a training snapshot (:func:`graphlake.graph_build.snapshot.export_snapshot`) with one edge
type ``user__click__item`` of about ``--history`` clicks per user (edges made in Spark, never
collected): the histories ``gl_recommend`` excludes. No ETL, graph build or training runs. The
functions come from :func:`graphlake.udfs.functions.make_functions` on that spec and are registered with
``spark.udf.register`` (the same objects :func:`graphlake.udfs.register` registers).

Vectors (``--vectors``, reported as ``vectors`` / ``vector_model``):

* ``latent`` (default): a seeded latent-category model, because ANN recall on isotropic random
  vectors says nothing about trained embeddings (which are clustered): ``--categories`` (400)
  category centres around 40 super-category centres; item i is in category ``i mod C``, its
  vector the centre plus noise of similar size, times a log-normal popularity factor; a user is
  a randomly weighted sum of 1–3 interest categories plus noise; 80 % of a user's clicks are
  items of their interests (so the excluded history sits near the top of the ranking), the rest
  random. ``similar_items.check.exact_top_k_same_category`` says how clustered it is (the share
  of the EXACT top-k that shares the query item's category; chance = 1 / categories).
* ``random``: seeded standard normal vectors and random clicks (the earlier bench; the worst
  case for any ANN index).

Measured, in one Spark session (``local[2]`` by default, one FAISS/BLAS thread per Python worker);
the vectorised side uses the asset's index (what production uses), the reference brute force:

* vectorised: ``--rows`` query rows (user keys / item keys drawn with replacement:
  ``spark.range`` + ``xxhash64`` mod n), ``SELECT sum(size(gl_recommend(u, k)))`` fully evaluated;
  wall seconds of that job -> ``rows_per_s`` (includes Spark's row generation and Arrow transfer).
* reference: ``pyspark.sql.functions.udf(useArrow=False)``, one row per call, brute-force numpy
  top-k over the same item matrix (``items @ q``, seen items / the item itself set to -inf,
  ``argpartition`` + sort), same output type. It is slow, so it runs on ``--reference-rows``
  rows only and the figures compared are RATES (rows/s): ``ratio`` = vectorised rows/s /
  reference rows/s (``"ratio_basis": "rows_per_s"`` in the JSON).
* CPU: each timed job also reports the CPU seconds of the whole process tree (driver, JVM,
  Python workers; ``psutil``) -> ``rows_per_cpu_s`` and ``cpu_ratio``: on a shared machine, where
  other jobs steal cores between the two measurements, this is the steadier comparison.
  ``load_avg_1m`` (before / after each vectorised + reference pair) says how busy the machine was.
* recall / correctness: the first ``--check-rows`` rows of each timed query set go through both
  (before anything is timed; this also warms every worker: bundles, index, histories loaded).
  ``recall_at_k`` = |ids_vec ∩ ids_ref| / k averaged: the ANN recall@k of the function against
  the exact brute-force answer, exclusions included (1.0 with the flat index). For
  ``similar_items`` the item keys the IVF calibration used as queries are left out
  (``left_out_calibration_queries``): the figure is on queries the index was not tuned on. A row
  agrees when the top-k ids are identical, or (``ties``) when they differ only by a reordering of
  equal scores (the sorted score sequences match within 1e-4 relative); ``mismatch`` counts the
  rest. ``ok``: no mismatch for the exact flat index, recall >= 0.9 for an approximate one.
* ``peak_rss_mb``: the largest sampled (every 0.5 s) sum of RSS of this process, the JVM and
  the Python workers (memory-mapped asset pages are counted in every process that touches them).

Usage:
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/udfs.py          # 1M rows, 100k items x 64-d
    .venv/bin/python bench/udfs.py --items 5000 --users 10000 --rows 20000 --reference-rows 2000
    .venv/bin/python bench/udfs.py --vectors random --index flat       # the worst case, exact search
    {"bench": "udfs", "recommend": {"rows_per_s": ..., "reference_rows_per_s": ..., "ratio": ...}, ...}
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Run as a script, this file's folder comes first on sys.path and `import udfs` would find this
# very file: put the repository root first and drop bench/.
sys.path[:] = [ROOT] + [p for p in sys.path if p and os.path.abspath(p) != HERE]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # inherited by the JVM and its Python workers

import numpy as np  # noqa: E402

EDGE_TYPE = "user__click__item"
VECTOR_MODELS = {
    "latent": "latent-category model: {c} categories around 40 super-categories, items = category centre + "
              "noise (x log-normal popularity), users = weighted sum of 1-3 interest categories + noise, "
              "80% of clicks inside the user's interests",
    "random": "isotropic standard normal (the worst case for an ANN index), random clicks",
}
SCORED_DDL = "array<struct<item_key:string, score:float>>"
_BLOCK = 1 << 16


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ peak memory

class PeakRSS(threading.Thread):
    """Samples the summed RSS of this process and all its descendants (JVM, Python workers)."""

    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.every, self.peak, self._halt = every, 0, threading.Event()

    def sample(self) -> None:
        import psutil

        me = psutil.Process()
        total = 0
        for p in [me] + me.children(recursive=True):
            try:
                total += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        self.peak = max(self.peak, total)

    def run(self) -> None:
        while not self._halt.wait(self.every):
            self.sample()

    def stop(self) -> float:
        self._halt.set()
        self.sample()
        return round(self.peak / 2**20, 1)


# ------------------------------------------------------------------------------ the asset

def _random_npy(path: str, rows: int, dim: int, seed: int) -> None:
    """Seeded standard-normal float32 ``(rows, dim)`` written in blocks."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    for lo in range(0, rows, _BLOCK):
        out[lo:lo + _BLOCK] = rng.standard_normal((min(_BLOCK, rows - lo), dim), dtype=np.float32)
    out.flush()
    del out


# Latent-category model (``--vectors latent``): SUPER_CATEGORIES seeded super-category centres;
# category c's centre = its super-category's (c mod SUPER_CATEGORIES) + SUB_SPREAD-scaled noise;
# item i belongs to category i mod C and is (centre + NOISE-scaled noise) times a log-normal
# popularity factor (sd POPULARITY); user u has 1 + u mod 3 interests (category of interest j:
# (u * P_j + Q_j) mod C) and is their randomly weighted sum + NOISE-scaled noise. Every noise is
# isotropic N(0, I / dim). Clicks: CLICK_IN_INTEREST of a user's draws are a random item of one of
# their interests, the rest a random item.
SUPER_CATEGORIES, SUB_SPREAD, NOISE, POPULARITY, CLICK_IN_INTEREST = 40, 0.7, 0.7, 0.2, 0.8
_P, _Q = (1_000_003, 998_244_353, 1_000_000_007), (17, 7_919, 104_729)


def interest_categories(users: np.ndarray, j: int, categories: int, seed: int) -> np.ndarray:
    """Category of interest ``j`` of each user (the same arithmetic as the Spark click draw)."""
    return (users * _P[j] + _Q[j] + seed) % categories


def _centres(dim: int, categories: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 7])
    sup = rng.standard_normal((SUPER_CATEGORIES, dim)).astype(np.float32) / np.sqrt(dim)
    sub = rng.standard_normal((categories, dim)).astype(np.float32) / np.sqrt(dim)
    return sup[np.arange(categories) % SUPER_CATEGORIES] + SUB_SPREAD * sub


def _latent_npy(path: str, node_type: str, rows: int, dim: int, categories: int, seed: int) -> None:
    """Seeded latent-category item or user vectors (see above), written in blocks."""
    centres = _centres(dim, categories, seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    for lo in range(0, rows, _BLOCK):
        ids = np.arange(lo, min(lo + _BLOCK, rows), dtype=np.int64)
        rng = np.random.default_rng([seed, 8 if node_type == "item" else 9, lo])
        noise = NOISE * rng.standard_normal((len(ids), dim), dtype=np.float32) / np.sqrt(dim)
        if node_type == "item":
            pop = np.exp(POPULARITY * rng.standard_normal(len(ids))).astype(np.float32)
            out[lo:lo + len(ids)] = pop[:, None] * (centres[ids % categories] + noise)
        else:
            v = noise
            for j in range(3):
                w = rng.random(len(ids)).astype(np.float32) * (ids % 3 >= j)
                v += w[:, None] * centres[interest_categories(ids, j, categories, seed)]
            out[lo:lo + len(ids)] = v
    out.flush()
    del out


def _click_edges(spark, a):
    """``(src_id, dst_id, weight)``: about ``--history`` clicks per user, made in Spark (never
    collected); duplicate draws merge into a heavier edge."""
    from pyspark.sql import functions as F

    slots = spark.range(a.users * a.history)  # one slot per (user, draw)
    user = (F.col("id") / a.history).cast("long")
    anywhere = F.pmod(F.xxhash64("id", F.lit(a.seed + 2)), F.lit(a.items))
    if a.vectors == "latent":
        c = a.categories
        pick = F.pmod(F.xxhash64("id", F.lit(a.seed + 3)), F.pmod(user, F.lit(3)) + 1)
        cat = F.when(pick == 0, F.pmod(user * _P[0] + _Q[0] + a.seed, F.lit(c)))
        cat = cat.when(pick == 1, F.pmod(user * _P[1] + _Q[1] + a.seed, F.lit(c)))
        cat = cat.otherwise(F.pmod(user * _P[2] + _Q[2] + a.seed, F.lit(c)))
        in_cat = F.floor((F.lit(a.items - 1) - F.col("cat")) / c) + 1  # items of that category
        member = F.col("cat") + c * F.pmod(F.xxhash64("id", F.lit(a.seed + 4)), in_cat)
        roll = F.pmod(F.xxhash64("id", F.lit(a.seed + 5)), F.lit(100))
        dst = F.when(roll < int(CLICK_IN_INTEREST * 100), member).otherwise(anywhere)
        slots = slots.withColumn("cat", cat)
    else:
        dst = anywhere
    return (slots.select(user.alias("src_id"), dst.cast("long").alias("dst_id"))
            .groupBy("src_id", "dst_id").agg(F.count(F.lit(1)).cast("double").alias("weight")))


def build_asset(spark, a, root: str) -> dict:
    """The spec of the benchmark asset under ``root`` (built unless a finished one is there)."""
    from pyspark.sql import functions as F

    from graphlake.assets.bundle import write_bundle
    from graphlake.assets.config import AssetConfig
    from graphlake.graph_build.snapshot import export_snapshot

    params = {"items": a.items, "users": a.users, "dim": a.dim, "seed": a.seed, "history": a.history,
              "index": a.index, "vectors": a.vectors, "categories": a.categories,
              "target_recall": a.ivf_target_recall, "format": 2}
    done = os.path.join(root, "done.json")
    spec = {"user": os.path.join(root, "user"), "item": os.path.join(root, "item"), "types": {},
            "snapshot": os.path.join(root, "snapshot"), "history": [EDGE_TYPE]}
    spec["types"] = {"user": spec["user"], "item": spec["item"]}
    if os.path.isfile(done):
        with open(done) as f:
            if json.load(f) == params:
                log(f"reusing the asset in {root}")
                return {**spec, "built_s": None}
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    t0 = time.perf_counter()
    log(f"building {a.items} items / {a.users} users x {a.dim}-d ({a.vectors} vectors), ~{a.history} clicks "
        f"per user in {root}")
    meta = {"score": "dot", "graph_version": 0, "snapshot": spec["snapshot"], "history_edge_types": [EDGE_TYPE]}
    config = AssetConfig(index=a.index, ivf_target_recall=a.ivf_target_recall, seed=a.seed)
    for node_type, n, prefix, seed, with_index in (("user", a.users, "u", a.seed, False),
                                                   ("item", a.items, "i", a.seed + 1, True)):
        src = os.path.join(root, f"{node_type}.npy")
        if a.vectors == "latent":
            _latent_npy(src, node_type, n, a.dim, a.categories, a.seed)
        else:
            _random_npy(src, n, a.dim, seed)
        keys = spark.range(n).select(F.concat(F.lit(prefix), F.col("id").cast("string")).alias("key"),
                                     F.col("id").alias("node_id"))
        t1 = time.perf_counter()
        write_bundle(spec[node_type], src, keys, {**meta, "asset": f"{node_type}_embeddings", "version": 1,
                                                  "node_type": node_type}, with_index, config)
        log(f"{node_type} bundle written in {time.perf_counter() - t1:.1f}s")
        os.remove(src)
    edges = _click_edges(spark, a)
    manifest = export_snapshot(spark, {EDGE_TYPE: edges}, {}, {"user": a.users, "item": a.items}, spec["snapshot"], 0,
                               checksums=False)
    built = round(time.perf_counter() - t0, 1)
    log(f"asset built in {built}s ({manifest['edge_types'][EDGE_TYPE]['nnz']} history edges)")
    with open(done, "w") as f:
        json.dump(params, f)
    return {**spec, "built_s": built}


# ------------------------------------------------------------------------------ the reference UDFs

def reference_udfs(spec: dict):
    """Row-at-a-time (non-Arrow) Python UDFs giving the answers of gl_recommend / gl_similar_items.

    The files are opened through the per-process caches (``open_bundle``; loading is not what is
    compared); every row then does its own brute-force numpy top-k over the whole item matrix."""
    from pyspark.sql.functions import udf

    user_dir, item_dir, snap_dir = spec["user"], spec["item"], spec["snapshot"]
    state: dict = {}  # filled once per task (the function is unpickled per task)

    def load() -> dict:
        if not state:
            from graphlake.assets.bundle import open_bundle
            from graphlake.graph_build.snapshot import open_snapshot

            ub, ib = open_bundle(user_dir), open_bundle(item_dir)
            indptr, indices, _ = open_snapshot(snap_dir).csr(EDGE_TYPE)
            state.update(users=np.asarray(ub.vectors, np.float32), items=np.asarray(ib.vectors, np.float32),
                         item_keys=ib.keys, user_row={k: i for i, k in enumerate(ub.keys)},
                         item_row={k: i for i, k in enumerate(ib.keys)}, indptr=indptr, indices=indices)
        return state

    def top(s: np.ndarray, k: int, keys, excluded: int) -> list:
        take = min(int(k), len(s) - excluded)
        if take <= 0:
            return []
        best = np.argpartition(-s, take - 1)[:take]
        best = best[np.lexsort((best, -s[best]))]
        return [(keys[i], float(s[i])) for i in best]

    def recommend(user_key, k):
        st = load()
        r = st["user_row"].get(user_key)
        if r is None:
            return None
        s = st["items"] @ st["users"][r]
        seen = np.asarray(st["indices"][st["indptr"][r]:st["indptr"][r + 1]], np.int64)
        s[seen] = -np.inf
        return top(s, k, st["item_keys"], len(np.unique(seen)))

    def similar(item_key, k):
        st = load()
        r = st["item_row"].get(item_key)
        if r is None:
            return None
        s = st["items"] @ st["items"][r]
        s[r] = -np.inf
        return top(s, k, st["item_keys"], 1)

    return (udf(recommend, returnType=SCORED_DDL, useArrow=False),
            udf(similar, returnType=SCORED_DDL, useArrow=False))


# ------------------------------------------------------------------------------ measuring

def keys_df(spark, rows: int, n: int, prefix: str, seed: int, partitions: int):
    """``rows`` keys ``<prefix><0..n-1>`` drawn with replacement (column ``key``)."""
    from pyspark.sql import functions as F

    return spark.range(rows, numPartitions=partitions).select(
        F.concat(F.lit(prefix), F.pmod(F.xxhash64("id", F.lit(seed)), F.lit(n)).cast("string")).alias("key"))


def tree_cpu_s() -> float:
    """CPU seconds (user + system, reaped children included) of this process and its descendants."""
    import psutil

    me, total = psutil.Process(), 0.0
    for p in [me] + me.children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def timed(df, result_col) -> tuple[float, float, int]:
    """Fully evaluate ``result_col`` over ``df``: (wall seconds, CPU seconds of the driver, JVM
    and Python workers, total number of results)."""
    from pyspark.sql import functions as F

    c0, t0 = tree_cpu_s(), time.perf_counter()
    total = df.select(result_col.alias("r")).agg(F.sum(F.size("r")).alias("n")).first()["n"]
    return time.perf_counter() - t0, tree_cpu_s() - c0, int(total or 0)


def compare(rows, k: int, exact: bool) -> dict:
    """Agreement of the vectorised (``v``) and reference (``r``) top-k of the collected rows;
    ``ok``: no mismatch for an exact (flat) index, mean overlap >= 0.9 for an approximate one."""
    agree = ties = mismatch = 0
    overlap = []
    examples = []
    for row in rows:
        v, r = row["v"] or [], row["r"] or []
        vi, ri = [x["item_key"] for x in v], [x["item_key"] for x in r]
        overlap.append(len(set(vi) & set(ri)) / max(1, min(k, len(ri))))
        if vi == ri:
            agree += 1
            continue
        vs, rs = np.array([x["score"] for x in v]), np.array([x["score"] for x in r])
        if len(vs) == len(rs) and np.allclose(vs, rs, rtol=1e-4, atol=1e-4):
            ties += 1
        else:
            mismatch += 1
            if len(examples) < 3:
                j = next((j for j, (x, y) in enumerate(zip(vi, ri)) if x != y), min(len(vi), len(ri)))
                examples.append({"key": row["key"], "first_difference": j, "vectorised": vi[j:j + 3],
                                 "reference": ri[j:j + 3]})
    out = {"rows": len(rows), "agree": agree, "ties": ties, "mismatch": mismatch,
           "mean_overlap": round(float(np.mean(overlap)) if overlap else 0.0, 5)}
    out["ok"] = mismatch == 0 if exact else out["mean_overlap"] >= 0.9
    if examples:
        out["examples"] = examples
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--rows", type=int, default=1_000_000, help="query rows of the vectorised functions")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--reference-rows", type=int, default=20_000, help="query rows of the row-at-a-time UDF")
    p.add_argument("--check-rows", type=int, default=2000,
                   help="rows compared between the two (the first rows of the timed query set): recall@k")
    p.add_argument("--history", type=int, default=20, help="clicked items per user (before dedup)")
    p.add_argument("--vectors", default="latent", choices=("latent", "random"),
                   help="latent: the latent-category model (see the docstring); random: standard normal")
    p.add_argument("--categories", type=int, default=400, help="item categories of --vectors latent")
    p.add_argument("--index", default="auto", choices=("auto", "flat", "ivf", "hnsw"))
    p.add_argument("--ivf-target-recall", type=float, default=0.95,
                   help="AssetConfig.ivf_target_recall: the recall the IVF nprobe is calibrated for at build time")
    p.add_argument("--partitions", type=int, default=8, help="Spark partitions of the query rows")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=os.path.join(os.path.expanduser("~"), ".cache", "graphlake", "bench-udfs"))
    a = p.parse_args(argv)
    for name in ("items", "users", "dim", "rows", "k", "reference_rows", "check_rows", "partitions", "categories"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')}: expected >= 1")
    if a.k > 1000:
        p.error("--k: expected <= 1000 (the functions' limit)")
    if not 0 < a.ivf_target_recall <= 1:
        p.error("--ivf-target-recall: expected a number in (0, 1]")
    if a.vectors == "latent" and a.categories > a.items:
        p.error("--categories: expected <= --items")
    # The JVM logs to the stdout it inherits: point fd 1 at stderr while Spark runs, so stdout
    # carries the JSON line only.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        out = run(a)
    finally:
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
    print(json.dumps(out), flush=True)
    return out


def run(a) -> dict:
    from pyspark.sql import functions as F

    from graphlake.assets.bundle import calibration_rows, open_bundle
    from graphlake.assets.config import AssetConfig
    from graphlake.core.spark import get_spark
    from graphlake.udfs.functions import make_functions

    mem = PeakRSS()
    mem.start()
    t_start = time.perf_counter()
    spark = get_spark(master=a.master, app_name="bench-udfs",
                      conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"})
    root = os.path.join(os.path.abspath(a.work),
                        f"i{a.items}-u{a.users}-d{a.dim}-h{a.history}-{a.index}-{a.vectors}-c{a.categories}"
                        f"-r{a.ivf_target_recall}-s{a.seed}")
    spec = build_asset(spark, a, root)
    built_s = spec.pop("built_s")
    item_meta = open_bundle(spec["item"]).meta
    index_kind, index_params = item_meta["index"], item_meta.get("index_params", {})
    # similar-items recall is reported on item keys the IVF calibration did not use as queries
    calibrated = set()
    if index_kind == "ivf" and "calibration" in index_params:
        calibrated = {f"i{r}" for r in calibration_rows(a.items, AssetConfig(seed=a.seed))}
    for name, fn in make_functions(spec).items():
        spark.udf.register(name, fn)
    ref_recommend, ref_similar = reference_udfs(spec)
    k = F.lit(a.k)
    key = F.col("key")
    cases = {  # name: (key prefix, key count, vectorised column, reference column)
        "recommend": ("u", a.users, F.call_function("gl_recommend", key, k), ref_recommend(key, k)),
        "similar_items": ("i", a.items, F.call_function("gl_similar_items", key, k), ref_similar(key, k)),
    }

    # correctness / recall@k on the first --check-rows rows of each timed query set (also warms
    # every Python worker: bundles, index, histories loaded before anything is timed)
    checks, warm_s = {}, {}
    for name, (prefix, n, vec, ref) in cases.items():
        t0 = time.perf_counter()
        got = (keys_df(spark, min(a.check_rows, a.rows), n, prefix, a.seed + 20, 2)
               .select("key", vec.alias("v"), ref.alias("r")).collect())
        warm_s[name] = round(time.perf_counter() - t0, 1)
        left_out = 0
        if name == "similar_items" and calibrated:
            left_out = sum(r["key"] in calibrated for r in got)
            got = [r for r in got if r["key"] not in calibrated]
        checks[name] = compare(got, a.k, exact=index_kind == "flat")
        checks[name]["recall_at_k"] = checks[name].pop("mean_overlap")
        if left_out:
            checks[name]["left_out_calibration_queries"] = left_out
        if name == "similar_items" and a.vectors == "latent":
            same = [int(x["item_key"][1:]) % a.categories == int(r["key"][1:]) % a.categories
                    for r in got for x in (r["r"] or [])]
            checks[name]["exact_top_k_same_category"] = round(float(np.mean(same)), 4) if same else None
            checks[name]["same_category_by_chance"] = round(1 / a.categories, 4)
        log(f"{name}: check {checks[name]} ({warm_s[name]}s, includes loading)")

    results = {}
    for name, (prefix, n, vec, ref) in cases.items():
        load = os.getloadavg()[0]
        secs, cpu, total = timed(keys_df(spark, a.rows, n, prefix, a.seed + 20, a.partitions), vec)
        log(f"{name}: vectorised {a.rows} rows in {secs:.1f}s ({a.rows / secs:.0f} rows/s, {cpu:.0f} CPU s, "
            f"{total} results)")
        ref_df = keys_df(spark, a.reference_rows, n, prefix, a.seed + 30, a.partitions)
        ref_secs, ref_cpu, ref_total = timed(ref_df, ref)
        log(f"{name}: row-at-a-time {a.reference_rows} rows in {ref_secs:.1f}s "
            f"({a.reference_rows / ref_secs:.0f} rows/s, {ref_cpu:.0f} CPU s)")
        rate, ref_rate = a.rows / secs, a.reference_rows / ref_secs
        results[name] = {
            "function": f"gl_{name}(key, {a.k})", "rows": a.rows, "seconds": round(secs, 2),
            "rows_per_s": round(rate), "cpu_s": round(cpu, 1), "rows_per_cpu_s": round(a.rows / max(cpu, 1e-9)),
            "results": total, "reference_rows": a.reference_rows, "reference_seconds": round(ref_secs, 2),
            "reference_rows_per_s": round(ref_rate, 1), "reference_cpu_s": round(ref_cpu, 1),
            "reference_rows_per_cpu_s": round(a.reference_rows / max(ref_cpu, 1e-9), 1),
            "reference_results": ref_total, "ratio": round(rate / ref_rate, 2),
            "cpu_ratio": round((a.rows / max(cpu, 1e-9)) / (a.reference_rows / max(ref_cpu, 1e-9)), 2),
            "recall_at_k": checks[name]["recall_at_k"], "check": checks[name], "warmup_s": warm_s[name],
            "load_avg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
        }
    spark.stop()
    out = {
        "bench": "udfs", "items": a.items, "users": a.users, "dim": a.dim, "k": a.k, "rows": a.rows,
        "reference_rows": a.reference_rows, "ratio_basis": "rows_per_s (reference measured on reference_rows rows)",
        "reference": "pyspark.sql.functions.udf(useArrow=False), one row per call, numpy brute-force top-k",
        "vectors": a.vectors, "vector_model": VECTOR_MODELS[a.vectors].format(c=a.categories),
        "index": index_kind, "index_params": index_params, "score": "dot", "history_per_user": a.history,
        "recall_basis": f"recall@{a.k} = |function's top-{a.k} ∩ exact brute-force top-{a.k}| / {a.k}, "
                        "mean over the check rows (the first rows of each timed query set)",
        "master": a.master,
        "partitions": a.partitions, "cores": os.cpu_count(),
        "udf_threads": int(os.environ.get("GRAPHLAKE_UDF_THREADS", "1")),
        "asset_built_s": built_s, "asset_reused": built_s is None,
        **results,
        "all_checks_ok": all(c["ok"] for c in checks.values()),
        "total_s": round(time.perf_counter() - t_start, 1), "peak_rss_mb": mem.stop(),
    }
    return out


if __name__ == "__main__":
    main()
