"""The data-parallel backend interface, the single-process backend and `get_backend`.

A trainer is written once against `Backend` and runs unchanged on one CPU process, on N Horovod
ranks or on N torch DDP ranks, on CPU or CUDA nodes::

    backend = get_backend()                  # name from $GRAPHLAKE_BACKEND, set by `launch`
    model = backend.wrap_model(model)        # moved to backend.device (and DDP-wrapped)
    optimizer = backend.wrap_optimizer(torch.optim.SGD(model.parameters(), lr=0.1), model)
    backend.broadcast_state(model, optimizer)  # every rank starts from rank 0's weights
    for batch in my_shard:                   # each rank takes `local_shard(...)` of the batch
        optimizer.zero_grad()
        loss = loss_fn(model(batch))         # mean over the local shard (equal shard sizes)
        loss.backward()
        optimizer.step()                     # gradients are averaged over the ranks
        global_loss = backend.allreduce_mean(loss.item(), "loss")
    backend.shutdown()

Gradient averaging over equal-size shards of a global batch with a per-shard mean loss is the same
math as one process on the whole batch, so loss curves match the single-process run.
"""

from __future__ import annotations

import abc
import numbers

import torch
from torch import nn

from graphlake.core.errors import UsageError

BACKEND_ENV = "GRAPHLAKE_BACKEND"
BACKEND_NAMES = ("local", "horovod", "ddp")


def resolve_device(local_rank: int, device: str | torch.device | None = None) -> torch.device:
    """Pick the device of a rank: `device` if given, else CUDA `local_rank` when available, else CPU.

    Args:
        local_rank: rank of this process on its host (0-based); selects the GPU on CUDA nodes.
        device: explicit device ("cpu", "cuda:1", a torch.device), "cuda" (this rank's GPU:
            ``local_rank`` modulo the GPUs seen), or None / "auto" for automatic.

    Returns:
        torch.device.

    Raises:
        ValueError: ``"cuda"`` asked for where torch sees no GPU (a CPU-only torch build, or no driver).

    Example:
        >>> resolve_device(0, "cpu")
        device(type='cpu')
    """
    if not isinstance(local_rank, int) or isinstance(local_rank, bool) or local_rank < 0:
        raise ValueError(f"local_rank: expected an int >= 0, got {local_rank!r}")
    if device is not None and device != "auto":
        if not isinstance(device, (str, torch.device)):
            raise TypeError(f"device: expected a str, torch.device or None, got {type(device).__name__}")
        device = torch.device(device)
        if device.type != "cuda":
            return device
        if not torch.cuda.is_available():
            raise UsageError(f"device: {str(device)!r} asked for, but torch {torch.__version__} sees no CUDA GPU "
                             "(a CPU-only torch build, or no driver); use 'cpu' or 'auto'")
        if device.index is not None:
            return device
    elif not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())  # this rank's GPU


def local_shard(n: int, rank: int, world_size: int) -> slice:
    """The slice of a global batch of `n` rows that `rank` takes: equal, contiguous shards.

    Equal shard sizes are required for data-parallel training to equal single-process training
    (each rank's loss is a mean over its shard and the gradients are averaged over the ranks).

    Args:
        n: global batch size; must be a multiple of `world_size`.
        rank: this rank, 0 <= rank < world_size.
        world_size: number of ranks.

    Returns:
        slice of length n // world_size.

    Example:
        >>> local_shard(8, 1, 2)
        slice(4, 8, None)
    """
    for arg, value in (("n", n), ("rank", rank), ("world_size", world_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{arg}: expected an int, got {type(value).__name__}")
    if world_size < 1:
        raise ValueError(f"world_size: expected >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank: expected 0 <= rank < {world_size}, got {rank}")
    if n < 0 or n % world_size:
        raise ValueError(f"n: expected a non-negative multiple of world_size={world_size}, got {n}")
    size = n // world_size
    return slice(rank * size, (rank + 1) * size)


def check_metric(value: object, name: object) -> None:
    """Validate the arguments of `Backend.allreduce_mean` (shared by the backends)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a non-empty str, got {name!r}")
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
        raise TypeError(f"value: expected a float, int or torch.Tensor, got {type(value).__name__}")
    if isinstance(value, torch.Tensor) and value.is_sparse:
        raise TypeError("value: expected a dense tensor, got a sparse one")


def rank_rows(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(lo, hi)``: rank ``rank``'s contiguous share of ``n`` rows, ``ceil(n / world_size)`` each
    (the last ranks' shares may be shorter or empty). Arguments are not checked (callers did).

    Example:
        >>> rank_rows(5, 1, 2)
        (3, 5)
    """
    per = -(-n // world_size)
    return min(n, rank * per), min(n, (rank + 1) * per)


def check_tensor(tensor: object, name: object) -> None:
    """Validate the arguments of `Backend.allreduce_sum` (a dense tensor and a collective name)."""
    check_metric(tensor, name)
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor: expected a dense torch.Tensor, got {type(tensor).__name__}")


def check_module(model: object, optimizer: object = None) -> None:
    """Validate `model` (an nn.Module) and, when given, `optimizer` (a torch Optimizer)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}")


def sparse_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters that get sparse gradients (nn.Embedding / EmbeddingBag, sparse=True).

    Example:
        >>> sparse_parameter_names(nn.Sequential(nn.Embedding(4, 2, sparse=True), nn.Linear(2, 1)))
        ['0.weight']
    """
    names = []
    for prefix, module in model.named_modules():
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and module.sparse:
            names.extend(f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False))
    return names


class Backend(abc.ABC):
    """One rank of a data-parallel job. Build it with `get_backend` inside the worker process.

    Properties: rank, world_size, local_rank, device (torch.device of this rank), is_root (rank 0).
    Usable as a context manager: `with get_backend() as backend: ...` calls `shutdown` at the end.
    """

    name: str = "abstract"

    @property
    @abc.abstractmethod
    def rank(self) -> int:
        """Global rank, 0 <= rank < world_size."""

    @property
    @abc.abstractmethod
    def world_size(self) -> int:
        """Number of ranks in the job."""

    @property
    @abc.abstractmethod
    def local_rank(self) -> int:
        """Rank on this host (selects the GPU)."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """Device this rank computes on: cuda:<local_rank> on GPU nodes, else cpu."""

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that writes outputs and logs."""
        return self.rank == 0

    @abc.abstractmethod
    def wrap_model(self, model: nn.Module) -> nn.Module:
        """Move `model` to `device` and wrap it for gradient averaging; use the result for forward."""

    @abc.abstractmethod
    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        """Return the optimizer to step (Horovod: a DistributedOptimizer over `model`'s parameters)."""

    @abc.abstractmethod
    def broadcast_state(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Copy rank 0's parameters, buffers and optimizer state to every rank (collective)."""

    @abc.abstractmethod
    def allreduce_mean(self, value: float | torch.Tensor, name: str) -> float | torch.Tensor:
        """Mean of a metric over the ranks (collective; every rank calls it with the same `name`).

        Args:
            value: a Python number (returns a float) or a dense tensor (returns a tensor of the same
                shape, on the value's device).
            name: a name for the collective, the same on every rank (e.g. "loss").
        """

    @abc.abstractmethod
    def allreduce_sum(self, tensor: torch.Tensor, name: str) -> torch.Tensor:
        """Element-wise sum of a dense tensor over the ranks (collective, same ``name`` on every
        rank), on the tensor's device: e.g. each rank fills its rows of a zero matrix and every rank
        gets the whole matrix, exactly (``x + 0 == x``)."""

    @abc.abstractmethod
    def barrier(self) -> None:
        """Block until every rank reaches this point."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Leave the job; safe to call twice."""

    def unwrap_model(self, model: nn.Module) -> nn.Module:
        """The plain module inside `wrap_model`'s result (for state_dict / saving)."""
        check_module(model)
        return getattr(model, "module", model)

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(rank={self.rank}, world_size={self.world_size}, "
                f"local_rank={self.local_rank}, device={self.device})")


class LocalBackend(Backend):
    """A single process: rank 0 of 1; every collective is the identity.

    Args:
        device: explicit device, or None for cuda:0 when available else cpu.

    Example:
        >>> b = LocalBackend(device="cpu")
        >>> b.allreduce_mean(2.5, "loss")
        2.5
    """

    name = "local"

    def __init__(self, device: str | torch.device | None = None) -> None:
        self._device = resolve_device(0, device)

    @property
    def rank(self) -> int:
        return 0

    @property
    def world_size(self) -> int:
        return 1

    @property
    def local_rank(self) -> int:
        return 0

    @property
    def device(self) -> torch.device:
        return self._device

    def wrap_model(self, model: nn.Module) -> nn.Module:
        check_module(model)
        return model.to(self._device)

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        check_module(model, optimizer)
        return optimizer

    def broadcast_state(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        check_module(model, optimizer)

    def allreduce_mean(self, value: float | torch.Tensor, name: str) -> float | torch.Tensor:
        check_metric(value, name)
        if isinstance(value, torch.Tensor):
            return value.detach().clone()
        return float(value)

    def allreduce_sum(self, tensor: torch.Tensor, name: str) -> torch.Tensor:
        check_tensor(tensor, name)
        return tensor.detach().clone()

    def barrier(self) -> None:
        return None

    def shutdown(self) -> None:
        return None
