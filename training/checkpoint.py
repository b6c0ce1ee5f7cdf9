"""Checkpoints of a training run: atomic writes, the latest one, and exact resumption.

A checkpoint holds the model and optimizer states, the position in the schedule (epoch, step
within the epoch, global step) and the metric history. Every random choice of the trainer is
derived from ``(seed, epoch, step, rank)`` (:func:`step_seed`), never from a running RNG, so a
run resumed from a checkpoint takes exactly the steps the uninterrupted run would have taken.

Checkpoints hold tensors and plain Python values only (numbers, strings, lists, tuples, dicts,
``None``) and are read with ``torch.load(weights_only=True)``: a file in the lake cannot run code
in the process that resumes or warm-starts from it (:class:`UnsafeCheckpointError` instead).

Layout: ``<run_dir>/checkpoints/step_<global_step>.pt`` and ``<run_dir>/checkpoints/LATEST``
(the file name of the newest complete checkpoint; written last, by rename).

Example:
    >>> save_checkpoint(run_dir, {"model": model.state_dict(), "global_step": 200, ...}, keep=3)
    >>> state = load_latest(run_dir)     # None when the run has no checkpoint yet
"""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import torch

LATEST = "LATEST"


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint file holds something other than tensors and plain values (it could run code when
    unpickled), or is not a checkpoint at all; nothing was loaded."""


def checkpoint_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")


def step_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from the run seed and schedule coordinates (stable across processes and runs)."""
    digest = hashlib.sha256(":".join(str(int(p)) for p in (seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, *parts: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`step_seed`."""
    return torch.Generator().manual_seed(step_seed(seed, *parts))


def save_checkpoint(run_dir: str, state: dict, keep: int = 3) -> str:
    """Write ``state`` (must hold ``global_step``) atomically; keep the newest ``keep``; return the path."""
    if "global_step" not in state:
        raise ValueError("state: expected a 'global_step' entry")
    folder = checkpoint_dir(run_dir)
    os.makedirs(folder, exist_ok=True)
    name = f"step_{int(state['global_step']):09d}.pt"
    tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
    torch.save(plain_state(state), tmp)
    os.replace(tmp, os.path.join(folder, name))
    latest_tmp = os.path.join(folder, f".{LATEST}.tmp-{os.getpid()}")
    with open(latest_tmp, "w") as f:
        f.write(name)
    os.replace(latest_tmp, os.path.join(folder, LATEST))
    old = sorted(n for n in os.listdir(folder) if n.startswith("step_") and n.endswith(".pt"))[:-keep]
    for n in old:
        os.remove(os.path.join(folder, n))
    return os.path.join(folder, name)


def latest_path(run_dir: str) -> str | None:
    pointer = os.path.join(checkpoint_dir(run_dir), LATEST)
    if not os.path.isfile(pointer):
        return None
    with open(pointer) as f:
        path = os.path.join(checkpoint_dir(run_dir), f.read().strip())
    if not os.path.isfile(path):
        raise FileNotFoundError(f"run_dir: {LATEST} names {path}, which does not exist")
    return path


def load_latest(run_dir: str) -> dict | None:
    """The newest complete checkpoint of ``run_dir`` (``None`` when there is none)."""
    path = latest_path(run_dir)
    return None if path is None else load_checkpoint(path)


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint without running code: tensors and plain values only (``weights_only``).

    Raises:
        UnsafeCheckpointError: the file holds other objects (a crafted or foreign pickle), or is
            not a checkpoint.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeCheckpointError(f"checkpoint {path}: refused to load it: it is not a checkpoint of tensors and "
                                    f"plain values ({first}); nothing was loaded") from exc
    if not isinstance(state, dict):
        raise UnsafeCheckpointError(f"checkpoint {path}: expected a dict, got {type(state).__name__}")
    return state


def plain_state(value):
    """``value`` with numpy scalars and arrays turned into Python numbers and tensors (what
    ``weights_only`` loading accepts); raises ``TypeError`` naming any other object."""
    if isinstance(value, torch.Tensor) or value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {k: plain_state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [plain_state(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, torch.dtype):
        return value
    raise TypeError(f"state: a checkpoint holds tensors and plain values only, got {type(value).__name__}")


def warm_start_state(current: dict, previous: dict) -> tuple[dict, dict]:
    """Model state for a new run initialised from a previous run's model state (incremental training).

    Graph ids are stable (new keys are appended to the id maps), so a table whose first dimension
    grew between the two graph versions (an ID embedding of a node type that gained nodes) keeps the
    previous rows for the old ids and the fresh initialisation for the new ones. Parameters with the
    same shape are copied; parameters only in ``current`` (a new relation) keep their initialisation.

    Args:
        current: ``model.state_dict()`` of the freshly initialised model.
        previous: the ``"model"`` entry of the previous run's checkpoint.

    Returns:
        ``(state, report)``: the state to load, and ``{"copied", "grown", "new", "dropped"}`` lists
        of parameter names.

    Raises:
        ValueError: a parameter of both states differs other than by more rows (e.g. a changed
            hidden dimension), or has FEWER rows now (ids are never removed).

    Example:
        >>> state, report = warm_start_state(model.state_dict(), load_checkpoint(path)["model"])
        >>> model.load_state_dict(state)
    """
    state, report = {}, {"copied": [], "grown": [], "new": [], "dropped": sorted(set(previous) - set(current))}
    for name, fresh in current.items():
        old = previous.get(name)
        if old is None:
            state[name] = fresh
            report["new"].append(name)
        elif tuple(old.shape) == tuple(fresh.shape):
            state[name] = old.to(dtype=fresh.dtype)
            report["copied"].append(name)
        elif old.dim() == fresh.dim() >= 1 and tuple(old.shape[1:]) == tuple(fresh.shape[1:]) \
                and old.shape[0] < fresh.shape[0]:
            grown = fresh.clone()
            grown[: old.shape[0]] = old.to(dtype=fresh.dtype)
            state[name] = grown
            report["grown"].append(name)
        else:
            raise ValueError(f"warm_start: parameter {name!r} has shape {tuple(fresh.shape)} in the new model but "
                             f"{tuple(old.shape)} in the previous run; only more rows (new ids) are allowed — "
                             "train a full run when the model config or the feature dimensions changed")
    return state, report
