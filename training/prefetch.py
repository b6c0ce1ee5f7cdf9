"""Run the next item's preparation in a background thread while the caller works on the current one.

The trainer prepares a step (positives, negatives, neighbour sampling: no model, no gradients) as a
pure function of ``(seed, epoch, step, rank)``; :func:`prefetched` runs ``prepare(k + 1)`` while
the caller trains on ``k``, so on a CPU the sampling overlaps the forward / backward pass (most of
whose operators leave a core idle), and on a GPU it overlaps the device's work. The items and their
order are exactly those of the plain loop: only the timing changes.

The worker runs with the caller's ``torch.get_num_threads()`` (OpenMP's thread count is a setting
of each thread; a fresh thread would otherwise use every core). An exception in ``prepare`` is
raised in the caller at the item it belongs to; leaving the loop early (``break``, an exception,
``close()``) waits for the one item in flight and stops the thread.

Example:
    >>> for step, batch in prefetched(trainer._prepare_step, range(steps)):
    ...     train_on(batch)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

K = TypeVar("K")
V = TypeVar("V")


def prefetched(prepare: Callable[[K], V], keys: Iterable[K], enabled: bool = True) -> Iterator[tuple[K, V]]:
    """Yield ``(key, prepare(key))`` for ``keys`` in order, preparing the next key ahead.

    Args:
        prepare: a function of the key alone (it runs in another thread: it must not depend on
            state the caller changes between items, e.g. the model's parameters or torch's
            global random generator).
        keys: the keys, in order (any iterable; consumed lazily, one ahead).
        enabled: False prepares each key in the caller's thread when it is reached (same items).

    Returns:
        An iterator of ``(key, value)`` pairs.
    """
    if not callable(prepare):
        raise TypeError(f"prepare: expected a callable, got {type(prepare).__name__}")
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected true or false, got {enabled!r}")
    keys = iter(keys)
    if not enabled:
        for key in keys:
            yield key, prepare(key)
        return
    threads = torch.get_num_threads()
    with ThreadPoolExecutor(1, thread_name_prefix="graphlake-prefetch",
                            initializer=torch.set_num_threads, initargs=(threads,)) as pool:
        pending = None
        try:
            for key in keys:
                future = pool.submit(prepare, key)
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = (key, future)
            if pending is not None:
                yield pending[0], pending[1].result()
        finally:
            if pending is not None:
                pending[1].cancel()
