"""The benchmarks' FD plots: one figure with FD on a log axis, saved as a PNG."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def fd_plot(path: Path, xlabel: str, size: tuple[float, float] = (6, 3.8), legend_size: int = 8,
            ylabel: str = "FD (MNIST classifier features)") -> Iterator[Any]:
    """Yield matplotlib axes to draw on; on exit label them, log-scale FD and save to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=120)
    yield ax
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
