"""MMD in feature space: the kernel form of moment matching ("MMD loss by feature matching")."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..distributed import rows_of_all_processes, world
from .base import ImageObjective, frozen


def mmd2(x: torch.Tensor, y: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
    """Unbiased squared MMD between rows of ``x`` and ``y`` with a sum of Gaussian kernels.

    Bandwidths are ``scales`` times the median squared distance of the pooled samples
    (measured without gradient), so the kernel fits features of any size.

    Example:
        >>> x = torch.randn(64, 8)
        >>> bool(mmd2(x, x + 2, (0.5, 1, 2)) > mmd2(x, torch.randn(64, 8), (0.5, 1, 2)))
        True
    """
    pooled = torch.cat([x, y])
    d2 = torch.cdist(pooled, pooled).square()
    with torch.no_grad():
        median = d2[d2 > 0].median() if (d2 > 0).any() else d2.new_tensor(1.0)
    kernel = sum(torch.exp(-d2 / (s * median)) for s in scales)
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    off = lambda k, size: (k.sum() - k.diagonal().sum()) / (size * (size - 1))  # noqa: E731
    return off(kxx, n) + off(kyy, m) - 2 * kxy.mean()


class MMD(ImageObjective):
    """Squared MMD between feature batches of real and generated images, summed over feature maps.

    Each call compares the generated batch with a batch of real images drawn by a seeded
    sampler (its state is part of `state_dict`, so a resumed search draws the same batches).
    Under several processes the MMD is that of the global batch, the fakes and reals of every
    process together, so its value and gradient are the single-process ones.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16))
        >>> obj = MMD(lambda x: [net(x)])
        >>> obj.prepare(torch.randn(256, 1, 8, 8), torch.device("cpu"))
        >>> with torch.no_grad():
        ...     float(obj(torch.randn(32, 1, 8, 8) + 2)) > float(obj(torch.randn(32, 1, 8, 8)))
        True
    """

    def __init__(self, features: nn.Module, *, scales: Sequence[float] = (0.25, 1.0, 4.0), seed: int = 0) -> None:
        self.features = frozen(features) if isinstance(features, nn.Module) else features
        self.scales = tuple(scales)
        self.seed = seed
        self.sampler = torch.Generator().manual_seed(seed)
        self.real: torch.Tensor | None = None
        self.device = torch.device("cpu")

    def prepare(self, real: torch.Tensor, device: torch.device) -> None:
        if real.shape[0] < 2:
            raise ValueError(f"MMD needs at least 2 real images, got {real.shape[0]}.")
        if isinstance(self.features, nn.Module):
            self.features.to(device)
        self.real, self.device = real, device

    def __call__(self, fake: torch.Tensor) -> torch.Tensor:
        if self.real is None:
            raise RuntimeError("MMD.prepare(real_images, device) must run before the loss is used.")
        # The reals of the global batch: every process draws the same indices and embeds its
        # share; fakes and reals of all processes then meet in one MMD, the single-process one.
        rank, size = world()
        batch = fake.shape[0]
        index = torch.randint(0, self.real.shape[0], (batch * size,), generator=self.sampler)
        with torch.no_grad():
            real_features = self.features(self.real[index[rank * batch : (rank + 1) * batch]].to(self.device))
        loss = fake.new_zeros((), dtype=torch.float32)
        for r, f in zip(real_features, self.features(fake)):
            loss = loss + mmd2(*(rows_of_all_processes(x.flatten(1).float()) for x in (r, f)), self.scales)
        return loss

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"sampler": self.sampler.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.sampler.set_state(state["sampler"].to(torch.uint8).cpu())

    def describe(self) -> dict[str, Any]:
        return {"name": "mmd", "features": type(self.features).__name__, "scales": list(self.scales)}
