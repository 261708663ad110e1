"""The contract every family adapter fulfils, and the JSON helpers adapters share."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..base_model import BaseModel
from ..config import TicketConfig


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


def class_path(obj: type | nn.Module) -> str:
    """``module.QualName`` of a class (or of an instance's class, see `model_class`).

    Example:
        >>> class_path(nn.Linear)
        'torch.nn.modules.linear.Linear'
    """
    cls = obj if isinstance(obj, type) else model_class(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


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
    (``search_lr``, ``dense_lr``), and implement `matches`, `spec` and `build`. Register one
    with `lt_plugins.adapters.register_adapter`.

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

    def matches(self, model: nn.Module) -> bool:
        """Whether ``model`` belongs to this family."""
        raise NotImplementedError

    def spec(self, model: nn.Module) -> dict[str, Any]:
        """``{"family", "class", "config"}``: JSON that identifies ``model``'s architecture."""
        raise NotImplementedError

    def build(self, spec: dict[str, Any], allow_remote_code: bool = False) -> nn.Module:
        """A fresh instance of the architecture ``spec`` describes (its weights are not the ticket's)."""
        raise NotImplementedError

    def differences(self, spec: dict[str, Any], model: nn.Module) -> list[str]:
        """How ``model``'s architecture differs from ``spec``, one readable line each ([] when it matches).

        Keys present on one side only are ignored: libraries add constructor arguments with
        defaults across versions; the shape checks of a ticket still catch a real difference.
        """
        mine = self.spec(model)
        if mine["class"] != spec.get("class"):
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
        """Width of the latent ``z`` a model of this spec takes, None if it takes none."""
        return None

    def sample(
        self, model: nn.Module, n: int, *, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """``n`` images (N, C, H, W) in [-1, 1] from ``model``; noise is drawn on the CPU from ``generator``."""
        raise ValueError(
            f"The {self.family!r} family has no built-in sampler; run the model yourself "
            "(ticket.apply(model)(inputs))."
        )

    def ticket_config(self, **kwargs: Any) -> TicketConfig:
        """``TicketConfig(**kwargs)`` with this family's defaults filled in (see `resolve`)."""
        return self.resolve(TicketConfig(**kwargs))

    def resolve(self, config: TicketConfig) -> TicketConfig:
        """``config`` with what it leaves to the family filled in: the targets when neither
        ``target_modules`` nor ``exclude_modules`` is set, and ``scale_fan`` when it is None.

        Example:
            >>> from lt_plugins.adapters import get_adapter
            >>> resolved = get_adapter("diffusers").resolve(TicketConfig(exclude_modules="conv_out"))
            >>> resolved.target_modules, resolved.scale_fan
            (None, False)
        """
        changes: dict[str, Any] = {}
        if config.target_modules is None and config.exclude_modules is None:
            changes.update(target_modules=self.target_modules, exclude_modules=self.exclude_modules)
        if config.scale_fan is None:
            changes["scale_fan"] = self.scale_fan
        return dataclasses.replace(config, **changes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(family={self.family!r})"


def latent_sample(
    model: nn.Module, z_dim: int, n: int, generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """Run ``model`` on ``n`` standard-normal latents drawn on the CPU (so any device gives the same z)."""
    z = torch.randn(n, z_dim, generator=generator).to(device)
    with torch.no_grad():
        return model(z)
