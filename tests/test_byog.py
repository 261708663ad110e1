"""Bring your own generator: public-code patterns (`byog_models`) searched with the package defaults.

One table of cases (`byog_cases.CASES`: StyleGAN2-ADA's ``G(z, c)``, a 5-D modulated ``G([z])``, the
tutorial DCGAN on (N, nz, 1, 1), the community ``unet(x, t)`` with its own betas) run through every test.
Nothing is tuned: no lr, no scale_fan, no targets; only what a user must say.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from byog_cases import BETAS, CASES, SHAPE, Case, spread
from byog_models import EqualizedStyleGAN2, p_sample_loop
from scripts import load_script
from torch import nn

import lt_plugins as lt
from lt_plugins.data import load_mnist

IDS = [c.name for c in CASES]
SHORT, LONG = 30, 150
# The tutorial DCGAN's FD falls more slowly: 2118 -> 1272 (0.60x) in 150 steps, 2118 -> 339 in 300
# (benchmarks/byog.py [--steps 300]; the package's own DCGANGenerator, the same network without weights_init's
# BatchNorm jitter: 2006 -> 900 in 150, FD against 500 reals). Its FD-halving test runs the 300.
LONG_STEPS = {"dcgan-tutorial": 300}
EVAL_N = 300  # generated images per FD


def _search(case: Case, model: nn.Module, steps: int, real: torch.Tensor) -> tuple[lt.TicketSearch, lt.Ticket]:
    search = case.search(model, batch_size=case.batch_size if steps >= LONG else case.batch_size // 2)
    return search, search.run(real, steps=steps)


@pytest.fixture(scope="module")
def real() -> torch.Tensor:
    return load_mnist(image_size=32)


@pytest.fixture(scope="module")
def searched(real) -> dict[str, tuple[nn.Module, tuple[lt.TicketSearch, lt.Ticket], float]]:
    """Each case's wrapped model after a short search, (its search, its ticket), and the unsearched ticket's
    spread (eval mode)."""
    out = {}
    for case in CASES:
        model = case.wrapped().eval()
        before = spread(case.images(model))
        out[case.name] = (model, _search(case, model.train(), SHORT, real), before)
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_wrapped_init_varies_with_z_as_much_as_the_dense_model(case):
    # Measured as the search runs the network (train mode): an unsearched BatchNorm network's running
    # statistics are its constructor's (0, 1), not its own, so in eval mode it shows nothing of itself.
    torch.manual_seed(0)
    dense = spread(case.images(case.build().train()))
    wrapped = spread(case.images(case.wrapped().train()))
    assert dense > 1e-3 and 0.2 < wrapped / dense < 5, (dense, wrapped)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_short_search_lowers_the_loss_without_collapse(case, searched):
    model, (search, _), before = searched[case.name]
    losses = search.result.losses
    assert len(losses) == SHORT and all(map(math.isfinite, losses))
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses
    after = spread(case.images(model.eval()))
    assert after > 0.2 * before and after > 0.05, (before, after)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_150_steps_halve_the_fd_of_the_unsearched_ticket(case, real):
    model = case.wrapped()
    fd_before = case.fd(model, real, EVAL_N)
    _search(case, model, LONG_STEPS.get(case.name, LONG), real)
    fd_after = case.fd(model, real, EVAL_N)
    assert fd_after < 0.5 * fd_before, (fd_before, fd_after)
    assert spread(case.images(model.eval())) > 0.05


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_saved_ticket_rebuilds_bit_identical_under_another_rng_state_and_merges(case, searched, tmp_path):
    model, (_, ticket), _ = searched[case.name]
    expected = case.probe(model)
    ticket.save_pretrained(tmp_path / "ticket")
    ticket = lt.Ticket.from_pretrained(tmp_path / "ticket")
    if case.search_kwargs:
        assert ticket.call.latent_shape == tuple(case.search_kwargs["latent_shape"])
    torch.manual_seed(12345)  # a fresh instance whose constructor draws other weights, biases and constants
    rebuilt = ticket.apply(case.build())
    assert torch.equal(case.probe(rebuilt), expected)
    merged = lt.merge(rebuilt)
    assert not any("parametrizations" in k for k in merged.state_dict())
    assert torch.equal(case.probe(merged), expected)


class UserWrapper(nn.Module):
    """What users write around a generator: a module holding it, with its own forward."""

    def __init__(self, G: nn.Module) -> None:
        super().__init__()
        self.G = G
        self.register_buffer("scale", torch.ones(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.G(z, None, noise_mode="const") * self.scale


def test_a_decorated_class_is_recorded_importable_and_rebuilt_from_a_users_wrapper(searched, tmp_path):
    case = CASES[0]
    model, (_, mine), _ = searched[case.name]
    ticket = lt.Ticket.from_model(UserWrapper(model))
    assert ticket.spec["class"] == "byog_models.EqualizedStyleGAN2"
    assert ticket.spec["config"] == model.init_kwargs == {}
    assert all(torch.equal(ticket.masks[k], mine.masks[k]) for k in mine.masks) and ticket.masks.keys() == mine.masks.keys()
    ticket.save_pretrained(tmp_path / "ticket")
    torch.manual_seed(999)
    rebuilt = lt.Ticket.from_pretrained(tmp_path / "ticket").apply(allow_remote_code=True)
    assert isinstance(rebuilt, EqualizedStyleGAN2)
    assert torch.equal(case.probe(rebuilt), case.probe(model))


def test_a_decorated_class_keeps_its_constructor_arguments():
    torch.manual_seed(0)
    G = lt.wrap(EqualizedStyleGAN2(z_dim=16, w_dim=16, img_resolution=8))
    ticket = lt.Ticket.from_model(G)
    assert ticket.spec["config"] == {"z_dim": 16, "w_dim": 16, "img_resolution": 8}
    rebuilt = ticket.apply(allow_remote_code=True)
    z = torch.randn(3, 16)
    assert rebuilt.z_dim == 16 and torch.equal(rebuilt.eval()(z, None, noise_mode="const"), G.eval()(z, None, noise_mode="const"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inference_mode_before_and_between_searches_does_no_harm(case, real):
    model = case.wrapped()

    def infer() -> None:
        with torch.inference_mode():
            if case.name == "ddpm-unet":
                p_sample_loop(model, BETAS, (2, *SHAPE), steps=2)  # the repository's own sampler
            else:
                call = case.sampler(model)[1]
                call(model, call.latents(2, torch.Generator().manual_seed(0)))

    infer()
    first = _search(case, model.train(), 3, real)[0].result.losses
    infer()
    scores = [p.detach().clone() for p in lt.score_parameters(model)]
    second = _search(case, model.train(), 3, real)[0].result.losses
    assert all(map(math.isfinite, first + second))
    assert any(not torch.equal(a, b) for a, b in zip(scores, lt.score_parameters(model)))  # the second search trained
    expected = case.probe(model)
    assert torch.equal(case.probe(lt.merge(model)), expected)


def test_the_benchmark_measures_every_column(tmp_path):
    results = load_script(Path("benchmarks") / "byog.py").main(
        ["--steps", "2", "--eval-samples", "16", "--cases", "dcgan-tutorial", "--out", str(tmp_path)])
    (row,) = results
    assert row["bit_identical"] == {"rebuild": True, "merge": True} and row["ms_per_step"] > 0
    assert set(row["spread"]) == {"dense_init", "ticket_init", "searched"} and set(row["fd"]) == {"unsearched", "searched"}
    assert "dcgan-tutorial" in (tmp_path / "byog.txt").read_text() and (tmp_path / "byog_samples.png").stat().st_size > 0
