"""DCGANs: the package's generator, and any transposed-convolution stack (pytorch/examples' included)."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models.dcgan import DCGANGenerator
from ._registry import register_adapter
from .base import Adapter, class_path, json_config


def _weight_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]


@register_adapter
class DCGANAdapter(Adapter):
    """`lt_plugins.models.DCGANGenerator`, rebuilt from its ``config``; and by structure any model whose
    weight layers are mostly transposed convolutions (at least two), such as the pytorch/examples DCGAN.

    Example:
        >>> gen = DCGANGenerator(nz=8, ngf=8, nc=1, image_size=8)
        >>> DCGANAdapter().build(DCGANAdapter().spec(gen)).config == gen.config
        True
    """

    family = "dcgan"
    own_class = DCGANGenerator
    target_modules = [r"main\.\d+"]  # the ConvTranspose2d stack; BatchNorm stays dense
    structure_rank = 30  # after StyleGAN and UNet, whose up-sampling may be transposed convolutions too

    def resembles(self, model: nn.Module) -> str | None:
        layers = _weight_layers(model)
        transposed = sum(isinstance(m, nn.modules.conv._ConvTransposeNd) for m in layers)
        if transposed >= 2 and 2 * transposed > len(layers):
            return f"a transposed-convolution stack ({transposed} of {len(layers)} weight layers)"
        return None

    def spec(self, model: nn.Module) -> dict[str, Any]:
        if not self.owns(model):
            return super().spec(model)
        return {"family": self.family, "class": class_path(model), "config": json_config("DCGANGenerator", model.config)}

    def build(self, spec: dict[str, Any], allow_remote_code: bool = False) -> nn.Module:
        if spec.get("class") != class_path(self.own_class):
            return super().build(spec, allow_remote_code)
        return DCGANGenerator(**(spec.get("config") or {}))

    def latent_dim(self, spec: dict[str, Any]) -> int | None:
        return int((spec.get("config") or {}).get("nz", 100))

    def latent_shape(self, model: nn.Module) -> tuple[int, ...] | None:
        if self.owns(model):
            return (model.nz,)
        nz = getattr(model, "nz", None)  # a DCGAN that keeps its nz takes z as (N, nz, 1, 1)
        return (nz, 1, 1) if isinstance(nz, int) else None
