"""timm models, recorded by registered model name and rebuilt with ``timm.create_model``.

Never with pretrained weights, unless the ticket is on a pretrained base (``weight_init="keep"``):
then from the Hub repo and commit the ticket records.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..base_model import BaseModel
from ._registry import register_adapter
from .base import Adapter, class_path, model_class

# create_model arguments a spec may carry: the ones that change parameter shapes.
_KWARGS = ("num_classes", "in_chans")


def _architecture(model: nn.Module) -> str | None:
    if not model_class(model).__module__.startswith("timm."):
        return None
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture")
    return arch if isinstance(arch, str) else None


def _in_chans(model: nn.Module) -> int | None:
    first = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    if isinstance(first, str):
        try:
            return int(model.get_submodule(first).in_channels)
        except (AttributeError, TypeError):
            return None
    return None


@register_adapter
class TimmAdapter(Adapter):
    """Any model ``timm.create_model`` knows by name (``model.pretrained_cfg["architecture"]``).

    Example:
        >>> import timm
        >>> net = timm.create_model("test_resnet", pretrained=False, num_classes=10)
        >>> TimmAdapter().spec(net)["config"]
        {'model_name': 'test_resnet', 'num_classes': 10, 'in_chans': 3}
    """

    family = "timm"

    def owns(self, model: nn.Module) -> bool:
        return _architecture(model) is not None

    def spec(self, model: nn.Module) -> dict[str, Any]:
        config: dict[str, Any] = {"model_name": _architecture(model)}
        if isinstance(getattr(model, "num_classes", None), int):
            config["num_classes"] = model.num_classes
        in_chans = _in_chans(model)
        if in_chans is not None:
            config["in_chans"] = in_chans
        return {"family": self.family, "class": class_path(model), "config": config}

    def build(self, spec: dict[str, Any], allow_remote_code: bool = False) -> nn.Module:
        return _create(spec)

    def load_base(self, spec: dict[str, Any], base: BaseModel) -> nn.Module:
        """``timm.create_model("hf-hub:repo_id@revision", pretrained=True)``; timm repos have no subfolders.

        `base_repo` stays None: ``pretrained_cfg["hf_hub_id"]`` is set on randomly initialised
        models too, so it does not say where a model's weights came from; pass ``base=``.
        """
        if base.subfolder:
            raise ValueError(f"timm loads models from the root of a Hub repo, not from a subfolder: {base}.")
        try:
            return _create(spec, f"hf-hub:{base.repo_id}@{base.revision}")
        except OSError as err:  # huggingface_hub's errors for a missing repo, file or revision
            raise ValueError(f"Could not load the ticket's base {base} from the Hub: {err}") from err


def _create(spec: dict[str, Any], hub_source: str | None = None) -> nn.Module:
    """``timm.create_model`` of ``spec``'s architecture: random, or pretrained from ``hub_source``."""
    import timm

    config = dict(spec.get("config") or {})
    name = config.pop("model_name", None)
    if not isinstance(name, str) or not timm.is_model(name):
        raise ValueError(f"{name!r} is not a model name timm knows; see timm.list_models().")
    unknown = sorted(set(config) - set(_KWARGS))
    if unknown or not all(isinstance(v, int) and not isinstance(v, bool) for v in config.values()):
        raise ValueError(
            f"timm spec config {spec.get('config')!r} may only add integer {list(_KWARGS)} to model_name."
        )
    model = timm.create_model(hub_source or name, pretrained=hub_source is not None, **config)
    if class_path(model) != spec.get("class"):
        raise ValueError(f"timm built {class_path(model)} for {name!r}, but the spec names {spec.get('class')!r}.")
    return model
