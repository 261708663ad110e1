"""`feature_key`: the name of an extractor's exact weights, so cached real-data moments are never reused
with another network."""

from __future__ import annotations

import hashlib
import itertools

import torch
from torch import nn


def feature_key(extractor: nn.Module) -> str:
    """A sha256 hex digest naming an extractor exactly: its class, its structure and
    settings (``repr``), its train/eval modes and every parameter and buffer (names,
    dtypes, shapes, bytes). Any weight change gives a new key; used to key cached
    real-data moments and metric statistics.

    Example:
        >>> net = nn.Linear(4, 2)
        >>> key = feature_key(net)
        >>> key == feature_key(net), len(key)
        (True, 64)
        >>> with torch.no_grad():
        ...     _ = net.bias.add_(1e-3)
        >>> key == feature_key(net)
        False
    """
    if not isinstance(extractor, nn.Module):
        raise TypeError(
            f"feature_key needs an nn.Module to see its weights, not a {type(extractor).__name__}; "
            "wrap the function in an nn.Module (or turn off moment caching)."
        )
    cls = type(extractor)
    digest = hashlib.sha256(f"{cls.__module__}.{cls.__qualname__}\n{extractor!r}\n".encode())
    digest.update(bytes(module.training for module in extractor.modules()))
    for name, tensor in itertools.chain(extractor.named_parameters(), extractor.named_buffers()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
