"""Your own diffusion UNet -- ``unet(x, t)`` with its own noise schedule, no diffusers -- searched for a ticket on MNIST.

The UNet below is written as community DDPM code writes it: ``forward(x, t)`` with integer
timesteps of shape (N,), a sinusoidal time embedding and MLP, ResNet blocks with GroupNorm and a
time-conditioned scale and shift, a down path, a middle, an up path joined by skips; its noise
schedule is a tensor of betas (cosine, Nichol & Dhariwal). Nothing in it knows about lt_plugins.
`lt.wrap` recognises it as a UNet by its structure (forward(x, t) with a time embedding) and applies
the UNet family's defaults (convolutions and time embedding masked, scale_fan=False, score lr 3e-3).
`DenoisingObjective(betas, sample_shape=...)` trains the scores on the DDPM noise-prediction loss;
`DDIMGenerator(unet, betas)` samples it. The ticket is saved, rebuilt on a fresh instance and sampled;
FD of DDIM samples uses a feature network trained from another seed than the loss's.

    python examples/unet_xt.py                              # a few minutes on a laptop CPU
    python examples/unet_xt.py --density 0.3 --steps 600 --out out/unet_xt30
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the search script itself is unet_ddpm_mnist.py's
from unet_ddpm_mnist import denoising_example  # noqa: E402

SHAPE = (1, 32, 32)


def cosine_betas(timesteps: int = 1000, s: float = 0.008) -> torch.Tensor:
    """The cosine schedule's betas, clipped to 0.999."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    alphas_cumprod = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(0, 0.999)


class TimeEmbedding(nn.Module):
    """Integer timesteps (N,) -> sinusoidal features -> MLP."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / (half - 1))
        angles = t[:, None].float() * freqs[None]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


class ResBlock(nn.Module):
    """Two 3x3 convs with GroupNorm and SiLU; the time embedding scales and shifts the first."""

    def __init__(self, dim_in: int, dim_out: int, time_dim: int, groups: int = 4) -> None:
        super().__init__()
        self.conv1, self.norm1 = nn.Conv2d(dim_in, dim_out, 3, padding=1), nn.GroupNorm(groups, dim_out)
        self.conv2, self.norm2 = nn.Conv2d(dim_out, dim_out, 3, padding=1), nn.GroupNorm(groups, dim_out)
        self.time = nn.Linear(time_dim, 2 * dim_out)
        self.skip = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.time(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm1(self.conv1(x)) * (1 + scale) + shift)
        return F.silu(self.norm2(self.conv2(h))) + self.skip(x)


class UNet(nn.Module):
    """``unet(x, t)`` -> predicted noise, for (N, 1, 32, 32) images: widths ``dim * mults``, one ResBlock per level."""

    def __init__(self, dim: int = 16, mults: tuple[int, ...] = (1, 2, 2), channels: int = 1) -> None:
        super().__init__()
        widths = [dim * m for m in mults]
        self.time = TimeEmbedding(dim, 4 * dim)
        self.stem = nn.Conv2d(channels, dim, 3, padding=1)
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        previous = dim
        for width in widths:
            self.downs.append(ResBlock(previous, width, 4 * dim))
            previous = width
        self.middle = ResBlock(previous, previous, 4 * dim)
        for width in reversed(widths):
            self.ups.append(ResBlock(previous + width, width, 4 * dim))
            previous = width
        self.out = nn.Conv2d(previous, channels, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb, h, skips = self.time(t), self.stem(x), []
        for i, block in enumerate(self.downs):
            h = block(h, emb)
            skips.append(h)
            h = F.avg_pool2d(h, 2) if i < len(self.downs) - 1 else h
        h = self.middle(h, emb)
        for i, block in enumerate(self.ups):
            h = F.interpolate(h, scale_factor=2, mode="nearest") if i > 0 else h
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="search steps (default: %(default)s)")
    parser.add_argument("--density", type=float, default=0.1, help="fraction of weights kept (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the frozen weights, scores and noise (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="noised real images per step (default: %(default)s)")
    parser.add_argument("--sample-steps", type=int, default=8, help="DDIM steps per sample (default: %(default)s)")
    parser.add_argument("--eval-samples", type=int, default=500,
                        help="FD on this many generated vs as many real images (default: %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu, cuda, ... (default: %(default)s)")
    parser.add_argument("--out", default="out/unet_xt", help="output folder (default: %(default)s)")
    parser.add_argument("--push", metavar="REPO_ID", help="also upload the ticket to this Hub repo")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> float:
    """Search, save (and push) the ticket, sample a grid from the rebuilt ticket; return its FD."""
    # The saved ticket is applied to a fresh UNet of this file: the class is not the package's to build.
    return denoising_example(parse_args(argv), UNet, cosine_betas(1000), rebuild=UNet, sample_shape=SHAPE)


if __name__ == "__main__":
    main()
