"""Sampling diffusers UNets with a DDIM scheduler: through `DDIMPipeline`, or as a differentiable generator.

DDIM with ``eta = 0`` is deterministic: a fixed map from the starting noise ``x_T`` to an
image. So a UNet plus a few DDIM steps *is* a generator ``G(z)``, and `DDIMGenerator` makes it
one -- the metrics, sample grids and moment matching then treat a diffusion model like any
other generator. `sample` runs the very same loop through diffusers' own ``DDIMPipeline``.

Example:
    >>> import torch
    >>> from diffusers import UNet2DModel
    >>> unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
    ...                    norm_num_groups=4, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    >>> images = sample(unet, 2, steps=2, generator=0)
    >>> tuple(images.shape), bool(images.abs().max() <= 1)
    ((2, 1, 8, 8), True)
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

DEFAULT_SAMPLE_STEPS = 8
# Few-step DDIM needs "trailing" spacing: its first step is at t = T - 1 (pure noise), where
# diffusers' default "leading" spacing starts 1000/steps steps early.
DEFAULT_SPACING = "trailing"


def ddim_scheduler(scheduler: Any = None, *, timestep_spacing: str = DEFAULT_SPACING):
    """A ``DDIMScheduler`` with the noise schedule of ``scheduler`` (default: ``DDPMScheduler()``).

    Example:
        >>> from diffusers import DDPMScheduler
        >>> ddim = ddim_scheduler(DDPMScheduler(beta_schedule="squaredcos_cap_v2"))
        >>> ddim.config.beta_schedule, ddim.config.timestep_spacing
        ('squaredcos_cap_v2', 'trailing')
    """
    from diffusers import DDIMScheduler, DDPMScheduler

    base = scheduler if scheduler is not None else DDPMScheduler()
    return DDIMScheduler.from_config(base.config, timestep_spacing=timestep_spacing)


def image_shape_of(unet: nn.Module) -> tuple[int, int, int]:
    """(channels, height, width) of the images a diffusers UNet makes, read from its config.

    Example:
        >>> from diffusers import UNet2DModel
        >>> image_shape_of(UNet2DModel(sample_size=16, in_channels=3, block_out_channels=(8, 8), norm_num_groups=4,
        ...                         down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2))
        (3, 16, 16)
    """
    config = getattr(getattr(unet, "module", unet), "config", None)  # through DDP
    if config is None or not hasattr(config, "sample_size") or not hasattr(config, "in_channels"):
        raise ValueError(
            f"{type(unet).__name__} has no diffusers config with sample_size and in_channels; pass "
            "image_shape=(channels, height, width) to say what images it makes."
        )
    size = config.sample_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return int(config.in_channels), int(height), int(width)


def denoise(unet: Callable[..., Any], noise: torch.Tensor, scheduler: Any, steps: int) -> torch.Tensor:
    """Run ``steps`` DDIM steps (eta = 0) from ``noise`` (N, C, H, W); images in [-1, 1].

    The loop of diffusers' ``DDIMPipeline``, without ``torch.no_grad``: call it under
    ``torch.no_grad()`` to sample, or with gradients to train through the sampler. ``unet``
    is called as ``unet(x_t, t)`` and may return a tensor or an object with ``.sample``.

    Example:
        >>> predict_no_noise = lambda x_t, t: torch.zeros_like(x_t)
        >>> x = denoise(predict_no_noise, torch.randn(2, 1, 4, 4), ddim_scheduler(), steps=4)
        >>> x.shape, bool(x.abs().max() <= 1)
        (torch.Size([2, 1, 4, 4]), True)
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a positive integer (DDIM steps, e.g. 8).")
    x = noise
    scheduler.set_timesteps(steps, device=x.device)
    for t in scheduler.timesteps:
        out = unet(x, t)
        x = scheduler.step(getattr(out, "sample", out), t, x).prev_sample
    return x.clamp(-1, 1)


class DDIMGenerator(nn.Module):
    """A UNet and a few DDIM steps as a generator: noise ``z`` -> images in [-1, 1].

    ``z`` is (N, C·H·W) standard-normal noise (or already (N, C, H, W)); the output is
    deterministic in ``z`` and differentiable with respect to the UNet (and its scores). Use
    it wherever a generator of latents is expected, e.g.
    ``lt_plugins.metrics.evaluate(DDIMGenerator(unet), ..., latent_dim=g.latent_dim)``.

    Args:
        unet: a diffusers ``UNet2DModel`` (wrapped or not), or any ``unet(x_t, t)`` with ``image_shape``.
        scheduler: the scheduler it was trained with (its noise schedule is reused), or a DDIM one.
        steps: DDIM steps per sample.
        image_shape: (C, H, W); default from the UNet's config.

    Example:
        >>> from diffusers import UNet2DModel
        >>> unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
        ...                    norm_num_groups=4, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        >>> gen = DDIMGenerator(unet, steps=2)
        >>> gen.latent_dim, tuple(gen(torch.randn(3, gen.latent_dim)).shape)
        (64, (3, 1, 8, 8))
    """

    def __init__(
        self,
        unet: nn.Module,
        scheduler: Any = None,
        steps: int = DEFAULT_SAMPLE_STEPS,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.scheduler = ddim_scheduler(scheduler) if not _is_ddim(scheduler) else scheduler
        self.steps = steps
        self.image_shape = tuple(image_shape) if image_shape is not None else image_shape_of(unet)

    @property
    def latent_dim(self) -> int:
        return math.prod(self.image_shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return denoise(self.unet, z.reshape(z.shape[0], *self.image_shape), self.scheduler, self.steps)


def _is_ddim(scheduler: Any) -> bool:
    return type(scheduler).__name__ == "DDIMScheduler"


def pipeline(unet: nn.Module, scheduler: Any = None):
    """A diffusers ``DDIMPipeline`` around ``unet`` (wrapped or merged), with the DDIM schedule of `ddim_scheduler`.

    Example:
        >>> from diffusers import UNet2DModel
        >>> unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
        ...                    norm_num_groups=4, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        >>> pipe = pipeline(unet)
        >>> len(pipe(batch_size=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images)
        2
    """
    from diffusers import DDIMPipeline

    pipe = DDIMPipeline(unet=unet, scheduler=scheduler if _is_ddim(scheduler) else ddim_scheduler(scheduler))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(
    unet: nn.Module,
    n: int,
    *,
    steps: int = DEFAULT_SAMPLE_STEPS,
    generator: torch.Generator | int = 0,
    scheduler: Any = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """``n`` images (N, C, H, W) in [-1, 1] from ``unet`` through diffusers' ``DDIMPipeline``.

    Seeded: ``generator`` is a CPU ``torch.Generator`` or a seed for one; the noise is drawn
    on the CPU (as diffusers' ``randn_tensor`` does), so every device starts from the same
    ``x_T``, and the result equals ``DDIMGenerator(unet, scheduler, steps)(z)`` for that noise.
    The UNet runs in eval mode and gets its mode back.

    Example:
        >>> from diffusers import UNet2DModel
        >>> unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
        ...                    norm_num_groups=4, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        >>> torch.equal(sample(unet, 2, steps=2, generator=1), sample(unet, 2, steps=2, generator=1))
        True
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer (images to sample).")
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    pipe = pipeline(unet, scheduler)
    was_training = unet.training
    unet.eval()
    try:
        batches = [
            pipe(batch_size=min(batch_size, n - start), generator=generator, num_inference_steps=steps, output_type="pt").images
            for start in range(0, n, batch_size)
        ]
    finally:
        unet.train(was_training)
    return torch.cat(batches) * 2 - 1
