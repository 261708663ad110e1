"""Diffusion UNets: the denoising objective, ticket search on a wrapped UNet, seeded DDIM sampling."""

from __future__ import annotations

import pytest
import torch
from byog_models import cosine_beta_schedule
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.models.unets.unet_2d import UNet2DOutput
from torch import nn

import lt_plugins as lt
from lt_plugins.data import load_mnist
from lt_plugins.diffusion import DDIMGenerator, ddim_scheduler, pipeline, sample
from lt_plugins.objectives import DenoisingObjective, MomentMatching

CPU = torch.device("cpu")


def _unet() -> UNet2DModel:
    # Biases come from the model's own init, not the ticket seed (a ticket stores them as values).
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=16, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )


def _wrapped(density: float = 0.3) -> UNet2DModel:
    return lt.wrap(_unet(), lt.TicketConfig(density=density, seed=0))


def _real(n: int = 64) -> torch.Tensor:
    return load_mnist(image_size=16, limit=n)


def _prepared(objective: DenoisingObjective, real: torch.Tensor | None = None) -> DenoisingObjective:
    objective.prepare(_real() if real is None else real, CPU)
    return objective


class Oracle(nn.Module):
    """Knows the one clean image of the data set, so it predicts the scheduler's target exactly."""

    def __init__(self, x0: torch.Tensor, scheduler: DDPMScheduler) -> None:
        super().__init__()
        self.x0, self.scheduler = x0, scheduler
        self.anchor = nn.Parameter(torch.zeros(()))  # something to call .parameters() on

    def forward(self, noisy: torch.Tensor, t: torch.Tensor) -> UNet2DOutput:
        abar = self.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        eps = (noisy.double() - abar.sqrt() * self.x0.double()) / (1 - abar).sqrt()
        kind = self.scheduler.config.prediction_type
        target = {"epsilon": eps, "sample": self.x0.double().expand_as(eps),
                  "v_prediction": abar.sqrt() * eps - (1 - abar).sqrt() * self.x0.double()}[kind]
        return UNet2DOutput(sample=target.float())


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_a_unet_that_predicts_the_target_exactly_has_zero_loss(prediction_type):
    scheduler = DDPMScheduler(prediction_type=prediction_type)
    x0 = _real(1)
    objective = _prepared(DenoisingObjective(scheduler), x0.expand(32, -1, -1, -1).clone())
    assert float(objective(Oracle(x0, scheduler), 64)) < 1e-6


def test_predicting_zero_noise_costs_the_noise_variance_and_a_random_unet_more():
    class Zero(nn.Module):
        def forward(self, x, t):
            return torch.zeros_like(x)  # a plain tensor output works as well as diffusers' .sample

    loss_zero = float(_prepared(DenoisingObjective(seed=3))(Zero(), 256))
    assert loss_zero == pytest.approx(1.0, abs=0.05)  # E[eps^2] = 1
    with torch.no_grad():
        assert float(_prepared(DenoisingObjective(seed=3))(_wrapped(), 256)) > loss_zero


def test_only_scores_get_gradients_and_every_masked_tensor_gets_one():
    unet = _wrapped()
    _prepared(DenoisingObjective())(unet, 8).backward()
    scores = {id(s) for s in lt.score_parameters(unet)}
    for name, param in unet.named_parameters():
        if id(param) in scores:
            assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient reaches the scores of {name}"
        else:
            assert param.grad is None, f"frozen {name} got a gradient"


def test_moment_term_is_added_and_its_gradient_flows_through_the_sampler():
    def grads(objective):
        unet = _wrapped()
        loss = _prepared(objective)(unet, 8)
        loss.backward()
        return float(loss.detach()), [s.grad.clone() for s in lt.score_parameters(unet)]

    plain_loss, plain = grads(DenoisingObjective(seed=1))
    moments = MomentMatching(lambda x: [x.flatten(1)], cache=False, ema_decay=0)
    both_loss, both = grads(DenoisingObjective(seed=1, moments=moments, moment_weight=1.0, moment_steps=2))
    assert both_loss > plain_loss
    assert any(not torch.allclose(a, b) for a, b in zip(plain, both))


def test_search_on_a_wrapped_unet_lowers_the_loss_on_a_fixed_batch():
    real = _real(256)

    def held_out_loss(unet):
        with torch.no_grad():
            return float(_prepared(DenoisingObjective(seed=123), real)(unet, 256))

    unet = _wrapped()
    before = held_out_loss(unet)
    frozen = {k: v.clone() for k, v in unet.state_dict().items() if "original" in k}
    search = lt.TicketSearch(unet, DenoisingObjective(), batch_size=32, progress=False, device="cpu", n_samples=4)
    ticket = search.run(real, steps=30)
    assert held_out_loss(unet) < 0.9 * before
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in frozen.items())
    assert ticket.objective["name"] == "denoising" and ticket.samples is not None


def test_resumed_unet_search_equals_the_uninterrupted_one(tmp_path):
    def search(unet, folder, **kw):
        return lt.TicketSearch(unet, DenoisingObjective(), batch_size=8, progress=False, device="cpu",
                               n_samples=2, output_dir=folder, checkpoint_every=2, **kw)

    straight = _wrapped()
    search(straight, tmp_path / "a").run(_real(), steps=4)

    def stop(info):
        if info.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(_wrapped(), tmp_path / "b", callbacks=[stop]).run(_real(), steps=4)
    resumed = _wrapped()
    search(resumed, tmp_path / "b").run(_real(), steps=4, resume=True)
    for a, b in zip(lt.score_parameters(straight), lt.score_parameters(resumed)):
        assert torch.equal(a, b)


def test_sampling_is_seeded_and_the_pipeline_equals_the_differentiable_loop():
    unet = _wrapped()
    first = sample(unet, 3, steps=3, generator=0)
    assert torch.equal(first, sample(unet, 3, steps=3, generator=0))
    assert not torch.equal(first, sample(unet, 3, steps=3, generator=1))
    noise = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        looped = DDIMGenerator(unet, steps=3)(noise.flatten(1))
    assert torch.equal(looped, first)  # one sampling loop
    assert first.abs().max() <= 1


@pytest.mark.parametrize("schedule", ["default", "trained_betas"])
def test_sample_gives_the_images_of_diffusers_ddim_pipeline(schedule):
    scheduler = None if schedule == "default" else DDPMScheduler(trained_betas=cosine_beta_schedule(1000).tolist())
    unet = _wrapped()
    ours = sample(unet, 3, steps=3, generator=0, scheduler=scheduler)
    pipe = pipeline(unet, scheduler)
    theirs = pipe(batch_size=3, generator=torch.Generator().manual_seed(0), num_inference_steps=3, output_type="pt").images
    # The pipeline returns (x / 2 + 0.5).clamp(0, 1): equal up to that rescaling's rounding.
    torch.testing.assert_close(ours, theirs * 2 - 1, rtol=0, atol=2e-7)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_a_ticket_is_sampled_with_the_prediction_type_it_was_searched_with(prediction_type, tmp_path):
    from lt_plugins.generate import ticket_generator

    objective = DenoisingObjective(DDPMScheduler(prediction_type=prediction_type), sample_steps=2)
    search = lt.TicketSearch(_wrapped(), objective, batch_size=8, n_samples=2, progress=False)
    loaded = lt.Ticket.from_pretrained(search.run(_real(), steps=1).save_pretrained(tmp_path / "t"))
    sampler, _ = ticket_generator(loaded, loaded.apply().eval())
    assert sampler.scheduler.config.prediction_type == prediction_type
    with torch.no_grad():  # the images eval and sample measure are the searched network's own
        assert torch.equal(sampler(torch.randn(2, 256, generator=torch.Generator().manual_seed(0))),
                           objective.sample(search.generator, 2, generator=0))


def test_a_noise_schedule_of_your_own_as_betas_or_trained_betas():
    betas = cosine_beta_schedule(1000)
    as_betas = DenoisingObjective(betas, seed=5)
    as_scheduler = DenoisingObjective(DDPMScheduler(num_train_timesteps=1000, trained_betas=betas.tolist()), seed=5)
    torch.testing.assert_close(as_betas.scheduler.alphas_cumprod, torch.cumprod(1 - betas, 0).float())
    unet = _wrapped()
    with torch.no_grad():
        assert float(_prepared(as_betas)(unet, 16)) == float(_prepared(as_scheduler)(unet, 16))
    assert torch.equal(ddim_scheduler(as_betas.scheduler).alphas_cumprod, as_betas.scheduler.alphas_cumprod)
    schedule = as_betas.describe()["scheduler"]
    assert schedule["beta_schedule"] == "trained_betas" and schedule["beta_end"] == pytest.approx(0.999)
    with pytest.raises(ValueError, match="one beta per training timestep"):
        DenoisingObjective(torch.full((10, 2), 0.1))
    with pytest.raises(ValueError, match=r"each in \(0, 1\)"):
        DenoisingObjective(torch.linspace(0.1, 1.0, 10))


def test_sample_shape_of_a_diffusers_unet_must_be_its_configs():
    objective = _prepared(DenoisingObjective(sample_shape=(1, 16, 16)))
    assert objective.check_model(_wrapped()) == (1, 16, 16)
    with pytest.raises(ValueError, match=r"sample_shape=\(1, 8, 8\) disagrees with the UNet's config.*\(1, 16, 16\)"):
        DenoisingObjective(sample_shape=(1, 8, 8)).sample(_wrapped(), 2)
    with pytest.raises(ValueError, match="three positive integers"):
        DenoisingObjective(sample_shape=(16, 16))


def test_search_sample_grids_of_a_unet_are_the_same_every_time():
    unet = _wrapped()
    search = lt.TicketSearch(unet, DenoisingObjective(sample_steps=2), n_samples=2, progress=False)
    assert torch.equal(search.sample(), search.sample())


def test_clear_errors():
    objective = DenoisingObjective()
    with pytest.raises(RuntimeError, match="prepare"):
        objective(_wrapped(), 4)
    with pytest.raises(ValueError, match=r"makes images of shape \(1, 16, 16\).*\(1, 32, 32\)"):
        _prepared(objective, load_mnist(limit=8))(_wrapped(), 4)
    with pytest.raises(ValueError, match="prediction_type"):
        DenoisingObjective(DDPMScheduler(prediction_type="nonsense"))
    with pytest.raises(ValueError, match="moment_steps"):
        DenoisingObjective(moment_steps=0)
    with pytest.raises(ValueError, match="is a denoiser.*DenoisingObjective"):  # not "pass latent_dim"
        lt.TicketSearch(_wrapped(), MomentMatching(lambda x: [x.flatten(1)], cache=False))
