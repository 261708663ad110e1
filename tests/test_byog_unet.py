"""Your own diffusion UNet: a community-style ``unet(x, t)`` with no diffusers config, searched,
sampled and checked before the first step (fixture: `byog_models.TinyUNet`)."""

from __future__ import annotations

import pytest
import torch
from byog_models import TinyUNet, cosine_beta_schedule, make_tutorial_dcgan
from torch import nn

import lt_plugins as lt
from lt_plugins.data import load_mnist
from lt_plugins.diffusion import DDIMGenerator, sample
from lt_plugins.objectives import DenoisingObjective

CPU = torch.device("cpu")
SHAPE = (1, 32, 32)
# The UNet family's settings, given explicitly: GroupNorm re-normalises every block (no 1/sqrt(density)
# boost) and the score learning rate of UNets.
CONFIG = lt.TicketConfig(density=0.3, seed=0, scale_fan=False)
LR = 3e-3


def _wrapped() -> TinyUNet:
    torch.manual_seed(0)  # biases and norms come from the constructor (a ticket stores them as values)
    return lt.wrap(TinyUNet(), CONFIG)


def _objective(**kw) -> DenoisingObjective:
    return DenoisingObjective(cosine_beta_schedule(1000), **{"sample_shape": SHAPE, "sample_steps": 2, **kw})


def _search(unet: nn.Module, objective: DenoisingObjective, **kw) -> lt.TicketSearch:
    return lt.TicketSearch(unet, objective, batch_size=8, n_samples=4, lr=LR, progress=False, device="cpu", **kw)


def _held_out_loss(unet: nn.Module, real: torch.Tensor) -> float:
    objective = DenoisingObjective(cosine_beta_schedule(1000), seed=123)
    objective.prepare(real, CPU)
    with torch.no_grad():
        return float(objective(unet, 128))


def test_a_wrapped_community_unet_is_searched_to_a_ticket_with_a_sample_grid(tmp_path):
    real = load_mnist(limit=128)
    unet = _wrapped()
    before = _held_out_loss(unet, real)
    frozen = {k: v.clone() for k, v in unet.state_dict().items() if "original" in k}
    search = _search(unet, _objective(), output_dir=tmp_path / "run", checkpoint_every=6)
    ticket = search.run(real, steps=12)

    assert len(search.result.losses) == 12
    assert _held_out_loss(unet, real) < 0.7 * before  # 1.9 -> about 0.9 here
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in frozen.items())
    grid = search.sample()
    assert grid.shape == (4, *SHAPE) and grid.abs().max() <= 1 and grid.std() > 0.05
    assert (tmp_path / "run" / "samples.png").exists() and ticket.samples is not None
    assert ticket.objective["name"] == "denoising" and ticket.objective["sample_shape"] == list(SHAPE)
    assert ticket.objective["scheduler"]["beta_schedule"] == "trained_betas"

    ticket.save_pretrained(tmp_path / "ticket")
    torch.manual_seed(123)  # another RNG state: the rebuild must not depend on it
    rebuilt = lt.Ticket.from_pretrained(tmp_path / "ticket").apply(TinyUNet())
    objective = _objective()
    assert torch.equal(objective.sample(rebuilt, 4, 5), objective.sample(unet, 4, 5))


def test_without_a_config_the_sample_shape_comes_from_the_data_or_is_asked_for():
    unet = _wrapped()
    objective = DenoisingObjective(sample_steps=1)
    with pytest.raises(ValueError, match=r"no diffusers config.*sample_shape=\(channels, height, width\)"):
        objective.sample(unet, 2)  # nothing says what to sample yet
    with pytest.raises(ValueError, match="sample_shape"):
        DDIMGenerator(unet)
    objective.prepare(load_mnist(limit=8), CPU)
    assert objective.check_model(unet) == SHAPE
    assert objective.sample(unet, 2).shape == (2, *SHAPE)


def test_a_sample_shape_taken_from_the_data_is_recorded_and_the_ticket_samples_without_it(tmp_path):
    from lt_plugins.generate import ticket_generator

    real = load_mnist(limit=16)
    search = _search(_wrapped(), _objective(sample_shape=None), output_dir=tmp_path / "run", checkpoint_every=1)
    search.run(real, steps=2)
    unet = _wrapped()
    objective = _objective(sample_shape=None)
    # The resume's record, shape included, is the checkpoint's: it loads the searched scores.
    ticket = _search(unet, objective, output_dir=tmp_path / "run").run(real, steps=2, resume=True)
    assert ticket.objective["sample_shape"] == list(SHAPE)
    ticket.save_pretrained(tmp_path / "ticket")
    loaded = lt.Ticket.from_pretrained(tmp_path / "ticket")
    generator, noise = ticket_generator(loaded, loaded.apply(TinyUNet()))
    z = noise.latents(3, torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(generator(z), DDIMGenerator(unet, objective.scheduler, 2, sample_shape=SHAPE)(z))


class Calls:
    def __init__(self) -> None:
        self.steps = 0

    def __call__(self, info) -> None:
        self.steps += 1


def test_a_sample_shape_that_is_not_the_datas_fails_before_the_first_step():
    calls = Calls()
    with pytest.raises(ValueError, match=r"sample_shape=\(1, 16, 16\) but the real images are \(1, 32, 32\)"):
        _search(_wrapped(), _objective(sample_shape=(1, 16, 16)), callbacks=[calls]).run(load_mnist(limit=16), steps=2)
    assert calls.steps == 0


def test_data_of_a_size_the_unet_cannot_take_fails_before_the_first_step_naming_the_call():
    # 30 -> 15 -> 7 on the way down, 7 -> 14 on the way up: the skip connection of size 15 does not fit.
    calls = Calls()
    real = torch.rand(16, 1, 30, 30) * 2 - 1
    with pytest.raises(TypeError, match=r"unet\(x_t, t\) with x_t of shape \(2, 1, 30, 30\).*forward\(x, t\)") as err:
        _search(_wrapped(), _objective(sample_shape=None), callbacks=[calls]).run(real, steps=2)
    assert calls.steps == 0 and "Sizes of tensors must match" in str(err.value)


def test_a_model_that_is_not_called_as_unet_x_t_is_refused_with_the_fix():
    dcgan = lt.wrap(make_tutorial_dcgan(nz=1, ngf=8, nc=1, image_size=32), lt.TicketConfig(density=0.3))
    objective = _objective()
    objective.prepare(load_mnist(limit=8), CPU)
    with pytest.raises(TypeError, match=r"could not be called as unet\(x_t, t\).*takes 2 positional arguments"):
        objective(dcgan, 4)

    class LearnedVariance(nn.Module):  # predicts noise and variance: 2C channels
        def __init__(self) -> None:
            super().__init__()
            self.unet = TinyUNet()
            self.head = nn.Conv2d(1, 2, 1)

        def forward(self, x, t):
            return self.head(self.unet(x, t))

    with pytest.raises(ValueError, match=r"returned \(2, 2, 32, 32\) for x_t of shape \(2, 1, 32, 32\)"):
        objective.check_model(LearnedVariance())


def test_a_unet_searched_with_a_latent_objective_is_pointed_to_the_denoising_loss():
    from diffusers import UNet2DModel

    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=4,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    for model, family in ((unet, "diffusers"), (TinyUNet(), "unet")):
        with pytest.raises(ValueError, match=rf"{type(model).__name__} is a denoiser \(the {family} family, "
                                             r"forward\(x, t\)\).*TicketSearch\(unet, lt.DenoisingObjective\(\)"):
            lt.TicketSearch(lt.wrap(model, CONFIG), lt.MomentMatching(nn.Flatten()), progress=False)


def test_ddim_generator_and_sample_run_a_config_less_unet_with_t_of_shape_n():
    unet = _wrapped()
    scheduler = _objective().scheduler
    gen = DDIMGenerator(unet, scheduler, steps=2, sample_shape=SHAPE)
    noise = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(4))
    images = gen(noise.flatten(1))  # TinyUNet's time embedding fails on a 0-d t
    assert images.shape == (3, *SHAPE) and gen.latent_dim == 1024 and gen.image_shape == SHAPE
    images.square().mean().backward()
    assert all(s.grad is not None for s in lt.score_parameters(unet))
    with torch.no_grad():
        assert torch.equal(gen(noise), sample(unet, 3, steps=2, generator=4, scheduler=scheduler, sample_shape=SHAPE))
