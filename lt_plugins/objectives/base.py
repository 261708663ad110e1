"""What every search objective provides (the sums and gathers over processes live in `lt_plugins.distributed`)."""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn


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
