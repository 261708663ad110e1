"""The search loop: steps, checkpoints, exact resume, NaN handling, dense baseline, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lt_plugins as lt
from lt_plugins.models import DCGANGenerator
from lt_plugins.objectives import MomentMatching
from lt_plugins.objectives.base import Objective
from lt_plugins.search import NonFiniteLossError

LATENT = 8


class PixelFeatures(nn.Module):
    """A fixed random conv feature net: cheap, deterministic, enough to drive the loss."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, stride=2)

    def forward(self, x):
        a = torch.relu(self.conv(x))
        return [a, a.mean((2, 3))]


def _real(n: int = 128) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _generator(seed: int = 0, **kw) -> nn.Module:
    return lt.wrap(DCGANGenerator(nz=LATENT, ngf=8, nc=1, image_size=16), lt.TicketConfig(density=0.3, seed=seed, **kw))


def _search(gen, tmp_path=None, **kw) -> lt.TicketSearch:
    return lt.TicketSearch(
        gen, MomentMatching(PixelFeatures(), cache=False), LATENT, batch_size=16, progress=False,
        device="cpu", output_dir=tmp_path, **kw,
    )


def _scores(gen) -> list[torch.Tensor]:
    return [s.detach().clone() for s in lt.score_parameters(gen)]


def test_search_lowers_the_loss_and_changes_only_scores():
    gen = _generator()
    frozen = {k: v.clone() for k, v in gen.state_dict().items() if "original" in k}
    search = _search(gen, lr=0.05)
    ticket = search.run(_real(), steps=40)
    losses = search.result.losses
    assert len(losses) == 40
    assert sum(losses[-5:]) < sum(losses[:5])
    assert all(torch.equal(v, gen.state_dict()[k]) for k, v in frozen.items())
    assert isinstance(ticket, lt.Ticket)
    assert ticket.density == pytest.approx(0.3, abs=0.01)


def test_checkpoints_and_sample_grids_are_written(tmp_path):
    _search(_generator(), tmp_path, checkpoint_every=2).run(_real(), steps=4)
    assert (tmp_path / "checkpoint.pt").exists()
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    assert (tmp_path / "samples.png").exists()
    assert not list(tmp_path.glob(".*.tmp"))


class Interrupt(Exception):
    pass


def test_resume_after_interrupt_equals_uninterrupted_run(tmp_path):
    straight = _generator()
    _search(straight, tmp_path / "a", checkpoint_every=3).run(_real(), steps=8)

    def stop_at_5(info):
        if info.step == 5:
            raise Interrupt

    interrupted = _generator()
    with pytest.raises(Interrupt):
        _search(interrupted, tmp_path / "b", checkpoint_every=3, callbacks=[stop_at_5]).run(_real(), steps=8)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 3

    resumed = _generator()  # a fresh process: new model, new objective, same settings
    search = _search(resumed, tmp_path / "b", checkpoint_every=3)
    search.run(_real(), steps=8, resume=True)
    assert len(search.result.losses) == 8
    for a, b in zip(_scores(straight), _scores(resumed)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_with_other_settings_is_refused(tmp_path):
    _search(_generator(), tmp_path, checkpoint_every=2).run(_real(), steps=2)
    with pytest.raises(ValueError, match="2 steps.*this one has 5 steps"):
        _search(_generator(), tmp_path).run(_real(), steps=5, resume=True)


class NaNAfter(Objective):
    """Moment matching that returns NaN from a given call on."""

    def __init__(self, bad_from: int) -> None:
        self.inner = MomentMatching(PixelFeatures(), cache=False)
        self.calls, self.bad_from = 0, bad_from

    def prepare(self, real, device):
        self.inner.prepare(real, device)

    def __call__(self, fake):
        self.calls += 1
        loss = self.inner(fake)
        return loss * float("nan") if self.calls > self.bad_from else loss

    def describe(self):
        return {"name": "nan-after"}


def test_nan_loss_is_reported_not_trained_on_and_checkpoint_kept(tmp_path):
    gen = _generator()
    search = lt.TicketSearch(gen, NaNAfter(bad_from=4), LATENT, batch_size=16, progress=False, device="cpu",
                             output_dir=tmp_path, checkpoint_every=2)
    seen = []
    search.callbacks.append(lambda info: seen.append(_scores(info.generator)))
    with pytest.raises(NonFiniteLossError, match=r"nan at step 4.*checkpoint\.pt"):
        search.run(_real(), steps=10)
    assert len(seen) == 4
    for a, b in zip(seen[-1], _scores(gen)):
        assert torch.equal(a, b)  # the NaN step changed nothing
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 4


def test_dense_search_trains_the_weights_with_the_same_loss_and_returns_the_module():
    gen = lt.unwrap(_generator())
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    search = lt.DenseSearch(gen, MomentMatching(PixelFeatures(), cache=False), LATENT, batch_size=16, progress=False,
                            device="cpu", lr=1e-3)
    trained = search.run(_real(), steps=5)
    assert trained is gen and isinstance(trained, nn.Module) and not isinstance(trained, lt.Ticket)
    assert not torch.equal(before["main.0.weight"], gen.state_dict()["main.0.weight"])
    assert len(search.result.losses) == 5


def test_ticket_search_returns_a_ticket_and_its_former_dense_flag_gives_a_dense_search():
    assert isinstance(_search(_generator()).run(_real(), steps=2), lt.Ticket)
    with pytest.warns(FutureWarning, match=r"dense=True\) is deprecated.*lt.DenseSearch"):
        search = _search(lt.unwrap(_generator()), dense=True)
    assert type(search) is lt.DenseSearch and isinstance(search.run(_real(), steps=1), nn.Module)
    with pytest.raises(ValueError, match="lt.DenseSearch"):
        _search(lt.unwrap(_generator()))
    with pytest.raises(ValueError, match="lt.TicketSearch"):
        lt.DenseSearch(_generator(), MomentMatching(PixelFeatures(), cache=False), LATENT)


class Recorder(lt.ModelObjective):
    """A model objective that records what the search hands it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def prepare(self, real, device):
        self.real = real

    def __call__(self, model, batch_size):
        self.seen.append((type(model).__name__, batch_size))
        return lt.score_parameters(model)[0].sum() * 0 + 1.0

    def sample(self, model, n, generator=0):
        return torch.zeros(n, 1, 16, 16)

    def describe(self):
        return {"name": "recorder"}


def test_the_search_dispatches_on_the_objective_type():
    objective = Recorder()
    ticket = lt.TicketSearch(_generator(), objective, batch_size=4, progress=False, device="cpu",
                             n_samples=3).run(_real(), steps=2)
    assert objective.seen == [("DCGANGenerator", 4)] * 2  # called with the model, not with images
    assert ticket.objective == {"name": "recorder"}
    seen = []

    class Images(lt.ImageObjective):
        def prepare(self, real, device):
            pass

        def __call__(self, fake):
            seen.append(tuple(fake.shape))
            return fake.mean()

        def describe(self):
            return {"name": "images"}

    lt.TicketSearch(_generator(), Images(), LATENT, batch_size=4, progress=False, device="cpu").run(_real(), steps=1)
    assert seen == [(4, 1, 16, 16)]


def test_an_objective_with_the_old_takes_model_flag_is_told_to_subclass_model_objective():
    class Old(NaNAfter):
        takes_model = True

    with pytest.raises(TypeError, match="lt.ModelObjective"):
        lt.TicketSearch(_generator(), Old(1), LATENT)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"batch_size": -1}, "batch_size"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"dense": True}, "dense=True"),
        ({"warmup": 1.0}, "warmup=1.0"),
        ({"warmup": -0.1}, "warmup=-0.1"),
    ],
)
def test_bad_search_settings_are_clear_errors(kwargs, message):
    args = {"latent_dim": LATENT, **kwargs}
    with pytest.raises(ValueError, match=message):
        lt.TicketSearch(_generator(), MomentMatching(PixelFeatures(), cache=False), **args)


def test_unwrapped_generator_and_bad_objective_are_refused():
    with pytest.raises(ValueError, match=r"lt.wrap"):
        lt.TicketSearch(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=16), MomentMatching(PixelFeatures()), LATENT)
    with pytest.raises(TypeError, match="Objective"):
        lt.TicketSearch(_generator(), lambda x: x.mean(), LATENT)


def test_run_errors_empty_data_shape_mismatch_bad_steps(tmp_path):
    search = _search(_generator())
    with pytest.raises(ValueError, match="empty"):
        search.run(torch.empty(0, 1, 16, 16), steps=2)
    with pytest.raises(ValueError, match=r"makes images of shape \(1, 16, 16\).*\(1, 32, 32\)"):
        search.run(torch.full((8, 1, 32, 32), -0.5), steps=2)
    with pytest.raises(ValueError, match="steps"):
        search.run(_real(), steps=0)
    with pytest.raises(ValueError, match="output_dir"):
        search.run(_real(), steps=2, resume=True)


def test_latents_of_two_processes_tile_the_single_process_batch():
    search = _search(_generator())
    full = search.latents(7, 32)
    halves = torch.cat([search.latents(7, 16, rank, 2) for rank in (0, 1)])
    assert torch.equal(full, halves)
    assert not torch.equal(search.latents(7, 32), search.latents(8, 32))


def test_the_lr_ramps_up_over_the_warmup_then_decays():
    seen = []  # a callback sees the lr of the step to come
    search = lt.TicketSearch(_generator(), MomentMatching(PixelFeatures(), cache=False), LATENT, batch_size=4,
                             lr=0.1, warmup=0.5, progress=False, device="cpu",
                             callbacks=[lambda info: seen.append(info.lr)])
    search.run(_real(), steps=8)
    # 4 of the 8 steps ramp up (lr/4, 2lr/4, ...), times a cosine that reaches 0 after the last step
    assert seen[0] < seen[1] < seen[2] > seen[3] > seen[4] > seen[5] > seen[6] > seen[7] == pytest.approx(0.0)
    assert seen[0] == pytest.approx(0.1 * 2 / 4 * 0.5 * (1 + math.cos(math.pi / 8)))
