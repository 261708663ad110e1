"""The recognisable share and per-class coverage: real MNIST scores high, noise is caught, the figures on
hand-made predictions, in `evaluate` and in the CLI's report."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lt_plugins as lt
from lt_plugins.cli import main
from lt_plugins.data import load_mnist
from lt_plugins.features import HOLDOUT_EVERY, MNISTFeatureNet, mnist_feature_net
from lt_plugins.metrics import class_coverage, recognisability


@pytest.fixture(scope="module")
def held_out() -> torch.Tensor:
    """The 2,000 shipped MNIST images neither shipped network trained on."""
    return load_mnist()[::HOLDOUT_EVERY]


def test_real_mnist_is_recognisable_in_every_class(held_out):
    m = recognisability(held_out)  # the metrics' shipped classifier, mnist_feature_net(seed=1)
    assert m["recognisable"] > 0.93  # measured: 95.2%
    assert m["rarest_class"] > 0.075  # measured: 8.1% (digit 5; 8.9% of the held-out labels)
    assert sum(m["class_shares"]) == pytest.approx(1.0)
    assert max(m["class_shares"]) < 0.13


def test_noise_is_caught_by_the_rarest_class_or_the_confident_share():
    g = torch.Generator().manual_seed(0)
    uniform = recognisability(torch.rand(1000, 1, 32, 32, generator=g) * 2 - 1)
    # The classifier is over-confident on pixel noise (one class, ~100% "confident"): the rarest
    # class, not the confident share, is what exposes it.
    assert uniform["rarest_class"] == 0.0 and max(uniform["class_shares"]) > 0.9
    smooth = F.interpolate(torch.randn(1000, 1, 8, 8, generator=g), size=32, mode="bilinear").clamp(-1, 1)
    dark = (torch.randn(1000, 1, 32, 32, generator=g) * 0.3 - 0.7).clamp(-1, 1)
    for noise in (smooth, dark):
        m = recognisability(noise)
        assert m["recognisable"] < 0.5 and m["rarest_class"] < 0.01


def _confident(labels: list[int], classes: int = 4, margin: float = 10.0) -> torch.Tensor:
    return F.one_hot(torch.tensor(labels), classes).double() * margin


def test_rarest_class_on_hand_made_predictions():
    # 8 confident images: class 0 x4, class 1 x2, class 2 x2, class 3 never; then 2 unsure ones.
    logits = torch.cat([_confident([0, 0, 0, 0, 1, 1, 2, 2]), torch.zeros(2, 4)])
    m = class_coverage(logits)
    assert m["recognisable"] == pytest.approx(0.8)
    assert m["class_shares"] == pytest.approx([0.5, 0.25, 0.25, 0.0])
    assert m["rarest_class"] == 0.0 and m["rarest_class_label"] == 3
    m = class_coverage(_confident([0, 1, 1, 2, 3, 3, 3, 3]))
    assert m["rarest_class"] == pytest.approx(1 / 8) and m["rarest_class_label"] == 0
    unsure = torch.tensor([[torch.log(torch.tensor(0.85 / 0.15)).item(), 0.0]])  # softmax: (0.85, 0.15)
    assert class_coverage(unsure)["recognisable"] == 0.0  # below the default 0.9
    assert class_coverage(unsure, threshold=0.8)["recognisable"] == 1.0
    nothing = class_coverage(torch.zeros(5, 10))
    assert nothing["recognisable"] == 0.0 and nothing["rarest_class"] == 0.0
    with pytest.raises(ValueError, match="threshold"):
        class_coverage(logits, threshold=1.0)
    with pytest.raises(ValueError, match="classes >= 2"):
        class_coverage(torch.zeros(3, 1))


class Replay(nn.Module):
    """A 'generator' handing back stored images in order, whatever the latents."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("images", images)
        self.served = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.images[self.served : self.served + len(z)]
        self.served += len(z)
        return out


def test_evaluate_reports_the_classifier_figures_when_the_feature_net_can_classify(held_out):
    net = mnist_feature_net(seed=1)
    m = lt.evaluate(Replay(held_out[:500]), held_out, net, n=500, latent_dim=2)
    expected = recognisability(held_out[:500], net)
    assert m["recognisable"] == expected["recognisable"] and m["class_shares"] == expected["class_shares"]
    assert m["recognisable"] > 0.9 and m["threshold"] == 0.9
    no_head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 8))
    m = lt.evaluate(Replay(held_out[:50]), held_out[:50], lambda_list(no_head), n=50, latent_dim=2)
    assert "recognisable" not in m and "fd" in m


def lambda_list(module: nn.Module) -> nn.Module:
    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [self.inner(x)]

    return Features()


def test_search_and_eval_print_the_recognisable_share(tmp_path, capsys):
    tiny = ["--image-size", "16", "--model-kwargs", '{"nz": 8, "ngf": 8}', "--eval-samples", "40",
            "--no-progress", "--device", "cpu", "--steps", "1", "--checkpoint-every", "1"]
    assert main(["search", "--out", str(tmp_path / "run"), *tiny]) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("FD ")]
    assert len(lines) == 2 and all("recognisable " in line and "(rarest class " in line and ", commonest " in line
                                   for line in lines), printed
    ticket = lt.Ticket.from_pretrained(tmp_path / "run" / "ticket")
    assert 0 <= ticket.metrics["recognisable"] <= 1 and "class_shares" not in ticket.metrics
    assert f"recognisable {ticket.metrics['recognisable']:.1%}" in lines[1]
    assert main(["eval", str(tmp_path / "run" / "ticket"), "--n", "40", "--device", "cpu"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["recognisable"] == pytest.approx(ticket.metrics["recognisable"])
    assert len(measured["class_shares"]) == 10
