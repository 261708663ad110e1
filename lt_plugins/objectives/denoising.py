"""Denoising for diffusion UNets: the loss a DDPM UNet is trained with, as a ticket-search objective.

Any ``unet(x_t, t)`` is searched this way: a diffusers ``UNet2DModel``, or a UNet of your own
whose ``forward(x, t)`` takes integer timesteps of shape (N,) and carries no diffusers config.

A UNet is not a generator of latents, so this objective is a `ModelObjective`: `lt_plugins.TicketSearch`
calls ``objective(model, batch_size)`` instead of ``objective(generator(z))``, and draws its sample
grids with ``objective.sample`` (`lt_plugins.diffusion.sample`, the one DDIM loop).
"""

from __future__ import annotations

import weakref
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import world
from ..generate import LatentCall, LatentMixture, checked_prior
from .base import ModelObjective, Objective

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def checked_prediction_type(value: Any, whose: str) -> str:
    """``value`` if the package trains and samples that prediction type, else a ValueError that begins with ``whose``.

    Example:
        >>> checked_prediction_type("sample", "The scheduler's")
        'sample'
    """
    if value not in PREDICTION_TYPES:
        raise ValueError(f"{whose} prediction_type={value!r} is not supported; use one of {list(PREDICTION_TYPES)}.")
    return value


def _scheduler(scheduler: Any) -> Any:
    """A diffusers scheduler as given; None: ``DDPMScheduler()``; betas (1-D): a ``DDPMScheduler`` with them."""
    from diffusers import DDPMScheduler

    if scheduler is None:
        return DDPMScheduler()
    if isinstance(scheduler, (torch.Tensor, list, tuple)) or type(scheduler).__module__ == "numpy":
        betas = torch.as_tensor(scheduler, dtype=torch.float64)
        if betas.ndim != 1 or len(betas) < 2 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(
                f"Betas of shape {tuple(betas.shape)} are not a noise schedule: give one beta per training timestep, "
                "each in (0, 1), e.g. cosine_beta_schedule(1000)."
            )
        # A list keeps the scheduler's config JSON-serialisable (DDIMScheduler.from_config reuses it).
        return DDPMScheduler(num_train_timesteps=len(betas), trained_betas=betas.tolist())
    return scheduler


class DenoisingObjective(ModelObjective):
    """Noise-prediction loss of a UNet ``unet(x_t, t)`` under a diffusers noise scheduler.

    Every call draws a batch of real images ``x0``, timesteps ``t ~ U{0, ..., T-1}`` (shape (N,))
    and noise ``eps ~ N(0, I)``, noises the images with ``scheduler.add_noise`` and returns
    ``mean((unet(x_t, t) - eps)^2)`` -- the loss of diffusers' ``train_unconditional.py``
    (the target follows ``scheduler.config.prediction_type``: ``eps``, the velocity, or ``x0``).
    The UNet may return a tensor or an object with ``.sample``.

    A UNet without a diffusers config (e.g. a community DDPM ``Unet``) denoises images of the real
    images' shape, or of ``sample_shape`` when given (then checked against them). Its own noise
    schedule comes in as betas: ``DenoisingObjective(betas)`` with a 1-D tensor of betas is
    ``DDPMScheduler(num_train_timesteps=len(betas), trained_betas=betas)``.
    Before the first loss (`check_model`, which the search's first step runs), the sample shape is
    resolved and compared with the real images, and the UNet is called once on two samples, so a
    model that cannot be called as ``unet(x_t, t)`` fails at once with what to change.

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
        scheduler: the noise scheduler (default ``diffusers.DDPMScheduler()``: 1000 linear steps), or
            a 1-D tensor / sequence of betas (one per training timestep).
        sample_shape: (C, H, W) of the images the UNet denoises; read from a diffusers config when
            there is one (both given: they must agree); else the real images' shape once `prepare`
            has seen them (then `describe`, and so the ticket, records it). Needed to `sample` a
            config-less UNet before that.
        seed: seed of the batches, timesteps and noise.
        moments: an image objective applied to few-step samples, or None.
        moment_weight: weight of that term.
        moment_steps: DDIM steps of the samples it sees.
        moment_batch: samples per step for it (default: the search's batch size).
        sample_steps: DDIM steps of the sample grids (`sample`).
        prior: start the moment term's samples, and the sample grids, from noise ``x_T`` drawn from this
            `lt_plugins.generate.LatentMixture` instead of N(0, I) (the denoising loss keeps Gaussian noise).
            Few-step DDIM is a continuous map from ``x_T`` to an image, like a GAN's generator, so N(0, I)
            noise must land between digits and draw blends. Measured on MNIST it is a trade, not a default:
            3-5 more points of recognisable samples, a worse FD (README, "What the UNet predicts"). The
            ticket records the prior, and `lt_plugins.generate.ticket_generator` / ``lt-plugins eval``
            sample with it.

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

        A UNet of your own, ``forward(x, t)``, with its own betas:

        >>> class Net(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.conv = torch.nn.Conv2d(2, 1, 3, padding=1)
        ...     def forward(self, x, t):
        ...         return self.conv(torch.cat([x, (t.float() / 1000).view(-1, 1, 1, 1).expand_as(x)], 1))
        >>> objective = DenoisingObjective(torch.linspace(1e-4, 0.02, 1000), sample_shape=(1, 8, 8))
        >>> objective.prepare(torch.rand(16, 1, 8, 8) * 2 - 1, torch.device("cpu"))
        >>> objective(Net(), 4).ndim, objective.scheduler.config.num_train_timesteps
        (0, 1000)
    """

    def __init__(
        self,
        scheduler: Any = None,
        *,
        sample_shape: Sequence[int] | None = None,
        seed: int = 0,
        moments: Objective | None = None,
        moment_weight: float = 1.0,
        moment_steps: int = 4,
        moment_batch: int | None = None,
        sample_steps: int = 8,
        prior: LatentMixture | None = None,
    ) -> None:
        from ..diffusion import _checked_shape

        self.scheduler = _scheduler(scheduler)
        self.sample_shape = _checked_shape(sample_shape) if sample_shape is not None else None
        if not hasattr(self.scheduler, "add_noise") or not hasattr(self.scheduler, "config"):
            raise TypeError(
                f"scheduler must be a diffusers noise scheduler (e.g. DDPMScheduler()), got {type(scheduler).__name__}."
            )
        self.prediction_type = checked_prediction_type(self.scheduler.config.get("prediction_type", "epsilon"),
                                                       "The scheduler's")
        if moments is not None and (not isinstance(moments, Objective) or isinstance(moments, ModelObjective)):
            raise TypeError(f"moments must be an objective on images (e.g. lt.MomentMatching(features)), got {moments!r}.")
        sizes = {"moment_steps": moment_steps, "sample_steps": sample_steps}
        if moment_batch is not None:
            sizes["moment_batch"] = moment_batch
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DenoisingObjective({name}={value!r}) must be a positive integer.")
        if checked_prior(prior) is not None and moments is None:
            raise ValueError("prior= sets the noise the moment term's few-step samples start from, and there is no "
                             "moment term: give moments= (e.g. lt.MomentMatching(features)) too, or leave prior=None.")
        self.seed = seed
        self.sampler = torch.Generator().manual_seed(seed)
        self.moments = moments
        self.moment_weight = float(moment_weight)
        self.moment_steps = moment_steps
        self.moment_batch = moment_batch
        self.sample_steps = sample_steps
        self.prior = prior
        self.real: torch.Tensor | None = None
        self.device = torch.device("cpu")
        self._ddim: Any = None
        self._checked: weakref.ref | None = None  # the module check_model last passed
        self._shape_from_data: tuple[int, int, int] | None = None  # a config-less UNet's, recorded by describe

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    def prepare(self, real: torch.Tensor, device: torch.device) -> None:
        if real.ndim != 4 or real.shape[0] == 0:
            raise ValueError(f"DenoisingObjective needs real images (N, C, H, W), N >= 1; got shape {tuple(real.shape)}.")
        if self.sample_shape is not None and tuple(real.shape[1:]) != self.sample_shape:
            raise ValueError(
                f"sample_shape={self.sample_shape} but the real images are {tuple(real.shape[1:])}; resize the data "
                "(e.g. lt_plugins.data.load_mnist(image_size=...)) or give the shape the UNet is built for."
            )
        self.real, self.device = real, torch.device(device)
        self._checked = None
        if self.moments is not None:
            self.moments.prepare(real, device)

    def check_model(self, model: nn.Module) -> tuple[int, int, int]:
        """Check that ``model`` can be trained with this objective, before any step; return its sample shape.

        The shape comes from ``sample_shape`` or the model's diffusers config
        (`lt_plugins.diffusion.sample_shape_of`), else from the real images once `prepare` has seen
        them, and must be theirs. Then the model is called once,
        in eval mode without gradients, as ``unet(x_t, t)`` on two zero images with timesteps
        ``[0, T-1]`` (shape (2,)); a failure, or a prediction of another shape than ``x_t``, raises an
        error saying what to change. The first loss and `sample` run it; calling it again is cheap.

        Example:
            >>> import torch
            >>> objective = DenoisingObjective(sample_shape=(1, 4, 4))
            >>> objective.check_model(torch.nn.Conv2d(1, 1, 1))
            Traceback (most recent call last):
            ...
            TypeError: The UNet could not be called as unet(x_t, t) ...
        """
        from ..diffusion import configured_sample_shape, sample_shape_of

        if not isinstance(model, nn.Module):
            raise TypeError(
                f"DenoisingObjective is called with the UNet itself (objective(unet, batch_size)), got "
                f"{type(model).__name__}; TicketSearch does this for you."
            )
        module = getattr(model, "module", model)  # through DDP
        real_shape = tuple(self.real.shape[1:]) if self.real is not None else None
        shape = sample_shape_of(module, self.sample_shape, default=real_shape)
        self._shape_from_data = shape if self.sample_shape is None and configured_sample_shape(module) is None else None
        if real_shape is not None and shape != real_shape:
            raise ValueError(
                f"The UNet makes images of shape {shape} ({'sample_shape' if self.sample_shape else 'in_channels, sample_size'})"
                f" but the real images are {tuple(self.real.shape[1:])}; resize the data "
                "(e.g. lt_plugins.data.load_mnist(image_size=...)) or build the UNet for that size."
            )
        if self._checked is not None and self._checked() is module:
            return shape
        param = next((p for p in module.parameters() if p.is_floating_point()), None)
        device = param.device if param is not None else self.device
        x_t = torch.zeros(2, *shape, device=device, dtype=param.dtype if param is not None else torch.float32)
        t = torch.tensor([0, self.num_train_timesteps - 1], device=device)
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                out = module(x_t, t)
        except Exception as err:
            raise TypeError(
                f"The UNet could not be called as unet(x_t, t) with x_t of shape {tuple(x_t.shape)} and integer "
                f"timesteps t of shape (2,): {type(err).__name__}: {err}. DenoisingObjective calls the model "
                "this way in every step; give it a module whose forward(x, t) takes noisy images (N, C, H, W) and "
                "timesteps (N,) and returns the prediction (N, C, H, W), or fix sample_shape if it is not the "
                "shape the model is built for."
            ) from err
        finally:
            module.train(was_training)
        prediction = getattr(out, "sample", out)
        if not isinstance(prediction, torch.Tensor) or tuple(prediction.shape) != tuple(x_t.shape):
            got = tuple(prediction.shape) if isinstance(prediction, torch.Tensor) else type(prediction).__name__
            raise ValueError(
                f"unet(x_t, t) returned {got} for x_t of shape {tuple(x_t.shape)}; DenoisingObjective needs a "
                f"prediction ({self.prediction_type}) of x_t's own shape, as a tensor or an object with .sample. "
                "A UNet that also predicts the variance (2C output channels) should be built with C output channels."
            )
        self._checked = weakref.ref(module)
        return shape

    def _check(self, model: nn.Module) -> tuple[torch.Tensor, tuple[int, int, int]]:
        if self.real is None:
            raise RuntimeError("DenoisingObjective.prepare(real_images, device) must run before the loss is used.")
        return self.real, self.check_model(model)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the UNet should predict for ``add_noise(x0, noise, t)``, per the scheduler's prediction type."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            return self.scheduler.get_velocity(x0, noise, t)
        return x0

    def __call__(self, model: nn.Module, batch_size: int = 64) -> torch.Tensor:  # type: ignore[override]
        real, shape = self._check(model)
        # Every rank draws the same global batch and keeps its slice: the single-process batch, tiled.
        rank, size = world()
        mine = slice(rank * batch_size, (rank + 1) * batch_size)
        index = torch.randint(0, real.shape[0], (batch_size * size,), generator=self.sampler)[mine]
        t = torch.randint(0, self.num_train_timesteps, (batch_size * size,), generator=self.sampler)[mine]
        noise = torch.randn(batch_size * size, *shape, generator=self.sampler)[mine]
        x0, noise, t = real[index].to(self.device), noise.to(self.device), t.to(self.device)
        out = model(self.scheduler.add_noise(x0, noise, t), t)
        loss = F.mse_loss(getattr(out, "sample", out).float(), self.target(x0, noise, t).float())
        if self.moments is not None and self.moment_weight:
            loss = loss + self.moment_weight * self._moment_loss(model, shape, rank, size, batch_size)
        return loss

    def _moment_loss(self, model: nn.Module, shape: tuple[int, int, int], rank: int, size: int, batch_size: int) -> torch.Tensor:
        from ..diffusion import ddim_scheduler, denoise

        if self._ddim is None:
            self._ddim = ddim_scheduler(self.scheduler)
        batch = self.moment_batch or batch_size
        z = LatentCall(shape, prior=self.prior).latents(batch * size, self.sampler)[rank * batch : (rank + 1) * batch]
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

        shape = self.check_model(model)
        return sample(getattr(model, "module", model), n, steps=self.sample_steps, generator=generator,
                      scheduler=self.scheduler, sample_shape=shape, prior=self.prior)

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
        schedule = {k: config.get(k) for k in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end")}
        if config.get("trained_betas") is not None:  # the named schedule and its ends are then unused
            betas = self.scheduler.betas
            schedule.update(beta_schedule="trained_betas", beta_start=float(betas[0]), beta_end=float(betas[-1]),
                            trained_betas=[float(b) for b in betas])  # so a ticket can rebuild its sampler
        described: dict[str, Any] = {
            "name": "denoising",
            "prediction_type": self.prediction_type,
            "scheduler": {"class": type(self.scheduler).__name__, **schedule},
            "sample_steps": self.sample_steps,
        }
        if (self.sample_shape or self._shape_from_data) is not None:  # a ticket's sampler needs it without a config
            described["sample_shape"] = list(self.sample_shape or self._shape_from_data)
        if self.moments is not None:
            described.update(moments=self.moments.describe(), moment_weight=self.moment_weight,
                             moment_steps=self.moment_steps)
        if self.prior is not None:  # only when set: tickets and checkpoints without one read as before
            described["prior"] = self.prior.to_dict()
        return described
