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

NOISE_MODES = ("random", "const", "none")
_LRELU_SLOPE = 0.2
# StyleGAN2's activation gain: leaky ReLU(0.2) halves the second moment of a unit
# Gaussian; sqrt(2) restores it, so the next demodulated conv sees unit-scale inputs.
_LRELU_GAIN = math.sqrt(2.0)


def _check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}.")


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row of ``x`` (N, C) to unit mean square.

    Example:
        >>> x = pixel_norm(torch.tensor([[3.0, 4.0]]))
        >>> round(float(x.pow(2).mean()), 4)
        1.0
    """
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


class FullyConnected(nn.Module):
    """A fully-connected layer holding its own ``weight`` (out, in) and ``bias``.

    Args:
        in_features: input width.
        out_features: output width.
        activation: ``"lrelu"`` (leaky ReLU, slope 0.2) or ``"linear"``.
        bias_init: constant the bias starts at (the style projections use 1).

    The weight is Kaiming-normal for the chosen activation, so no runtime gain is
    applied.

    Example:
        >>> fc = FullyConnected(8, 4, activation="lrelu")
        >>> fc(torch.randn(3, 8)).shape
        torch.Size([3, 4])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "linear",
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"activation must be 'linear' or 'lrelu', got {activation!r}.")
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        if activation == "lrelu":
            nn.init.kaiming_normal_(self.weight, a=_LRELU_SLOPE, nonlinearity="leaky_relu")
        else:
            nn.init.kaiming_normal_(self.weight, nonlinearity="linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight, self.bias)
        if self.activation == "lrelu":
            x = F.leaky_relu(x, _LRELU_SLOPE)
        return x

    def extra_repr(self) -> str:
        out_f, in_f = self.weight.shape
        return f"in_features={in_f}, out_features={out_f}, activation={self.activation!r}"


class MappingNetwork(nn.Module):
    """Map a latent ``z`` to an intermediate latent ``w``: pixel-norm, then an MLP.

    Layers are ``fc0 ... fc{n_layers-1}``, each ``FullyConnected`` with leaky ReLU.

    Example:
        >>> mapping = MappingNetwork(z_dim=16, w_dim=32, n_layers=2)
        >>> mapping(torch.randn(5, 16)).shape
        torch.Size([5, 32])
    """

    def __init__(self, z_dim: int, w_dim: int, n_layers: int = 4) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}.")
        self.n_layers = n_layers
        for i in range(n_layers):
            fan_in = z_dim if i == 0 else w_dim
            setattr(self, f"fc{i}", FullyConnected(fan_in, w_dim, activation="lrelu"))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(z)
        for i in range(self.n_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution.

    Holds ``weight`` (out, in, k, k) and ``affine``, a ``FullyConnected`` projecting
    ``w`` to one scale per input channel (bias initialised to 1, so styles start near
    1). Each sample's weight is the shared weight times its styles; with
    ``demodulate=True`` every output filter of it is then scaled to unit norm (eps
    1e-8), which makes the output invariant to any positive rescaling of ``weight``.

    ``forward(x, w, fused_modconv=False)``: with ``fused_modconv=True`` the per-sample
    weights are built explicitly and applied as one grouped ``F.conv2d`` over the
    batch (StyleGAN2's fused form); the default computes the same thing by scaling
    activations around one ordinary convolution, which is about 3x faster on CPU
    at the default size (StyleGAN2-ADA trains with this form too). Both read
    ``self.weight`` at every call.

    Args:
        in_channels, out_channels, kernel_size: as for ``nn.Conv2d`` (odd kernel,
            "same" padding).
        w_dim: width of ``w``.
        demodulate: normalise each sample's filters (off for ``ToRGB``).
        up: upsample the input 2x (bilinear) before the convolution.

    Example:
        >>> conv = ModulatedConv2d(4, 8, 3, w_dim=16, up=True)
        >>> conv(torch.randn(2, 4, 8, 8), torch.randn(2, 16)).shape
        torch.Size([2, 8, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        w_dim: int,
        demodulate: bool = True,
        up: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}.")
        self.demodulate = demodulate
        self.up = up
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_normal_(self.weight, nonlinearity="linear")
        self.affine = FullyConnected(w_dim, in_channels, activation="linear", bias_init=1.0)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = False
    ) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        styles = self.affine(w)  # (N, in)
        # Read self.weight here, once per call: a parametrization (the package's mask)
        # is applied only through this attribute access, and each access recomputes it.
        weight = self.weight
        if fused_modconv:
            return self._fused(x, weight, styles)
        # Same result, cheaper: scale the input instead of the weight, convolve with the
        # shared weight, then scale the output by the demodulation coefficients.
        y = F.conv2d(x * styles[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:
            dcoefs = torch.rsqrt(styles.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t() + 1e-8)
            y = y * dcoefs[:, :, None, None]
        return y

    def _fused(self, x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        n, c_in, h, wd = x.shape
        weight = weight[None] * styles[:, None, :, None, None]  # (N, out, in, k, k)
        if self.demodulate:
            dcoefs = torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4)) + 1e-8)  # (N, out)
            weight = weight * dcoefs[:, :, None, None, None]
        c_out, k = weight.shape[1], weight.shape[-1]
        y = F.conv2d(
            x.reshape(1, n * c_in, h, wd),
            weight.reshape(n * c_out, c_in, k, k),
            padding=self.padding,
            groups=n,
        )
        return y.reshape(n, c_out, h, wd)

    def extra_repr(self) -> str:
        c_out, c_in, k, _ = self.weight.shape
        return (
            f"{c_in}, {c_out}, kernel_size={k}, demodulate={self.demodulate}, up={self.up}"
        )


class SynthesisLayer(ModulatedConv2d):
    """A demodulated ``ModulatedConv2d`` followed by noise, bias and leaky ReLU.

    Noise is one ``(H, W)`` map per layer, shared by all channels, scaled by the
    learned scalar ``noise_strength`` (initialised to 0, as in StyleGAN2: until it is
    trained, noise has no effect). ``noise_mode``: ``"random"`` draws fresh noise per
    call; ``"const"`` uses the buffer ``noise_const``, drawn at construction from
    ``noise_seed`` with its own CPU generator (so it does not depend on, or disturb,
    the global RNG); ``"none"`` adds nothing.

    Example:
        >>> layer = SynthesisLayer(4, 8, w_dim=16, resolution=8, up=True)
        >>> layer(torch.randn(2, 4, 4, 4), torch.randn(2, 16)).shape
        torch.Size([2, 8, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: bool = False,
        kernel_size: int = 3,
        noise_seed: int = 0,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, w_dim, demodulate=True, up=up)
        self.resolution = resolution
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        generator = torch.Generator().manual_seed(noise_seed)
        # Not persistent: it is a pure function of the constructor arguments, so a
        # rebuilt model has it already and checkpoints / tickets need not carry it.
        self.register_buffer(
            "noise_const",
            torch.randn(resolution, resolution, generator=generator),
            persistent=False,
        )

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "const",
        fused_modconv: bool = False,
    ) -> torch.Tensor:
        _check_noise_mode(noise_mode)
        x = super().forward(x, w, fused_modconv=fused_modconv)
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength
        x = x + self.bias[None, :, None, None]
        return F.leaky_relu(x, _LRELU_SLOPE) * _LRELU_GAIN


class ToRGB(ModulatedConv2d):
    """A modulated 1x1 convolution to image channels, without demodulation, plus bias.

    Example:
        >>> torgb = ToRGB(8, 3, w_dim=16)
        >>> torgb(torch.randn(2, 8, 4, 4), torch.randn(2, 16)).shape
        torch.Size([2, 3, 4, 4])
    """

    def __init__(self, in_channels: int, img_channels: int, w_dim: int) -> None:
        super().__init__(in_channels, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = False
    ) -> torch.Tensor:
        return super().forward(x, w, fused_modconv=fused_modconv) + self.bias[None, :, None, None]


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
