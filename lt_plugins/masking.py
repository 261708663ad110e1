"""Top-k straight-through score masks, installed as parametrizations.

`wrap` turns every targeted ``module.weight`` into ``weight * mask(scores)`` through
`torch.nn.utils.parametrize`, so any module that reads ``self.weight`` at forward time is
masked -- nn.Conv2d as much as a StyleGAN modulated conv that calls F.conv2d itself.
The mask keeps the top-k |scores| of each tensor (layer scope) or of all targeted tensors
together (global scope); k is found by selection (``kthvalue``), never by a full sort, and
a mask is recomputed only when its scores change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from .config import TicketConfig
from .init import draw_scores, draw_weight, fan_in

_STATE_ATTR = "_lt_state"


class TopKSelector:
    """Exact top-k boolean masks over a 1-D tensor, using the last threshold as a hint.

    Scores move little between optimiser steps, so the k-th largest value usually lies in a
    narrow band around the previous one: counting what lies above the band and selecting
    only inside it gives the same threshold as a full ``kthvalue`` for a fraction of the
    cost. When the band misses, a full selection runs and the band widens.

    Ties at the threshold are broken by position, so exactly k entries are kept.

    Example:
        >>> sel = TopKSelector()
        >>> sel.mask(torch.tensor([0.3, 0.1, 0.3, 0.2]), 2).tolist()
        [True, False, True, False]
    """

    # Shrink the band when it holds more than this fraction of all values.
    MAX_BAND_FRACTION = 0.02

    def __init__(self) -> None:
        self.threshold: torch.Tensor | None = None
        self.band = 0.0

    def mask(self, values: torch.Tensor, k: int) -> torch.Tensor:
        n = values.numel()
        if k >= n:
            return torch.ones_like(values, dtype=torch.bool)
        threshold = self._threshold(values, k)
        keep = values >= threshold
        # count_nonzero, not .sum(): on a bool tensor it is ~6x faster here, and this is per step.
        surplus = int(torch.count_nonzero(keep)) - k
        if surplus:
            ties = values == threshold
            keep &= ~ties | (ties.cumsum(0) <= int(torch.count_nonzero(ties)) - surplus)
        return keep

    def _threshold(self, values: torch.Tensor, k: int) -> torch.Tensor:
        n = values.numel()
        if self.threshold is not None and self.threshold.device == values.device:
            low, high = self.threshold - self.band, self.threshold + self.band
            n_above = int(torch.count_nonzero(values > high))
            if n_above < k:
                inside = values[(values >= low) & (values <= high)]
                need = k - n_above
                if need <= inside.numel():
                    self.threshold = inside.kthvalue(inside.numel() - need + 1).values
                    if inside.numel() > self.MAX_BAND_FRACTION * n:
                        self.band /= 2
                    return self.threshold
            self.band *= 4
        self.threshold = values.kthvalue(n - k + 1).values
        if self.band == 0.0:
            self.band = 1e-3 * abs(float(self.threshold)) + 1e-12
        return self.threshold


class _MaskedWeight(torch.autograd.Function):
    """weight * mask forward; straight-through backward to the scores.

    The mask is treated as the identity of |scores|, so d loss / d score =
    (d loss / d masked weight) * weight * sign(score).
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight, scores, mask)
        return weight * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weight, scores, mask = ctx.saved_tensors
        grad_weight = grad * mask if ctx.needs_input_grad[0] else None
        grad_scores = (grad * weight).to(scores.dtype).mul_(scores.sign())
        return grad_weight, grad_scores, None


def _version_key(scores: torch.Tensor) -> tuple:
    return scores._version, scores.data_ptr(), scores.device


class _GlobalTopK:
    """One selection over the scores of every ScoreMask of a model (global scope)."""

    def __init__(self, density: float) -> None:
        self.density = density
        self.members: list[ScoreMask] = []
        self.selector = TopKSelector()
        self._key: tuple | None = None
        self._masks: list[torch.Tensor] = []

    def mask_of(self, member: ScoreMask) -> torch.Tensor:
        key = tuple(_version_key(m.scores) for m in self.members)
        if key != self._key:
            flat = torch.cat([m.scores.detach().abs().flatten() for m in self.members])
            k = max(1, round(self.density * flat.numel()))
            keep = self.selector.mask(flat, k)
            sizes = [m.scores.numel() for m in self.members]
            self._masks = [part.view_as(m.scores) for part, m in zip(keep.split(sizes), self.members)]
            self._key = key
        return self._masks[self.members.index(member)]


class ScoreMask(nn.Module):
    """Parametrization ``weight -> weight * topk_mask(|scores|)`` with a straight-through gradient.

    Holds the only trainable tensor of a wrapped layer, ``scores``. Built by `wrap`; you
    rarely create one yourself.

    Example:
        >>> layer = nn.Linear(8, 4)
        >>> mask = ScoreMask(torch.randn(4, 8), density=0.25, param_name="weight")
        >>> _ = parametrize.register_parametrization(layer, "weight", mask)
        >>> int((layer.weight != 0).sum())
        8
    """

    def __init__(
        self, scores: torch.Tensor, density: float, param_name: str, global_topk: _GlobalTopK | None = None
    ) -> None:
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.density = density
        self.param_name = param_name
        self._global = global_topk
        self._selector = TopKSelector()
        self._key: tuple | None = None
        self._mask: torch.Tensor | None = None

    @property
    def kept(self) -> int:
        """Number of entries this mask keeps in layer scope."""
        return max(1, round(self.density * self.scores.numel()))

    def mask(self) -> torch.Tensor:
        """The current boolean mask (recomputed only when the scores changed)."""
        if self._global is not None:
            return self._global.mask_of(self)
        key = _version_key(self.scores)
        if key != self._key:
            flat = self.scores.detach().abs().flatten()
            self._mask = self._selector.mask(flat, self.kept).view_as(self.scores)
            self._key = key
        return self._mask

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _MaskedWeight.apply(weight, self.scores, self.mask().to(weight.dtype))

    def extra_repr(self) -> str:
        scope = "global" if self._global is not None else "layer"
        return f"{self.param_name}, density={self.density}, scope={scope}"


@dataclass
class Density:
    """Fraction of targeted weights kept, overall and per masked tensor.

    Example:
        >>> d = Density(kept=10, total=100, per_layer={"fc.weight": 0.1})
        >>> float(d)
        0.1
    """

    kept: int
    total: int
    per_layer: dict[str, float] = field(default_factory=dict)

    @property
    def overall(self) -> float:
        return self.kept / self.total

    def __float__(self) -> float:
        return self.overall


@dataclass
class _WrapState:
    config: TicketConfig
    requires_grad: dict[str, bool]


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

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> [(name, p) for name, _, p in find_targets(net, TicketConfig(exclude_modules="2"))]
        [('0', 'weight')]
    """
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


def score_masks(model: nn.Module) -> dict[str, ScoreMask]:
    """Parameter name -> its ScoreMask, for every masked parameter of ``model``."""
    found = {}
    for module_name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for param_name, plist in module.parametrizations.items():
            for p in plist:
                if isinstance(p, ScoreMask):
                    found[_full_name(module_name, param_name)] = p
    return found


def is_wrapped(model: nn.Module) -> bool:
    """Whether ``model`` carries score masks."""
    return bool(score_masks(model))


def wrap(model: nn.Module, config: TicketConfig | None = None) -> nn.Module:
    """Freeze ``model`` at weights drawn from ``config.seed`` and put a score mask on its targets.

    Every targeted weight is re-drawn on the CPU in float32 from a generator keyed by
    (seed, parameter name) -- unless ``weight_init="keep"`` -- then moved to its device.
    Every parameter of the model is frozen; the only trainable tensors afterwards are the
    scores (`score_parameters`). The model is changed in place and returned. On any error
    the model is left untouched.

    Example:
        >>> import lt_plugins as lt
        >>> gen = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 8))
        >>> gen = lt.wrap(gen, lt.TicketConfig(density=0.1, seed=0))
        >>> round(lt.density(gen).overall, 2)
        0.1
    """
    config = config if config is not None else TicketConfig()
    if not isinstance(config, TicketConfig):
        raise TypeError(f"config must be a lt_plugins.TicketConfig, got {type(config).__name__}.")
    if not isinstance(model, nn.Module):
        raise TypeError(f"wrap() takes an nn.Module, got {type(model).__name__}.")
    if is_wrapped(model):
        raise ValueError(
            f"{type(model).__name__} is already wrapped with score masks. Call lt.unwrap(model) or "
            "lt.merge(model) first, or wrap a fresh instance."
        )
    targets = find_targets(model, config)

    # Draw everything before touching the model, so a failure leaves it as it was.
    plan = []
    for module_name, module, param_name in targets:
        name = _full_name(module_name, param_name)
        param = module._parameters[param_name]
        fan = fan_in(module, module._parameters["weight"])
        new_value = None
        if config.weight_init != "keep":
            new_value = draw_weight(
                config.weight_init, param.shape, fan, config.seed, name, config.density, config.scale_fan
            )
        scores = draw_scores(config.score_init, param.shape, fan, config.seed, name)
        plan.append((module, param_name, name, param, new_value, scores.to(param.device)))

    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    global_topk = _GlobalTopK(config.density) if config.scope == "global" else None
    with torch.no_grad():
        for module, param_name, name, param, new_value, scores in plan:
            if new_value is not None:
                param.copy_(new_value)
    for param in model.parameters():
        param.requires_grad_(False)
    for module, param_name, name, param, new_value, scores in plan:
        mask = ScoreMask(scores, config.density, name, global_topk)
        if global_topk is not None:
            global_topk.members.append(mask)
        parametrize.register_parametrization(module, param_name, mask, unsafe=True)
    setattr(model, _STATE_ATTR, _WrapState(config, requires_grad))
    return model


def wrap_config(model: nn.Module) -> TicketConfig:
    """The TicketConfig ``model`` was wrapped with."""
    state = getattr(model, _STATE_ATTR, None)
    if state is None:
        raise ValueError(f"{type(model).__name__} is not wrapped; call lt.wrap(model, config) first.")
    return state.config


def _remove_masks(model: nn.Module, keep_masked_values: bool) -> nn.Module:
    state = getattr(model, _STATE_ATTR, None)
    if state is None:
        raise ValueError(f"{type(model).__name__} is not wrapped; there are no masks to remove.")
    for module in list(model.modules()):
        if not parametrize.is_parametrized(module):
            continue
        for param_name in list(module.parametrizations.keys()):
            if any(isinstance(p, ScoreMask) for p in module.parametrizations[param_name]):
                parametrize.remove_parametrizations(module, param_name, leave_parametrized=keep_masked_values)
    for name, param in model.named_parameters():
        param.requires_grad_(state.requires_grad.get(name, param.requires_grad))
    delattr(model, _STATE_ATTR)
    return model


def merge(model: nn.Module) -> nn.Module:
    """Bake the masks into plain weights and remove the parametrizations (in place).

    The result is an ordinary module of the original class: its state_dict loads into a
    fresh, never-wrapped instance.

    Example:
        >>> import lt_plugins as lt
        >>> gen = lt.wrap(nn.Linear(8, 8), lt.TicketConfig(density=0.5))
        >>> x = torch.randn(2, 8)
        >>> y = gen(x)
        >>> torch.equal(lt.merge(gen)(x), y)
        True
    """
    return _remove_masks(model, keep_masked_values=True)


def unwrap(model: nn.Module) -> nn.Module:
    """Remove the masks and keep the dense (seeded) weights; trainability is restored (in place).

    Example:
        >>> import lt_plugins as lt
        >>> gen = lt.unwrap(lt.wrap(nn.Linear(8, 8)))
        >>> gen.weight.requires_grad
        True
    """
    return _remove_masks(model, keep_masked_values=False)


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameter name -> boolean mask of the kept weights.

    Example:
        >>> import lt_plugins as lt
        >>> gen = lt.wrap(nn.Linear(10, 10), lt.TicketConfig(density=0.3))
        >>> {k: int(v.sum()) for k, v in lt.masks(gen).items()}
        {'weight': 30}
    """
    return {name: sm.mask().detach().clone() for name, sm in score_masks(model).items()}


def density(model: nn.Module) -> Density:
    """Fraction of targeted weights the masks keep: ``.overall`` and ``.per_layer``.

    Example:
        >>> import lt_plugins as lt
        >>> gen = lt.wrap(nn.Linear(10, 10), lt.TicketConfig(density=0.3))
        >>> lt.density(gen).per_layer
        {'weight': 0.3}
    """
    current = masks(model)
    if not current:
        raise ValueError(f"{type(model).__name__} is not wrapped; call lt.wrap(model, config) first.")
    kept = {name: int(m.sum()) for name, m in current.items()}
    return Density(
        kept=sum(kept.values()),
        total=sum(m.numel() for m in current.values()),
        per_layer={name: kept[name] / m.numel() for name, m in current.items()},
    )


def score_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable scores of a wrapped model, in parameter-name order (give them to an optimiser).

    Example:
        >>> import lt_plugins as lt
        >>> gen = lt.wrap(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4)))
        >>> opt = torch.optim.Adam(lt.score_parameters(gen), lr=0.01)
        >>> len(opt.param_groups[0]["params"])
        2
    """
    found = score_masks(model)
    if not found:
        raise ValueError(f"{type(model).__name__} is not wrapped; call lt.wrap(model, config) first.")
    return [found[name].scores for name in sorted(found)]
