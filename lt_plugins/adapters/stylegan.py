"""The package's StyleGAN2-style generator: mapping FCs, modulated convs, style affines, toRGB."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.stylegan import StyleGANGenerator
from ._registry import register_adapter
from .base import Adapter, class_path, json_config, latent_sample, model_class


@register_adapter
class StyleGANAdapter(Adapter):
    """`lt_plugins.models.stylegan.StyleGANGenerator`, rebuilt from its ``config``.

    The learned constant, biases and noise strengths are not masked: they go into the
    ticket as values. ``noise_const`` maps are rebuilt by the constructor from fixed seeds.

    Example:
        >>> gen = StyleGANGenerator(z_dim=8, w_dim=8, img_resolution=8, channel_max=8)
        >>> StyleGANAdapter().build(StyleGANAdapter().spec(gen)).config == gen.config
        True
    """

    family = "stylegan"
    target_modules = [
        r"mapping\.fc\d+",  # mapping network
        r"synthesis\.b\d+\.conv[01]",  # modulated convolutions
        r".*\.affine",  # style projections
        r"synthesis\.b\d+\.torgb",  # toRGB
    ]

    # No normalisation layer rescales activations (demodulation normalises weights only): a
    # score step of 0.1 flips thousands of mask bits in one direction and activations explode
    # within a step or two; at 3e-4 the ticket beats the dense network (benchmarks/families.py).
    search_lr = 3e-4
    dense_lr = 3e-4

    def matches(self, model: nn.Module) -> bool:
        return model_class(model) is StyleGANGenerator

    def spec(self, model: nn.Module) -> dict[str, Any]:
        config = json_config("StyleGANGenerator", model.config)
        return {"family": self.family, "class": class_path(model), "config": config}

    def build(self, spec: dict[str, Any], allow_remote_code: bool = False) -> nn.Module:
        if spec.get("class") != class_path(StyleGANGenerator):
            raise ValueError(f"The stylegan family builds {class_path(StyleGANGenerator)}, not {spec.get('class')!r}.")
        return StyleGANGenerator(**(spec.get("config") or {}))

    def latent_dim(self, spec: dict[str, Any]) -> int | None:
        return int((spec.get("config") or {}).get("z_dim", 64))

    def sample(self, model, n, *, generator: torch.Generator, device="cpu") -> torch.Tensor:
        return latent_sample(model, model.z_dim, n, generator, device)
