"""training.prefetch.prefetched: same items in the same order, prepared one ahead in another thread."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from graphlake.training.prefetch import prefetched


def test_yields_every_key_in_order_prepared_in_a_worker_thread():
    main, threads = threading.get_ident(), []

    def prepare(k):
        threads.append(threading.get_ident())
        return k * k

    assert list(prefetched(prepare, range(6))) == [(k, k * k) for k in range(6)]
    assert len(threads) == 6 and main not in threads
    assert list(prefetched(prepare, [])) == []
    threads.clear()
    assert list(prefetched(prepare, iter(range(3)), enabled=False)) == [(0, 0), (1, 1), (2, 4)]
    assert threads == [main] * 3


def test_the_next_key_is_prepared_while_the_caller_works():
    started = {}

    def prepare(k):
        started[k] = time.monotonic()
        time.sleep(0.05)
        return k

    consumed = {}
    for k, _ in prefetched(prepare, range(3)):
        consumed[k] = time.monotonic()
        time.sleep(0.2)  # the caller's work on k: key k + 1 starts before it ends
        if k < 2:
            assert started[k + 1] < consumed[k] + 0.2


def test_the_worker_uses_the_callers_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert [v for _, v in prefetched(lambda _: torch.get_num_threads(), range(2))] == [1, 1]
    finally:
        torch.set_num_threads(before)


def test_an_error_is_raised_at_its_own_key_and_leaving_early_stops_the_worker():
    def prepare(k):
        if k == 2:
            raise ValueError("bad key 2")
        return k

    seen = []
    with pytest.raises(ValueError, match="bad key 2"):
        for k, v in prefetched(prepare, range(5)):
            seen.append(v)
    assert seen == [0, 1]
    prepared = []
    steps = prefetched(lambda k: prepared.append(k) or k, range(100))
    for k, _ in steps:
        if k == 3:
            break
    steps.close()
    assert prepared == [0, 1, 2, 3, 4]  # one ahead, never more
    alive = [t for t in threading.enumerate() if t.name.startswith("graphlake-prefetch")]
    assert not any(t.is_alive() for t in alive)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="prepare: expected a callable, got int"):
        list(prefetched(3, range(2)))
    with pytest.raises(TypeError, match="enabled: expected true or false, got 1"):
        list(prefetched(str, range(2), enabled=1))
