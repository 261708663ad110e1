"""The StyleGAN2-style generator: shapes, determinism, demodulation, rebuild, masking."""

from __future__ import annotations

import doctest
import json

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from lt_plugins.models import stylegan
from lt_plugins.models.stylegan import ModulatedConv2d, StyleGANGenerator

# Small enough to keep every test well under a second on two shared cores.
SMALL = dict(z_dim=16, w_dim=16, channel_base=256, channel_max=16, mapping_layers=2)


def _set_noise_strength(gen: nn.Module, value: float) -> None:
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(value)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("resolution", [16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_and_range(resolution: int, channels: int) -> None:
    gen = StyleGANGenerator(img_resolution=resolution, img_channels=channels, **SMALL).eval()
    with torch.no_grad():
        img = gen(torch.randn(3, 16))
    assert img.shape == (3, channels, resolution, resolution)
    assert img.abs().max() <= 1.0
    assert torch.isfinite(img).all()


def test_without_tanh_output_is_unbounded_raw_values() -> None:
    gen = StyleGANGenerator(img_resolution=8, output_tanh=False, **SMALL)
    gen.synthesis.b8.torgb.bias.data.fill_(5.0)
    with torch.no_grad():
        assert gen(torch.randn(2, 16)).max() > 1.0


def test_default_size_and_parameter_names() -> None:
    gen = StyleGANGenerator()
    names = dict(gen.named_parameters())
    n_weights = sum(p.numel() for n, p in names.items() if n.endswith("weight") and p.dim() >= 2)
    assert 500_000 <= n_weights <= 1_500_000
    for name in [
        "mapping.fc0.weight",
        "mapping.fc3.bias",
        "synthesis.const",
        "synthesis.b4.conv1.weight",
        "synthesis.b8.conv0.weight",
        "synthesis.b8.conv0.affine.weight",
        "synthesis.b8.conv0.noise_strength",
        "synthesis.b32.conv1.bias",
        "synthesis.b32.torgb.weight",
        "synthesis.b32.torgb.affine.bias",
    ]:
        assert name in names, name
    assert names["synthesis.b8.conv0.weight"].shape == (128, 128, 3, 3)
    assert names["synthesis.b32.torgb.weight"].shape == (1, 64, 1, 1)
    # StyleGAN2: noise is off until trained; styles start near 1.
    assert names["synthesis.b8.conv0.noise_strength"].item() == 0.0
    assert torch.all(names["synthesis.b8.conv0.affine.bias"] == 1.0)


def test_four_dimensional_z_is_accepted() -> None:
    gen = StyleGANGenerator(img_resolution=8, **SMALL).eval()
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(gen(z[:, :, None, None]), gen(z))


def test_wrong_z_shape_is_refused_with_the_shape() -> None:
    gen = StyleGANGenerator(img_resolution=8, **SMALL)
    with pytest.raises(ValueError, match=r"\(2, 15\)"):
        gen(torch.randn(2, 15))


@pytest.mark.parametrize("bad", [{"img_resolution": 24}, {"img_resolution": 2}])
def test_bad_resolution_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="power of two"):
        StyleGANGenerator(**{**SMALL, **bad})


def test_unknown_noise_mode_is_refused() -> None:
    gen = StyleGANGenerator(img_resolution=8, **SMALL)
    with pytest.raises(ValueError, match="noise_mode"):
        gen(torch.randn(1, 16), noise_mode="fixed")


def test_const_noise_is_deterministic_and_random_noise_is_not() -> None:
    gen = StyleGANGenerator(img_resolution=16, **SMALL).eval()
    _set_noise_strength(gen, 0.5)  # initialised to 0, when noise has no effect at all
    z = torch.randn(2, 16)
    with torch.no_grad():
        a, b = gen(z), gen(z, noise_mode="const")
        r1, r2 = gen(z, noise_mode="random"), gen(z, noise_mode="random")
        none = gen(z, noise_mode="none")
    assert torch.equal(a, b)
    assert not torch.allclose(r1, r2)
    assert not torch.allclose(a, none)


def test_const_noise_does_not_depend_on_the_global_rng() -> None:
    torch.manual_seed(1)
    gen1 = StyleGANGenerator(img_resolution=8, **SMALL)
    torch.manual_seed(2)
    gen2 = StyleGANGenerator(img_resolution=8, **SMALL)
    assert torch.equal(gen1.synthesis.b8.conv0.noise_const, gen2.synthesis.b8.conv0.noise_const)
    assert not torch.equal(gen1.synthesis.b8.conv0.noise_const, gen1.synthesis.b8.conv1.noise_const)
    # Derived from the config, so not carried in checkpoints or tickets.
    assert not any("noise_const" in k for k in gen1.state_dict())


@pytest.mark.parametrize("fused", [False, True])
def test_demodulation_makes_conv_invariant_to_weight_scale(fused: bool) -> None:
    conv = ModulatedConv2d(8, 4, 3, w_dim=16, demodulate=True)
    x, w = torch.randn(3, 8, 6, 6), torch.randn(3, 16)
    with torch.no_grad():
        before = conv(x, w, fused_modconv=fused)
        conv.weight.mul_(7.5)
        after = conv(x, w, fused_modconv=fused)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_without_demodulation_output_scales_with_weight() -> None:
    conv = ModulatedConv2d(8, 4, 1, w_dim=16, demodulate=False)
    x, w = torch.randn(3, 8, 6, 6), torch.randn(3, 16)
    with torch.no_grad():
        before = conv(x, w)
        conv.weight.mul_(2.0)
        torch.testing.assert_close(conv(x, w), 2.0 * before)


@pytest.mark.parametrize("demodulate", [False, True])
@pytest.mark.parametrize("up", [False, True])
def test_fused_and_unfused_modconv_agree(demodulate: bool, up: bool) -> None:
    conv = ModulatedConv2d(8, 4, 3, w_dim=16, demodulate=demodulate, up=up)
    x, w = torch.randn(3, 8, 6, 6), torch.randn(3, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            conv(x, w, fused_modconv=True), conv(x, w, fused_modconv=False), rtol=1e-4, atol=1e-5
        )


def test_rebuild_from_config_gives_same_architecture() -> None:
    gen = StyleGANGenerator(img_resolution=16, img_channels=3, **SMALL)
    config = json.loads(json.dumps(gen.config))  # must survive JSON unchanged
    assert config == gen.config
    rebuilt = StyleGANGenerator(**config)
    shapes = [(n, tuple(p.shape)) for n, p in gen.named_parameters()]
    assert shapes == [(n, tuple(p.shape)) for n, p in rebuilt.named_parameters()]
    assert rebuilt.config == gen.config
    gen.eval()
    rebuilt.load_state_dict(gen.state_dict())
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(z), gen(z))


class _ScoreMask(nn.Module):
    """Keep weights whose score is positive; straight-through gradient to the scores."""

    def __init__(self, shape: torch.Size) -> None:
        super().__init__()
        self.scores = nn.Parameter(torch.randn(shape))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        hard = (self.scores > 0).to(weight.dtype)
        return weight * (hard + self.scores - self.scores.detach())


@pytest.mark.parametrize("fused", [False, True])
def test_parametrized_mask_is_read_at_forward_time(fused: bool) -> None:
    gen = StyleGANGenerator(img_resolution=8, **SMALL).eval()
    z = torch.randn(4, 16)
    with torch.no_grad():
        dense = gen(z, fused_modconv=fused)
    for p in gen.parameters():
        p.requires_grad_(False)
    masked = [m for m in gen.modules() if isinstance(m, ModulatedConv2d)]
    assert len(masked) == 5  # b4: conv1, torgb; b8: conv0, conv1, torgb
    target = gen.synthesis.b8.conv0
    parametrize.register_parametrization(target, "weight", _ScoreMask(target.weight.shape))

    out = gen(z, fused_modconv=fused)
    assert not torch.allclose(out, dense)
    out.square().mean().backward()
    scores = target.parametrizations.weight[0].scores
    assert scores.grad is not None and scores.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in gen.named_parameters() if not n.endswith("scores"))

    # With every score positive the mask keeps all weights: the dense output comes back.
    with torch.no_grad():
        scores.fill_(1.0)
        torch.testing.assert_close(gen(z, fused_modconv=fused), dense, rtol=1e-4, atol=1e-5)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(stylegan, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
