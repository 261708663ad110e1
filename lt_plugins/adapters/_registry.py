"""The adapter registry: which family a model belongs to, and rebuilding a model from its spec."""

from __future__ import annotations

from typing import Any, TypeVar

from torch import nn

from .base import Adapter

_ADAPTERS: dict[str, Adapter] = {}
# Families tried only when no specific family claims the model.
_FALLBACK = "torch"

A = TypeVar("A", bound=type)


def register_adapter(cls: A) -> A:
    """Class decorator: add an `Adapter` subclass to the registry under its ``family``.

    Example:
        >>> from lt_plugins.adapters import Adapter, list_adapters, register_adapter
        >>> @register_adapter
        ... class Mine(Adapter):
        ...     family = "mine-doc"
        ...     def matches(self, model): return False
        >>> "mine-doc" in list_adapters()
        True
    """
    if not (isinstance(cls, type) and issubclass(cls, Adapter)) or not cls.family:
        raise ValueError(f"register_adapter takes an Adapter subclass with a non-empty family, got {cls!r}.")
    _ADAPTERS[cls.family] = cls()
    return cls


def list_adapters() -> list[str]:
    """Registered family names (the generic fallback last).

    Example:
        >>> list_adapters()[-1]
        'torch'
    """
    return [f for f in _ADAPTERS if f != _FALLBACK] + ([_FALLBACK] if _FALLBACK in _ADAPTERS else [])


def get_adapter(family: str) -> Adapter:
    """The adapter registered for ``family``.

    Example:
        >>> get_adapter("stylegan").family
        'stylegan'
    """
    try:
        return _ADAPTERS[family]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown model family {family!r}; known families: {list_adapters()}.") from None


def recognise(model: nn.Module, family: str | None = None) -> tuple[Adapter, str]:
    """(adapter, why): the family of ``model`` and how it was recognised.

    ``family`` forces one by name. Otherwise the family that owns the model's class wins (two
    that claim one class are refused); then the structural rules of every family, in their
    ``structure_rank`` order, ties by family name (StyleGAN: mapping +
    synthesis networks or modulated convolutions; UNet: ``forward(x, t)`` with a time embedding;
    DCGAN: a transposed-convolution stack); then the generic ``torch`` family. Registration order
    never decides.

    Example:
        >>> from torch import nn
        >>> recognise(nn.Sequential(nn.ConvTranspose2d(8, 4, 4), nn.ConvTranspose2d(4, 1, 4)))[0].family
        'dcgan'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"recognise() takes an nn.Module, got {type(model).__name__}.")
    if family is not None:
        return get_adapter(family), "TicketConfig(family=...)"
    owners = sorted(a.family for a in _ADAPTERS.values() if a.owns(model))
    if len(owners) > 1:
        raise ValueError(
            f"Families {owners} all claim {type(model).__name__} as their own class; say which one it is: "
            f"TicketConfig(family={owners[0]!r})."
        )
    if owners:
        return _ADAPTERS[owners[0]], f"class {type(model).__name__}"
    for adapter in sorted(_ADAPTERS.values(), key=lambda a: (a.structure_rank, a.family)):
        reason = adapter.resembles(model)
        if reason:
            return adapter, reason
    return _ADAPTERS[_FALLBACK], "no family recognised: generic defaults"


def adapter_for(model: nn.Module, family: str | None = None) -> Adapter:
    """The adapter of ``model``'s family (see `recognise`; any nn.Module falls back to 'torch').

    Example:
        >>> from torch import nn
        >>> adapter_for(nn.Linear(2, 2)).family
        'torch'
    """
    return recognise(model, family)[0]


def check_spec(spec: Any) -> dict[str, Any]:
    """``spec`` if it has the shape ``{"family": str, "class": str, "config": dict | None}``, else a ValueError."""
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("family"), str)
        or not isinstance(spec.get("class"), str)
        or not isinstance(spec.get("config", {}), (dict, type(None)))
    ):
        raise ValueError(
            f"Model spec {spec!r} is malformed; expected {{'family': str, 'class': str, 'config': dict}}."
        )
    return spec


def build_model(spec: dict[str, Any], allow_remote_code: bool = False) -> nn.Module:
    """A fresh model of the architecture ``spec`` describes.

    Only classes on an allow-list are built: the package's own generators, diffusers UNets,
    timm models by name (never with pretrained weights). Any other class is imported by
    its recorded path only with ``allow_remote_code=True``; otherwise pass the model yourself.

    Example:
        >>> from lt_plugins.models import DCGANGenerator
        >>> spec = adapter_for(DCGANGenerator(nz=8)).spec(DCGANGenerator(nz=8))
        >>> type(build_model(spec)).__name__
        'DCGANGenerator'
    """
    spec = check_spec(spec)
    return get_adapter(spec["family"]).build(spec, allow_remote_code=allow_remote_code)

