"""Top-k straight-through score masks, installed as parametrizations.

`wrap` turns every targeted ``module.weight`` into ``weight * mask(scores)`` through
`torch.nn.utils.parametrize`, so any module that reads ``self.weight`` at forward time is
masked -- nn.Conv2d as much as a StyleGAN modulated conv that calls F.conv2d itself.
The mask keeps the top-k |scores| of each tensor (layer scope) or of all targeted tensors
together (global scope); k is found by selection (`topk_mask`), never by a full sort. The
mask, and the masked weight with it, are recomputed only when the scores (or the weight)
change, into buffers reused from step to step.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from .adapters import adapter_for, recognise
from .config import TicketConfig
from .init import constructor_scale, draw_scores, draw_weight, fan_in

logger = logging.getLogger(__name__)

_STATE_ATTR = "_lt_state"


# Below this many values one kthvalue is as cheap as bracketing the threshold first.
_MIN_BRACKETED = 1 << 14
_SAMPLE = 1 << 13
# Half-width of the sample's bracket, in standard errors of its estimate of the rank.
_MARGIN_SIGMAS = 5.0
# Half-width of a bracket around the last threshold: this many times its last move, plus
# this fraction of its value. Measured on real searches, one step in a hundred outruns it.
_HINT_MOVES = 4.0
_HINT_SLACK = 1e-3


def kept_count(density: float, n: int) -> int:
    """How many of ``n`` weights a mask at ``density`` keeps: ``max(1, round(density * n))``.

    The one rule behind layer-scope masks (per tensor), global-scope masks (over all targeted
    weights together) and the kept counts a ticket checks.

    Example:
        >>> kept_count(0.1, 100), kept_count(0.1, 3), kept_count(0.5, 3)
        (10, 1, 2)
    """
    return max(1, round(density * n))


@dataclass
class ThresholdHint:
    """Where a selection's k-th largest value was last time, how far it had moved, how crowded.

    Scores change little from one optimiser step to the next, and so does the threshold
    between kept and dropped. `topk_mask` brackets it around the last one when that bracket
    should hold fewer values than the one a sample of the values can promise (``crowding``
    -- values per unit near the threshold -- tells), which makes the exact selection several
    times cheaper. A wrong hint costs time, never exactness.

    Example:
        >>> hint = ThresholdHint()
        >>> _ = topk_mask(torch.arange(10.0), 3, hint)
        >>> hint.threshold
        7.0
    """

    threshold: float = math.nan
    moved: float = math.inf
    crowding: float = math.nan

    def record(self, threshold: float, crowding: float = math.nan) -> None:
        self.moved = abs(threshold - self.threshold) if math.isfinite(self.threshold) else math.inf
        self.threshold, self.crowding = threshold, crowding

    def bracket(self) -> tuple[float, float]:
        half = _HINT_MOVES * self.moved + _HINT_SLACK * abs(self.threshold)
        return self.threshold - half, self.threshold + half

    def expected_band(self) -> float:
        """How many values the bracket should hold (NaN or inf when the hint cannot say)."""
        low, high = self.bracket()
        return (high - low) * self.crowding


def topk_mask(values: torch.Tensor, k: int, hint: ThresholdHint | None = None) -> torch.Tensor:
    """Boolean mask of the k largest entries of a 1-D tensor, by selection, never a full sort.

    On the CPU a full ``kthvalue`` over millions of scores costs more than the layer's
    convolution, so the threshold is first bracketed -- around the last threshold when a
    ``hint`` knows it, else by order statistics of a random sample of the values, several
    standard errors either side of the target rank -- and only what falls inside the bracket
    is selected exactly, the same way. A bracket that misses is detected and the next one is
    tried, down to a full selection. On other devices one ``topk`` selection with no host
    synchronisation is cheaper than any bracketing. Ties at the threshold are broken by
    position, so exactly k entries are kept.

    Example:
        >>> topk_mask(torch.tensor([0.3, 0.1, 0.3, 0.2]), 2).tolist()
        [True, False, True, False]
    """
    if k >= values.numel():
        return torch.ones_like(values, dtype=torch.bool)
    if values.device.type != "cpu":
        return _topk_mask_without_sync(values, k)
    return _select(values, k, hint)[0]


def _select(values: torch.Tensor, k: int, hint: ThresholdHint | None = None) -> tuple[torch.Tensor, float]:
    """(mask of the k largest, the k-th largest value), for 0 < k < len(values), on the CPU."""
    if values.numel() >= _MIN_BRACKETED:
        for low, high in _brackets(values, k, hint):
            keep = values > high
            need = k - int(torch.count_nonzero(keep))
            if need <= 0:
                continue
            band = _positions((values >= low) ^ keep)  # ascending positions in [low, high]
            if need > band.numel():
                continue
            inside = values[band]
            crowding = band.numel() / (high - low) if high > low else math.nan
            if need < band.numel():
                # Recurse only while the band shrinks a lot: a band of ties does not.
                select = _select if band.numel() <= values.numel() // 2 else _select_by_kthvalue
                chosen, threshold = select(inside, need)
                band = band[chosen]
            else:
                threshold = float(inside.min())
            keep[band] = True
            if hint is not None:
                hint.record(threshold, crowding)
            return keep, threshold
    keep, threshold = _select_by_kthvalue(values, k)
    if hint is not None:
        hint.record(threshold)
    return keep, threshold


def _select_by_kthvalue(values: torch.Tensor, k: int) -> tuple[torch.Tensor, float]:
    threshold = values.kthvalue(values.numel() - k + 1).values
    keep = values >= threshold
    # count_nonzero, not .sum(): on a bool tensor it is ~6x faster here, and this is per step.
    surplus = int(torch.count_nonzero(keep)) - k
    if surplus:  # ties at the threshold: drop the last ones
        ties = values == threshold
        keep &= ~ties | (ties.cumsum(0) <= int(torch.count_nonzero(ties)) - surplus)
    return keep, float(threshold)


def _brackets(values: torch.Tensor, k: int, hint: ThresholdHint | None):
    """(low, high) ranges likely to hold the k-th largest of ``values``, fewest values first."""
    top, bottom = _sample_ranks(values.numel(), k)
    if hint is not None and hint.expected_band() < (bottom - top) / _SAMPLE * values.numel():
        yield hint.bracket()
    sample = values[_sample_positions(values.numel())]
    high = sample.kthvalue(_SAMPLE - top + 1).values if top >= 1 else values.max()
    low = sample.kthvalue(_SAMPLE - bottom + 1).values if bottom <= _SAMPLE else values.min()
    yield float(low), float(high)


def _sample_ranks(n: int, k: int) -> tuple[int, int]:
    """Ranks from the top of a sample of the values that hold its k-th largest, with margin."""
    rank = k / n * _SAMPLE  # expected rank of the threshold in the sample
    margin = _MARGIN_SIGMAS * math.sqrt(rank * (1 - k / n)) + 2
    return math.floor(rank - margin), math.ceil(rank + margin)


@functools.lru_cache(maxsize=64)
def _sample_positions(n: int) -> torch.Tensor:
    # Random, not strided: a stride that shares a factor with a kernel's size samples one
    # kernel position only, whose scores can drift apart from the rest.
    # Sorted: ascending gathers are kinder to the cache than random ones.
    return torch.randint(n, (_SAMPLE,), generator=torch.Generator().manual_seed(n)).sort().values


def _positions(flags: torch.Tensor) -> torch.Tensor:
    """Ascending positions of the True entries of a 1-D bool tensor where they are few.

    ``nonzero`` reads every byte; when under a few percent are set most 8-byte words are
    zero, so the words are scanned first and only the bytes of the others.
    """
    body = flags.numel() - flags.numel() % 8
    words = flags[:body].view(torch.int64).nonzero().squeeze(1)
    rows, cols = flags[:body].view(-1, 8)[words].nonzero().unbind(1)
    positions = words[rows] * 8 + cols
    if body == flags.numel():
        return positions
    return torch.cat([positions, flags[body:].nonzero().squeeze(1) + body])


def _topk_mask_without_sync(values: torch.Tensor, k: int) -> torch.Tensor:
    # topk, not kthvalue: CUDA's kthvalue gives a whole 1-D tensor to one thread block.
    threshold = values.topk(k, sorted=False).values.min()
    above = values > threshold
    ties = values == threshold
    return above | (ties & (ties.cumsum(0) <= k - above.sum()))


class _MaskedWeight(torch.autograd.Function):
    """The masked weight forward; straight-through backward to the scores.

    The mask is treated as the identity of |scores|, so d loss / d score =
    (d loss / d masked weight) * weight * sign(score). ``masked`` (weight * mask) and
    ``sign`` (sign of the scores) are buffers the ScoreMask refills in place only when the
    scores or the weight change; the output is a view of ``masked``, so autograd's version
    check refuses a backward through a graph built before a refill -- exactly as it refuses
    one through a weight an optimiser has since stepped.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, scores: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor,
                sign: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight, sign, mask if ctx.needs_input_grad[0] else None)
        return masked.view_as(masked)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weight, sign, mask = ctx.saved_tensors
        grad_weight = grad * mask if ctx.needs_input_grad[0] else None
        grad_scores = (grad * weight).to(sign.dtype).mul_(sign)
        return grad_weight, grad_scores, None, None, None


def _refill(buffer: torch.Tensor | None, shape: torch.Size, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``buffer`` if it has this shape, device and dtype, else a new empty one.

    Per-step tensors the size of a weight are reused rather than reallocated: on the CPU a
    fresh multi-megabyte allocation costs page faults on every step.
    """
    if (
        buffer is None or buffer.shape != shape or buffer.device != device or buffer.dtype != dtype
        # A buffer made under torch.inference_mode can never again be written outside it.
        or buffer.is_inference() != torch.is_inference_mode_enabled()
    ):
        return torch.empty(shape, device=device, dtype=dtype)
    return buffer


def _version_key(tensor: torch.Tensor) -> tuple:
    """Changes whenever ``tensor`` is written in place, replaced or moved."""
    return tensor._version, tensor.data_ptr(), tensor.device


class _GlobalTopK:
    """One selection over the scores of every ScoreMask of a model (global scope)."""

    def __init__(self, density: float) -> None:
        self.density = density
        self.members: list[ScoreMask] = []
        self._key: tuple | None = None
        self._masks: list[torch.Tensor] = []
        self._abs: torch.Tensor | None = None
        self._hint = ThresholdHint()

    def key(self) -> tuple:
        """Changes whenever any member's scores do, or inference mode is entered or left."""
        return (torch.is_inference_mode_enabled(), *(m.scores_key() for m in self.members))

    def add(self, member: ScoreMask) -> int:
        """Take ``member`` into the selection; returns its index among the members."""
        self.members.append(member)
        return len(self.members) - 1

    def mask_of(self, index: int, key: tuple) -> torch.Tensor:
        """The mask of member ``index`` for the members' scores as of ``key`` (`key()`)."""
        if key != self._key:
            sizes = [m.scores.numel() for m in self.members]
            first = self.members[0].scores
            self._abs = _refill(self._abs, torch.Size([sum(sizes)]), first.device, first.dtype)
            for m, part in zip(self.members, self._abs.split(sizes)):
                torch.abs(m.scores.detach().view(-1), out=part)
            keep = topk_mask(self._abs, kept_count(self.density, self._abs.numel()), self._hint)
            self._masks = [part.view_as(m.scores) for part, m in zip(keep.split(sizes), self.members)]
            self._key = key
        return self._masks[index]


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
        self._global_index = global_topk.add(self) if global_topk is not None else -1
        self._key: tuple | None = None
        self._mask: torch.Tensor | None = None
        self._abs: torch.Tensor | None = None
        self._buffers_key: tuple | None = None
        self._masked: torch.Tensor | None = None
        self._sign: torch.Tensor | None = None
        self._hint = ThresholdHint()

    @property
    def kept(self) -> int:
        """Number of entries this mask keeps in layer scope."""
        return kept_count(self.density, self.scores.numel())

    def scores_key(self) -> tuple:
        """Changes whenever the scores are written in place, replaced or moved."""
        # Not self.scores: nn.Module.__getattr__ costs ~1 us, and global scope asks every
        # member's key in every member's forward.
        return _version_key(self._parameters["scores"])

    def mask(self) -> torch.Tensor:
        """The current boolean mask (recomputed only when the scores changed)."""
        return self._mask_for(self._selection_key())

    def _selection_key(self) -> tuple:
        # In global scope a mask changes with any member's scores, not only with its own. A mask
        # made under torch.inference_mode cannot be saved for backward, so the mode is part of the key.
        if self._global is not None:
            return self._global.key()
        return torch.is_inference_mode_enabled(), self.scores_key()

    def _mask_for(self, key: tuple) -> torch.Tensor:
        if self._global is not None:
            return self._global.mask_of(self._global_index, key)
        if key != self._key:
            self._abs = _refill(self._abs, self.scores.shape, self.scores.device, self.scores.dtype)
            torch.abs(self.scores.detach(), out=self._abs)
            self._mask = topk_mask(self._abs.view(-1), self.kept, self._hint).view_as(self.scores)
            self._key = key
        return self._mask

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        selection_key = self._selection_key()  # once per forward: in global scope it reads every member
        mask = self._mask_for(selection_key)
        key = (selection_key, _version_key(weight), weight.dtype)
        if key != self._buffers_key:
            with torch.no_grad():
                self._masked = _refill(self._masked, weight.shape, weight.device, weight.dtype)
                torch.mul(weight, mask, out=self._masked)
                self._sign = _refill(self._sign, self.scores.shape, self.scores.device, self.scores.dtype)
                torch.sign(self.scores, out=self._sign)
            self._buffers_key = key
        return _MaskedWeight.apply(weight, self.scores, self._masked, mask, self._sign)

    def _apply(self, fn, recurse: bool = True):
        # model.half() / .to(torch.bfloat16) casts every floating tensor; scores cast to 16 bits
        # would tie and reorder, and change which weights are kept. They follow the model's
        # device but stay float32.
        scores = self._parameters.pop("scores")
        try:
            super()._apply(fn, recurse)
        finally:
            self._parameters["scores"] = scores
        device = fn(torch.empty(0, device=scores.device)).device
        if device != scores.device:
            scores.data = scores.data.to(device)
            if scores.grad is not None:
                scores.grad = scores.grad.to(device)
        return self

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
    # Masked tensor name -> the scale its seeded draw took in place of 1/sqrt(fan_in) (see
    # lt_plugins.init.constructor_scale); tickets record it.
    weight_scales: dict[str, float] = field(default_factory=dict)


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


@dataclass
class PlannedWeight:
    """One masked tensor as `wrap` sets it up: where it lives and what the seed gives it."""

    module: nn.Module
    param_name: str
    name: str  # full parameter name in the model
    fan: float
    scale: float | None  # the seeded draw's scale in place of 1/sqrt(fan_in) (None: the fan-in rule)

    def draw(self, config: TicketConfig) -> torch.Tensor | None:
        """The seeded weight (CPU, float32), or None with ``weight_init="keep"``."""
        if config.weight_init == "keep":
            return None
        shape = self.module._parameters[self.param_name].shape
        return draw_weight(
            config.weight_init, shape, self.fan, config.seed, self.name, config.density, config.scale_fan, self.scale
        )


def plan_weights(
    model: nn.Module, config: TicketConfig, weight_scales: dict[str, float] | None = None
) -> list[PlannedWeight]:
    """The tensors `wrap` masks in ``model`` under ``config`` (resolved by the model's family), with fan-in
    and draw scale of each.

    ``weight_scales`` (name -> scale) are the scales a ticket recorded: exactly those are used and
    nothing is measured. None measures them from the weights the model's constructor made
    (`lt_plugins.init.constructor_scale`): a layer that rescales its weight at run time
    (equalized learning rate, lr multipliers) keeps the scale its constructor gave it.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> [(w.name, w.fan, w.scale) for w in plan_weights(net, TicketConfig())]
        [('0.weight', 4, None), ('2.weight', 4, None)]
    """
    plan = []
    for module_name, module, param_name in find_targets(model, config):
        fan = fan_in(module, module._parameters["weight"])
        name = _full_name(module_name, param_name)
        if weight_scales is not None:
            scale = weight_scales.get(name)
        elif config.weight_init == "keep":
            scale = None
        else:
            scale = constructor_scale(module._parameters[param_name], fan)
        plan.append(PlannedWeight(module, param_name, name, fan, scale))
    return plan


def _check_untied(model: nn.Module, plan: list[PlannedWeight]) -> None:
    """Refuse a targeted tensor that another module also holds (tied weights)."""
    owners: dict[int, list[str]] = {}
    for module_name, module in model.named_modules(remove_duplicate=False):
        for param_name, param in module._parameters.items():
            if param is not None:
                owners.setdefault(id(param), []).append(_full_name(module_name, param_name))
    for planned in plan:
        names = sorted(set(owners.get(id(planned.module._parameters[planned.param_name]), [])))
        if len(names) > 1:
            modules = [n.rpartition(".")[0] or n for n in names]
            raise ValueError(
                f"{planned.name} is one tensor shared by {names} (tied weights). A mask on one of them would leave the "
                f"others reading the unmasked tensor. Leave it dense in all of them: exclude_modules={modules}."
            )


def _warn_normalised(model: nn.Module, plan: list[PlannedWeight]) -> None:
    """Name the layers whose weight is reparametrised by weight or spectral norm: they stay dense."""
    planned = {id(p.module) for p in plan}
    normed = []
    for module_name, module in model.named_modules():
        if id(module) in planned:
            continue
        hooked = {"weight_g", "weight_v", "weight_orig"} & set(module._parameters)
        parametrized = parametrize.is_parametrized(module, "weight") and not any(
            isinstance(p, ScoreMask) for p in module.parametrizations["weight"]
        )
        if hooked or parametrized:
            normed.append(module_name or type(module).__name__)
    if normed:
        warnings.warn(
            f"lt.wrap leaves {len(normed)} weight- or spectral-normalised layer(s) dense and unmasked: {normed[:10]}. "
            "To mask them, remove the normalisation before wrapping (torch.nn.utils.remove_weight_norm / "
            "remove_spectral_norm, or parametrize.remove_parametrizations(module, 'weight')).",
            stacklevel=3,
        )


def _compiled_original(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile``d model wraps (masks go on it, under its own parameter names)."""
    original = getattr(model, "_orig_mod", None)
    if isinstance(original, nn.Module) and type(model).__name__ == "OptimizedModule":
        logger.info("lt.wrap: %s is torch.compile'd; wrapping its original module (compile the result again).",
                    type(original).__name__)
        return original
    return model


def wrap(
    model: nn.Module, config: TicketConfig | None = None, *, weight_scales: dict[str, float] | None = None
) -> nn.Module:
    """Freeze ``model`` at weights drawn from ``config.seed`` and put a score mask on its targets.

    What ``config`` leaves open -- the targets when neither ``target_modules`` nor
    ``exclude_modules`` is set, ``scale_fan`` when it is None -- comes from ``model``'s family
    (`lt_plugins.adapters`, recognised by class or by structure); the config so resolved is the
    one `wrap_config` returns and tickets record.

    Every targeted weight is re-drawn on the CPU in float32 from a generator keyed by
    (seed, parameter name) -- unless ``weight_init="keep"`` -- then moved to its device. Its
    scale is gain/sqrt(fan_in), except for a weight its layer rescales at run time (equalized
    learning rate: `lt_plugins.init.constructor_scale`), which keeps its constructor's scale,
    so the wrapped model behaves like the dense one at init. ``weight_scales`` is for tickets
    (`lt.Ticket.apply`), which record those scales. Every parameter of the model is frozen;
    the only trainable tensors afterwards are the scores (`score_parameters`), which stay
    float32 whatever the model is cast to. The model is changed in place and returned (for a
    ``torch.compile``d model: its original module). On any error, KeyboardInterrupt included,
    the model is left as it was. Tensors shared by several modules (tied weights) are refused.

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
    model = _compiled_original(model)
    if is_wrapped(model):
        raise ValueError(
            f"{type(model).__name__} is already wrapped with score masks. Call lt.unwrap(model) or "
            "lt.merge(model) first, or wrap a fresh instance."
        )
    adapter, reason = recognise(model, config.family)
    config = adapter.resolve(config, model)
    plan = plan_weights(model, config, weight_scales)
    _check_untied(model, plan)
    _warn_normalised(model, plan)

    total = sum(p.module._parameters[p.param_name].numel() for p in plan)
    # Draw everything before touching the model, so a failure leaves it as it was.
    drawn = []
    for planned in plan:
        param = planned.module._parameters[planned.param_name]
        scores = draw_scores(config.score_init, param.shape, planned.fan, config.seed, planned.name)
        drawn.append((planned, planned.draw(config), scores.to(param.device)))

    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    originals = {planned.name: planned.module._parameters[planned.param_name].detach().clone() for planned in plan}
    global_topk = _GlobalTopK(config.density) if config.scope == "global" else None
    try:
        with torch.no_grad():
            for planned, new_value, _ in drawn:
                if new_value is not None:
                    planned.module._parameters[planned.param_name].copy_(new_value)
        for param in model.parameters():
            param.requires_grad_(False)
        for planned, _, scores in drawn:
            mask = ScoreMask(scores, config.density, planned.name, global_topk)
            parametrize.register_parametrization(planned.module, planned.param_name, mask, unsafe=True)
        scales = {p.name: p.scale for p in plan if p.scale is not None}
        setattr(model, _STATE_ATTR, _WrapState(config, requires_grad, scales))
    except BaseException:
        _restore(model, plan, originals, requires_grad)
        raise
    logger.info(
        "lt.wrap: %s family (%s); %d tensors masked, %s weights, density %g (%s scope); weight scale: %s",
        adapter.family, reason, len(plan), f"{total:,}", config.density, config.scope,
        _describe_scales(config, plan),
    )
    if adapter.family == "torch" and config.family is None and not isinstance(model, _PLAIN_TORCH):
        logger.warning(
            "lt.wrap: %s is not recognised as a DCGAN, StyleGAN or UNet, so the generic defaults apply (every weight "
            "masked, scale_fan=True, score lr 0.1). If it is one of them, say so: TicketConfig(family='stylegan' | "
            "'unet' | 'dcgan').", type(model).__name__,
        )
    return model


# torch's own building blocks: the generic family is what anyone wrapping them expects.
_PLAIN_TORCH = (nn.Linear, nn.Sequential, nn.modules.conv._ConvNd)


def _describe_scales(config: TicketConfig, plan: list[PlannedWeight]) -> str:
    if config.weight_init == "keep":
        return "the model's own weights (weight_init='keep')"
    rule = "gain/sqrt(density*fan_in)" if config.scale_fan else "gain/sqrt(fan_in)"
    kept = [p for p in plan if p.scale is not None]
    if not kept:
        return rule
    return (f"{rule}; {len(kept)} tensor(s) rescaled at run time keep their constructor's scale "
            f"(e.g. {kept[0].name}: {kept[0].scale})")


def _restore(model: nn.Module, plan: list[PlannedWeight], originals: dict[str, torch.Tensor],
             requires_grad: dict[str, bool]) -> None:
    """Undo a `wrap` that stopped half way: parametrizations, weight values, trainability."""
    for planned in plan:
        if parametrize.is_parametrized(planned.module, planned.param_name):
            parametrize.remove_parametrizations(planned.module, planned.param_name, leave_parametrized=False)
        with torch.no_grad():
            planned.module._parameters[planned.param_name].copy_(originals[planned.name])
    for name, param in model.named_parameters():
        param.requires_grad_(requires_grad.get(name, param.requires_grad))
    if _STATE_ATTR in model.__dict__:
        delattr(model, _STATE_ATTR)


def wrapped_root(model: nn.Module) -> nn.Module:
    """The module `wrap` was called on: ``model`` itself, or the first submodule that was wrapped
    (a user's wrapper module may hold the wrapped generator anywhere inside it).

    Example:
        >>> import lt_plugins as lt
        >>> inner = lt.wrap(nn.Linear(4, 4))
        >>> wrapped_root(nn.Sequential(nn.Identity(), inner)) is inner
        True
    """
    for module in model.modules():
        if _STATE_ATTR in module.__dict__:
            return module
    raise ValueError(
        f"{type(model).__name__} is not wrapped and holds no wrapped module; call lt.wrap(generator, config) first."
    )


def weight_scales(model: nn.Module) -> dict[str, float]:
    """Masked tensor name -> the scale its seeded draw took in place of 1/sqrt(fan_in) (see `wrap`).

    Example:
        >>> import lt_plugins as lt
        >>> weight_scales(lt.wrap(nn.Linear(4, 4)))
        {}
    """
    return dict(getattr(wrapped_root(model), _STATE_ATTR).weight_scales)


def wrap_config(model: nn.Module) -> TicketConfig:
    """The TicketConfig ``model`` was wrapped with, with its family's defaults filled in.

    Example:
        >>> import lt_plugins as lt
        >>> from diffusers import UNet2DModel
        >>> unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4,
        ...                    down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        >>> wrap_config(lt.wrap(unet, lt.TicketConfig(density=0.2))).scale_fan
        False
    """
    return getattr(wrapped_root(model), _STATE_ATTR).config


def _own_class(module: nn.Module) -> None:
    """Give a parametrized module a class of its own before its parametrizations are removed.

    torch makes one ``Parametrized<Class>`` per parametrized module and removing a parametrization
    deletes the property from that class; ``copy.deepcopy`` shares the class between the copy and
    the original, so merging a copy used to strip ``weight`` from the original as well.
    """
    cls = type(module)
    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, namespace)


def _remove_masks(model: nn.Module, keep_masked_values: bool) -> nn.Module:
    state = getattr(model, _STATE_ATTR, None)
    if state is None:
        raise ValueError(f"{type(model).__name__} is not wrapped; there are no masks to remove.")
    for module in list(model.modules()):
        if not parametrize.is_parametrized(module):
            continue
        _own_class(module)
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
