"""Recognisability: the share of images a classifier labels with confidence, and how evenly over classes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data import iter_batches, load_images
from .distances import ArrayLike, _as_rows


RECOGNISABLE_THRESHOLD = 0.9
"""Softmax confidence above which a classifier's label counts as recognised."""


def class_coverage(logits: ArrayLike, threshold: float = RECOGNISABLE_THRESHOLD) -> dict[str, Any]:
    """How recognisable a set of images is, from a classifier's logits ``(N, classes)``.

    ``recognisable`` is the share of images whose top softmax probability exceeds
    ``threshold``; ``class_shares`` is each class's share among those confident images and
    ``rarest_class`` the smallest of them (0 when a class is never confidently seen, and
    when no image is), at index ``rarest_class_label``. A generator that draws one digit
    well scores a high ``recognisable`` and a ``rarest_class`` of 0; with 10 balanced
    classes the best is 0.1.

    Example:
        >>> logits = torch.tensor([[9.0, 0.0], [9.0, 0.0], [0.0, 9.0], [0.1, 0.0]])
        >>> m = class_coverage(logits)
        >>> m["recognisable"], [round(x, 3) for x in m["class_shares"]], round(m["rarest_class"], 3)
        (0.75, [0.667, 0.333], 0.333)
    """
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold={threshold!r} must be in [0, 1): it is a softmax probability.")
    rows = _as_rows(logits, "logits")
    if rows.shape[0] < 1 or rows.shape[1] < 2:
        raise ValueError(f"logits must be (N >= 1, classes >= 2) but have shape {tuple(rows.shape)}.")
    confidence, label = rows.softmax(1).max(1)
    confident = label[confidence > threshold]
    counts = torch.bincount(confident, minlength=rows.shape[1]).double()
    shares = counts / max(len(confident), 1)
    return {
        "recognisable": len(confident) / rows.shape[0],
        "rarest_class": shares.min().item(),
        "rarest_class_label": int(shares.argmin()),
        "class_shares": shares.tolist(),
        "threshold": threshold,
    }


@torch.no_grad()
def recognisability(
    images: Any,
    classifier: Any = None,
    *,
    threshold: float = RECOGNISABLE_THRESHOLD,
    batch_size: int = 250,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """`class_coverage` of ``images`` under ``classifier``: the share a classifier labels with
    confidence and how evenly those labels spread over the classes.

    ``images`` is anything `load_images` reads (a tensor in [-1, 1], ``"mnist"``, a folder).
    ``classifier`` is a module with ``.classify(x) -> logits`` (e.g. `mnist_feature_net`) or
    any callable returning logits ``(N, classes)``; by default the shipped MNIST classifier
    of the metrics, ``mnist_feature_net(seed=1)``. Images are read at 32x32 for it.
    `evaluate` reports the same figures for generated images when its feature network can
    ``classify``.

    Example:
        >>> m = recognisability(load_images("mnist")[:500])    # real digits, shipped with the package
        >>> m["recognisable"] > 0.9 and m["rarest_class"] > 0.05
        True
    """
    if classifier is None:
        from ..features import mnist_feature_net

        classifier = mnist_feature_net(device=device, seed=1)
    classify = getattr(classifier, "classify", classifier)
    if not callable(classify):
        raise TypeError(f"classifier must have .classify(x) or be callable, not a {type(classifier).__name__}.")
    if isinstance(classifier, nn.Module):
        device = device or next(classifier.parameters(), torch.empty(0)).device
    logits = [classify(batch.to(device)).cpu() for batch in iter_batches(load_images(images), batch_size)]
    return class_coverage(torch.cat(logits), threshold)
