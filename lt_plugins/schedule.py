"""The search's learning-rate schedule: a linear warmup, then a cosine decay to 0."""

from __future__ import annotations

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    """The search's lr schedule: linear from ``lr / w`` to ``lr`` over the first ``w = int(warmup * steps)``
    steps (the whole steps inside that share; none below one), times a cosine from ``lr`` to 0 over all ``steps``.

    Example:
        >>> opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> schedule = warmup_cosine(opt, steps=100, warmup=0.05)
        >>> lrs = []
        >>> for _ in range(100):
        ...     lrs.append(schedule.get_last_lr()[0]); opt.step(); schedule.step()
        >>> round(lrs[0], 3), round(lrs[4], 3), round(lrs[50], 3), round(lrs[99], 4)
        (0.2, 0.996, 0.5, 0.0002)
    """
    ramp = max(1, int(warmup * steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / ramp) * 0.5 * (1 + math.cos(math.pi * step / steps))
    )
