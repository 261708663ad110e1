"""Bad inputs are refused with errors that name the problem, and the model is left untouched."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lt_plugins as lt


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("density", [0, 1.5, math.nan, -0.1, "0.1", True])
def test_bad_density_names_field_value_and_range(density):
    with pytest.raises(ValueError, match=r"density=.*0 < density <= 1"):
        lt.TicketConfig(density=density)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"scope": "row"}, "scope"),
        ({"weight_init": "xavier"}, "weight_init"),
        ({"score_init": "zeros"}, "score_init"),
        ({"score_init": "magnitude"}, "signed_constant weights all have the same size"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"target_modules": []}, "target_modules"),
        ({"exclude_modules": 3}, "exclude_modules"),
        ({"scale_fan": "yes"}, "scale_fan"),
    ],
)
def test_bad_config_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        lt.TicketConfig(**kwargs)


def test_config_json_round_trip_and_unknown_fields():
    cfg = lt.TicketConfig(density=0.3, scope="global", target_modules="conv", exclude_modules=["head"], seed=9)
    assert lt.TicketConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown fields.*'sparsity'"):
        lt.TicketConfig.from_dict({"sparsity": 0.9})
    with pytest.raises(ValueError, match="malformed"):
        lt.TicketConfig.from_json("{density: 0.1")


@pytest.mark.parametrize(
    "model, config, message",
    [
        (nn.Sequential(nn.Linear(4, 4)), lt.TicketConfig(target_modules=["conv9"]), r"\['conv9'\] match no"),
        (nn.Sequential(nn.Linear(4, 4)), lt.TicketConfig(target_modules=["0", "nothing"]), r"\['nothing'\]"),
        (nn.Sequential(nn.Linear(4, 4)), lt.TicketConfig(exclude_modules=["0"]), "leaves nothing to mask"),
        (nn.Sequential(nn.ReLU(), nn.Embedding(10, 4)), lt.TicketConfig(), "no floating weight"),
        (nn.Sequential(nn.LayerNorm(4)), lt.TicketConfig(), "no floating weight"),
    ],
)
def test_bad_targets_leave_model_untouched(model, config, message):
    before = _snapshot(model)
    with pytest.raises(ValueError, match=message):
        lt.wrap(model, config)
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())


def test_wrapping_twice_is_refused_and_keeps_first_wrap():
    model = lt.wrap(nn.Linear(8, 8), lt.TicketConfig(density=0.5, seed=1))
    before = _snapshot(model)
    with pytest.raises(ValueError, match="already wrapped.*unwrap"):
        lt.wrap(model, lt.TicketConfig(density=0.1, seed=2))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert lt.density(model).overall == 0.5


def test_helpers_on_unwrapped_model_explain_what_to_do():
    for helper in (lt.merge, lt.unwrap, lt.density, lt.score_parameters):
        with pytest.raises(ValueError, match="not wrapped"):
            helper(nn.Linear(2, 2))


def test_wrap_rejects_non_modules_and_non_configs():
    with pytest.raises(TypeError, match="nn.Module"):
        lt.wrap(lambda z: z, lt.TicketConfig())
    with pytest.raises(TypeError, match="TicketConfig"):
        lt.wrap(nn.Linear(2, 2), {"density": 0.1})
