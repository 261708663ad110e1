"""Everything that spans processes: collectives, BatchNorm over processes, process state, the end of a run.

One process is the default and every function here is then an identity or a no-op; under
``accelerate launch`` / ``torchrun`` the search and the objectives combine per-rank results
through these, so a run on several processes gives the single-process result for the same
global batch (see docs/multi_gpu.md).
"""

from __future__ import annotations

import contextlib
import gc
import os
import warnings
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn


def world() -> tuple[int, int]:
    """(rank, world size) of the running process group, (0, 1) without one.

    Example:
        >>> world()
        (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes, differentiably (gradients flow back to every rank).

    Accelerate's ``gather`` carries no gradient; this all-reduce does, so a loss computed
    from global sums has the same value and gradient as the single-process loss on the
    global batch. Identity when there is one process.

    Example:
        >>> sum_over_processes(torch.ones(2)).tolist()
        [1.0, 1.0]
    """
    if world()[1] == 1:
        return tensor
    from torch.distributed.nn.functional import all_reduce

    with _differentiable_collectives():
        return all_reduce(tensor)


def rows_of_all_processes(tensor: torch.Tensor) -> torch.Tensor:
    """The rows of ``tensor`` from every process, in rank order, differentiably.

    Every process must pass the same shape. Gradients flow back to the process that owned
    each row. Identity when there is one process.

    Example:
        >>> rows_of_all_processes(torch.zeros(3, 2)).shape
        torch.Size([3, 2])
    """
    if world()[1] == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    with _differentiable_collectives():
        return torch.cat(all_gather(tensor))


@contextlib.contextmanager
def _differentiable_collectives() -> Iterator[None]:
    # torch.distributed.nn.functional is deprecated in favour of _functional_collectives, whose
    # autograd support only exists in recent torch releases; this one differentiates on every
    # supported torch.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"torch\.distributed\.nn\.functional\.\w+ is deprecated", FutureWarning)
        yield


def sum_over_processes_(tensor: torch.Tensor) -> torch.Tensor:
    """In-place, non-differentiable sum over processes (for statistics of real data).

    Example:
        >>> sum_over_processes_(torch.tensor([2.0])).item()
        2.0
    """
    if world()[1] > 1:
        dist.all_reduce(tensor)
    return tensor


def _batch_norm_over_processes(self: nn.modules.batchnorm._BatchNorm, input: torch.Tensor) -> torch.Tensor:
    """BatchNorm forward that, in training mode, normalises with the moments of the global batch.

    What `torch.nn.SyncBatchNorm` does, on any device (SyncBatchNorm refuses CPU tensors):
    counts, sums and centred sums of squares go through the differentiable all-reduce, so
    outputs, gradients and running statistics equal those of one process on the whole batch.
    In eval mode nothing is exchanged (sample grids are made on the main process alone).
    """
    if not self.training:
        return type(self).forward(self, input)
    self._check_input_dim(input)
    dims = [0, *range(2, input.ndim)]
    shape = [1, -1] + [1] * (input.ndim - 2)
    x = input.float()
    local_count = torch.tensor([float(x.numel() // x.shape[1])], device=x.device)
    totals = sum_over_processes(torch.cat([x.sum(dims), local_count]))  # one all-reduce: sums and count
    count = totals[-1].detach()
    mean = totals[:-1] / count
    centred = x - mean.view(shape)
    var = sum_over_processes(centred.square().sum(dims)) / count
    out = centred * torch.rsqrt(var + self.eps).view(shape)
    if self.affine:
        out = out * self.weight.view(shape) + self.bias.view(shape)
    if self.track_running_stats:
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            unbiased = var * (count / (count - 1).clamp_min(1))
            self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
            self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
    return out.to(input.dtype)


@contextlib.contextmanager
def global_batch_norm(model: nn.Module, enabled: bool) -> Iterator[None]:
    """While active, plain BatchNorm layers of ``model`` use global-batch statistics in training.

    The layers are not replaced (the user's model keeps its modules and state_dict keys):
    each gets an instance-level ``forward`` that is removed again on exit.

    Example:
        >>> bn = nn.BatchNorm1d(2)
        >>> with global_batch_norm(bn, enabled=True):
        ...     "forward" in bn.__dict__
        True
        >>> "forward" in bn.__dict__
        False
    """
    layers = [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, nn.SyncBatchNorm)
        and "forward" not in m.__dict__
    ] if enabled else []
    for layer in layers:
        layer.forward = _batch_norm_over_processes.__get__(layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.__dict__["forward"]


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def asks_for_cpu(device: str | torch.device | None) -> bool:
    """Whether Accelerate should be asked for CPU processes for ``device``.

    Example:
        >>> asks_for_cpu("cpu"), asks_for_cpu(None)  # one process: None is Accelerate's own choice
        (True, False)
    """
    if device is not None:
        return torch.device(device).type == "cpu"
    # Under a multi-process launch with no GPU, Accelerate's default state counts one process
    # where torch.distributed counts them all: ask for CPU processes then.
    return _launched() and not torch.cuda.is_available()


def _check_device_exists(device: str | torch.device | None) -> None:
    """An explicitly requested accelerator that this machine lacks is an error, not a silent CPU run."""
    if device is None:
        return
    device = torch.device(device)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            raise ValueError(
                f"device={str(device)!r} was asked for, but torch sees {count} CUDA device(s) here. Use "
                "device='cpu', or device=None to take what is there."
            )
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError("device='mps' was asked for, but MPS is not available here; use device='cpu' or None.")


def process_state(device: str | torch.device | None = None):
    """Accelerate's state of this process (``accelerate.PartialState``), asked for ``device``
    the way `TicketSearch` asks: None is Accelerate's choice (each process's own GPU under
    ``accelerate launch``), except under a multi-process launch with no GPU, where it asks
    for CPU processes; ``"cuda:N"`` in one process makes N the current CUDA device, which
    Accelerate's single-process device follows.

    Example:
        >>> process_state("cpu").device
        device(type='cpu')
    """
    from accelerate import PartialState

    _check_device_exists(device)
    if device is not None and not _launched():
        device = torch.device(device)
        if device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device)
    return PartialState(cpu=asks_for_cpu(device))


def end_processes() -> None:
    """End a multi-process script cleanly: wait for every rank, free, close the process group.

    Call it once, last, in a script started with ``accelerate launch`` or ``torchrun``
    (a no-op in a single process). `TicketSearch.run` drops its own DDP wrapper and
    optimizer but leaves the process group open, so that you can evaluate, save or search
    again; torch asks for the group to be destroyed before exit (left to interpreter
    shutdown, gloo runs have been reported to abort with SIGABRT after the work was done).

    Example:
        >>> from lt_plugins.distributed import end_processes
        >>> end_processes()  # one process: nothing to do
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    from accelerate import PartialState

    state = PartialState()
    state.wait_for_everyone()
    gc.collect()
    state.destroy_process_group()
