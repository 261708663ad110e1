"""What a wrapped model's masks keep: the masks, the density, the trainable scores."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .parametrization import score_masks


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
