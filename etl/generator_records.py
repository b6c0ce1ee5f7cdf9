"""Items and users files of the synthetic log generator, and the text-writing helpers.

Main records come from ``mapInPandas`` over blocks of items / users (the catalog travels in the
closure, user attributes are hash functions of the index). A last file per folder holds a few
bad records (missing id, truncated JSON) and *updated* re-emissions of existing ids (new price or
title for items, new region for users): the later file, then the later line, is the latest.

Example:
    >>> summary = write_items(spark, catalog, config, "/tmp/raw/items", "/tmp/raw/_staging")
    >>> summary["files"][-1].endswith("part-00001.jsonl")
    True
"""

from __future__ import annotations

import json
import os
import re
from functools import partial

import numpy as np
import pandas as pd

from graphlake.etl import schema as S
from graphlake.etl.generator_catalog import S_EXTRA, Catalog, format_ids, id_width, user_records
from graphlake.etl.generator_events import iso_millis

ISO_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
RECORDS_PER_FILE = 500_000
UPDATE_SHARE = 0.002  # ids re-emitted with an updated record


# ---------------------------------------------------------------- text output helpers
def write_text(df, staging: str, compress: bool = False) -> list[tuple[int, str]]:
    """Write a one-column string DataFrame as text files into ``staging`` (overwritten).

    Returns:
        ``(spark partition index, file path)`` pairs sorted by partition.
    """
    df.write.mode("overwrite").option("compression", "gzip" if compress else "none").text(staging)
    found = []
    for name in os.listdir(staging):
        match = re.match(r"part-(\d+)-.*\.txt(\.gz)?$", name)
        if match:
            found.append((int(match.group(1)), os.path.join(staging, name)))
    return sorted(found)


def move_parts(files: list[tuple[int, str]], folder: str, ext: str, number=None) -> list[str]:
    """Move written files to ``folder/part-NNNNN<ext>``; ``number`` maps a partition to NNNNN."""
    os.makedirs(folder, exist_ok=True)
    out = []
    for part, path in files:
        target = os.path.join(folder, f"part-{(number(part) if number else part):05d}{ext}")
        os.replace(path, target)
        out.append(target)
    return out


def _write_with_extra(main, extra: list[str], parts: int, folder: str, staging: str):
    """Main records (Spark) as ``part-00000..``, then the few extra lines as the last file,
    written from the driver (a handful of lines: not worth a Spark job)."""
    files = move_parts(write_text(main, staging), folder, ".jsonl")
    if extra:
        path = os.path.join(folder, f"part-{parts:05d}.jsonl")
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            handle.write("".join(line + "\n" for line in extra))
        files.append(path)
    return files


def _blocks(spark, n: int):
    parts = max(1, -(-n // RECORDS_PER_FILE))
    return spark.range(0, parts, 1, parts), parts


def _dumps(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":"))


def _bad_records(rng, base: list[dict], id_field: str, share: float) -> tuple[list[str], dict]:
    """Bad lines derived from ``base`` records: missing id and truncated JSON, alternately."""
    n_bad = max(2, round(len(base) * share)) if share > 0 else 0
    kinds = (S.R_MISSING_FIELD.format(field=id_field), S.R_INVALID_JSON)
    lines, counts = [], dict.fromkeys(kinds, 0)
    for j in range(n_bad):
        rec = dict(base[int(rng.integers(0, len(base)))])
        if j % 2 == 0:
            rec.pop(id_field)
            lines.append(_dumps(rec))
        else:
            text = _dumps(rec)
            lines.append(text[: int(rng.integers(5, len(text) - 1))])
        counts[kinds[j % 2]] += 1
    return lines, counts


# ---------------------------------------------------------------- items
def item_dict(catalog: Catalog, i: int) -> dict:
    """The JSON record of item ``i`` (the same fields and order Spark writes)."""
    rec = {S.ITEM_ID: format_ids("i", i, id_width(catalog.n_items))[0],
           S.TITLE: catalog.item_title[i],
           S.CATEGORY: catalog.leaf_paths[catalog.item_leaf[i]],
           S.BRAND: catalog.brand_names[catalog.item_brand[i]],
           S.SHOP_ID: format_ids("s", catalog.item_shop[i], id_width(catalog.n_shops, 4))[0],
           S.PRICE: float(catalog.item_price[i])}
    if catalog.item_has_image[i]:
        rec[S.IMAGE_VEC] = [float(v) for v in catalog.item_image[i]]
    return rec


def _items_udf(catalog: Catalog, parts: int, batches):
    n = catalog.n_items
    for batch in batches:
        for block in batch["id"].tolist():
            lo, hi = block * n // parts, (block + 1) * n // parts
            idx = np.arange(lo, hi)
            image = [catalog.item_image[i].tolist() if catalog.item_has_image[i] else None
                     for i in idx]
            yield pd.DataFrame({
                "item": idx.astype(np.int64), "title": catalog.item_title[lo:hi],
                "category": catalog.leaf_paths[catalog.item_leaf[lo:hi]],
                "brand": catalog.brand_names[catalog.item_brand[lo:hi]],
                "shop": catalog.item_shop[lo:hi], "price": catalog.item_price[lo:hi],
                "image": image})


def write_items(spark, catalog: Catalog, config, folder: str, staging: str) -> dict:
    """Write ``items/part-*.jsonl``; return counts, updated ids and files."""
    from pyspark.sql import functions as F

    blocks, parts = _blocks(spark, catalog.n_items)
    rows = blocks.mapInPandas(
        partial(_items_udf, catalog, parts),
        "item long, title string, category string, brand string, shop long, price double, "
        "image array<double>")
    line = F.to_json(F.struct(
        F.concat(F.lit("i"), F.lpad(F.col("item").cast("string"), id_width(catalog.n_items),
                                    "0")).alias(S.ITEM_ID),
        F.col("title").alias(S.TITLE), F.col("category").alias(S.CATEGORY),
        F.col("brand").alias(S.BRAND),
        F.concat(F.lit("s"), F.lpad(F.col("shop").cast("string"), id_width(catalog.n_shops, 4),
                                    "0")).alias(S.SHOP_ID),
        F.col("price").alias(S.PRICE), F.col("image").alias(S.IMAGE_VEC)))
    rng = np.random.default_rng([config.seed, S_EXTRA, 3])
    sample = rng.choice(catalog.n_items, min(catalog.n_items, 64), replace=False)
    extra, bad = _bad_records(rng, [item_dict(catalog, int(i)) for i in sample], S.ITEM_ID,
                              config.bad_record_share)
    n_upd = max(2, round(catalog.n_items * UPDATE_SHARE)) if config.bad_record_share > 0 else 0
    updated = np.sort(rng.choice(catalog.n_items, min(n_upd, catalog.n_items), replace=False))
    for i in updated:
        rec = item_dict(catalog, int(i))
        rec[S.PRICE] = round(rec[S.PRICE] * float(rng.choice([0.8, 0.9, 1.1, 1.25])), 2)
        rec[S.TITLE] = f"{rec[S.TITLE]} {rng.choice(['sale', '2025', 'bundle'])}"
        extra.append(_dumps(rec))
    files = _write_with_extra(rows.select(line.alias("value")), extra, parts, folder,
                              staging)
    return {"bad_counts": bad, "updated": format_ids("i", updated, id_width(catalog.n_items)),
            "files": files}


# ---------------------------------------------------------------- users
def user_dict(frame: pd.DataFrame, row: int, width: int) -> dict:
    """The JSON record of row ``row`` of a :func:`user_records` frame."""
    r = frame.iloc[row]
    rec = {S.USER_ID: format_ids("u", r["user"], width)[0]}
    if not np.isnan(r["age"]):
        rec[S.AGE] = int(r["age"])
    rec.update({S.GENDER: r["gender"], S.REGION: r["region"],
                S.SIGNUP_TS: iso_millis(int(r["signup_ms"]))})
    if r["follows"] is not None:
        rec[S.FOLLOWS] = format_ids("u", r["follows"], width)
    return rec


def _users_udf(config, start_ms: int, parts: int, batches):
    n = config.users
    for batch in batches:
        for block in batch["id"].tolist():
            lo, hi = block * n // parts, (block + 1) * n // parts
            yield user_records(config.seed, np.arange(lo, hi), n, start_ms, config.follow_share)


def write_users(spark, config, start_ms: int, folder: str, staging: str) -> dict:
    """Write ``users/part-*.jsonl``; return counts, updated ids and files."""
    from pyspark.sql import functions as F

    width = id_width(config.users)
    blocks, parts = _blocks(spark, config.users)
    rows = blocks.mapInPandas(
        partial(_users_udf, config, start_ms, parts),
        "user long, age double, gender string, region string, signup_ms long, "
        "follows array<long>")
    line = F.to_json(F.struct(
        F.concat(F.lit("u"), F.lpad(F.col("user").cast("string"), width, "0")).alias(S.USER_ID),
        F.when(~F.isnan("age"), F.col("age").cast("int")).alias(S.AGE),
        F.col("gender").alias(S.GENDER), F.col("region").alias(S.REGION),
        F.date_format(F.timestamp_millis(F.col("signup_ms")), ISO_FORMAT).alias(S.SIGNUP_TS),
        F.transform("follows", lambda x: F.concat(F.lit("u"), F.lpad(x.cast("string"), width,
                                                                        "0"))).alias(S.FOLLOWS)))
    rng = np.random.default_rng([config.seed, S_EXTRA, 5])
    sample = np.sort(rng.choice(config.users, min(config.users, 64), replace=False))
    frame = user_records(config.seed, sample, config.users, start_ms, config.follow_share)
    extra, bad = _bad_records(rng, [user_dict(frame, j, width) for j in range(len(frame))],
                              S.USER_ID, config.bad_record_share)
    n_upd = max(2, round(config.users * UPDATE_SHARE)) if config.bad_record_share > 0 else 0
    updated = np.sort(rng.choice(config.users, min(n_upd, config.users), replace=False))
    frame = user_records(config.seed, updated, config.users, start_ms, config.follow_share)
    for j in range(len(frame)):
        rec = user_dict(frame, j, width)
        rec[S.REGION] = str(rng.choice([r for r in ("US-CA", "DE-BE", "JP-13")
                                        if r != rec[S.REGION]]))
        extra.append(_dumps(rec))
    files = _write_with_extra(rows.select(line.alias("value")), extra, parts, folder,
                              staging)
    return {"bad_counts": bad, "updated": format_ids("u", updated, width), "files": files}
