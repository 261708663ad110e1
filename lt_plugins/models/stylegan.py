"""A compact StyleGAN2-style generator, written the way third-party StyleGAN code is.

The layers here hold their own ``weight`` Parameters and call ``F.linear`` /
``F.conv2d`` themselves, as in NVIDIA's or lucidrains' StyleGAN2 code, rather than
subclassing ``nn.Linear`` / ``nn.Conv2d``. That makes this module the package's
stand-in for "somebody else's generator": masks reach it through
``torch.nn.utils.parametrize`` only because every layer reads ``self.weight`` at
forward time.

What is StyleGAN2 here: pixel-normalised ``z`` mapped to ``w`` by an MLP; a learned
constant 4x4 input; per-layer styles from an affine projection of ``w`` that modulate
the convolution weights, then demodulate them (weight normalisation per sample);
per-layer noise with a learned strength (initialised to 0); skip connections from a
``ToRGB`` at every resolution.

What is deliberately different:

* No equalized learning rate. Weights are initialised at their final scale
  (Kaiming, fan-in) and used as they are, because the package re-draws every targeted
  weight from a seed with fan-in scaling; a hidden runtime gain would multiply that.
  The fixed ``sqrt(2)`` leaky-ReLU gain of the synthesis layers stays: it keeps
  activations at unit scale and does not depend on any weight.
* Upsampling is bilinear interpolation followed by a 3x3 convolution (no transposed
  convolution, no FIR filters).
* The output goes through ``tanh`` by default, so images lie in ``[-1, 1]``: the
  package compares generated and real images in that range.

Example:
    >>> import torch
    >>> gen = StyleGANGenerator(img_resolution=16, img_channels=3)
    >>> gen(torch.randn(2, 64)).shape
    torch.Size([2, 3, 16, 16])
    >>> StyleGANGenerator(**gen.config).config == gen.config
    True
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .stylegan_layers import (
    NOISE_MODES, FullyConnected, MappingNetwork, ModulatedConv2d, SynthesisLayer, ToRGB, _check_noise_mode, pixel_norm,
)

__all__ = [
    "pixel_norm",
    "FullyConnected",
    "MappingNetwork",
    "ModulatedConv2d",
    "SynthesisLayer",
    "ToRGB",
    "SynthesisBlock",
    "SynthesisNetwork",
    "StyleGANGenerator",
]


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network (skip architecture).

    At 4x4: ``conv1`` and ``torgb`` only (the input is the learned constant). Above:
    ``conv0`` (upsamples 2x), ``conv1``, ``torgb``; the previous image is upsampled
    bilinearly and this block's ``torgb`` output is added to it.

    Example:
        >>> block = SynthesisBlock(8, 4, w_dim=16, resolution=8, img_channels=1)
        >>> x, img = block(torch.randn(2, 8, 4, 4), torch.zeros(2, 1, 4, 4), torch.randn(2, 16))
        >>> x.shape, img.shape
        (torch.Size([2, 4, 8, 8]), torch.Size([2, 1, 8, 8]))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        # Distinct, fixed seeds per layer make the "const" noise maps deterministic.
        seed = 1000 * resolution
        self.conv0: SynthesisLayer | None = None
        if resolution > 4:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim, resolution, up=True, noise_seed=seed
            )
        self.conv1 = SynthesisLayer(
            out_channels if resolution > 4 else in_channels,
            out_channels,
            w_dim,
            resolution,
            noise_seed=seed + 1,
        )
        self.torgb = ToRGB(out_channels, img_channels, w_dim)

    def forward(
        self,
        x: torch.Tensor,
        img: torch.Tensor | None,
        w: torch.Tensor,
        noise_mode: str = "const",
        fused_modconv: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.conv0 is not None:
            x = self.conv0(x, w, noise_mode=noise_mode, fused_modconv=fused_modconv)
        x = self.conv1(x, w, noise_mode=noise_mode, fused_modconv=fused_modconv)
        y = self.torgb(x, w, fused_modconv=fused_modconv)
        if img is not None:
            y = y + F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
        return x, y


class SynthesisNetwork(nn.Module):
    """From ``w`` to an image: learned constant ``const``, then blocks ``b4 ... bR``.

    Channels at resolution ``r`` are ``min(channel_base // r, channel_max)``.

    Example:
        >>> synthesis = SynthesisNetwork(w_dim=16, img_resolution=8, img_channels=1,
        ...                              channel_base=64, channel_max=16)
        >>> synthesis(torch.randn(2, 16)).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int,
        channel_max: int,
    ) -> None:
        super().__init__()
        self.resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        channels = {r: max(1, min(channel_base // r, channel_max)) for r in self.resolutions}
        self.const = nn.Parameter(torch.randn(channels[4], 4, 4))
        for r in self.resolutions:
            in_channels = channels[r // 2] if r > 4 else channels[4]
            block = SynthesisBlock(in_channels, channels[r], w_dim, r, img_channels)
            setattr(self, f"b{r}", block)

    def forward(
        self, w: torch.Tensor, noise_mode: str = "const", fused_modconv: bool = False
    ) -> torch.Tensor:
        _check_noise_mode(noise_mode)
        # Channels-last: on CPU, oneDNN convolutions and bilinear upsampling make the
        # whole forward pass about 1.5x faster in this layout, with the same values.
        x = self.const[None].expand(w.shape[0], -1, -1, -1)
        x = x.contiguous(memory_format=torch.channels_last)
        img = None
        for r in self.resolutions:
            block = getattr(self, f"b{r}")
            x, img = block(x, img, w, noise_mode=noise_mode, fused_modconv=fused_modconv)
        return img.contiguous()


class StyleGANGenerator(nn.Module):
    """A small StyleGAN2-style generator: ``z`` (N, z_dim) -> image (N, C, R, R).

    Args:
        z_dim: latent size; ``z`` may also come as (N, z_dim, 1, 1).
        w_dim: intermediate latent size.
        img_resolution: output side, a power of two >= 4.
        img_channels: output channels (1 for MNIST, 3 for RGB).
        channel_base, channel_max: channels at resolution r are
            ``min(channel_base // r, channel_max)``.
        mapping_layers: depth of the mapping MLP.
        output_tanh: squash the output to ``[-1, 1]``, the range in which the package
            matches generated against real images; turn off to get raw values.

    All arguments are JSON-serialisable and kept in ``self.config``, so
    ``StyleGANGenerator(**gen.config)`` rebuilds the same architecture (its weights
    come from the package's seed, not from here).

    Parameter layout (defaults): ``mapping.fc{0..3}.{weight,bias}``,
    ``synthesis.const``, ``synthesis.b4.conv1.*``, ``synthesis.b{8,16,32}.conv{0,1}.*``,
    ``synthesis.b{r}.torgb.*``; each conv has ``weight``, ``affine.{weight,bias}``,
    ``bias``, ``noise_strength`` (torgb: no noise).

    ``forward(z, noise_mode="const", fused_modconv=False)``: ``noise_mode`` is
    ``"const"`` (fixed per-layer noise maps, so the same ``z`` always gives the same
    image), ``"random"`` or ``"none"``; ``fused_modconv`` picks the grouped-conv form
    of the modulated convolutions (same result; see ``ModulatedConv2d``).

    Example:
        >>> gen = StyleGANGenerator(img_resolution=16).eval()
        >>> z = torch.randn(4, 64, 1, 1)
        >>> img = gen(z)
        >>> img.shape, bool(img.abs().max() <= 1)
        (torch.Size([4, 1, 16, 16]), True)
        >>> torch.equal(gen(z), img)
        True
    """

    def __init__(
        self,
        z_dim: int = 64,
        w_dim: int = 64,
        img_resolution: int = 32,
        img_channels: int = 1,
        channel_base: int = 2048,
        channel_max: int = 128,
        mapping_layers: int = 4,
        output_tanh: bool = True,
    ) -> None:
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(
                f"img_resolution must be a power of two >= 4, got {img_resolution}."
            )
        for name, value in (("z_dim", z_dim), ("w_dim", w_dim), ("img_channels", img_channels)):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}.")
        self.config: dict[str, Any] = {
            "z_dim": int(z_dim),
            "w_dim": int(w_dim),
            "img_resolution": int(img_resolution),
            "img_channels": int(img_channels),
            "channel_base": int(channel_base),
            "channel_max": int(channel_max),
            "mapping_layers": int(mapping_layers),
            "output_tanh": bool(output_tanh),
        }
        self.z_dim = z_dim
        self.output_tanh = output_tanh
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.synthesis = SynthesisNetwork(
            w_dim, img_resolution, img_channels, channel_base, channel_max
        )

    def forward(
        self, z: torch.Tensor, noise_mode: str = "const", fused_modconv: bool = False
    ) -> torch.Tensor:
        """Generate images from ``z``; see the class docstring for the arguments."""
        if z.dim() == 4 and z.shape[2:] == (1, 1):
            z = z.flatten(1)
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(
                f"z must have shape (N, {self.z_dim}) or (N, {self.z_dim}, 1, 1), "
                f"got {tuple(z.shape)}."
            )
        w = self.mapping(z)
        img = self.synthesis(w, noise_mode=noise_mode, fused_modconv=fused_modconv)
        return torch.tanh(img) if self.output_tanh else img
