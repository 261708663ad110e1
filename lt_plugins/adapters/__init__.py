"""Model families: which modules each family masks by default, and how to rebuild a model from its spec.

A registry in the manner of timm's: one file per family, each registering an `Adapter`.
Families are tried in registration order; ``torch`` (any nn.Module) comes last.

Example:
    >>> from lt_plugins.adapters import adapter_for, build_model
    >>> from lt_plugins.models import DCGANGenerator
    >>> spec = adapter_for(DCGANGenerator(nz=16)).spec(DCGANGenerator(nz=16))
    >>> spec["family"], build_model(spec).nz
    ('dcgan', 16)
"""

from ._registry import adapter_for, build_model, check_spec, get_adapter, list_adapters, register_adapter
from .base import Adapter

# Registration order is the order families are tried.
from . import dcgan, stylegan, diffusers, timm, torch_generic  # noqa: E402,F401  isort:skip

__all__ = [
    "Adapter",
    "adapter_for",
    "build_model",
    "check_spec",
    "get_adapter",
    "list_adapters",
    "register_adapter",
]
