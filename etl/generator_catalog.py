"""Catalog, user profiles and counter-based hashing for the synthetic behaviour-log generator.

Everything here is pure numpy/pandas: no Spark. The catalog (category tree, brands, shops, items)
is built once on the driver from ``numpy.random.default_rng(seed)``; it is bounded by the catalog
size and shipped to the executors inside the generator's closure. User attributes are *functions
of the user index* (:func:`hash_uniform`), so any executor can compute the profile of any user
without a driver-side user table, and the result does not depend on how users are partitioned.

Example:
    >>> cat = build_catalog(seed=1, n_items=200, n_shops=10, n_brands=12, branching=(4, 4, 4),
    ...                     image_dim=8, image_share=0.7, popularity_exponent=1.0)
    >>> len(cat.leaf_paths), int(cat.item_leaf.max()) < 64
    (64, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

DAY_MS = 86_400_000
_MASK = (1 << 64) - 1

# hash streams: one per independent attribute, so attributes never share random numbers
S_ACTIVITY, S_INTEREST, S_AGE, S_GENDER, S_REGION, S_SIGNUP, S_FOLLOW, S_EVENT = range(1, 9)
S_SESSION, S_BAD, S_LATE, S_TASK, S_BOTS, S_EXTRA = range(9, 15)

TOP_NAMES = ("Electronics", "Fashion", "Home", "Sports", "Beauty", "Toys", "Books", "Grocery",
             "Automotive", "Garden", "Health", "Music", "Office", "Pets", "Baby", "Jewelry")
# log-normal price location per top category (exp(mu) is the median price)
TOP_PRICE_MU = (5.0, 3.7, 3.9, 3.8, 3.0, 3.2, 2.7, 1.9, 4.0, 3.4, 2.9, 3.6, 2.8, 3.0, 3.3, 4.5)
MID_NAMES = {
    "Electronics": ("Phones", "Computers", "Audio", "Cameras",
                    "TV", "Wearables", "Gaming", "Cables"),
    "Fashion": ("Women", "Men", "Shoes", "Bags",
                "Kids", "Watches", "Sportswear", "Hats"),
    "Home": ("Kitchen", "Furniture", "Bedding", "Lighting",
             "Decor", "Storage", "Bath", "Appliances"),
    "Sports": ("Fitness", "Cycling", "Running", "Outdoor",
               "Swimming", "Football", "Yoga", "Camping"),
    "Beauty": ("Skincare", "Makeup", "Haircare", "Fragrance",
               "Nails", "Tools", "Grooming", "Body"),
    "Toys": ("Building", "Dolls", "Puzzles", "Playground",
             "Games", "Plush", "Vehicles", "Learning"),
    "Books": ("Fiction", "Science", "History", "Children",
              "Comics", "Cooking", "Travel", "Business"),
    "Grocery": ("Snacks", "Beverages", "Coffee", "Breakfast",
                "Pantry", "Organic", "Candy", "Spices"),
}
LEAF_MODIFIERS = ("Smart", "Classic", "Pro", "Eco", "Mini", "Travel", "Premium", "Kids",
                  "Wireless", "Vintage", "Sport", "Home")
GENERIC_WORDS = ("new", "pro", "max", "lite", "plus", "set", "2024", "edition", "original",
                 "classic", "mini", "xl", "pack", "deluxe")
REGIONS = ("US-CA", "US-NY", "US-TX", "GB-LND", "DE-BE", "FR-IDF", "JP-13", "CN-SH", "BR-SP",
           "IN-MH", "AU-NSW", "CA-ON")
REGION_WEIGHTS = (0.14, 0.12, 0.10, 0.09, 0.08, 0.07, 0.08, 0.09, 0.07, 0.08, 0.04, 0.04)
_SYLLABLES = ("ka", "lo", "mi", "ra", "ven", "tor", "zu", "pel", "an", "dri", "so", "qua", "ix",
              "bel", "nor", "ta", "ge", "lux", "vo", "rin", "sa", "mo", "kel", "fi", "tra", "ul")


# ---------------------------------------------------------------- counter-based hashing
def _mix_scalar(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def hash64(seed: int, stream: int, idx) -> np.ndarray:
    """SplitMix64 hash of ``(seed, stream, idx)``, vectorised over ``idx``.

    Args:
        seed: generator seed (non-negative int).
        stream: attribute stream id (one of the ``S_*`` constants).
        idx: integer array-like of counters (user index, event sequence...).

    Returns:
        ``uint64`` array of the shape of ``idx``.

    Example:
        >>> int(hash64(1, 2, [5])[0]) == int(hash64(1, 2, np.array([5]))[0])
        True
    """
    key = np.uint64(_mix_scalar(_mix_scalar(seed & _MASK) ^ (stream & _MASK)))
    x = np.atleast_1d(np.asarray(idx)).astype(np.int64).view(np.uint64) ^ key
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_uniform(seed: int, stream: int, idx) -> np.ndarray:
    """Uniform floats in ``[0, 1)`` that are a pure function of ``(seed, stream, idx)``."""
    return (hash64(seed, stream, idx) >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


def id_width(n: int, minimum: int = 6) -> int:
    """Zero-padded width of ids for ``n`` entities (``u000042``)."""
    return max(minimum, len(str(max(n - 1, 0))))


def format_ids(prefix: str, idx, width: int) -> list[str]:
    """``prefix`` + zero-padded index, the same text Spark's ``lpad`` writes."""
    return [f"{prefix}{int(i):0{width}d}" for i in np.atleast_1d(idx)]


def _pseudo_word(rng: np.random.Generator, syllables: int) -> str:
    return "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), syllables))


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf weights ``1/rank^exponent`` over a random ranking of ``n`` entities."""
    ranks = rng.permutation(n)
    return 1.0 / np.power(ranks + 1.0, exponent)


# ---------------------------------------------------------------- catalog
@dataclass(frozen=True)
class Catalog:
    """Category tree, brands, shops and items, plus the arrays used to sample items.

    Attributes:
        leaf_paths: category path ``a>b>c`` of each leaf (object array).
        leaf_top: top-level category index of each leaf.
        leaf_queries: ``(n_leaves, 8)`` object array of search queries per leaf.
        brand_names: brand name per brand index (object array).
        n_shops, n_category_nodes: counts.
        item_leaf, item_brand, item_shop, item_price, item_weight, item_title: per item.
        item_image: ``(n_items, image_dim)`` float array; ``item_has_image`` masks it.
        items_by_leaf: item indices sorted by leaf; ``leaf_cdf_key`` = leaf + cumulative
            popularity share inside the leaf (sample item of leaf ``c`` with ``c + u``).
        leaf_cdf: cumulative popularity over leaves (global random leaf).
        interest_cdf: cumulative interest weights over leaves (user interests).
        top_leaf_offsets, top_leaves: non-empty leaves grouped by top category.
    """

    leaf_paths: np.ndarray
    leaf_top: np.ndarray
    leaf_queries: np.ndarray
    brand_names: np.ndarray
    n_shops: int
    n_category_nodes: int
    item_leaf: np.ndarray
    item_brand: np.ndarray
    item_shop: np.ndarray
    item_price: np.ndarray
    item_weight: np.ndarray
    item_title: np.ndarray
    item_image: np.ndarray
    item_has_image: np.ndarray
    items_by_leaf: np.ndarray
    leaf_cdf_key: np.ndarray
    leaf_cdf: np.ndarray
    interest_cdf: np.ndarray
    top_leaf_offsets: np.ndarray
    top_leaves: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.item_leaf.shape[0])

    def sample_items(self, leaves: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Popularity-weighted item of each given (non-empty) leaf; ``u`` uniform in [0, 1)."""
        key = leaves.astype(np.float64) + np.minimum(u, 1.0 - 1e-12)
        pos = np.searchsorted(self.leaf_cdf_key, key, side="right")
        return self.items_by_leaf[np.minimum(pos, self.items_by_leaf.shape[0] - 1)]

    def random_leaves(self, u: np.ndarray) -> np.ndarray:
        """Leaves drawn by overall popularity."""
        return np.minimum(np.searchsorted(self.leaf_cdf, u, side="right"), len(self.leaf_cdf) - 1)


def _category_tree(branching: tuple[int, ...], rng: np.random.Generator):
    """Return (leaf paths, leaf top index, leaf vocabularies, number of tree nodes)."""
    paths: list[list[str]] = [[]]
    tops: list[int] = [0]
    nodes = 0
    for level, width in enumerate(branching):
        new_paths, new_tops = [], []
        for path, top in zip(paths, tops):
            for i in range(width):
                if level == 0:
                    name = TOP_NAMES[i] if i < len(TOP_NAMES) else _pseudo_word(rng, 3).title()
                    top = i
                elif level == 1 and path[0] in MID_NAMES and i < len(MID_NAMES[path[0]]):
                    name = MID_NAMES[path[0]][i]
                elif level == 2 and i < len(LEAF_MODIFIERS):
                    name = f"{LEAF_MODIFIERS[i]} {path[-1]}"
                else:
                    name = _pseudo_word(rng, 3).title()
                new_paths.append(path + [name])
                new_tops.append(top)
        nodes += len(new_paths)
        paths, tops = new_paths, new_tops
    top_vocab = {t: [_pseudo_word(rng, 2) for _ in range(4)] for t in set(tops)}
    vocab = []
    for path, top in zip(paths, tops):
        words = {w.lower() for name in path[1:] for w in name.split()}
        words.update(_pseudo_word(rng, 2) for _ in range(5))
        vocab.append(sorted(words) + top_vocab[top])
    return paths, np.asarray(tops, dtype=np.int32), vocab, nodes


def build_catalog(
    seed: int,
    n_items: int,
    n_shops: int,
    n_brands: int,
    branching: tuple[int, ...],
    image_dim: int,
    image_share: float,
    popularity_exponent: float,
) -> Catalog:
    """Build the deterministic catalog for ``seed`` (see :class:`Catalog`).

    Items belong to one leaf, one brand (brands specialise in a top category) and one shop (80 %
    of a shop's items in its top category); prices are log-normal per leaf; titles use the leaf's
    vocabulary, the brand and generic words; image vectors cluster by leaf.
    """
    rng = np.random.default_rng([seed, S_EXTRA, 1])
    paths, leaf_top, vocab, n_nodes = _category_tree(branching, rng)
    n_leaves = len(paths)
    n_top = int(branching[0])

    # leaves: one item each first (when possible), the rest by a skewed leaf size
    leaf_size = rng.lognormal(0.0, 0.8, n_leaves)
    first = rng.permutation(n_leaves)[: min(n_items, n_leaves)]
    rest = rng.choice(n_leaves, n_items - len(first), p=leaf_size / leaf_size.sum())
    item_leaf = np.concatenate([first, rest]).astype(np.int32)
    item_leaf = item_leaf[rng.permutation(n_items)]
    item_top = leaf_top[item_leaf]

    brand_names = []
    seen: set[str] = set()
    for b in range(n_brands):
        name = _pseudo_word(rng, 2 + b % 2).title()
        if name in seen:
            name = f"{name}{b}"
        seen.add(name)
        brand_names.append(name)
    brand_w = _zipf_weights(n_brands, 1.1, rng)
    item_brand = _pick_grouped(rng, item_top, n_top, n_brands, brand_w, 0.95)
    shop_w = _zipf_weights(n_shops, 1.0, rng)
    item_shop = _pick_grouped(rng, item_top, n_top, n_shops, shop_w, 0.8)

    top_mu = np.array([TOP_PRICE_MU[t % len(TOP_PRICE_MU)] for t in range(n_top)])
    leaf_mu = top_mu[leaf_top] + rng.normal(0.0, 0.35, n_leaves)
    price = np.exp(leaf_mu[item_leaf] + rng.normal(0.0, 0.45, n_items))
    item_price = np.maximum(np.round(price, 2), 0.99)
    item_weight = _zipf_weights(n_items, popularity_exponent, rng)

    titles = np.empty(n_items, dtype=object)
    word_pick = rng.integers(0, 1 << 30, (n_items, 4))
    for i in range(n_items):
        words = vocab[item_leaf[i]]
        w = word_pick[i]
        titles[i] = " ".join((brand_names[item_brand[i]], words[w[0] % len(words)],
                              words[w[1] % len(words)], GENERIC_WORDS[w[2] % len(GENERIC_WORDS)],
                              paths[item_leaf[i]][-1].split()[-1].lower()))

    top_c = rng.normal(0.0, 1.0, (n_top, image_dim))
    leaf_c = top_c[leaf_top] + 0.6 * rng.normal(0.0, 1.0, (n_leaves, image_dim))
    img = leaf_c[item_leaf] + 0.5 * rng.normal(0.0, 1.0, (n_items, image_dim))
    img = np.round(img / np.linalg.norm(img, axis=1, keepdims=True), 4)
    has_image = rng.random(n_items) < image_share

    queries = np.empty((n_leaves, 8), dtype=object)
    for leaf in range(n_leaves):
        words = vocab[leaf]
        for q in range(8):
            k = 1 + int(rng.integers(0, 3))
            queries[leaf, q] = " ".join(words[int(j)] for j in rng.integers(0, len(words), k))

    order = np.argsort(item_leaf, kind="stable")
    sorted_leaf = item_leaf[order]
    leaf_w = np.bincount(item_leaf, weights=item_weight, minlength=n_leaves)
    cum = np.cumsum(item_weight[order])
    seg_start = np.searchsorted(sorted_leaf, sorted_leaf, side="left")
    seg_end = np.searchsorted(sorted_leaf, sorted_leaf, side="right") - 1
    before = np.where(seg_start > 0, cum[np.maximum(seg_start - 1, 0)], 0.0)
    local = (cum - before) / (cum[seg_end] - before)
    local[seg_end == np.arange(n_items)] = 1.0
    nonempty = leaf_w > 0
    interest_w = np.where(nonempty, np.sqrt(leaf_w), 0.0)
    top_leaves = np.concatenate([np.flatnonzero(nonempty & (leaf_top == t)) for t in range(n_top)])
    top_counts = np.bincount(leaf_top[top_leaves], minlength=n_top)
    return Catalog(
        leaf_paths=np.asarray([">".join(p) for p in paths], dtype=object),
        leaf_top=leaf_top,
        leaf_queries=queries,
        brand_names=np.asarray(brand_names, dtype=object),
        n_shops=n_shops,
        n_category_nodes=n_nodes,
        item_leaf=item_leaf,
        item_brand=item_brand.astype(np.int32),
        item_shop=item_shop.astype(np.int64),
        item_price=item_price,
        item_weight=item_weight,
        item_title=titles,
        item_image=img,
        item_has_image=has_image,
        items_by_leaf=order.astype(np.int64),
        leaf_cdf_key=sorted_leaf.astype(np.float64) + local,
        leaf_cdf=np.cumsum(leaf_w) / leaf_w.sum(),
        interest_cdf=np.cumsum(interest_w) / interest_w.sum(),
        top_leaf_offsets=np.concatenate([[0], np.cumsum(top_counts)]).astype(np.int64),
        top_leaves=top_leaves.astype(np.int64),
    )


def _pick_grouped(rng, item_top, n_top, n, weights, p_same) -> np.ndarray:
    """Pick one of ``n`` entities per item; entity ``e`` specialises in top ``e % n_top``."""
    group = np.arange(n) % n_top
    out = rng.choice(n, len(item_top), p=weights / weights.sum())
    if n < n_top:
        return out
    same = rng.random(len(item_top)) < p_same
    for t in range(n_top):
        members = np.flatnonzero(group == t)
        sel = np.flatnonzero(same & (item_top == t))
        if len(members) and len(sel):
            w = weights[members]
            out[sel] = members[rng.choice(len(members), len(sel), p=w / w.sum())]
    return out


# ---------------------------------------------------------------- users
def user_activity(seed: int, users: np.ndarray, exponent: float, cap: float = 100.0) -> np.ndarray:
    """Power-law (Pareto, capped) activity of each user, normalised to mean 1."""
    u = hash_uniform(seed, S_ACTIVITY, users)
    w = np.minimum(np.power(1.0 - u, -1.0 / exponent), cap)
    return w / expected_capped_pareto_mean(exponent, cap)


def user_interests(seed: int, users: np.ndarray, catalog: Catalog, k: int) -> np.ndarray:
    """``(len(users), k)`` preferred leaves per user; later interests are often siblings."""
    n = len(users)
    out = np.empty((n, k), dtype=np.int64)
    last = len(catalog.interest_cdf) - 1
    for j in range(k):
        u = hash_uniform(seed, S_INTEREST, users * 64 + 3 * j)
        glob = np.minimum(np.searchsorted(catalog.interest_cdf, u, side="right"), last)
        if j == 0:
            out[:, 0] = glob
            continue
        top = catalog.leaf_top[out[:, 0]]
        lo, hi = catalog.top_leaf_offsets[top], catalog.top_leaf_offsets[top + 1]
        v = hash_uniform(seed, S_INTEREST, users * 64 + 3 * j + 1)
        sibling = catalog.top_leaves[np.minimum(lo + (v * (hi - lo)).astype(np.int64), hi - 1)]
        use_sib = hash_uniform(seed, S_INTEREST, users * 64 + 3 * j + 2) < 0.5
        out[:, j] = np.where(use_sib, sibling, glob)
    return out


def user_records(seed: int, users: np.ndarray, n_users: int, window_start_ms: int,
                 follow_share: float) -> pd.DataFrame:
    """Demographics of the given users (pure functions of the index).

    Returns:
        DataFrame with ``user`` (index), ``age`` (float, NaN = unknown), ``gender`` (M/F/U),
        ``region``, ``signup_ms`` (before the window) and ``follows`` (list of user indices or
        None; ~``follow_share`` of users, skewed towards a few popular accounts).
    """
    users = np.asarray(users, dtype=np.int64)
    u1 = np.maximum(hash_uniform(seed, S_AGE, users * 2), 1e-12)
    u2 = hash_uniform(seed, S_AGE, users * 2 + 1)
    z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    age = np.clip(np.round(33.0 + 11.0 * z), 16, 80)
    age[hash_uniform(seed, S_AGE, users + (1 << 40)) < 0.02] = np.nan
    g = hash_uniform(seed, S_GENDER, users)
    gender = np.where(g < 0.47, "M", np.where(g < 0.94, "F", "U")).astype(object)
    cdf = np.cumsum(REGION_WEIGHTS) / sum(REGION_WEIGHTS)
    region = np.asarray(REGIONS, dtype=object)[
        np.minimum(np.searchsorted(cdf, hash_uniform(seed, S_REGION, users), side="right"),
                   len(REGIONS) - 1)]
    signup = window_start_ms - DAY_MS - (hash_uniform(seed, S_SIGNUP, users) * 1095 * DAY_MS)
    follows = np.full(len(users), None, dtype=object)
    fu = hash_uniform(seed, S_FOLLOW, users * 64)
    who = np.flatnonzero(fu < follow_share)
    if len(who) and n_users > 1:
        tail = -np.log(np.maximum(fu[who] / follow_share, 1e-12))  # Exp(1): list lengths
        counts = np.minimum(1 + np.floor(tail * 5), 50).astype(np.int64)
        owner = np.repeat(who, counts)
        j = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        v = hash_uniform(seed, S_FOLLOW, users[owner] * 64 + 1 + j)
        target = np.minimum((n_users * v ** 2.5).astype(np.int64), n_users - 1)
        target = np.where(target == users[owner], (target + 1) % n_users, target)
        keys = np.unique(owner * n_users + target)
        own, tgt = keys // n_users, keys % n_users
        bounds = np.searchsorted(own, who, side="left"), np.searchsorted(own, who, side="right")
        for w, a, b in zip(who, *bounds):
            follows[w] = tgt[a:b].tolist()
    return pd.DataFrame({"user": users, "age": age, "gender": gender, "region": region,
                         "signup_ms": signup.astype(np.int64), "follows": follows})


def catalog_summary_counts(catalog: Catalog) -> dict:
    """Counts reported in the generator summary."""
    return {"items": catalog.n_items, "shops": catalog.n_shops,
            "brands": len(catalog.brand_names), "categories": len(catalog.leaf_paths),
            "category_nodes": catalog.n_category_nodes}


def expected_capped_pareto_mean(exponent: float, cap: float) -> float:
    """Mean of ``min(Pareto(exponent, x_min=1), cap)``."""
    if math.isclose(exponent, 1.0):
        return 1.0 + math.log(cap)
    return (exponent - cap ** (1.0 - exponent)) / (exponent - 1.0)
