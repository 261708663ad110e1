"""The "bring your own generator" table that tests/test_byog.py and benchmarks/byog.py both run.

Each `Case` is a `byog_models` generator with only what a user must tell the package: how it is
called (``latent_shape``, ``generate``) or, for the ``unet(x, t)``, its own betas. Nothing else is
set: no lr, no scale_fan, no targets (the package's defaults for the recognised family).
"Spread" is the per-pixel standard deviation of images across latents, averaged over pixels: 0
when the generator ignores z (collapsed, or dead at init).

Example:
    >>> [case.name for case in CASES]
    ['stylegan2-ada', 'stylegan2-5d', 'dcgan-tutorial', 'ddpm-unet']
    >>> case = CASES[2]
    >>> images = case.images(case.build().train(), n=4)
    >>> tuple(images.shape), spread(images) > 0
    ((4, 1, 32, 32), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from byog_models import GENERATORS, Pattern, TinyUNet, cosine_beta_schedule
from torch import nn

import lt_plugins as lt
from lt_plugins.diffusion import DDIMGenerator
from lt_plugins.features import mnist_feature_net
from lt_plugins.generate import LatentCall
from lt_plugins.objectives import DenoisingObjective

SHAPE = (1, 32, 32)
BETAS = cosine_beta_schedule(1000)
SAMPLE_STEPS = 8  # DDIM steps per UNet sample


@dataclass
class Case:
    """A fixture generator, what the search is told about it, and how images come out of it."""

    name: str
    build: Callable[[], nn.Module]
    objective: Callable[[], lt.Objective]
    sampler: Callable[[nn.Module], tuple[nn.Module, LatentCall]]  # model -> (generator of latents, its call)
    batch_size: int
    search_kwargs: dict[str, Any] = field(default_factory=dict)  # what a user passes TicketSearch besides these

    def wrapped(self, seed: int = 0) -> nn.Module:
        """The model wrapped with the package defaults; the constructor's own draws (biases, constants, norms,
        which the ticket stores as values) from ``torch.manual_seed(seed)``."""
        torch.manual_seed(seed)
        return lt.wrap(self.build(), lt.TicketConfig(seed=seed))

    def search(self, model: nn.Module, **kwargs: Any) -> lt.TicketSearch:
        return lt.TicketSearch(model, self.objective(), **{"batch_size": self.batch_size, "progress": False,
                                                           "device": "cpu", **self.search_kwargs, **kwargs})

    def images(self, model: nn.Module, n: int = 32, seed: int = 0) -> torch.Tensor:
        """``n`` images from latents of a CPU generator seeded ``seed``, in the model's current mode."""
        gen, call = self.sampler(model)
        with torch.no_grad():
            return call(gen, call.latents(n, torch.Generator().manual_seed(seed)))

    def fd(self, model: nn.Module, real: torch.Tensor, n: int) -> float:
        """FD of ``n`` generated vs ``n`` real images in mnist_feature_net(seed=1) features (`lt.evaluate`)."""
        gen, call = self.sampler(model)
        return lt.evaluate(gen, real[:n], mnist_feature_net(seed=1), n=n, latent_shape=call.latent_shape,
                           generate=call.generate)["fd"]

    def probe(self, model: nn.Module) -> torch.Tensor:
        """The model's raw output on fixed inputs in eval mode: what bit-for-bit comparisons compare."""
        model.eval()
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            if self.name == "ddpm-unet":
                return model(torch.randn(4, *SHAPE, generator=g), torch.tensor([0, 10, 500, 999]))
            call = self.sampler(model)[1]
            return call(model, call.latents(4, g))


def spread(images: torch.Tensor) -> float:
    """Per-pixel standard deviation across the batch, averaged over pixels."""
    return float(images.std(0).mean())


def _gan(pattern: Pattern) -> Case:
    call = LatentCall(pattern.latent_shape, pattern.generate)
    return Case(pattern.name, pattern.build, lambda: lt.MomentMatching(mnist_feature_net()), lambda model: (model, call),
                64, {"latent_shape": pattern.latent_shape, "generate": pattern.generate})


def _ddim(unet: nn.Module) -> tuple[nn.Module, LatentCall]:
    # Deterministic DDIM maps starting noise to an image: a generator of latents like the GANs.
    return DDIMGenerator(unet, BETAS, steps=SAMPLE_STEPS, sample_shape=SHAPE), LatentCall((math.prod(SHAPE),))


CASES = [*(_gan(p) for p in GENERATORS),
         Case("ddpm-unet", TinyUNet, lambda: DenoisingObjective(BETAS, sample_shape=SHAPE), _ddim, 32)]
