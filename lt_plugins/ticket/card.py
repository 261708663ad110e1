"""What a ticket shows: the model card (a template rendered through ``huggingface_hub.ModelCard``)
and its sample thumbnail.

The card's metadata holds what the Hub validates: tags, library, base model, and under
``metrics`` / ``model-index`` only the ticket's scores among `METRIC_NAMES` (an evaluation's
settings such as ``n_fake`` or ``feature_key`` are listed in the text, not as metrics).
"""

from __future__ import annotations

import io
import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..generate import DENOISING_FAMILIES
from .format import MAX_SAMPLES_BYTES, MAX_SAMPLES_PIXELS, SAMPLES_NAME, TicketError, _read_binary
from .sampling import parse_prior

if TYPE_CHECKING:
    from ..generate import LatentMixture
    from .core import Ticket

TEMPLATE = Path(__file__).with_name("card_template.md")
# Scores `lt_plugins.metrics` reports (and a search's loss); the rest of a metrics dict is settings.
METRIC_NAMES = ("fd", "fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "loss")
THUMBNAIL_GRID = 4  # the thumbnail shows the first 4x4 samples
THUMBNAIL_TILE = 64  # pixels on a tile's longer side, at most
MAX_THUMBNAIL_BYTES = 40_000


def format_number(value: Any) -> str:
    """A metric as the card prints it: 4 significant digits, thousands with one decimal.

    Example:
        >>> format_number(0.28290000000000004), format_number(2638.584), format_number(7), format_number("x")
        ('0.2829', '2,638.6', '7', 'x')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
    return f"{value:.4g}"


def image_grid(samples: Any) -> Any:
    """A PIL image: ``samples`` (N, C, H, W) in [-1, 1] laid out in a square grid, or a PIL image as is.

    Example:
        >>> image_grid(torch.zeros(4, 1, 8, 8)).size
        (22, 22)
    """
    from PIL import Image

    if samples is None or isinstance(samples, Image.Image):
        return samples
    if not isinstance(samples, torch.Tensor):
        raise TicketError(f"samples must be an image tensor (N, C, H, W) or a PIL image, got {type(samples).__name__}.")
    if samples.ndim == 3:
        samples = samples[None]
    if samples.ndim != 4 or samples.shape[1] not in (1, 3) or samples.shape[0] == 0:
        raise TicketError(
            f"samples must be images (N, C, H, W) with C 1 or 3, values in [-1, 1]; got shape {tuple(samples.shape)}."
        )
    from torchvision.utils import make_grid

    images = samples.detach().to("cpu", torch.float32).clamp(-1, 1)
    grid = make_grid(images, nrow=math.ceil(math.sqrt(images.shape[0])), normalize=True, value_range=(-1, 1))
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(pixels)


def thumbnail(samples: Any) -> Any:
    """A small PIL image of ``samples``: the first 4x4 images (tiles of at most 64 px) in a grid,
    or a given PIL image shrunk to at most 4 tiles a side; None stays None.

    Example:
        >>> thumbnail(torch.zeros(64, 3, 128, 128)).size
        (266, 266)
    """
    from PIL import Image

    if isinstance(samples, torch.Tensor) and samples.ndim == 4:
        samples = samples[: THUMBNAIL_GRID**2]
        if max(samples.shape[-2:]) > THUMBNAIL_TILE:
            scale = THUMBNAIL_TILE / max(samples.shape[-2:])
            size = [max(1, round(s * scale)) for s in samples.shape[-2:]]
            samples = torch.nn.functional.interpolate(samples.detach().float(), size=size, mode="area")
    image = image_grid(samples)
    side = THUMBNAIL_GRID * (THUMBNAIL_TILE + 2) + 2
    if image is not None and max(image.size) > side:
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return image


def thumbnail_bytes(image: Any) -> bytes:
    """``image`` as WebP of at most `MAX_THUMBNAIL_BYTES`: lossless when that fits, else lossy.

    Example:
        >>> from PIL import Image
        >>> len(thumbnail_bytes(Image.new("RGB", (64, 64)))) < 1000
        True
    """
    for options in ({"lossless": True}, {"quality": 90}, {"quality": 75}, {"quality": 50}, {"quality": 25}):
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP", method=6, **options)
        if buffer.tell() <= MAX_THUMBNAIL_BYTES:
            return buffer.getvalue()
    half = image.resize((max(1, image.width // 2), max(1, image.height // 2)))
    return thumbnail_bytes(half)


def read_samples(folder: Path, files: dict[str, Any], name: str = SAMPLES_NAME) -> Any:
    """The sample image ``name`` as a PIL image, or None: it is optional, and a bad one is dropped with a warning.

    Example:
        >>> import tempfile
        >>> read_samples(Path(tempfile.mkdtemp()), {}) is None
        True
    """
    path = folder / name
    if not path.is_file():
        return None
    from PIL import Image

    try:
        if name in files:
            data = _read_binary(folder, name, files, MAX_SAMPLES_BYTES)
        elif path.stat().st_size <= MAX_SAMPLES_BYTES:  # a ticket saved before samples were hashed
            data = path.read_bytes()
        else:
            raise TicketError(f"it is {path.stat().st_size} bytes, more than {MAX_SAMPLES_BYTES}")
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_SAMPLES_PIXELS:
                raise TicketError(f"it claims {width}x{height} pixels, more than {MAX_SAMPLES_PIXELS}")
            image.load()
            return image.copy()
    except Exception as err:  # decoration, never a reason to refuse a ticket (PIL raises many kinds)
        warnings.warn(f"{path} could not be used ({' '.join(str(err).split())[:200]}); loading the ticket without it.")
        return None


def scores(metrics: dict[str, Any]) -> dict[str, float]:
    """The entries of ``metrics`` that are scores (`METRIC_NAMES`, finite numbers), not settings.

    Example:
        >>> scores({"fd": 3.5, "density": 0.2829, "n_fake": 100, "feature_key": "ab12", "seed": 0})
        {'fd': 3.5, 'density': 0.2829}
    """
    return {
        k: float(v) for k, v in metrics.items()
        if k in METRIC_NAMES and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def render_card(ticket: Ticket, repo_id: str | None, samples_name: str | None) -> str:
    """The model card (README.md) of ``ticket``, with ``repo_id`` in its loading snippet.

    Example:
        >>> import lt_plugins as lt
        >>> ticket = lt.Ticket.from_model(lt.wrap(torch.nn.Linear(4, 4)), metrics={"fd": 1.23456, "n_fake": 8})
        >>> text = render_card(ticket, "me/linear", None)
        >>> "| fd | 1.235 |" in text, "n_fake 8" in text, 'from_pretrained("me/linear")' in text
        (True, True, True)
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    family, cls = ticket.spec["family"], ticket.spec["class"]
    short = cls.rpartition(".")[2]
    found = scores(ticket.metrics)
    objective = ticket.objective
    if isinstance(objective, dict):
        objective = objective.get("name", json.dumps(objective))
    data = ModelCardData(
        library_name="lt-plugins",
        base_model=ticket.base.repo_id if ticket.base else None,
        tags=["lottery-ticket", "lt-plugins", "pruning", family],
        metrics=sorted(found) or None,
        model_name=f"{short} ticket at {ticket.density:.1%}" if found else None,
        eval_results=[
            EvalResult(
                task_type="unconditional-image-generation",
                dataset_type=str(ticket.metrics.get("dataset", "custom")),
                dataset_name=str(ticket.metrics.get("dataset", "the search's data")),
                metric_type=name,
                metric_value=float(format_number(value).replace(",", "")),
            )
            for name, value in sorted(found.items())
        ] or None,
    )
    masked, rebuilt, origin = _origin(ticket)
    if ticket.config.weight_init == "keep" and ticket.base is None:
        apply_line = f"model = ticket.apply(base_model)  # the very {cls} the ticket was made on"
    elif family in ("dcgan", "stylegan", "diffusers", "timm"):
        apply_line = "model = ticket.apply()"
    else:
        apply_line = f"model = ticket.apply({short}(...))  # a fresh {cls}"
    made = ticket.created_with
    facts = [
        ("family", family),
        ("class", f"`{cls}`"),
        ("density", f"{ticket.density:.4%} ({ticket.config.scope} scope)"),
        origin,
        ("weight init", ticket.config.weight_init),
        ("masked tensors", f"{len(ticket.masks)} ({sum(m.numel() for m in ticket.masks.values()):,} weights)"),
        ("portable", "yes" if ticket.portable else "no"),
        ("made with", f"lt_plugins {made.get('lt_plugins', '?')}, torch {made.get('torch', '?')}, "
                      f"{made.get('platform', '?')}"),
    ]
    return str(ModelCard.from_template(
        data,
        template_path=TEMPLATE,
        short=short,
        density_percent=f"{ticket.density:.1%}",
        masked=masked,
        objective=objective,
        samples=samples_name,
        where=repo_id or "path/to/this/folder",
        apply_line=apply_line,
        sample_lines=_sample_lines(ticket),
        rebuilt=rebuilt,
        facts=facts,
        metrics=[(k, format_number(v)) for k, v in sorted(found.items())],
        settings=[(k, format_number(v)) for k, v in sorted(ticket.metrics.items()) if k not in found],
    ))


def _sample_lines(ticket: Ticket) -> list[str]:
    """The card's lines that sample the applied ``model`` with the latent prior the ticket records (a GAN's, or a
    UNet's starting noise); none without a prior, where ``model(z)`` with z ~ N(0, 1) is what a reader expects."""
    objective = ticket.objective if isinstance(ticket.objective, dict) else {}
    if ticket.call is not None and ticket.call.prior is not None:
        return [f"z = ticket.call.latents(16, torch.Generator().manual_seed(0))  # its latents: {_prior_text(ticket.call.prior)}",
                "images = ticket.call(model.eval(), z)"]
    if ticket.spec["family"] in DENOISING_FAMILIES and objective.get("prior") is not None:
        prior = parse_prior(objective["prior"], "'objective'.'prior'")
        return ["from lt_plugins.generate import ticket_generator",
                f"sampler, noise = ticket_generator(ticket, model.eval())  # its DDIM sampler; x_T: {_prior_text(prior)}",
                "with torch.no_grad():",
                "    images = sampler(noise.latents(16, torch.Generator().manual_seed(0)))"]
    return []


def _prior_text(prior: LatentMixture) -> str:
    """The card's words for a `lt_plugins.generate.LatentMixture`."""
    return (f"a mixture of {prior.components} Gaussians (separation {prior.separation}, seed {prior.seed}), "
            "not N(0, 1)")


def _origin(ticket: Ticket) -> tuple[str, str, tuple[str, str]]:
    """Where the masked weights come from, for the card: what is masked, what apply does, a table row."""
    cls, config, base = ticket.spec["class"], ticket.config, ticket.base
    if config.weight_init != "keep":
        return (
            f"the frozen random weights of `{cls}`, drawn from seed {config.seed}",
            "rebuilds the network from the seed",
            ("seed", str(config.seed)),
        )
    if base is None:
        return (
            f"the pretrained weights of a `{cls}` whose Hub repo this ticket does not record: pass that very "
            "model to `apply`",
            "takes the model you pass",
            ("base", "not recorded"),
        )
    at = f"commit `{base.revision}`" + (f", subfolder `{base.subfolder}`" if base.subfolder else "")
    return (
        f"the pretrained weights of `{cls}` from `{base.repo_id}` at {at}",
        f"loads the base from the Hub at {at}",
        ("base", f"`{base.repo_id}` at {at}"),
    )
