"""The contract every family adapter fulfils, and the JSON helpers adapters share."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..base_model import BaseModel
from ..config import TicketConfig
from ..generate import LatentCall, latent_sample


def model_class(model: nn.Module) -> type:
    """The class ``model`` was built as, seen through the subclass that parametrizing a root module creates.

    Example:
        >>> import lt_plugins as lt
        >>> model_class(lt.wrap(nn.Linear(2, 2))).__name__
        'Linear'
    """
    cls = type(model)
    if parametrize.is_parametrized(model) and cls.__module__ == parametrize.__name__:
        return cls.__bases__[0]
    return cls


def importable_class(obj: type | nn.Module) -> type:
    """The class to record for ``obj``: its own, or -- for a class made inside a function, as decorators
    like StyleGAN2-ADA's ``persistence.persistent_class`` make them -- the first base class that has a
    module-level name.

    Example:
        >>> def decorate(cls):
        ...     class Decorator(cls):
        ...         pass
        ...     return Decorator
        >>> importable_class(decorate(nn.Linear)).__name__
        'Linear'
    """
    cls = obj if isinstance(obj, type) else model_class(obj)
    while "<locals>" in cls.__qualname__ and cls.__bases__ and cls.__bases__[0] is not object:
        cls = cls.__bases__[0]
    return cls


def class_path(obj: type | nn.Module) -> str:
    """``module.QualName`` of a class (or of an instance's class, see `model_class` and `importable_class`).

    Example:
        >>> class_path(nn.Linear)
        'torch.nn.modules.linear.Linear'
    """
    cls = importable_class(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def constructor_config(model: nn.Module) -> dict[str, Any] | None:
    """The constructor arguments ``model`` records about itself, as JSON: its ``config`` dict (our
    generators, many community ones), else the ``init_kwargs`` that StyleGAN2-ADA's persistence
    decorator keeps (when no positional ``init_args`` were given); None when neither is there.

    Example:
        >>> class Net(nn.Linear):
        ...     def __init__(self, width):
        ...         super().__init__(width, width)
        ...         self.config = {"width": width}
        >>> constructor_config(Net(3))
        {'width': 3}
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        kwargs, args = getattr(model, "init_kwargs", None), getattr(model, "init_args", ())
        config = dict(kwargs) if isinstance(kwargs, dict) and not args else None
    if config is None:
        return None
    try:
        return json_config(type(model).__name__, config)
    except ValueError:
        return None


def import_class(path: str) -> type:
    """The nn.Module class at ``module.QualName`` (nested classes too), or a ValueError saying what to do."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            return obj
        break
    where = " (a script's own class)" if path.startswith("__main__.") else ""
    raise ValueError(
        f"Cannot import an nn.Module class from {path!r}{where}. Build the model yourself and pass it: "
        "ticket.apply(MyGenerator(...)) -- the ticket checks that it fits."
    )


def _required_arguments(callable_: Any) -> list[str]:
    """Names of the arguments ``callable_`` cannot be called without ([] when its signature cannot be read)."""
    try:
        params = inspect.signature(callable_).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def forward_arity(model: nn.Module) -> int:
    """How many positional arguments ``model.forward`` requires (0 when it cannot be read)."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params
    )


def json_config(owner: str, config: Any) -> dict[str, Any]:
    """``config`` as plain JSON types (tuples become lists), or a ValueError naming what JSON can't hold.

    Example:
        >>> json_config("Net", {"sizes": (1, 2)})
        {'sizes': [1, 2]}
    """
    if not isinstance(config, dict):
        raise ValueError(f"{owner} config must be a dict of constructor arguments, got {type(config).__name__}.")
    try:
        return json.loads(json.dumps(dict(config), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{owner} config {config!r} holds a value JSON cannot store ({err}); "
            "keep constructor arguments to numbers, strings, booleans, lists and dicts."
        ) from err


class Adapter:
    """What the package knows about one family of models.

    Subclasses set ``family`` (the name written into tickets), the defaults `lt_plugins.wrap`
    uses where a `TicketConfig` leaves them open (``target_modules`` / ``exclude_modules``,
    matched like `TicketConfig`'s, and ``scale_fan``) and the search's default learning rates
    (``search_lr``, ``dense_lr``). A family recognises a model by class (`owns`: the classes it
    builds itself) or by structure (`resembles`: a reason, such as "mapping + synthesis
    networks"); `spec` and `build` record and rebuild it. Models of other classes are recorded
    by their importable class path and constructor config (`constructor_config`) and rebuilt
    only with ``allow_remote_code=True``. Register one with
    `lt_plugins.adapters.register_adapter`.

    Example:
        >>> from lt_plugins.adapters import adapter_for
        >>> from lt_plugins.models import DCGANGenerator
        >>> adapter = adapter_for(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=8))
        >>> adapter.family, adapter.ticket_config(density=0.2).scale_fan
        ('dcgan', True)
    """

    family: str = ""
    target_modules: list[str] | None = None
    exclude_modules: list[str] | None = None
    scale_fan: bool = True
    # Adam learning rates `lt_plugins.TicketSearch` uses when given none: for scores, and for
    # the dense baseline's weights.
    search_lr: float = 0.1
    dense_lr: float = 3e-3
    # Structural rules are tried in this order (lower first), after every family's `owns`.
    structure_rank: int = 100
    # The package's own class of this family, if it has one.
    own_class: type | None = None

    def owns(self, model: nn.Module) -> bool:
        """Whether ``model`` is of a class this family builds itself."""
        return self.own_class is not None and model_class(model) is self.own_class

    def resembles(self, model: nn.Module) -> str | None:
        """Why ``model`` has this family's structure (a short reason), or None."""
        return None

    def matches(self, model: nn.Module) -> bool:
        """Whether ``model`` belongs to this family, by class or by structure."""
        return self.owns(model) or self.resembles(model) is not None

    def default_targets(self, model: nn.Module | None = None) -> tuple[list[str] | None, list[str] | None]:
        """(target_modules, exclude_modules) for ``model`` when its config sets neither. A family's name
        patterns are written for the classes it owns; a model that only resembles the family gets every
        weight (``[".*"]``), recorded explicitly so that a ticket reads the same under any family."""
        if model is None or self.owns(model) or (self.target_modules is None and self.exclude_modules is None):
            return self.target_modules, self.exclude_modules
        return [".*"], None

    def spec(self, model: nn.Module) -> dict[str, Any]:
        """``{"family", "class", "config"}``: JSON that identifies ``model``'s architecture."""
        return {"family": self.family, "class": class_path(model), "config": constructor_config(model)}

    def build(self, spec: dict[str, Any], allow_remote_code: bool = False) -> nn.Module:
        """A fresh instance of the architecture ``spec`` describes (its weights are not the ticket's).

        For a class outside the package's allow-list the class is imported from its recorded path
        and called with the recorded config, only with ``allow_remote_code=True``.
        """
        path = spec.get("class")
        if not allow_remote_code:
            own = f"The {self.family} family builds {class_path(self.own_class)} itself. " if self.own_class else ""
            raise ValueError(
                f"{own}This ticket is for {path}, which is not a built-in family's own class, so it is not "
                f"imported from the ticket. Pass a fresh instance: ticket.apply(MyModel(...)); or, if you trust "
                f"the ticket's author, allow_remote_code=True (CLI: --allow-remote-code) imports {path} and "
                "calls it with the recorded config."
            )
        cls = import_class(str(path))
        config = spec.get("config")
        if config is None and _required_arguments(cls):
            raise ValueError(
                f"The ticket records no constructor arguments for {path} (the model kept no `config` or "
                "`init_kwargs` dict); build it yourself and pass it: ticket.apply(MyModel(...)) (CLI: --model-kwargs "
                "'{...}' gives its arguments)."
            )
        return cls(**(config or {}))

    def differences(self, spec: dict[str, Any], model: nn.Module) -> list[str]:
        """How ``model``'s architecture differs from ``spec``, one readable line each ([] when it matches).

        Classes are compared by name: a script's ``__main__.Net`` and the imported
        ``mymodule.Net`` are one architecture. Config keys present on one side only are
        ignored: libraries add constructor arguments with defaults across versions; the shape
        checks of a ticket still catch a real difference.
        """
        mine = self.spec(model)
        theirs_class = str(spec.get("class", "")).rpartition(".")[2]
        if theirs_class != str(mine["class"]).rpartition(".")[2]:
            return [f"class: ticket has {spec.get('class')}, model is {mine['class']}"]
        theirs = spec.get("config") or {}
        ours = mine.get("config") or {}
        return [
            f"config[{key!r}]: ticket has {theirs[key]!r}, model has {ours[key]!r}"
            for key in sorted(set(theirs) & set(ours))
            if theirs[key] != ours[key]
        ]

    def base_repo(self, model: nn.Module) -> str | None:
        """The Hub repo id ``model`` says its weights were loaded from, None if it does not say."""
        return None

    def load_base(self, spec: dict[str, Any], base: BaseModel) -> nn.Module:
        """The pretrained model ``base`` names, loaded from the Hub at its revision, for a keep-ticket of ``spec``."""
        raise ValueError(
            f"The {self.family!r} family cannot load a base model from the Hub; load {base} yourself "
            "and pass it: ticket.apply(model)."
        )

    def latent_dim(self, spec: dict[str, Any]) -> int | None:
        """Width of the latent ``z`` a model of this spec takes, None if it takes none or the spec does not say."""
        return None

    def latent_shape(self, model: nn.Module) -> tuple[int, ...] | None:
        """Shape of one latent ``model`` takes, when the family can tell (None: pass ``latent_shape=``)."""
        width = self.latent_dim(self.spec(model))
        return (width,) if width else None

    def sample(
        self, model: nn.Module, n: int, *, generator: torch.Generator, device: torch.device | str = "cpu",
        call: LatentCall | None = None,
    ) -> torch.Tensor:
        """``n`` images (N, C, H, W) in [-1, 1] from ``model``; noise is drawn on the CPU from ``generator``.

        ``call`` says how to call the model (a ticket records its latent shape); default: ``model(z)``
        with the latent shape the family reads off the model (`latent_shape`).
        """
        if call is None:
            shape = self.latent_shape(model)
            if shape is None:
                raise ValueError(
                    f"Cannot tell the latent shape of {type(model).__name__} ({self.family!r} family); pass "
                    "latent_shape (CLI: --latent-shape), or run the model yourself (ticket.apply(model)(z))."
                )
            call = LatentCall(shape)
        return latent_sample(model, call, n, generator, device)

    def ticket_config(self, **kwargs: Any) -> TicketConfig:
        """``TicketConfig(**kwargs)`` with this family's defaults filled in (see `resolve`)."""
        return self.resolve(TicketConfig(**kwargs))

    def resolve(self, config: TicketConfig, model: nn.Module | None = None) -> TicketConfig:
        """``config`` with what it leaves to the family filled in: the targets when neither
        ``target_modules`` nor ``exclude_modules`` is set (`default_targets` of ``model``), and
        ``scale_fan`` when it is None.

        Example:
            >>> from lt_plugins.adapters import get_adapter
            >>> resolved = get_adapter("diffusers").resolve(TicketConfig(exclude_modules="conv_out"))
            >>> resolved.target_modules, resolved.scale_fan
            (None, False)
        """
        changes: dict[str, Any] = {}
        if config.target_modules is None and config.exclude_modules is None:
            targets, excluded = self.default_targets(model)
            changes.update(target_modules=targets, exclude_modules=excluded)
        if config.scale_fan is None:
            changes["scale_fan"] = self.scale_fan
        return dataclasses.replace(config, **changes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(family={self.family!r})"
