"""Any other nn.Module: the spec records its class path, and rebuilding needs the caller's consent."""

from __future__ import annotations

from torch import nn

from ._registry import register_adapter
from .base import Adapter


@register_adapter
class TorchAdapter(Adapter):
    """The fallback family: any ``nn.Module``, every floating weight masked. Its spec's ``config`` is the
    model's ``config`` (or ``init_kwargs``) dict when it keeps one (`lt_plugins.adapters.base.constructor_config`).

    Example:
        >>> TorchAdapter().spec(nn.Linear(2, 3))
        {'family': 'torch', 'class': 'torch.nn.modules.linear.Linear', 'config': None}
    """

    family = "torch"

    def matches(self, model: nn.Module) -> bool:
        return isinstance(model, nn.Module)  # the fallback: `recognise` takes it when no family does
