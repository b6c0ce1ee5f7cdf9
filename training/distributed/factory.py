"""The backend factory: builds this worker's :class:`Backend` by name (``base`` knows no backend
but its own, so the backends may import ``base`` without a circle)."""

from __future__ import annotations

import os

from graphlake.training.distributed.base import BACKEND_ENV, BACKEND_NAMES, Backend, LocalBackend


def get_backend(name: str | None = None, **options: object) -> Backend:
    """Build the backend of this worker process from the environment its launcher set.

    Args:
        name: "local", "horovod" or "ddp"; None reads $GRAPHLAKE_BACKEND (set by
            `training.distributed.launch`), defaulting to "local".
        **options: passed to the backend's constructor, e.g. device="cpu";
            horovod: sparse_as_dense=False; ddp: find_unused_parameters=False, sparse_grads=None,
            timeout_s=300.

    Returns:
        an initialised Backend (horovod: after hvd.init(); ddp: after init_process_group).

    Example:
        >>> get_backend("local", device="cpu").world_size
        1
    """
    if name is None:
        name = os.environ.get(BACKEND_ENV, "local")
    if not isinstance(name, str):
        raise TypeError(f"name: expected one of {BACKEND_NAMES}, got {type(name).__name__}")
    if name == "local":
        return LocalBackend(**options)  # type: ignore[arg-type]
    if name == "horovod":
        from graphlake.training.distributed.horovod_backend import (
            HorovodBackend,  # lazy: horovod is optional (built by make install)
        )

        return HorovodBackend(**options)  # type: ignore[arg-type]
    if name == "ddp":
        from graphlake.training.distributed.ddp_backend import DdpBackend  # lazy: torch.distributed only when asked for

        return DdpBackend(**options)  # type: ignore[arg-type]
    raise ValueError(f"name: expected one of {BACKEND_NAMES}, got {name!r}")
