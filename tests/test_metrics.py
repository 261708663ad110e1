"""Fréchet distance, precision/recall/density/coverage and `evaluate`, against closed forms."""

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial
import torch
from torch import nn

from lt_plugins import metrics
from lt_plugins.data import load_mnist
from lt_plugins.features import MNISTFeatureNet
from lt_plugins.metrics import evaluate, frechet_distance, frechet_distance_from_stats, prdc


def gaussian(n, mean, cov, seed):
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(mean, cov, size=n)


def random_spd(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def scipy_fd(mu1, s1, mu2, s2):
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root)


def test_fd_of_a_set_with_itself_is_zero():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    few = x[:5]  # fewer samples than dimensions: singular covariance, still exact
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-9)


def test_fd_of_a_mean_shift_is_the_squared_shift():
    x = gaussian(400, np.zeros(8), random_spd(8, 0), seed=1)
    shifts = [0.5, 1.0, 2.0]
    distances = [frechet_distance(x, x + s) for s in shifts]
    assert distances == pytest.approx([8 * s**2 for s in shifts], rel=1e-9)
    assert distances == sorted(distances)


def test_fd_from_stats_matches_closed_forms():
    a, b, m = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 1.0]), np.array([1.0, -2.0, 0.5])
    diagonal = np.sum(m**2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance_from_stats(np.zeros(3), np.diag(a), m, np.diag(b)) == pytest.approx(diagonal, rel=1e-12)
    s1, s2, mu = random_spd(6, 1), random_spd(6, 2), np.linspace(-1, 1, 6)
    assert frechet_distance_from_stats(np.zeros(6), s1, mu, s2) == pytest.approx(scipy_fd(np.zeros(6), s1, mu, s2), rel=1e-8)


def test_fd_of_samples_converges_to_the_gaussians_distance():
    s1, s2, mu = random_spd(4, 3), random_spd(4, 4), np.array([0.5, 0.0, -0.5, 1.0])
    exact = frechet_distance_from_stats(np.zeros(4), s1, mu, s2)
    x, y = gaussian(20000, np.zeros(4), s1, seed=5), gaussian(20000, mu, s2, seed=6)
    assert frechet_distance(x, y) == pytest.approx(exact, rel=0.05)
    assert frechet_distance(torch.from_numpy(x).float(), y) == pytest.approx(frechet_distance(x, y), rel=1e-5)


def test_fd_input_errors():
    x = torch.randn(10, 4)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(x[:1], x)
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(x, torch.randn(10, 5))
    with pytest.raises(ValueError, match="flatten"):
        frechet_distance(x[None], x[None])
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(x, torch.full((10, 4), float("nan")))


def reference_prdc(real, fake, k):
    """Naeem et al.'s definitions on full distance matrices, for small sets."""
    real_radii = np.sort(scipy.spatial.distance.cdist(real, real), axis=1)[:, k]
    fake_radii = np.sort(scipy.spatial.distance.cdist(fake, fake), axis=1)[:, k]
    d = scipy.spatial.distance.cdist(real, fake)
    return {
        "precision": (d < real_radii[:, None]).any(0).mean(),
        "recall": (d < fake_radii[None, :]).any(1).mean(),
        "density": (d < real_radii[:, None]).sum(0).mean() / k,
        "coverage": (d.min(1) < real_radii).mean(),
    }


def test_prdc_matches_the_definitions_across_chunks(monkeypatch):
    monkeypatch.setattr(metrics.distances, "_PAIRS_PER_CHUNK", 5000)  # many chunks for 300 x 250
    real = gaussian(300, np.zeros(3), np.eye(3), seed=0)
    fake = gaussian(250, np.full(3, 0.5), 0.5 * np.eye(3), seed=1)
    ours, expected = prdc(real, fake, k=5), reference_prdc(real, fake, k=5)
    assert ours == pytest.approx(expected, rel=1e-12)


def test_prdc_same_distribution_and_disjoint():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(2000, 4, generator=g), torch.randn(2000, 4, generator=g)
    same = prdc(real, fake)
    assert same["precision"] > 0.95 and same["recall"] > 0.95 and same["coverage"] > 0.9
    assert 0.85 < same["density"] < 1.15
    assert prdc(real, fake + 50.0) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_sees_mode_collapse():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(1000, 2, generator=g)
    collapsed = real[:1] + 0.01 * torch.randn(1000, 2, generator=g)  # all fakes at one real point
    m = prdc(real, collapsed)
    assert m["precision"] == 1.0
    assert m["recall"] < 0.05 and m["coverage"] < 0.05


def test_prdc_needs_more_than_k_rows():
    with pytest.raises(ValueError, match="more than k"):
        prdc(torch.randn(5, 2), torch.randn(50, 2), k=5)


class Replay(nn.Module):
    """A 'generator' that returns the given images in order, ignoring z."""

    def __init__(self, images):
        super().__init__()
        self.register_buffer("images", images)
        self.anchor = nn.Linear(1, 1)  # a parameter, so evaluate finds a device
        self.seen = 0

    def forward(self, z):
        batch = self.images[self.seen : self.seen + len(z)]
        self.seen += len(z)
        return batch


def toy_generator():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16 * 16), nn.Tanh(), nn.Unflatten(1, (1, 16, 16)))


def test_evaluate_a_perfect_generator_scores_perfectly():
    real = load_mnist(limit=300)
    out = evaluate(Replay(real), real, MNISTFeatureNet(), n=300, latent_dim=8, batch_size=64)
    assert out["fd"] == pytest.approx(0.0, abs=1e-6)
    assert out["precision"] == out["recall"] == out["coverage"] == 1.0
    assert (out["n_fake"], out["n_real"], out["feature_net"]) == (300, 300, "mnist_feature_net")


def test_evaluate_is_seeded_batch_independent_and_restores_modes():
    gen, net, real = toy_generator(), MNISTFeatureNet(), load_mnist(image_size=16, limit=200)
    gen.train()
    first = evaluate(gen, real, net, n=200, latent_dim=8, batch_size=64)
    assert gen.training and all(m.training for m in gen.modules())
    again = evaluate(gen, real, net, n=200, latent_dim=8, batch_size=200)
    for key in ("fd", "precision", "recall", "density", "coverage"):
        assert again[key] == pytest.approx(first[key], rel=1e-6, abs=1e-9)
    other_seed = evaluate(gen, real, net, n=200, latent_dim=8, seed=1)
    assert other_seed["fd"] != first["fd"] and other_seed["seed"] == 1


def test_evaluate_resizes_real_images_to_the_generated_size():
    real = load_mnist(limit=300)  # 32 x 32, the generator makes 16 x 16
    out = evaluate(toy_generator(), real, MNISTFeatureNet(), n=100, latent_dim=8)
    assert out["n_real"] == 300 and out["fd"] > 0
    assert len(out["feature_key"]) == 16


def test_evaluate_reads_the_real_statistics_from_its_cache_keyed_by_network_images_and_subset(tmp_path, monkeypatch):
    from lt_plugins.metrics import evaluation

    monkeypatch.setenv("LT_PLUGINS_CACHE", str(tmp_path))
    passes = []
    real_statistics = evaluation._real_statistics
    monkeypatch.setattr(evaluation, "_real_statistics", lambda *args: passes.append(1) or real_statistics(*args))
    gen, net, real = toy_generator(), MNISTFeatureNet(), load_mnist(image_size=16, limit=200)
    first = evaluate(gen, real, net, n=100, latent_dim=8)
    again = evaluate(gen, real, net, n=100, latent_dim=8)
    assert len(passes) == 1 and len(list((tmp_path / "real_stats").iterdir())) == 2  # the fit, the subset's rows
    assert {k: again[k] for k in ("fd", "precision", "recall", "density", "coverage")} == {
        k: first[k] for k in ("fd", "precision", "recall", "density", "coverage")}
    flipped = evaluate(gen, real.flip(-1), net, n=100, latent_dim=8)  # other images
    evaluate(gen, real, MNISTFeatureNet(), n=100, latent_dim=8)  # other weights
    evaluate(gen, real, net, n=100, latent_dim=8, seed=1)  # other PRDC subset (and latents)
    assert len(passes) == 4 and flipped["fd"] != first["fd"]
    uncached = evaluate(gen, real, net, n=100, latent_dim=8, cache=False)
    assert len(passes) == 5 and len(list((tmp_path / "real_stats").iterdir())) == 7  # seed 1: new rows, same fit
    assert uncached["fd"] == pytest.approx(first["fd"], rel=1e-12)
    mean, cov = metrics.real_statistics(net, real)  # the FD's real side alone, from evaluate's fit
    assert len(passes) == 5 and torch.equal(metrics.real_statistics(net, real)[0], mean)
    metrics.real_statistics(net, real, cache=False)
    assert len(passes) == 6
    with torch.no_grad():
        assert torch.allclose(mean, metrics.embed(net, real).mean(0), atol=1e-6) and cov.shape == (len(mean),) * 2


def test_a_damaged_real_statistics_cache_file_is_recomputed_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_PLUGINS_CACHE", str(tmp_path))
    gen, net, real = toy_generator(), MNISTFeatureNet(), load_mnist(image_size=16, limit=200)
    first = evaluate(gen, real, net, n=100, latent_dim=8)
    (path,) = (tmp_path / "real_stats").glob("fit-*")
    path.write_bytes(b"\x00" * 16)
    with pytest.warns(UserWarning, match="unreadable cache file"):
        again = evaluate(gen, real, net, n=100, latent_dim=8)
    assert again["fd"] == first["fd"] and again["coverage"] == first["coverage"]


def test_evaluate_fd_from_running_sums_equals_the_fd_of_all_features():
    from lt_plugins.metrics import embed

    gen, net, real = toy_generator(), MNISTFeatureNet(), load_mnist(image_size=16, limit=257)
    out = evaluate(gen, real, net, n=100, latent_dim=8, batch_size=64)
    with torch.no_grad():
        real_feats = embed(net, real)
        fake_feats = embed(net, gen(torch.randn(100, 8, generator=torch.Generator().manual_seed(0))))
    # rel 1e-6: float32 features of batches of 64 differ from one batch of 257 in the last bits
    assert out["fd"] == pytest.approx(frechet_distance(real_feats, fake_feats), rel=1e-6)
    subset = torch.randperm(257, generator=torch.Generator().manual_seed(0))[:100]
    assert out["precision"] == prdc(real_feats[subset], fake_feats)["precision"]
