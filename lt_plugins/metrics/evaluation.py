"""`evaluate`: Fréchet distance, PRDC and recognisability of generated images in any feature network."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Iterator

import torch
from torch import nn

from .._io import cache_dir, read_cached_tensors, write_cached_tensors
from ..data import images_fingerprint, iter_batches, load_images
from ..features import feature_key
from ..generate import LatentCall, LatentMixture, as_latent_shape
from .distances import _as_rows, frechet_distance_from_stats, gaussian_fit, prdc
from .recognition import RECOGNISABLE_THRESHOLD, class_coverage

REAL_STATS_FORMAT = 2
"""Version of the cached real statistics' layout; part of their key."""


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
    prior: LatentMixture | None = None,
    batch_size: int = 250,
    device: str | torch.device | None = None,
    seed: int = 0,
    k: int = 5,
    threshold: float = RECOGNISABLE_THRESHOLD,
    cache: bool = True,
) -> dict[str, Any]:
    """Fréchet distance and PRDC of ``n`` generated vs the given real images.

    Latents ``z ~ N(0, 1)`` (or from ``prior``, a ticket's `lt_plugins.generate.LatentMixture`) of
    shape ``(n, *latent_shape)`` (``latent_dim=d``: ``(n, d)``) come from a CPU
    ``torch.Generator(seed)`` (so the same on every device and batch size) and are fed
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

    The real side (the features' mean and covariance over every real image, and PRDC's
    seeded subset of them) depends only on the feature network, the images and ``seed``:
    with ``cache`` it is kept on disk in ``$LT_PLUGINS_CACHE/real_stats`` (atomically
    written, keyed by the network's `feature_key` and the images' `images_fingerprint`, the
    subset's rows by the subset too), so every later evaluation against the same data skips
    the pass over it (10,000 MNIST digits: 8–10 s on one CPU thread; read from the cache,
    0.3 s). A cache file that does not read is recomputed and rewritten, with a warning.

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
    call = latent_call(latent_dim, latent_shape, generate, prior)
    device = torch.device(device) if device is not None else next(generator.parameters(), torch.empty(0)).device
    generator.to(device)
    feature_net.to(device)
    classify = getattr(feature_net, "classify", None)
    with eval_modes(generator, feature_net):
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
        real_stats, real_subset = _cached_real_statistics(feature_net, real, subset, batch_size, device, cache)
    fake_feats = _as_rows(fake_feats, "fake_feats")
    recognised = class_coverage(torch.cat(logits), threshold) if logits else {}
    return {
        "fd": frechet_distance_from_stats(*real_stats, *gaussian_fit(fake_feats, "fake_feats")),
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


def real_statistics(
    feature_net: nn.Module,
    real_images: Any,
    *,
    image_size: int | None = None,
    batch_size: int = 250,
    device: str | torch.device | None = None,
    cache: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, unbiased covariance), float64, of ``feature_net``'s metric features (`embed`) over
    every image of ``real_images`` (anything `load_images` reads, at ``image_size``): the real
    side of the Fréchet distance, from the same disk cache as `evaluate`'s, so FD against a data
    set costs one pass over it per feature network, ever.

    Example:
        >>> from lt_plugins.features import MNISTFeatureNet
        >>> from lt_plugins.metrics import frechet_distance_from_stats, gaussian_fit
        >>> net, digits = MNISTFeatureNet().eval(), load_images("mnist")
        >>> mean, cov = real_statistics(net, digits[:300], cache=False)
        >>> round(frechet_distance_from_stats(mean, cov, *gaussian_fit(embed(net, digits[:300]))), 6)
        0.0
    """
    device = torch.device(device) if device is not None else next(feature_net.parameters(), torch.empty(0)).device
    real = load_images(real_images, image_size=image_size)
    with eval_modes(feature_net.to(device)), torch.no_grad():
        stats, _ = _cached_real_statistics(feature_net, real, torch.empty(0, dtype=torch.long), batch_size, device,
                                           cache)
    return stats


@contextlib.contextmanager
def eval_modes(*modules: nn.Module) -> Iterator[None]:
    """Run the block with ``modules`` in eval mode, then give every submodule back its own
    mode (a generator whose frozen feature block stays in eval while the rest trains keeps it).

    Example:
        >>> net = nn.Sequential(nn.Dropout(), nn.Dropout().eval())
        >>> with eval_modes(net):
        ...     net.training
        False
        >>> [m.training for m in net.modules()]
        [True, True, False]
    """
    modes = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def _cached_real_statistics(
    feature_net: nn.Module, real: Any, subset: torch.Tensor, batch_size: int, device: torch.device, cache: bool
) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`_real_statistics`, read from (or written to) the disk cache when ``cache``, in two files:
    the Gaussian fit, keyed by the network and the images (one for `real_statistics` and every
    `evaluate` seed), and the rows of ``subset``, keyed by the subset too."""
    if not cache:
        return _real_statistics(feature_net, real, subset, batch_size, device)
    key = f"{REAL_STATS_FORMAT}|{feature_key(feature_net)}|{images_fingerprint(real)}|".encode()
    folder = cache_dir("real_stats")
    fit_path = folder / f"fit-{hashlib.sha256(key).hexdigest()[:32]}.safetensors"
    rows_path = folder / f"rows-{hashlib.sha256(key + subset.numpy().tobytes()).hexdigest()[:32]}.safetensors"
    fit = read_cached_tensors(fit_path)
    rows = read_cached_tensors(rows_path) if len(subset) else {}
    if fit is None or rows is None:  # one pass computes both; only the missing file is written
        (mean, cov), kept = _real_statistics(feature_net, real, subset, batch_size, device)
        if fit is None:
            fit = {"mean": mean, "cov": cov}
            write_cached_tensors(fit_path, fit)
        if rows is None:
            rows = {"subset": kept}
            write_cached_tensors(rows_path, rows)
    kept = rows.get("subset", torch.empty(0, len(fit["mean"]), dtype=torch.float64))
    return (fit["mean"], fit["cov"]), kept


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


def latent_call(latent_dim: int | None, latent_shape: Any, generate: Any,
                prior: LatentMixture | None = None) -> LatentCall:
    """The `LatentCall` of a metric's ``latent_dim`` / ``latent_shape`` / ``generate`` / ``prior`` arguments."""
    shape = as_latent_shape(latent_shape, latent_dim)
    if shape is None:
        raise ValueError("The metrics need the latents' shape: latent_dim=d, or latent_shape=(...) (a ticket's .call has it).")
    return LatentCall(shape, generate, prior)


def generated(
    generator: nn.Module, call: LatentCall, n: int, batch_size: int, device: torch.device, seed: int
) -> Iterator[torch.Tensor]:
    """``n`` generated images in batches, from latents (``call.latents``) drawn on a CPU
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
