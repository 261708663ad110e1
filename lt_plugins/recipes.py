"""Recipes: the layer between the command line and the library -- one ticket search described as data, run end to end.

`SearchJob` is every setting of ``lt-plugins search``, each defined once: a dataclass field
whose ``metadata["help"]`` is its documentation and whose default comes from `TicketConfig`,
`TicketSearch` or `MomentMatching` where the library has one; the CLI makes its flags from these fields. The
benchmarks and the CLI both call `run_search`.

Example:
    >>> job = SearchJob(density=0.2, steps=10)
    >>> job.density, job.batch_size == inspect.signature(SearchLoop).parameters["batch_size"].default
    (0.2, True)
"""

from __future__ import annotations

import inspect
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._repr import bounded_repr
from .config import SCOPES, SCORE_INITS, WEIGHT_INITS, TicketConfig
from .distributed import process_state
from .generate import LatentMixture
from .objectives.moments import NORMALISATIONS, MomentMatching
from .search import SearchLoop

GENERATORS = ("dcgan", "stylegan")
# The feature networks of a UNet's moment term on few-step DDIM samples: the plain ones. The
# adversarially trained ones, the GANs' default (`SearchJob.features`), drew cleaner strokes but
# fewer digits there (10% ticket, 1000 steps, seed 0, 4-step DDIM: FD 208.5, 44.1% recognisable,
# rarest class 0.8%, against 102.0, 50.4% and 4.4%; README, "Diffusion tickets").
DIFFUSION_MOMENT_FEATURES = "mnist_classes+mnist_classes:2"
# The CLI draws weights afresh: "keep" masks a pretrained base, which only the library API takes.
DRAWN_WEIGHT_INITS = tuple(w for w in WEIGHT_INITS if w != "keep")


def _option(default: Any, help: str, **metadata: Any) -> Any:
    """A SearchJob field: its default, and its flag's help (plus ``choices``, ``metavar`` or ``flag``)."""
    return field(default=default, metadata={"help": help, **metadata})


def _ticket_option(name: str, **metadata: Any) -> Any:
    """A SearchJob field with `TicketConfig`'s default and help for ``name``."""
    source = TicketConfig.__dataclass_fields__[name]
    return _option(source.default, **{"help": source.metadata["help"], **metadata})


def _moments_option(name: str, help: str, **metadata: Any) -> Any:
    """A SearchJob field with `MomentMatching`'s default for ``name``."""
    return _option(inspect.signature(MomentMatching).parameters[name].default, help, **metadata)


def _search_option(name: str, help: str, **metadata: Any) -> Any:
    """A SearchJob field with the default of ``name`` in `TicketSearch` and `DenseSearch` (their `SearchLoop`)."""
    return _option(inspect.signature(SearchLoop).parameters[name].default, help, **metadata)


@dataclass
class SearchJob:
    """Everything one ticket search needs; each field is one `lt-plugins search` option (``--field-name``).

    Example:
        >>> SearchJob().family, SearchJob.__dataclass_fields__["steps"].metadata["help"]
        ('dcgan', 'optimisation steps')
    """

    family: str = _option("dcgan", "built-in generator family", choices=GENERATORS)
    model: str | None = _option(None, "your own generator class, imported and called with --model-kwargs "
                                      "(replaces --family)", metavar="PKG.MODULE:CLASS")
    latent_shape: list[int] | None = _option(
        None, "shape of one latent, e.g. 512, or 100 1 1 for z shaped (N, 100, 1, 1) (default: what the model's "
              "family tells, e.g. its z_dim)", metavar="N")
    generate: str | None = _option(
        None, "generate(model, z) -> images in [-1, 1], when the model is not called as model(z) (e.g. a function "
              "returning G(z, None) for StyleGAN2-ADA)", metavar="PKG.MODULE:FUNCTION")
    features: str = _option(
        "mnist_robust_classes+mnist_robust_classes:2", "feature network of the loss: mnist, mnist_classes (+ its "
        "class probabilities), mnist_robust(_classes) (adversarially trained), efficientnet_lite0, vgg19_bn, "
        "timm:NAME or pkg.module:function; a+b matches both (lt_plugins.features.feature_net)", metavar="NAME")
    latent_components: int = _option(
        LatentMixture.components, "draw the latents from a mixture of this many Gaussians (lt.LatentMixture), "
        "so blends of two classes fall in the gaps between components; 0: N(0, 1)", metavar="K")
    latent_separation: float = _option(LatentMixture.separation,
                                       "weight of the mixture's component means in each latent, in [0, 1)",
                                       metavar="S")
    metric_features: str = _option(
        "auto", "feature network of the reported FD/PRDC, another than --features; auto: mnist:1 for grey data "
                "(also gives the recognisable share), for RGB a seeded random-init ResNet-18 (resnet18_random), "
                "never the loss's own network", metavar="NAME")
    model_kwargs: dict[str, Any] | None = _option(
        None, 'JSON of constructor arguments, e.g. \'{"ngf": 64}\' for dcgan or \'{"channel_max": 64}\'')
    data: str = _option("mnist", "'mnist' (ships with the package) or an image folder")
    image_size: int = _option(32, "side of the square images")
    density: float = _ticket_option("density")
    scope: str = _ticket_option("scope", choices=SCOPES)
    seed: int = _ticket_option("seed", help="seed of the frozen weights, scores and latents")
    weight_init: str = _ticket_option("weight_init", help="how weights are drawn", choices=DRAWN_WEIGHT_INITS)
    score_init: str = _ticket_option("score_init", choices=SCORE_INITS)
    scale_fan: bool | None = _ticket_option("scale_fan")
    exclude_modules: list[str] | None = _ticket_option("exclude_modules", metavar="NAME")
    objective: str = _option("moments", "feature moment matching (mean and variance) or its kernel form, MMD",
                             choices=("moments", "mmd"))
    ema_decay: float = _moments_option("ema_decay", "moments: weight of the running average of fake-feature "
                                                    "moments (0 = this batch only)")
    normalise: str = _moments_option("normalise", "moments: 'layer' weighs every feature map the same (each "
                                                  "map's terms divided by its real variance); 'none': raw moments",
                                     choices=NORMALISATIONS)
    steps: int = _option(600, "optimisation steps")
    batch_size: int = _search_option("batch_size", "latents per step per process")
    lr: float | None = _search_option("lr", "Adam learning rate (default: the family's; DCGAN 0.1 scores, 3e-3 dense)")
    warmup: float = _search_option("warmup", "share of the steps over which the lr ramps up before its cosine decay")
    dense: bool = _option(False, "train the weights instead (the dense baseline, lt.DenseSearch)")
    out: str = _option("out", "output folder: search/ (checkpoints, samples) and ticket/")
    checkpoint_every: int = _search_option("checkpoint_every", "steps between checkpoints and sample grids")
    resume: bool = _option(False, "continue from OUT/search/checkpoint.pt")
    device: str | None = _option(None, "cpu, cuda, cuda:1, ... (default: cuda when available)")
    eval_samples: int = _option(2000, "generated samples for FD/PRDC")
    eval_at: list[int] | None = _option(None, "steps at which FD is also measured (reported as fd_at_step)",
                                        metavar="STEP")
    measure_random_init: bool = _option(True, "also measure the FD of the random-init network, before the search",
                                        flag="--no-measure-random-init")
    progress: bool = _option(True, "show the progress bar", flag="--no-progress")


def build_generator(
    family: str, image_size: int, channels: int, kwargs: dict[str, Any] | None, seed: int = 0,
    model: str | None = None,
) -> nn.Module:
    """A built-in generator of ``family`` making ``channels``×``image_size``² images, or the user's class
    ``model`` (``"package.module:Class"``) called with ``kwargs``.

    Built under ``seed`` (torch's global random state is left as it was), so what `lt.wrap`
    does not re-draw -- layers in ``exclude_modules`` -- starts the same on every run.

    Example:
        >>> type(build_generator("dcgan", 16, 1, {"nz": 8, "ngf": 8})).__name__
        'DCGANGenerator'
    """
    kwargs = dict(kwargs or {})
    try:
        return _build_generator(family, image_size, channels, kwargs, seed, model)
    except (TypeError, ValueError, RuntimeError) as err:
        what = model or {"dcgan": "DCGANGenerator", "stylegan": "StyleGANGenerator"}.get(family, family)
        raise ValueError(
            f"--model-kwargs {bounded_repr(kwargs)} do not build {what}: {type(err).__name__}: {str(err)[:300]}. "
            "Check the constructor's arguments (names, and positive sizes)."
        ) from err


def _build_generator(family: str, image_size: int, channels: int, kwargs: dict[str, Any], seed: int,
                     model: str | None) -> nn.Module:
    from .adapters.base import constructor_config
    from .generate import import_callable
    from .models import DCGANGenerator, StyleGANGenerator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if model is not None:
            factory = import_callable(model)
            made = factory(**kwargs)
            if not isinstance(made, nn.Module):
                raise ValueError(f"--model {model} made a {type(made).__name__}, not an nn.Module.")
            if isinstance(factory, type) and constructor_config(made) is None:
                made.init_kwargs = kwargs  # so the ticket records how to build it again (see constructor_config)
            return made
        if family == "dcgan":
            return DCGANGenerator(**{"nz": 100, "ngf": 32, "nc": channels, "image_size": image_size, **kwargs})
        if family == "stylegan":
            return StyleGANGenerator(**{"img_resolution": image_size, "img_channels": channels, **kwargs})
    raise ValueError(f"family={family!r} is not a built-in generator; choose one of {list(GENERATORS)}.")


def metric_features_name(name: str, channels: int, loss_features: str | None = None) -> str:
    """The `feature_net` name of the reported metrics: ``name`` itself, or for ``"auto"`` one chosen
    by the images' ``channels`` and never the loss's network ``loss_features``.

    Grey images: the shipped MNIST classifier of seed 1 (``mnist:1``; seed 0 when the loss uses
    ``mnist:1``, seed 3 when it uses both), which also gives the recognisable share. RGB images: timm's ResNet-18 at a
    seeded random init (``resnet18_random``; seed 1 when the loss is that one), which needs no
    weights and shares nothing with the ImageNet networks a loss matches.

    Example:
        >>> metric_features_name("auto", 1), metric_features_name("auto", 3, "efficientnet_lite0")
        ('mnist:1', 'resnet18_random')
        >>> metric_features_name("auto", 1, "mnist:1"), metric_features_name("vgg19_bn", 3)
        ('mnist', 'vgg19_bn')
        >>> metric_features_name("auto", 1, "mnist+mnist:1")  # no network of a stacked loss either
        'mnist:3'
        >>> metric_features_name("auto", 1, "mnist_classes:1")  # the mnist:1 network, with its class probabilities
        'mnist'
        >>> metric_features_name("auto", 1, "mnist_robust_classes:1")  # another network: adversarially trained
        'mnist:1'
    """
    if name != "auto":
        return name
    # "mnist_classes:2" is the mnist:2 network with its class probabilities: the same network.
    in_loss = {re.sub(r"_classes(?=:|$)", "", part).removesuffix(":0") for part in (loss_features or "").split("+")}
    candidates = ("mnist:1", "mnist", "mnist:3") if channels == 1 else ("resnet18_random", "resnet18_random:1")
    chosen = next((c for c in candidates if c not in in_loss), None)
    if chosen is None:
        raise ValueError(f"the loss's features {loss_features!r} use every automatic metric network "
                         f"({', '.join(candidates)}); name another with --metric-features.")
    return chosen


def evaluation_net(
    device: torch.device, name: str = "auto", channels: int = 1, loss_features: str | None = None
) -> nn.Module:
    """The feature network of the reported metrics, named as `metric_features_name` resolves ``name``.

    Measuring with the very network the search matched would reward overfitting its
    features; an independent one does not share them.

    Example:
        >>> net = evaluation_net(torch.device("cpu"), "auto", channels=1)
        >>> len(net(torch.zeros(2, 1, 32, 32))) > 0
        True
    """
    from .features import feature_net

    return feature_net(metric_features_name(name, channels, loss_features), device=device)


def run_search(job: SearchJob) -> dict[str, Any] | None:
    """Search (or densely train) a generator on ``job.data``; save the ticket; return the report.

    The report holds the FD of the random-init network (unless ``job.measure_random_init``
    is off), of the result and at each step of ``job.eval_at`` (all measured on
    ``job.eval_samples`` samples with `evaluation_net`), the seconds per step and the paths
    written. Under ``accelerate launch`` or ``torchrun`` every process searches, and the main
    one alone measures, saves and gets the report (the others get None).

    Example:
        >>> import tempfile
        >>> job = SearchJob(image_size=16, model_kwargs={"nz": 8, "ngf": 8}, steps=2, eval_samples=40, device="cpu",
        ...                 out=tempfile.mkdtemp(), measure_random_init=False, progress=False)
        >>> report = run_search(job)
        >>> report["steps"], Path(report["ticket"]).is_dir()
        (2, True)
    """
    import lt_plugins as lt

    from .data import load_images
    from .features import feature_net
    from .metrics import evaluate

    real = load_images(job.data, image_size=job.image_size)
    # One process, or this one of those accelerate launch / torchrun started; its device is
    # this process's own GPU (cuda:LOCAL_RANK) under a multi-GPU launch.
    process = process_state(job.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    device = torch.device(job.device) if job.device else process.device
    generator = build_generator(
        job.family, job.image_size, real.shape[1], job.model_kwargs, job.seed, job.model
    ).to(device)
    config = lt.TicketConfig(
        density=1.0 if job.dense else job.density, scope=job.scope, seed=job.seed, weight_init=job.weight_init,
        score_init=job.score_init, scale_fan=job.scale_fan, exclude_modules=job.exclude_modules,
    )
    generator = lt.wrap(generator, config)
    if job.dense:
        generator = lt.unwrap(generator)  # the same seeded start, every weight trainable

    features = feature_net(job.features, device=device)
    if job.objective == "moments":
        objective = lt.MomentMatching(features, ema_decay=job.ema_decay, normalise=job.normalise)
    else:
        objective = lt.MMD(features, seed=job.seed)
    metric_net = evaluation_net(device, job.metric_features, real.shape[1], job.features)
    evals: dict[int, float] = {}
    eval_at = set(job.eval_at or ())

    def measure() -> dict[str, Any]:
        return evaluate(generator, real, metric_net, n=job.eval_samples, latent_shape=search.call.latent_shape,
                        generate=search.call.generate, prior=search.call.prior, seed=job.seed)

    def measure_at(info: lt.StepInfo) -> None:
        if info.step in eval_at and process.is_main_process:
            evals[info.step] = measure()["fd"]

    out = Path(job.out)
    prior = LatentMixture(job.latent_components, job.latent_separation, job.seed) if job.latent_components else None
    search = (lt.DenseSearch if job.dense else lt.TicketSearch)(
        generator, objective, latent_shape=job.latent_shape and tuple(job.latent_shape), generate=job.generate,
        prior=prior, batch_size=job.batch_size, lr=job.lr, warmup=job.warmup, output_dir=out / "search",
        checkpoint_every=job.checkpoint_every, seed=job.seed, device=str(device), progress=job.progress, callbacks=[measure_at],
    )
    before = measure() if job.measure_random_init and process.is_main_process else None
    began = time.perf_counter()
    result = search.run(real, steps=job.steps, resume=job.resume)
    seconds = time.perf_counter() - began
    if not process.is_main_process:
        process.wait_for_everyone()  # the main process measures and saves meanwhile
        return None
    after = measure()
    report = {
        "family": job.family if job.model is None else job.model,
        "dense": job.dense,
        "density": 1.0 if job.dense else job.density,
        "steps": job.steps,
        "fd_random_init": before["fd"] if before else None,
        "metrics_random_init": before,
        "fd": after["fd"],
        "fd_at_step": evals,
        "metrics": after,
        "seconds": seconds,
        "seconds_per_step": search.result.seconds_per_step,
        "samples": str(out / "search" / "samples.png"),
    }
    if not job.dense:
        result.metrics = {k: v for k, v in after.items() if isinstance(v, (int, float, str))}
        report["ticket"] = str(result.save_pretrained(out / "ticket"))
    process.wait_for_everyone()
    return report
