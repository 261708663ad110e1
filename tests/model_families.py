"""One table of small, real models of each family the package supports, shared by the tests.

Each entry builds a fresh instance and an input; ``run`` gives the model's output tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass
class Family:
    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[], tuple]
    output: Callable[[nn.Module, tuple], torch.Tensor]


def _dcgan() -> nn.Module:
    from lt_plugins.models import DCGANGenerator

    return DCGANGenerator(nz=32, ngf=16, nc=1, image_size=32)


def _stylegan() -> nn.Module:
    from lt_plugins.models import StyleGANGenerator

    return StyleGANGenerator(z_dim=32, w_dim=32, img_resolution=16, img_channels=1, channel_max=32)


def _unet() -> nn.Module:
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=16, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )


def _timm() -> nn.Module:
    import timm

    # zero_init_last would zero every residual branch, and with it the gradients of its scores.
    return timm.create_model("test_resnet", pretrained=False, num_classes=10, zero_init_last=False)


def _latent(dim: int) -> Callable[[], tuple]:
    return lambda: (torch.randn(4, dim, generator=torch.Generator().manual_seed(1)),)


FAMILIES = [
    Family("dcgan", _dcgan, _latent(32), lambda m, x: m(*x)),
    Family("stylegan", _stylegan, _latent(32), lambda m, x: m(*x)),
    Family(
        "unet",
        _unet,
        lambda: (torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)), torch.tensor([10, 500])),
        lambda m, x: m(*x).sample,
    ),
    Family(
        "timm",
        _timm,
        lambda: (torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)),),
        lambda m, x: m(*x),
    ),
]
FAMILY_IDS = [f.name for f in FAMILIES]
