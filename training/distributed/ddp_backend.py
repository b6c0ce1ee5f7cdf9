"""torch DistributedDataParallel backend (gloo on CPU, NCCL on CUDA; env:// rendezvous).

The launcher (torchrun or Spark's TorchDistributor) sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; `DdpBackend()` reads them through `init_method="env://"`.

Sparse gradients (nn.Embedding(sparse=True)):

* gloo implements sparse allreduce and DDP's reducer puts each sparse parameter in its own bucket
  and averages it: `sparse_grads="native"`, the default on CPU.
* NCCL has no sparse allreduce. With `sparse_grads="dense"` (the default on CUDA) the sparse
  parameters are excluded from DDP and averaged by a post-accumulate-grad hook that densifies the
  gradient, allreduces it and makes it sparse again (like horovod's sparse_as_dense): correct, but
  it moves the whole table each step.

find_unused_parameters (default False): every parameter of our models gets a gradient every step,
so the extra autograd traversal that True costs each step buys nothing. Set it True only when some
dense parameters can be skipped in a step (e.g. a relation's weights when the sampled batch has no
such edge). With sparse embeddings it must stay False unless the tables are used every step:
DDP then fails with "Expected sparse gradient to be defined" (pytorch issue 80496).

Example (inside a worker started by `launch("ddp", 2, "my.worker", [])`)::

    backend = DdpBackend()
    model = backend.wrap_model(model)          # DistributedDataParallel
    opt = backend.wrap_optimizer(torch.optim.SGD(model.parameters(), lr=0.1), model)
    backend.broadcast_state(model, opt)
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from graphlake.training.distributed.base import (
    Backend,
    check_metric,
    check_module,
    check_tensor,
    resolve_device,
    sparse_parameter_names,
)

REQUIRED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
SPARSE_MODES = ("native", "dense")


class DdpBackend(Backend):
    """One torch.distributed rank.

    Args:
        find_unused_parameters: passed to DistributedDataParallel (see module doc); default False.
        sparse_grads: "native" (gloo sparse allreduce), "dense" (densify + allreduce; needed on
            NCCL) or None for "native" on gloo and "dense" on NCCL.
        device: explicit device, or None for cuda:<LOCAL_RANK> when available else cpu.
        timeout_s: timeout of the rendezvous and of every collective, in seconds.

    Example:
        >>> backend = DdpBackend()                        # doctest: +SKIP  (needs torchrun)
        >>> backend.allreduce_mean(float(backend.rank), "r")   # doctest: +SKIP
        0.5
    """

    name = "ddp"

    def __init__(self, find_unused_parameters: bool = False, sparse_grads: str | None = None,
                 device: str | torch.device | None = None, timeout_s: float = 300.0) -> None:
        if not isinstance(find_unused_parameters, bool):
            raise TypeError(f"find_unused_parameters: expected a bool, got {type(find_unused_parameters).__name__}")
        if sparse_grads is not None and sparse_grads not in SPARSE_MODES:
            raise ValueError(f"sparse_grads: expected one of {SPARSE_MODES} or None, got {sparse_grads!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise ValueError(f"timeout_s: expected a number > 0, got {timeout_s!r}")
        missing = [k for k in REQUIRED_ENV if not os.environ.get(k)]
        if missing and not dist.is_initialized():
            raise ValueError(f"environment: expected {', '.join(REQUIRED_ENV)} set by torchrun / "
                             f"training.distributed.launch, missing {', '.join(missing)}")
        self._local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self._device = resolve_device(self._local_rank, device)
        self._comm = "nccl" if self._device.type == "cuda" else "gloo"
        if self._device.type == "cuda":
            torch.cuda.set_device(self._device)
        self._owns_group = not dist.is_initialized()
        if self._owns_group:
            dist.init_process_group(self._comm, init_method="env://",
                                    timeout=datetime.timedelta(seconds=float(timeout_s)))
        else:
            self._comm = dist.get_backend()
        self._sparse_grads = sparse_grads or ("native" if self._comm == "gloo" else "dense")
        self._find_unused = find_unused_parameters
        self._closed = False

    @property
    def rank(self) -> int:
        return dist.get_rank()

    @property
    def world_size(self) -> int:
        return dist.get_world_size()

    @property
    def local_rank(self) -> int:
        return self._local_rank

    @property
    def device(self) -> torch.device:
        return self._device

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """Move to `device` and wrap in DistributedDataParallel (which broadcasts rank 0's weights)."""
        check_module(model)
        model = model.to(self._device)
        sparse = sparse_parameter_names(model)
        # parameters the training loss uses outside forward (e.g. HeteroGraphSAGE.score_bias): DDP's
        # reducer only follows what forward touches, so they are averaged by their own hook too
        outside = list(getattr(model, "parameters_outside_forward", lambda: [])())
        ignored = (sparse if self._sparse_grads == "dense" else []) + outside
        if ignored:
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignored)
            params = dict(model.named_parameters())
            world = self.world_size
            for name in ignored:
                with torch.no_grad():
                    dist.broadcast(params[name].data, src=0)
                params[name].register_post_accumulate_grad_hook(_dense_average_hook(world))
        return DistributedDataParallel(
            model,
            device_ids=[self._device.index] if self._device.type == "cuda" else None,
            find_unused_parameters=self._find_unused,
        )

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.optim.Optimizer:
        """DDP averages gradients during backward: the optimizer is returned unchanged."""
        check_module(model, optimizer)
        return optimizer

    def broadcast_state(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Broadcast rank 0's parameters/buffers and (when any rank has one) optimizer state."""
        check_module(model, optimizer)
        with torch.no_grad():
            for tensor in self.unwrap_model(model).state_dict().values():
                if isinstance(tensor, torch.Tensor):
                    dist.broadcast(tensor, src=0)
        if optimizer is None:
            return
        filled = torch.tensor([float(len(optimizer.state_dict()["state"]))], dtype=torch.float64,
                              device=self._comm_device())
        dist.all_reduce(filled)
        if filled.item() > 0:
            # host copies: a pickled CUDA tensor would unpickle onto cuda:<root's index> on every rank
            box = [_to_host(optimizer.state_dict()) if self.is_root else None]
            dist.broadcast_object_list(box, src=0, device=self._comm_device())
            if not self.is_root:
                optimizer.load_state_dict(box[0])

    def allreduce_mean(self, value: float | torch.Tensor, name: str) -> float | torch.Tensor:
        check_metric(value, name)
        if isinstance(value, torch.Tensor):
            tensor = value.detach().clone().to(self._comm_device())
            dist.all_reduce(tensor)
            return (tensor / self.world_size).to(value.device)
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def allreduce_sum(self, tensor: torch.Tensor, name: str) -> torch.Tensor:
        check_tensor(tensor, name)
        out = tensor.detach().clone().to(self._comm_device())
        dist.all_reduce(out)
        return out.to(tensor.device)

    def barrier(self) -> None:
        if self._comm == "nccl":
            dist.barrier(device_ids=[self._device.index])
        else:
            dist.barrier()

    def shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owns_group and dist.is_initialized():
                dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return self._device if self._comm == "nccl" else torch.device("cpu")


def _dense_average_hook(world_size: int):
    """Post-accumulate-grad hook: average a (sparse or dense) gradient over the ranks as a dense tensor."""

    def hook(param: torch.Tensor) -> None:
        grad = param.grad
        dense = grad.to_dense() if grad.is_sparse else grad
        dense = dense.contiguous()
        dist.all_reduce(dense)
        dense.div_(world_size)
        param.grad = dense.to_sparse(grad.sparse_dim()) if grad.is_sparse else dense

    return hook


def _to_host(obj):
    """``obj`` (an optimizer's state dict) with every tensor in it copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_host(v) for v in obj)
    return obj
