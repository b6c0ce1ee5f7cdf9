"""Importers: public interaction datasets → the clean Delta tables the log ETL produces.

``import_dataset(spark, fmt, path, lake_dir)`` overwrites ``clean/events`` (by ``dt``),
``clean/users``, ``clean/items``, ``quarantine/events`` (by ``dt``), ``quarantine/users``,
``quarantine/items`` and :data:`IMPORT_TEST` (held-out interactions), one Delta commit each, even
when empty: the lake then holds exactly one imported dataset. Rules (lines numbered from 1):

* ids must be non-negative integers (≤ 18 digits), stored as canonical decimal strings ("007" →
  "7"). Every user/item id seen anywhere (events, held-out split, id lists, attribute files) gets
  one row in clean/users / clean/items; columns without a source are NULL (gender too).
* a line that does not parse goes to quarantine/events (interaction files) or quarantine/users|items
  (id lists, attribute files), with ``record_key`` ``<file>:<line>``, the raw line, ``dt`` =
  :data:`SYNTHETIC_DT` and a reason: ``import_empty_line``, ``import_unparseable_line`` (field
  count, non-integer id/number, genre flag not 0/1), ``import_bad_value`` (rating outside 1..5,
  age > 150) or ``import_duplicate_id`` (an attribute row superseded by a later one: last wins).
* ``event_id`` = ``<fmt>:<file>:<line>:<k>`` (k = index of the item in the line); session_id,
  query, price NULL; ``source_dt`` = ``dt``.
* synthetic time (lightgcn, mule, s3rec have none): ``ts`` = 2020-01-01T00:00:00Z + p seconds, p =
  0-based position of the interaction in the user's list (lightgcn, s3rec: in the line, so s3rec's
  time order is kept; mule: among the user's pairs of that file, in file order). ``dt`` is always
  the UTC date of ``ts`` (a single dt, 2020-01-01, while lists are shorter than 86,400 items).

Formats:

* ``lightgcn`` (``train.txt``, ``test.txt``; optional ``user_list.txt``, ``item_list.txt``
  ``org_id remap_id`` with a header line, whose ``remap_id`` become user/item rows): every train
  interaction → a ``purchase`` event (implicit feedback); ``test.txt`` → :data:`IMPORT_TEST`
  with ``split = "test"``, never into ``clean/events``.
* ``ml100k`` (``u.data``; optional ``u.user``, ``u.item``): rating ≥ 4 → ``purchase``, else
  ``click``; ``ts`` = the unix timestamp, ``dt`` its UTC date. Users: age, gender (M/F, other → U),
  ``region`` = the first 3 characters of the zip code, upper-cased (US 3-digit ZIP prefix; the
  few Canadian codes give their forward-sortation prefix); occupation is not kept. Items (latin-1):
  title, ``category`` = ``movie>`` + the first genre whose flag is 1 (in ``u.genre`` order,
  ``unknown`` first), ``movie`` when no flag is set; brand, shop, price NULL.
* ``mule`` (``buy.txt``; optional ``cart.txt``, ``collect.txt``, ``valid.txt``, ``test.txt``):
  ``user item`` pairs → ``purchase`` / ``cart`` / ``fav`` events; valid/test → :data:`IMPORT_TEST`
  with ``split`` ``valid`` / ``test``.
* ``s3rec`` (exactly one ``<name>.txt``, optional ``<name>_item2attributes.json``): every item of
  ``user item item …`` → a ``purchase`` event in time order. Attributes are anonymised ids; in
  S3-Rec's preprocessing an item's list is ``[brand] + categories``, the brand omitted when unknown.
  So an attribute id is a *category* when it ever occurs after the first position; an item's first
  id is its ``brand`` (``attr_<id>``) only when that id never does (on Beauty: 435 brand ids, 7,492
  of 12,101 items branded). ``category`` = the remaining ids (all ids for a brandless item),
  duplicates dropped, as ``attr_<a>>attr_<b>…``; NULL when none.

Example:
    >>> report = import_dataset(spark, "lightgcn", "../shared/datasets/gowalla", "./lakehouse")
    >>> report["events"], report["test_interactions"]
    ({'purchase': 810128}, 217242)
"""

from __future__ import annotations

import functools
import glob
import json
import os
from datetime import datetime, timezone
from urllib.parse import unquote, urlparse

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from graphlake.core import lake, tables
from graphlake.core.errors import InputNotFoundError, UsageError
from graphlake.etl import schema as S

IMPORT_TEST = tables.IMPORT_TEST
SPLIT = S.SPLIT
IMPORT_TEST_SCHEMA = S.IMPORT_TEST_SCHEMA

FORMATS = ("lightgcn", "ml100k", "mule", "s3rec")
SYNTHETIC_BASE = datetime(2020, 1, 1, tzinfo=timezone.utc)
SYNTHETIC_EPOCH = int(SYNTHETIC_BASE.timestamp())
SYNTHETIC_DT = SYNTHETIC_BASE.strftime("%Y-%m-%d")

R_EMPTY_LINE = "import_empty_line"
R_UNPARSEABLE = "import_unparseable_line"
R_BAD_VALUE = "import_bad_value"
R_DUPLICATE_ID = "import_duplicate_id"

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")
MULE_BEHAVIOURS = {"buy.txt": "purchase", "cart.txt": "cart", "collect.txt": "fav"}
MULE_HELD_OUT = {"valid.txt": "valid", "test.txt": "test"}
EXPECTED_FILES = {  # (required, optional)
    "lightgcn": (("train.txt", "test.txt"), ("user_list.txt", "item_list.txt")),
    "ml100k": (("u.data",), ("u.user", "u.item")),
    "mule": (("buy.txt",), ("cart.txt", "collect.txt", "valid.txt", "test.txt")),
    "s3rec": (("<name>.txt",), ("<name>_item2attributes.json",)),
}

LINE_NO = "line_no"  # 1-based line number in the source file
K = "_k"  # index of the interaction in its line
SEQ = "_seq"  # position in the user's list (synthetic time)
EPOCH = "_epoch"  # event time, unix seconds
_VALUE = "value"
_TOK = "_tok"
_ATTRS = "attrs"
_INT_RE = r"^[0-9]{1,18}$"
_MAX_LEN = 1 << 30
_BOOKKEEPING = (LINE_NO, S.SOURCE_FILE, S.RAW_LINE, S.REASON)


# ------------------------------------------------------------------------------ pure transforms
# Input of every parser: text lines with columns value, source_file, line_no (see read_lines).
# Output: the parsed fields plus line_no, source_file, raw_line and reason (NULL = valid).


def _tok(i: int) -> Column:
    return F.get(F.col(_TOK), i)  # NULL when out of range (also under ANSI mode)


def _canonical_id(c: Column) -> Column:
    return F.when(c.rlike(_INT_RE), c.try_cast("bigint").cast("string"))


def _all_ints(arr: Column) -> Column:
    return F.coalesce(F.forall(arr, lambda x: x.rlike(_INT_RE)), F.lit(False))


def _tokenise(lines: DataFrame, sep: str | None = None) -> DataFrame:
    """Add raw_line and ``_tok``: the line split on whitespace (default) or ``sep``; [] when blank."""
    blank = F.regexp_replace(F.col(_VALUE), r"^\s+|\s+$", "")
    toks = F.split(blank, r"\s+") if sep is None else F.split(F.col(_VALUE), sep, -1)
    return lines.withColumn(S.RAW_LINE, F.col(_VALUE)).withColumn(
        _TOK, F.when(blank == "", F.array().cast("array<string>")).otherwise(toks))


def _first_reason(*checks: tuple[Column, str]) -> Column:
    out = F.lit(None).cast("string")
    for cond, reason in reversed(checks):
        out = F.when(F.coalesce(cond, F.lit(True)), F.lit(reason)).otherwise(out)
    return out


def _shape_reason(n_fields: int | None) -> Column:
    """Empty line, else unparseable unless ``n_fields`` (None: ≥ 1) integer tokens."""
    count_bad = F.size(_TOK) != n_fields if n_fields is not None else F.lit(False)
    return _first_reason((F.size(_TOK) == 0, R_EMPTY_LINE), (count_bad | ~_all_ints(F.col(_TOK)), R_UNPARSEABLE))


def _valid_select(df: DataFrame, cols: dict[str, Column], *more: Column, keep_raw: bool = True) -> DataFrame:
    """One pass: ``cols`` (NULL on rejected rows), ``more``, then the bookkeeping columns
    (without ``keep_raw``, raw_line only on rejected rows: exploded lines need no copies)."""
    ok = F.col(S.REASON).isNull()
    raw = (F.col(S.RAW_LINE) if keep_raw else F.when(~ok, F.col(S.RAW_LINE))).alias(S.RAW_LINE)
    return df.select(*[F.when(ok, c).alias(name) for name, c in cols.items()], *more,
                     LINE_NO, S.SOURCE_FILE, raw, S.REASON)


def _interactions(df: DataFrame, items: Column, **extra: Column) -> DataFrame:
    """Tokenised lines with reason → one row per (line, item); user = first token. A rejected
    line (or a valid one without items) keeps one row with item_id and _k NULL."""
    exploded = F.posexplode_outer(F.when(F.col(S.REASON).isNull(), items)).alias(K, S.ITEM_ID)
    out = _valid_select(df, {S.USER_ID: _canonical_id(_tok(0)), **extra}, exploded, keep_raw=False)
    return out.withColumn(SEQ, F.col(K))


def parse_lightgcn_lines(lines: DataFrame) -> DataFrame:
    """``user item item …`` lines → one row per interaction.

    Columns: user_id, item_id, _k (index in the line), line_no, source_file, raw_line, reason,
    _seq (= _k). A valid line without items gives one row with item_id NULL (the user is still
    seen); a bad line gives one row with its reason and NULL ids.
    """
    df = _tokenise(lines).withColumn(S.REASON, _shape_reason(None))
    items = F.transform(F.slice(F.col(_TOK), 2, _MAX_LEN), lambda x: x.try_cast("bigint").cast("string"))
    return _interactions(df, items)


def parse_s3rec_lines(lines: DataFrame) -> DataFrame:
    """S3-Rec's ``user item item …`` in time order: the rows of :func:`parse_lightgcn_lines`."""
    return parse_lightgcn_lines(lines)


def parse_mule_lines(lines: DataFrame) -> DataFrame:
    """``user item`` lines → interactions; ``_seq`` = position among the user's pairs (file order)."""
    df = _tokenise(lines).withColumn(S.REASON, _shape_reason(2))
    out = _interactions(df, F.array(_canonical_id(_tok(1))))
    seq = F.row_number().over(Window.partitionBy(S.SOURCE_FILE, S.USER_ID).orderBy(LINE_NO)) - 1
    return out.withColumn(SEQ, F.when(F.col(S.REASON).isNull(), seq))


def parse_ml100k_ratings(lines: DataFrame) -> DataFrame:
    """``user \\t item \\t rating \\t unix_ts`` → interactions plus event_type and ``_epoch``."""
    rating = _tok(2).try_cast("int")
    df = _tokenise(lines).withColumn(S.REASON, F.coalesce(
        _shape_reason(4), F.when((rating < 1) | (rating > 5), F.lit(R_BAD_VALUE))))
    etype = F.when(rating >= 4, F.lit("purchase")).otherwise(F.lit("click"))
    extra = {S.EVENT_TYPE: etype, EPOCH: _tok(3).try_cast("bigint")}
    return _interactions(df, F.array(_canonical_id(_tok(1))), **extra)


def parse_id_list(lines: DataFrame, key: str) -> DataFrame:
    """LightGCN ``org_id remap_id`` lines → ``key`` = remap_id. A non-numeric line 1 is the header."""
    df = _tokenise(lines)
    df = df.filter(~((F.col(LINE_NO) == 1) & ~_all_ints(F.col(_TOK)))).withColumn(S.REASON, _shape_reason(2))
    return _valid_select(df, {key: _canonical_id(_tok(1))})


def parse_ml100k_users(lines: DataFrame) -> DataFrame:
    """``id|age|gender|occupation|zip`` → user_id, age, gender, region (+ bookkeeping, reason)."""
    df = _tokenise(lines, r"\|")
    uid, age = F.trim(_tok(0)), F.trim(_tok(1))
    df = df.withColumn(S.REASON, _first_reason(
        (F.size(_TOK) == 0, R_EMPTY_LINE),
        ((F.size(_TOK) != 5) | ~uid.rlike(_INT_RE) | ~age.rlike(_INT_RE), R_UNPARSEABLE),
        (age.try_cast("int") > 150, R_BAD_VALUE)))
    gender = F.upper(F.trim(_tok(2)))
    return _valid_select(df, {
        S.USER_ID: _canonical_id(uid),
        S.AGE: age.try_cast("int"),
        S.GENDER: F.when(gender.isin("M", "F"), gender).otherwise(F.lit("U")),
        S.REGION: F.nullif(F.upper(F.substring(F.trim(_tok(4)), 1, 3)), F.lit("")),
    })


def parse_ml100k_items(lines: DataFrame) -> DataFrame:
    """``id|title|release|video release|url|19 genre flags`` → item_id, title, category."""
    df = _tokenise(lines, r"\|")
    flags = F.slice(F.col(_TOK), 6, len(ML100K_GENRES))
    iid = F.trim(_tok(0))
    df = df.withColumn(S.REASON, _first_reason(
        (F.size(_TOK) == 0, R_EMPTY_LINE),
        ((F.size(_TOK) != 5 + len(ML100K_GENRES)) | ~iid.rlike(_INT_RE)
         | ~F.forall(flags, lambda x: F.trim(x).isin("0", "1")), R_UNPARSEABLE)))
    names = F.array(*[F.lit(g) for g in ML100K_GENRES])
    chosen = F.filter(F.arrays_zip(flags.alias("f"), names.alias("g")), lambda z: F.trim(z["f"]) == "1")
    genre = F.when(F.size(chosen) > 0, F.concat(F.lit("movie" + S.CATEGORY_SEPARATOR), F.get(chosen, 0)["g"]))
    return _valid_select(df, {
        S.ITEM_ID: _canonical_id(iid),
        S.TITLE: F.nullif(F.trim(F.regexp_replace(_tok(1), r"\s+", " ")), F.lit("")),
        S.CATEGORY: F.coalesce(genre, F.lit("movie")),
    })


def parse_s3rec_attributes(attrs: DataFrame) -> DataFrame:
    """(record_key, attrs array<string>, line_no, source_file, raw_line) → item_id, brand, category.

    Brand rule (module docstring): the first id is the brand unless that id occurs at a later
    position in any valid item's list; the category path is the rest (or all ids when brandless).
    """
    a = F.col(_ATTRS)
    df = attrs.withColumn(S.REASON, _first_reason(
        (~F.col(S.RECORD_KEY).rlike(_INT_RE) | ~_all_ints(a), R_UNPARSEABLE)))
    df = df.withColumn(_ATTRS, F.transform(a, lambda x: x.try_cast("bigint").cast("string")))
    valid = df.filter(F.col(S.REASON).isNull())
    later = valid.select(F.explode(F.slice(a, 2, _MAX_LEN)).alias("_a")).distinct().withColumn("_later", F.lit(True))
    df = df.join(F.broadcast(later), F.get(a, 0) == F.col("_a"), "left")
    is_brand = (F.size(a) > 0) & F.col("_later").isNull()
    rest = F.array_distinct(F.when(is_brand, F.slice(a, 2, _MAX_LEN)).otherwise(a))
    tagged = F.transform(rest, lambda x: F.concat(F.lit("attr_"), x))
    return _valid_select(df, {
        S.ITEM_ID: _canonical_id(F.col(S.RECORD_KEY)),
        S.BRAND: F.when(is_brand, F.concat(F.lit("attr_"), F.get(a, 0))),
        S.CATEGORY: F.nullif(F.array_join(tagged, S.CATEGORY_SEPARATOR), F.lit("")),
    })


def last_per_key(parsed: DataFrame, key: str) -> DataFrame:
    """Valid rows whose key occurs again on a later line get reason ``import_duplicate_id``."""
    later_first = Window.partitionBy(key).orderBy(F.col(S.SOURCE_FILE).desc(), F.col(LINE_NO).desc())
    dup = F.col(S.REASON).isNull() & (F.row_number().over(later_first) > 1)
    return parsed.withColumn(S.REASON, F.when(dup, F.lit(R_DUPLICATE_ID)).otherwise(F.col(S.REASON)))


def _file_name() -> Column:
    return F.element_at(F.split(F.col(S.SOURCE_FILE), "/"), -1)


def to_events(parsed: DataFrame, fmt: str, event_type: str | None = None) -> DataFrame:
    """Valid interactions → CLEAN_EVENTS_SCHEMA. Time: ``_epoch`` when present, else synthetic."""
    ok = parsed.filter(F.col(S.REASON).isNull() & F.col(S.ITEM_ID).isNotNull())
    epoch = F.col(EPOCH) if EPOCH in parsed.columns else F.lit(SYNTHETIC_EPOCH) + F.col(SEQ)
    cols = {
        S.EVENT_ID: F.concat_ws(":", F.lit(fmt), _file_name(), F.col(LINE_NO), F.col(K)),
        S.USER_ID: F.col(S.USER_ID),
        S.ITEM_ID: F.col(S.ITEM_ID),
        S.EVENT_TYPE: F.lit(event_type) if event_type is not None else F.col(S.EVENT_TYPE),
        S.TS: F.timestamp_seconds(epoch),
        S.DT: F.date_add(F.lit("1970-01-01").cast("date"), F.floor(epoch / 86400).cast("int")).cast("string"),
    }
    cols[S.SOURCE_DT] = cols[S.DT]
    return ok.select(*[cols.get(f.name, F.lit(None)).cast(f.dataType).alias(f.name)
                       for f in S.CLEAN_EVENTS_SCHEMA.fields])


def to_test_interactions(parsed: DataFrame, split: str) -> DataFrame:
    """Valid held-out interactions → IMPORT_TEST_SCHEMA with ``split``."""
    ok = parsed.filter(F.col(S.REASON).isNull() & F.col(S.ITEM_ID).isNotNull())
    return ok.select(S.USER_ID, S.ITEM_ID, F.lit(split).alias(SPLIT))


def to_quarantine(parsed: DataFrame, stage: str) -> DataFrame:
    """Rejected lines → QUARANTINE_SCHEMA; record_key ``<file>:<line>``, dt SYNTHETIC_DT."""
    bad = parsed.filter(F.col(S.REASON).isNotNull())
    return bad.select(F.lit(stage).alias(S.STAGE), F.col(S.REASON),
                      F.concat_ws(":", _file_name(), F.col(LINE_NO)).alias(S.RECORD_KEY),
                      F.col(S.RAW_LINE), F.col(S.SOURCE_FILE), F.lit(SYNTHETIC_DT).alias(S.DT))


def to_entities(seen: list[DataFrame], attrs: DataFrame | None, key: str, schema: T.StructType,
                ingested_at: datetime) -> DataFrame:
    """One row per distinct valid ``key`` of ``seen`` and ``attrs``; attributes from ``attrs``
    (deduplicated first, see :func:`last_per_key`), every other column NULL."""
    sources = seen + ([attrs] if attrs is not None else [])
    ids = _union([d.filter(F.col(S.REASON).isNull()).select(key) for d in sources])
    out = ids.filter(F.col(key).isNotNull()).distinct()
    if attrs is not None:
        out = out.join(attrs.filter(F.col(S.REASON).isNull()).drop(*_BOOKKEEPING), key, "left")
    micros = int(ingested_at.timestamp() * 1_000_000)
    fixed = {S.INGESTED_AT: F.timestamp_micros(F.lit(micros))}
    return out.select(*[(F.col(f.name) if f.name in out.columns else fixed.get(f.name, F.lit(None)))
                        .cast(f.dataType).alias(f.name) for f in schema.fields])


# ------------------------------------------------------------------------------ reading


def read_lines(spark, paths: str | list[str]) -> DataFrame:
    """UTF-8 text files → (value, source_file, line_no); line_no is 1-based in each file's order.

    Spark reads a split's lines in order, in one task; ``monotonically_increasing_id`` numbers
    them consecutively there, and the split offsets (``_metadata.file_block_start``) order the
    splits of a file. One small aggregate (rows and first id per split) gives each split's offset.
    ``source_file`` is the path as given.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    raw = spark.read.text(paths).select(
        F.col(_VALUE), F.col("_metadata.file_path").alias("_file"),
        F.col("_metadata.file_block_start").alias("_blk"), F.monotonically_increasing_id().alias("_mid"))
    given = {os.path.abspath(p): p for p in paths}
    offsets, totals = [], {}
    blocks = raw.groupBy("_file", "_blk").agg(F.count(F.lit(1)), F.min("_mid")).collect()
    for uri, blk, n, first_mid in sorted(tuple(r) for r in blocks):
        file_path = given.get(unquote(urlparse(uri).path), uri)
        offsets.append((uri, blk, file_path, totals.get(uri, 0) + 1 - first_mid))
        totals[uri] = totals.get(uri, 0) + n
    off = spark.createDataFrame(offsets, f"_file string, _blk long, {S.SOURCE_FILE} string, _off long")
    # a split's rows are consecutive in one partition, so their ids are consecutive too
    return raw.join(F.broadcast(off), ["_file", "_blk"]).select(
        _VALUE, S.SOURCE_FILE, (F.col("_mid") + F.col("_off")).alias(LINE_NO))


def read_latin1_lines(spark, file_path: str) -> DataFrame:
    """A small ISO-8859-1 text file (read whole) → (value, source_file, line_no)."""
    text = F.decode(F.col("content"), "ISO-8859-1")
    arr = F.split(text, r"\r\n|\r|\n")
    arr = F.when(F.element_at(arr, -1) == "", F.slice(arr, 1, F.size(arr) - 1)).otherwise(arr)
    df = spark.read.format("binaryFile").load(file_path).select(F.posexplode(arr).alias("_pos", _VALUE))
    return df.select(_VALUE, F.lit(file_path).alias(S.SOURCE_FILE), (F.col("_pos") + 1).cast("long").alias(LINE_NO))


def read_s3rec_attributes(spark, file_path: str) -> DataFrame:
    """``{"item": [attr, …], …}`` (small; parsed on the driver) → input of parse_s3rec_attributes."""
    with open(file_path, encoding="utf-8") as fh:
        try:
            mapping = json.load(fh)
        except json.JSONDecodeError as exc:
            raise UsageError(f"path: {file_path!r} is not valid JSON ({exc})") from exc
    if not isinstance(mapping, dict):
        raise UsageError(f"path: {file_path!r} must hold a JSON object item -> [attribute ids], "
                         f"got {type(mapping).__name__}")

    def text(v):
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else json.dumps(v)

    rows = [(str(k), [text(a) for a in v] if isinstance(v, list) else None, i + 1, file_path, json.dumps({k: v}))
            for i, (k, v) in enumerate(mapping.items())]
    schema = (f"{S.RECORD_KEY} string, {_ATTRS} array<string>, {LINE_NO} long, "
              f"{S.SOURCE_FILE} string, {S.RAW_LINE} string")
    return spark.createDataFrame(rows, schema)


def _check_inputs(fmt: str, path: str, lake_dir: str, seed: int) -> dict[str, str]:
    if fmt not in FORMATS:
        raise UsageError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    tables.table_path(lake_dir, tables.CLEAN_EVENTS)  # validates lake_dir
    required, optional = EXPECTED_FILES[fmt]
    expected = f"format {fmt!r} expects {list(required)} (optional {list(optional)})"
    if not isinstance(path, str) or not os.path.isdir(path):
        raise InputNotFoundError(f"path: no dataset folder at {path!r}; {expected}")
    if fmt == "s3rec":
        seqs = sorted(glob.glob(os.path.join(path, "*.txt")))
        if len(seqs) != 1:
            raise InputNotFoundError(f"path: {path!r} holds {len(seqs)} .txt files {seqs}; {expected}")
        name = os.path.splitext(os.path.basename(seqs[0]))[0]
        required, optional = (f"{name}.txt",), (f"{name}_item2attributes.json",)
    missing = [f for f in required if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise InputNotFoundError(f"path: {path!r} lacks required file(s) {missing}; {expected}")
    return {f: os.path.join(path, f) for f in required + optional if os.path.isfile(os.path.join(path, f))}


# ------------------------------------------------------------------------------ per format


def _only(parsed: DataFrame, file_name: str) -> DataFrame:
    return parsed.filter(_file_name() == file_name)


def _build_lightgcn(spark, files, keep):
    both = _cached(parse_lightgcn_lines(read_lines(spark, [files["train.txt"], files["test.txt"]])), keep)
    seen = {S.USER_ID: [both], S.ITEM_ID: [both]}
    quarantine = {tables.QUARANTINE_EVENTS: [to_quarantine(both, "events")]}
    for key, name, stage, qtable in ((S.USER_ID, "user_list.txt", "users", tables.QUARANTINE_USERS),
                                     (S.ITEM_ID, "item_list.txt", "items", tables.QUARANTINE_ITEMS)):
        if name in files:
            ids = _cached(parse_id_list(read_lines(spark, files[name]), key), keep)
            seen[key].append(ids)
            quarantine[qtable] = [to_quarantine(ids, stage)]
    return (to_events(_only(both, "train.txt"), "lightgcn", "purchase"),
            [to_test_interactions(_only(both, "test.txt"), "test")], seen, {}, quarantine)


def _build_ml100k(spark, files, keep):
    ratings = _cached(parse_ml100k_ratings(read_lines(spark, files["u.data"])), keep)
    attrs, quarantine = {}, {tables.QUARANTINE_EVENTS: [to_quarantine(ratings, "events")]}
    if "u.user" in files:
        attrs[S.USER_ID] = last_per_key(parse_ml100k_users(read_lines(spark, files["u.user"])), S.USER_ID)
        quarantine[tables.QUARANTINE_USERS] = [to_quarantine(attrs[S.USER_ID], "users")]
    if "u.item" in files:
        attrs[S.ITEM_ID] = last_per_key(parse_ml100k_items(read_latin1_lines(spark, files["u.item"])), S.ITEM_ID)
        quarantine[tables.QUARANTINE_ITEMS] = [to_quarantine(attrs[S.ITEM_ID], "items")]
    seen = {S.USER_ID: [ratings], S.ITEM_ID: [ratings]}
    return to_events(ratings, "ml100k"), [], seen, attrs, quarantine


def _build_mule(spark, files, keep):
    names = [n for n in list(MULE_BEHAVIOURS) + list(MULE_HELD_OUT) if n in files]
    parsed = _cached(parse_mule_lines(read_lines(spark, [files[n] for n in names])), keep)
    events = [to_events(_only(parsed, n), "mule", t) for n, t in MULE_BEHAVIOURS.items() if n in files]
    test = [to_test_interactions(_only(parsed, n), s) for n, s in MULE_HELD_OUT.items() if n in files]
    seen = {S.USER_ID: [parsed], S.ITEM_ID: [parsed]}
    return _union(events), test, seen, {}, {tables.QUARANTINE_EVENTS: [to_quarantine(parsed, "events")]}


def _build_s3rec(spark, files, keep):
    seq_file = next(f for f in files if f.endswith(".txt"))
    seqs = _cached(parse_s3rec_lines(read_lines(spark, files[seq_file])), keep)
    attrs, quarantine = {}, {tables.QUARANTINE_EVENTS: [to_quarantine(seqs, "events")]}
    json_file = next((f for f in files if f.endswith("_item2attributes.json")), None)
    if json_file is not None:
        items = parse_s3rec_attributes(read_s3rec_attributes(spark, files[json_file]))
        attrs[S.ITEM_ID] = last_per_key(items, S.ITEM_ID)
        quarantine[tables.QUARANTINE_ITEMS] = [to_quarantine(attrs[S.ITEM_ID], "items")]
    seen = {S.USER_ID: [seqs], S.ITEM_ID: [seqs]}
    return to_events(seqs, "s3rec", "purchase"), [], seen, attrs, quarantine


def _cached(df: DataFrame, keep: list[DataFrame]) -> DataFrame:
    keep.append(df.cache())
    return df


def _union(dfs: list[DataFrame]) -> DataFrame:
    return functools.reduce(DataFrame.unionByName, dfs)


def _frames(spark, built, now: datetime) -> dict[str, DataFrame]:
    events, test, seen, attrs, quarantine = built
    frames = {
        tables.CLEAN_EVENTS: events,
        tables.CLEAN_USERS: to_entities(seen[S.USER_ID], attrs.get(S.USER_ID), S.USER_ID, S.CLEAN_USERS_SCHEMA, now),
        tables.CLEAN_ITEMS: to_entities(seen[S.ITEM_ID], attrs.get(S.ITEM_ID), S.ITEM_ID, S.CLEAN_ITEMS_SCHEMA, now),
        IMPORT_TEST: _union(test) if test else spark.createDataFrame([], IMPORT_TEST_SCHEMA),
    }
    for name in _QUARANTINES:
        empty = spark.createDataFrame([], S.QUARANTINE_SCHEMA)
        frames[name] = _union(quarantine[name]) if name in quarantine else empty
    return frames


_QUARANTINES = (tables.QUARANTINE_EVENTS, tables.QUARANTINE_USERS, tables.QUARANTINE_ITEMS)
_BUILDERS = {"lightgcn": _build_lightgcn, "ml100k": _build_ml100k, "mule": _build_mule, "s3rec": _build_s3rec}
_PARTITIONS = {tables.CLEAN_EVENTS: [S.DT], tables.QUARANTINE_EVENTS: [S.DT]}


def import_dataset(spark, fmt: str, path: str, lake_dir: str, seed: int = 0) -> dict:
    """Import the dataset folder ``path`` in format ``fmt`` into the lake at ``lake_dir``.

    Overwrites clean/events, clean/users, clean/items, quarantine/events|users|items and
    IMPORT_TEST, one Delta commit each. ``seed`` is only recorded: the import is deterministic.

    Returns:
        JSON-able report: format, path, seed, events (count by type), users, items,
        test_interactions, quarantined (rows of the three quarantine tables), tables
        ({table name: {version, rows}}).

    Raises:
        ValueError: unknown ``fmt`` or an unreadable attribute file.
        FileNotFoundError: ``path`` is not a folder or lacks a required file.
    """
    files = _check_inputs(fmt, path, lake_dir, seed)
    keep: list[DataFrame] = []
    written = {}
    try:
        frames = _frames(spark, _BUILDERS[fmt](spark, files, keep), datetime.now(timezone.utc))
        for name, df in frames.items():
            res = lake.write_table(df, tables.table_path(lake_dir, name), mode="overwrite",
                                   partition_by=_PARTITIONS.get(name, []),
                                   metadata={"graphlake.job": "import", "import.format": fmt, "import.path": path})
            written[name] = {"version": res.version, "rows": res.rows_added}
    finally:
        for df in keep:
            df.unpersist()
    events_path = tables.table_path(lake_dir, tables.CLEAN_EVENTS)
    by_type = lake.read_table(spark, events_path, version=written[tables.CLEAN_EVENTS]["version"]) \
        .groupBy(S.EVENT_TYPE).count().collect()
    return {
        "format": fmt,
        "path": path,
        "seed": seed,
        "events": {r[S.EVENT_TYPE]: int(r["count"]) for r in sorted(by_type)},
        "users": written[tables.CLEAN_USERS]["rows"],
        "items": written[tables.CLEAN_ITEMS]["rows"],
        "test_interactions": written[IMPORT_TEST]["rows"],
        "quarantined": sum(written[q]["rows"] for q in _QUARANTINES),
        "tables": written,
    }
