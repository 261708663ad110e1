"""The ScoreMask parametrization: ``weight -> weight * mask(scores)``, straight-through to the scores.

The mask, and the masked weight with it, are recomputed only when the scores (or the weight)
change, into buffers reused from step to step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from .targets import _full_name
from .selection import ThresholdHint, _GlobalTopK, _refill, _version_key, kept_count, topk_mask

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
