"""Horovod backend (`horovod.torch`, gloo on CPU, NCCL on GPU builds).

Sparse gradients (nn.Embedding(sparse=True)): horovod 0.28.1's DistributedOptimizer handles a
sparse `p.grad` in two ways (horovod/torch/optimizer.py, `_allreduce_grad_async`):

* default (`sparse_as_dense=False`): `sparse_allreduce_async` allgathers the gradient's indices
  and values from every rank, divides the values by the world size (op=Average) and rebuilds an
  uncoalesced sparse tensor; duplicate rows sum when the optimizer applies it, so the update is
  exactly the averaged dense gradient. Traffic is O(world_size x rows touched x dim), independent of
  the table size.
* `sparse_as_dense=True`: densifies the gradient and allreduces the whole table,
  O(num_embeddings x dim) per step, and converts back to sparse.

We default to the sparse allgather: graph-embedding tables have millions of rows while a batch
touches thousands, so densifying would move the whole table every step. `sparse_as_dense=True` is
the better choice only when batches touch a large fraction of a small table. Either way every
rank must produce a gradient for the table each step (horovod cannot allgather a gradient that a
rank did not compute: it would substitute a dense zero tensor), which holds for models that look up
the table on every batch. Optimizers must accept sparse gradients: SGD (with momentum), Adagrad,
SparseAdam (not Adam/AdamW).

Example (inside a worker started by `launch("horovod", 2, "my.worker", [])`)::

    backend = HorovodBackend()
    model = backend.wrap_model(model)
    opt = backend.wrap_optimizer(torch.optim.SGD(model.parameters(), lr=0.1), model)
    backend.broadcast_state(model, opt)
"""

from __future__ import annotations

import torch
from torch import nn

from graphlake.training.distributed.base import Backend, check_metric, check_module, check_tensor, resolve_device

BUILD_HINT = ("horovod is not installed in this virtualenv: run "
              "`bash training/distributed/build_horovod.sh` (or `make install`)")


def import_horovod():
    """Import `horovod.torch`, raising ImportError with the build hint when it is missing."""
    try:
        import horovod.torch as hvd
    except ImportError as exc:
        raise ImportError(f"{BUILD_HINT}; import failed with: {exc}") from exc
    return hvd


class HorovodBackend(Backend):
    """One Horovod rank; `hvd.init()` reads the rendezvous environment set by horovodrun/spark.

    Args:
        sparse_as_dense: allreduce sparse embedding gradients as dense tensors (see module doc);
            default False (sparse allgather).
        device: explicit device, or None for cuda:<local_rank> when available else cpu.

    Example:
        >>> backend = HorovodBackend()            # doctest: +SKIP  (needs horovodrun)
        >>> backend.allreduce_mean(float(backend.rank), "r")   # doctest: +SKIP
        0.5
    """

    name = "horovod"

    def __init__(self, sparse_as_dense: bool = False, device: str | torch.device | None = None) -> None:
        if not isinstance(sparse_as_dense, bool):
            raise TypeError(f"sparse_as_dense: expected a bool, got {type(sparse_as_dense).__name__}")
        hvd = import_horovod()
        hvd.init()
        self._hvd = hvd
        self._sparse_as_dense = sparse_as_dense
        self._device = resolve_device(hvd.local_rank(), device)
        if self._device.type == "cuda":
            torch.cuda.set_device(self._device)
        self._closed = False

    @property
    def rank(self) -> int:
        return self._hvd.rank()

    @property
    def world_size(self) -> int:
        return self._hvd.size()

    @property
    def local_rank(self) -> int:
        return self._hvd.local_rank()

    @property
    def device(self) -> torch.device:
        return self._device

    def wrap_model(self, model: nn.Module) -> nn.Module:
        check_module(model)
        return model.to(self._device)

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        """hvd.DistributedOptimizer averaging the gradients of the optimizer's parameters.

        The names come from `model.named_parameters()` (restricted to the optimizer's parameters, so
        two optimizers over disjoint parts of one model, e.g. Adam + SparseAdam, can each be wrapped).
        """
        check_module(model, optimizer)
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        return self._hvd.DistributedOptimizer(
            optimizer,
            named_parameters=[(n, p) for n, p in model.named_parameters() if id(p) in owned],
            op=self._hvd.Average,
            sparse_as_dense=self._sparse_as_dense,
        )

    def broadcast_state(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Broadcast parameters/buffers and optimizer state from rank 0.

        `hvd.broadcast_optimizer_state` initialises an empty state with one zero-gradient step,
        which advances Adam's step counter; when every rank's optimizer state is still empty
        (fresh optimizers built identically) there is nothing to send, so it is skipped and the
        math stays identical to a single-process run.
        """
        check_module(model, optimizer)
        self._hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        if optimizer is None:
            return
        filled = torch.tensor([float(len(optimizer.state_dict()["state"]))], dtype=torch.float64)
        if self._hvd.allreduce(filled, name="graphlake.optimizer_state_size", op=self._hvd.Sum).item() > 0:
            self._hvd.broadcast_optimizer_state(optimizer, root_rank=0, model=model)

    def allreduce_mean(self, value: float | torch.Tensor, name: str) -> float | torch.Tensor:
        check_metric(value, name)
        if isinstance(value, torch.Tensor):
            return self._hvd.allreduce(value.detach(), name=name, op=self._hvd.Average)
        tensor = torch.tensor([float(value)], dtype=torch.float64)
        return float(self._hvd.allreduce(tensor, name=name, op=self._hvd.Average).item())

    def allreduce_sum(self, tensor: torch.Tensor, name: str) -> torch.Tensor:
        check_tensor(tensor, name)
        return self._hvd.allreduce(tensor.detach(), name=name, op=self._hvd.Sum)

    def barrier(self) -> None:
        self._hvd.barrier()

    def shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self._hvd.shutdown()
