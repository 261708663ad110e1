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
    """Registered family names, in the order they are tried (the generic fallback last).

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


def adapter_for(model: nn.Module) -> Adapter:
    """The adapter of the first family that claims ``model`` (any nn.Module falls back to 'torch').

    Example:
        >>> from torch import nn
        >>> adapter_for(nn.Linear(2, 2)).family
        'torch'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"adapter_for() takes an nn.Module, got {type(model).__name__}.")
    for family in list_adapters():
        if _ADAPTERS[family].matches(model):
            return _ADAPTERS[family]
    raise ValueError(f"No adapter claims {type(model).__name__}; registered families: {list_adapters()}.")


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

