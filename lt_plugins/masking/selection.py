"""Which weights a mask keeps: the kept-count rule and top-k by selection, never a full sort.

The mask keeps the top-k |scores| of each tensor (layer scope, `topk_mask`) or of all targeted
tensors together (global scope, `_GlobalTopK`); k is `kept_count`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .parametrization import ScoreMask


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
