"""Per-task event generation of the synthetic behaviour-log generator (vectorised numpy).

One *task* is one (day, block of users) pair; :func:`events_for_task` turns it into a pandas
frame of typed event rows (plus the raw text of the bad lines), drawn from a
``numpy.random.default_rng([seed, task])`` generator, so the output depends only on the config
and the task, never on scheduling. Spark turns the rows into JSON lines (see ``graphlake.etl.generator``).

Example:
    >>> from graphlake.etl.generator import GeneratorConfig, plan_events
    >>> from graphlake.etl.generator_catalog import build_catalog
    >>> config = GeneratorConfig(users=300, items=200, days=2)
    >>> ctx = plan_events(config, build_catalog(config.seed, 200, 10, 8, (4, 4, 4), 16, 0.7, 1.0))
    >>> frame = events_for_task(ctx, 0)
    >>> list(frame.columns[:4])
    ['user', 'item', 'etype', 'ts']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from graphlake.etl.generator_catalog import (
    DAY_MS,
    S_BAD,
    S_EVENT,
    S_LATE,
    S_SESSION,
    Catalog,
    format_ids,
    hash64,
    user_activity,
    user_interests,
)
from graphlake.etl.schema import (
    EVENT_ID,
    EVENT_TYPE,
    EVENT_TYPES,
    ITEM_ID,
    PRICE,
    R_BAD_TIMESTAMP,
    R_BAD_TYPE,
    R_EMPTY_ID,
    R_ID_TOO_LONG,
    R_INVALID_JSON,
    R_MISSING_FIELD,
    R_TS_OUT_OF_RANGE,
    R_UNKNOWN_EVENT_TYPE,
    REQUIRED_EVENT_FIELDS,
    SESSION_ID,
    TS,
    USER_ID,
)

# ---------------------------------------------------------------- record kinds
KIND_OK = "ok"
KIND_DUPLICATE = "duplicate_event_id"  # exact duplicate line re-emitted
KIND_LATE = "late_event"  # ts of an earlier day, written in a later day's folder
_ID_FIELDS = (EVENT_ID, USER_ID, ITEM_ID)
BAD_KINDS = (
    R_INVALID_JSON,
    *(R_MISSING_FIELD.format(field=f) for f in REQUIRED_EVENT_FIELDS),
    R_UNKNOWN_EVENT_TYPE,
    R_BAD_TIMESTAMP,
    R_TS_OUT_OF_RANGE,
    *(R_EMPTY_ID.format(field=f) for f in _ID_FIELDS),
    *(R_ID_TOO_LONG.format(field=f) for f in _ID_FIELDS),
    R_BAD_TYPE.format(field=PRICE),
    R_BAD_TYPE.format(field=USER_ID),
)
KIND_NAMES = (KIND_OK, *BAD_KINDS, KIND_DUPLICATE, KIND_LATE)  # row column `kind` = index
K_DUP, K_LATE = len(KIND_NAMES) - 2, len(KIND_NAMES) - 1

CLICK, VIEW, CART, FAV, PURCHASE = (EVENT_TYPES.index(t) for t in
                                    ("click", "view", "cart", "fav", "purchase"))

# ---------------------------------------------------------------- behaviour parameters
MEAN_BROWSE = 6.0  # mean click/view events per session (geometric, capped at MAX_BROWSE)
MAX_BROWSE = 100
CLICK_SHARE = 0.65  # browse events that are clicks (the rest are views)
CART_RATE, PURCHASE_RATE, FAV_RATE = 0.10, 0.30, 0.05  # per click, per cart, per click
SEARCH_SHARE = 0.30  # sessions that start with a search query
SESSIONLESS_SHARE = 0.03  # sessions logged without a session_id
PRICE_ON_BROWSE = 0.30  # click/view events that carry the price shown
ISO_SHARE = 0.40  # events whose ts is an ISO-8601 string (the rest: epoch millis)
GAP_MS = 45_000.0  # mean gap between events of a session
FUNNEL_RESERVE_MS = 20 * 60_000  # room left at the end of a day for a session's funnel
BOT_SESSION_EVENTS = 300
HOURLY = np.array([2, 1.2, .8, .6, .6, .8, 1.5, 2.5, 3.5, 4, 4.2, 4.5, 5, 4.8, 4.5, 4.4, 4.6, 5,
                   5.5, 6.5, 7.2, 7, 5.5, 3.5])
HOURLY = HOURLY / HOURLY.sum()
ROW_SCHEMA = ("user long, item long, etype byte, ts long, has_sess boolean, sess long, "
              "query string, price double, ts_iso boolean, eid long, kind byte, day short, "
              "bad_line string")


def events_per_session() -> float:
    """Expected events of one human session: browse events plus the funnel they trigger."""
    q = 1.0 / MEAN_BROWSE
    browse = (1.0 - (1.0 - q) ** MAX_BROWSE) / q  # mean of min(Geometric(q), MAX_BROWSE)
    clicks = browse * CLICK_SHARE + SEARCH_SHARE * (1.0 - CLICK_SHARE)
    return browse + clicks * (CART_RATE * (1.0 + PURCHASE_RATE) + FAV_RATE)


@dataclass(frozen=True)
class EventContext:
    """Everything a task needs; built on the driver, shipped in the mapInPandas closure.

    ``task_*`` arrays are indexed by task id; ``task_slots[t]`` holds the kind codes of the
    extra (bad, duplicate, late) rows task ``t`` must emit.
    """

    seed: int
    n_users: int
    user_width: int
    item_width: int
    catalog: Catalog
    interests_per_user: int
    interest_share: float
    activity_exponent: float
    sessions_per_activity: float
    bot_daily: float
    bots: np.ndarray
    day_start_ms: np.ndarray
    day_factor: np.ndarray
    task_day: np.ndarray
    task_lo: np.ndarray
    task_hi: np.ndarray
    task_slots: tuple


def _empty(n: int) -> dict:
    return {"user": np.zeros(n, np.int64), "item": np.zeros(n, np.int64),
            "etype": np.zeros(n, np.int8), "ts": np.zeros(n, np.int64),
            "sess": np.zeros(n, np.int64), "has_sess": np.zeros(n, bool),
            "query": np.full(n, None, object), "price": np.full(n, np.nan)}


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _human_events(ctx: EventContext, rng, users: np.ndarray, day: int, sess_base: int) -> dict:
    """Sessions of normal users: interest-driven browsing plus click→cart→purchase funnels."""
    cat = ctx.catalog
    lam = ctx.sessions_per_activity * ctx.day_factor[day] * user_activity(
        ctx.seed, users, ctx.activity_exponent)
    n_sess = rng.poisson(lam)
    n_s = int(n_sess.sum())
    if n_s == 0:
        return _empty(0)
    s_user = np.repeat(np.arange(len(users)), n_sess)
    s_len = np.minimum(rng.geometric(1.0 / MEAN_BROWSE, n_s), MAX_BROWSE)
    n = int(s_len.sum())
    e_sess = np.repeat(np.arange(n_s), s_len)
    starts = np.cumsum(s_len) - s_len
    gaps = rng.exponential(GAP_MS, n) + 1000.0
    gaps[starts] = 0.0
    cs = np.cumsum(gaps)
    offset = cs - np.repeat(cs[starts], s_len)
    duration = offset[starts + s_len - 1]
    begin = rng.choice(24, n_s, p=HOURLY) * 3_600_000.0 + rng.random(n_s) * 3_600_000.0
    begin = np.maximum(np.minimum(begin, DAY_MS - duration - FUNNEL_RESERVE_MS), 0.0)
    ts = (ctx.day_start_ms[day] + begin[e_sess] + offset).astype(np.int64)

    # latent interests: a session focuses on one interest; some events stray
    interests = user_interests(ctx.seed, users, cat, ctx.interests_per_user)
    k = interests.shape[1]
    focus_p = np.array([0.6 ** j for j in range(k)])
    focus = rng.choice(k, n_s, p=focus_p / focus_p.sum())
    e_user = s_user[e_sess]
    r = rng.random(n)
    leaf = np.where(r < ctx.interest_share * 0.85, interests[e_user, focus[e_sess]],
                    interests[e_user, rng.integers(0, k, n)])
    leaf = np.where(r < ctx.interest_share, leaf, cat.random_leaves(rng.random(n)))
    item = cat.sample_items(leaf, rng.random(n))
    etype = np.where(rng.random(n) < CLICK_SHARE, CLICK, VIEW).astype(np.int8)
    query = np.full(n, None, dtype=object)
    search = starts[rng.random(n_s) < SEARCH_SHARE]
    etype[search] = CLICK
    query[search] = cat.leaf_queries[leaf[search], rng.integers(0, cat.leaf_queries.shape[1],
                                                                len(search))]
    price = np.where(rng.random(n) < PRICE_ON_BROWSE, cat.item_price[item], np.nan)
    sess = e_sess + sess_base
    has_sess = (rng.random(n_s) >= SESSIONLESS_SHARE)[e_sess]
    browse = {"user": users[e_user], "item": item, "etype": etype, "ts": ts, "sess": sess,
              "has_sess": has_sess, "query": query, "price": price}

    clicks = np.flatnonzero(etype == CLICK)
    carts = clicks[rng.random(len(clicks)) < CART_RATE]
    cart_ts = ts[carts] + 5_000 + rng.exponential(60_000.0, len(carts)).astype(np.int64)
    buy = rng.random(len(carts)) < PURCHASE_RATE
    buy_ts = cart_ts[buy] + 10_000 + rng.exponential(120_000.0, int(buy.sum())).astype(np.int64)
    favs = clicks[rng.random(len(clicks)) < FAV_RATE]
    fav_ts = ts[favs] + 2_000 + rng.exponential(20_000.0, len(favs)).astype(np.int64)
    parts = [browse]
    for src, new_ts, code in ((carts, cart_ts, CART), (carts[buy], buy_ts, PURCHASE),
                              (favs, fav_ts, FAV)):
        disc = rng.choice(np.array([1.0, 1.0, 0.95, 0.9]), len(src))
        part = {key: val[src] for key, val in browse.items()}
        part.update(etype=np.full(len(src), code, np.int8), ts=new_ts,
                    query=np.full(len(src), None, object),
                    price=np.round(cat.item_price[item[src]] * disc, 2) if code != FAV
                    else np.full(len(src), np.nan))
        parts.append(part)
    out = _concat(parts)
    out["ts"] = np.minimum(out["ts"], ctx.day_start_ms[day] + DAY_MS - 1)
    return out


def _bot_events(ctx: EventContext, rng, bots: np.ndarray, day: int, sess_base: int) -> dict:
    """Crawler-like bots: thousands of uniform random clicks spread over the whole day."""
    counts = rng.poisson(ctx.bot_daily * ctx.day_factor[day], len(bots))
    n = int(counts.sum())
    if n == 0:
        return _empty(0)
    owner = np.repeat(np.arange(len(bots)), counts)
    rank = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    ts = rng.integers(0, DAY_MS, n)
    ts = ts[np.lexsort((ts, owner))]  # each bot's events in time order
    out = _empty(n)
    out.update(user=bots[owner], item=rng.integers(0, ctx.catalog.n_items, n),
               etype=np.where(rng.random(n) < 0.9, CLICK, VIEW).astype(np.int8),
               ts=ctx.day_start_ms[day] + ts,
               sess=sess_base + owner * 100_000 + rank // BOT_SESSION_EVENTS,
               has_sess=np.ones(n, bool))
    return out


def iso_millis(ms: int) -> str:
    dt = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _hex(value) -> str:
    return f"{int(value) & ((1 << 64) - 1):016x}"


def bad_line(kind: str, row: dict, rng) -> str:
    """Raw text of one bad record of ``kind`` derived from a good event ``row``.

    ``row`` holds the formatted JSON fields of a good event; the result is what the ETL must
    quarantine with reason ``kind`` (one of :data:`BAD_KINDS`).
    """
    rec = dict(row)
    if kind.startswith(R_MISSING_FIELD.format(field="")):
        rec.pop(kind.split(":", 1)[1])
    elif kind == R_UNKNOWN_EVENT_TYPE:
        rec[EVENT_TYPE] = str(rng.choice(["scroll", "add_to_wishlist", "impression", "share"]))
    elif kind == R_BAD_TIMESTAMP:
        rec[TS] = str(rng.choice(["not-a-timestamp", "2024-13-45T25:61:00Z", "yesterday",
                                  "17O4067200000"]))
    elif kind == R_TS_OUT_OF_RANGE:
        rec[TS] = [5_000, "1970-01-01T00:00:05.000Z", 4_102_444_800_000,
                   "2100-01-01T00:00:00.000Z"][int(rng.integers(0, 4))]
    elif kind.startswith(R_EMPTY_ID.format(field="")):
        rec[kind.split(":", 1)[1]] = ""
    elif kind.startswith(R_ID_TOO_LONG.format(field="")):
        field = kind.split(":", 1)[1]
        rec[field] = rec[field] + "x" * int(rng.integers(129, 200))
    elif kind == R_BAD_TYPE.format(field=PRICE):
        rec[PRICE] = str(rng.choice(["abc", "N/A", "12,50 EUR"]))
    elif kind == R_BAD_TYPE.format(field=USER_ID):
        rec[USER_ID] = {"id": rec[USER_ID]}
    text = json.dumps(rec, separators=(",", ":"))
    if kind == R_INVALID_JSON:
        text = text[: int(rng.integers(5, len(text) - 1))]
    return text


def _extras(ctx: EventContext, rng, rows: dict, task: int, slots: np.ndarray) -> tuple:
    """Duplicate, late and bad rows derived from random good rows (``slots``: kind codes)."""
    n_good = len(rows["ts"])
    if n_good == 0 or len(slots) == 0:
        return _empty(0), np.zeros(0, np.int8), np.zeros(0, object), np.zeros(0, np.int64)
    day = int(ctx.task_day[task])
    if day == 0:  # nothing earlier to be late for
        slots = np.where(slots == K_LATE, K_DUP, slots)
    src = rng.integers(0, n_good, len(slots))
    extra = {key: val[src].copy() for key, val in rows.items()}
    lines = np.full(len(slots), None, dtype=object)
    seq = (np.int64(task) << np.int64(32)) + np.arange(len(slots), dtype=np.int64)
    late = np.flatnonzero(slots == K_LATE)
    extra["ts"][late] -= DAY_MS * rng.integers(1, min(day, 2) + 1, len(late))
    extra["has_sess"][late] = False
    extra["eid"][late] = hash64(ctx.seed, S_LATE, seq[late]).view(np.int64)
    types = np.asarray(EVENT_TYPES, dtype=object)
    for i in np.flatnonzero(slots < K_DUP):
        r = {EVENT_ID: _hex(hash64(ctx.seed, S_BAD, seq[i : i + 1])[0]),
             USER_ID: format_ids("u", extra["user"][i], ctx.user_width)[0],
             ITEM_ID: format_ids("i", extra["item"][i], ctx.item_width)[0],
             EVENT_TYPE: types[extra["etype"][i]],
             TS: iso_millis(int(extra["ts"][i])) if extra["ts_iso"][i] else int(extra["ts"][i])}
        if extra["has_sess"][i]:
            r[SESSION_ID] = "S" + _hex(extra["sess"][i])
        if not np.isnan(extra["price"][i]):
            r[PRICE] = float(extra["price"][i])
        lines[i] = bad_line(KIND_NAMES[int(slots[i])], r, rng)
    return extra, slots.astype(np.int8), lines, rows["ts"][src]


def events_for_task(ctx: EventContext, task: int) -> pd.DataFrame:
    """Generate the rows of one task (day, user block), in arrival order.

    Args:
        ctx: the shared :class:`EventContext`.
        task: task id (index into ``ctx.task_*``).

    Returns:
        pandas DataFrame with the columns of :data:`ROW_SCHEMA`: typed fields of each event,
        ``kind`` (index into :data:`KIND_NAMES`) and ``bad_line`` (raw text of a bad record,
        else None). Duplicates and late rows are typed rows; ``eid`` is a 64-bit event id.
    """
    rng = np.random.default_rng([ctx.seed, 1, int(task)])
    day, lo, hi = int(ctx.task_day[task]), int(ctx.task_lo[task]), int(ctx.task_hi[task])
    users = np.arange(lo, hi, dtype=np.int64)
    is_bot = np.isin(users, ctx.bots)
    sess_base = int(hash64(ctx.seed, S_SESSION, [task])[0] >> np.uint64(24))
    human = _human_events(ctx, rng, users[~is_bot], day, sess_base)
    bots = _bot_events(ctx, rng, users[is_bot], day, sess_base + (1 << 36))
    rows = _concat([human, bots])
    order = np.argsort(rows["ts"], kind="stable")
    rows = {key: val[order] for key, val in rows.items()}
    n = len(rows["ts"])
    rows["sess"] = hash64(ctx.seed, S_SESSION, rows["sess"]).view(np.int64)
    rows["ts_iso"] = rng.random(n) < ISO_SHARE
    seq = (np.int64(task) << np.int64(32)) + np.arange(n, dtype=np.int64)
    rows["eid"] = hash64(ctx.seed, S_EVENT, seq).view(np.int64)
    extra, kinds, lines, pos = _extras(ctx, rng, rows, task, np.asarray(ctx.task_slots[task]))
    allrows = _concat([rows, extra]) if len(kinds) else rows
    arrival = np.concatenate([rows["ts"], pos])
    order = np.argsort(arrival, kind="stable")
    frame = pd.DataFrame({key: val[order] for key, val in allrows.items()})
    frame["kind"] = np.concatenate([np.zeros(n, np.int8), kinds])[order]
    frame["day"] = np.int16(day)
    frame["bad_line"] = np.concatenate([np.full(n, None, object), lines])[order]
    return frame[[c.split()[0] for c in ROW_SCHEMA.split(", ")]]
