"""The RGB benchmarks' own pieces: photo patches with their licences, PNG folders for the memory run."""

from pathlib import Path

import pytest
import torch

from scripts import load_script

from lt_plugins.data import ImageFolder


def test_photo_patches_are_deterministic_licensed_and_in_range():
    pytest.importorskip("skimage.data")
    paper_rgb = load_script(Path("benchmarks/paper_rgb.py"))
    files = paper_rgb.photo_files()
    assert files and all(Path(path).is_file() and licence for path, licence in files.items())
    x = paper_rgb.patches(short_side=64, stride=16)
    assert x.shape == (len(files) * 9, 3, 32, 32)  # a 3 x 3 grid per photo
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    assert torch.equal(x, paper_rgb.patches(short_side=64, stride=16))
    first = paper_rgb.patches(short_side=64, stride=32)[:1]  # the top-left patch of the first photo
    assert torch.equal(first, x[:1])


def test_stream_memory_writes_small_smooth_pngs(tmp_path):
    stream_memory = load_script(Path("benchmarks/stream_memory.py"))
    stream_memory.write_folder(tmp_path, 5)
    stream_memory.write_folder(tmp_path, 7, start=5)
    images = ImageFolder(tmp_path)
    assert images.shape == (7, 3, 32, 32)
    assert all(p.stat().st_size < 4096 for p in images.paths)
