"""The shipped MNIST split and `load_images`: layouts, exact values, clear errors."""

import gzip

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

from lt_plugins.data import MNIST_DIR, MNIST_FILES, load_images, load_mnist


def raw_mnist() -> np.ndarray:
    data = gzip.decompress((MNIST_DIR / MNIST_FILES[0]).read_bytes())
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)


class ListDataset(Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_mnist_32_pads_two_background_pixels_with_exact_values():
    x = load_mnist()
    assert x.shape == (10000, 1, 32, 32) and x.dtype == torch.float32
    inner = torch.from_numpy(raw_mnist().astype(np.float32)) / 127.5 - 1
    assert torch.equal(x[:, 0, 2:30, 2:30], inner)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (x[:, 0][:, border] == -1).all()
    assert x.min() == -1 and x.max() == 1


def test_mnist_labels_limit_and_other_sizes():
    x, y = load_mnist(image_size=28, limit=5, with_labels=True)
    assert x.shape == (5, 1, 28, 28)
    assert y.dtype == torch.int64 and y.tolist() == [7, 2, 1, 0, 4]
    big = load_mnist(image_size=64, limit=3)
    assert big.shape == (3, 1, 64, 64)
    assert big.min() >= -1 and big.max() <= 1
    assert (big[:, :, :3] == -1).all()  # the frame stays background after resizing


@pytest.mark.parametrize("limit", [0, 10001, 2.5])
def test_mnist_bad_limit_says_the_range(limit):
    with pytest.raises(ValueError, match="1..10000"):
        load_mnist(limit=limit)


def test_uint8_tensor_maps_0_255_to_minus1_1():
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 1, 1, 3)
    out = load_images(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out.flatten(), torch.tensor([-1.0, 1.0, 51 / 127.5 - 1]))


def test_float_tensors_in_either_range():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(load_images(x, value_range=(0, 1)), x * 2 - 1)
    assert torch.equal(load_images(x * 2 - 1), x * 2 - 1)
    with pytest.warns(UserWarning, match="value_range=\\(0, 1\\)"):
        load_images(x)


def test_out_of_range_floats_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="outside the assumed range.*value_range"):
        load_images(torch.full((1, 1, 4, 4), 255.0))


def test_wrong_ndim_and_empty_inputs():
    with pytest.raises(ValueError, match="unsqueeze"):
        load_images(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match="empty"):
        load_images(torch.zeros(0, 1, 8, 8))
    with pytest.raises(ValueError, match="empty"):
        load_images(TensorDataset(torch.zeros(0, 1, 8, 8)))
    with pytest.raises(ValueError, match="empty"):
        load_images(ListDataset([]))
    with pytest.raises(TypeError, match="tensor"):
        load_images([1, 2, 3])


def test_channels_and_size_conversion():
    rgb = torch.full((2, 3, 8, 8), -1.0)
    rgb[:, 0] = 1.0
    grey = load_images(rgb, channels=1)
    assert grey.shape == (2, 1, 8, 8)
    assert torch.allclose(grey, torch.full_like(grey, 0.299 - 0.587 - 0.114))
    assert load_images(grey, channels=3, image_size=16).shape == (2, 3, 16, 16)
    assert load_images("mnist", image_size=16, channels=3).shape == (10000, 3, 16, 16)


def test_dataset_of_pairs_and_pil_images():
    images = torch.randint(0, 256, (3, 1, 6, 6), dtype=torch.uint8)
    pairs = ListDataset([(images[i], i) for i in range(3)])
    assert torch.equal(load_images(pairs), load_images(images))
    pils = ListDataset([Image.fromarray(images[i, 0].numpy()) for i in range(3)])
    assert torch.equal(load_images(pils), load_images(images))
    assert torch.equal(load_images(TensorDataset(images, torch.arange(3))), load_images(images))


def test_image_folder(tmp_path):
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(pixels).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(255 - pixels).save(tmp_path / "sub" / "b.png")
    (tmp_path / "notes.txt").write_text("not an image")
    x = load_images(tmp_path)
    assert x.shape == (2, 1, 8, 8)
    assert torch.equal(x[0, 0], torch.from_numpy(pixels).float() / 127.5 - 1)
    assert torch.equal(x[1, 0], torch.from_numpy(255 - pixels).float() / 127.5 - 1)

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "c.png")
    with pytest.raises(ValueError, match="image_size"):
        load_images(tmp_path)
    mixed = load_images(str(tmp_path), image_size=8)
    assert mixed.shape == (3, 3, 8, 8)  # one RGB image makes the whole folder RGB


def test_folder_errors(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="no images"):
        load_images(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        load_images(tmp_path / "missing")
