"""How a generator is called: the shape of one latent, and the call that turns latents into images.

Public generators are not all ``G(z)`` with z of shape (N, latent_dim): StyleGAN2-ADA's is
``G(z, c)``, rosinality's ``G([z])``, the pytorch/examples DCGAN takes z as (N, nz, 1, 1).
`LatentCall` holds both halves -- ``latent_shape`` and ``generate(model, z)`` -- and is the one
way the search, its sample grids, the metrics and the CLI turn latents into images.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import asdict, dataclass
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
class LatentMixture:
    """Latents drawn from ``components`` Gaussians instead of one: ``z = s * mu_c + sqrt(1 - s^2) * eps``.

    A generator is a continuous map, so under z ~ N(0, I) some latents must fall between the data's
    classes and draw a blend of two (half a 4, half a 9). With a mixture, each component can settle
    on part of one class and the gaps between components, where little probability lies, take the
    blends. ``c`` is uniform over the components, ``eps ~ N(0, I)``, and the component means ``mu_c``
    are ``N(0, I)`` draws fixed by ``seed``; ``separation`` ``s`` in [0, 1) is the weight of the mean
    (0 gives N(0, I)). Every coordinate keeps variance ~1, so the generator sees latents of the scale
    it was built for. A ticket records the mixture (format version 4) and samples with it again.

    Why 100 components at separation 0.8 (the CLI's default, `lt_plugins.recipes.SearchJob`): on the
    demo's DCGAN at 600 steps they took the recognisable digits from 69.6% to 84.0% for the 10% ticket
    and from 70.2% to 85.7% for dense training, and halved the ticket's FD (3 seeds, benchmarks/quality.py,
    README). Fewer components draw fewer distinct digits (32: recall 0.07; 10 lost a digit), more give
    back some blends (256: 78% recognisable).

    Example:
        >>> prior = LatentMixture(components=4, separation=0.8)
        >>> z = prior.sample(1000, (8,), torch.Generator().manual_seed(0))
        >>> z.shape, round(float(z.var()), 1)
        (torch.Size([1000, 8]), 1.0)
    """

    components: int = 100
    separation: float = 0.8
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.components, bool) or not isinstance(self.components, int) or self.components < 1:
            raise ValueError(f"LatentMixture(components={self.components!r}) must be a positive integer, e.g. 100.")
        if isinstance(self.separation, bool) or not isinstance(self.separation, (int, float)) \
                or not 0 <= self.separation < 1:
            raise ValueError(f"LatentMixture(separation={self.separation!r}) is the weight of the component "
                             "means: a number in [0, 1), e.g. 0.8 (0 gives N(0, I)).")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"LatentMixture(seed={self.seed!r}) must be an integer.")

    def means(self, latent_shape: tuple[int, ...]) -> torch.Tensor:
        """The component means, (components, *latent_shape), the same on every machine."""
        return torch.randn(self.components, *latent_shape, generator=torch.Generator().manual_seed(self.seed))

    def sample(self, n: int, latent_shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """``n`` latents (CPU, float32): components, then noise, both from ``generator``."""
        component = torch.randint(self.components, (n,), generator=generator)
        noise = torch.randn(n, *latent_shape, generator=generator)
        return self.separation * self.means(latent_shape)[component] + math.sqrt(1 - self.separation**2) * noise

    def to_dict(self) -> dict[str, Any]:
        """What a ticket and a checkpoint record: every field, by name."""
        return asdict(self)


def checked_prior(prior: Any) -> LatentMixture | None:
    """``prior`` if it is a `LatentMixture` or None, else a TypeError saying what it must be.

    Example:
        >>> checked_prior(None) is None, checked_prior(LatentMixture()).components
        (True, 100)
    """
    if prior is not None and not isinstance(prior, LatentMixture):
        raise TypeError(f"prior must be an lt_plugins.generate.LatentMixture or None, got {type(prior).__name__}.")
    return prior


@dataclass(frozen=True)
class LatentCall:
    """Latents of shape (N, *latent_shape), drawn on the CPU, and ``generate(model, z)`` -> images in [-1, 1].

    ``generate`` defaults to ``model(z)``; it may be a callable or a ``"package.module:function"`` path, which
    is what a ticket can record (a lambda cannot be saved). Latents are N(0, 1), or drawn from ``prior``
    (a `LatentMixture`) when one is given.

    Example:
        >>> call = LatentCall((4, 1, 1), generate=lambda G, z: G(z.flatten(1)))
        >>> call.latents(2, torch.Generator().manual_seed(0)).shape
        torch.Size([2, 4, 1, 1])
        >>> call(nn.Linear(4, 3), torch.zeros(2, 4, 1, 1)).shape
        torch.Size([2, 3])
    """

    latent_shape: tuple[int, ...]
    generate: Generate | str | None = None
    prior: LatentMixture | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "latent_shape", as_latent_shape(self.latent_shape))
        if self.generate is not None and not isinstance(self.generate, str) and not callable(self.generate):
            raise TypeError(f"generate must be a callable generate(model, z) or 'module:function', got {self.generate!r}.")
        checked_prior(self.prior)

    @property
    def generate_fn(self) -> Generate | None:
        return import_callable(self.generate) if isinstance(self.generate, str) else self.generate

    def latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` latents (CPU, float32) from ``generator``: from the prior, else (for (d,)) the stream of
        ``torch.randn(n, d)``."""
        if self.prior is not None:
            return self.prior.sample(n, self.latent_shape, generator)
        return torch.randn(n, *self.latent_shape, generator=generator)

    def __call__(self, model: nn.Module, z: torch.Tensor) -> torch.Tensor:
        fn = self.generate_fn
        out = fn(model, z) if fn is not None else model(z)
        return getattr(out, "sample", out)

    def describe(self) -> dict[str, Any]:
        """What a ticket records: the latent shape, ``generate`` when it is an importable path, and the prior
        (only when there is one, so a ticket with N(0, 1) latents stays readable by versions without priors)."""
        described = {"latent_shape": list(self.latent_shape),
                     "generate": self.generate if isinstance(self.generate, str) else None}
        return described if self.prior is None else {**described, "prior": self.prior.to_dict()}

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


def no_latent_shape(search: str, model: nn.Module, family: str) -> str:
    """Why ``search`` cannot draw latents for ``model`` of ``family``, and the fix: a latent shape, or for a UNet the
    denoising loss.

    Example:
        >>> no_latent_shape("TicketSearch", nn.Identity(), "unet").split(":")[0]
        'Identity is a denoiser (the unet family, forward(x, t))'
    """
    name = type(model).__name__
    if family in DENOISING_FAMILIES:
        return (f"{name} is a denoiser (the {family} family, forward(x, t)): it takes noisy images, not latents, so "
                f"search it with the denoising loss, {search}(unet, lt.DenoisingObjective(), ...), and "
                "moments=lt.MomentMatching(...) for the moment term on few-step samples (README: Diffusion tickets). "
                "The command line's search drives latent generators only: search a UNet from Python.")
    return (f"{search} cannot tell the shape of the latents {name} takes; pass latent_dim=z_dim, or "
            "latent_shape=(nz, 1, 1) for a DCGAN that takes z shaped (N, nz, 1, 1) (CLI: --latent-shape 100 1 1).")


def ticket_generator(ticket: Any, model: nn.Module, *, sample_steps: int | None = None) -> tuple[nn.Module, LatentCall]:
    """(generator, call) that turn latents into images for an applied ticket, for metrics and sample grids.

    A latent generator is the model itself, called as the ticket recorded (`LatentCall`), else as its
    family reads it off the model. A UNet becomes a `lt_plugins.diffusion.DDIMGenerator` over the noise
    schedule its objective recorded, its latents noise of the sample shape (from the prior the objective
    recorded, if any).

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
        from .ticket.sampling import parse_prior

        objective = ticket.objective if isinstance(ticket.objective, dict) else {}
        shape = sample_shape_of(model, objective.get("sample_shape"))
        steps = sample_steps or objective.get("sample_steps") or 8
        noise = LatentCall(shape, prior=parse_prior(objective.get("prior"), "'objective'.'prior'"))
        scheduler = scheduler_from(objective.get("scheduler"), objective.get("prediction_type", "epsilon"))
        return DDIMGenerator(model, scheduler, steps, sample_shape=shape), noise
    if ticket.call is not None:
        return model, ticket.call
    shape = get_adapter(ticket.spec["family"]).latent_shape(model)
    if shape is None:
        raise ValueError(
            f"The ticket records no latent shape and {ticket.spec['class']} does not say what z it takes; "
            "pass it (CLI: --latent-shape 512, and --generate module:function if it is not called as G(z))."
        )
    return model, LatentCall(shape)
