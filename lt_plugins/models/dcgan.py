"""A DCGAN generator written the way people write it (the PyTorch DCGAN tutorial's layout)."""

from __future__ import annotations

import math

import torch
from torch import nn


class DCGANGenerator(nn.Module):
    """DCGAN generator: z -> ConvTranspose/BatchNorm/ReLU stack -> tanh image.

    The first layer maps z (nz×1×1) to 4×4; each following layer doubles the resolution
    and halves the channels, ending at ``ngf`` channels before the RGB/gray output layer.
    With the defaults (64×64, ngf 64, nz 100) it is the tutorial network (3.6M weights).

    Example:
        >>> gen = DCGANGenerator(nz=100, ngf=8, nc=1, image_size=32)
        >>> gen(torch.randn(2, 100)).shape
        torch.Size([2, 1, 32, 32])
    """

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3, image_size: int = 64) -> None:
        super().__init__()
        n_up = math.log2(image_size / 4)
        if image_size < 8 or not n_up.is_integer():
            raise ValueError(f"image_size={image_size} must be a power of two >= 8 (e.g. 32 or 64).")
        self.config = {"nz": nz, "ngf": ngf, "nc": nc, "image_size": image_size}
        self.nz = nz
        channels = ngf * 2 ** (int(n_up) - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, channels, 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(True),
        ]
        while channels > ngf:
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.nz, 1, 1))
