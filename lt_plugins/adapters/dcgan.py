"""The package's DCGAN generator: every transposed convolution is masked."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.dcgan import DCGANGenerator
from ._registry import register_adapter
from .base import Adapter, class_path, json_config, latent_sample, model_class


@register_adapter
class DCGANAdapter(Adapter):
    """`lt_plugins.models.DCGANGenerator`, rebuilt from its ``config``.

    Example:
        >>> gen = DCGANGenerator(nz=8, ngf=8, nc=1, image_size=8)
        >>> DCGANAdapter().build(DCGANAdapter().spec(gen)).config == gen.config
        True
    """

    family = "dcgan"
    target_modules = [r"main\.\d+"]  # the ConvTranspose2d stack; BatchNorm stays dense

    def matches(self, model: nn.Module) -> bool:
        return model_class(model) is DCGANGenerator

    def spec(self, model: nn.Module) -> dict[str, Any]:
        config = json_config("DCGANGenerator", model.config)
        return {"family": self.family, "class": class_path(model), "config": config}

    def build(self, spec: dict[str, Any], allow_remote_code: bool = False) -> nn.Module:
        if spec.get("class") != class_path(DCGANGenerator):
            raise ValueError(f"The dcgan family builds {class_path(DCGANGenerator)}, not {spec.get('class')!r}.")
        return DCGANGenerator(**(spec.get("config") or {}))

    def latent_dim(self, spec: dict[str, Any]) -> int | None:
        return int((spec.get("config") or {}).get("nz", 100))

    def sample(self, model, n, *, generator: torch.Generator, device="cpu") -> torch.Tensor:
        return latent_sample(model, model.nz, n, generator, device)
