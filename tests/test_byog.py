"""Bring your own generator: public-code patterns (`byog_models`) searched with the package defaults.

One table of cases -- the three GAN patterns of `byog_models.GENERATORS` (StyleGAN2-ADA's ``G(z, c)``,
a 5-D modulated ``G([z])``, the tutorial DCGAN on (N, nz, 1, 1)) and the community ``unet(x, t)`` with its
own betas -- run through every test. Nothing is tuned: no lr, no scale_fan, no targets; only what a user
must say (latent_shape, generate; a UNet's betas). "Spread" is the per-pixel standard deviation of the
images across latents, averaged over pixels: 0 when the generator ignores z (collapsed or dead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pytest
import torch
from byog_models import GENERATORS, EqualizedStyleGAN2, TinyUNet, cosine_beta_schedule, p_sample_loop
from torch import nn

import lt_plugins as lt
from lt_plugins.data import load_mnist
from lt_plugins.diffusion import DDIMGenerator
from lt_plugins.features import mnist_feature_net
from lt_plugins.generate import LatentCall
from lt_plugins.objectives import DenoisingObjective

SHAPE = (1, 32, 32)
BETAS = cosine_beta_schedule(1000)
SAMPLE_STEPS = 8  # DDIM steps per UNet sample
SHORT, LONG = 30, 150
EVAL_N = 300  # generated images per FD measurement
SPREAD_N = 32  # per spread measurement


@dataclass
class Case:
    """A fixture generator, how the search is told to call it, and how images come out of it."""

    name: str
    build: Callable[[], nn.Module]
    search_kwargs: dict  # what a user passes TicketSearch beyond the objective
    objective: Callable[[], lt.Objective]
    sampler: Callable[[nn.Module], tuple[nn.Module, LatentCall]]  # model -> (generator of latents, its call)
    batch_size: int  # of the 150-step search; the short ones take half

    def images(self, model: nn.Module, n: int = SPREAD_N, seed: int = 0) -> torch.Tensor:
        gen, call = self.sampler(model)
        with torch.no_grad():
            return call(gen, call.latents(n, torch.Generator().manual_seed(seed)))

    def fd(self, model: nn.Module, real: torch.Tensor) -> float:
        gen, call = self.sampler(model)
        return lt.evaluate(gen, real[:EVAL_N], mnist_feature_net(seed=1), n=EVAL_N, latent_shape=call.latent_shape,
                           generate=call.generate)["fd"]


def spread(images: torch.Tensor) -> float:
    return float(images.std(0).mean())


def _gan(pattern) -> Case:
    call = LatentCall(pattern.latent_shape, pattern.generate)
    return Case(pattern.name, pattern.build, {"latent_shape": pattern.latent_shape, "generate": pattern.generate},
                lambda: lt.MomentMatching(mnist_feature_net()), lambda model: (model, call), 64)


def _ddim(unet: nn.Module) -> tuple[nn.Module, LatentCall]:
    return DDIMGenerator(unet, BETAS, steps=SAMPLE_STEPS, sample_shape=SHAPE), LatentCall((math.prod(SHAPE),))


CASES = [*(_gan(p) for p in GENERATORS),
         Case("ddpm-unet", TinyUNet, {}, lambda: DenoisingObjective(BETAS, sample_shape=SHAPE), _ddim, 32)]
IDS = [c.name for c in CASES]


def _wrapped(case: Case) -> nn.Module:
    torch.manual_seed(0)  # the constructor's own init: what the seed does not redraw (biases, constants, norms)
    return lt.wrap(case.build(), lt.TicketConfig(seed=0))


def _search(case: Case, model: nn.Module, steps: int, real: torch.Tensor) -> tuple[lt.TicketSearch, lt.Ticket]:
    batch_size = case.batch_size if steps >= LONG else case.batch_size // 2
    search = lt.TicketSearch(model, case.objective(), batch_size=batch_size, progress=False, device="cpu",
                             **case.search_kwargs)
    return search, search.run(real, steps=steps)


def _probe(case: Case, model: nn.Module) -> torch.Tensor:
    """The model's raw output on fixed inputs, in eval mode (for bit-for-bit comparisons)."""
    model.eval()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        if case.name == "ddpm-unet":
            return model(torch.randn(4, *SHAPE, generator=g), torch.tensor([0, 10, 500, 999]))
        call = case.sampler(model)[1]
        return call(model, call.latents(4, g))


@pytest.fixture(scope="module")
def real() -> torch.Tensor:
    return load_mnist(image_size=32)


@pytest.fixture(scope="module")
def searched(real) -> dict[str, tuple[nn.Module, tuple[lt.TicketSearch, lt.Ticket], float]]:
    """Each case's wrapped model after a short search, (its search, its ticket), and the unsearched ticket's
    spread (eval mode)."""
    out = {}
    for case in CASES:
        model = _wrapped(case).eval()
        before = spread(case.images(model))
        out[case.name] = (model, _search(case, model.train(), SHORT, real), before)
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_wrapped_init_varies_with_z_as_much_as_the_dense_model(case):
    # Measured as the search runs the network (train mode): an unsearched BatchNorm network's running
    # statistics are its constructor's (0, 1), not its own, so in eval mode it shows nothing of itself.
    torch.manual_seed(0)
    dense = spread(case.images(case.build().train()))
    wrapped = spread(case.images(_wrapped(case).train()))
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
    model = _wrapped(case)
    fd_before = case.fd(model, real)
    _search(case, model, LONG, real)
    fd_after = case.fd(model, real)
    assert fd_after < 0.5 * fd_before, (fd_before, fd_after)
    assert spread(case.images(model.eval())) > 0.05


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_saved_ticket_rebuilds_bit_identical_under_another_rng_state_and_merges(case, searched, tmp_path):
    model, (_, ticket), _ = searched[case.name]
    expected = _probe(case, model)
    ticket.save_pretrained(tmp_path / "ticket")
    ticket = lt.Ticket.from_pretrained(tmp_path / "ticket")
    if case.search_kwargs:
        assert ticket.call.latent_shape == tuple(case.search_kwargs["latent_shape"])
    torch.manual_seed(12345)  # a fresh instance whose constructor draws other weights, biases and constants
    rebuilt = ticket.apply(case.build())
    assert torch.equal(_probe(case, rebuilt), expected)
    merged = lt.merge(rebuilt)
    assert not any("parametrizations" in k for k in merged.state_dict())
    assert torch.equal(_probe(case, merged), expected)


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
    assert torch.equal(_probe(case, rebuilt), _probe(case, model))


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
    model = _wrapped(case)

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
    second = _search(case, model.train(), 3, real)[0].result.losses
    assert all(map(math.isfinite, first + second))
    expected = _probe(case, model)
    assert torch.equal(_probe(case, lt.merge(model)), expected)
