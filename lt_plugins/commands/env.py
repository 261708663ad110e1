"""`lt-plugins env`: the versions and platform to paste into a bug report or ticket-mismatch issue."""

from __future__ import annotations

import argparse
import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("lt-plugins", "torch", "torchvision", "diffusers", "timm", "accelerate", "huggingface-hub", "safetensors", "numpy")


def environment() -> dict[str, str]:
    """Versions of the packages that decide whether a ticket rebuilds bit for bit.

    Example:
        >>> "torch" in environment()
        True
    """
    import torch

    info = {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine()}
    for name in PACKAGES:
        try:
            info[name] = version(name)
        except PackageNotFoundError:
            info[name] = "not installed"
    info["cuda"] = torch.version.cuda or "none"
    info["cuda available"] = str(torch.cuda.is_available())
    return info


def add_env(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("env", help="print versions and platform for bug reports")
    parser.set_defaults(func=lambda args: print("\n".join(f"- {k}: {v}" for k, v in environment().items())))
