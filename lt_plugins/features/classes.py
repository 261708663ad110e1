"""`WithClassProbabilities`: a classifier's feature maps plus its class probabilities, as one more map."""

from __future__ import annotations

import torch
from torch import nn


class WithClassProbabilities(nn.Module):
    """``net``'s feature maps followed by its class probabilities ``softmax(net.logits(maps))``.

    Matching the mean and variance of each class's probability asks two things no map of
    features asks: that every class be drawn as often as in the data (the means), and that
    each sample be confidently one class (a probability's variance reaches the data's only
    when it is near 0 or 1). On the demo's DCGAN this raised the rarest class's share and cut
    FD (the README's quality section gives the figures). ``net`` must have a ``logits(maps)``
    method, as `MNISTFeatureNet` does; `feature_net` builds one from ``"mnist_classes"``.

    Example:
        >>> from lt_plugins.features import MNISTFeatureNet
        >>> maps = WithClassProbabilities(MNISTFeatureNet())(torch.zeros(2, 1, 32, 32))
        >>> len(maps), tuple(maps[-1].shape), bool(torch.allclose(maps[-1].sum(1), torch.ones(2)))
        (5, (2, 10), True)
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        if not callable(getattr(net, "logits", None)):
            raise TypeError(
                f"WithClassProbabilities needs a classifier with a logits(feature_maps) method, such as "
                f"MNISTFeatureNet; {type(net).__name__} has none."
            )
        self.net = net

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = list(self.net(x))
        return [*maps, self.net.logits(maps).softmax(1)]
