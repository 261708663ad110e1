"""Denoising for diffusion UNets: the loss a diffusers UNet is trained with, as a ticket-search objective.

A UNet is not a generator of latents, so this objective takes the model itself
(``takes_model = True``): `lt_plugins.TicketSearch` then calls ``objective(model, batch_size)``
instead of ``objective(generator(z))``, and draws its sample grids with ``objective.sample``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import Objective, world

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


class DenoisingObjective(Objective):
    """Noise-prediction loss of a diffusers ``UNet2DModel`` under a diffusers noise scheduler.

    Every call draws a batch of real images ``x0``, timesteps ``t ~ U{0, ..., T-1}`` and noise
    ``eps ~ N(0, I)``, noises the images with ``scheduler.add_noise`` and returns
    ``mean((unet(x_t, t) - eps)^2)`` -- the loss of diffusers' ``train_unconditional.py``
    (the target follows ``scheduler.config.prediction_type``: ``eps``, the velocity, or ``x0``).

    Optionally, ``moments`` (e.g. ``lt.MomentMatching(features)``, or ``lt.MMD``) is also
    applied to images from a ``moment_steps``-step DDIM sampler, differentiated through the
    sampler, and added with weight ``moment_weight``.

    Two settings matter for UNets (measured on MNIST UNets, 200 steps): ``scale_fan=False``, which
    `lt_plugins.wrap` uses for diffusers UNets unless told otherwise -- GroupNorm follows every
    convolution, so kept weights need no ``1/sqrt(density)`` boost, and with it the search stalled
    at "predict zero noise" (held-out loss 0.82 vs 0.06) -- and a score learning rate near ``3e-3``,
    the UNet family's default in `lt_plugins.TicketSearch`: 0.1, right for GANs, stalled there too at 30%.

    All randomness comes from one CPU generator seeded by ``seed`` whose state is part of
    `state_dict`, so a resumed search draws the same batches; under several processes every
    rank draws the same global batch and keeps its own slice.

    Args:
        scheduler: the noise scheduler (default ``diffusers.DDPMScheduler()``: 1000 linear steps).
        seed: seed of the batches, timesteps and noise.
        moments: an image objective applied to few-step samples, or None.
        moment_weight: weight of that term.
        moment_steps: DDIM steps of the samples it sees.
        moment_batch: samples per step for it (default: the search's batch size).
        sample_steps: DDIM steps of the sample grids (`sample`).

    Example:
        >>> import torch, lt_plugins as lt
        >>> from diffusers import UNet2DModel
        >>> unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=4,
        ...                    down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        >>> unet = lt.wrap(unet, lt.TicketConfig(density=0.3))
        >>> search = lt.TicketSearch(unet, DenoisingObjective(), batch_size=8, progress=False, n_samples=4)
        >>> ticket = search.run(torch.rand(32, 1, 8, 8) * 2 - 1, steps=2)
        >>> len(search.result.losses), ticket.objective["name"]
        (2, 'denoising')
    """

    takes_model = True

    def __init__(
        self,
        scheduler: Any = None,
        *,
        seed: int = 0,
        moments: Objective | None = None,
        moment_weight: float = 1.0,
        moment_steps: int = 4,
        moment_batch: int | None = None,
        sample_steps: int = 8,
    ) -> None:
        from diffusers import DDPMScheduler

        self.scheduler = scheduler if scheduler is not None else DDPMScheduler()
        if not hasattr(self.scheduler, "add_noise") or not hasattr(self.scheduler, "config"):
            raise TypeError(
                f"scheduler must be a diffusers noise scheduler (e.g. DDPMScheduler()), got {type(scheduler).__name__}."
            )
        self.prediction_type = self.scheduler.config.get("prediction_type", "epsilon")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"The scheduler's prediction_type={self.prediction_type!r} is not supported; use one of {list(PREDICTION_TYPES)}."
            )
        if moments is not None and (not isinstance(moments, Objective) or getattr(moments, "takes_model", False)):
            raise TypeError(f"moments must be an objective on images (e.g. lt.MomentMatching(features)), got {moments!r}.")
        sizes = {"moment_steps": moment_steps, "sample_steps": sample_steps}
        if moment_batch is not None:
            sizes["moment_batch"] = moment_batch
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DenoisingObjective({name}={value!r}) must be a positive integer.")
        self.seed = seed
        self.sampler = torch.Generator().manual_seed(seed)
        self.moments = moments
        self.moment_weight = float(moment_weight)
        self.moment_steps = moment_steps
        self.moment_batch = moment_batch
        self.sample_steps = sample_steps
        self.real: torch.Tensor | None = None
        self.device = torch.device("cpu")
        self._ddim: Any = None

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    def prepare(self, real: torch.Tensor, device: torch.device) -> None:
        if real.ndim != 4 or real.shape[0] == 0:
            raise ValueError(f"DenoisingObjective needs real images (N, C, H, W), N >= 1; got shape {tuple(real.shape)}.")
        self.real, self.device = real, torch.device(device)
        if self.moments is not None:
            self.moments.prepare(real, device)

    def _check(self, model: nn.Module) -> torch.Tensor:
        if self.real is None:
            raise RuntimeError("DenoisingObjective.prepare(real_images, device) must run before the loss is used.")
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"DenoisingObjective is called with the UNet itself (objective(unet, batch_size)), got "
                f"{type(model).__name__}; TicketSearch does this for you."
            )
        config = getattr(getattr(model, "module", model), "config", None)
        if config is not None and hasattr(config, "in_channels") and hasattr(config, "sample_size"):
            size = config.sample_size
            made = (config.in_channels, *((size, size) if isinstance(size, int) else size))
            if tuple(made) != tuple(self.real.shape[1:]):
                raise ValueError(
                    f"The UNet makes images of shape {tuple(made)} (in_channels, sample_size) but the real images are "
                    f"{tuple(self.real.shape[1:])}; resize the data (e.g. lt_plugins.data.load_mnist(image_size=...)) "
                    "or build the UNet for that size."
                )
        return self.real

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the UNet should predict for ``add_noise(x0, noise, t)``, per the scheduler's prediction type."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            return self.scheduler.get_velocity(x0, noise, t)
        return x0

    def __call__(self, model: nn.Module, batch_size: int = 64) -> torch.Tensor:  # type: ignore[override]
        real = self._check(model)
        # Every rank draws the same global batch and keeps its slice: the single-process batch, tiled.
        rank, size = world()
        mine = slice(rank * batch_size, (rank + 1) * batch_size)
        index = torch.randint(0, real.shape[0], (batch_size * size,), generator=self.sampler)[mine]
        t = torch.randint(0, self.num_train_timesteps, (batch_size * size,), generator=self.sampler)[mine]
        noise = torch.randn(batch_size * size, *real.shape[1:], generator=self.sampler)[mine]
        x0, noise, t = real[index].to(self.device), noise.to(self.device), t.to(self.device)
        out = model(self.scheduler.add_noise(x0, noise, t), t)
        loss = F.mse_loss(getattr(out, "sample", out).float(), self.target(x0, noise, t).float())
        if self.moments is not None and self.moment_weight:
            loss = loss + self.moment_weight * self._moment_loss(model, real.shape[1:], rank, size, batch_size)
        return loss

    def _moment_loss(self, model: nn.Module, shape: torch.Size, rank: int, size: int, batch_size: int) -> torch.Tensor:
        from ..diffusion import ddim_scheduler, denoise

        if self._ddim is None:
            self._ddim = ddim_scheduler(self.scheduler)
        batch = self.moment_batch or batch_size
        z = torch.randn(batch * size, *shape, generator=self.sampler)[rank * batch : (rank + 1) * batch]
        return self.moments(denoise(model, z.to(self.device), self._ddim, self.moment_steps))

    @torch.no_grad()
    def sample(self, model: nn.Module, n: int, generator: torch.Generator | int = 0) -> torch.Tensor:
        """``n`` images in [-1, 1] from ``model`` with `sample_steps` DDIM steps (the search's sample grids).

        Example:
            >>> from diffusers import UNet2DModel
            >>> unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
            ...                    norm_num_groups=4, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
            >>> tuple(DenoisingObjective(sample_steps=2).sample(unet, 3).shape)
            (3, 1, 8, 8)
        """
        from ..diffusion import sample

        return sample(getattr(model, "module", model), n, steps=self.sample_steps, generator=generator,
                      scheduler=self.scheduler)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"sampler": self.sampler.get_state()}
        if self.moments is not None:
            state.update({f"moments.{k}": v for k, v in self.moments.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.sampler.set_state(state["sampler"].to(torch.uint8).cpu())
        if self.moments is not None:
            self.moments.load_state_dict({k[len("moments."):]: v for k, v in state.items() if k.startswith("moments.")})

    def describe(self) -> dict[str, Any]:
        config = self.scheduler.config
        described: dict[str, Any] = {
            "name": "denoising",
            "prediction_type": self.prediction_type,
            "scheduler": {
                "class": type(self.scheduler).__name__,
                **{k: config.get(k) for k in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end")},
            },
            "sample_steps": self.sample_steps,
        }
        if self.moments is not None:
            described.update(moments=self.moments.describe(), moment_weight=self.moment_weight,
                             moment_steps=self.moment_steps)
        return described
