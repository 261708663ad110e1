"""UNets outside diffusers: ``forward(x, t)`` with a time embedding (community DDPM code).

diffusers' own UNets are the ``diffusers`` family (rebuilt from their config); any other UNet is
recognised by structure, gets the UNet defaults, and is recorded by importable class.
"""

from __future__ import annotations

import inspect

from torch import nn

from ._registry import register_adapter
from .base import Adapter, forward_arity

# Submodule names and class names that time embeddings go by in public DDPM code.
_TIME_WORDS = ("time", "temb", "timestep")
_TIME_CLASSES = ("sinusoidal", "positionalembedding", "timestep", "fourier")


def _time_embedding(model: nn.Module) -> str | None:
    for name, module in model.named_modules():
        leaf = name.rpartition(".")[2].lower()
        if any(word in leaf for word in _TIME_WORDS) or any(c in type(module).__name__.lower() for c in _TIME_CLASSES):
            return name or type(module).__name__
    return None


@register_adapter
class UNetAdapter(Adapter):
    """Any UNet whose ``forward`` takes ``(x, t)`` and that holds a time embedding, e.g. a community DDPM ``Unet``.

    Defaults as for diffusers UNets: every weight masked, ``scale_fan=False`` (GroupNorm follows
    every convolution and re-normalises), score lr 3e-3, dense lr 1e-3.

    Example:
        >>> from torch import nn
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.time_mlp, self.conv = nn.Linear(1, 4), nn.Conv2d(1, 1, 3)
        ...     def forward(self, x, time):
        ...         return self.conv(x)
        >>> UNetAdapter().resembles(Net())
        'forward(x, time) with a time embedding (time_mlp)'
    """

    family = "unet"
    scale_fan = False
    search_lr = 3e-3
    dense_lr = 1e-3
    structure_rank = 20

    def resembles(self, model: nn.Module) -> str | None:
        if forward_arity(model) < 2:
            return None
        embedding = _time_embedding(model)
        if embedding is None:
            return None
        names = [p for p in inspect.signature(model.forward).parameters][:2]
        return f"forward({', '.join(names)}) with a time embedding ({embedding})"
