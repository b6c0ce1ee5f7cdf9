"""Data-parallel training backends (local, Horovod, torch DDP) and their launcher.

    from graphlake.training.distributed import get_backend            # inside a worker
    from graphlake.training.distributed.launch import launch, LaunchError   # in the driver

`get_backend()` builds the backend inside a worker from the environment its launcher set;
`launch(backend, workers, entry, args)` runs a module on N ranks. The package is not re-exporting
`launch` on purpose: the name is also its submodule's. Names are imported lazily, so the launcher
does not pay for importing torch, and Horovod / DDP load only when their backend is asked for.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Backend": "base", "LocalBackend": "base", "get_backend": "factory", "local_shard": "base",
    "resolve_device": "base", "LaunchError": "launch",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"graphlake.training.distributed.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'graphlake.training.distributed' has no attribute {name!r}")
