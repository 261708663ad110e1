"""Image files: which files in a folder are images, their headers, and their pixels as uint8 tensors (PIL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# PIL modes that hold one grey channel; anything else is read as RGB.
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _pil_tensor(image: Any, channels: int | None) -> torch.Tensor:
    if channels is None:
        channels = 1 if image.mode in _GREY_MODES else 3
    image = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(image, dtype=np.uint8).reshape(image.height, image.width, channels)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _image_paths(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ValueError(
            f"{str(folder)!r} is not a folder; pass a folder of PNG/JPEG images, a tensor, "
            "a Dataset or 'mnist'."
        )
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {str(folder)!r}; "
            "put PNG or JPEG files there or point to the folder that holds them."
        )
    return paths


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height)) from the file's header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.mode, image.size
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{str(path)!r} is not a readable image ({error}); delete or replace it.") from None


def _read(path: Path, channels: int) -> torch.Tensor:
    """One image file as uint8 (C, H, W); a broken file is an error naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return _pil_tensor(image, channels)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:  # PIL raises these for bad data
        raise ValueError(
            f"{str(path)!r} is not a readable image ({error}); it may be truncated or not an "
            "image at all: delete or replace it."
        ) from None
