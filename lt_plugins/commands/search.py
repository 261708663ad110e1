"""`lt-plugins search`, `eval` and `demo`: find a ticket on images, and measure one.

Every option of ``search`` can also come from a YAML file (``--config cfg.yaml``) whose keys
are the option names with underscores (``steps: 600``); flags on the command line win.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import SCORE_INITS

GENERATORS = ("dcgan", "stylegan")


@dataclass
class SearchJob:
    """Everything one ticket search needs; the fields mirror `lt-plugins search`'s options."""

    family: str = "dcgan"
    model: str | None = None
    model_kwargs: dict[str, Any] | None = None
    latent_shape: list[int] | None = None
    generate: str | None = None
    features: str = "mnist"
    metric_features: str = "auto"
    data: str = "mnist"
    image_size: int = 32
    density: float = 0.1
    scope: str = "layer"
    seed: int = 0
    weight_init: str = "signed_constant"
    score_init: str = "uniform"
    scale_fan: bool | None = None
    exclude_modules: list[str] | None = None
    objective: str = "moments"
    ema_decay: float = 0.5
    steps: int = 600
    batch_size: int = 64
    lr: float | None = None
    dense: bool = False
    out: str = "out"
    checkpoint_every: int = 100
    resume: bool = False
    device: str | None = None
    eval_samples: int = 2000
    eval_at: list[int] | None = None
    measure_random_init: bool = True
    progress: bool = True


def build_generator(
    family: str, image_size: int, channels: int, kwargs: dict[str, Any] | None, seed: int = 0,
    model: str | None = None,
) -> nn.Module:
    """A built-in generator of ``family`` making ``channels``×``image_size``² images, or the user's class
    ``model`` (``"package.module:Class"``) called with ``kwargs``.

    Built under ``seed`` (torch's global random state is left as it was), so what `lt.wrap`
    does not re-draw -- layers in ``exclude_modules`` -- starts the same on every run.
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
    from ..adapters.base import constructor_config
    from ..generate import import_callable
    from ..models import DCGANGenerator, StyleGANGenerator

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

    Grey images: the shipped MNIST classifier of seed 1 (``mnist:1``; seed 0 when the loss is
    ``mnist:1``), which also gives the recognisable share. RGB images: timm's ResNet-18 at a
    seeded random init (``resnet18_random``; seed 1 when the loss is that one), which needs no
    weights and shares nothing with the ImageNet networks a loss matches.

    Example:
        >>> metric_features_name("auto", 1), metric_features_name("auto", 3, "efficientnet_lite0")
        ('mnist:1', 'resnet18_random')
        >>> metric_features_name("auto", 1, "mnist:1"), metric_features_name("vgg19_bn", 3)
        ('mnist', 'vgg19_bn')
    """
    if name != "auto":
        return name
    chosen, other = ("mnist:1", "mnist") if channels == 1 else ("resnet18_random", "resnet18_random:1")
    return other if loss_features in (chosen, chosen + ":0") else chosen


def evaluation_net(
    device: torch.device, name: str = "auto", channels: int = 1, loss_features: str | None = None
) -> nn.Module:
    """The feature network of the reported metrics, named as `metric_features_name` resolves ``name``.

    Measuring with the very network the search matched would reward overfitting its
    features; an independent one does not share them.
    """
    from ..features import feature_net

    return feature_net(metric_features_name(name, channels, loss_features), device=device)


def run_search(job: SearchJob) -> dict[str, Any] | None:
    """Search (or densely train) a generator on ``job.data``; save the ticket; return the report.

    The report holds the FD of the random-init network (unless ``job.measure_random_init``
    is off), of the result and at each step of ``job.eval_at`` (all measured on
    ``job.eval_samples`` samples with `evaluation_net`), the seconds per step and the paths
    written. Under ``accelerate launch`` or ``torchrun`` every process searches, and the main
    one alone measures, saves and gets the report (the others get None).
    """
    import lt_plugins as lt

    from ..data import load_images
    from ..features import feature_net
    from ..metrics import evaluate
    from ..distributed import process_state

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
        objective = lt.MomentMatching(features, ema_decay=job.ema_decay)
    else:
        objective = lt.MMD(features, seed=job.seed)
    metric_net = evaluation_net(device, job.metric_features, real.shape[1], job.features)
    evals: dict[int, float] = {}
    eval_at = set(job.eval_at or ())

    def measure() -> dict[str, Any]:
        return evaluate(generator, real, metric_net, n=job.eval_samples, latent_shape=search.call.latent_shape,
                        generate=search.call.generate, seed=job.seed)

    def measure_at(info: lt.StepInfo) -> None:
        if info.step in eval_at and process.is_main_process:
            evals[info.step] = measure()["fd"]

    out = Path(job.out)
    search = lt.TicketSearch(
        generator, objective, latent_shape=job.latent_shape and tuple(job.latent_shape), generate=job.generate,
        batch_size=job.batch_size, lr=job.lr, dense=job.dense,
        output_dir=out / "search", checkpoint_every=job.checkpoint_every, seed=job.seed, device=str(device),
        progress=job.progress, callbacks=[measure_at],
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


def _recognised(metrics: dict[str, Any] | None) -> str:
    """``"   recognisable 62.6% (rarest class 3.1%, commonest 17.0%)"`` when the metrics hold
    `class_coverage`, else ``""``. The commonest class shows a collapse the confident share hides: the
    classifier is confident on pixel noise too, calling it all one digit."""
    if not metrics or "recognisable" not in metrics:
        return ""
    return (f"   recognisable {metrics['recognisable']:.1%} (rarest class {metrics['rarest_class']:.1%}, "
            f"commonest {max(metrics['class_shares']):.1%})")


def _print_report(report: dict[str, Any] | None) -> None:
    if report is None:  # a process other than the main one of a multi-process search
        return
    what = "dense network" if report["dense"] else f"ticket ({report['density']:.0%} of weights)"
    if report["fd_random_init"] is not None:
        print(f"FD random init: {report['fd_random_init']:.2f}{_recognised(report.get('metrics_random_init'))}")
    print(f"FD {what}: {report['fd']:.2f}{_recognised(report['metrics'])}   ({report['steps']} steps, "
          f"{report['seconds']:.0f} s, {report['seconds_per_step'] * 1e3:.0f} ms/step)")
    if report["fd_at_step"]:
        on_the_way = sorted(report["fd_at_step"].items())
        print("FD on the way: " + ", ".join(f"step {step} {fd:.2f}" for step, fd in on_the_way))
    m = report["metrics"]
    print(f"precision {m['precision']:.3f}  recall {m['recall']:.3f}  density {m['density']:.3f}  "
          f"coverage {m['coverage']:.3f}  [{m['n_fake']} fakes vs {m['n_real']} reals (PRDC: {m['n_real_prdc']}), "
          f"features {m['feature_net']}]")
    if "ticket" in report:
        print(f"ticket: {report['ticket']}")
    print(f"samples: {report['samples']}")


def _job_from_args(args: argparse.Namespace) -> SearchJob:
    fields = SearchJob.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields}
    if isinstance(values.get("model_kwargs"), str):
        values["model_kwargs"] = json.loads(values["model_kwargs"])
    return SearchJob(**values)


def _search(args: argparse.Namespace) -> None:
    _print_report(run_search(_job_from_args(args)))


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    d = SearchJob()
    parser.add_argument("--config", help="YAML file of options (keys = option names with underscores)")
    parser.add_argument("--family", choices=GENERATORS, default=d.family, help="built-in generator family")
    parser.add_argument("--model", default=None, metavar="PKG.MODULE:CLASS",
                        help="your own generator class, imported and called with --model-kwargs (replaces --family)")
    parser.add_argument("--latent-shape", type=int, nargs="+", default=None, metavar="N",
                        help="shape of one latent, e.g. 512, or 100 1 1 for z shaped (N, 100, 1, 1) "
                             "(default: what the model's family tells, e.g. its z_dim)")
    parser.add_argument("--generate", default=None, metavar="PKG.MODULE:FUNCTION",
                        help="generate(model, z) -> images in [-1, 1], when the model is not called as model(z) "
                             "(e.g. a function returning G(z, None) for StyleGAN2-ADA)")
    parser.add_argument("--features", default=d.features, metavar="NAME",
                        help="feature network of the loss: mnist, efficientnet_lite0, vgg19_bn, timm:NAME or "
                             "pkg.module:function (lt_plugins.features.feature_net)")
    parser.add_argument("--metric-features", default=d.metric_features, metavar="NAME",
                        help="feature network of the reported FD/PRDC, another than --features; auto: mnist:1 for "
                             "grey data (also gives the recognisable share), for RGB a seeded random-init "
                             "ResNet-18 (resnet18_random), never the loss's own network")
    parser.add_argument("--model-kwargs", default=None,
                        help='JSON of constructor arguments, e.g. \'{"ngf": 64}\' for dcgan or \'{"channel_max": 64}\'')
    parser.add_argument("--data", default=d.data, help="'mnist' (ships with the package) or an image folder")
    parser.add_argument("--image-size", type=int, default=d.image_size, help="side of the square images")
    parser.add_argument("--density", type=float, default=d.density, help="fraction of weights kept, 0 < d <= 1")
    parser.add_argument("--scope", choices=("layer", "global"), default=d.scope,
                        help="rank scores per tensor (layer) or over the whole network (global)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the frozen weights, scores and latents")
    parser.add_argument("--weight-init", default=d.weight_init,
                        choices=("signed_constant", "kaiming_uniform", "kaiming_normal"), help="how weights are drawn")
    parser.add_argument("--score-init", choices=SCORE_INITS, default=d.score_init, help="how scores are drawn")
    parser.add_argument("--scale-fan", action=argparse.BooleanOptionalAction, default=d.scale_fan,
                        help="draw weights at the scale of the kept fan-in (default: the family's choice)")
    parser.add_argument("--exclude-modules", nargs="+", default=d.exclude_modules, metavar="NAME",
                        help="modules left dense and random: names, name suffixes or regexes")
    parser.add_argument("--objective", choices=("moments", "mmd"), default=d.objective,
                        help="feature moment matching (mean and variance) or its kernel form, MMD")
    parser.add_argument("--ema-decay", type=float, default=d.ema_decay,
                        help="moments: weight of the running average of fake-feature moments (0 = this batch only)")
    parser.add_argument("--steps", type=int, default=d.steps, help="optimisation steps")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="latents per step per process")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the family's; DCGAN 0.1 scores, 3e-3 dense)")
    parser.add_argument("--dense", action="store_true", help="train the weights instead (the dense baseline)")
    parser.add_argument("--out", default=d.out, help="output folder: search/ (checkpoints, samples) and ticket/")
    parser.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                        help="steps between checkpoints and sample grids")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/search/checkpoint.pt")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--eval-samples", type=int, default=d.eval_samples, help="generated samples for FD/PRDC")
    parser.add_argument("--eval-at", type=int, nargs="+", default=d.eval_at, metavar="STEP",
                        help="steps at which FD is also measured (reported as fd_at_step)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


MAX_CONFIG_FILE_BYTES = 1 << 20
MAX_SHOWN = 200  # characters of a value echoed back in an error


class _Cut(Exception):
    pass


def bounded_repr(value: Any, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` cut at about ``limit`` characters, without ever building the whole of it.

    Safe on a YAML anchor bomb (nested lists sharing their items, exponential when expanded).

    Example:
        >>> bounded_repr([1, 2, 3])
        '[1, 2, 3]'
        >>> bomb = ["lol"] * 9
        >>> for _ in range(30):
        ...     bomb = [bomb] * 9
        >>> len(bounded_repr(bomb)) <= 203
        True
    """
    out: list[str] = []
    room = [limit]

    def emit(text: str) -> None:
        out.append(text[: room[0]])
        room[0] -= len(text)
        if room[0] < 0:
            raise _Cut

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            emit("{")
            for i, (key, val) in enumerate(item.items()):
                emit(", " if i else "")
                walk(key)
                emit(": ")
                walk(val)
            emit("}")
        elif isinstance(item, (list, tuple)):
            emit("[" if isinstance(item, list) else "(")
            for i, val in enumerate(item):
                emit(", " if i else "")
                walk(val)
            emit("]" if isinstance(item, list) else ")")
        else:
            emit(repr(item[: limit + 1] if isinstance(item, (str, bytes)) else item))

    try:
        walk(value)
    except _Cut:
        return "".join(out) + "..."
    return "".join(out)


def _yaml_value(action: argparse.Action, key: str, value: Any) -> Any:
    """``value`` from a config file for option ``action``, checked as its flag would be; ValueError if not."""
    shown = bounded_repr(value)
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)):
        if not isinstance(value, bool):
            raise ValueError(f"{key}: {shown} must be true or false (a YAML boolean, unquoted).")
        return value
    if value is None:
        if action.default is None:
            return None
        raise ValueError(f"{key}: null is not a value for --{key.replace('_', '-')}; leave the key out instead.")
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        if not isinstance(value, list):
            raise ValueError(f"{key}: {shown} must be a list (--{key.replace('_', '-')} takes several values).")
        if action.nargs == "+" and not value:
            raise ValueError(f"{key}: the list must not be empty.")
        return [_yaml_scalar(action, f"{key}[{i}]", item) for i, item in enumerate(value)]
    if isinstance(value, dict) and action.type is None and "json" in (action.help or "").lower():
        return json.dumps(value)  # a JSON option (--model-kwargs) may be written as a YAML mapping
    return _yaml_scalar(action, key, value)


def _yaml_scalar(action: argparse.Action, key: str, value: Any) -> Any:
    shown = bounded_repr(value)
    kind = action.type
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{key}: {shown} must be an integer.")
    elif kind is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{key}: {shown} must be a number.")
        value = float(value)
    elif kind is None or kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{key}: {shown} must be a string (quote it).")
    else:  # a custom type= converts the text, as on the command line
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"{key}: {shown} must be a single value.")
        try:
            value = kind(str(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError) as err:
            raise ValueError(f"{key}: {shown} is invalid ({bounded_repr(str(err))[1:-1]}).") from err
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{key}: {shown} is not one of {list(action.choices)}.")
    return value


def load_yaml_defaults(parser: argparse.ArgumentParser, path: str) -> None:
    """Make the options in the YAML file ``path`` the defaults of ``parser`` (flags still win).

    Each value is checked as its flag would check it, read from the parser's own actions
    (type, choices, true/false switches, lists), so an option added later is checked too.
    Unknown keys, YAML aliases and wrong values are refused with ``parser.error`` (exit
    status 2), echoing at most ~200 characters of a value.

    Example:
        >>> import tempfile
        >>> p = argparse.ArgumentParser(prog="demo")
        >>> _ = p.add_argument("--steps", type=int, default=1)
        >>> cfg = tempfile.mktemp(suffix=".yaml")
        >>> _ = Path(cfg).write_text("steps: 600\\n")
        >>> load_yaml_defaults(p, cfg); p.parse_args([]).steps
        600
    """
    import yaml

    where = bounded_repr(str(path))
    try:
        size = Path(path).stat().st_size
        if size > MAX_CONFIG_FILE_BYTES:
            parser.error(f"config file {where} is {size} bytes; an options file is at most {MAX_CONFIG_FILE_BYTES}.")
        text = Path(path).read_text(encoding="utf-8")
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
            parser.error(f"config file {where} uses YAML aliases (*name); write each option's value out.")
        values = yaml.safe_load(text) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        parser.error(f"config file {where} cannot be read: {bounded_repr(' '.join(str(err).split()))[1:-1]}")
    if not isinstance(values, dict):
        parser.error(f"{where} must hold a mapping of option: value, got {bounded_repr(values)}.")
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config", argparse.SUPPRESS)}
    unknown = [key for key in values if key not in actions]
    if unknown:
        parser.error(
            f"{where} has unknown options {bounded_repr(sorted(map(str, unknown)))}; known: {sorted(actions)}"
        )
    checked = {}
    for key, value in values.items():
        try:
            checked[key] = _yaml_value(actions[key], key, value)
        except ValueError as err:
            parser.error(f"{where}: {err}")
    if checked.get("weight_init", getattr(actions.get("weight_init"), "default", None)) == "keep" and not (
        checked.get("base") or getattr(actions.get("base"), "default", None)
    ):
        parser.error(f"{where}: weight_init: 'keep' masks a pretrained base's weights, but no base is given.")
    parser.set_defaults(**checked)


def add_search(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search", help="find a ticket by moment matching", description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_search_options(parser)
    parser.set_defaults(func=_search, parser=parser)


def applied_ticket(args: argparse.Namespace, device: torch.device):
    """(ticket, generator, call) for ``eval`` and ``sample``: the ticket applied to a model built from its spec
    (``--allow-remote-code`` for classes outside the package), and how to make images with it."""
    from ..generate import LatentCall, ticket_generator
    from ..ticket import Ticket

    ticket = Ticket.from_pretrained(args.ticket, revision=getattr(args, "revision", None),
                                    token=getattr(args, "token", None),
                                    force_download=getattr(args, "force_download", False))
    model = ticket.apply(allow_remote_code=args.allow_remote_code).to(device).eval()
    generator, call = ticket_generator(ticket, model, sample_steps=args.sample_steps)
    if args.latent_shape or args.generate:
        call = LatentCall(tuple(args.latent_shape) if args.latent_shape else call.latent_shape,
                          args.generate or call.generate)
    return ticket, generator.to(device), call


def add_generator_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``eval`` and ``sample`` that say how to rebuild a ticket's model and make images with it."""
    parser.add_argument("--allow-remote-code", action="store_true",
                        help="import the ticket's model class from its recorded path when it is not one of the "
                             "package's own (only for tickets you trust)")
    parser.add_argument("--latent-shape", type=int, nargs="+", default=None, metavar="N",
                        help="shape of one latent (default: what the ticket records)")
    parser.add_argument("--generate", default=None, metavar="PKG.MODULE:FUNCTION",
                        help="generate(model, z) -> images (default: what the ticket records, else model(z))")
    parser.add_argument("--sample-steps", type=int, default=None, metavar="STEPS",
                        help="DDIM steps per sample for UNet tickets (default: the ticket's objective's)")


def _eval(args: argparse.Namespace) -> None:
    from ..data import load_images
    from ..metrics import evaluate

    device = torch.device(args.device) if args.device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _, generator, call = applied_ticket(args, device)
    real = load_images(args.data)
    metrics = evaluate(generator, real, evaluation_net(device, args.features, real.shape[1]), n=args.n,
                       latent_shape=call.latent_shape, generate=call.generate, seed=args.seed)
    print(json.dumps(metrics, indent=2))


def add_eval(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="FD and precision/recall/density/coverage of a ticket",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("ticket", help="ticket folder or Hub repo id")
    parser.add_argument("--data", default="mnist", help="real images: 'mnist' or an image folder")
    parser.add_argument("--n", type=int, default=2000, help="generated samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation latents")
    parser.add_argument("--features", default="auto", metavar="NAME",
                        help="feature network of the metrics (lt_plugins.features.feature_net names); auto: "
                             "mnist:1 for grey data, resnet18_random for RGB, as search reports them")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    add_generator_options(parser)
    parser.set_defaults(func=_eval)


def _demo(args: argparse.Namespace) -> None:
    job = SearchJob(out=args.out, steps=args.steps, eval_samples=args.eval_samples, device=args.device)
    print(f"lt-plugins demo: a {job.density:.0%} ticket in a random DCGAN (32x32, MNIST), {job.steps} steps of "
          "moment matching; no weight is trained.")
    _print_report(run_search(job))


def add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="find a 10%% ticket on the shipped MNIST and print its FD",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="demo_out", help="output folder")
    parser.add_argument("--steps", type=int, default=SearchJob.steps, help="search steps")
    parser.add_argument("--eval-samples", type=int, default=2000, help="generated samples for FD")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.set_defaults(func=_demo)
