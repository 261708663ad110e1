"""The layers of the StyleGAN2-style generator (`lt_plugins.models.stylegan`): the mapping network and
the modulated convolutions, each holding its own ``weight`` and calling ``F.linear`` / ``F.conv2d`` itself."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

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
