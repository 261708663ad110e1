"""Top-k straight-through score masks, installed as parametrizations; the owner of their layout.

One job per module:

- `selection`: the kept-count rule (`kept_count`) and top-k by selection (`topk_mask`, the
  global selection over all of a model's scores), never a full sort;
- `parametrization`: `ScoreMask` (``weight -> weight * mask(scores)``, straight-through to the
  scores, cached masked weight), the one walk over a wrapped model's masked tensors and their
  state_dict keys (`masked_parameters`), and masks set exactly from outside (`load_masks`);
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
from .parametrization import (
    SCORE_FLOOR, MaskedParameter, ScoreMask, is_wrapped, load_masks, masked_parameters, score_masks,
)
from .planning import PlannedWeight, plan_weights
from .selection import ThresholdHint, _sample_positions, _topk_mask_without_sync, kept_count, topk_mask
from .targets import find_targets
from .wrapping import merge, unwrap, weight_scales, wrap, wrap_config, wrapped_root

__all__ = [
    "SCORE_FLOOR", "Density", "MaskedParameter", "PlannedWeight", "ScoreMask", "ThresholdHint", "density",
    "find_targets", "is_wrapped", "kept_count", "load_masks", "masked_parameters", "masks", "merge", "plan_weights",
    "score_masks", "score_parameters", "topk_mask", "unwrap", "weight_scales", "wrap", "wrap_config", "wrapped_root",
]
