"""Inception FID and KID through torchmetrics (the optional ``[fid]`` extra), beside published figures."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import iter_batches, load_images
from ..generate import LatentMixture
from .evaluation import eval_modes, generated, latent_call


@torch.no_grad()
def inception_metrics(
    generator: nn.Module,
    real_images: Any,
    n: int = 10000,
    *,
    latent_dim: int | None = None,
    latent_shape: tuple[int, ...] | None = None,
    generate: Any = None,
    prior: LatentMixture | None = None,
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
    with eval_modes(generator.to(device)):
        call = latent_call(latent_dim, latent_shape, generate, prior)
        for fake in generated(generator, call, n, batch_size, device, seed):
            feats = inception(_as_uint8_rgb(fake)).double()
            fid.update(feats, real=False)
            kid.update(feats.cpu(), real=False)
        real = load_images(real_images, image_size=fake.shape[-1], channels=3)
        for batch in iter_batches(real, batch_size, progress="real Inception features"):
            feats = inception(_as_uint8_rgb(batch.to(device))).double()
            fid.update(feats, real=True)
            kid.update(feats.cpu(), real=True)
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
