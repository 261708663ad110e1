"""Deterministic weight and score initialisation from a seed, and weight fingerprints.

Every tensor is drawn on the CPU in float32 from its own generator keyed by
(seed, parameter name, purpose), then moved to the parameter's device and dtype. So a
weight does not depend on construction order, device, process rank or the model's own
initialiser -- only on the seed and its name.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn

# Gain of ReLU-like layers, as in edge-popup's signed Kaiming constant.
DEFAULT_GAIN = math.sqrt(2.0)
SCORE_UNIFORM_BOUND = 0.1
# How far above 1/sqrt(fan_in) a constructor's weight must be to count as rescaled at run time
# (see `constructor_scale`).
RUNTIME_GAIN_EVIDENCE = 3.0


def keyed_generator(seed: int, name: str, purpose: str) -> torch.Generator:
    """A CPU generator whose stream depends only on (seed, name, purpose).

    Example:
        >>> a = torch.rand(3, generator=keyed_generator(0, "fc.weight", "weight"))
        >>> b = torch.rand(3, generator=keyed_generator(0, "fc.weight", "weight"))
        >>> bool((a == b).all())
        True
    """
    digest = hashlib.sha256(f"{seed}\x00{name}\x00{purpose}".encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def fan_in(module: nn.Module, weight: torch.Tensor) -> float:
    """Inputs that reach one output unit through ``weight``, for every weight layout.

    - linear ``(out, in)`` and convolutions ``(out, in / groups, *k)``: ``in / groups * prod(k)``;
    - transposed convolutions ``(in, out / groups, *k)``: each output pixel sees
      ``in / groups * prod(k) / prod(stride)`` inputs, not what ``weight.shape[1:]`` says;
    - a weight of a module that is not a torch convolution, stored with a leading broadcast
      dimension of 1 (a modulated convolution's ``(1, out, in, k, k)``): that dimension is not
      an output, so ``in * prod(k)``.

    Example:
        >>> fan_in(nn.ConvTranspose2d(64, 32, 4, stride=2), nn.ConvTranspose2d(64, 32, 4, stride=2).weight)
        256.0
        >>> fan_in(nn.Module(), torch.empty(1, 8, 4, 3, 3))
        36
    """
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return weight.shape[0] / module.groups * math.prod(weight.shape[2:]) / math.prod(module.stride)
    if not isinstance(module, nn.modules.conv._ConvNd) and weight.ndim >= 4 and weight.shape[0] == 1:
        return math.prod(weight.shape[2:])
    return math.prod(weight.shape[1:])


def constructor_scale(weight: torch.Tensor, fan: float) -> float | None:
    """The standard deviation a seeded draw of ``weight`` should follow, when it is not the fan-in rule's.

    Public generator code often stores a weight at one scale and rescales it at run time:
    StyleGAN2's equalized learning rate stores N(0, 1) weights and multiplies them by
    ``1/sqrt(fan_in)`` in ``forward``; a mapping network with ``lr_multiplier=0.01`` stores
    N(0, 100²) and multiplies by ``0.01/sqrt(fan_in)``. No usual initialiser (PyTorch's default,
    Kaiming, Xavier, DCGAN's N(0, 0.02²)) puts a weight more than about 2x above ``1/sqrt(fan_in)``
    (counted as they count it),
    while such layers sit at ``sqrt(fan_in)`` times it or more. So a constructor's weight whose
    standard deviation exceeds `RUNTIME_GAIN_EVIDENCE` times ``1/sqrt(fan_in)`` is taken to be
    rescaled at run time, and its seeded draw takes the constructor's scale in place of
    gain/sqrt(fan_in); the run-time gain then brings it where the model's author meant it to be.
    Returns that scale (4 significant digits, so that it reads well in a ticket,
    which records it), or None for the fan-in rule.

    Example:
        >>> equalized = torch.randn(64, 512, generator=torch.Generator().manual_seed(0))  # times 1/sqrt(512) at run time
        >>> 0.99 < constructor_scale(equalized, 512) < 1.01
        True
        >>> constructor_scale(nn.Linear(512, 64).weight, 512) is None
        True
    """
    if weight.numel() < 2 or not weight.is_floating_point():
        return None
    std = float(weight.detach().float().std())
    # torch's own initialisers count a transposed convolution's fan-in as out * prod(k): its
    # default init is not a run-time gain either.
    torch_fan = nn.init._calculate_fan_in_and_fan_out(weight)[0] if weight.ndim >= 2 else fan
    if not math.isfinite(std) or std * math.sqrt(min(fan, torch_fan)) <= RUNTIME_GAIN_EVIDENCE:
        return None
    return float(f"{std:.4g}")


def draw_weight(
    scheme: str,
    shape: torch.Size,
    fan: float,
    seed: int,
    name: str,
    density: float,
    scale_fan: bool,
    scale: float | None = None,
) -> torch.Tensor:
    """Draw one weight tensor (CPU, float32) for ``scheme``.

    The standard deviation is gain/sqrt(fan_in), or ``scale`` for a weight its layer rescales
    at run time (`constructor_scale`: the constructor's own scale, whose run-time gain the
    layer's author set). With ``scale_fan`` it is further divided by
    sqrt(density): the kept weights carry the scale of the kept fan-in, so activations do not
    shrink by sqrt(density) at every layer.

    Example:
        >>> w = draw_weight("signed_constant", torch.Size([4, 8]), 8, 0, "fc.weight", 0.5, True)
        >>> sorted(set(w.abs().flatten().tolist())) == [w.abs().max().item()]
        True
    """
    # A run-time-rescaled layer's author has set its gains already (StyleGAN's activations carry
    # their own sqrt(2)): its draw takes the constructor's scale as it is, without DEFAULT_GAIN.
    std = (scale if scale is not None else DEFAULT_GAIN / math.sqrt(fan)) / math.sqrt(density if scale_fan else 1.0)
    gen = keyed_generator(seed, name, "weight")
    if scheme == "signed_constant":
        signs = torch.randint(0, 2, shape, generator=gen, dtype=torch.float32) * 2 - 1
        return signs * std
    if scheme == "kaiming_normal":
        return torch.randn(shape, generator=gen) * std
    if scheme == "kaiming_uniform":
        bound = math.sqrt(3.0) * std
        return (torch.rand(shape, generator=gen) * 2 - 1) * bound
    raise ValueError(f"weight_init={scheme!r} draws no weights; choose signed_constant, kaiming_* or keep.")


def draw_scores(scheme: str, weight: torch.Tensor, fan: float, seed: int, name: str) -> torch.Tensor:
    """The initial scores of ``weight`` (CPU, float32): drawn from (seed, name), or its magnitudes.

    Example:
        >>> draw_scores("magnitude", torch.tensor([[0.5, -2.0]]), 2, 0, "fc.weight")
        tensor([[0.5000, 2.0000]])
    """
    if scheme == "magnitude":
        return weight.detach().abs().float().cpu()
    gen = keyed_generator(seed, name, "score")
    bound = SCORE_UNIFORM_BOUND if scheme == "uniform" else math.sqrt(6.0 / fan)
    return (torch.rand(weight.shape, generator=gen) * 2 - 1) * bound


def fingerprint(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's float32 little-endian bytes: equal iff the values are bit-identical.

    Example:
        >>> fingerprint(torch.ones(2)) == fingerprint(torch.ones(2, dtype=torch.float64))
        True
    """
    data = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha256(data.astype("<f4", copy=False).tobytes()).hexdigest()
