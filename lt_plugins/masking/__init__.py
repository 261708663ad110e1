"""Top-k straight-through score masks, installed as parametrizations; the owner of their layout.

One job per module:

- `selection`: the kept-count rule (`kept_count`) and top-k by selection (`topk_mask`, the
  global selection over all of a model's scores), never a full sort;
- `parametrization`: `ScoreMask` (``weight -> weight * mask(scores)``, straight-through to the
  scores, cached masked weight) and the walk over a wrapped model's masked parameters;
- `targets`: which parameters carry a mask (`find_targets`);
- `planning`: the seeded weights planned and drawn (`plan_weights`), for `wrap` and for a
  ticket's checks;
- `wrapping`: `wrap` / `merge` / `unwrap` and what they refuse, `wrap_config`, `wrapped_root`;
- `accounting`: `masks`, `density`, `score_parameters`.

Example:
    >>> import torch
    >>> from lt_plugins.masking import wrap, density
    >>> from lt_plugins import TicketConfig
    >>> density(wrap(torch.nn.Linear(10, 10), TicketConfig(density=0.3))).kept
    30
"""

from .accounting import Density, density, masks, score_parameters
from .parametrization import ScoreMask, is_wrapped, score_masks
from .planning import PlannedWeight, plan_weights
from .selection import ThresholdHint, _sample_positions, _topk_mask_without_sync, kept_count, topk_mask
from .targets import find_targets
from .wrapping import merge, unwrap, weight_scales, wrap, wrap_config, wrapped_root

__all__ = [
    "Density", "PlannedWeight", "ScoreMask", "ThresholdHint", "density", "find_targets", "is_wrapped", "kept_count",
    "masks", "merge", "plan_weights", "score_masks", "score_parameters", "topk_mask", "unwrap", "weight_scales",
    "wrap", "wrap_config", "wrapped_root",
]
