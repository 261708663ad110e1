"""Your own StyleGAN2, written as the official code writes it, searched for a ticket on MNIST as it is.

The generator below is a small StyleGAN2 in the official StyleGAN2-ADA pattern: called
``G(z, c, noise_mode=...)``, every weight *stored* N(0, 1) (the mapping's N(0, 1) / lr_multiplier)
and rescaled at run time (equalized learning rate: times ``lr_multiplier / sqrt(fan_in)`` in
``forward``), modulated and demodulated 3x3 convolutions on a learned constant, toRGB skips.
Nothing in it knows about lt_plugins. `lt.wrap` recognises it as a StyleGAN by its structure
(mapping + synthesis), masks the mapping, the modulated convs, the style affines and toRGB, and
draws each weight at the scale its constructor stored (the INFO line says so), so the run-time
gains bring it where the author meant. The search is told only how the model is called:
``latent_shape=(Z_DIM,)`` and ``generate=generate``. The ticket is saved, rebuilt on a fresh
instance and sampled; FD uses a feature network trained from another seed than the loss's.

    python examples/stylegan2_equalized.py                  # a few minutes on a laptop CPU
    python examples/stylegan2_equalized.py --density 0.3 --steps 600 --out out/sg2eq30
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the search script itself is dcgan_mnist.py's
from dcgan_mnist import search_example  # noqa: E402

Z_DIM = 32


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * math.sqrt(2)  # unit-variance leaky ReLU, as StyleGAN's "lrelu"


class EqualizedLinear(nn.Module):
    """Weight stored N(0, 1) / lr_multiplier, multiplied by lr_multiplier / sqrt(in) at run time."""

    def __init__(self, in_features: int, out_features: int, lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain, self.bias_gain = lr_multiplier / math.sqrt(in_features), lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)


class ModulatedConv(nn.Module):
    """A 3x3 (or 1x1 toRGB) convolution whose input channels are scaled per sample by a style of w;
    demodulated to unit output variance, or (toRGB) with the gain 1/sqrt(fan_in) on the style."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 3, demodulate: bool = True) -> None:
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.demodulate, self.padding = demodulate, kernel_size // 2
        self.style_gain = 1.0 if demodulate else 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.style_gain
        x = F.conv2d(x * styles[:, :, None, None], self.weight, padding=self.padding)
        if self.demodulate:
            x = x * (styles.square() @ self.weight.square().sum([2, 3]).t() + 1e-8).rsqrt()[:, :, None, None]
        return x + self.bias[None, :, None, None]


class Mapping(nn.Module):
    """z -> w: normalised z, 4 equalized linears at lr_multiplier 0.01 with leaky ReLU."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int = 4, lr_multiplier: float = 0.01) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * num_layers
        self.fcs = nn.ModuleList(EqualizedLinear(a, b, lr_multiplier) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        for fc in self.fcs:
            x = lrelu(fc(x))
        return x


class Synthesis(nn.Module):
    """w -> image: a learned 4x4 constant, two modulated convs per resolution up to 32x32 (the first of each
    upsampling), per-pixel noise scaled by learned strengths, toRGB outputs summed across resolutions."""

    def __init__(self, w_dim: int, resolution: int = 32, channels: int = 1, width: int = 64) -> None:
        super().__init__()
        self.const = nn.Parameter(torch.randn(width, 4, 4))
        self.resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        self.convs = nn.ModuleList()
        self.torgbs = nn.ModuleList(ModulatedConv(width, channels, w_dim, 1, demodulate=False) for _ in self.resolutions)
        for res in self.resolutions:
            self.convs.extend([ModulatedConv(width, width, w_dim), ModulatedConv(width, width, w_dim)] if res > 4
                              else [ModulatedConv(width, width, w_dim)])
        self.noise_strengths = nn.Parameter(torch.zeros(len(self.convs)))
        for i, res in enumerate(r for r in self.resolutions for _ in range(1 if r == 4 else 2)):
            self.register_buffer(f"noise_const{i}", torch.randn(res, res))

    def forward(self, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = self.const.expand(w.shape[0], -1, -1, -1)
        img, layer = None, 0
        for res, torgb in zip(self.resolutions, self.torgbs):
            for up in ([False] if res == 4 else [True, False]):
                x = F.interpolate(x, scale_factor=2, mode="nearest") if up else x
                x = self.convs[layer](x, w)
                noise = (torch.randn(x.shape[0], 1, res, res, device=x.device) if noise_mode == "random"
                         else getattr(self, f"noise_const{layer}"))
                x = lrelu(x + noise * self.noise_strengths[layer])
                layer += 1
            y = torgb(x, w)
            img = y if img is None else F.interpolate(img, scale_factor=2, mode="nearest") + y
        return img


class Generator(nn.Module):
    """``G(z, c, noise_mode='random')`` -> images (N, 1, 32, 32); ``c`` is unused (unconditional)."""

    def __init__(self, z_dim: int = Z_DIM, w_dim: int = 32, resolution: int = 32, channels: int = 1) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.mapping = Mapping(z_dim, w_dim)
        self.synthesis = Synthesis(w_dim, resolution, channels)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, noise_mode: str = "random") -> torch.Tensor:
        return self.synthesis(self.mapping(z, c), noise_mode=noise_mode)


def generate(G: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """How this generator is called: no class label, the stored noise (a deterministic image per z)."""
    return G(z, None, noise_mode="const")


def main(argv: list[str] | None = None) -> float:
    return search_example(Generator, (Z_DIM,), argv, __doc__, "out/stylegan2_equalized", generate=generate)


if __name__ == "__main__":
    main()
