"""What every search objective provides, and the cross-process sums and gathers they share."""

from __future__ import annotations

import abc
import contextlib
import warnings
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn


def world() -> tuple[int, int]:
    """(rank, world size) of the running process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes, differentiably (gradients flow back to every rank).

    Accelerate's ``gather`` carries no gradient; this all-reduce does, so a loss computed
    from global sums has the same value and gradient as the single-process loss on the
    global batch. Identity when there is one process.
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
    """In-place, non-differentiable sum over processes (for statistics of real data)."""
    if world()[1] > 1:
        dist.all_reduce(tensor)
    return tensor


def frozen(module: nn.Module) -> nn.Module:
    """``module`` in eval mode with every parameter frozen."""
    return module.eval().requires_grad_(False)


class Objective(abc.ABC):
    """A loss on generated samples that the search minimises over the scores.

    Subclasses see the real data once in `prepare` and then score batches of generated
    images in ``__call__``. Their running state (moving averages, samplers) goes through
    `state_dict` / `load_state_dict`, so a resumed search continues exactly.
    """

    @abc.abstractmethod
    def prepare(self, real: torch.Tensor, device: torch.device) -> None:
        """Look at the real images (N, C, H, W) in [-1, 1] once, before the first step."""

    @abc.abstractmethod
    def __call__(self, fake: torch.Tensor) -> torch.Tensor:
        """Loss (a scalar tensor) of a batch of generated images."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state but got {sorted(state)}.")

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description recorded in tickets."""
