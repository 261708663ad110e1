"""`lt.wrap` on what users really hand it: every weight layout's fan-in, run-time weight gains, inference mode,
casts, tied weights, interrupts, weight/spectral norm and compiled models. Each either works or is refused
before anything changes."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import lt_plugins as lt
from lt_plugins.init import constructor_scale, fan_in
from lt_plugins.masking import is_wrapped, weight_scales


class Modulated5D(nn.Module):
    """A modulated convolution that stores its weight (1, out, in, k, k) and scales it at run time."""

    def __init__(self, cin: int = 8, cout: int = 4, k: int = 3) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, cout, cin, k, k))
        self.scale = 1 / math.sqrt(cin * k * k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.weight[0] * self.scale, padding=1)


@pytest.mark.parametrize(
    "module, expected",
    [
        (nn.Linear(12, 5), 12),
        (nn.Conv2d(6, 4, 3), 6 * 9),
        (nn.Conv2d(8, 4, 3, groups=4), 2 * 9),
        (nn.Conv1d(3, 2, 5), 15),
        (nn.Conv3d(2, 1, 3), 2 * 27),  # a leading 1 that is a real output channel
        (nn.ConvTranspose2d(16, 8, 4, stride=2), 16 * 16 / 4),
        (nn.ConvTranspose2d(16, 8, 4, stride=1), 16 * 16),
        (nn.ConvTranspose2d(16, 8, 4, stride=2, groups=4), 4 * 16 / 4),
        (nn.ConvTranspose1d(6, 3, 3, stride=3), 6 * 3 / 3),
        (Modulated5D(8, 4, 3), 8 * 9),
    ],
    ids=["linear", "conv", "grouped-conv", "conv1d", "conv3d-one-out", "convT-s2", "convT-s1", "grouped-convT",
         "convT1d", "modulated-5d"],
)
def test_fan_in_of_every_weight_layout(module, expected):
    assert fan_in(module, module.weight) == pytest.approx(expected)


def test_run_time_gains_keep_the_constructors_scale_and_only_they():
    eq = Modulated5D(64, 8, 3)  # N(0, 1) weights, times 1/sqrt(576) at run time
    assert 0.95 < constructor_scale(eq.weight, fan_in(eq, eq.weight)) < 1.05
    for ordinary in (nn.Linear(512, 64), nn.Conv2d(64, 64, 3), nn.ConvTranspose2d(512, 16, 4)):
        assert constructor_scale(ordinary.weight, fan_in(ordinary, ordinary.weight)) is None
    dcgan_init = nn.ConvTranspose2d(8, 1, 4, 2, 1)
    nn.init.normal_(dcgan_init.weight, 0.0, 0.02)  # a small init is not a run-time gain
    assert constructor_scale(dcgan_init.weight, fan_in(dcgan_init, dcgan_init.weight)) is None
    zero = nn.Conv2d(4, 4, 3)
    nn.init.zeros_(zero.weight)
    assert constructor_scale(zero.weight, 36) is None


def test_a_run_time_rescaled_layer_behaves_like_the_dense_one_and_rebuilds_exactly(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(Modulated5D(16, 16, 3), nn.LeakyReLU(0.2), Modulated5D(16, 1, 3))
    x = torch.randn(8, 16, 8, 8)
    dense_std = float(model(x).detach().std())
    wrapped = lt.wrap(model, lt.TicketConfig(density=0.5, seed=3))
    assert set(weight_scales(wrapped)) == {"0.weight", "2.weight"}
    ratio = float(wrapped(x).detach().std()) / dense_std
    assert 0.3 < ratio < 3, ratio  # the fan-in rule alone would shrink it by 1/sqrt(fan_in) per layer, ~1/150 here
    lt.Ticket.from_model(wrapped).save_pretrained(tmp_path / "t")
    torch.manual_seed(123)  # another constructor draw: its scale differs in the 4th digit, the ticket's is used
    rebuilt = lt.Ticket.from_pretrained(tmp_path / "t").apply(
        nn.Sequential(Modulated5D(16, 16, 3), nn.LeakyReLU(0.2), Modulated5D(16, 1, 3))
    )
    assert torch.equal(rebuilt(x), wrapped(x))


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_inference_mode_before_and_between_searches_does_no_harm(scope):
    net = lt.wrap(nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)), lt.TicketConfig(density=0.3, scope=scope))
    x = torch.randn(5, 8)
    with torch.inference_mode():
        first = net(x)
    out = net(x)
    assert torch.equal(out, first)
    opt = torch.optim.Adam(lt.score_parameters(net), lr=0.1)
    out.square().sum().backward()
    opt.step()
    with torch.inference_mode():
        net(x)
    net(x).square().sum().backward()  # a second step after inference mode again
    merged = lt.merge(copy.deepcopy(net))
    assert torch.equal(merged(x), net(x))


def test_half_and_bfloat16_keep_the_scores_float32_and_the_same_mask():
    net = lt.wrap(nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 8)), lt.TicketConfig(density=0.1))
    before = lt.masks(net)
    for dtype in (torch.float16, torch.bfloat16):
        cast = copy.deepcopy(net).to(dtype)
        assert all(p.dtype == torch.float32 for p in lt.score_parameters(cast))
        assert all(torch.equal(before[k], v) for k, v in lt.masks(cast).items())
    half = copy.deepcopy(net).half()
    assert all(p.dtype == torch.float32 for p in lt.score_parameters(half))
    assert half[0].weight.dtype == torch.float16


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(8, 8)
        self.decode = nn.Linear(8, 8)
        self.decode.weight = self.encode.weight

    def forward(self, x):
        return self.decode(self.encode(x))


def test_tied_weights_are_refused_before_anything_changes():
    model = Tied()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"tied weights.*exclude_modules=\['decode', 'encode'\]"):
        lt.wrap(model)
    assert not is_wrapped(model) and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_an_interrupted_wrap_leaves_the_model_as_it_was(monkeypatch):
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4))
    before = copy.deepcopy(model.state_dict())
    real, calls = parametrize.register_parametrization, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(parametrize, "register_parametrization", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lt.wrap(model)
    monkeypatch.undo()
    assert not is_wrapped(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
    lt.wrap(model)  # and it wraps normally afterwards
    assert is_wrapped(model)


def test_weight_and_spectral_normed_layers_are_named_in_a_warning():
    model = nn.Sequential(
        nn.utils.parametrizations.weight_norm(nn.Linear(4, 4)), nn.utils.spectral_norm(nn.Linear(4, 4)), nn.Linear(4, 2)
    )
    with pytest.warns(UserWarning, match=r"2 weight- or spectral-normalised layer\(s\) dense.*\['0', '1'\]"):
        lt.wrap(model)
    assert list(lt.masks(model)) == ["2.weight"]


def test_a_compiled_model_is_wrapped_as_its_original_module():
    original = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    wrapped = lt.wrap(torch.compile(original))
    assert wrapped is original and list(lt.masks(wrapped)) == ["0.weight", "2.weight"]


def test_merging_a_deep_copy_leaves_the_original_wrapped():
    net = lt.wrap(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2)), lt.TicketConfig(density=0.5))
    x = torch.randn(3, 8)
    expected = net(x)
    merged = lt.merge(copy.deepcopy(net))
    assert torch.equal(merged(x), expected)
    assert torch.equal(net(x), expected) and is_wrapped(net)  # torch's shared Parametrized class once lost `weight`
