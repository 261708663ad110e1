"""TicketSearch on generators not called as G(z) with flat z: latent_shape=, generate=, wrapper modules, clear
errors on the first call; and families recognised by structure."""

from __future__ import annotations

import logging
import re

import pytest
import torch
from torch import nn

import lt_plugins as lt
from lt_plugins.adapters import recognise
from lt_plugins.generate import LatentCall

REAL = torch.rand(64, 1, 8, 8) * 2 - 1


class TakesZC(nn.Module):
    """A G(z, c) generator that wants z as (N, nz, 1, 1), as public DCGAN/StyleGAN code does."""

    def __init__(self, nz: int = 6) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ConvTranspose2d(nz, 8, 4), nn.ReLU(), nn.ConvTranspose2d(8, 1, 4, 2, 1), nn.Tanh())

    def forward(self, z, c):
        assert c is None
        return self.net(z)


def moments():
    return lt.MomentMatching(lambda x: [x.flatten(1)], cache=False)


def test_latent_shape_and_generate_drive_every_forward_and_the_ticket_records_them():
    gen = lt.wrap(TakesZC(), lt.TicketConfig(density=0.3))
    search = lt.TicketSearch(gen, moments(), latent_shape=(6, 1, 1), generate=lambda G, z: G(z, None),
                             batch_size=8, n_samples=4, progress=False)
    ticket = search.run(REAL, steps=3)
    assert len(search.result.losses) == 3 and search.latents(0, 8).shape == (8, 6, 1, 1)
    assert ticket.call.latent_shape == (6, 1, 1)
    assert search.sample().shape == (4, 1, 8, 8)


def test_latent_dim_is_shorthand_and_the_flat_stream_is_unchanged():
    gen = lt.wrap(nn.Sequential(nn.Linear(5, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8))))
    a = lt.TicketSearch(gen, moments(), latent_dim=5, progress=False)
    b = lt.TicketSearch(gen, moments(), latent_shape=(5,), progress=False)
    assert torch.equal(a.latents(3, 16), b.latents(3, 16))
    with pytest.raises(ValueError, match="disagree"):
        lt.TicketSearch(gen, moments(), latent_dim=5, latent_shape=(4,), progress=False)


def test_the_first_call_failing_names_the_call_and_the_fix():
    gen = lt.wrap(TakesZC(), lt.TicketConfig(density=0.3))
    search = lt.TicketSearch(gen, moments(), latent_shape=(6,), batch_size=8, progress=False)
    with pytest.raises(ValueError, match=r"(?s)TakesZC\(z\) with z of shape \(2, 6\).*generate=lambda G, z: G\(z, None\)"):
        search.run(REAL, steps=1)
    search = lt.TicketSearch(gen, moments(), latent_shape=(6, 1, 1), generate=lambda G, z: (G(z, None), 0),
                             progress=False)
    with pytest.raises(ValueError, match=r"returned tuple, not images"):
        search.run(REAL, steps=1)


class Holder(nn.Module):
    """A user's wrapper that holds the wrapped generator and reshapes z itself."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, z):
        return self.inner(z.view(z.shape[0], -1, 1, 1), None)


def test_a_users_wrapper_module_holding_the_wrapped_generator(tmp_path):
    inner = lt.wrap(TakesZC(), lt.TicketConfig(density=0.3, seed=1))
    ticket = lt.TicketSearch(Holder(inner), moments(), latent_dim=6, batch_size=8, progress=False).run(REAL, steps=2)
    assert ticket.spec["class"].endswith("TakesZC")  # the wrapped generator's ticket, not the wrapper's
    ticket.save_pretrained(tmp_path / "t")
    rebuilt = lt.Ticket.from_pretrained(tmp_path / "t").apply(TakesZC()).eval()
    z = torch.randn(3, 6, 1, 1)
    assert torch.equal(rebuilt(z, None), inner.eval()(z, None))


def test_a_non_finite_gradient_stops_the_step_that_would_have_made_nan_scores():
    class Sqrt(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 64)

        def forward(self, z):
            return torch.sqrt(self.fc(z) * 0).view(-1, 1, 8, 8)  # finite output, infinite gradient at 0

    gen = lt.wrap(Sqrt())
    before = [s.detach().clone() for s in lt.score_parameters(gen)]
    with pytest.raises(lt.NonFiniteLossError, match="gradient of the scores is NaN or infinite at step 0"):
        lt.TicketSearch(gen, moments(), latent_dim=4, batch_size=4, progress=False).run(REAL, steps=2)
    assert all(torch.equal(a, b) for a, b in zip(before, lt.score_parameters(gen)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_absent_device_is_an_error_not_a_cpu_run():
    gen = lt.wrap(TakesZC())
    search = lt.TicketSearch(gen, moments(), latent_shape=(6, 1, 1), generate=lambda G, z: G(z, None),
                             device="cuda", progress=False)
    with pytest.raises(ValueError, match=r"device='cuda' was asked for, but torch sees 0 CUDA device"):
        search.run(REAL, steps=1)


class Mapping(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)


class StyleLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.mapping, self.synthesis = Mapping(), nn.Conv2d(4, 1, 3)


class UNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.time_embed, self.conv = nn.Linear(1, 4), nn.Conv2d(1, 1, 3)

    def forward(self, sample, timestep):
        return self.conv(sample)


@pytest.mark.parametrize(
    "model, family, reason",
    [
        (StyleLike(), "stylegan", r"mapping \+ synthesis networks"),
        (UNetLike(), "unet", r"forward\(sample, timestep\) with a time embedding \(time_embed\)"),
        (TakesZC(), "dcgan", r"transposed-convolution stack \(2 of 2"),
        (nn.Sequential(nn.Linear(2, 2)), "torch", "no family recognised"),
    ],
    ids=["stylegan", "unet", "dcgan", "generic"],
)
def test_families_are_recognised_by_structure_and_wrap_says_how(model, family, reason, caplog):
    adapter, why = recognise(model)
    assert adapter.family == family
    assert re.search(reason, why), why
    with caplog.at_level(logging.INFO, logger="lt_plugins"):
        lt.wrap(model)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("lt.wrap:"))
    assert f"{family} family" in line and "tensors masked" in line and "weight scale" in line


def test_a_family_can_be_forced_and_its_defaults_then_apply(caplog):
    model = lt.wrap(nn.Sequential(nn.Linear(4, 4)), lt.TicketConfig(family="stylegan"))
    assert lt.masking.wrap_config(model).family == "stylegan"
    with caplog.at_level(logging.INFO, logger="lt_plugins"):
        search = lt.TicketSearch(model, moments(), latent_dim=4, progress=False)
    assert search.lr == 3e-4 and "lr 0.0003 for the scores, the stylegan family's default" in caplog.text
    with pytest.raises(ValueError, match="Unknown model family 'nope'"):
        lt.wrap(nn.Linear(2, 2), lt.TicketConfig(family="nope"))


def test_latent_call_draws_the_shapes_it_says():
    call = LatentCall((3, 1, 1))
    assert call.latents(2, torch.Generator().manual_seed(0)).shape == (2, 3, 1, 1)
    assert call.describe() == {"latent_shape": [3, 1, 1], "generate": None}
