"""Latents from a mixture of Gaussians (`LatentMixture`): its draws, the search, the ticket that records it,
resuming, evaluating and its errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import lt_plugins as lt
from lt_plugins.checkpoints import CheckpointError
from lt_plugins.generate import LatentCall, LatentMixture
from lt_plugins.models import DCGANGenerator

REAL = torch.rand(64, 1, 8, 8) * 2 - 1
PRIOR = lt.LatentMixture(components=5, separation=0.8, seed=3)


def moments():
    return lt.MomentMatching(lambda x: [x.flatten(1)], cache=False)


def small_dcgan():
    return lt.wrap(DCGANGenerator(nz=16, ngf=8, nc=1, image_size=8), lt.TicketConfig(density=0.3))


def test_draws_sit_around_their_components_with_unit_variance_and_repeat_from_the_seed():
    prior = LatentMixture(components=10, separation=0.8, seed=1)
    z = prior.sample(4000, (64,), torch.Generator().manual_seed(0))
    means = prior.means((64,))
    nearest = torch.cdist(z, 0.8 * means).argmin(1)
    assert nearest.unique().numel() == 10  # every component is drawn
    assert (torch.cdist(z, 0.8 * means).min(1).values ** 2 / 64).mean() == pytest.approx(0.36, rel=0.05)  # 1 - 0.8^2
    assert z.var(0).mean() == pytest.approx(1.0, abs=0.15)
    assert torch.equal(z, prior.sample(4000, (64,), torch.Generator().manual_seed(0)))
    assert not torch.equal(means, LatentMixture(10, 0.8, seed=2).means((64,)))
    # separation 0 is N(0, I) whatever the components
    plain = LatentMixture(10, 0.0).sample(4000, (64,), torch.Generator().manual_seed(0))
    assert plain.mean(0).abs().max() < 0.1


@pytest.mark.parametrize("kwargs, match", [
    ({"components": 0}, "components=0"), ({"components": True}, "components=True"),
    ({"separation": 1.0}, r"separation=1.0.*\[0, 1\)"), ({"separation": -0.1}, "separation=-0.1"),
    ({"seed": 1.5}, "seed=1.5"),
])
def test_bad_settings_name_the_setting_and_its_range(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LatentMixture(**kwargs)


def test_the_search_draws_from_the_prior_and_the_ticket_records_it_as_format_4(tmp_path):
    search = lt.TicketSearch(small_dcgan(), moments(), prior=PRIOR, batch_size=8, n_samples=4, progress=False)
    ticket = search.run(REAL, steps=2)
    expected = LatentCall((16,), prior=PRIOR).latents(8, lt.search.keyed_generator(0, "latent", "1"))
    assert torch.equal(search.latents(1, 8), expected)
    assert ticket.call.prior == PRIOR
    ticket.save_pretrained(tmp_path / "t")
    config = json.loads((tmp_path / "t" / "ticket_config.json").read_text())
    assert config["format_version"] == 4
    assert config["generator_call"]["prior"] == {"components": 5, "separation": 0.8, "seed": 3}
    loaded = lt.Ticket.from_pretrained(tmp_path / "t")
    assert loaded.call == ticket.call
    # the rebuilt ticket, sampled as it records, gives the searched network's images
    z = loaded.call.latents(6, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded.apply().eval()(z), search.generator.eval()(z))


def test_a_ticket_without_a_prior_stays_format_3(tmp_path):
    ticket = lt.TicketSearch(small_dcgan(), moments(), batch_size=8, progress=False).run(REAL, steps=1)
    ticket.save_pretrained(tmp_path / "t")
    config = json.loads((tmp_path / "t" / "ticket_config.json").read_text())
    assert config["format_version"] == 3 and "prior" not in config["generator_call"]
    assert lt.Ticket.from_pretrained(tmp_path / "t").call.prior is None


def test_a_recorded_prior_that_is_malformed_is_refused(tmp_path):
    ticket = lt.TicketSearch(small_dcgan(), moments(), prior=PRIOR, batch_size=8, progress=False).run(REAL, steps=1)
    path = ticket.save_pretrained(tmp_path / "t") / "ticket_config.json"
    config = json.loads(path.read_text())
    config["generator_call"]["prior"] = {"components": 5, "separation": 1.5, "seed": 3}
    path.write_text(json.dumps(config))
    with pytest.raises(lt.ticket.TicketError, match="generator_call.*separation=1.5"):
        lt.Ticket.from_pretrained(tmp_path / "t")


def test_evaluate_with_the_prior_measures_the_prior_s_images():
    gen = small_dcgan()
    net = lt.features.MNISTFeatureNet().eval()
    real = torch.rand(40, 1, 8, 8) * 2 - 1
    with_prior = lt.evaluate(gen, real, net, n=40, latent_dim=16, prior=PRIOR, cache=False)
    plain = lt.evaluate(gen, real, net, n=40, latent_dim=16, cache=False)
    again = lt.evaluate(gen, real, net, n=40, latent_dim=16, prior=PRIOR, cache=False)
    assert with_prior["fd"] == again["fd"] != plain["fd"]


def test_resuming_with_another_prior_is_refused_and_names_it(tmp_path):
    settings = dict(batch_size=8, progress=False, output_dir=tmp_path, checkpoint_every=1)
    lt.TicketSearch(small_dcgan(), moments(), prior=PRIOR, **settings).run(REAL, steps=2)
    other = lt.TicketSearch(small_dcgan(), moments(), prior=LatentMixture(6, 0.8, 3), **settings)
    with pytest.raises(CheckpointError, match="prior.components: checkpoint 5, this run 6"):
        other.run(REAL, steps=2, resume=True)


def test_a_prior_for_a_model_objective_is_an_error():
    class Denoise(lt.ModelObjective):
        def prepare(self, real, device):
            pass

        def describe(self):
            return {}

        def __call__(self, model, batch_size):
            return model(torch.zeros(1, 4)).sum()

        def sample(self, model, n, generator):
            return torch.zeros(n, 1, 8, 8)

    with pytest.raises(ValueError, match="feeds the model itself.*prior=None"):
        lt.TicketSearch(lt.wrap(nn.Linear(4, 4)), Denoise(), prior=PRIOR, progress=False)


def test_the_card_s_snippet_samples_with_the_recorded_prior(tmp_path):
    search = lt.TicketSearch(small_dcgan(), moments(), prior=PRIOR, batch_size=8, progress=False)
    folder = search.run(REAL, steps=1).save_pretrained(tmp_path / "t")
    card = (folder / "README.md").read_text()
    snippet = card.split("```python\n")[1].split("```")[0].replace("path/to/this/folder", str(folder))
    assert "a mixture of 5 Gaussians (separation 0.8, seed 3)" in snippet
    scope: dict = {}
    exec(snippet, scope)  # the card's own words, run as a reader would (the family rebuilds DCGANGenerator)
    z = PRIOR.sample(16, (16,), torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(scope["images"], search.generator.eval()(z))


def test_a_reader_of_format_3_refuses_a_prior_ticket_and_still_reads_one_without(tmp_path, monkeypatch):
    with_prior = lt.TicketSearch(small_dcgan(), moments(), prior=PRIOR, batch_size=8, progress=False).run(REAL, steps=1)
    without = lt.TicketSearch(small_dcgan(), moments(), batch_size=8, progress=False).run(REAL, steps=1)
    a, b = with_prior.save_pretrained(tmp_path / "a"), without.save_pretrained(tmp_path / "b")
    monkeypatch.setattr(lt.ticket.format, "FORMAT_VERSION", 3)  # the lt_plugins before priors
    with pytest.raises(lt.ticket.TicketError, match="format version 4.*pip install -U lt-plugins"):
        lt.Ticket.from_pretrained(a)
    assert lt.Ticket.from_pretrained(b).call.prior is None


def test_a_recorded_prior_missing_a_field_is_refused_not_filled_with_a_default(tmp_path):
    ticket = lt.TicketSearch(small_dcgan(), moments(), prior=PRIOR, batch_size=8, progress=False).run(REAL, steps=1)
    path = ticket.save_pretrained(tmp_path / "t") / "ticket_config.json"
    config = json.loads(path.read_text())
    del config["generator_call"]["prior"]["seed"]
    path.write_text(json.dumps(config))
    with pytest.raises(lt.ticket.TicketError, match=r"'prior'.*\['components', 'separation', 'seed'\]"):
        lt.Ticket.from_pretrained(tmp_path / "t")


# A UNet's starting noise: few-step DDIM is a map x_T -> image, and its moment term may draw x_T from a prior.

def small_unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8), norm_num_groups=4,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    return lt.wrap(unet, lt.TicketConfig(density=0.3))


class Recorded(lt.Objective):
    """Moment matching that keeps the last images it scored."""

    def __init__(self):
        self.inner = moments()

    def prepare(self, real, device):
        self.inner.prepare(real, device)

    def describe(self):
        return self.inner.describe()

    def __call__(self, images):
        self.images = images.detach()
        return self.inner(images)


def denoising(prior=PRIOR, **kwargs):
    from lt_plugins.objectives import DenoisingObjective

    return DenoisingObjective(moments=Recorded(), moment_steps=2, sample_steps=2, prior=prior, **kwargs)


def test_a_unet_s_moment_term_starts_from_the_prior_s_noise():
    def spread(prior):
        objective = denoising(prior)
        objective.prepare(REAL, torch.device("cpu"))
        objective(small_unet(), 16)
        return float(objective.moments.images.var(0).mean())

    # One component, almost all mean: every x_T is nearly the same, and the 2-step samples much alike (the
    # random UNet amplifies what is left of the noise, sd 0.14: a quarter of N(0, I)'s spread here, not ~0).
    assert spread(LatentMixture(components=1, separation=0.99)) < 0.5 * spread(None)


def test_a_unet_ticket_records_its_prior_and_samples_with_it(tmp_path):
    from lt_plugins.diffusion import DDIMGenerator, sample
    from lt_plugins.generate import ticket_generator

    search = lt.TicketSearch(small_unet(), denoising(), batch_size=8, n_samples=4, progress=False)
    folder = search.run(REAL, steps=1).save_pretrained(tmp_path / "t")
    config = json.loads((folder / "ticket_config.json").read_text())
    assert config["format_version"] == 4 and config["objective"]["prior"] == PRIOR.to_dict()
    loaded = lt.Ticket.from_pretrained(folder)
    sampler, noise = ticket_generator(loaded, loaded.apply().eval())
    assert noise.prior == PRIOR and noise.latent_shape == (1, 8, 8)
    z = noise.latents(6, torch.Generator().manual_seed(0))
    searched = DDIMGenerator(search.generator.eval(), search.objective.scheduler, steps=2)
    with torch.no_grad():
        assert torch.equal(sampler(z), searched(z))
    # the sample grids start from the prior too
    grid = search.objective.sample(search.generator, 6, generator=0)
    assert torch.equal(grid, sample(search.generator, 6, steps=2, generator=0, prior=PRIOR))
    assert not torch.equal(grid, sample(search.generator, 6, steps=2, generator=0))


def test_the_card_of_a_unet_ticket_samples_with_its_prior(tmp_path):
    from lt_plugins.diffusion import sample

    search = lt.TicketSearch(small_unet(), denoising(), batch_size=8, progress=False)
    folder = search.run(REAL, steps=1).save_pretrained(tmp_path / "t")
    snippet = (folder / "README.md").read_text().split("```python\n")[1].split("```")[0]
    assert "x_T: a mixture of 5 Gaussians (separation 0.8, seed 3)" in snippet
    scope: dict = {}
    exec(snippet.replace("path/to/this/folder", str(folder)), scope)
    assert torch.equal(scope["images"], sample(search.generator, 16, steps=2, generator=0, prior=PRIOR))


def test_a_unet_ticket_s_malformed_prior_is_refused(tmp_path):
    ticket = lt.TicketSearch(small_unet(), denoising(), batch_size=8, progress=False).run(REAL, steps=1)
    path = ticket.save_pretrained(tmp_path / "t") / "ticket_config.json"
    config = json.loads(path.read_text())
    config["objective"]["prior"]["components"] = 0
    path.write_text(json.dumps(config))
    with pytest.raises(lt.ticket.TicketError, match="'objective'.'prior'.*components=0"):
        lt.Ticket.from_pretrained(tmp_path / "t")


def test_resuming_a_unet_search_with_another_prior_is_refused(tmp_path):
    settings = dict(batch_size=8, progress=False, output_dir=tmp_path, checkpoint_every=1)
    lt.TicketSearch(small_unet(), denoising(), **settings).run(REAL, steps=2)
    other = lt.TicketSearch(small_unet(), denoising(LatentMixture(6, 0.8, 3)), **settings)
    with pytest.raises(CheckpointError, match="prior.components: checkpoint 5, this run 6"):
        other.run(REAL, steps=2, resume=True)


def test_a_unet_prior_needs_a_moment_term_and_must_be_a_mixture():
    from lt_plugins.objectives import DenoisingObjective

    with pytest.raises(ValueError, match="no moment term: give moments="):
        DenoisingObjective(prior=PRIOR)
    with pytest.raises(TypeError, match="prior must be an lt_plugins.generate.LatentMixture"):
        denoising(prior={"components": 5})
