"""Synthetic e-commerce behaviour logs in the raw input contract, generated with Spark.

Layout written under ``out_dir`` (the raw input contract of the ETL)::

    events/dt=YYYY-MM-DD/part-NNNNN.jsonl[.gz]   event_id, user_id, item_id, event_type, ts
                                                 (ISO-8601 string or epoch millis), optional
                                                 session_id, query, price
    items/part-NNNNN.jsonl                       item_id, title, category (a>b>c), brand,
                                                 shop_id, price, optional image_vec
    users/part-NNNNN.jsonl                       user_id, age, gender, region, signup_ts,
                                                 optional follows

Rows are produced per task (one day x one block of users) by ``mapInPandas`` from numpy drawn
with ``default_rng([seed, task])`` (see :mod:`graphlake.etl.generator_events`); Spark builds the JSON text
and writes one file per task, so the same config gives byte-identical files. The last file of
``items/`` and ``users/`` holds a few bad records and *updated* duplicates of earlier records:
the later file (then the later line) is the latest version of a record.

Example:
    >>> from graphlake.core.spark import get_spark
    >>> summary = generate(get_spark(), "/tmp/raw", GeneratorConfig(users=300, items=200, days=2))
    >>> summary["events_total"] > 0, sorted(summary["events_per_day"])
    (True, ['2024-01-01', '2024-01-02'])
"""

from __future__ import annotations

import json
import math
import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from functools import partial

import numpy as np

from graphlake.core.spark import check_session
from graphlake.etl import schema as S
from graphlake.etl.generator_catalog import (
    DAY_MS,
    S_BOTS,
    Catalog,
    build_catalog,
    catalog_summary_counts,
    format_ids,
    id_width,
)
from graphlake.etl.generator_events import (
    K_DUP,
    K_LATE,
    KIND_DUPLICATE,
    KIND_LATE,
    KIND_NAMES,
    KIND_OK,
    ROW_SCHEMA,
    EventContext,
    events_for_task,
    events_per_session,
)
from graphlake.etl.generator_records import ISO_FORMAT, move_parts, write_items, write_text, write_users

EVENTS_PER_FILE = 400_000  # default size of an events part file
MAX_DAYS = 366


def _fail(name: str, expected: str, got) -> ValueError:
    return ValueError(f"{name}: expected {expected}, got {got!r}")


def _check_int(name: str, value, lo: int, hi: int | None = None, optional: bool = False):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < lo or (hi is not None and value > hi):
        raise _fail(name, f"an int in [{lo}, {hi if hi is not None else 'inf'}]", value)


def _check_float(name: str, value, lo: float, hi: float | None = None, lo_open: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if (not math.isfinite(value) or value < lo or (lo_open and value == lo)
            or (hi is not None and value > hi)):
        bounds = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}]"
        raise _fail(name, f"a finite number in {bounds}", value)


@dataclass(frozen=True)
class GeneratorConfig:
    """Size and behaviour of the synthetic logs (validated on construction).

    Args:
        users, items, days: population, catalog size, number of daily partitions (<= 366).
        seed: non-negative int; the same config and seed give byte-identical files.
        start_date: first ``dt`` (``YYYY-MM-DD``).
        shops, brands: counts; ``None`` = about items/20 and items/25.
        categories: branching factor of each level of the category tree; ``(4, 4, 4)`` is a
            3-level tree with 64 leaf categories (items belong to leaves).
        interests_per_user: preferred leaf categories per user.
        interest_share: share of browse events drawn from the user's interests.
        bot_share: share of users that are bots (at least one when ``users >= 100``).
        bot_rate_multiplier, min_bot_events_per_day: a bot makes ``max(multiplier x human
            rate, minimum)`` events a day.
        bad_record_share: share of extra bad / duplicate / late event lines.
        image_dim, image_share: image vector length and share of items that have one.
        events_per_user_per_day: mean events per user and day, bots included
            (``users * days * rate`` ~ events written); ignored when ``target_events`` is set.
        target_events: total events wanted (derives the rate).
        files_per_day: events part files per ``dt``; ``None`` = about one per 400k events.
        compress: write ``.jsonl.gz`` event files.
        follow_share: share of users with a ``follows`` list.
        popularity_exponent: Zipf exponent of item popularity.
        activity_exponent: Pareto exponent of user activity (> 1; smaller = heavier tail).

    Example:
        >>> GeneratorConfig(users=200_000, items=50_000, days=7, target_events=10_000_000).rate
        7.142857142857143
    """

    users: int = 2000
    items: int = 1000
    days: int = 3
    seed: int = 42
    start_date: str = "2024-01-01"
    shops: int | None = None
    brands: int | None = None
    categories: tuple[int, ...] = (4, 4, 4)
    interests_per_user: int = 3
    interest_share: float = 0.85
    bot_share: float = 0.0005
    bot_rate_multiplier: float = 100.0
    min_bot_events_per_day: float = 2000.0
    bad_record_share: float = 0.005
    image_dim: int = 16
    image_share: float = 0.7
    events_per_user_per_day: float = 10.0
    target_events: int | None = None
    files_per_day: int | None = None
    compress: bool = False
    follow_share: float = 0.2
    popularity_exponent: float = 1.0
    activity_exponent: float = 1.8

    def __post_init__(self):
        _check_int("users", self.users, 1)
        _check_int("items", self.items, 1)
        _check_int("days", self.days, 1, MAX_DAYS)
        _check_int("seed", self.seed, 0, (1 << 63) - 1)
        if not isinstance(self.start_date, str):
            raise TypeError(f"start_date: expected a str, got {type(self.start_date).__name__}")
        try:
            date.fromisoformat(self.start_date)
        except ValueError:
            raise _fail("start_date", "a date YYYY-MM-DD", self.start_date) from None
        if len(self.start_date) != 10:
            raise _fail("start_date", "a date YYYY-MM-DD", self.start_date)
        _check_int("shops", self.shops, 1, optional=True)
        _check_int("brands", self.brands, 1, optional=True)
        cats = self.categories
        if not isinstance(cats, (tuple, list)) or not 1 <= len(cats) <= 6:
            raise _fail("categories", "a tuple of 1 to 6 branching factors", cats)
        for level in cats:
            _check_int("categories", level, 1, 64)
        if math.prod(cats) > 100_000:
            raise _fail("categories", "at most 100000 leaf categories", cats)
        object.__setattr__(self, "categories", tuple(cats))
        _check_int("interests_per_user", self.interests_per_user, 1, 20)
        _check_float("interest_share", self.interest_share, 0.0, 1.0)
        _check_float("bot_share", self.bot_share, 0.0, 0.5)
        _check_float("bot_rate_multiplier", self.bot_rate_multiplier, 1.0)
        _check_float("min_bot_events_per_day", self.min_bot_events_per_day, 0.0)
        _check_float("bad_record_share", self.bad_record_share, 0.0, 0.5)
        _check_int("image_dim", self.image_dim, 1, 4096)
        _check_float("image_share", self.image_share, 0.0, 1.0)
        _check_float("events_per_user_per_day", self.events_per_user_per_day, 0.0, lo_open=True)
        _check_int("target_events", self.target_events, 1, optional=True)
        _check_int("files_per_day", self.files_per_day, 1, 10_000, optional=True)
        if not isinstance(self.compress, bool):
            raise TypeError(f"compress: expected a bool, got {type(self.compress).__name__}")
        _check_float("follow_share", self.follow_share, 0.0, 1.0)
        _check_float("popularity_exponent", self.popularity_exponent, 0.0)
        _check_float("activity_exponent", self.activity_exponent, 1.0, 10.0, lo_open=True)

    @property
    def n_shops(self) -> int:
        return self.shops if self.shops is not None else max(1, round(self.items / 20))

    @property
    def n_brands(self) -> int:
        return self.brands if self.brands is not None else max(1, round(self.items / 25))

    @property
    def n_bots(self) -> int:
        n = round(self.users * self.bot_share)
        return max(n, 1) if self.users >= 100 and self.bot_share > 0 else n

    @property
    def rate(self) -> float:
        """Mean events per user per day, bots included."""
        if self.target_events is not None:
            return self.target_events / (self.users * self.days)
        return float(self.events_per_user_per_day)

    def daily_rates(self) -> tuple[float, float]:
        """``(human events/day, bot events/day)`` so that all users average :attr:`rate`."""
        bots, humans = self.n_bots, self.users - self.n_bots
        total = self.users * self.rate
        if humans == 0:
            return 0.0, max(self.rate, self.min_bot_events_per_day)
        human = total / (humans + self.bot_rate_multiplier * bots)
        if self.bot_rate_multiplier * human < self.min_bot_events_per_day:
            human = max((total - self.min_bot_events_per_day * bots) / humans, 0.1 * self.rate)
        return human, max(self.bot_rate_multiplier * human, self.min_bot_events_per_day)

    def resolved_files_per_day(self) -> int:
        if self.files_per_day is not None:
            return min(self.files_per_day, self.users)
        return max(1, min(math.ceil(self.users * self.rate / EVENTS_PER_FILE), self.users))


# ---------------------------------------------------------------- planning (driver, pure)
def day_strings(config: GeneratorConfig) -> list[str]:
    """The ``dt`` values of the window."""
    start = date.fromisoformat(config.start_date).toordinal()
    return [date.fromordinal(start + d).isoformat() for d in range(config.days)]


def bot_indices(config: GeneratorConfig) -> np.ndarray:
    """Sorted user indices of the bots."""
    rng = np.random.default_rng([config.seed, S_BOTS])
    return np.sort(rng.choice(config.users, config.n_bots, replace=False)).astype(np.int64)


def _slot_plan(expected: np.ndarray, task_day: np.ndarray, share: float, days: int) -> tuple:
    """Kind codes of the extra rows of each task: cycled so that every kind occurs."""
    n_kinds = len(KIND_NAMES) - 1
    total = float(expected.sum())
    budget = round(share * total)
    if share > 0 and total >= 10_000:
        budget = max(budget, 3 * n_kinds)
    cum = np.round(np.cumsum(expected) / max(total, 1e-9) * budget).astype(np.int64)
    counts = np.diff(np.concatenate([[0], cum]))
    offsets = cum - counts
    slots = [1 + (o + np.arange(c)) % n_kinds for o, c in zip(offsets, counts)]
    slots = [np.where((s == K_LATE) & (task_day[t] == 0), K_DUP, s) for t, s in enumerate(slots)]
    if budget >= n_kinds:  # make sure every kind is there (late needs a day >= 1)
        have = np.bincount(np.concatenate(slots), minlength=len(KIND_NAMES))
        for kind in range(1, len(KIND_NAMES)):
            if have[kind] or (kind == K_LATE and days < 2):
                continue
            ok = [t for t in range(len(slots)) if kind != K_LATE or task_day[t] > 0]
            t = max(ok, key=lambda i: len(slots[i]))
            for i, old in enumerate(slots[t]):
                if have[old] > 1:
                    slots[t][i], have[old], have[kind] = kind, have[old] - 1, 1
                    break
    return tuple(s.astype(np.int8) for s in slots)


def plan_events(config: GeneratorConfig, catalog: Catalog) -> EventContext:
    """Build the :class:`EventContext` (tasks, rates, bad-record slots) for ``config``."""
    days = day_strings(config)
    start_ms = _window_start_ms(config)
    weekday = np.array([date.fromisoformat(d).weekday() for d in days])
    factor = np.select([weekday == 4, weekday == 5, weekday == 6], [1.1, 1.2, 1.15], 1.0)
    factor = factor / factor.mean()
    files = config.resolved_files_per_day()
    bounds = np.array([b * config.users // files for b in range(files + 1)], dtype=np.int64)
    bots = bot_indices(config)
    bots_per_block = np.diff(np.searchsorted(bots, bounds))
    human, bot = config.daily_rates()
    per_block = (np.diff(bounds) - bots_per_block) * human + bots_per_block * bot
    task_day = np.repeat(np.arange(config.days), files)
    expected = per_block[np.tile(np.arange(files), config.days)] * factor[task_day]
    return EventContext(
        seed=config.seed,
        n_users=config.users,
        user_width=id_width(config.users),
        item_width=id_width(config.items),
        catalog=catalog,
        interests_per_user=config.interests_per_user,
        interest_share=config.interest_share,
        activity_exponent=config.activity_exponent,
        sessions_per_activity=human / events_per_session(),
        bot_daily=bot,
        bots=bots,
        day_start_ms=start_ms + DAY_MS * np.arange(config.days, dtype=np.int64),
        day_factor=factor,
        task_day=task_day,
        task_lo=np.tile(bounds[:-1], config.days),
        task_hi=np.tile(bounds[1:], config.days),
        task_slots=_slot_plan(expected, task_day, config.bad_record_share, config.days),
    )


# ---------------------------------------------------------------- Spark side
def _events_udf(ctx: EventContext, batches):
    for batch in batches:
        for task in batch["id"].tolist():
            frame = events_for_task(ctx, int(task))
            for lo in range(0, max(len(frame), 1), 100_000):
                yield frame.iloc[lo : lo + 100_000]


def _id_col(F, column: str, prefix: str, width: int):
    return F.concat(F.lit(prefix), F.lpad(F.col(column).cast("string"), width, "0"))


def _hex_col(F, column: str):
    return F.lower(F.lpad(F.hex(F.col(column)), 16, "0"))


def event_line_column(ctx: EventContext):
    """Spark column with the JSON text of each generated row (the raw text for bad rows).

    Generated strings are JSON-safe (ids, hex, lowercase words), so the line is concatenated
    directly: ``ts`` must be either a quoted ISO string or a bare number, which ``to_json``
    cannot mix in one column.
    """
    from pyspark.sql import functions as F

    def key(name: str, first: bool = False) -> str:
        return ("{" if first else ",") + json.dumps(name) + ":"

    etype = F.element_at(F.array(*[F.lit(t) for t in S.EVENT_TYPES]), F.col("etype") + 1)
    iso = F.date_format(F.timestamp_millis(F.col("ts")), ISO_FORMAT)
    ts_text = F.when(F.col("ts_iso"), F.concat(F.lit('"'), iso, F.lit('"'))).otherwise(
        F.col("ts").cast("string"))
    line = F.concat_ws(
        "",
        F.lit(key(S.EVENT_ID, True) + '"'), _hex_col(F, "eid"),
        F.lit('"' + key(S.USER_ID) + '"'), _id_col(F, "user", "u", ctx.user_width),
        F.lit('"' + key(S.ITEM_ID) + '"'), _id_col(F, "item", "i", ctx.item_width),
        F.lit('"' + key(S.EVENT_TYPE) + '"'), etype,
        F.lit('"' + key(S.TS)), ts_text,
        F.when(F.col("has_sess"), F.concat(F.lit(key(S.SESSION_ID) + '"S'), _hex_col(F, "sess"),
                                           F.lit('"'))),
        F.when(F.col("query").isNotNull(),
               F.concat(F.lit(key(S.QUERY) + '"'), F.col("query"), F.lit('"'))),
        F.when(F.col("price").isNotNull() & ~F.isnan("price"),
               F.concat(F.lit(key(S.PRICE)), F.col("price").cast("string"))),
        F.lit("}"),
    )
    return F.coalesce(F.col("bad_line"), line)


@contextmanager
def _utc_session(spark):
    key = "spark.sql.session.timeZone"
    old = spark.conf.get(key)
    spark.conf.set(key, "UTC")
    try:
        yield
    finally:
        spark.conf.set(key, old)




def _window_start_ms(config: GeneratorConfig) -> int:
    start = datetime.fromisoformat(config.start_date).replace(tzinfo=timezone.utc)
    return int(start.timestamp() * 1000)


def _write_events(spark, ctx: EventContext, config: GeneratorConfig, root: str,
                  staging: str) -> dict:
    """Generate and write the events; counts come from a Spark ``Observation`` of the write."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    n_tasks = len(ctx.task_day)
    rows = spark.range(0, n_tasks, 1, n_tasks).mapInPandas(partial(_events_udf, ctx), ROW_SCHEMA)
    observation = Observation("graphlake_generator")
    metrics = [F.count(F.lit(1)).alias("total")]
    metrics += [F.sum(F.when(F.col("kind") == k, 1).otherwise(0)).alias(f"kind_{k}")
                for k in range(len(KIND_NAMES))]
    metrics += [F.sum(F.when(F.col("day") == d, 1).otherwise(0)).alias(f"day_{d}")
                for d in range(config.days)]
    lines = rows.observe(observation, *metrics).select(event_line_column(ctx).alias("value"))
    files = write_text(lines, staging, config.compress)
    days = day_strings(config)
    files_per_day = config.resolved_files_per_day()
    out = []
    for d, dt in enumerate(days):  # every dt folder exists, even when a day wrote nothing
        folder = os.path.join(root, S.RAW_EVENTS_DIR, f"{S.DT}={dt}")
        mine = [(p, f) for p, f in files if int(ctx.task_day[p]) == d]
        out += move_parts(mine, folder, ".jsonl.gz" if config.compress else ".jsonl",
                          number=lambda p: p % files_per_day)
    got = observation.get
    kinds = {name: int(got.get(f"kind_{k}") or 0) for k, name in enumerate(KIND_NAMES)}
    return {
        "events_total": int(got["total"]),
        "events_valid": kinds.pop(KIND_OK),
        "events_per_day": {dt: int(got.get(f"day_{d}") or 0) for d, dt in enumerate(days)},
        "bad_counts": kinds,
        "duplicates": kinds[KIND_DUPLICATE],
        "late": kinds[KIND_LATE],
        "event_files": out,
    }


def generate(spark, out_dir: str, config: GeneratorConfig) -> dict:
    """Write synthetic events, items and users under ``out_dir`` (raw input contract).

    Existing ``events/``, ``items/`` and ``users/`` folders under ``out_dir`` are replaced.

    Args:
        spark: a SparkSession (``graphlake.core.spark.get_spark()``).
        out_dir: local folder to write into (created when missing).
        config: a :class:`GeneratorConfig`.

    Returns:
        JSON-able summary: ``events_total`` (lines written), ``events_valid`` (good lines),
        ``events_per_day`` ({dt: lines}), ``bad_counts`` ({kind: lines}; kinds are the ETL
        quarantine reasons plus ``duplicate_event_id`` and ``late_event``), ``duplicates``,
        ``late``, ``users``, ``items``, ``shops``, ``brands``, ``categories`` (leaf categories),
        ``category_nodes``, ``bots`` (bot user ids), ``item_bad_counts``, ``user_bad_counts``,
        ``updated_items`` / ``updated_users`` (ids re-emitted with a newer record), ``days``,
        ``paths`` and ``config``.

    Example:
        >>> s = generate(spark, "/tmp/raw", GeneratorConfig(users=300, items=200, days=2))
        >>> s["paths"]["events"]
        '/tmp/raw/events'
    """
    check_session(spark)
    if not isinstance(out_dir, (str, os.PathLike)) or not os.fspath(out_dir):
        raise TypeError(f"out_dir: expected a non-empty path, got {out_dir!r}")
    if not isinstance(config, GeneratorConfig):
        raise TypeError(f"config: expected a GeneratorConfig, got {type(config).__name__}")
    root = os.path.abspath(os.fspath(out_dir))
    if "://" in os.fspath(out_dir):
        raise ValueError(f"out_dir: expected a local folder, got {out_dir!r}")
    catalog = build_catalog(config.seed, config.items, config.n_shops, config.n_brands,
                            config.categories, config.image_dim, config.image_share,
                            config.popularity_exponent)
    ctx = plan_events(config, catalog)
    paths = {name: os.path.join(root, name)
             for name in (S.RAW_EVENTS_DIR, S.RAW_ITEMS_DIR, S.RAW_USERS_DIR)}
    staging = os.path.join(root, "_generator_staging")
    for folder in (*paths.values(), staging):
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(root, exist_ok=True)
    try:
        with _utc_session(spark):
            items = write_items(spark, catalog, config, paths[S.RAW_ITEMS_DIR], staging)
            users = write_users(spark, config, _window_start_ms(config), paths[S.RAW_USERS_DIR],
                                staging)
            events = _write_events(spark, ctx, config, root, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    cfg = asdict(config)
    cfg["categories"] = list(config.categories)
    return {
        **{k: v for k, v in events.items() if k != "event_files"},
        "users": config.users,
        **catalog_summary_counts(catalog),
        "bots": format_ids("u", ctx.bots, ctx.user_width),
        "item_bad_counts": items["bad_counts"],
        "user_bad_counts": users["bad_counts"],
        "updated_items": items["updated"],
        "updated_users": users["updated"],
        "days": day_strings(config),
        "paths": {"root": root, **paths, "event_files": events["event_files"],
                  "item_files": items["files"], "user_files": users["files"]},
        "config": cfg,
    }
