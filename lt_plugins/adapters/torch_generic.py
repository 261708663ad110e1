"""Any other nn.Module: the spec records its class path, and rebuilding needs the caller's consent."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from ._registry import register_adapter
from .base import Adapter, class_path, json_config, model_class


def _import_class(path: str) -> type:
    # Nested classes: try the longest importable module prefix, then walk the attributes.
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            return obj
        break
    raise ValueError(f"Cannot import an nn.Module class from {path!r}; pass the model to ticket.apply(model).")


@register_adapter
class TorchAdapter(Adapter):
    """The fallback family: any ``nn.Module``. Its ``config`` is the model's ``.config`` dict when it has one.

    Example:
        >>> TorchAdapter().spec(nn.Linear(2, 3))
        {'family': 'torch', 'class': 'torch.nn.modules.linear.Linear', 'config': None}
    """

    family = "torch"

    def matches(self, model: nn.Module) -> bool:
        return isinstance(model, nn.Module)

    def spec(self, model: nn.Module) -> dict[str, Any]:
        config = getattr(model, "config", None)
        if isinstance(config, dict):
            try:
                config = json_config(type(model).__name__, config)
            except ValueError:
                config = None
        else:
            config = None
        return {"family": self.family, "class": class_path(model), "config": config}

    def build(self, spec: dict[str, Any], allow_remote_code: bool = False) -> nn.Module:
        path = spec.get("class")
        if not allow_remote_code:
            raise ValueError(
                f"This ticket is for {path}, which is not a built-in family, so its class is not imported "
                f"from the ticket. Pass a fresh instance: ticket.apply(MyModel(...)); or, if you trust "
                f"the ticket's author, allow_remote_code=True imports {path} and calls it with the "
                "recorded config."
            )
        cls = _import_class(str(path))
        return cls(**(spec.get("config") or {}))

    def differences(self, spec: dict[str, Any], model: nn.Module) -> list[str]:
        # Compare by class name: a script's __main__.Net and the imported mymodule.Net are one
        # architecture; parameter names and shapes are checked separately.
        theirs = str(spec.get("class", "")).rpartition(".")[2]
        ours = model_class(model).__qualname__.rpartition(".")[2]
        if theirs != ours:
            return [f"class: ticket has {spec.get('class')}, model is {class_path(model)}"]
        return super().differences({**spec, "class": class_path(model)}, model)
