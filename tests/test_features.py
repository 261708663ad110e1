"""Feature extractors: the locally trained MNIST net and its cache, timm backbones, keys."""

import copy

import pytest
import torch
import timm
from safetensors.torch import save_file
from torch import nn

from lt_plugins import features
from lt_plugins.data import load_mnist
from lt_plugins.features import (
    HOLDOUT_EVERY,
    MNISTFeatureNet,
    TimmFeatures,
    feature_key,
    mnist_feature_net,
)


@pytest.fixture(scope="session")
def mnist_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("lt_plugins_cache")


@pytest.fixture(scope="session")
def trained(mnist_cache):
    """Train once per session into an explicit cache folder (not the shipped weights); record global state."""
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.random.get_rng_state())
    net = mnist_feature_net(cache_dir=mnist_cache)
    after = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.random.get_rng_state())
    return net, before, after


def cached_files(cache):
    return sorted(p.name for p in (cache / "feature_nets").iterdir())


def fake_train(calls):
    def train(recipe):
        calls.append(recipe)
        return MNISTFeatureNet().state_dict()

    return train


def test_trained_net_is_accurate_frozen_and_in_eval(trained):
    net, _, _ = trained
    x, y = load_mnist(with_labels=True)
    with torch.no_grad():
        accuracy = (net.classify(x[::HOLDOUT_EVERY]).argmax(1) == y[::HOLDOUT_EVERY]).float().mean().item()
    assert accuracy > 0.95
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())
    shapes = [tuple(f.shape) for f in net(x[:2])]
    assert shapes == [(2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4), (2, 128)]


def test_training_leaves_global_torch_state_alone(trained):
    _, (threads, deterministic, rng), (threads2, deterministic2, rng2) = trained
    assert (threads, deterministic) == (threads2, deterministic2)
    assert torch.equal(rng, rng2)


def test_second_call_loads_the_cache_without_training(trained, mnist_cache, monkeypatch):
    net, _, _ = trained

    def no_training(recipe):
        raise AssertionError("retrained although the weights were cached")

    monkeypatch.setattr(features.mnist, "_train", no_training)
    again = mnist_feature_net(cache_dir=mnist_cache)
    assert feature_key(again) == feature_key(net)
    assert all(name.endswith(".safetensors") and not name.startswith(".") for name in cached_files(mnist_cache))


def test_the_default_call_loads_the_shipped_weights_of_the_current_recipe(tmp_path, monkeypatch):
    def no_training(recipe):
        raise AssertionError("trained although the weights of this recipe ship with the package")

    monkeypatch.setattr(features.mnist, "_train", no_training)
    monkeypatch.setenv("LT_PLUGINS_CACHE", str(tmp_path))
    # the metrics' network (plain, seed 1), the loss's default ones (robust, seeds 0 and 2) and their plain twins
    shipped = [(seed, False) for seed in (0, 1, 2)] + [(seed, True) for seed in (0, 2)]
    keys = {feature_key(mnist_feature_net(seed=seed, robust=robust)) for seed, robust in shipped}
    assert len(keys) == len(shipped) and feature_key(MNISTFeatureNet()) not in keys
    assert not (tmp_path / "feature_nets").exists()  # nothing written to the user's cache


def test_the_robust_recipe_is_the_plain_one_trained_on_adversarial_examples(tmp_path, monkeypatch):
    from lt_plugins.features import ADVERSARY

    calls = []
    monkeypatch.setattr(features.mnist, "_train", fake_train(calls))
    mnist_feature_net(cache_dir=tmp_path, seed=2)
    mnist_feature_net(cache_dir=tmp_path, seed=2, robust=True)
    plain, robust = calls
    assert robust == {**plain, **ADVERSARY} and "attack" not in plain
    assert len(cached_files(tmp_path)) == 2  # its own file: never the plain network's weights


def test_the_attack_stays_in_its_ball_and_in_range_and_raises_the_loss():
    x, y = load_mnist(limit=64, with_labels=True)
    net = mnist_feature_net()
    torch.manual_seed(0)
    adversarial = features.mnist._pgd_l2(net, x, y, eps=2.0, steps=5)
    assert (adversarial - x).flatten(1).norm(dim=1).max() <= 2.0 + 1e-4
    assert adversarial.min() >= -1 and adversarial.max() <= 1
    noise = torch.randn_like(x)
    noise = (x + 2.0 * noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(-1, 1)  # as far, at random
    with torch.no_grad():
        clean, random, attacked = (torch.nn.functional.cross_entropy(net.classify(v), y).item()
                                   for v in (x, noise, adversarial))
    assert attacked > 10 * max(clean, random), (clean, random, attacked)


def test_the_robust_network_keeps_its_labels_under_attacks_that_break_the_plain_one():
    # Why the loss matches its features: a perturbation a person does not see as a stroke
    # moves the plain network's features enough to change its label, not the robust one's.
    x, y = load_mnist(with_labels=True)
    x, y = x[::HOLDOUT_EVERY][:256], y[::HOLDOUT_EVERY][:256]  # digits neither network trained on
    accuracy = {}
    for robust in (False, True):
        net = mnist_feature_net(robust=robust)
        torch.manual_seed(0)
        adversarial = features.mnist._pgd_l2(net, x, y, eps=4.0, steps=10)  # twice the training radius
        with torch.no_grad():
            accuracy[robust] = (net.classify(adversarial).argmax(1) == y).float().mean().item()
            assert (net.classify(x).argmax(1) == y).float().mean().item() > 0.97
    assert accuracy[True] > 0.4 and accuracy[True] > 2 * accuracy[False], accuracy  # measured: 52% against 20%


def test_a_retrained_network_agrees_with_the_shipped_one(trained):
    # Holds on the machine that trained them; elsewhere last-bit rounding may differ, which
    # is why they ship. Then the two must still agree on what they compute.
    net, _, _ = trained
    shipped = mnist_feature_net()
    x = load_mnist(limit=256)
    with torch.no_grad():
        agree = (shipped.classify(x).argmax(1) == net.classify(x).argmax(1)).float().mean().item()
    assert agree > 0.97


def test_a_changed_recipe_retrains_into_a_new_file(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(features.mnist, "_train", fake_train(calls))
    mnist_feature_net(cache_dir=tmp_path)
    mnist_feature_net(cache_dir=tmp_path)
    assert len(calls) == 1 and len(cached_files(tmp_path)) == 1
    monkeypatch.setitem(features._RECIPE, "epochs", 1)
    mnist_feature_net(cache_dir=tmp_path)
    assert len(calls) == 2 and calls[-1]["epochs"] == 1
    assert len(cached_files(tmp_path)) == 2


def test_a_damaged_cache_file_is_retrained_with_a_warning(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(features.mnist, "_train", fake_train(calls))
    mnist_feature_net(cache_dir=tmp_path)
    (path,) = (tmp_path / "feature_nets").iterdir()
    path.write_bytes(b"not safetensors")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        mnist_feature_net(cache_dir=tmp_path)
    assert len(calls) == 2
    mnist_feature_net(cache_dir=tmp_path)  # the rewritten file loads again
    assert len(calls) == 2


def test_mnist_net_refuses_rgb_with_the_fix():
    with pytest.raises(ValueError, match="mean\\(1, keepdim=True\\)"):
        MNISTFeatureNet()(torch.zeros(1, 3, 32, 32))


def test_feature_key_follows_every_weight_and_buffer():
    net = MNISTFeatureNet()
    key = feature_key(net)
    twin = MNISTFeatureNet()
    twin.load_state_dict(net.state_dict())
    assert feature_key(twin) == key == feature_key(copy.deepcopy(net))
    with torch.no_grad():
        twin.blocks[0][0].weight[0, 0, 0, 0] += 1e-6
    assert feature_key(twin) != key

    bn = TimmFeatures(timm.create_model("resnet10t", features_only=True, out_indices=(1,)))
    bn_key = feature_key(bn)
    bn.backbone.bn1.running_mean[0] += 1.0
    assert feature_key(bn) != bn_key
    with pytest.raises(TypeError, match="nn.Module"):
        feature_key(lambda x: [x])


def test_timm_features_from_a_name_offline():
    extractor = TimmFeatures("resnet10t", out_indices=(1, 2), input_size=48)
    grey = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    maps = extractor(grey)
    assert [tuple(m.shape) for m in maps] == [(2, 64, 12, 12), (2, 128, 6, 6)]
    rgb_maps = extractor(grey.repeat(1, 3, 1, 1))
    assert all(torch.equal(a, b) for a, b in zip(maps, rgb_maps))
    assert not any(p.requires_grad for p in extractor.parameters())
    extractor.train()
    assert not any(m.training for m in extractor.modules())
    x = grey.clone().requires_grad_(True)
    extractor(x)[-1].square().sum().backward()  # generators get gradients through it
    assert x.grad.abs().sum() > 0


def test_timm_pretrained_only_from_a_local_file(tmp_path):
    with pytest.raises(ValueError, match="pretrained_cfg_overlay"):
        TimmFeatures("resnet10t", pretrained=True)
    with pytest.raises(ValueError, match="does not exist"):
        TimmFeatures("resnet10t", pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / "no.safetensors")))
    with pytest.raises(ValueError, match="Hub"):
        TimmFeatures("hf-hub:timm/resnet18.a1_in1k")
    source = timm.create_model("resnet10t")
    path = tmp_path / "weights.safetensors"
    save_file(source.state_dict(), str(path))
    extractor = TimmFeatures("resnet10t", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(extractor.backbone.conv1[0].weight, source.conv1[0].weight)
    assert extractor.name == "timm/resnet10t"


def test_timm_features_from_a_module():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(ValueError, match="features_only=True"):
        TimmFeatures(Plain())(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="from a name"):
        TimmFeatures(Plain(), out_indices=(1,))
    with pytest.raises(ValueError, match="takes 3 channels"):
        TimmFeatures(Plain())(torch.zeros(1, 2, 8, 8))


def test_another_seed_is_another_network_in_its_own_file(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(features.mnist, "_train", fake_train(calls))
    mnist_feature_net(cache_dir=tmp_path)
    mnist_feature_net(cache_dir=tmp_path, seed=1)
    mnist_feature_net(cache_dir=tmp_path, seed=1)
    assert [c["seed"] for c in calls] == [0, 1]
    assert len(cached_files(tmp_path)) == 2


def test_a_stack_of_networks_returns_every_map_and_has_its_own_moments_key():
    from lt_plugins.features import FeatureStack, feature_key, feature_net
    from lt_plugins.recipes import metric_features_name

    x = load_mnist(limit=4)
    first, second = feature_net("mnist"), feature_net("mnist:1")
    stack = feature_net("mnist+mnist:1")
    assert isinstance(stack, FeatureStack)
    for got, want in zip(stack(x), first(x) + second(x)):
        assert torch.equal(got, want)
    keys = {feature_key(first), feature_key(stack), feature_key(feature_net("mnist:1+mnist"))}
    assert len(keys) == 3  # cached moments of a stack are never those of a member, nor of another order
    assert metric_features_name("auto", 1, "mnist+mnist:1") not in ("mnist", "mnist:1")
    with pytest.raises(ValueError, match="--metric-features"):
        metric_features_name("auto", 3, "resnet18_random+resnet18_random:1")


def test_class_probabilities_come_after_the_maps_and_are_the_classifiers_own():
    from lt_plugins.features import WithClassProbabilities, feature_net

    x = load_mnist(limit=8)
    net = feature_net("mnist_classes:2")
    plain = mnist_feature_net(seed=2)
    *maps, probabilities = net(x)
    for got, want in zip(maps, plain(x)):
        assert torch.equal(got, want)
    assert torch.allclose(probabilities, plain.classify(x).softmax(1))
    assert probabilities.argmax(1).tolist() == load_mnist(limit=8, with_labels=True)[1].tolist()
    assert feature_key(net) not in (feature_key(plain), feature_key(feature_net("mnist_classes")))
    with pytest.raises(TypeError, match="logits"):
        WithClassProbabilities(torch.nn.Conv2d(1, 2, 3))


def test_the_default_loss_networks_are_never_the_metrics():
    from lt_plugins.features import feature_net
    from lt_plugins.recipes import SearchJob, evaluation_net, metric_features_name

    assert metric_features_name("auto", 1, SearchJob.features) == "mnist:1"
    metric = feature_key(evaluation_net(torch.device("cpu"), "auto", 1, SearchJob.features))
    loss = feature_net(SearchJob.features)
    assert metric not in {feature_key(member.net) for member in loss.nets}
    assert feature_key(loss.nets[1].net) == feature_key(feature_net("mnist_robust:2"))
    assert feature_key(feature_net("mnist_robust:2")) == feature_key(mnist_feature_net(seed=2, robust=True))
    assert metric_features_name("auto", 1, "mnist_classes:1+mnist_classes") == "mnist:3"
