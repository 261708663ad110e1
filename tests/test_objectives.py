"""Moment matching and MMD: zero for matching moments, growing with a shift, cached real moments."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import lt_plugins.objectives.moments as moments_module
from lt_plugins.objectives import MMD, MomentMatching

CPU = torch.device("cpu")


def _extractor(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)

    class TwoMaps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4 * 6 * 6, 8)

        def forward(self, x):
            a = torch.relu(self.conv(x))
            return [a, self.fc(a.flatten(1))]

    return TwoMaps()


def _images(n: int = 256, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)).tanh()


@pytest.mark.parametrize("per_channel", [False, True])
def test_loss_is_zero_for_identical_moments_and_grows_with_shift(per_channel):
    real = _images()
    objective = MomentMatching(_extractor(), ema_decay=0.0, per_channel=per_channel, cache=False)
    objective.prepare(real, CPU)
    losses = [float(objective(real + shift)) for shift in (0.0, 0.1, 0.5, 1.0)]
    assert losses[0] < 1e-10
    assert losses == sorted(losses) and losses[1] > 1e-4


def test_moving_average_smooths_fake_moments_and_round_trips():
    real = _images()
    objective = MomentMatching(_extractor(), ema_decay=0.9, cache=False)
    objective.prepare(real, CPU)
    objective(real[:64] + 1.0)
    state = objective.state_dict()
    smoothed = float(objective(real[64:128]))
    plain = MomentMatching(_extractor(), ema_decay=0.0, cache=False)
    plain.prepare(real, CPU)
    assert smoothed > 10 * float(plain(real[64:128]))  # the earlier shifted batch still weighs in
    restored = MomentMatching(_extractor(), ema_decay=0.9, cache=False)
    restored.prepare(real, CPU)
    restored.load_state_dict(state)
    assert float(restored(real[64:128])) == pytest.approx(smoothed, rel=1e-6)


def test_loss_gradient_reaches_the_generated_images():
    objective = MomentMatching(_extractor(), ema_decay=0.5, cache=False)
    objective.prepare(_images(), CPU)
    fake = (_images(64, seed=1) + 0.5).requires_grad_()
    objective(fake).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in objective.features.parameters())


def test_real_moments_are_cached_and_invalidated(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_PLUGINS_CACHE", str(tmp_path))
    calls = []
    original = moments_module.dataset_moments

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(moments_module, "dataset_moments", counting)
    real = _images()
    first = MomentMatching(_extractor())
    first.prepare(real, CPU)
    second = MomentMatching(_extractor())
    second.prepare(real, CPU)
    assert len(calls) == 1, "identical extractor and data must reuse the cache"
    for (m1, v1), (m2, v2) in zip(first.real, second.real):
        assert torch.equal(m1, m2) and torch.equal(v1, v2)

    changed = _extractor()
    with torch.no_grad():
        changed.fc.bias[0] += 1e-3
    MomentMatching(changed).prepare(real, CPU)
    assert len(calls) == 2, "a changed extractor weight must invalidate the cache"
    MomentMatching(_extractor()).prepare(_images(seed=5), CPU)
    assert len(calls) == 3, "changed data must invalidate the cache"
    MomentMatching(_extractor(), per_channel=True).prepare(real, CPU)
    assert len(calls) == 4, "per-channel moments are other moments"
    assert len(list((tmp_path / "moments").glob("*.safetensors"))) == 4


def test_a_damaged_moments_cache_file_is_recomputed_with_a_warning_and_rewritten(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_PLUGINS_CACHE", str(tmp_path))
    real = _images()
    first = MomentMatching(_extractor())
    first.prepare(real, CPU)
    (path,) = (tmp_path / "moments").glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:40])  # a write cut short
    again = MomentMatching(_extractor())
    with pytest.warns(UserWarning, match="unreadable cache file"):
        again.prepare(real, CPU)
    assert all(torch.equal(m1, m2) and torch.equal(v1, v2) for (m1, v1), (m2, v2) in zip(first.real, again.real))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten: it reads again without a warning
        MomentMatching(_extractor()).prepare(real, CPU)


def test_empty_real_data_and_unprepared_use_are_clear_errors():
    objective = MomentMatching(_extractor(), cache=False)
    with pytest.raises(RuntimeError, match="prepare"):
        objective(_images(4))
    with pytest.raises(ValueError, match="empty"):
        objective.prepare(torch.empty(0, 1, 8, 8), CPU)
    with pytest.raises(ValueError, match="ema_decay"):
        MomentMatching(_extractor(), ema_decay=1.0)


def test_mmd_is_small_for_same_distribution_and_grows_with_shift():
    objective = MMD(_extractor(), seed=0)
    objective.prepare(_images(1024), CPU)
    same = float(objective(_images(128, seed=3)))
    shifted = [float(objective(_images(128, seed=3) + s)) for s in (0.3, 1.0)]
    assert abs(same) < shifted[0] < shifted[1]


def test_mmd_sampler_state_round_trips():
    a = MMD(_extractor(), seed=1)
    a.prepare(_images(), CPU)
    a(_images(16))
    state = a.state_dict()
    b = MMD(_extractor(), seed=1)
    b.prepare(_images(), CPU)
    b.load_state_dict(state)
    fake = _images(16, seed=9)
    assert float(a(fake)) == float(b(fake))


def test_layer_normalisation_weighs_every_map_the_same_whatever_its_scale():
    real, fake = _images(), _images(seed=3) * 0.5

    def loss(normalise, gain):
        net = _extractor()
        scaled = lambda x: [net(x)[0] * gain, net(x)[1]]  # noqa: E731  (one map 100x larger)
        objective = MomentMatching(scaled, ema_decay=0.0, cache=False, normalise=normalise)
        objective.prepare(real, CPU)
        return float(objective(fake))

    assert loss("layer", 100.0) == pytest.approx(loss("layer", 1.0), rel=1e-4)
    assert loss("none", 100.0) > 1e3 * loss("none", 1.0)  # raw moments: the scaled map dominates
    objective = MomentMatching(_extractor(), cache=False, normalise="layer")
    assert objective.describe()["normalise"] == "layer"
    with pytest.raises(ValueError, match="normalise"):
        MomentMatching(_extractor(), normalise="pixels")
