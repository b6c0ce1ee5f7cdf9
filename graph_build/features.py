"""Node features: ``graph/features_<type>`` (columns of :data:`graphlake.graph_build.schema.FEATURES_SCHEMA`).

Every node of ``id_maps[type]`` gets exactly one row (a left join from the id map); nothing is
dropped: a missing value is imputed and flagged.

========  ==========================================================  =======================  ==========
type      numeric (in this order)                                     categorical              text
========  ==========================================================  =======================  ==========
user      age, n_click, n_view, n_cart, n_fav, n_purchase, n_items,   gender, region           NULL
          active_days
item      price, n_click, n_view, n_cart, n_fav, n_purchase,          category_l1..l3, brand,  title
          n_users, title_missing                                      shop
shop      n_items, n_events, n_purchases, mean_price                  -                        NULL
brand     n_items, n_events, n_purchases, mean_price                  -                        NULL
category  level, n_items, n_events, n_purchases                       -                        path
query     n_searches, n_users, n_items                                -                        query
other     -                                                           -                        NULL
========  ==========================================================  =======================  ==========

Numeric: counts (events per behaviour, distinct items/users, active UTC days, items of a shop /
brand / category subtree) and prices are ``log1p``-transformed, age and level are not; then every
feature except the ``title_missing`` indicator is standardised, ``(x - mean) / std`` (population
std; 1 when it is 0). Mean and std are exact Spark aggregates (decimal sums, so the result does
not depend on partitioning) over the observed values. A count is never missing (no events means
0). ``age`` (outside 0..120 counts as missing), ``price`` (the catalog price, else the item's mean
event price) and ``mean_price`` are imputed with the exact median of the observed values (0
when none is observed) and flagged in ``numeric_missing``.

Categorical: per column a vocabulary of the ``categorical_vocab_size`` (default 1000) most
frequent values over the nodes (ties: value ascending), index ``1..K``; ``0`` = missing (gender
``U`` is missing), ``K+1`` = other (a value outside the vocabulary). Cardinality ``K + 2``.
Category levels are path prefixes (``a``, ``a>b``, ``a>b>c``), the category node keys.

Text: see :mod:`graphlake.graph_build.text_embed` (MiniLM, 384-d, L2-normalised; hashing fallback). An item
without a title gets a zero vector and ``title_missing = 1`` (every real embedding has norm 1).
Types without text have NULL ``text``.

Image: items only; the upstream ``image_vec`` when its length is ``image_dim`` (config, else the
most frequent length over the catalog, ties to the smaller) and all its values are finite;
otherwise (absent, other length, NULL/NaN/inf values) zeros of ``image_dim`` and
``has_image = False``. No vector at all and no ``image_dim``: ``image`` NULL. Other types: NULL.

The spec of every type (names, transforms, stats, cardinalities, dims) travels in the metadata of
the returned ``node_id`` column; :func:`feature_spec` reads it back for the manifest.

Example:
    >>> feats = build_features(spark, {"events": ev, "items": it, "users": us}, id_maps, GraphConfig())
    >>> sorted(feats), feats["item"].columns == G.FEATURES_SCHEMA.fieldNames()
    (['brand', 'category', 'item', 'query', 'shop', 'user'], True)
    >>> feature_spec(feats)["item"]["text"]["dim"]
    384
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from graphlake.etl import schema as S
from graphlake.graph_build import schema as G
from graphlake.graph_build.nodes import category_prefixes, normalise_query
from graphlake.graph_build.text_embed import EMBEDDING_COL, TEXT_COL, TextBackend, embed_texts, resolve_backend

log = logging.getLogger(__name__)
__all__ = ["build_features", "feature_spec", "FeatureOptions", "SPEC_METADATA_KEY"]

SPEC_METADATA_KEY = "graphlake.feature_spec"
_INPUT_KEYS = {"events": ("events", "clean/events"), "items": ("items", "clean/items"),
               "users": ("users", "clean/users")}
_INPUT_SCHEMAS = {"events": S.CLEAN_EVENTS_SCHEMA, "items": S.CLEAN_ITEMS_SCHEMA, "users": S.CLEAN_USERS_SCHEMA}
_USED_COLUMNS = {"events": (S.USER_ID, S.ITEM_ID, S.EVENT_TYPE, S.TS, S.QUERY, S.PRICE),
                 "items": (S.ITEM_ID, S.TITLE, S.CATEGORY, S.BRAND, S.SHOP_ID, S.PRICE, S.IMAGE_VEC),
                 "users": (S.USER_ID, S.AGE, S.GENDER, S.REGION)}
_DEC, _DEC2 = "decimal(38,12)", "decimal(38,6)"
_SRC = "_text_src"  # per-node text to embed


@dataclass(frozen=True)
class FeatureOptions:
    """Feature settings, read from any config object with :meth:`from_config` (defaults below)."""

    text_model: str = "all-MiniLM-L6-v2"
    text_dim: int = 384
    text_batch_size: int = 256
    image_dim: int | None = None
    categorical_vocab_size: int = 1000
    category_levels: int = 3
    text_partitions: int | None = None  # None: spark.sql.shuffle.partitions
    text_threads: int | None = None  # None: spark.task.cpus
    text_device: str = "cpu"

    @classmethod
    def from_config(cls, config) -> FeatureOptions:
        """Take each field from ``config`` (``getattr`` with the defaults above) and check it."""
        values = {f: getattr(config, f, getattr(cls, f)) for f in cls.__dataclass_fields__}
        for name in ("text_dim", "text_batch_size", "categorical_vocab_size", "category_levels", "image_dim",
                     "text_partitions", "text_threads"):
            v = values[name]
            if v is None and name in ("image_dim", "text_partitions", "text_threads"):
                continue
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"config.{name}: expected an int, got {type(v).__name__} {v!r}")
            if v <= 0:
                raise ValueError(f"config.{name}: expected > 0, got {v}")
        if not isinstance(values["text_model"], str) or not values["text_model"].strip():
            raise TypeError(f"config.text_model: expected a non-empty string, got {values['text_model']!r}")
        return cls(**values)


@dataclass(frozen=True)
class _Num:
    """One numeric feature: raw column of the node frame, transform, imputation."""

    name: str
    transform: str = "log1p"  # log1p | identity
    impute: str = "zero"  # zero (a count: 0 is a value, not flagged) | median (flagged) | none (indicator)


def _counts(*names: str) -> list[_Num]:
    return [_Num(n) for n in names]


_BEHAVIOUR_COUNTS = [f"n_{t}" for t in S.EVENT_TYPES]
_NUMERIC = {
    G.USER: [_Num("age", "identity", "median"), *_counts(*_BEHAVIOUR_COUNTS, "n_items", "active_days")],
    G.ITEM: [_Num("price", "log1p", "median"), *_counts(*_BEHAVIOUR_COUNTS, "n_users"),
             _Num("title_missing", "identity", "none")],
    G.SHOP: [*_counts("n_items", "n_events", "n_purchases"), _Num("mean_price", "log1p", "median")],
    G.BRAND: [*_counts("n_items", "n_events", "n_purchases"), _Num("mean_price", "log1p", "median")],
    G.CATEGORY: [_Num("level", "identity", "median"), *_counts("n_items", "n_events", "n_purchases")],
    G.QUERY: _counts("n_searches", "n_users", "n_items"),
}
_TEXT_SOURCE = {G.ITEM: "title", G.CATEGORY: "category path", G.QUERY: "query"}


def _categorical_names(node_type: str, opts: FeatureOptions) -> list[str]:
    if node_type == G.USER:
        return ["gender", "region"]
    if node_type == G.ITEM:
        return [f"category_l{i}" for i in range(1, opts.category_levels + 1)] + ["brand", "shop"]
    return []


# ------------------------------------------------------------------------------------ inputs


def _inputs(spark, tables: Mapping) -> dict[str, DataFrame]:
    if not isinstance(tables, Mapping):
        raise TypeError(f"tables: expected a mapping like {{'events': DataFrame, ...}}, got {type(tables).__name__}")
    out = {}
    for name, keys in _INPUT_KEYS.items():
        df = next((tables[k] for k in keys if k in tables), None)
        schema = _INPUT_SCHEMAS[name]
        if df is None:
            if name == "events":
                raise ValueError(f"tables: no 'events' DataFrame (keys: {sorted(tables)})")
            df = spark.createDataFrame([], schema)
        if not isinstance(df, DataFrame):
            raise TypeError(f"tables[{name!r}]: expected a DataFrame, got {type(df).__name__}")
        missing = [c for c in _USED_COLUMNS[name] if c not in df.columns]
        if missing:
            raise ValueError(f"tables[{name!r}]: missing columns {missing} (clean table schema: {schema.fieldNames()})")
        out[name] = df
    return out


def _key(col: str) -> Column:
    return F.trim(F.col(col))


def _blank_to_null(c: Column) -> Column:
    c = F.trim(c)
    return F.when(F.length(c) > 0, c)


def _checkpoint(df: DataFrame, eager: bool = False) -> DataFrame:
    """Truncate the lineage; lazy by default: the first full pass over ``df`` stores it."""
    return df.localCheckpoint(eager=eager)


def _dec_mean(col: Column) -> Column:
    """Mean via an exact decimal sum (independent of partitioning), as double."""
    return (F.sum(col.cast(_DEC2)) / F.count(col)).cast("double")


# ------------------------------------------------------------------------------------ node frames


def _item_stats(events: DataFrame) -> DataFrame:
    ev = events.select(_key(S.ITEM_ID).alias(G.KEY), S.USER_ID, S.EVENT_TYPE, S.PRICE)
    return _checkpoint(ev.groupBy(G.KEY).agg(
        *[F.sum(F.when(F.col(S.EVENT_TYPE) == t, 1).otherwise(0)).alias(f"n_{t}") for t in S.EVENT_TYPES],
        F.count(F.lit(1)).alias("n_events"),
        F.countDistinct(S.USER_ID).alias("n_users"),
        _dec_mean(F.col(S.PRICE)).alias("event_price")))


def _item_attrs(items: DataFrame) -> DataFrame:
    title = _blank_to_null(F.regexp_replace(S.TITLE, r"\s+", " "))
    return items.select(_key(S.ITEM_ID).alias(G.KEY), title.alias("title"), F.col(S.CATEGORY),
                        _blank_to_null(F.col(S.BRAND)).alias("brand"), _blank_to_null(F.col(S.SHOP_ID)).alias("shop"),
                        F.col(S.PRICE).alias("catalog_price"),
                        F.col(S.IMAGE_VEC)).dropDuplicates([G.KEY])  # clean catalogs have one row per key


def _user_frame(id_map: DataFrame, events: DataFrame, users: DataFrame) -> DataFrame:
    ev = events.select(_key(S.USER_ID).alias(G.KEY), S.ITEM_ID, S.EVENT_TYPE, S.TS)
    stats = ev.groupBy(G.KEY).agg(
        *[F.sum(F.when(F.col(S.EVENT_TYPE) == t, 1).otherwise(0)).alias(f"n_{t}") for t in S.EVENT_TYPES],
        F.countDistinct(S.ITEM_ID).alias("n_items"), F.countDistinct(F.to_date(S.TS)).alias("active_days"))
    gender = F.upper(_blank_to_null(F.col(S.GENDER)))
    attrs = users.select(_key(S.USER_ID).alias(G.KEY),
                         F.when(F.col(S.AGE).between(0, 120), F.col(S.AGE).cast("double")).alias("age"),
                         F.when(gender != "U", gender).alias("gender"),
                         _blank_to_null(F.col(S.REGION)).alias("region")).dropDuplicates([G.KEY])
    return id_map.join(attrs, G.KEY, "left").join(stats, G.KEY, "left")


def _item_frame(id_map: DataFrame, attrs: DataFrame, stats: DataFrame, levels: int) -> DataFrame:
    prefixes = category_prefixes(F.col(S.CATEGORY))
    df = id_map.join(attrs, G.KEY, "left").join(stats, G.KEY, "left")
    return df.select(
        G.KEY, G.NODE_ID, "brand", "shop", S.IMAGE_VEC, *_BEHAVIOUR_COUNTS, "n_users",
        F.coalesce(F.col("catalog_price"), F.col("event_price")).alias("price"),
        F.when(F.col("title").isNull(), 1.0).otherwise(0.0).alias("title_missing"),
        F.col("title").alias(_SRC),
        *[F.when(F.size(prefixes) >= i, F.element_at(prefixes, i)).alias(f"category_l{i}")
          for i in range(1, levels + 1)])


def _group_frame(id_map: DataFrame, catalog: DataFrame, key: Column) -> DataFrame:
    """shop / brand / category: aggregates over the catalog items they hold."""
    agg = catalog.select(key.alias(G.KEY), "n_events", "n_purchase", "catalog_price").filter(F.col(G.KEY).isNotNull())
    agg = agg.groupBy(G.KEY).agg(F.count(F.lit(1)).alias("n_items"), F.sum("n_events").alias("n_events"),
                                 F.sum("n_purchase").alias("n_purchases"),
                                 _dec_mean(F.col("catalog_price")).alias("mean_price"))
    return id_map.join(agg, G.KEY, "left")


def _query_frame(id_map: DataFrame, events: DataFrame) -> DataFrame:
    ev = (events.select(normalise_query(F.col(S.QUERY)).alias(G.KEY), S.USER_ID, S.ITEM_ID)
          .filter(F.col(G.KEY).isNotNull()))
    stats = ev.groupBy(G.KEY).agg(F.count(F.lit(1)).alias("n_searches"), F.countDistinct(S.USER_ID).alias("n_users"),
                                  F.countDistinct(S.ITEM_ID).alias("n_items"))
    return id_map.join(stats, G.KEY, "left").withColumn(_SRC, F.col(G.KEY))


def _node_frames(inputs: dict, id_maps: Mapping, opts: FeatureOptions) -> dict[str, DataFrame]:
    """One row per id-map node with the raw feature columns (checkpointed)."""
    events, items, users = inputs["events"], inputs["items"], inputs["users"]
    frames, item_stats, catalog = {}, None, None
    if any(t in id_maps for t in (G.ITEM, G.SHOP, G.BRAND, G.CATEGORY)):
        item_stats = _item_stats(events)
        catalog = _item_attrs(items).join(item_stats, G.KEY, "left").fillna(0, ["n_events", "n_purchase"])
    for node_type, id_map in id_maps.items():
        base = id_map.select(G.KEY, G.NODE_ID)
        if node_type == G.USER:
            df = _user_frame(base, events, users)
        elif node_type == G.ITEM:
            df = _item_frame(base, _item_attrs(items), item_stats, opts.category_levels)
        elif node_type in (G.SHOP, G.BRAND):
            df = _group_frame(base, catalog, F.col(node_type))
        elif node_type == G.CATEGORY:
            df = _group_frame(base, catalog.withColumn(G.KEY, F.explode(category_prefixes(F.col(S.CATEGORY)))),
                              F.col(G.KEY))
            df = df.withColumn("level", F.size(F.split(G.KEY, S.CATEGORY_SEPARATOR)).cast("double"))
            df = df.withColumn(_SRC, F.regexp_replace(G.KEY, S.CATEGORY_SEPARATOR, " > "))
        elif node_type == G.QUERY:
            df = _query_frame(base, events)
        else:
            log.info("features: node type %r has no feature definition; empty features for its nodes", node_type)
            df = base
        frames[node_type] = _checkpoint(df)
    return frames


# ------------------------------------------------------------------------------------ encoders


def _numeric(frame: DataFrame, specs: list[_Num], fitted: Mapping | None = None
             ) -> tuple[list[Column], list[Column], dict]:
    """Value and missing-flag columns plus the stats used (one small aggregate), or, with
    ``fitted`` (a spec's ``numeric.stats``), the stats of an earlier build (no aggregate)."""
    stats = _numeric_stats(frame, specs) if fitted is None else _checked_stats(specs, fitted)
    values, flags = [], []
    for s in specs:
        raw, st = F.col(s.name).cast("double"), stats[s.name]
        if not st["standardised"]:
            values.append(F.coalesce(raw, F.lit(0.0)).cast("float"))
            flags.append(F.lit(False))
            continue
        x = F.coalesce(raw, F.lit(float(st.get("median", 0.0))))  # only median-imputed stats have a median
        x = F.log1p(x) if s.transform == "log1p" else x
        values.append(((x - F.lit(float(st["mean"]))) / F.lit(float(st["std"]))).cast("float"))
        flags.append(raw.isNull() if s.impute == "median" else F.lit(False))
    return values, flags, stats


def _numeric_stats(frame: DataFrame, specs: list[_Num]) -> dict:
    observed, aggs = {}, []
    for s in specs:
        raw = F.col(s.name).cast("double")
        observed[s.name] = raw if s.impute == "median" else F.coalesce(raw, F.lit(0.0))
        if s.impute == "median":
            aggs.append(F.percentile(raw, F.lit(0.5)).alias(f"median_{s.name}"))
        if s.impute != "none":
            t = F.log1p(observed[s.name]) if s.transform == "log1p" else observed[s.name]
            aggs += [F.count(t).alias(f"n_{s.name}"), F.sum(t.cast(_DEC)).alias(f"s_{s.name}"),
                     F.sum((t * t).cast(_DEC)).alias(f"ss_{s.name}")]
    row = frame.agg(*aggs).first().asDict() if aggs else {}
    stats = {}
    for s in specs:
        if s.impute == "none":
            stats[s.name] = {"transform": s.transform, "impute": "none", "standardised": False}
            continue
        median = row.get(f"median_{s.name}")
        median = 0.0 if median is None else float(median)
        n, total, total_sq = row[f"n_{s.name}"], row[f"s_{s.name}"], row[f"ss_{s.name}"]
        mean, std = 0.0, 1.0
        if n:
            with localcontext() as ctx:
                ctx.prec = 50
                m = Decimal(total) / n
                var = Decimal(total_sq) / n - m * m
                # the decimal sums round each row to 1e-12: a smaller variance is a constant column
                constant = var <= Decimal("1e-9") * (1 + m * m)
                mean, std = float(m), 1.0 if constant else float(var.sqrt())
        stats[s.name] = {"transform": s.transform, "impute": s.impute, "standardised": True, "mean": mean,
                         "std": std, **({"median": median} if s.impute == "median" else {})}
    return stats


def _checked_stats(specs: list[_Num], fitted: Mapping) -> dict:
    stats = {}
    for s in specs:
        st = fitted.get(s.name)
        if not isinstance(st, Mapping) or st.get("transform") != s.transform or st.get("impute") != s.impute:
            raise ValueError(f"fitted: numeric feature {s.name!r} expected stats with transform {s.transform!r} and "
                             f"impute {s.impute!r}, got {st!r} (the graph was built by another graphlake version)")
        stats[s.name] = {**st, "standardised": bool(st.get("standardised"))}
    return stats


def _vocabularies(frame: DataFrame, names: list[str], cap: int) -> dict[str, list[str]]:
    """Per column the ``cap`` most frequent non-NULL values (count desc, value asc), one small job."""
    if not names:
        return {}
    pairs = F.explode(F.array(*[F.struct(F.lit(n).alias("c"), F.col(n).cast("string").alias("v")) for n in names]))
    counts = (frame.select(pairs.alias("p")).select("p.c", "p.v").filter(F.col("v").isNotNull())
              .groupBy("c", "v").count())
    rank = F.row_number().over(Window.partitionBy("c").orderBy(F.desc("count"), F.asc("v")))
    rows = counts.withColumn("r", rank).filter(F.col("r") <= cap).select("c", "v", "r").collect()
    out = {n: [] for n in names}
    for c, v, r in sorted(rows, key=lambda x: (x[0], x[2])):
        out[c].append(v)
    return out


def _categorical(spark, frame: DataFrame, names: list[str], cap: int, fitted: Mapping | None = None
                 ) -> tuple[DataFrame, list[Column], dict]:
    """Index columns (0 missing, 1..K vocabulary, K+1 other) and their spec; with ``fitted`` (a
    spec's ``categorical.columns``) the vocabularies of an earlier build."""
    cols, spec = [], {}
    if fitted is None:
        vocabularies = _vocabularies(frame, names, cap)
    else:
        vocabularies = {}
        for name in names:
            vocab = (fitted.get(name) or {}).get("vocabulary")
            if not isinstance(vocab, list):
                raise ValueError(f"fitted: categorical feature {name!r} has no recorded vocabulary (the graph was "
                                 "built before vocabularies were recorded in its feature spec): rebuild the graph")
            vocabularies[name] = vocab
    for name in names:
        vocab = vocabularies[name]
        v, i = f"_v_{name}", f"_i_{name}"
        if vocab:
            mapping = spark.createDataFrame([(value, k + 1) for k, value in enumerate(vocab)], f"{v} string, {i} int")
            frame = frame.join(F.broadcast(mapping), F.col(name) == F.col(v), "left")
            index = F.coalesce(F.col(i), F.when(F.col(name).isNull(), 0).otherwise(len(vocab) + 1))
        else:
            index = F.when(F.col(name).isNull(), 0).otherwise(1)
        cols.append(index.cast("int"))
        spec[name] = {"cardinality": len(vocab) + 2, "vocabulary_size": len(vocab), "missing_index": 0,
                      "other_index": len(vocab) + 1, "vocabulary": list(vocab)}
    return frame, cols, spec


def _image_dim(items: DataFrame, configured: int | None) -> int | None:
    if configured is not None:
        return configured
    row = (items.filter(F.col(S.IMAGE_VEC).isNotNull() & (F.size(S.IMAGE_VEC) > 0))
           .groupBy(F.size(S.IMAGE_VEC).alias("dim")).count()
           .orderBy(F.desc("count"), F.asc("dim")).limit(1).collect())
    return int(row[0]["dim"]) if row else None


def _image(dim: int | None) -> tuple[Column, Column]:
    if dim is None:
        return F.lit(None).cast("array<float>"), F.lit(False)
    vec = F.col(S.IMAGE_VEC)
    ok = (vec.isNotNull() & (F.size(vec) == dim)
          & F.forall(vec, lambda x: x.isNotNull() & ~F.isnan(x) & (F.abs(x) != F.lit(float("inf")))))
    ok = F.coalesce(ok, F.lit(False))
    zeros = F.array_repeat(F.lit(0.0).cast("float"), dim)
    return F.when(ok, vec.cast("array<float>")).otherwise(zeros), ok


# ------------------------------------------------------------------------------------ public API


def _options_and_backend(spark, config) -> tuple[FeatureOptions, TextBackend, int, int]:
    opts = FeatureOptions.from_config(config)
    backend = resolve_backend(opts.text_model, opts.text_dim, opts.text_device)
    partitions = opts.text_partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    threads = opts.text_threads or int(spark.conf.get("spark.task.cpus", "1"))
    return opts, backend, partitions, threads


def build_features(spark, tables: Mapping, id_maps: Mapping, config=None, fitted: Mapping | None = None
                   ) -> dict[str, DataFrame]:
    """Feature tables of every node type of ``id_maps`` (see the module docstring for the features).

    Args:
        spark: SparkSession.
        tables: ``{"events": DataFrame, "items": DataFrame, "users": DataFrame}`` with the clean
            tables' columns (``etl/schema.py``); the ``clean/...`` table names work as keys too.
            ``items`` / ``users`` may be absent (all their features are then imputed).
        id_maps: ``{node_type: DataFrame(key, node_id, added_in)}``.
        config: any object; reads ``text_model`` ("all-MiniLM-L6-v2"; "hashing" forces the
            fallback), ``text_dim`` (384), ``text_batch_size`` (256), ``image_dim`` (None: inferred),
            ``categorical_vocab_size`` (1000), ``category_levels`` (3), ``text_partitions``,
            ``text_threads``, ``text_device`` ("cpu") with these defaults.
        fitted: the feature spec of an earlier build (``{node_type: spec}``, e.g. a graph
            version's ``feature_spec``): numeric stats, vocabularies and image width are taken
            from it instead of computed, so nodes that arrived later (``graphlake embed-new``)
            are encoded exactly as that build encoded its nodes. Every type of ``id_maps`` must
            be in it, and the text backend must be the one it recorded.

    Returns:
        ``{node_type: DataFrame}`` with exactly ``FEATURES_SCHEMA``'s columns, one row per id-map
        node. Event aggregates and text embeddings are computed once here (local checkpoints), so
        writing the frames does not re-run the model.

    Raises:
        TypeError / ValueError naming the argument or ``config.<field>``.

    Example:
        >>> f = build_features(spark, {"events": ev, "items": it, "users": us}, {"user": user_ids},
        ...                    SimpleNamespace(text_model="hashing"))
        >>> f["user"].columns == G.FEATURES_SCHEMA.fieldNames(), len(f["user"].first()["numeric"])
        (True, 8)
    """
    if not isinstance(id_maps, Mapping):
        raise TypeError(f"id_maps: expected a mapping node type -> DataFrame, got {type(id_maps).__name__}")
    for node_type, df in id_maps.items():
        if not isinstance(df, DataFrame):
            raise TypeError(f"id_maps[{node_type!r}]: expected a DataFrame, got {type(df).__name__}")
        if G.KEY not in df.columns or G.NODE_ID not in df.columns:
            raise ValueError(f"id_maps[{node_type!r}]: expected columns key, node_id, got {df.columns}")
    inputs = _inputs(spark, tables)
    opts, backend, partitions, threads = _options_and_backend(spark, config)
    if fitted is not None:
        _check_fitted(fitted, id_maps, backend)
    frames = _node_frames(inputs, id_maps, opts)
    text_types = [t for t in frames if t in _TEXT_SOURCE]
    embeddings = None
    if text_types:
        texts = None
        for t in text_types:
            part = frames[t].select(F.col(_SRC).alias(TEXT_COL))
            texts = part if texts is None else texts.unionByName(part)
        embeddings = _checkpoint(embed_texts(texts, backend, opts.text_batch_size, partitions, threads), eager=True)
    if fitted is not None:
        image_dim = (fitted[G.ITEM].get("image") or {}).get("dim") or None if G.ITEM in frames else None
    else:
        image_dim = _image_dim(inputs["items"], opts.image_dim) if G.ITEM in frames else None
    return {t: _assemble(spark, t, frame, opts, backend, embeddings, image_dim, (fitted or {}).get(t))
            for t, frame in frames.items()}


def _check_fitted(fitted, id_maps: Mapping, backend: TextBackend) -> None:
    if not isinstance(fitted, Mapping):
        raise TypeError(f"fitted: expected a mapping node type -> feature spec, got {type(fitted).__name__}")
    missing = sorted(set(id_maps) - set(fitted))
    if missing:
        raise ValueError(f"fitted: no feature spec for node types {missing} (it has {sorted(fitted)})")
    for t in id_maps:
        text = fitted[t].get("text") or {}
        if text.get("dim") and (text.get("backend"), text.get("model")) != (backend.kind, backend.model):
            raise ValueError(f"fitted: {t} text features were made by {text.get('backend')}/{text.get('model')}, "
                             f"this environment resolves {backend.kind}/{backend.model}: install the same text "
                             "model package (or set text_model to match) so new nodes are encoded alike")


def _assemble(spark, node_type, frame, opts, backend, embeddings, image_dim, fitted=None) -> DataFrame:
    specs = _NUMERIC.get(node_type, [])
    values, flags, stats = _numeric(frame, specs, None if fitted is None else fitted["numeric"]["stats"])
    frame, cat_cols, cat_spec = _categorical(spark, frame, _categorical_names(node_type, opts),
                                             opts.categorical_vocab_size,
                                             None if fitted is None else fitted["categorical"]["columns"])
    text, text_dim = F.lit(None).cast("array<float>"), 0
    if node_type in _TEXT_SOURCE:
        emb = embeddings.select(F.col(TEXT_COL).alias("_emb_text"), F.col(EMBEDDING_COL).alias("_emb"))
        frame = frame.join(emb, F.col(_SRC) == F.col("_emb_text"), "left")
        text_dim = opts.text_dim
        text = F.coalesce(F.col("_emb"), F.array_repeat(F.lit(0.0).cast("float"), text_dim))
    image, has_image, img_dim = F.lit(None).cast("array<float>"), F.lit(False), 0
    if node_type == G.ITEM:
        (image, has_image), img_dim = _image(image_dim), image_dim or 0
    spec = {
        "node_type": node_type,
        "numeric": {"names": [s.name for s in specs], "dim": len(specs), "stats": stats},
        "categorical": {"names": list(cat_spec), "dim": len(cat_spec),
                        "cardinalities": [cat_spec[n]["cardinality"] for n in cat_spec], "columns": cat_spec},
        "text": {"dim": text_dim, "source": _TEXT_SOURCE.get(node_type),
                 "backend": backend.kind if text_dim else None, "model": backend.model if text_dim else None,
                 "fallback": backend.fallback if text_dim else False, "missing": "zero vector" if text_dim else None},
        "image": {"dim": img_dim, "source": S.IMAGE_VEC if img_dim else None},
    }
    empty_f, empty_b, empty_i = (F.array().cast(f"array<{t}>") for t in ("float", "boolean", "int"))
    return frame.select(
        F.col(G.NODE_ID).cast("long").alias(G.NODE_ID, metadata={SPEC_METADATA_KEY: json.dumps(spec, sort_keys=True)}),
        (F.array(*values) if values else empty_f).alias(G.NUMERIC),
        (F.array(*flags) if flags else empty_b).alias(G.NUMERIC_MISSING),
        (F.array(*cat_cols) if cat_cols else empty_i).alias(G.CATEGORICAL),
        text.cast("array<float>").alias(G.TEXT),
        image.alias(G.IMAGE),
        has_image.alias(G.HAS_IMAGE))


def feature_spec(features: Mapping[str, DataFrame]) -> dict:
    """Names and sizes of every feature per node type, for the manifest and for training.

    Args:
        features: what :func:`build_features` returned (the spec is in the ``node_id`` column's
            metadata; frames read back from the lake do not carry it).

    Returns:
        ``{node_type: {"numeric": {"names", "dim", "stats"}, "categorical": {"names", "dim",
        "cardinalities", "columns"}, "text": {"dim", "source", "backend", "model", "fallback"},
        "image": {"dim", "source"}}}`` (JSON-serialisable). ``dim`` 0 = the column is NULL/empty.

    Example:
        >>> feature_spec(build_features(spark, tables, id_maps, cfg))["user"]["numeric"]["names"][:2]
        ['age', 'n_click']
    """
    if not isinstance(features, Mapping):
        raise TypeError(f"features: expected a mapping node type -> DataFrame, got {type(features).__name__}")
    out = {}
    for node_type, df in sorted(features.items()):
        if not isinstance(df, DataFrame):
            raise TypeError(f"features[{node_type!r}]: expected a DataFrame, got {type(df).__name__}")
        meta = df.schema[G.NODE_ID].metadata if G.NODE_ID in df.columns else {}
        if SPEC_METADATA_KEY not in meta:
            raise ValueError(f"features[{node_type!r}]: no feature spec in the node_id metadata; pass the "
                             "DataFrames returned by build_features (tables read back from the lake lose it)")
        out[node_type] = json.loads(meta[SPEC_METADATA_KEY])
    return out
