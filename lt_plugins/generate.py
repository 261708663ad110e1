"""How a generator is called: the shape of one latent, and the call that turns latents into images.

Public generators are not all ``G(z)`` with z of shape (N, latent_dim): StyleGAN2-ADA's is
``G(z, c)``, rosinality's ``G([z])``, the pytorch/examples DCGAN takes z as (N, nz, 1, 1).
`LatentCall` holds both halves -- ``latent_shape`` and ``generate(model, z)`` -- and is the one
way the search, its sample grids, the metrics and the CLI turn latents into images.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

Generate = Callable[[nn.Module, torch.Tensor], Any]


def import_callable(path: str) -> Callable[..., Any]:
    """The object at ``"package.module:name"`` (``name`` may be dotted: ``module:Class.method``).

    Example:
        >>> import_callable("math:sqrt")(16.0)
        4.0
    """
    module_name, sep, attr = str(path).partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{path!r} is not of the form 'package.module:name' (e.g. 'mygan.models:Generator').")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"Cannot import module {module_name!r} for {path!r}: {err}. Is it on PYTHONPATH?") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"Module {module_name!r} has no attribute {attr!r} (from {path!r}).")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{path!r} is a {type(obj).__name__}, not something that can be called.")
    return obj


def as_latent_shape(latent_shape: int | Sequence[int] | None, latent_dim: int | None = None) -> tuple[int, ...] | None:
    """``latent_shape`` as a tuple of positive ints (``latent_dim=n`` is shorthand for ``(n,)``), or None.

    Example:
        >>> as_latent_shape((100, 1, 1)), as_latent_shape(None, latent_dim=64), as_latent_shape(512)
        ((100, 1, 1), (64,), (512,))
    """
    shapes = []
    for name, value in (("latent_shape", latent_shape), ("latent_dim", latent_dim)):
        if value is None:
            continue
        dims = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
        try:
            dims = tuple(dims)
        except TypeError:
            dims = (value,)
        if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
            raise ValueError(
                f"{name}={str(value)[:80]} is not valid; it is the shape of one latent, positive integers "
                "(latent_shape=(512,) for G(z) with z of shape (N, 512), (100, 1, 1) for (N, 100, 1, 1))."
            )
        shapes.append((name, dims))
    if len(shapes) == 2 and shapes[0][1] != shapes[1][1]:
        raise ValueError(f"latent_shape={shapes[0][1]} and latent_dim={shapes[1][1][0]} disagree; pass one of them.")
    return shapes[0][1] if shapes else None


@dataclass(frozen=True)
class LatentCall:
    """Latents of shape (N, *latent_shape), drawn N(0, 1) on the CPU, and ``generate(model, z)`` -> images in [-1, 1].

    ``generate`` defaults to ``model(z)``; it may be a callable or a ``"package.module:function"`` path, which
    is what a ticket can record (a lambda cannot be saved).

    Example:
        >>> call = LatentCall((4, 1, 1), generate=lambda G, z: G(z.flatten(1)))
        >>> call.latents(2, torch.Generator().manual_seed(0)).shape
        torch.Size([2, 4, 1, 1])
        >>> call(nn.Linear(4, 3), torch.zeros(2, 4, 1, 1)).shape
        torch.Size([2, 3])
    """

    latent_shape: tuple[int, ...]
    generate: Generate | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "latent_shape", as_latent_shape(self.latent_shape))
        if self.generate is not None and not isinstance(self.generate, str) and not callable(self.generate):
            raise TypeError(f"generate must be a callable generate(model, z) or 'module:function', got {self.generate!r}.")

    @property
    def generate_fn(self) -> Generate | None:
        return import_callable(self.generate) if isinstance(self.generate, str) else self.generate

    def latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` latents (CPU, float32) from ``generator``; for (d,) the stream of ``torch.randn(n, d)``."""
        return torch.randn(n, *self.latent_shape, generator=generator)

    def __call__(self, model: nn.Module, z: torch.Tensor) -> torch.Tensor:
        fn = self.generate_fn
        out = fn(model, z) if fn is not None else model(z)
        return getattr(out, "sample", out)

    def describe(self) -> dict[str, Any]:
        """What a ticket records: the latent shape, and ``generate`` when it is an importable path."""
        return {"latent_shape": list(self.latent_shape),
                "generate": self.generate if isinstance(self.generate, str) else None}

    def check(self, model: nn.Module, device: torch.device | str) -> torch.Tensor:
        """Call the model once on two zero latents; a failure becomes an error that shows the fix."""
        z = torch.zeros(2, *self.latent_shape, device=device)
        shown = "generate(model, z)" if self.generate is not None else f"{type(model).__name__}(z)"
        try:
            out = self(model, z)
        except Exception as err:  # third-party code raises anything
            raise ValueError(
                f"The search calls {shown} with z of shape {tuple(z.shape)}, and it failed: "
                f"{type(err).__name__}: {str(err)[:300]}\nIf your generator is called another way, say how: "
                "generate=lambda G, z: G(z, None) for StyleGAN2-ADA's G(z, c), generate=lambda G, z: G([z])[0] for "
                "a G([z]) that returns (images, latents); latent_shape=(nz, 1, 1) for a DCGAN that takes z shaped "
                "(N, nz, 1, 1). (CLI: --generate module:function, --latent-shape 100 1 1.)"
            ) from err
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"{shown} with z of shape {tuple(z.shape)} returned {got}, not images (N, C, H, W). Pass "
                "generate=lambda G, z: ... that returns the image tensor (e.g. G(z)[0] when it returns a tuple)."
            )
        return out


def latent_sample(
    model: nn.Module, call: LatentCall, n: int, generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """``n`` images from ``model`` on latents drawn on the CPU from ``generator`` (so any device gives the same z).

    Example:
        >>> gen = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Unflatten(1, (1, 4, 4)))
        >>> latent_sample(gen, LatentCall((4,)), 3, torch.Generator().manual_seed(0), "cpu").shape
        torch.Size([3, 1, 4, 4])
    """
    z = call.latents(n, generator).to(device)
    with torch.no_grad():
        return call(model, z)


# Families whose models are UNets: sampled by DDIM from noise shaped like an image.
DENOISING_FAMILIES = ("diffusers", "unet")


def ticket_generator(ticket: Any, model: nn.Module, *, sample_steps: int | None = None) -> tuple[nn.Module, LatentCall]:
    """(generator, call) that turn latents into images for an applied ticket, for metrics and sample grids.

    A latent generator is the model itself, called as the ticket recorded (`LatentCall`), else as its
    family reads it off the model. A UNet becomes a `lt_plugins.diffusion.DDIMGenerator` over the noise
    schedule its objective recorded, its latents noise of the sample shape.

    Example:
        >>> import lt_plugins as lt
        >>> from lt_plugins.models import DCGANGenerator
        >>> ticket = lt.Ticket.from_model(lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=8)))
        >>> ticket_generator(ticket, ticket.apply())[1].latent_shape
        (8,)
    """
    from .adapters import get_adapter

    if ticket.spec["family"] in DENOISING_FAMILIES:
        from .diffusion import DDIMGenerator, sample_shape_of, scheduler_from

        objective = ticket.objective if isinstance(ticket.objective, dict) else {}
        shape = sample_shape_of(model, objective.get("sample_shape"))
        steps = sample_steps or objective.get("sample_steps") or 8
        return DDIMGenerator(model, scheduler_from(objective.get("scheduler")), steps, sample_shape=shape), LatentCall(shape)
    if ticket.call is not None:
        return model, ticket.call
    shape = get_adapter(ticket.spec["family"]).latent_shape(model)
    if shape is None:
        raise ValueError(
            f"The ticket records no latent shape and {ticket.spec['class']} does not say what z it takes; "
            "pass it (CLI: --latent-shape 512, and --generate module:function if it is not called as G(z))."
        )
    return model, LatentCall(shape)
