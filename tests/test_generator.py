"""Synthetic log generator: contract layout, realism, bad records and determinism."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import Counter, defaultdict
from datetime import datetime, timezone

import numpy as np
import pytest

from graphlake.etl import schema as S
from graphlake.etl.generator import GeneratorConfig, generate
from graphlake.etl.generator_events import BAD_KINDS, KIND_DUPLICATE, KIND_LATE

SMALL = GeneratorConfig(users=300, items=200, days=2, target_events=15_000, seed=7)


def _read_lines(path: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return handle.read().splitlines()


def _parse_ts(value):
    """Epoch millis of a raw ts, or a reason string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return S.R_BAD_TIMESTAMP
    if isinstance(value, str):
        try:
            ms = datetime.fromisoformat(value).timestamp() * 1000
        except ValueError:
            return S.R_BAD_TIMESTAMP
    else:
        ms = value
    if not 946_684_800_000 <= ms < 2_524_608_000_000:  # [2000, 2050)
        return S.R_TS_OUT_OF_RANGE
    return int(ms)


def classify(line: str, dt: str, seen: set):
    """Reference classification of one raw event line: (kind, record or None)."""
    if line in seen:
        return KIND_DUPLICATE, None
    seen.add(line)
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return S.R_INVALID_JSON, None
    for field in S.REQUIRED_EVENT_FIELDS:
        if field not in rec:
            return S.R_MISSING_FIELD.format(field=field), rec
    for field in (S.EVENT_ID, S.USER_ID, S.ITEM_ID):
        if not isinstance(rec[field], str):
            return S.R_BAD_TYPE.format(field=field), rec
        if rec[field] == "":
            return S.R_EMPTY_ID.format(field=field), rec
        if len(rec[field]) > S.MAX_ID_LENGTH:
            return S.R_ID_TOO_LONG.format(field=field), rec
    if rec[S.EVENT_TYPE] not in S.EVENT_TYPES:
        return S.R_UNKNOWN_EVENT_TYPE, rec
    ms = _parse_ts(rec[S.TS])
    if isinstance(ms, str):
        return ms, rec
    if S.PRICE in rec and not isinstance(rec[S.PRICE], (int, float)):
        return S.R_BAD_TYPE.format(field=S.PRICE), rec
    rec["_ms"] = ms
    day = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).date().isoformat()
    if day != dt:
        return (KIND_LATE if day < dt else "future"), rec
    return "ok", rec


@pytest.fixture(scope="module")
def small(spark, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("gen") / "raw")
    summary = generate(spark, out, SMALL)
    kinds, good, seen = Counter(), [], set()
    for path in summary["paths"]["event_files"]:
        dt = re.search(r"dt=(\d{4}-\d{2}-\d{2})", path).group(1)
        for line in _read_lines(path):
            kind, rec = classify(line, dt, seen)
            kinds[kind] += 1
            if kind == "ok":
                good.append(rec)
    items = {}
    for path in summary["paths"]["item_files"]:
        for line in _read_lines(path):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if S.ITEM_ID in rec:
                items[rec[S.ITEM_ID]] = rec
    return {"out": out, "summary": summary, "kinds": kinds, "good": good, "items": items}


def test_layout_follows_the_raw_contract(small):
    out, summary = small["out"], small["summary"]
    assert sorted(os.listdir(out)) == ["events", "items", "users"]
    assert sorted(os.listdir(os.path.join(out, "events"))) == ["dt=2024-01-01", "dt=2024-01-02"]
    for path in summary["paths"]["event_files"]:
        assert re.search(r"/events/dt=\d{4}-\d{2}-\d{2}/part-\d{5}\.jsonl$", path), path
    for folder in ("events/dt=2024-01-01", "events/dt=2024-01-02", "items", "users"):
        names = os.listdir(os.path.join(out, folder))
        assert names and all(re.fullmatch(r"part-\d{5}\.jsonl", n) for n in names), names
    total = sum(len(_read_lines(p)) for p in summary["paths"]["event_files"])
    assert total == summary["events_total"] == sum(small["kinds"].values())
    assert 12_000 < summary["events_total"] < 18_000  # target 15k
    json.dumps(summary)  # JSON-able


def test_every_bad_kind_present_and_counted_exactly(small):
    summary, kinds = small["summary"], small["kinds"]
    expected = {k: v for k, v in summary["bad_counts"].items()}
    assert set(expected) == {*BAD_KINDS, KIND_DUPLICATE, KIND_LATE}
    assert all(v >= 1 for v in expected.values()), expected
    assert summary["duplicates"] == expected[KIND_DUPLICATE]
    assert {k: kinds.get(k, 0) for k in expected} == expected
    assert kinds["ok"] == summary["events_valid"] and "future" not in kinds
    bad = sum(expected.values())
    assert bad < 0.02 * summary["events_total"]


def test_event_types_funnel_rates_and_ordering(small):
    good, bots = small["good"], set(small["summary"]["bots"])
    human = [r for r in good if r[S.USER_ID] not in bots]
    types = Counter(r[S.EVENT_TYPE] for r in human)
    assert set(types) == set(S.EVENT_TYPES)
    assert 0.07 < types["cart"] / types["click"] < 0.14
    assert 0.2 < types["purchase"] / types["cart"] < 0.4
    assert 0.03 < types["fav"] / types["click"] < 0.08
    clicks = defaultdict(list)
    for r in human:
        if r[S.EVENT_TYPE] == "click" and S.SESSION_ID in r:
            clicks[(r[S.USER_ID], r[S.ITEM_ID], r[S.SESSION_ID])].append(r["_ms"])
    for later in ("cart", "purchase"):
        events = [r for r in human if r[S.EVENT_TYPE] == later and S.SESSION_ID in r]
        ok = sum(any(t < r["_ms"] for t in clicks[(r[S.USER_ID], r[S.ITEM_ID], r[S.SESSION_ID])])
                 for r in events)
        assert ok / len(events) > 0.95, later


def test_timestamps_mix_iso_strings_and_epoch_millis(small):
    kinds = Counter(type(r[S.TS]).__name__ for r in small["good"])
    assert kinds["str"] > 0.2 * len(small["good"]) and kinds["int"] > 0.4 * len(small["good"])


def test_sessions_are_short_and_some_events_search(small):
    spans = defaultdict(list)
    bots = set(small["summary"]["bots"])
    for r in small["good"]:
        if S.SESSION_ID in r and r[S.USER_ID] not in bots:
            spans[r[S.SESSION_ID]].append(r["_ms"])
    lengths = np.array([max(v) - min(v) for v in spans.values()])
    assert np.quantile(lengths, 0.99) < 3 * 3600 * 1000
    with_query = [r for r in small["good"] if S.QUERY in r]
    assert 0.005 < len(with_query) / len(small["good"]) < 0.2
    # query words come from the vocabulary of the clicked item's category
    words_by_cat = defaultdict(set)
    for item in small["items"].values():
        words_by_cat[item[S.CATEGORY]].update(item[S.TITLE].lower().split())
        words_by_cat[item[S.CATEGORY]].update(item[S.CATEGORY].lower().replace(">", " ").split())
    cat = {i: rec[S.CATEGORY] for i, rec in small["items"].items()}
    same = [bool(set(r[S.QUERY].split()) & words_by_cat[cat[r[S.ITEM_ID]]]) for r in with_query]
    other = [bool(set(r[S.QUERY].split()) & words_by_cat[c])
             for r, c in zip(with_query, sorted(words_by_cat) * len(with_query))]
    assert np.mean(same) > 0.6 and np.mean(same) > np.mean(other) + 0.3


def test_bots_are_far_more_active_than_users(small):
    summary = small["summary"]
    assert len(summary["bots"]) >= 1
    per_user = Counter(r[S.USER_ID] for r in small["good"])
    humans = [n for u, n in per_user.items() if u not in summary["bots"]]
    for bot in summary["bots"]:
        assert per_user[bot] / SMALL.days >= 1000
        assert per_user[bot] > 30 * np.median(humans)


def test_power_law_popularity_and_activity(small):
    bots = set(small["summary"]["bots"])
    human = [r for r in small["good"] if r[S.USER_ID] not in bots]
    item_counts = np.sort(np.array(list(Counter(r[S.ITEM_ID] for r in human).values())))[::-1]
    assert item_counts[: len(item_counts) // 10].sum() > 0.35 * item_counts.sum()
    user_counts = np.sort(np.array(list(Counter(r[S.USER_ID] for r in human).values())))[::-1]
    assert user_counts[: len(user_counts) // 10].sum() > 0.25 * user_counts.sum()
    assert user_counts.max() > 8 * np.median(user_counts)


def test_users_concentrate_on_their_interest_categories(small):
    items, bots = small["items"], set(small["summary"]["bots"])
    rows = [(r[S.USER_ID], items[r[S.ITEM_ID]][S.CATEGORY]) for r in small["good"]
            if r[S.USER_ID] not in bots and r[S.EVENT_TYPE] in ("click", "view")]
    users = np.array([u for u, _ in rows])
    cats = np.array([c for _, c in rows])

    def top3_share(categories):
        shares = []
        for user in np.unique(users):
            mine = categories[users == user]
            if len(mine) >= 30:
                shares.append(sum(n for _, n in Counter(mine).most_common(3)) / len(mine))
        return np.median(shares)

    real = top3_share(cats)
    shuffled = top3_share(np.random.default_rng(0).permutation(cats))
    assert real > 0.75 and real > shuffled + 0.35, (real, shuffled)


def test_items_catalog(small):
    summary, items = small["summary"], small["items"]
    assert len(items) == SMALL.items == summary["items"]
    assert summary["categories"] == 64 and summary["shops"] == 10 and summary["brands"] == 8
    for rec in items.values():
        assert {S.ITEM_ID, S.TITLE, S.CATEGORY, S.BRAND, S.SHOP_ID, S.PRICE} <= set(rec)
        assert len(rec[S.CATEGORY].split(S.CATEGORY_SEPARATOR)) == 3
        assert rec[S.TITLE].startswith(rec[S.BRAND]) and rec[S.PRICE] > 0
        if S.IMAGE_VEC in rec:
            assert len(rec[S.IMAGE_VEC]) == SMALL.image_dim
    assert 0.55 < np.mean([S.IMAGE_VEC in r for r in items.values()]) < 0.85
    by_top = defaultdict(list)
    for rec in items.values():
        by_top[rec[S.CATEGORY].split(">")[0]].append(rec[S.PRICE])
    assert np.median(by_top["Electronics"]) > 2 * np.median(by_top["Fashion"])
    # bad records and updated duplicates sit in the last file
    last = _read_lines(summary["paths"]["item_files"][-1])
    assert summary["item_bad_counts"] == {"missing_field:item_id": 1, "invalid_json": 1}
    updated = [json.loads(x) for x in last[-len(summary["updated_items"]):]]
    assert [u[S.ITEM_ID] for u in updated] == summary["updated_items"]
    assert all(items[u[S.ITEM_ID]] == u for u in updated)  # later record wins here


def test_users_file(small):
    summary = small["summary"]
    users, bad = {}, 0
    for path in summary["paths"]["user_files"]:
        for line in _read_lines(path):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if S.USER_ID not in rec:
                bad += 1
                continue
            users[rec[S.USER_ID]] = rec
    assert len(users) == SMALL.users and bad == sum(summary["user_bad_counts"].values()) == 2
    assert {r[S.GENDER] for r in users.values()} == {"M", "F", "U"}
    assert all(r[S.SIGNUP_TS] < "2024-01-01" for r in users.values())
    follows = [r for r in users.values() if S.FOLLOWS in r]
    assert 0.1 < len(follows) / len(users) < 0.3
    assert all(set(r[S.FOLLOWS]) <= set(users) and r[S.USER_ID] not in r[S.FOLLOWS]
               for r in follows)
    assert set(summary["bots"]) <= set(users)


def _tree_bytes(root: str) -> dict:
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as handle:
                found[os.path.relpath(os.path.join(folder, name), root)] = handle.read()
    return found


def test_same_seed_gives_identical_bytes(spark, tmp_path):
    config = GeneratorConfig(users=150, items=80, days=2, target_events=4_000, seed=3,
                             files_per_day=2, compress=True)
    first = generate(spark, str(tmp_path / "a"), config)
    second = generate(spark, str(tmp_path / "b"), config)
    other = generate(spark, str(tmp_path / "c"), GeneratorConfig(
        **{**config.__dict__, "seed": 4}))
    a, b, c = (_tree_bytes(str(tmp_path / x)) for x in "abc")
    assert sorted(a) == sorted(b) and all(a[k] == b[k] for k in a)
    assert any(name.endswith(".jsonl.gz") for name in a)
    assert {k: v for k, v in first.items() if k != "paths"} == {
        k: v for k, v in second.items() if k != "paths"}
    assert any(a[k] != c.get(k) for k in a) and first["bots"] != other["bots"]
    lines = [ln for p in first["paths"]["event_files"] for ln in _read_lines(p)]
    assert len(lines) == first["events_total"]


@pytest.mark.parametrize("kwargs, exc, name", [
    ({"users": 0}, ValueError, "users"),
    ({"users": 2.5}, TypeError, "users"),
    ({"days": 0}, ValueError, "days"),
    ({"start_date": "2024-02-30"}, ValueError, "start_date"),
    ({"categories": (4, 0)}, ValueError, "categories"),
    ({"bot_share": 1.5}, ValueError, "bot_share"),
    ({"image_share": -0.1}, ValueError, "image_share"),
    ({"target_events": 0}, ValueError, "target_events"),
    ({"compress": "yes"}, TypeError, "compress"),
    ({"events_per_user_per_day": 0}, ValueError, "events_per_user_per_day"),
])
def test_config_validation_names_the_argument(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        GeneratorConfig(**kwargs)


def test_config_derived_values():
    config = GeneratorConfig(users=200_000, items=50_000, days=7, target_events=10_000_000)
    assert config.rate == pytest.approx(10_000_000 / (200_000 * 7))
    human, bot = config.daily_rates()
    assert human * (config.users - config.n_bots) + bot * config.n_bots == pytest.approx(
        config.users * config.rate)
    assert config.n_bots == 100 and config.n_shops == 2500 and config.n_brands == 2000
    assert GeneratorConfig(users=100).n_bots == 1 and GeneratorConfig(users=99).n_bots == 0
    assert GeneratorConfig(categories=[2, 3]).categories == (2, 3)


def test_generate_checks_its_arguments(spark, tmp_path):
    with pytest.raises(TypeError, match="config"):
        generate(spark, str(tmp_path), {"users": 10})
    with pytest.raises(TypeError, match="spark"):
        generate(None, str(tmp_path), SMALL)
