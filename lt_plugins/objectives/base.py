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
    """What every loss the search minimises provides; an objective is one of two types.

    - `ImageObjective`: called on a batch of generated images, ``objective(fake)`` (moment matching,
      MMD). The search draws the latents and calls the generator (`lt_plugins.generate.LatentCall`).
    - `ModelObjective`: called on the model itself, ``objective(model, batch_size)``, and samples it
      with its own `ModelObjective.sample` (the denoising objective of UNets, through
      `lt_plugins.diffusion`).

    `lt.TicketSearch` dispatches on that type; a direct subclass of `Objective` is taken for an
    image objective, as it always was. Every objective sees the real data once in `prepare`; its
    running state (moving averages, samplers) goes through `state_dict` / `load_state_dict`, so a
    resumed search continues exactly.

    Example:
        >>> import lt_plugins as lt
        >>> isinstance(lt.MomentMatching(lambda x: [x]), lt.ImageObjective)
        True
        >>> isinstance(lt.DenoisingObjective(), lt.ModelObjective)
        True
    """

    @abc.abstractmethod
    def prepare(self, real: torch.Tensor, device: torch.device) -> None:
        """Look at the real images (N, C, H, W) in [-1, 1] once, before the first step."""

    @abc.abstractmethod
    def __call__(self, *inputs: Any) -> torch.Tensor:
        """The loss, a scalar tensor: of images (`ImageObjective`) or of the model (`ModelObjective`)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state but got {sorted(state)}.")

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description recorded in tickets."""


class ImageObjective(Objective):
    """A loss of a batch of generated images (N, C, H, W) in [-1, 1]: ``objective(fake)``.

    Example:
        >>> class MeanMatching(ImageObjective):
        ...     def prepare(self, real, device):
        ...         self.mean = real.mean().to(device)
        ...     def __call__(self, fake):
        ...         return (fake.mean() - self.mean).square()
        ...     def describe(self):
        ...         return {"name": "mean"}
        >>> objective = MeanMatching()
        >>> objective.prepare(torch.zeros(4, 1, 2, 2), torch.device("cpu"))
        >>> objective(torch.ones(2, 1, 2, 2)).item()
        1.0
    """

    @abc.abstractmethod
    def __call__(self, fake: torch.Tensor) -> torch.Tensor:
        """Loss (a scalar tensor) of a batch of generated images."""


class ModelObjective(Objective):
    """A loss computed by calling the model itself, ``objective(model, batch_size)``, which also samples it.

    For models that are not generators of latents (a diffusion UNet, ``unet(x_t, t)``): the search
    hands over the (possibly DDP-wrapped) model, and draws its sample grids with `sample`.

    Example:
        >>> import lt_plugins as lt
        >>> issubclass(lt.DenoisingObjective, ModelObjective)
        True
    """

    @abc.abstractmethod
    def __call__(self, model: nn.Module, batch_size: int) -> torch.Tensor:
        """Loss (a scalar tensor) of ``model`` on a batch of ``batch_size`` per process."""

    @abc.abstractmethod
    def sample(self, model: nn.Module, n: int, generator: torch.Generator | int = 0) -> torch.Tensor:
        """``n`` images (N, C, H, W) in [-1, 1] from ``model``, drawn from ``generator``."""

    def check_model(self, model: nn.Module) -> Any:
        """Called once before the first step, after `prepare`: refuse a model this objective cannot train."""
