"""Generators written the way public repositories write them, for "bring your own generator" tests.

Our own code, written to reproduce the *patterns* of four well-known public implementations
(no code of theirs is copied): the official StyleGAN2-ADA networks, a popular community
StyleGAN2, the pytorch/examples DCGAN and a community DDPM UNet. What matters here is what
makes such code hard for a wrapper: weights rescaled at run time (equalized learning rate,
lr multipliers, modulated and demodulated convolutions, 5-D weights), decorated classes,
call signatures other than ``G(z)`` (``G(z, c)``, ``G([z])`` returning a tuple, z shaped
(N, nz, 1, 1), ``unet(x, t)``), an init the user applies after construction, and a noise
schedule of the repository's own. Default sizes are tiny (MNIST: 32x32 grey) so a forward of
64 samples takes well under 0.1 s on one CPU core.

Example:
    >>> import torch
    >>> G = EqualizedStyleGAN2()
    >>> tuple(G(torch.randn(2, G.z_dim), None, noise_mode="const").shape)
    (2, 1, 32, 32)
    >>> image, _ = Rosinality5DStyleGAN2()([torch.randn(2, 32)])
    >>> tuple(image.shape)
    (2, 1, 32, 32)
    >>> tuple(make_tutorial_dcgan(nz=16, ngf=8, nc=1, image_size=32)(torch.randn(2, 16, 1, 1)).shape)
    (2, 1, 32, 32)
    >>> unet = TinyUNet()
    >>> tuple(unet(torch.randn(2, 1, 32, 32), torch.tensor([3, 999])).shape)
    (2, 1, 32, 32)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from byog_persistence import persistent_class
from torch import nn

SQRT2 = math.sqrt(2)


# --------------------------------------------------------------------------------------------
# Official StyleGAN2-ADA pattern
# --------------------------------------------------------------------------------------------


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    # StyleGAN's "lrelu" activation keeps unit variance with a gain of sqrt(2).
    return F.leaky_relu(x, 0.2) * SQRT2


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row of ``x`` to unit mean square (the mapping network's input normalisation)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


@persistent_class
class FullyConnectedLayer(nn.Module):
    """Equalized-learning-rate linear layer: the weight is stored as ``randn(out, in) / lr_multiplier``
    and multiplied at run time by ``weight_gain = lr_multiplier / sqrt(in)``; the bias by ``lr_multiplier``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        x = F.linear(x, w, b)
        return _lrelu(x) if self.activation == "lrelu" else x


@persistent_class
class MappingNetwork(nn.Module):
    """z (and c) -> w, broadcast to ``num_ws`` copies: normalised z, ``num_layers`` FCs at ``lr_multiplier``
    0.01 with leaky ReLU, a running average ``w_avg`` for truncation."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 4,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        x = normalize_2nd_moment(z.to(torch.float32)) if self.z_dim > 0 else None
        if self.c_dim > 0:
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if self.training and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x[:, :cutoff] = self.w_avg.lerp(x[:, :cutoff], truncation_psi)
        return x


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     padding: int = 0, demodulate: bool = True) -> torch.Tensor:
    """Convolve each sample with the weight (out, in, k, k) scaled per input channel by its style,
    optionally demodulated to unit output variance. As the official code does in training, the
    style scales the input and the demodulation the output, around one shared convolution."""
    x = x * styles.reshape(x.shape[0], -1, 1, 1)
    x = F.conv2d(x, weight, padding=padding)
    if demodulate:
        # The squared norm of each sample's modulated filter: sum over (in, k, k) of (w * style)^2.
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
        x = x * dcoefs.reshape(x.shape[0], -1, 1, 1)
    return x + noise if noise is not None else x


@persistent_class
class SynthesisLayer(nn.Module):
    """A modulated, demodulated 3x3 convolution (upsampling first when ``up=2``), noise, bias, leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1) -> None:
        super().__init__()
        self.resolution, self.up, self.padding = resolution, up, kernel_size // 2
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode={noise_mode!r}: use 'random', 'const' or 'none'.")
        if self.up > 1:
            x = F.interpolate(x, scale_factor=self.up, mode="nearest")
        noise = None
        if noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, self.affine(w), noise=noise, padding=self.padding)
        return _lrelu(x + self.bias.reshape(1, -1, 1, 1))


@persistent_class
class ToRGBLayer(nn.Module):
    """A modulated 1x1 convolution to image channels, not demodulated: the style carries the
    ``weight_gain = 1/sqrt(in * k * k)``."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        return modulated_conv2d(x, self.weight, styles, demodulate=False) + self.bias.reshape(1, -1, 1, 1)


@persistent_class
class SynthesisBlock(nn.Module):
    """One resolution: a learned const (first block) or an upsampling conv, a conv, and a toRGB
    added to the upsampled image so far (the "skip" architecture)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int) -> None:
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str = "random") -> tuple[torch.Tensor, torch.Tensor]:
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode)
        x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        if img is not None:
            img = F.interpolate(img, scale_factor=2, mode="nearest")
        y = self.torgb(x, next(w_iter))
        return x, (img + y if img is not None else y)


@persistent_class
class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> images: blocks from 4x4 up to ``img_resolution``, channels
    ``min(channel_base // resolution, channel_max)``."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 256,
                 channel_max: int = 64) -> None:
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution={img_resolution} must be a power of two >= 4.")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            block = SynthesisBlock(in_channels, channels[res], w_dim, res, img_channels)
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += 1  # the last toRGB; the others share a w with the next block's first conv

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), noise_mode=noise_mode)
            w_idx += block.num_conv
        return img


@persistent_class
class EqualizedStyleGAN2(nn.Module):
    """The official StyleGAN2-ADA generator pattern: ``G(z, c, truncation_psi=1, noise_mode='random')``.

    ``G.mapping`` (z -> ws, equalized lr, ``lr_multiplier=0.01``) and ``G.synthesis`` (modulated
    convs on a learned const, toRGB skips, noise inputs), every weight stored at N(0, 1) (or
    ``N(0, 1) / lr_multiplier``) and rescaled at run time; all classes decorated like
    ``persistence.persistent_class``. ``c_dim=0``: ``c`` is ignored (None is fine).

    Example:
        >>> G = EqualizedStyleGAN2(z_dim=16, w_dim=16, img_resolution=8)
        >>> G.init_kwargs, tuple(G(torch.randn(3, 16), None).shape)
        ({'z_dim': 16, 'w_dim': 16, 'img_resolution': 8}, (3, 1, 8, 8))
        >>> type(G).__qualname__, 80 < float(G.mapping.fc0.weight.detach().std()) < 120, G.mapping.fc0.weight_gain
        ('persistent_class.<locals>.Persistent', True, 0.0025)
    """

    def __init__(self, z_dim: int = 32, c_dim: int = 0, w_dim: int = 32, img_resolution: int = 32, img_channels: int = 1,
                 mapping_kwargs: dict[str, Any] | None = None, **synthesis_kwargs: Any) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {}))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, noise_mode: str = "random") -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


# --------------------------------------------------------------------------------------------
# Community StyleGAN2 pattern: 5-D modulated weights, G([z]) returning (image, latent)
# --------------------------------------------------------------------------------------------


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_2nd_moment(x)


class EqualLinear(nn.Module):
    """Linear layer with the weight stored as ``randn(out, in) / lr_mul`` and ``scale = lr_mul / sqrt(in)``."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: str | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init))
        self.scale, self.lr_mul, self.activation = lr_mul / math.sqrt(in_dim), lr_mul, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return _lrelu(out) if self.activation == "fused_lrelu" else out


class ModulatedConv2d(nn.Module):
    """Modulated conv with its weight stored 5-D, ``(1, out, in, k, k)``, and ``scale = 1/sqrt(in*k*k)``;
    ``fused=True`` runs one grouped convolution with a per-sample weight, else the style scales the
    input and the demodulation the output around one shared convolution (faster on CPUs)."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False, fused: bool = False) -> None:
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.demodulate, self.upsample, self.fused = demodulate, upsample, fused
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, in_channel, height, width = x.shape
        style = self.modulation(style)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            height, width = height * 2, width * 2
        if not self.fused:
            weight = self.scale * self.weight.squeeze(0)
            out = F.conv2d(x * style.view(batch, in_channel, 1, 1), weight, padding=self.padding)
            if self.demodulate:
                w = weight.unsqueeze(0) * style.view(batch, 1, in_channel, 1, 1)
                out = out * (w.square().sum((2, 3, 4)) + 1e-8).rsqrt().view(batch, -1, 1, 1)
            return out
        weight = self.scale * self.weight * style.view(batch, 1, in_channel, 1, 1)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(batch, self.out_channel, 1, 1, 1)
        weight = weight.view(batch * self.out_channel, in_channel, self.kernel_size, self.kernel_size)
        out = F.conv2d(x.reshape(1, batch * in_channel, height, width), weight, padding=self.padding, groups=batch)
        return out.view(batch, self.out_channel, *out.shape[2:])


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = image.new_empty(image.shape[0], 1, *image.shape[2:]).normal_()
        return image + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.input.repeat(latent.shape[0], 1, 1, 1)


class StyledConv(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.bias = nn.Parameter(torch.zeros(1, out_channel, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return _lrelu(self.noise(self.conv(x, style), noise=noise) + self.bias)


class ToRGB(nn.Module):
    def __init__(self, in_channel: int, style_dim: int, img_channels: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv = ModulatedConv2d(in_channel, img_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, img_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + F.interpolate(skip, scale_factor=2, mode="nearest")
        return out


class Rosinality5DStyleGAN2(nn.Module):
    """The community StyleGAN2 pattern (as in rosinality/stylegan2-pytorch): ``image, _ = G([z])``.

    The mapping network is ``G.style`` (PixelNorm + ``n_mlp`` equal-lr linears at ``lr_mlp=0.01``),
    the synthesis a const input, styled convs whose modulated weight is a 5-D parameter
    ``(1, out, in, k, k)`` scaled by ``1/sqrt(in*k*k)`` at run time, noise buffers, toRGB skips.
    ``forward`` takes a *list* of latents (two mix styles at ``inject_index``) and returns
    ``(image, latent or None)``. Not decorated: that repository's classes are plain.

    Example:
        >>> G = Rosinality5DStyleGAN2(size=8, style_dim=16, n_mlp=2)
        >>> image, latent = G([torch.randn(2, 16)], return_latents=True)
        >>> tuple(image.shape), tuple(latent.shape), tuple(G.convs[0].conv.weight.shape)
        ((2, 1, 8, 8), (2, 4, 16), (1, 32, 64, 3, 3))
    """

    def __init__(self, size: int = 32, style_dim: int = 32, n_mlp: int = 4, img_channels: int = 1,
                 channel_max: int = 64, lr_mlp: float = 0.01) -> None:
        super().__init__()
        if size < 4 or size & (size - 1):
            raise ValueError(f"size={size} must be a power of two >= 4.")
        self.size, self.style_dim = size, style_dim
        self.style = nn.Sequential(PixelNorm(), *[
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu") for _ in range(n_mlp)])
        self.log_size = int(math.log2(size))
        self.channels = {2**i: min(channel_max, 256 // 2**i) for i in range(2, self.log_size + 1)}
        self.input = ConstantInput(self.channels[4])
        self.conv1 = StyledConv(self.channels[4], self.channels[4], 3, style_dim)
        self.to_rgb1 = ToRGB(self.channels[4], style_dim, img_channels, upsample=False)
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            res = 2 ** ((layer_idx + 5) // 2)
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, res, res))
        in_channel = self.channels[4]
        for i in range(3, self.log_size + 1):
            out_channel = self.channels[2**i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim))
            self.to_rgbs.append(ToRGB(out_channel, style_dim, img_channels))
            in_channel = out_channel
        self.n_latent = self.log_size * 2 - 2

    def mean_latent(self, n_latent: int) -> torch.Tensor:
        """The average w of ``n_latent`` random z (the truncation centre)."""
        z = torch.randn(n_latent, self.style_dim, device=self.input.input.device)
        return self.style(z).mean(0, keepdim=True)

    def forward(self, styles: Sequence[torch.Tensor], return_latents: bool = False, inject_index: int | None = None,
                truncation: float = 1, truncation_latent: torch.Tensor | None = None, input_is_latent: bool = False,
                noise: Sequence[torch.Tensor | None] | None = None, randomize_noise: bool = True):
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else [
                getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        if truncation < 1:
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        if len(styles) < 2:
            latent = styles[0].unsqueeze(1).repeat(1, self.n_latent, 1) if styles[0].ndim < 3 else styles[0]
        else:
            cut = inject_index if inject_index is not None else self.n_latent // 2
            latent = torch.cat([styles[0].unsqueeze(1).repeat(1, cut, 1),
                                styles[1].unsqueeze(1).repeat(1, self.n_latent - cut, 1)], 1)
        out = self.conv1(self.input(latent), latent[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for conv1, conv2, noise1, noise2, to_rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2], noise[2::2],
                                                        self.to_rgbs):
            out = conv1(out, latent[:, i], noise=noise1)
            out = conv2(out, latent[:, i + 1], noise=noise2)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return (skip, latent) if return_latents else (skip, None)


# --------------------------------------------------------------------------------------------
# pytorch/examples DCGAN pattern
# --------------------------------------------------------------------------------------------


class TutorialDCGAN(nn.Module):
    """The pytorch/examples DCGAN generator pattern: ``self.main``, an ``nn.Sequential`` of
    ConvTranspose2d / BatchNorm2d / ReLU ending in Tanh, fed z shaped ``(N, nz, 1, 1)`` (a flat
    ``(N, nz)`` fails inside ``conv_transpose2d``). Its init is `weights_init`, which the user applies
    after construction: use `make_tutorial_dcgan`.

    Example:
        >>> G = TutorialDCGAN(nz=8, ngf=4, nc=1, image_size=16)
        >>> tuple(G(torch.randn(2, 8, 1, 1)).shape)
        (2, 1, 16, 16)
        >>> G(torch.randn(2, 8))
        Traceback (most recent call last):
        ...
        RuntimeError: Expected 3D (unbatched) or 4D (batched) input to conv_transpose2d, but got input of size: [2, 8]
    """

    def __init__(self, nz: int = 100, ngf: int = 32, nc: int = 1, image_size: int = 32) -> None:
        super().__init__()
        if image_size < 8 or image_size & (image_size - 1):
            raise ValueError(f"image_size={image_size} must be a power of two >= 8.")
        ups = int(math.log2(image_size)) - 3  # 4x4 after the first layer, x2 per layer, the last to nc
        width = ngf * 2**ups
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(ups):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input)


def weights_init(m: nn.Module) -> None:
    """The tutorial's custom init, applied with ``model.apply(weights_init)``: conv weights N(0, 0.02),
    BatchNorm weights N(1, 0.02) and biases 0."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def make_tutorial_dcgan(nz: int = 100, ngf: int = 32, nc: int = 1, image_size: int = 32) -> TutorialDCGAN:
    """A `TutorialDCGAN` with `weights_init` applied, as the tutorial's script does.

    Example:
        >>> G = make_tutorial_dcgan(nz=8, ngf=4, image_size=16)
        >>> round(float(G.main[0].weight.detach().std()), 2)
        0.02
    """
    model = TutorialDCGAN(nz=nz, ngf=ngf, nc=nc, image_size=image_size)
    model.apply(weights_init)
    return model


# --------------------------------------------------------------------------------------------
# Community DDPM UNet pattern
# --------------------------------------------------------------------------------------------


class SinusoidalPosEmb(nn.Module):
    """Transformer-style sinusoidal embedding of integer timesteps of shape (N,) (a 0-d t fails)."""

    def __init__(self, dim: int, theta: int = 10000) -> None:
        super().__init__()
        self.dim, self.theta = dim, theta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=x.device) * -(math.log(self.theta) / (half - 1)))
        emb = x[:, None].float() * freqs[None, :]
        return torch.cat((emb.sin(), emb.cos()), dim=-1)


class Block(nn.Module):
    """3x3 conv, GroupNorm, an optional (scale, shift) from the time embedding, SiLU."""

    def __init__(self, dim: int, dim_out: int, groups: int = 8) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, dim_out)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, dim_out: int, time_emb_dim: int, groups: int = 8) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2))
        self.block1 = Block(dim, dim_out, groups=groups)
        self.block2 = Block(dim_out, dim_out, groups=groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        scale_shift = self.mlp(time_emb)[:, :, None, None].chunk(2, dim=1)
        h = self.block2(self.block1(x, scale_shift=scale_shift))
        return h + self.res_conv(x)


class Attention(nn.Module):
    """Multi-head self-attention over pixels, with 1x1 convs for q, k, v and the output."""

    def __init__(self, dim: int, heads: int = 2, dim_head: int = 16) -> None:
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        self.norm = nn.GroupNorm(1, dim)
        self.to_qkv = nn.Conv2d(dim, heads * dim_head * 3, 1, bias=False)
        self.to_out = nn.Conv2d(heads * dim_head, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w) for t in self.to_qkv(self.norm(x)).chunk(3, dim=1))
        attn = (q.transpose(-2, -1) @ k * self.scale).softmax(dim=-1)  # (b, heads, hw, hw)
        out = (attn @ v.transpose(-2, -1)).transpose(-2, -1).reshape(b, -1, h, w)
        return self.to_out(out) + x


class TinyUNet(nn.Module):
    """The community DDPM UNet pattern (as in lucidrains/denoising-diffusion-pytorch): ``unet(x, time)``.

    ``time`` is an integer tensor of shape (N,), embedded sinusoidally and through an MLP; ResNet
    blocks with GroupNorm and the time embedding's scale and shift; a down path, an attention
    middle, an up path joined by skip connections; no diffusers config. ``zero_out=True`` zeroes
    the output conv at construction, as several DDPM codebases do. The noise schedule is the
    repository's own: `cosine_beta_schedule` / `linear_beta_schedule`, and its sampler `p_sample_loop`.

    Example:
        >>> unet = TinyUNet(dim=8, dim_mults=(1, 2))
        >>> tuple(unet(torch.randn(3, 1, 16, 16), torch.randint(0, 1000, (3,))).shape)
        (3, 1, 16, 16)
        >>> unet(torch.randn(1, 1, 16, 16), torch.tensor(5))  # t must have shape (N,)
        Traceback (most recent call last):
        ...
        IndexError: too many indices for tensor of dimension 0
    """

    def __init__(self, dim: int = 8, dim_mults: Sequence[int] = (1, 2, 2), channels: int = 1, groups: int = 4,
                 zero_out: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.init_conv = nn.Conv2d(channels, dim, 7, padding=3)
        dims = [dim, *(dim * m for m in dim_mults)]
        time_dim = dim * 4
        self.time_mlp = nn.Sequential(SinusoidalPosEmb(dim), nn.Linear(dim, time_dim), nn.GELU(),
                                      nn.Linear(time_dim, time_dim))
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        pairs = list(zip(dims[:-1], dims[1:]))
        for i, (dim_in, dim_out) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.downs.append(nn.ModuleList([
                ResnetBlock(dim_in, dim_in, time_dim, groups), ResnetBlock(dim_in, dim_in, time_dim, groups),
                nn.Conv2d(dim_in, dim_out, 4, 2, 1) if not last else nn.Conv2d(dim_in, dim_out, 3, padding=1)]))
        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, time_dim, groups)
        self.mid_attn = Attention(mid)
        self.mid_block2 = ResnetBlock(mid, mid, time_dim, groups)
        for i, (dim_in, dim_out) in enumerate(reversed(pairs)):
            last = i == len(pairs) - 1
            self.ups.append(nn.ModuleList([
                ResnetBlock(dim_out + dim_in, dim_out, time_dim, groups), ResnetBlock(dim_out + dim_in, dim_out, time_dim, groups),
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(dim_out, dim_in, 3, padding=1))
                if not last else nn.Conv2d(dim_out, dim_in, 3, padding=1)]))
        self.final_res_block = ResnetBlock(dim * 2, dim, time_dim, groups)
        self.final_conv = nn.Conv2d(dim, channels, 1)
        if zero_out:
            nn.init.zeros_(self.final_conv.weight)
            nn.init.zeros_(self.final_conv.bias)

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        x = self.init_conv(x)
        r = x.clone()
        t = self.time_mlp(time)
        h = []
        for block1, block2, downsample in self.downs:
            x = block1(x, t)
            h.append(x)
            x = block2(x, t)
            h.append(x)
            x = downsample(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, t)), t)
        for block1, block2, upsample in self.ups:
            x = block1(torch.cat((x, h.pop()), dim=1), t)
            x = block2(torch.cat((x, h.pop()), dim=1), t)
            x = upsample(x)
        x = self.final_res_block(torch.cat((x, r), dim=1), t)
        return self.final_conv(x)


def linear_beta_schedule(timesteps: int) -> torch.Tensor:
    """The DDPM paper's linear betas, rescaled to ``timesteps`` steps (float64).

    Example:
        >>> betas = linear_beta_schedule(1000)
        >>> betas.shape, round(float(betas[0]), 6), round(float(betas[-1]), 6)
        (torch.Size([1000]), 0.0001, 0.02)
    """
    scale = 1000 / timesteps
    return torch.linspace(scale * 0.0001, scale * 0.02, timesteps, dtype=torch.float64)


def cosine_beta_schedule(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Betas of the cosine schedule (Nichol & Dhariwal 2021), clipped to 0.999 (float64).

    Example:
        >>> betas = cosine_beta_schedule(1000)
        >>> betas.shape, bool((betas > 0).all() and (betas <= 0.999).all())
        (torch.Size([1000]), True)
    """
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    alphas_cumprod = torch.cos((steps + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    return (1 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(0, 0.999)


@torch.inference_mode()
def p_sample_loop(unet: nn.Module, betas: torch.Tensor, shape: Sequence[int], generator: torch.Generator | None = None,
                  steps: int | None = None) -> torch.Tensor:
    """Ancestral DDPM sampling under ``torch.inference_mode`` (as community samplers run), images clamped to
    [-1, 1]. ``steps`` < len(betas) runs only the last ``steps`` timesteps (a quick smoke sample).

    Example:
        >>> images = p_sample_loop(TinyUNet(dim=8, dim_mults=(1, 2)), linear_beta_schedule(10), (2, 1, 8, 8))
        >>> tuple(images.shape), torch.is_inference(images)
        ((2, 1, 8, 8), True)
    """
    device = next(unet.parameters()).device
    betas = betas.to(torch.float64)
    alphas = 1 - betas
    alphas_cumprod = torch.cumprod(alphas, 0)
    prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
    posterior_var = betas * (1 - prev) / (1 - alphas_cumprod)
    x = torch.randn(*shape, generator=generator).to(device)
    total = len(betas)
    for i in reversed(range(total - (steps or total), total)):
        t = torch.full((shape[0],), i, device=device, dtype=torch.long)
        eps = unet(x, t).double()
        mean = (x.double() - betas[i] / (1 - alphas_cumprod[i]).sqrt() * eps) / alphas[i].sqrt()
        noise = torch.randn(*shape, generator=generator).to(device) if i > 0 else torch.zeros(shape, device=device)
        x = (mean + posterior_var[i].sqrt() * noise.double()).float()
    return x.clamp(-1, 1)


# --------------------------------------------------------------------------------------------
# How each generator above is called: one table for tests and benchmarks/byog.py
# --------------------------------------------------------------------------------------------


@dataclass
class Pattern:
    """A fixture generator with what a search needs to call it: ``generate(G, z)`` on latents of
    shape ``(N, *latent_shape)``, returning images (UNets: see `TinyUNet`). `GENERATORS` holds the
    three generator patterns at their default (MNIST 32x32) sizes.

    Example:
        >>> [tuple(p.generate(p.build(), torch.randn(2, *p.latent_shape)).shape) for p in GENERATORS]
        [(2, 1, 32, 32), (2, 1, 32, 32), (2, 1, 32, 32)]
    """

    name: str
    build: Callable[[], nn.Module]
    latent_shape: tuple[int, ...]
    generate: Callable[[nn.Module, torch.Tensor], torch.Tensor]


GENERATORS = [
    Pattern("stylegan2-ada", EqualizedStyleGAN2, (32,), lambda G, z: G(z, None, noise_mode="const")),
    Pattern("stylegan2-5d", Rosinality5DStyleGAN2, (32,), lambda G, z: G([z], randomize_noise=False)[0]),
    Pattern("dcgan-tutorial", make_tutorial_dcgan, (100, 1, 1), lambda G, z: G(z)),
]
