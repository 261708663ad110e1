"""`lt-plugins search`, `eval` and `demo`: find a ticket on images, and measure one.

Every option of ``search`` can also come from a YAML file (``--config cfg.yaml``) whose keys
are the option names with underscores (``steps: 600``); flags on the command line win.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import torch

from .._repr import MAX_SHOWN, bounded_repr
from ..recipes import SearchJob, evaluation_net, run_search


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
    return SearchJob(**values)


def _json_object(text: str) -> dict[str, Any]:
    """``--model-kwargs``' value: a JSON object, or an argparse error saying what was wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({err}); write an object, e.g. '{{\"dim\": 64}}'.")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is a JSON {type(value).__name__}; write an object, e.g. "
                                         "'{\"dim\": 64}'.")
    return value


def _search(args: argparse.Namespace) -> None:
    _print_report(run_search(_job_from_args(args)))


def add_job_options(parser: argparse.ArgumentParser, job: type = SearchJob) -> None:
    """One flag per field of the dataclass ``job``, made from the field alone: ``--field-name`` (or
    ``metadata["flag"]``), its type, default, help and ``choices`` / ``metavar`` from its metadata.

    ``bool`` fields are switches (``--no-NAME`` for one that defaults to True), ``bool | None`` ones
    ``--NAME / --no-NAME``, lists take several values, a dict is given as JSON.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_job_options(parser)
        >>> args = parser.parse_args(["--density", "0.2", "--eval-at", "5", "10", "--no-progress"])
        >>> args.density, args.eval_at, args.progress, args.steps == SearchJob.steps
        (0.2, [5, 10], False, True)
    """
    hints = typing.get_type_hints(job)
    for spec in dataclasses.fields(job):
        meta = spec.metadata
        # argparse %-formats help texts ("10%" would break --help)
        options: dict[str, Any] = {"default": spec.default, "help": meta["help"].replace("%", "%%")}
        options.update({k: meta[k] for k in ("choices", "metavar") if k in meta})
        kind, optional = _without_none(hints[spec.name])
        if kind is bool:
            options["action"] = (argparse.BooleanOptionalAction if optional
                                 else "store_false" if spec.default else "store_true")
        elif typing.get_origin(kind) is list:
            item = typing.get_args(kind)[0]
            options.update(nargs="+", **({"type": item} if item is not str else {}))
        elif kind in (int, float):
            options["type"] = kind
        elif typing.get_origin(kind) is dict:
            options["type"] = _json_object
        flag = meta.get("flag", "--" + spec.name.replace("_", "-"))
        parser.add_argument(flag, dest=spec.name, **options)


def _without_none(kind: Any) -> tuple[Any, bool]:
    """(``X``, True) for ``X | None``; (``kind``, False) otherwise."""
    args = typing.get_args(kind)
    if type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return kind, False


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of options (keys = option names with underscores)")
    add_job_options(parser)


MAX_CONFIG_FILE_BYTES = 1 << 20


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
    if isinstance(value, dict) and action.type is _json_object:
        return value  # a JSON option (--model-kwargs) may be written as a YAML mapping
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
            raise ValueError(f"{key}: {shown} is invalid ({str(err)[:MAX_SHOWN]}).") from err
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
    model = None
    if args.model_kwargs is not None:  # a class that keeps no config: built as its author did
        from ..adapters import build_model

        model = build_model({**ticket.spec, "config": args.model_kwargs}, allow_remote_code=args.allow_remote_code)
    model = ticket.apply(model, allow_remote_code=args.allow_remote_code).to(device).eval()
    generator, call = ticket_generator(ticket, model, sample_steps=args.sample_steps)
    if args.latent_shape or args.generate:
        call = LatentCall(tuple(args.latent_shape) if args.latent_shape else call.latent_shape,
                          args.generate or call.generate, call.prior)
    return ticket, generator.to(device), call


def add_generator_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``eval`` and ``sample`` that say how to rebuild a ticket's model and make images with it."""
    parser.add_argument("--allow-remote-code", action="store_true",
                        help="import the ticket's model class from its recorded path when it is not one of the "
                             "package's own (only for tickets you trust)")
    parser.add_argument("--model-kwargs", type=_json_object, default=None, metavar="JSON",
                        help="constructor arguments of the ticket's model class, for a class that keeps no `config` "
                             "of them, e.g. '{\"dim\": 64}' (default: the ones the ticket records)")
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
                       latent_shape=call.latent_shape, generate=call.generate, prior=call.prior, seed=args.seed)
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
