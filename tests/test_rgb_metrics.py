"""Inception FID and KID through torchmetrics / torch-fidelity, weights from a path, offline."""

import pytest
import torch
from torch import nn

pytest.importorskip("torchmetrics")
pytest.importorskip("torch_fidelity")

from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3  # noqa: E402
from torchmetrics.image.kid import KernelInceptionDistance  # noqa: E402

from lt_plugins.metrics import (  # noqa: E402
    _as_uint8_rgb,
    _random_fid_inception_state,
    frechet_distance,
    inception_metrics,
)


class Features(nn.Identity):
    """Features handed to the library as they are (its 'custom model')."""

    def __init__(self, num_features):
        super().__init__()
        self.num_features = num_features


class Replay(nn.Module):
    """A 'generator' that returns fixed images in order, whatever the latents."""

    def __init__(self, images):
        super().__init__()
        self.register_buffer("images", images)
        self.anchor = nn.Parameter(torch.zeros(()))
        self.seen = 0

    def forward(self, z):
        batch = self.images[self.seen : self.seen + len(z)]
        self.seen += len(z)
        return batch


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "random-fid-inception.pth"
    torch.save(_random_fid_inception_state(seed=0), path)
    return path


def test_the_package_fd_equals_the_library_fid_on_the_same_features():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 32, generator=g, dtype=torch.float64)
    fake = torch.randn(300, 32, generator=g, dtype=torch.float64) * 1.3 + 0.2
    library = FrechetInceptionDistance(feature=Features(32))
    library.update(real, real=True)
    library.update(fake, real=False)
    assert frechet_distance(real, fake) == pytest.approx(float(library.compute()), rel=1e-9)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_inception_fid_and_kid_read_the_weights_from_a_path(weights):
    g = torch.Generator().manual_seed(1)
    real = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    fake = (torch.rand(4, 1, 16, 16, generator=g) * 2 - 1) * 0.5  # grey: repeated to RGB
    out = inception_metrics(Replay(fake), real, n=4, latent_dim=2, weights=weights, batch_size=3,
                            kid_subset_size=3, kid_subsets=10)
    assert (out["n_fake"], out["n_real"]) == (4, 4) and out["weights"] == str(weights)

    # The same numbers from the library alone, its network loaded from the same file.
    inception = NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    with torch.no_grad():
        real_feats = inception(_as_uint8_rgb(real)).double()
        fake_feats = inception(_as_uint8_rgb(fake.repeat(1, 3, 1, 1))).double()
    fid = FrechetInceptionDistance(feature=Features(2048))
    fid.update(real_feats, real=True)
    fid.update(fake_feats, real=False)
    assert out["fid"] == pytest.approx(float(fid.compute()), rel=1e-6) and out["fid"] > 0
    kid = KernelInceptionDistance(feature=Features(2048), subsets=10, subset_size=3)
    kid.update(real_feats, real=True)
    kid.update(fake_feats, real=False)
    torch.manual_seed(0)
    kid_mean, _ = kid.compute()
    assert out["kid"] == pytest.approx(float(kid_mean), rel=1e-6)
    # Four 2048-d features give singular covariances; the package's FD agrees all the same.
    assert frechet_distance(real_feats, fake_feats) == pytest.approx(out["fid"], rel=1e-3)


def test_images_become_uint8_rgb_with_rounding():
    x = torch.tensor([-1.0, -0.999, 0.0, 1.0]).view(1, 1, 1, 4)
    out = _as_uint8_rgb(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 1, 4)
    assert out[0, :, 0].tolist() == [[0, 0, 128, 255]] * 3


def test_missing_weights_say_what_to_pass(tmp_path, monkeypatch):
    gen = Replay(torch.zeros(4, 3, 8, 8))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inception_metrics(gen, torch.zeros(4, 3, 8, 8), n=4, latent_dim=2, weights=tmp_path / "none.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache, and no network here

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", no_network)
    with pytest.raises(FileNotFoundError, match="weights='/path/to/weights-inception"):
        inception_metrics(gen, torch.zeros(4, 3, 8, 8), n=4, latent_dim=2)
