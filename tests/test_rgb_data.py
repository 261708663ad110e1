"""RGB folders at any size: centre crop and resize, streaming from disk, broken files named."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import lt_plugins as lt
from lt_plugins import data
from lt_plugins.data import ImageFolder, images_fingerprint, iter_batches, load_images
from lt_plugins.objectives.moments import dataset_moments


def write_rgb_folder(folder, n, size=(20, 12), seed=0):
    """n RGB PNGs of size (width, height) in two subfolders, random pixels."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = folder / f"part{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(sub / f"{i:03d}.png")
    return folder


def test_non_square_images_are_centre_cropped_then_resized(tmp_path):
    pixels = np.zeros((10, 30, 3), np.uint8)  # 30 wide, 10 high: the centred square is columns 10..19
    pixels[:, 10:20] = 255
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    x = load_images(tmp_path, image_size=5)
    assert x.shape == (1, 3, 5, 5)
    assert torch.equal(x, torch.ones_like(x))  # only the white centre survives
    tall = torch.zeros(1, 1, 9, 3, dtype=torch.uint8)
    tall[:, :, 3:6] = 255
    assert torch.equal(load_images(tall, image_size=3), torch.ones(1, 1, 3, 3))


def test_a_stream_holds_the_same_images_as_the_loaded_folder(tmp_path):
    write_rgb_folder(tmp_path, 7)
    loaded = load_images(tmp_path, image_size=8)
    stream = load_images(tmp_path, image_size=8, stream=True)
    assert isinstance(stream, ImageFolder) and isinstance(loaded, torch.Tensor)
    assert stream.shape == loaded.shape == (7, 3, 8, 8) and stream.ndim == 4 and len(stream) == 7
    assert torch.equal(stream[3], loaded[3])
    assert torch.equal(stream[torch.tensor([6, 0, 6])], loaded[[6, 0, 6]])
    assert torch.equal(stream[1:5:2], loaded[1:5:2])
    assert torch.equal(torch.cat(list(iter_batches(stream, 3))), loaded)
    shard = torch.cat(list(iter_batches(stream, 2, rank=1, world_size=3)))
    assert torch.equal(shard, loaded[1::3])
    grey = load_images(stream, channels=1, image_size=4)  # a stream re-sized, still a stream
    assert isinstance(grey, ImageFolder) and grey.shape == (7, 1, 4, 4)
    assert torch.allclose(grey.load(), load_images(tmp_path, image_size=4, channels=1), atol=1e-6)


def test_a_folder_bigger_than_the_limit_streams_by_default(tmp_path, monkeypatch):
    write_rgb_folder(tmp_path, 4)
    assert isinstance(load_images(tmp_path, image_size=8), torch.Tensor)
    monkeypatch.setattr(data, "STREAM_ABOVE_BYTES", 4 * 3 * 8 * 8 * 4 - 1)
    assert isinstance(load_images(tmp_path, image_size=8), ImageFolder)
    assert isinstance(load_images(tmp_path, image_size=8, stream=False), torch.Tensor)


def test_streamed_moments_equal_in_memory_moments_and_cache_by_file_stats(tmp_path):
    write_rgb_folder(tmp_path, 9)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    stream = ImageFolder(tmp_path, image_size=8)
    loaded = stream.load()
    a = dataset_moments(net, stream, False, 4, torch.device("cpu"))
    b = dataset_moments(net, loaded, False, 4, torch.device("cpu"))
    assert all(torch.allclose(x, y) for (ma, va), (mb, vb) in zip(a, b) for x, y in ((ma, mb), (va, vb)))
    key = images_fingerprint(stream)
    assert key == images_fingerprint(ImageFolder(tmp_path, image_size=8))
    assert key != images_fingerprint(ImageFolder(tmp_path, image_size=6))
    write_rgb_folder(tmp_path, 10, seed=1)  # one more file
    assert key != images_fingerprint(ImageFolder(tmp_path, image_size=8))


@pytest.mark.parametrize("damage", ["not an image", "truncated"])
def test_a_broken_image_is_an_error_naming_the_file(tmp_path, damage):
    write_rgb_folder(tmp_path, 3)
    bad = tmp_path / "part1" / "broken.png"
    if damage == "not an image":
        bad.write_text("this is text")
    else:
        good = (tmp_path / "part0" / "000.png").read_bytes()
        bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="broken.png.*(delete or replace)"):
        load_images(tmp_path, image_size=8)
    with pytest.raises(ValueError, match="broken.png"):
        stream = load_images(tmp_path, image_size=8, channels=3, stream=True)
        list(iter_batches(stream, 2))


def test_a_stream_of_mixed_sizes_needs_image_size(tmp_path):
    write_rgb_folder(tmp_path, 2, size=(8, 8))
    Image.new("RGB", (5, 5)).save(tmp_path / "part1" / "zz_small.png")
    stream = ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="zz_small.png.*image_size"):
        list(iter_batches(stream, 4))
    assert ImageFolder(tmp_path, image_size=4).load().shape == (3, 3, 4, 4)


def test_a_search_runs_on_a_streamed_rgb_folder(tmp_path):
    from lt_plugins.models import DCGANGenerator

    write_rgb_folder(tmp_path / "data", 12, size=(16, 16))
    real = load_images(tmp_path / "data", stream=True)
    features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    for objective in (lt.MomentMatching(lambda x: [features(x)], cache=False), lt.MMD(lambda x: [features(x)])):
        torch.manual_seed(0)
        gen = lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=3, image_size=16), lt.TicketConfig(density=0.3, seed=0))
        search = lt.TicketSearch(gen, objective, latent_dim=8, batch_size=4, progress=False)
        ticket = search.run(real, steps=2)
        assert len(search.result.losses) == 2 and all(np.isfinite(search.result.losses))
        assert ticket is not None
    class Net(nn.Module):
        def forward(self, x):
            return [features(x)]  # a map: the metric averages it over pixels

    metrics = lt.evaluate(gen, real, Net(), n=8, latent_dim=8, k=2)
    assert metrics["n_real"] == 12 and metrics["fd"] > 0
