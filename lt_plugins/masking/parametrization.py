"""The ScoreMask parametrization: ``weight -> weight * mask(scores)``, straight-through to the scores.

The mask, and the masked weight with it, are recomputed only when the scores (or the weight)
change, into buffers reused from step to step. This module owns the layout the parametrization
gives a wrapped model (`masked_parameters`) and the one way masks are set from outside (`load_masks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from .selection import ThresholdHint, _GlobalTopK, _refill, _version_key, kept_count, topk_mask
from .targets import _full_name

# Scores `ScoreMask.pin` writes: kept weights 1 + floor, dropped ones floor. The floor keeps every
# score positive, so a search continued from pinned masks has a gradient sign everywhere.
SCORE_FLOOR = 0.01


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


class ScoreMask(nn.Module):
    """Parametrization ``weight -> weight * topk_mask(|scores|)`` with a straight-through gradient.

    Holds the only trainable tensor of a wrapped layer, ``scores``. Built by `wrap`; you
    rarely create one yourself. `pin` fixes the mask instead (see `load_masks`).

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
        self._pinned: torch.Tensor | None = None
        self._pinned_at: tuple | None = None  # scores_key() when pinned

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

    def pin(self, mask: torch.Tensor) -> None:
        """Keep exactly ``mask`` (bool, the scores' shape) until the scores are next written.

        The scores are set to 1 + `SCORE_FLOOR` where ``mask`` keeps and `SCORE_FLOOR` elsewhere:
        their top-k is this very mask whenever it keeps as many as the density says, so once an
        optimiser step or ``load_state_dict`` writes the scores, the mask is theirs again and a
        search continues from where the pin left it. `load_masks` checks the counts; use it.
        """
        with torch.no_grad():
            self.scores.copy_(mask.to(self.scores.device, self.scores.dtype) + SCORE_FLOOR)
        self._pinned = mask.detach().to(self.scores.device, torch.bool, copy=True)
        self._pinned_at = self.scores_key()

    @property
    def pinned(self) -> bool:
        """Whether the mask is the one `pin` set (the scores have not been written since)."""
        if self._pinned is not None and self.scores_key() != self._pinned_at:
            self._pinned = self._pinned_at = None  # the scores were written: back to searching
        return self._pinned is not None

    def _selection_key(self) -> tuple:
        if self.pinned:
            return torch.is_inference_mode_enabled(), "pinned", self._pinned_at
        # In global scope a mask changes with any member's scores, not only with its own. A mask
        # made under torch.inference_mode cannot be saved for backward, so the mode is part of the key.
        if self._global is not None:
            return self._global.key()
        return torch.is_inference_mode_enabled(), self.scores_key()

    def _mask_for(self, key: tuple) -> torch.Tensor:
        if self._pinned is not None:  # `_selection_key` made ``key`` and dropped a stale pin
            return self._pinned
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
        pinned = self.pinned
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
            if pinned:  # moving the scores is not writing them
                self._pinned, self._pinned_at = self._pinned.to(device), self.scores_key()
        return self

    def extra_repr(self) -> str:
        scope = "global" if self._global is not None else "layer"
        return f"{self.param_name}, density={self.density}, scope={scope}"


@dataclass(frozen=True)
class MaskedParameter:
    """One masked tensor of a wrapped model, as the parametrization lays it out.

    Example:
        >>> import lt_plugins as lt
        >>> entry = masked_parameters(lt.wrap(nn.Sequential(nn.Linear(4, 4))))["0.weight"]
        >>> entry.original_key, entry.scores_key, tuple(entry.original.shape)
        ('0.parametrizations.weight.original', '0.parametrizations.weight.0.scores', (4, 4))
    """

    name: str  # qualified parameter name, e.g. "main.0.weight"
    module: nn.Module
    param_name: str
    original_key: str  # state_dict key of the frozen (unmasked) weight
    scores_key: str  # state_dict key of its scores
    score_mask: ScoreMask

    @property
    def original(self) -> torch.Tensor:
        """The frozen weight the mask multiplies (the parameter itself, not a copy)."""
        return self.module.parametrizations[self.param_name].original


def masked_parameters(model: nn.Module) -> dict[str, MaskedParameter]:
    """Qualified parameter name -> its `MaskedParameter`, for every score-masked tensor of ``model``, in model order.

    The one walk over a wrapped model's parametrizations: whoever needs a masked tensor's
    module, frozen weight, scores or state_dict keys asks here.

    Example:
        >>> import lt_plugins as lt
        >>> model = lt.wrap(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
        >>> list(masked_parameters(model))
        ['0.weight', '2.weight']
    """
    found = {}
    for module_name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for param_name, plist in module.parametrizations.items():
            base = _full_name(module_name, f"parametrizations.{param_name}")
            for index, p in enumerate(plist):
                if isinstance(p, ScoreMask):
                    name = _full_name(module_name, param_name)
                    found[name] = MaskedParameter(
                        name, module, param_name, f"{base}.original", f"{base}.{index}.scores", p
                    )
    return found


def score_masks(model: nn.Module) -> dict[str, ScoreMask]:
    """Parameter name -> its ScoreMask, for every masked parameter of ``model``.

    Example:
        >>> import lt_plugins as lt
        >>> score_masks(lt.wrap(nn.Linear(4, 4), lt.TicketConfig(density=0.5)))["weight"].kept
        8
    """
    return {name: entry.score_mask for name, entry in masked_parameters(model).items()}


def is_wrapped(model: nn.Module) -> bool:
    """Whether ``model`` carries score masks.

    Example:
        >>> is_wrapped(nn.Linear(4, 4))
        False
    """
    return bool(masked_parameters(model))


def load_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Set the masks of a wrapped model to exactly ``masks`` (qualified name -> bool tensor, True = kept).

    Every masked tensor needs its mask, of its shape, keeping what the density keeps (per tensor
    in layer scope, over all of them in global scope); anything else is refused before a mask
    is changed. The masks are pinned (`ScoreMask.pin`): kept exactly, whatever ties the scores
    would have, until the scores are next written. That is also the way back to searching: an
    optimiser step (or ``load_state_dict`` of a checkpoint) releases the pins, and a search
    starts from these very masks, since the scores pinning wrote rank them first.

    Example:
        >>> import lt_plugins as lt
        >>> model = lt.wrap(nn.Linear(4, 2), lt.TicketConfig(density=0.5))
        >>> load_masks(model, {"weight": torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)})
        >>> lt.masks(model)["weight"].int().tolist()
        [[1, 1, 0, 0], [0, 0, 1, 1]]
    """
    entries = masked_parameters(model)
    if not entries:
        raise ValueError(f"{type(model).__name__} is not wrapped; call lt.wrap(model, config) first.")
    missing, unknown = sorted(set(entries) - set(masks)), sorted(set(masks) - set(entries))
    if missing or unknown:
        raise ValueError(
            f"load_masks needs one mask per masked tensor: missing {missing[:5]}, not masked here {unknown[:5]}."
        )
    kept = {}
    for name, entry in entries.items():
        mask, scores = masks[name], entry.score_mask.scores
        if tuple(mask.shape) != tuple(scores.shape) or mask.dtype != torch.bool and not _binary(mask):
            raise ValueError(
                f"The mask of {name!r} must be a bool tensor (or one of 0s and 1s) of shape {tuple(scores.shape)}; got "
                f"{str(mask.dtype).removeprefix('torch.')} of shape {tuple(mask.shape)}."
            )
        kept[name] = int(torch.count_nonzero(mask))
    _check_kept(entries, kept)
    for name, entry in entries.items():
        entry.score_mask.pin(masks[name].bool())


def _binary(mask: torch.Tensor) -> bool:
    return bool(((mask == 0) | (mask == 1)).all())


def _check_kept(entries: dict[str, MaskedParameter], kept: dict[str, int]) -> None:
    """Refuse masks that keep another count than the density of the tensors they are for."""
    first = next(iter(entries.values())).score_mask
    if first._global is not None:
        total = sum(e.score_mask.scores.numel() for e in entries.values())
        expected = kept_count(first.density, total)
        if sum(kept.values()) != expected:
            raise ValueError(
                f"The masks keep {sum(kept.values())} weights in all, but global density {first.density} of {total} "
                f"keeps {expected}: wrap with the density the masks were made at."
            )
        return
    for name, entry in entries.items():
        if kept[name] != entry.score_mask.kept:
            raise ValueError(
                f"The mask of {name!r} keeps {kept[name]} weights, but density {entry.score_mask.density} of its "
                f"{entry.score_mask.scores.numel()} keeps {entry.score_mask.kept}: wrap with the density the masks "
                "were made at."
            )
