"""Sampling diffusion UNets with a DDIM scheduler: seeded sample batches, or a differentiable generator.

Any ``unet(x_t, t)`` works -- a diffusers ``UNet2DModel`` or a model of your own whose
``forward(x, t)`` takes integer timesteps of shape (N,) and returns the predicted noise (a tensor
or an object with ``.sample``); one without a diffusers config says its ``sample_shape=(C, H, W)``.
DDIM with ``eta = 0`` is deterministic: a fixed map from the starting noise ``x_T`` to an
image. So a UNet plus a few DDIM steps *is* a generator ``G(z)``, and `DDIMGenerator` makes it
one -- the metrics, sample grids and moment matching then treat a diffusion model like any
other generator. `sample` runs the same loop (`denoise`); for a diffusers UNet its images are
those of diffusers' own ``DDIMPipeline``.

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
import numbers
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .generate import LatentCall, LatentMixture

DEFAULT_SAMPLE_STEPS = 8
# Few-step DDIM needs "trailing" spacing: its first step is at t = T - 1 (pure noise), where
# diffusers' default "leading" spacing starts 1000/steps steps early.
DEFAULT_SPACING = "trailing"


def ddim_scheduler(scheduler: Any = None, *, timestep_spacing: str = DEFAULT_SPACING):
    """A ``DDIMScheduler`` with the noise schedule of ``scheduler`` (default: ``DDPMScheduler()``; 1-D betas, as
    community DDPM code keeps its schedule, are that schedule).

    Example:
        >>> from diffusers import DDPMScheduler
        >>> ddim = ddim_scheduler(DDPMScheduler(beta_schedule="squaredcos_cap_v2"))
        >>> ddim.config.beta_schedule, ddim.config.timestep_spacing
        ('squaredcos_cap_v2', 'trailing')
        >>> ddim_scheduler(torch.linspace(1e-4, 0.02, 500)).config.num_train_timesteps
        500
    """
    from diffusers import DDIMScheduler

    from .objectives.denoising import _scheduler

    base = _scheduler(scheduler)
    return DDIMScheduler.from_config(base.config, timestep_spacing=timestep_spacing)


def sample_shape_of(unet: Any, sample_shape: Sequence[int] | None = None, *,
                    default: Sequence[int] | None = None) -> tuple[int, int, int]:
    """(channels, height, width) of the samples ``unet`` denoises: read from its diffusers config
    (``in_channels``, ``sample_size``) when it has one, else ``sample_shape``, else ``default`` (e.g. the
    training images' shape). A ``sample_shape`` given with a config must agree with it.

    Example:
        >>> from diffusers import UNet2DModel
        >>> sample_shape_of(UNet2DModel(sample_size=16, in_channels=3, block_out_channels=(8, 8), norm_num_groups=4,
        ...                             down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2))
        (3, 16, 16)
        >>> sample_shape_of(lambda x_t, t: x_t, sample_shape=(1, 32, 32))
        (1, 32, 32)
    """
    given = _checked_shape(sample_shape) if sample_shape is not None else None
    configured = configured_sample_shape(unet)
    if configured is not None:
        if given is not None and given != configured:
            raise ValueError(
                f"sample_shape={given} disagrees with the UNet's config, which makes {configured} (in_channels, "
                "sample_size); leave sample_shape out for a diffusers UNet, or give the one its config says."
            )
        return configured
    if given is None and default is not None:
        return _checked_shape(tuple(default))
    if given is None:
        raise ValueError(
            f"{type(getattr(unet, 'module', unet)).__name__} has no diffusers config (in_channels, sample_size), so "
            "the shape of its samples is unknown; pass sample_shape=(channels, height, width), e.g. (1, 32, 32)."
        )
    return given


def configured_sample_shape(unet: Any) -> tuple[int, int, int] | None:
    """(in_channels, height, width) from ``unet``'s diffusers config (``sample_size``), None without one.

    Example:
        >>> configured_sample_shape(lambda x_t, t: x_t) is None
        True
    """
    config = getattr(getattr(unet, "module", unet), "config", None)  # through DDP
    if config is None or not hasattr(config, "sample_size") or not hasattr(config, "in_channels"):
        return None
    size = config.sample_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return int(config.in_channels), int(height), int(width)


def _checked_shape(shape: Any) -> tuple[int, int, int]:
    try:
        values = tuple(shape)
    except TypeError:
        values = ()
    if len(values) != 3 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"sample_shape={shape!r} must be three positive integers (channels, height, width).")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def denoise(unet: Callable[..., Any], noise: torch.Tensor, scheduler: Any, steps: int) -> torch.Tensor:
    """Run ``steps`` DDIM steps (eta = 0) from ``noise`` (N, C, H, W); images in [-1, 1].

    The loop of diffusers' ``DDIMPipeline``, without ``torch.no_grad``: call it under
    ``torch.no_grad()`` to sample, or with gradients to train through the sampler. ``unet``
    is called as ``unet(x_t, t)`` with integer timesteps ``t`` of shape (N,) (as in training) and
    may return a tensor or an object with ``.sample``.

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
        out = unet(x, t.expand(x.shape[0]))
        x = scheduler.step(getattr(out, "sample", out), t, x).prev_sample
    return x.clamp(-1, 1)


class DDIMGenerator(nn.Module):
    """A UNet and a few DDIM steps as a generator: noise ``z`` -> images in [-1, 1].

    ``z`` is (N, C·H·W) noise (or already (N, C, H, W)), standard normal or from the objective's prior;
    the output is deterministic in ``z`` and differentiable with respect to the UNet (and its scores). Use
    it wherever a generator of latents is expected, e.g.
    ``lt_plugins.metrics.evaluate(DDIMGenerator(unet), ..., latent_dim=g.latent_dim)``.

    Args:
        unet: a diffusers ``UNet2DModel`` (wrapped or not), or any ``unet(x_t, t)`` (t of shape (N,))
            with ``sample_shape``.
        scheduler: the scheduler it was trained with (its noise schedule is reused), or a DDIM one.
        steps: DDIM steps per sample.
        image_shape: the former name of ``sample_shape``; still accepted.
        sample_shape: (C, H, W); default from the UNet's config (`sample_shape_of`).

    Example:
        >>> from diffusers import UNet2DModel
        >>> unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
        ...                    norm_num_groups=4, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        >>> gen = DDIMGenerator(unet, steps=2)
        >>> gen.latent_dim, tuple(gen(torch.randn(3, gen.latent_dim)).shape)
        (64, (3, 1, 8, 8))
        >>> gen = DDIMGenerator(lambda x_t, t: x_t * 0 + t.view(-1, 1, 1, 1) / 1000, steps=2, sample_shape=(1, 2, 2))
        >>> tuple(gen(torch.randn(3, 4)).shape)
        (3, 1, 2, 2)
    """

    def __init__(
        self,
        unet: Callable[..., Any],
        scheduler: Any = None,
        steps: int = DEFAULT_SAMPLE_STEPS,
        image_shape: Sequence[int] | None = None,
        *,
        sample_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if image_shape is not None and sample_shape is not None and tuple(image_shape) != tuple(sample_shape):
            raise ValueError(f"image_shape={tuple(image_shape)} and sample_shape={tuple(sample_shape)} disagree; "
                             "give only sample_shape.")
        self.unet = unet
        self.scheduler = ddim_scheduler(scheduler) if not _is_ddim(scheduler) else scheduler
        self.steps = steps
        self.sample_shape = sample_shape_of(unet, sample_shape if sample_shape is not None else image_shape)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The former name of `sample_shape`."""
        return self.sample_shape

    @property
    def latent_dim(self) -> int:
        return math.prod(self.sample_shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return denoise(self.unet, z.reshape(z.shape[0], *self.sample_shape), self.scheduler, self.steps)


def _is_ddim(scheduler: Any) -> bool:
    return type(scheduler).__name__ == "DDIMScheduler"


def pipeline(unet: nn.Module, scheduler: Any = None):
    """A diffusers ``DDIMPipeline`` around a diffusers ``unet`` (wrapped or merged), with the DDIM schedule of
    `ddim_scheduler`. `sample` runs the same loop for any ``unet(x_t, t)``.

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
    sample_shape: Sequence[int] | None = None,
    prior: LatentMixture | None = None,
) -> torch.Tensor:
    """``n`` images (N, C, H, W) in [-1, 1] from ``unet`` with ``steps`` DDIM steps (`denoise`, under ``no_grad``).

    ``unet`` is a diffusers UNet or any ``unet(x_t, t)`` module (give ``sample_shape`` when it
    carries no diffusers config). Seeded: ``generator`` is a CPU ``torch.Generator`` or a seed for
    one; the noise is drawn on the CPU (as diffusers' ``randn_tensor`` does), so every device
    starts from the same ``x_T``. For a diffusers UNet the images are those of diffusers'
    ``DDIMPipeline`` (`pipeline`) with that generator, and for any UNet those of
    ``DDIMGenerator(unet, scheduler, steps)(z)`` for that noise. With ``prior`` (a
    `lt_plugins.generate.LatentMixture`, as `lt_plugins.objectives.DenoisingObjective` takes), ``x_T``
    is drawn from that mixture instead. The UNet runs in eval mode and gets its mode back.

    Example:
        >>> from diffusers import UNet2DModel
        >>> unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
        ...                    norm_num_groups=4, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        >>> torch.equal(sample(unet, 2, steps=2, generator=1), sample(unet, 2, steps=2, generator=1))
        True
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer (images to sample).")
    shape = sample_shape_of(unet, sample_shape)
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    ddim = scheduler if _is_ddim(scheduler) else ddim_scheduler(scheduler)
    noise = LatentCall(shape, prior=prior)
    param = next((p for p in unet.parameters() if p.is_floating_point()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    was_training = unet.training
    unet.eval()
    try:
        with torch.no_grad():
            batches = [
                denoise(unet, noise.latents(min(batch_size, n - start), generator).to(device, dtype), ddim, steps)
                for start in range(0, n, batch_size)
            ]
    finally:
        unet.train(was_training)
    return torch.cat(batches)


def scheduler_from(description: dict[str, Any] | None, prediction_type: str = "epsilon") -> Any:
    """The ``DDPMScheduler`` an objective's ``describe()["scheduler"]`` records (default: ``DDPMScheduler()``), for a
    UNet that predicts ``prediction_type`` (the objective's ``describe()["prediction_type"]``).

    Example:
        >>> scheduler_from({"class": "DDPMScheduler", "num_train_timesteps": 500, "beta_schedule": "linear"}).config.num_train_timesteps
        500
        >>> scheduler_from(None, "v_prediction").config.prediction_type
        'v_prediction'
    """
    from diffusers import DDPMScheduler

    from .objectives.denoising import checked_prediction_type

    checked_prediction_type(prediction_type, "The recorded")
    if not isinstance(description, dict):
        return DDPMScheduler(prediction_type=prediction_type)
    keys = ("num_train_timesteps", "beta_start", "beta_end")
    kwargs = {k: description[k] for k in keys if isinstance(description.get(k), (int, float))}
    betas = description.get("trained_betas")
    if isinstance(betas, list) and betas:
        kwargs.update(trained_betas=betas, num_train_timesteps=len(betas))
    elif isinstance(description.get("beta_schedule"), str) and description["beta_schedule"] != "trained_betas":
        kwargs["beta_schedule"] = description["beta_schedule"]
    return DDPMScheduler(**kwargs, prediction_type=prediction_type)
