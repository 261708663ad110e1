"""`FeatureStack`: several feature networks as one, their feature maps side by side."""

from __future__ import annotations

import torch
from torch import nn


class FeatureStack(nn.Module):
    """The feature maps of every network in ``nets``, in order, as one list.

    Moment matching then matches the statistics of each network, as GFMN matched several
    networks' features: independently trained networks disagree on what they ignore, so a
    generator cannot satisfy one by drawing what the other rejects. ``feature_net`` builds one
    from names joined by ``+``, e.g. ``"mnist+mnist:2"``; the README's quality section gives
    what it did on the demo's DCGAN.

    Example:
        >>> stack = FeatureStack([nn.Identity(), nn.Flatten()])
        >>> [tuple(f.shape) for f in stack(torch.zeros(2, 1, 4, 4))]
        [(2, 1, 4, 4), (2, 16)]
    """

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        if not nets:
            raise ValueError("FeatureStack needs at least one feature network.")
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps: list[torch.Tensor] = []
        for net in self.nets:
            out = net(x)
            maps.extend(out if isinstance(out, (list, tuple)) else [out])
        return maps
