"""StyleGAN2s: the package's generator (mapping FCs, modulated convs, style affines, toRGB), and by structure any
model with mapping + synthesis networks or modulated convolutions (the official StyleGAN2-ADA networks, community ones)."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models.stylegan import StyleGANGenerator
from ._registry import register_adapter
from .base import Adapter, class_path, json_config


@register_adapter
class StyleGANAdapter(Adapter):
    """`lt_plugins.models.stylegan.StyleGANGenerator`, rebuilt from its ``config``; and by structure any
    model with ``mapping`` and ``synthesis`` submodules or a module whose class is named like a modulated
    convolution. Those are recorded by importable class and constructor config, every weight masked.

    The learned constant, biases and noise strengths are not masked: they go into the
    ticket as values. ``noise_const`` maps are rebuilt by the constructor from fixed seeds.

    Example:
        >>> gen = StyleGANGenerator(z_dim=8, w_dim=8, img_resolution=8, channel_max=8)
        >>> StyleGANAdapter().build(StyleGANAdapter().spec(gen)).config == gen.config
        True
    """

    family = "stylegan"
    own_class = StyleGANGenerator
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

    structure_rank = 10

    def resembles(self, model: nn.Module) -> str | None:
        children = dict(model.named_children())
        if "mapping" in children and "synthesis" in children:
            return "mapping + synthesis networks"
        modulated = next((type(m).__name__ for m in model.modules() if "modulated" in type(m).__name__.lower()), None)
        return f"modulated convolutions ({modulated})" if modulated else None

    def spec(self, model: nn.Module) -> dict[str, Any]:
        if not self.owns(model):
            return super().spec(model)
        config = json_config("StyleGANGenerator", model.config)
        return {"family": self.family, "class": class_path(model), "config": config}

    def build(self, spec: dict[str, Any], allow_remote_code: bool = False) -> nn.Module:
        if spec.get("class") != class_path(self.own_class):
            return super().build(spec, allow_remote_code)
        return StyleGANGenerator(**(spec.get("config") or {}))

    def latent_dim(self, spec: dict[str, Any]) -> int | None:
        z_dim = (spec.get("config") or {}).get("z_dim")
        if spec.get("class") == class_path(self.own_class):
            return int(z_dim or 64)
        return z_dim if isinstance(z_dim, int) else None

    def latent_shape(self, model: nn.Module) -> tuple[int, ...] | None:
        z_dim = getattr(model, "z_dim", None)  # the official networks and ours keep it
        return (z_dim,) if isinstance(z_dim, int) else super().latent_shape(model)
