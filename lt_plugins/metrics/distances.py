"""Distances between feature sets: `frechet_distance` (FID's formula) and `prdc` (precision, recall,
density, coverage; Naeem et al., 2020), in chunks so 10k x 10k fits in memory."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def frechet_distance(real_feats: ArrayLike, fake_feats: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(N, D)``.

    ``|mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` with unbiased covariances,
    in float64 (see `frechet_distance_from_stats`).

    Example:
        >>> x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
        >>> round(frechet_distance(x, x), 6)
        0.0
        >>> round(frechet_distance(x, x + 1.0), 3)
        8.0
    """
    real, fake = _as_rows(real_feats, "real_feats"), _as_rows(fake_feats, "fake_feats")
    _check_dims(real, fake)
    return frechet_distance_from_stats(*gaussian_fit(real, "real_feats"), *gaussian_fit(fake, "fake_feats"))


def gaussian_fit(feats: ArrayLike, name: str = "feats") -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, unbiased covariance) of a feature set ``(N, D)``, in float64: one side of the
    Fréchet distance (``name`` is what an error calls the set).

    Example:
        >>> mean, cov = gaussian_fit(torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
        >>> mean.tolist(), cov.tolist()
        ([1.0, 2.0], [[2.0, 2.0], [2.0, 2.0]])
    """
    rows = _as_rows(feats, name)
    if rows.shape[0] < 2:
        raise ValueError(f"{name} has {rows.shape[0]} row(s); a covariance needs at least 2 samples.")
    mean = rows.mean(0)
    centred = rows - mean
    return mean, centred.T @ centred / (rows.shape[0] - 1)


def frechet_distance_from_stats(
    mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    ``tr (S1 S2)^(1/2)`` is the sum of square roots of the eigenvalues of ``S1 S2``,
    taken from the symmetric ``L^T S2 L`` (``S1 = L L^T``, Cholesky) or, when ``S1`` is
    singular (fewer samples than dimensions), from ``S1^(1/2) S2 S1^(1/2)``. The result
    is real by construction: no ``scipy.linalg.sqrtm`` and its imaginary round-off, and
    about 10x faster at D = 2048.

    Example:
        >>> mu, eye = np.zeros(2), np.eye(2)
        >>> frechet_distance_from_stats(mu, eye, mu + 3.0, 4.0 * eye)
        20.0
    """
    mu1, mu2 = (_as_float64(m).reshape(-1) for m in (mu1, mu2))
    sigma1, sigma2 = (_as_float64(m) for m in (sigma1, sigma2))
    d = mu1.shape[0]
    if not (mu2.shape == (d,) and sigma1.shape == sigma2.shape == (d, d)):
        raise ValueError(
            f"shapes do not match: mu1 {tuple(mu1.shape)}, sigma1 {tuple(sigma1.shape)}, "
            f"mu2 {tuple(mu2.shape)}, sigma2 {tuple(sigma2.shape)}; expected (D,) means and "
            "(D, D) covariances."
        )
    factor, info = torch.linalg.cholesky_ex(sigma1)
    if info.item() != 0:
        values, vectors = torch.linalg.eigh(sigma1)
        factor = vectors * values.clamp_min(0).sqrt()  # S1 = factor @ factor.T
    cross = factor.T @ sigma2 @ factor
    trace_sqrt = torch.linalg.eigvalsh((cross + cross.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return max(distance.item(), 0.0)


def prdc(real_feats: ArrayLike, fake_feats: ArrayLike, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of fake vs real features ``(N, D)``.

    Naeem et al. 2020 ("Reliable Fidelity and Diversity Metrics for Generative Models"):
    each real sample gets a ball reaching its k-th nearest real neighbour (likewise for
    fakes). Precision: share of fakes inside some real ball; recall: share of reals inside
    some fake ball; density: mean number of real balls holding a fake, over k; coverage:
    share of real balls holding at least one fake. Distances in float64 on the inputs'
    device, in chunks of at most ~2**24 pairs.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> real, fake = torch.randn(300, 4, generator=g), torch.randn(300, 4, generator=g)
        >>> m = prdc(real, fake)
        >>> m["precision"] > 0.9 and m["recall"] > 0.9
        True
        >>> prdc(real, fake + 100.0)["coverage"]
        0.0
    """
    real, fake = _as_rows(real_feats, "real_feats"), _as_rows(fake_feats, "fake_feats")
    _check_dims(real, fake)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} must be a positive int (the paper uses 5).")
    for name, rows in (("real_feats", real), ("fake_feats", fake)):
        if rows.shape[0] <= k:
            raise ValueError(f"{name} has {rows.shape[0]} rows; k={k} nearest neighbours need more than k.")
    fake = fake.to(real.device)
    real_radii, fake_radii = _knn_radii(real, k), _knn_radii(fake, k)
    in_real_balls = torch.zeros(fake.shape[0], dtype=torch.float64, device=real.device)
    real_in_fake_ball = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)
    nearest_fake = torch.full((real.shape[0],), torch.inf, dtype=torch.float64, device=real.device)
    for start, stop in _chunks(fake.shape[0], real.shape[0]):
        d = torch.cdist(real, fake[start:stop])  # (N_real, chunk)
        in_real_balls[start:stop] = (d < real_radii[:, None]).sum(0, dtype=torch.float64)
        real_in_fake_ball |= (d < fake_radii[None, start:stop]).any(1)
        nearest_fake = torch.minimum(nearest_fake, d.min(1).values)
    return {
        "precision": (in_real_balls > 0).double().mean().item(),
        "recall": real_in_fake_ball.double().mean().item(),
        "density": (in_real_balls.mean() / k).item(),
        "coverage": (nearest_fake < real_radii).double().mean().item(),
    }


def _as_float64(x: ArrayLike) -> torch.Tensor:
    """A float64 CPU tensor: the D x D algebra is small, and LAPACK on the CPU is exact."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64)
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def _as_rows(x: ArrayLike, name: str) -> torch.Tensor:
    rows = x.detach().double() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x, np.float64))
    if rows.ndim != 2:
        raise ValueError(f"{name} must be (N, D) features but has shape {tuple(rows.shape)}; flatten with x.flatten(1).")
    if not torch.isfinite(rows).all():
        raise ValueError(f"{name} contains NaN or inf; check the generator's outputs.")
    return rows


def _check_dims(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"feature sizes differ: real {real.shape[1]} vs fake {fake.shape[1]}; embed both "
            "with the same feature network."
        )


# Pairs of distances held at once (float64: 128 MiB), so 10k x 10k runs on a laptop.
_PAIRS_PER_CHUNK = 2**24


def _chunks(n: int, other: int) -> list[tuple[int, int]]:
    step = max(1, _PAIRS_PER_CHUNK // max(other, 1))
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def _knn_radii(rows: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row (the row itself is at 0)."""
    radii = [
        torch.cdist(rows[start:stop], rows).kthvalue(k + 1, dim=1).values
        for start, stop in _chunks(rows.shape[0], rows.shape[0])
    ]
    return torch.cat(radii)
