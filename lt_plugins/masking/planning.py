"""The weights `wrap` masks, planned once: where each lives, its fan-in, the scale of its seeded draw."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import TicketConfig
from ..init import constructor_scale, draw_weight, fan_in
from .targets import _full_name, find_targets


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
