"""Model families: which modules each family masks by default, and how to rebuild a model from its spec.

A registry in the manner of timm's: one file per family, each registering an `Adapter`.
A model's family is the one that owns its class, else the first whose structure it has
(`recognise`); ``torch`` (any nn.Module) is the fallback.

Example:
    >>> from lt_plugins.adapters import adapter_for, build_model
    >>> from lt_plugins.models import DCGANGenerator
    >>> spec = adapter_for(DCGANGenerator(nz=16)).spec(DCGANGenerator(nz=16))
    >>> spec["family"], build_model(spec).nz
    ('dcgan', 16)
"""

from ._registry import adapter_for, build_model, check_spec, get_adapter, list_adapters, recognise, register_adapter
from .base import Adapter

from . import dcgan, diffusers, stylegan, timm, torch_generic, unet  # noqa: E402,F401  isort:skip

__all__ = [
    "Adapter",
    "adapter_for",
    "build_model",
    "check_spec",
    "get_adapter",
    "list_adapters",
    "recognise",
    "register_adapter",
]
