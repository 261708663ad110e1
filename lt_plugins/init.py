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
    """Inputs that reach one output unit through ``weight``.

    For transposed convolutions the weight is (in, out/groups, *k) and each output pixel
    sees in_channels * prod(k) / prod(stride) inputs, not what ``weight.shape[1:]`` says.
    """
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return weight.shape[0] * math.prod(weight.shape[2:]) / math.prod(module.stride)
    return math.prod(weight.shape[1:])


def draw_weight(
    scheme: str, shape: torch.Size, fan: float, seed: int, name: str, density: float, scale_fan: bool
) -> torch.Tensor:
    """Draw one weight tensor (CPU, float32) for ``scheme``.

    With ``scale_fan`` the standard deviation is gain/sqrt(density * fan_in): the kept
    weights carry the scale of the kept fan-in, so activations do not shrink by sqrt(density)
    at every layer.

    Example:
        >>> w = draw_weight("signed_constant", torch.Size([4, 8]), 8, 0, "fc.weight", 0.5, True)
        >>> sorted(set(w.abs().flatten().tolist())) == [w.abs().max().item()]
        True
    """
    std = DEFAULT_GAIN / math.sqrt((density if scale_fan else 1.0) * fan)
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


def draw_scores(scheme: str, shape: torch.Size, fan: float, seed: int, name: str) -> torch.Tensor:
    """Draw the initial scores of one weight (CPU, float32)."""
    gen = keyed_generator(seed, name, "score")
    bound = SCORE_UNIFORM_BOUND if scheme == "uniform" else math.sqrt(6.0 / fan)
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


def fingerprint(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's float32 little-endian bytes: equal iff the values are bit-identical.

    Example:
        >>> fingerprint(torch.ones(2)) == fingerprint(torch.ones(2, dtype=torch.float64))
        True
    """
    data = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha256(data.astype("<f4", copy=False).tobytes()).hexdigest()
