"""diffusers UNets: convolutions, attention projections and time-embedding layers are masked.

diffusers is imported only when a spec of this family is built or sampled, so recognising a
model costs nothing.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..base_model import BaseModel, is_repo_id
from ..diffusion import sample as ddim_sample
from ._registry import register_adapter
from .base import Adapter, json_config, model_class

# The only diffusers classes a ticket may name; built with ``from_config`` (or ``from_pretrained``).
ALLOWED_CLASSES = ("UNet2DModel", "UNet2DConditionModel")


def _allowed_class(spec: dict[str, Any]) -> type:
    name = str(spec.get("class", "")).removeprefix("diffusers.")
    if name not in ALLOWED_CLASSES:
        raise ValueError(
            f"Model class {spec.get('class')!r} is not on the diffusers allow-list "
            f"{[f'diffusers.{c}' for c in ALLOWED_CLASSES]}; build the model yourself and pass it."
        )
    import diffusers

    return getattr(diffusers, name)


def _diffusers_class(model: nn.Module) -> str | None:
    cls = model_class(model)
    if cls.__module__.split(".")[0] == "diffusers" and cls.__name__ in ALLOWED_CLASSES:
        return cls.__name__
    return None


@register_adapter
class DiffusersUNetAdapter(Adapter):
    """diffusers ``UNet2DModel`` / ``UNet2DConditionModel``, rebuilt with ``from_config``, or for a ticket on
    a pretrained base (``weight_init="keep"``) loaded with ``from_pretrained`` at the ticket's pinned revision.

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
        r"(.*\.)?(conv_in|conv_out|conv\d?|conv_shortcut|skip_conv"  # convolutions
        r"|to_q|to_k|to_v|to_out\.0|add_k_proj|add_v_proj"  # attention (and its added key/values)
        r"|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2"  # transformer blocks
        r"|linear_\d|time_emb_proj|cond_proj|encoder_hid_proj)"  # time, class and condition embeddings
    ]
    # GroupNorm follows every convolution and re-normalises, and the kept-fan-in boost made the
    # attention logits and the output grow until the search stalled at "predict zero noise".
    scale_fan = False
    search_lr = 3e-3
    dense_lr = 1e-3

    def owns(self, model: nn.Module) -> bool:
        return _diffusers_class(model) is not None

    def spec(self, model: nn.Module) -> dict[str, Any]:
        name = _diffusers_class(model)
        config = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
        return {"family": self.family, "class": f"diffusers.{name}", "config": json_config(name, config)}

    def build(self, spec: dict[str, Any], allow_remote_code: bool = False) -> nn.Module:
        return _allowed_class(spec).from_config(dict(spec.get("config") or {}))

    def base_repo(self, model: nn.Module) -> str | None:
        """``config._name_or_path``, which ``from_pretrained`` sets, when it is a Hub repo id (not a folder)."""
        name = dict(model.config).get("_name_or_path")
        return name if is_repo_id(name) and not os.path.exists(name) else None

    def load_base(self, spec: dict[str, Any], base: BaseModel) -> nn.Module:
        """``from_pretrained(repo_id, revision=..., subfolder=...)`` of the spec's class."""
        try:
            return _allowed_class(spec).from_pretrained(base.repo_id, revision=base.revision, subfolder=base.subfolder)
        except OSError as err:  # diffusers reports a missing repo, file or network as EnvironmentError
            raise ValueError(
                f"Could not load the ticket's base {base} from the Hub: {err} Check the repo (and the "
                "subfolder a pipeline keeps its UNet in), or pass the model: ticket.apply(model)."
            ) from err

    def sample(self, model, n, *, generator: torch.Generator, device="cpu", steps: int = 50) -> torch.Tensor:
        """`lt_plugins.diffusion.sample`: ``steps`` DDIM steps over a linear schedule of 1000 steps
        (or of the UNet's ``num_train_timesteps``), run where the UNet is; the images are moved to ``device``."""
        if _diffusers_class(model) != "UNet2DModel":
            return super().sample(model, n, generator=generator, device=device)
        from diffusers import DDPMScheduler

        train_steps = model.config.num_train_timesteps
        scheduler = DDPMScheduler(num_train_timesteps=train_steps) if train_steps else None
        return ddim_sample(model, n, steps=steps, generator=generator, scheduler=scheduler).to(device)
