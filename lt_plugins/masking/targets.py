"""Which parameters of a model carry a mask: the candidates, and the target/exclude patterns."""

from __future__ import annotations

import re

from torch import nn

from ..adapters import adapter_for
from ..config import TicketConfig


def _matches(name: str, pattern: str) -> bool:
    if name == pattern or name.endswith("." + pattern):
        return True
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error as err:
        raise ValueError(f"Module pattern {pattern!r} is neither a module name nor a valid regex: {err}") from err


def _candidate_params(model: nn.Module, mask_bias: bool):
    """(module name, module, parameter name) for every parameter that can carry a mask."""
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            continue
        weight = module._parameters.get("weight")
        if weight is None or not weight.is_floating_point() or weight.ndim < 2:
            continue
        yield module_name, module, "weight"
        bias = module._parameters.get("bias")
        if mask_bias and bias is not None and bias.is_floating_point():
            yield module_name, module, "bias"


def find_targets(model: nn.Module, config: TicketConfig) -> list[tuple[str, nn.Module, str]]:
    """The (module name, module, parameter name) triples `wrap` would mask, in model order.

    A config that sets neither ``target_modules`` nor ``exclude_modules`` gets the defaults of
    ``model``'s family (`lt_plugins.adapters`); for a generic nn.Module that is every weight.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> [(name, p) for name, _, p in find_targets(net, TicketConfig(exclude_modules="2"))]
        [('0', 'weight')]
    """
    config = adapter_for(model, config.family).resolve(config, model)
    candidates = list(_candidate_params(model, config.mask_bias))
    if not candidates:
        raise ValueError(
            f"{type(model).__name__} has no floating weight with ndim >= 2 outside embedding tables, "
            "so there is nothing to mask. Pass the generator itself, not a wrapper or a function."
        )
    targets = []
    matched: set[str] = set()
    for module_name, module, param_name in candidates:
        if config.exclude_modules and any(_matches(module_name, p) for p in config.exclude_modules):
            continue
        if config.target_modules is not None:
            hits = [p for p in config.target_modules if _matches(module_name, p)]
            if not hits:
                continue
            matched.update(hits)
        targets.append((module_name, module, param_name))
    if config.target_modules is not None:
        missing = [p for p in config.target_modules if p not in matched]
        if missing:
            names = sorted({m for m, _, _ in candidates})
            raise ValueError(
                f"target_modules {missing} match no maskable module of {type(model).__name__}. "
                f"Modules with a maskable weight: {names[:20]}{' ...' if len(names) > 20 else ''}"
            )
    if not targets:
        raise ValueError(
            f"exclude_modules={config.exclude_modules} leaves nothing to mask in {type(model).__name__}."
        )
    return targets


def _full_name(module_name: str, param_name: str) -> str:
    return f"{module_name}.{param_name}" if module_name else param_name
