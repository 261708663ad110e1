"""Sample-quality metrics in the feature space of any network.

`frechet_distance` is FID's formula; it is only "FID" with Inception-v3 features, so
`evaluate` reports it as ``fd`` together with the feature network and the sample counts
it used. `prdc` gives precision, recall, density and coverage (Naeem et al., 2020) with
k-nearest-neighbour balls, computed in chunks so 10k × 10k fits in memory. Both run
with any feature network and need nothing beyond scipy and torch. For figures that can be
set beside published ones, `inception_metrics` computes Inception FID and KID through
torchmetrics and torch-fidelity, the optional ``[fid]`` extra, with the standard
FID-Inception weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from .data import iter_batches, load_images
from .features import feature_key
from .generate import LatentCall, as_latent_shape

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
    stats = []
    for name, rows in (("real_feats", real), ("fake_feats", fake)):
        if rows.shape[0] < 2:
            raise ValueError(f"{name} has {rows.shape[0]} row(s); a covariance needs at least 2 samples.")
        mean = rows.mean(0)
        centred = rows - mean
        stats += [mean, centred.T @ centred / (rows.shape[0] - 1)]
    return frechet_distance_from_stats(*stats)


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


RECOGNISABLE_THRESHOLD = 0.9
"""Softmax confidence above which a classifier's label counts as recognised."""


def class_coverage(logits: ArrayLike, threshold: float = RECOGNISABLE_THRESHOLD) -> dict[str, Any]:
    """How recognisable a set of images is, from a classifier's logits ``(N, classes)``.

    ``recognisable`` is the share of images whose top softmax probability exceeds
    ``threshold``; ``class_shares`` is each class's share among those confident images and
    ``rarest_class`` the smallest of them (0 when a class is never confidently seen, and
    when no image is), at index ``rarest_class_label``. A generator that draws one digit
    well scores a high ``recognisable`` and a ``rarest_class`` of 0; with 10 balanced
    classes the best is 0.1.

    Example:
        >>> logits = torch.tensor([[9.0, 0.0], [9.0, 0.0], [0.0, 9.0], [0.1, 0.0]])
        >>> m = class_coverage(logits)
        >>> m["recognisable"], [round(x, 3) for x in m["class_shares"]], round(m["rarest_class"], 3)
        (0.75, [0.667, 0.333], 0.333)
    """
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold={threshold!r} must be in [0, 1): it is a softmax probability.")
    rows = _as_rows(logits, "logits")
    if rows.shape[0] < 1 or rows.shape[1] < 2:
        raise ValueError(f"logits must be (N >= 1, classes >= 2) but have shape {tuple(rows.shape)}.")
    confidence, label = rows.softmax(1).max(1)
    confident = label[confidence > threshold]
    counts = torch.bincount(confident, minlength=rows.shape[1]).double()
    shares = counts / max(len(confident), 1)
    return {
        "recognisable": len(confident) / rows.shape[0],
        "rarest_class": shares.min().item(),
        "rarest_class_label": int(shares.argmin()),
        "class_shares": shares.tolist(),
        "threshold": threshold,
    }


@torch.no_grad()
def recognisability(
    images: Any,
    classifier: Any = None,
    *,
    threshold: float = RECOGNISABLE_THRESHOLD,
    batch_size: int = 250,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """`class_coverage` of ``images`` under ``classifier``: the share a classifier labels with
    confidence and how evenly those labels spread over the classes.

    ``images`` is anything `load_images` reads (a tensor in [-1, 1], ``"mnist"``, a folder).
    ``classifier`` is a module with ``.classify(x) -> logits`` (e.g. `mnist_feature_net`) or
    any callable returning logits ``(N, classes)``; by default the shipped MNIST classifier
    of the metrics, ``mnist_feature_net(seed=1)``. Images are read at 32x32 for it.
    `evaluate` reports the same figures for generated images when its feature network can
    ``classify``.

    Example:
        >>> m = recognisability(load_images("mnist")[:500])    # real digits, shipped with the package
        >>> m["recognisable"] > 0.9 and m["rarest_class"] > 0.05
        True
    """
    if classifier is None:
        from .features import mnist_feature_net

        classifier = mnist_feature_net(device=device, seed=1)
    classify = getattr(classifier, "classify", classifier)
    if not callable(classify):
        raise TypeError(f"classifier must have .classify(x) or be callable, not a {type(classifier).__name__}.")
    if isinstance(classifier, nn.Module):
        device = device or next(classifier.parameters(), torch.empty(0)).device
    logits = [classify(batch.to(device)).cpu() for batch in iter_batches(load_images(images), batch_size)]
    return class_coverage(torch.cat(logits), threshold)


@torch.no_grad()
def evaluate(
    generator: nn.Module,
    real_images: Any,
    feature_net: nn.Module,
    n: int = 2000,
    *,
    latent_dim: int | None = None,
    latent_shape: tuple[int, ...] | None = None,
    generate: Any = None,
    batch_size: int = 250,
    device: str | torch.device | None = None,
    seed: int = 0,
    k: int = 5,
    threshold: float = RECOGNISABLE_THRESHOLD,
) -> dict[str, Any]:
    """Fréchet distance and PRDC of ``n`` generated vs the given real images.

    Latents ``z ~ N(0, 1)`` of shape ``(n, *latent_shape)`` (``latent_dim=d``: ``(n, d)``) come
    from a CPU ``torch.Generator(seed)`` (so the same on every device and batch size) and are fed
    in batches through ``generate(generator, z)`` (default ``generator(z)``; see
    `lt_plugins.generate.LatentCall`, which a ticket records). Both
    networks run in eval mode on ``device`` (default: the generator's) and get their
    modes back afterwards. ``real_images`` is anything `load_images` reads (e.g.
    ``"mnist"``), resized to the generated images' size and channels; a folder too big
    for memory is read from disk batch by batch. Features are the network's last output,
    ``feature_net(x)[-1]``, flattened when it is a vector per image and averaged over its
    pixels when it is a map (a timm backbone's last stage: one value per channel, as FID's
    pooled Inception features). The result names the feature network and its
    `feature_key`, and the sample counts, since the numbers mean nothing without them.
    When the feature network can ``classify`` (the shipped MNIST networks), the result also
    holds the generated images' `class_coverage` under it: ``recognisable`` (share labelled
    with confidence above ``threshold``), ``rarest_class``, ``rarest_class_label``,
    ``class_shares`` and ``threshold``.

    Example:
        >>> from lt_plugins.features import MNISTFeatureNet
        >>> from lt_plugins.data import load_mnist
        >>> gen = nn.Sequential(nn.Linear(16, 32 * 32), nn.Tanh(), nn.Unflatten(1, (1, 32, 32)))
        >>> out = evaluate(gen, load_mnist(limit=200), MNISTFeatureNet(), n=200, latent_dim=16)
        >>> sorted(out)  # doctest: +NORMALIZE_WHITESPACE
        ['class_shares', 'coverage', 'density', 'fd', 'feature_key', 'feature_net', 'k', 'n_fake',
         'n_real', 'n_real_prdc', 'precision', 'rarest_class', 'rarest_class_label', 'recall',
         'recognisable', 'seed', 'threshold']
        >>> out["n_fake"], out["n_real"], out["feature_net"]
        (200, 200, 'mnist_feature_net')
    """
    if n < k + 1 or batch_size < 1:
        raise ValueError(f"n={n} must exceed k={k} and batch_size={batch_size} must be >= 1.")
    call = latent_call(latent_dim, latent_shape, generate)
    device = torch.device(device) if device is not None else next(generator.parameters(), torch.empty(0)).device
    modes = [(m, m.training) for m in (*generator.modules(), *feature_net.modules())]
    generator.to(device).eval()
    feature_net.to(device).eval()
    classify = getattr(feature_net, "classify", None)
    try:
        batches, logits = [], []
        for fake in generated(generator, call, n, batch_size, device, seed):
            batches.append(embed(feature_net, fake))
            if callable(classify):
                logits.append(classify(fake).cpu())
        fake_feats = torch.cat(batches)
        real = load_images(real_images, image_size=fake.shape[-1], channels=fake.shape[1])
        # PRDC compares equal-sized sets (as Naeem et al. do) and costs O(n_real^2): a seeded
        # subset of n reals. The Fréchet distance uses every real image, through running
        # sums, so a folder streamed from disk is never held as features either.
        subset = torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
        real_stats, real_subset = _real_statistics(feature_net, real, subset, batch_size, device)
    finally:
        for module, mode in modes:
            module.training = mode
    fake_feats = _as_rows(fake_feats, "fake_feats")
    fake_mean = fake_feats.mean(0)
    centred = fake_feats - fake_mean
    fake_cov = centred.T @ centred / (fake_feats.shape[0] - 1)
    recognised = class_coverage(torch.cat(logits), threshold) if logits else {}
    return {
        "fd": frechet_distance_from_stats(*real_stats, fake_mean, fake_cov),
        **prdc(real_subset, fake_feats, k=k),
        "n_fake": n,
        "n_real": real.shape[0],
        "n_real_prdc": len(subset),
        "feature_net": getattr(feature_net, "name", type(feature_net).__name__),
        "feature_key": feature_key(feature_net)[:16],
        "k": k,
        "seed": seed,
        **recognised,
    }


@torch.no_grad()
def inception_metrics(
    generator: nn.Module,
    real_images: Any,
    n: int = 10000,
    *,
    latent_dim: int | None = None,
    latent_shape: tuple[int, ...] | None = None,
    generate: Any = None,
    weights: str | Path | None = None,
    batch_size: int = 100,
    device: str | torch.device | None = None,
    seed: int = 0,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
) -> dict[str, Any]:
    """Inception FID and KID of ``n`` generated vs the real images, by torchmetrics.

    This needs the ``[fid]`` extra (``pip install 'lt-plugins[fid]'``). The network is
    torch-fidelity's FID-Inception (``inception-v3-compat``, pool features, 2048 values),
    the one published FIDs use. Its weights come from the file ``weights``
    (``weights-inception-2015-12-05-6726825d.pth``). Without one, torch-fidelity's usual place
    is used: the torch hub cache, downloaded into when online. Offline with no file, it
    stops with a message. Images in [-1, 1] become uint8 ``round((x + 1) * 127.5)``, and
    grey images get 3 channels. The real images are read like `evaluate` reads them, and
    a folder is streamed. The latents and batches are as in `evaluate`. KID is the mean
    (and std) over ``kid_subsets`` subsets of ``min(kid_subset_size, n, n_real)``.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/inception.pth"   # random weights stand in for the real file
        >>> torch.save(_random_fid_inception_state(), path)
        >>> gen = nn.Sequential(nn.Linear(4, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)))
        >>> out = inception_metrics(gen, torch.rand(4, 3, 8, 8) * 2 - 1, n=4, latent_dim=4, weights=path)
        >>> sorted(out)
        ['feature_net', 'fid', 'kid', 'kid_std', 'n_fake', 'n_real', 'seed', 'weights']
    """
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError:
        raise ImportError(
            "inception_metrics needs torchmetrics and torch-fidelity: pip install 'lt-plugins[fid]'."
        ) from None
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"FID-Inception weights file {str(weights)!r} does not exist; check the path.")
    device = torch.device(device) if device is not None else next(generator.parameters(), torch.empty(0)).device
    try:
        fid = FrechetInceptionDistance(
            feature=2048, feature_extractor_weights_path=None if weights is None else str(weights)
        ).to(device)
    except OSError as error:  # torch.hub's download: no network, or no cached file
        raise FileNotFoundError(
            f"cannot load the FID-Inception weights ({type(error).__name__}: {error}). Offline, pass "
            "weights='/path/to/weights-inception-2015-12-05-6726825d.pth' (torch-fidelity's file), or "
            "put it in the torch hub cache's checkpoints folder."
        ) from error
    # The library's network embeds each image once; both metrics then take the features
    # (their "custom model" is the identity).
    inception, fid.inception = fid.inception, nn.Identity()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Metric `Kernel Inception Distance` will save all extracted features")
        kid = KernelInceptionDistance(feature=nn.Identity(), subsets=kid_subsets, subset_size=kid_subset_size)
    modes = [(m, m.training) for m in generator.modules()]
    generator.to(device).eval()
    try:
        for fake in generated(generator, latent_call(latent_dim, latent_shape, generate), n, batch_size, device, seed):
            feats = inception(_as_uint8_rgb(fake)).double()
            fid.update(feats, real=False)
            kid.update(feats.cpu(), real=False)
        real = load_images(real_images, image_size=fake.shape[-1], channels=3)
        for batch in iter_batches(real, batch_size, progress="real Inception features"):
            feats = inception(_as_uint8_rgb(batch.to(device))).double()
            fid.update(feats, real=True)
            kid.update(feats.cpu(), real=True)
    finally:
        for module, mode in modes:
            module.training = mode
    kid.subset_size = min(kid_subset_size, n, real.shape[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # KID draws its subsets from the global generator
        kid_mean, kid_std = kid.compute()
    return {
        "fid": float(fid.compute()),
        "kid": float(kid_mean),
        "kid_std": float(kid_std),
        "n_fake": n,
        "n_real": real.shape[0],
        "feature_net": "inception-v3-compat (torch-fidelity)",
        "weights": str(weights) if weights is not None else "torch-fidelity default",
        "seed": seed,
    }


def _as_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    images = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _random_fid_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised FID-Inception state dict: test plumbing without the real file."""
    from torch_fidelity import feature_extractor_inceptionv3 as module

    cls = module.FeatureExtractorInceptionV3
    load, fetch = cls.load_state_dict, module.load_state_dict_from_url
    cls.load_state_dict = lambda self, *args, **kwargs: None  # keep the random init
    module.load_state_dict_from_url = lambda *args, **kwargs: {}
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls("inception-v3-compat", ["2048"]).state_dict()
    finally:
        cls.load_state_dict, module.load_state_dict_from_url = load, fetch


def _real_statistics(
    feature_net: nn.Module, real: Any, subset: torch.Tensor, batch_size: int, device: torch.device
) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """((mean, unbiased covariance) of all real features, the rows of ``subset`` in its order),
    in one pass holding one batch of features at a time."""
    if real.shape[0] < 2:
        raise ValueError(f"real_images has {real.shape[0]} image(s); a covariance needs at least 2.")
    position = torch.full((real.shape[0],), -1, dtype=torch.long)
    position[subset] = torch.arange(len(subset))
    kept: torch.Tensor | None = None
    count, shift, total, outer = 0, None, None, None
    start = 0
    for batch in iter_batches(real, batch_size, progress="real features"):
        feats = embed(feature_net, batch.to(device)).cpu()
        if shift is None:  # sums around a first estimate of the mean keep float64 exact
            shift = feats.mean(0)
            total, outer = torch.zeros_like(shift), torch.zeros(len(shift), len(shift), dtype=torch.float64)
            kept = torch.empty(len(subset), feats.shape[1], dtype=torch.float64)
        rows = feats - shift
        total += rows.sum(0)
        outer += rows.T @ rows
        count += len(feats)
        here = position[start : start + len(feats)]
        kept[here[here >= 0]] = feats[here >= 0]
        start += len(feats)
    if not torch.isfinite(total).all():
        raise ValueError("real features contain NaN or inf; check the real images and the feature network.")
    mean = total / count
    cov = (outer - count * torch.outer(mean, mean)) / (count - 1)
    return (mean + shift, cov), kept


def latent_call(latent_dim: int | None, latent_shape: Any, generate: Any) -> LatentCall:
    """The `LatentCall` of a metric's ``latent_dim`` / ``latent_shape`` / ``generate`` arguments."""
    shape = as_latent_shape(latent_shape, latent_dim)
    if shape is None:
        raise ValueError("The metrics need the latents' shape: latent_dim=d, or latent_shape=(...) (a ticket's .call has it).")
    return LatentCall(shape, generate)


def generated(
    generator: nn.Module, call: LatentCall, n: int, batch_size: int, device: torch.device, seed: int
) -> Iterator[torch.Tensor]:
    """``n`` generated images in batches, from latents ``N(0, 1)`` drawn on a CPU
    ``torch.Generator(seed)`` and turned into images by ``call``; noise the generator draws
    itself (StyleGAN's per-pixel noise) comes from the seed too, without touching the
    caller's random state."""
    forked = [device] if torch.device(device).type == "cuda" else []
    z = call.latents(n, torch.Generator().manual_seed(seed))
    with torch.no_grad(), torch.random.fork_rng(devices=forked):
        torch.manual_seed(seed)
        for i in range(0, n, batch_size):
            yield call(generator, z[i : i + batch_size].to(device))


def embed(feature_net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``(N, D)`` float64 metric features: the last output of ``feature_net``, flattened,
    or averaged over its pixels when it is a feature map."""
    last = feature_net(images)[-1]
    return (last.mean((2, 3)) if last.ndim == 4 else last.flatten(1)).double()


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
