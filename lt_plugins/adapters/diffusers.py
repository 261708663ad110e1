"""diffusers UNets: convolutions, attention projections and time-embedding layers are masked.

diffusers is imported only when a spec of this family is built or sampled, so recognising a
model costs nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._registry import register_adapter
from .base import Adapter, json_config, model_class

# The only diffusers classes a ticket may name; each is built with ``from_config``.
ALLOWED_CLASSES = ("UNet2DModel", "UNet2DConditionModel")


def _diffusers_class(model: nn.Module) -> str | None:
    cls = model_class(model)
    if cls.__module__.split(".")[0] == "diffusers" and cls.__name__ in ALLOWED_CLASSES:
        return cls.__name__
    return None


@register_adapter
class DiffusersUNetAdapter(Adapter):
    """diffusers ``UNet2DModel`` / ``UNet2DConditionModel``, rebuilt with ``from_config``.

    Example:
        >>> from diffusers import UNet2DModel
        >>> unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4,
        ...                    down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        >>> adapter = DiffusersUNetAdapter()
        >>> adapter.spec(unet)["class"], type(adapter.build(adapter.spec(unet))).__name__
        ('diffusers.UNet2DModel', 'UNet2DModel')
    """

    family = "diffusers"
    # One alternation, so that a UNet without attention (or without a time embedding)
    # still matches: find_targets refuses a pattern that matches nothing.
    target_modules = [
        r"(.*\.)?(conv_in|conv_out|conv\d?|conv_shortcut"  # convolutions
        r"|to_q|to_k|to_v|to_out\.0|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2"  # attention
        r"|linear_\d|time_emb_proj)"  # time embedding
    ]

    def matches(self, model: nn.Module) -> bool:
        return _diffusers_class(model) is not None

    def spec(self, model: nn.Module) -> dict[str, Any]:
        name = _diffusers_class(model)
        config = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
        return {"family": self.family, "class": f"diffusers.{name}", "config": json_config(name, config)}

    def build(self, spec: dict[str, Any], allow_remote_code: bool = False) -> nn.Module:
        name = str(spec.get("class", "")).removeprefix("diffusers.")
        if name not in ALLOWED_CLASSES:
            raise ValueError(
                f"Model class {spec.get('class')!r} is not on the diffusers allow-list "
                f"{[f'diffusers.{c}' for c in ALLOWED_CLASSES]}; build the model yourself and pass it."
            )
        import diffusers

        return getattr(diffusers, name).from_config(dict(spec.get("config") or {}))

    def sample(self, model, n, *, generator: torch.Generator, device="cpu", steps: int = 50) -> torch.Tensor:
        """DDIM sampling (``steps`` steps over the default 1000-step linear schedule)."""
        if _diffusers_class(model) != "UNet2DModel":
            return super().sample(model, n, generator=generator, device=device)
        from diffusers import DDIMScheduler

        cfg = model.config
        size = cfg.sample_size if isinstance(cfg.sample_size, (list, tuple)) else (cfg.sample_size,) * 2
        scheduler = DDIMScheduler(num_train_timesteps=cfg.num_train_timesteps or 1000)
        scheduler.set_timesteps(steps)
        x = torch.randn(n, cfg.in_channels, *size, generator=generator).to(device)
        with torch.no_grad():
            for t in scheduler.timesteps:
                x = scheduler.step(model(x, t).sample, t, x).prev_sample
        return x.clamp(-1, 1)
