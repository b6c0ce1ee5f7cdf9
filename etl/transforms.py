"""Pure ``DataFrame -> DataFrame`` transforms of the log ETL.

Raw lines are parsed with Spark's VARIANT JSON parser, so a field's JSON type is known exactly:
a wrongly typed value becomes a quarantine reason, never a silently nulled column. Every record
gets at most one reason, the first that applies in this order:

``invalid_json`` (not JSON, or not a JSON object) → ``missing_field:<f>`` (absent or JSON null;
fields in contract order) → ``bad_type:<f>`` → ``empty_id:<f>`` → ``id_too_long:<f>`` →
``unknown_event_type`` → ``unparseable_timestamp`` → ``timestamp_out_of_range`` →
``negative_price`` → ``bot_user`` (decided afterwards, over valid events only).

Example:
    >>> parsed = parse_events(raw_lines)             # value, source_file, dt (folder date)
    >>> valid, rejected = split_valid(parsed, EtlRules())
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from graphlake.core.config import parse_iso_utc
from graphlake.etl import schema as S

_VALUE = "value"  # the column spark.read.text produces
_V = "_v"  # the parsed VARIANT
_REASON = S.REASON
_ID_TYPES = ("STRING", "BIGINT", "INT", "SMALLINT", "TINYINT")
_STRING_TYPES = ("STRING",)
SOURCE_DT = S.SOURCE_DT


@dataclass(frozen=True)
class EtlRules:
    """Validation rules of the ETL.

    Args:
        min_ts: earliest accepted event time (ISO-8601, UTC).
        max_ts: latest accepted event time (ISO-8601, UTC).
        max_late_days: an event may be at most this many days older than the folder it arrived in.
        max_future_hours: an event may be at most this many hours after the end of its folder's day.
        bot_max_events_per_day: a user with more valid events than this in one day is a bot:
            all of that user's events of that day are quarantined with ``bot_user``.
        max_id_length: longest accepted id.
    """

    min_ts: str = "2000-01-01T00:00:00Z"
    max_ts: str = "2100-01-01T00:00:00Z"
    max_late_days: int = 30
    max_future_hours: int = 2
    bot_max_events_per_day: int = 1000
    max_id_length: int = S.MAX_ID_LENGTH

    def __post_init__(self):
        lo, hi = parse_iso_utc("min_ts", self.min_ts), parse_iso_utc("max_ts", self.max_ts)
        if lo >= hi:
            raise ValueError(f"min_ts/max_ts: expected min_ts < max_ts, got {self.min_ts!r} >= {self.max_ts!r}")
        for name in ("max_late_days", "max_future_hours", "bot_max_events_per_day", "max_id_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}: expected a non-negative int, got {value!r}")
        if self.max_id_length == 0 or self.bot_max_events_per_day == 0:
            raise ValueError("max_id_length and bot_max_events_per_day: expected > 0, got 0")



# ------------------------------------------------------------------------- field helpers
# Each JSON field is extracted ONCE per record into plain columns (its JSON type, its trimmed
# text, typed values); every check reads those columns. Re-extracting from the VARIANT in each
# check made parsing ~15x slower.


def _t(name: str) -> Column:
    """JSON type of field ``name`` (``STRING``, ``BIGINT``, ``OBJECT<...>``...); NULL when absent or null."""
    return F.col(f"_t_{name}")


def _s(name: str) -> Column:
    """Trimmed text of field ``name`` (JSON text for objects and arrays)."""
    return F.col(f"_s_{name}")


def _x(name: str) -> Column:
    """Typed value of field ``name`` (NULL when absent or not convertible)."""
    return F.col(f"_x_{name}")


def _absent(name: str) -> Column:
    return _t(name).isNull()


def _extract(raw: DataFrame, fields, typed=None, timestamps=()) -> DataFrame:
    """Parse ``value`` as JSON and add ``_t_/_s_`` columns per field, ``_x_`` per typed field."""
    typed = dict(typed or {})
    cols = [F.col(c) for c in raw.columns]
    v = F.try_parse_json(F.col(_VALUE))
    df = raw.select(*cols, v.alias(_V))
    out = [F.col(c) for c in raw.columns]
    out.append((F.col(_V).isNotNull() & F.ltrim(F.col(_VALUE)).startswith("{")).alias("_is_object"))
    for name in fields:
        got = F.expr(f"variant_get({_V}, '$.{name}')")
        present = got.isNotNull() & ~F.expr(f"is_variant_null(variant_get({_V}, '$.{name}'))")
        out.append(F.when(present, F.expr(f"schema_of_variant(variant_get({_V}, '$.{name}'))")).alias(f"_t_{name}"))
        out.append(F.trim(F.expr(f"try_variant_get({_V}, '$.{name}', 'string')")).alias(f"_s_{name}"))
    for name, dtype in typed.items():
        out.append(F.expr(f"try_variant_get({_V}, '$.{name}', '{dtype}')").alias(f"_x_{name}"))
    df = df.select(*out)
    for name in timestamps:
        df = df.withColumn(f"_x_{name}", _parse_ts(name))
    return df


def _is_numeric_type(t: Column) -> Column:
    return t.isin("BIGINT", "INT", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT") | t.startswith("DECIMAL")


def _first_reason(checks: list[tuple[Column, str]]) -> Column:
    """The reason of the first check whose condition holds (NULL if none)."""
    expr = None
    for cond, reason in reversed(checks):
        expr = F.when(cond, F.lit(reason)) if expr is None else F.when(cond, F.lit(reason)).otherwise(expr)
    return expr


def _parse_ts(name: str) -> Column:
    """ISO-8601 strings, or epoch milliseconds as a JSON number or a digits-only string."""
    t, text = _t(name), _s(name)
    millis = F.when(_is_numeric_type(t) | text.rlike(r"^-?\d{10,}$"), text.cast("double").cast("long"))
    from_millis = F.when(millis.isNotNull(), F.timestamp_millis(millis))
    return F.coalesce(from_millis, F.when(t == "STRING", F.try_to_timestamp(text)))


def _structural_checks(fields_required, typed_checks) -> list[tuple[Column, str]]:
    checks: list[tuple[Column, str]] = [(~F.col("_is_object"), S.R_INVALID_JSON)]
    checks += [(_absent(f), S.R_MISSING_FIELD.format(field=f)) for f in fields_required]
    checks += typed_checks
    return checks


def _id_checks(fields, max_len: int) -> list[tuple[Column, str]]:
    bad_type = [(~_t(f).isin(*_ID_TYPES) & ~_absent(f), S.R_BAD_TYPE.format(field=f)) for f in fields]
    empty = [(F.length(_s(f)) == 0, S.R_EMPTY_ID.format(field=f)) for f in fields]
    long_ = [(F.length(_s(f)) > max_len, S.R_ID_TOO_LONG.format(field=f)) for f in fields]
    return bad_type + empty + long_


def _optional_scalar_check(name: str, allowed: tuple[str, ...] | None) -> tuple[Column, str]:
    t = _t(name)
    ok = _is_numeric_type(t) | t.isin(*allowed) if allowed else _is_numeric_type(t)
    return (~_absent(name) & ~ok, S.R_BAD_TYPE.format(field=name))


# ------------------------------------------------------------------------- events


def folder_date(path_col: Column) -> Column:
    """``dt=YYYY-MM-DD`` folder of a raw file path, as a string."""
    return F.regexp_extract(path_col, r"dt=(\d{4}-\d{2}-\d{2})", 1)


def parse_events(raw: DataFrame, rules: EtlRules | None = None) -> DataFrame:
    """Parse raw event lines and attach a quarantine reason (NULL for a valid record).

    Args:
        raw: columns ``value`` (one raw line), ``source_file``, ``dt`` (the folder's date).
        rules: validation rules.

    Returns:
        the clean-event columns plus ``reason``, ``raw_line``, ``source_file``, ``source_dt``
        (folder date); ``dt`` is the event's own UTC date (late records keep their own day).
    """
    rules = rules or EtlRules()
    df = _extract(raw, S.RAW_EVENT_FIELDS, typed={S.PRICE: "double"}, timestamps=(S.TS,))
    ts = _x(S.TS)
    event_type = F.lower(_s(S.EVENT_TYPE))
    price = _x(S.PRICE)
    day_start = F.to_timestamp(F.col(S.DT))
    checks = _structural_checks(
        S.REQUIRED_EVENT_FIELDS,
        _id_checks((S.EVENT_ID, S.USER_ID, S.ITEM_ID), rules.max_id_length)
        + [
            (_t(S.EVENT_TYPE) != "STRING", S.R_BAD_TYPE.format(field=S.EVENT_TYPE)),
            _optional_scalar_check(S.SESSION_ID, _ID_TYPES),
            _optional_scalar_check(S.QUERY, _STRING_TYPES),
            (~_absent(S.PRICE) & price.isNull(), S.R_BAD_TYPE.format(field=S.PRICE)),
            (~event_type.isin(*S.EVENT_TYPES), S.R_UNKNOWN_EVENT_TYPE),
            (ts.isNull(), S.R_BAD_TIMESTAMP),
            (
                (ts < F.to_timestamp(F.lit(rules.min_ts)))
                | (ts >= F.to_timestamp(F.lit(rules.max_ts)))
                | (ts < day_start - F.expr(f"INTERVAL {rules.max_late_days} DAYS"))
                | (ts >= day_start + F.expr(f"INTERVAL {24 + rules.max_future_hours} HOURS")),
                S.R_TS_OUT_OF_RANGE,
            ),
            (price < 0, S.R_NEGATIVE_PRICE),
        ],
    )
    return df.select(
        _s(S.EVENT_ID).alias(S.EVENT_ID),
        _s(S.USER_ID).alias(S.USER_ID),
        _s(S.ITEM_ID).alias(S.ITEM_ID),
        event_type.alias(S.EVENT_TYPE),
        ts.alias(S.TS),
        F.nullif(_s(S.SESSION_ID), F.lit("")).alias(S.SESSION_ID),
        F.nullif(_s(S.QUERY), F.lit("")).alias(S.QUERY),
        price.alias(S.PRICE),
        F.date_format(ts, "yyyy-MM-dd").alias(S.DT),
        _first_reason(checks).alias(_REASON),
        F.col(_VALUE).alias(S.RAW_LINE),
        F.col(S.SOURCE_FILE),
        F.col(S.DT).alias(SOURCE_DT),
    )


def mark_bots(events: DataFrame, rules: EtlRules | None = None) -> DataFrame:
    """Set ``reason = bot_user`` on every valid event of a user-day over the bot threshold.

    Args:
        events: output of :func:`parse_events`.

    Returns:
        the same columns; only ``reason`` of bot events changes.
    """
    rules = rules or EtlRules()
    per_day = Window.partitionBy(S.USER_ID, S.DT)
    valid_count = F.sum(F.when(F.col(_REASON).isNull(), 1).otherwise(0)).over(per_day)
    is_bot = F.col(_REASON).isNull() & (valid_count > rules.bot_max_events_per_day)
    return events.withColumn(_REASON, F.when(is_bot, F.lit(S.R_BOT)).otherwise(F.col(_REASON)))


DUPLICATE_RANK = "_dup_rank"


def drop_duplicate_events(valid: DataFrame, existing: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """Keep each ``event_id`` once.

    The record that stays: one already in the clean table (``existing``, same ``dt``) wins;
    among new records the first by (``source_dt``, ``source_file``, ``raw_line``).

    Args:
        valid: valid parsed events (no reason).
        existing: clean events already stored for the partitions being rewritten, or None.

    Returns:
        (kept, duplicates) — both with the columns of ``valid``.
    """
    order = Window.partitionBy(S.EVENT_ID).orderBy(SOURCE_DT, S.SOURCE_FILE, S.RAW_LINE)
    ranked = valid.withColumn(DUPLICATE_RANK, F.row_number().over(order))
    first = ranked.filter(F.col(DUPLICATE_RANK) == 1).drop(DUPLICATE_RANK)
    dups = ranked.filter(F.col(DUPLICATE_RANK) > 1).drop(DUPLICATE_RANK)
    if existing is not None:
        seen = existing.select(S.EVENT_ID, S.DT).distinct()
        again = first.join(seen, [S.EVENT_ID, S.DT], "left_semi")
        first = first.join(seen, [S.EVENT_ID, S.DT], "left_anti")
        dups = dups.unionByName(again)
    return first, dups


def to_clean_events(events: DataFrame) -> DataFrame:
    """Project valid parsed events onto the clean-events schema."""
    return events.select(*[F.col(f.name).cast(f.dataType) for f in S.CLEAN_EVENTS_SCHEMA.fields])


def to_quarantine(rejected: DataFrame, stage: str, key_col: str, dt_col: str | Column) -> DataFrame:
    """Project rejected records onto the quarantine schema."""
    dt = F.col(dt_col) if isinstance(dt_col, str) else dt_col
    return rejected.select(
        F.lit(stage).alias(S.STAGE),
        F.col(_REASON).alias(S.REASON),
        F.col(key_col).cast("string").alias(S.RECORD_KEY),
        F.col(S.RAW_LINE),
        F.col(S.SOURCE_FILE),
        dt.alias(S.DT),
    )


# ------------------------------------------------------------------------- items and users

LINE_ORDER = "_line_order"


def with_line_order(raw: DataFrame) -> DataFrame:
    """Attach a total order consistent with (file, position in file) to raw text lines.

    ``raw`` must carry ``source_file`` and ``_block_start`` (the split's byte offset); within a
    split Spark reads lines in order, which ``monotonically_increasing_id`` preserves.
    """
    return raw.withColumn(LINE_ORDER, F.struct(S.SOURCE_FILE, "_block_start", F.monotonically_increasing_id()))


def _latest_per_key(df: DataFrame, key: str) -> tuple[DataFrame, DataFrame]:
    """Latest record per key wins: the one that comes last in (file name, line) order."""
    w = Window.partitionBy(key).orderBy(F.col(LINE_ORDER).desc())
    ranked = df.withColumn(DUPLICATE_RANK, F.row_number().over(w))
    return (
        ranked.filter(F.col(DUPLICATE_RANK) == 1).drop(DUPLICATE_RANK),
        ranked.filter(F.col(DUPLICATE_RANK) > 1).drop(DUPLICATE_RANK),
    )


def _normalise_category(col: Column) -> Column:
    levels = F.transform(F.split(col, S.CATEGORY_SEPARATOR), lambda x: F.regexp_replace(F.trim(x), r"\s+", " "))
    kept = F.filter(levels, lambda x: F.length(x) > 0)
    return F.nullif(F.array_join(kept, S.CATEGORY_SEPARATOR), F.lit(""))


def parse_items(raw: DataFrame, rules: EtlRules | None = None) -> DataFrame:
    """Parse raw item lines (``value``, ``source_file``, line order) into items + ``reason``."""
    rules = rules or EtlRules()
    df = _extract(raw, S.RAW_ITEM_FIELDS, typed={S.PRICE: "double", S.IMAGE_VEC: "array<float>"})
    vec_type, vec, price = _t(S.IMAGE_VEC), _x(S.IMAGE_VEC), _x(S.PRICE)
    checks = _structural_checks(
        S.REQUIRED_ITEM_FIELDS,
        _id_checks((S.ITEM_ID,), rules.max_id_length)
        + [_optional_scalar_check(f, _STRING_TYPES) for f in (S.TITLE, S.CATEGORY, S.BRAND)]
        + [
            _optional_scalar_check(S.SHOP_ID, _ID_TYPES),
            (~_absent(S.PRICE) & price.isNull(), S.R_BAD_TYPE.format(field=S.PRICE)),
            (~_absent(S.IMAGE_VEC) & (~vec_type.startswith("ARRAY") | vec.isNull()), S.R_BAD_TYPE.format(field=S.IMAGE_VEC)),
            (price < 0, S.R_NEGATIVE_PRICE),
        ],
    )
    return df.select(
        _s(S.ITEM_ID).alias(S.ITEM_ID),
        F.nullif(F.regexp_replace(_s(S.TITLE), r"\s+", " "), F.lit("")).alias(S.TITLE),
        _normalise_category(_s(S.CATEGORY)).alias(S.CATEGORY),
        F.nullif(_s(S.BRAND), F.lit("")).alias(S.BRAND),
        F.nullif(_s(S.SHOP_ID), F.lit("")).alias(S.SHOP_ID),
        price.alias(S.PRICE),
        vec.alias(S.IMAGE_VEC),
        _first_reason(checks).alias(_REASON),
        F.col(_VALUE).alias(S.RAW_LINE),
        F.col(S.SOURCE_FILE),
        F.col(LINE_ORDER),
    )


GENDERS = {"m": "M", "male": "M", "f": "F", "female": "F"}


def parse_users(raw: DataFrame, rules: EtlRules | None = None) -> DataFrame:
    """Parse raw user lines into users + ``reason``. Gender is normalised to M / F / U."""
    rules = rules or EtlRules()
    df = _extract(raw, S.RAW_USER_FIELDS, typed={S.AGE: "int", S.FOLLOWS: "array<string>"}, timestamps=(S.SIGNUP_TS,))
    age, follows_type, follows, signup = _x(S.AGE), _t(S.FOLLOWS), _x(S.FOLLOWS), _x(S.SIGNUP_TS)
    gender_raw = F.lower(_s(S.GENDER))
    gender = F.coalesce(*[F.when(gender_raw == k, F.lit(v)) for k, v in GENDERS.items()], F.lit("U"))
    checks = _structural_checks(
        S.REQUIRED_USER_FIELDS,
        _id_checks((S.USER_ID,), rules.max_id_length)
        + [
            (~_absent(S.AGE) & (age.isNull() | (age < 0) | (age > 120)), S.R_BAD_TYPE.format(field=S.AGE)),
            _optional_scalar_check(S.GENDER, _STRING_TYPES),
            _optional_scalar_check(S.REGION, _STRING_TYPES),
            (~_absent(S.SIGNUP_TS) & signup.isNull(), S.R_BAD_TIMESTAMP),
            (~_absent(S.FOLLOWS) & (~follows_type.startswith("ARRAY") | follows.isNull()), S.R_BAD_TYPE.format(field=S.FOLLOWS)),
        ],
    )
    return df.select(
        _s(S.USER_ID).alias(S.USER_ID),
        age.alias(S.AGE),
        gender.alias(S.GENDER),
        F.nullif(_s(S.REGION), F.lit("")).alias(S.REGION),
        signup.alias(S.SIGNUP_TS),
        F.filter(F.transform(follows, lambda x: F.trim(x)), lambda x: F.length(x) > 0).alias(S.FOLLOWS),
        _first_reason(checks).alias(_REASON),
        F.col(_VALUE).alias(S.RAW_LINE),
        F.col(S.SOURCE_FILE),
        F.col(LINE_ORDER),
    )


def latest_valid(parsed: DataFrame, key: str, clean_schema, ingested_at: Column) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Split parsed items/users into (clean latest-per-key, rejected, superseded duplicates)."""
    valid = parsed.filter(F.col(_REASON).isNull())
    rejected = parsed.filter(F.col(_REASON).isNotNull())
    latest, superseded = _latest_per_key(valid, key)
    clean = latest.withColumn(S.INGESTED_AT, ingested_at).select(
        *[F.col(f.name).cast(f.dataType) for f in clean_schema.fields]
    )
    return clean, rejected, superseded
