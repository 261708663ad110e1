"""The RGB benchmarks' own pieces: photo patches with their licences, the paper_rgb grid and its resume,
the baselines' masks, Fashion-MNIST, PNG folders for the memory run."""

import gzip
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from scripts import load_script

import lt_plugins as lt
from lt_plugins.data import ImageFolder

TINY = ["--data", "photos", "--generators", "dcgan", "--steps", "1", "--batch-size", "4", "--eval-samples", "12",
        "--short-side", "64", "--stride", "32", "--densities", "0.1", "0.5", "--seeds", "0", "--headline-seeds", "1"]


@pytest.fixture
def paper_rgb(monkeypatch, tmp_path):
    pytest.importorskip("skimage.data")
    monkeypatch.setenv("LT_PLUGINS_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))  # sheet, fd_plot
    return load_script(Path("benchmarks/paper_rgb.py"))


def test_photo_patches_are_deterministic_licensed_and_in_range(paper_rgb):
    files = paper_rgb.photo_files()
    assert files and all(Path(path).is_file() and licence for path, licence in files.items())
    x = paper_rgb.patches(short_side=64, stride=16)
    assert x.shape == (len(files) * 9, 3, 32, 32)  # a 3 x 3 grid per photo
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    assert torch.equal(x, paper_rgb.patches(short_side=64, stride=16))
    first = paper_rgb.patches(short_side=64, stride=32)[:1]  # the top-left patch of the first photo
    assert torch.equal(first, x[:1])


def test_grid_measures_every_method_and_a_rerun_skips_finished_runs(paper_rgb, tmp_path, monkeypatch):
    out = tmp_path / "results"
    runs = paper_rgb.main(TINY + ["--out", str(out)])["photos"]
    cells = {(r["method"], r["scope"], r["density"], r["seed"]) for r in runs}
    for seed in (0, 1):
        assert {("init", "-", 1.0, seed), ("dense", "layer", 1.0, seed)} <= cells
        at = {(m, s) for m, s, d, sd in cells if d == 0.1 and sd == seed}
        assert at == {("ticket", "layer"), ("ticket", "global"), ("magnitude", "layer"), ("random", "layer")}
    assert {m for m, _, d, _ in cells if d == 0.5} == {"ticket", "magnitude", "random"}
    assert not {c for c in cells if c[2] == 0.5 and c[3] == 1}  # the headline seed runs only the 0.1 cells
    assert len(cells) == len(runs) == 2 * 6 + 4
    assert all(math.isfinite(r[k]) for r in runs for k in ("fd", "precision", "recall", "fd_loss_net", "seconds"))
    assert all(Path(r["samples"]).is_file() for r in runs if r["method"] != "init")

    table = (out / "paper_rgb_photos.txt").read_text()
    for name in ("random init", "dense", "ticket (layer)", "ticket (global)", "magnitude", "random"):
        assert name in table
    saved = json.loads((out / "paper_rgb_photos.json").read_text())
    assert len(saved["runs"]) == len(runs) and all(saved["sources"].values())
    assert (out / "paper_rgb_photos_samples.png").is_file()
    assert (out / "paper_rgb_photos_fd.png").is_file() == (importlib.util.find_spec("matplotlib") is not None)
    lines = (out / "paper_rgb_runs.jsonl").read_text().splitlines()
    assert len(lines) == len(runs)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(paper_rgb.Bench, "train", no_training)
    again = paper_rgb.main(TINY + ["--out", str(out)])["photos"]
    assert again == runs
    assert (out / "paper_rgb_runs.jsonl").read_text().splitlines() == lines


def test_stylegan_baselines_train_through_torch_pruning(paper_rgb, tmp_path):
    args = paper_rgb.parser().parse_args(TINY[:-2] + ["--out", str(tmp_path)])
    real = paper_rgb.patches(64, 32)[:8]
    bench = paper_rgb.Bench("photos", real, args, paper_rgb.efficientnet_lite0(input_size=None),
                            paper_rgb.metric_net(), paper_rgb.Runs(tmp_path / "runs.jsonl"))
    for method in ("dense", "magnitude"):  # magnitude prunes the modulated convolutions of the dense run
        record = bench.run("stylegan", method, "layer", 1.0 if method == "dense" else 0.1, 0)
        assert math.isfinite(record["fd"]) and Path(record["samples"]).is_file()


def test_baseline_masks_keep_the_share_asked(paper_rgb):
    start = paper_rgb.seeded_start("dcgan", 3, 0.1, "layer", 0)
    ticket_start = lt.masks(start)
    random = paper_rgb.prune_to(lt.unwrap(start), ticket_start)
    for name, mask in ticket_start.items():
        module_name, _, param = name.rpartition(".")
        assert torch.equal(getattr(random.get_submodule(module_name), f"{param}_mask").bool(), mask)
    weights = {name: random.get_parameter(name + "_orig").detach() for name in ticket_start}
    dense = paper_rgb.seeded_start("dcgan", 3, 1.0, "layer", 0)
    dense = lt.unwrap(dense)
    kept = paper_rgb.magnitude_masks(dense, list(ticket_start), 0.3)
    for name, mask in kept.items():
        w = dense.get_parameter(name).detach().abs()
        assert mask.sum() == round(0.3 * w.numel())
        assert w[mask].min() >= w[~mask].max()
    assert weights  # the random baseline trains the ticket's own seeded weights


def test_fashion_mnist_reads_idx_files_and_names_the_fix_when_absent(paper_rgb, tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        paper_rgb.fashion_mnist(10, folder=tmp_path)
    pixels = torch.arange(3 * 28 * 28, dtype=torch.int64).remainder(256).to(torch.uint8)
    header = b"".join(n.to_bytes(4, "big") for n in (2051, 3, 28, 28))
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + pixels.numpy().tobytes())
    x = paper_rgb.fashion_mnist(2, folder=tmp_path)
    assert x.shape == (2, 1, 32, 32)
    assert torch.all(x[:, :, :2] == -1) and torch.all(x[:, :, :, -2:] == -1)  # zero padding, as black
    assert torch.allclose(x[0, 0, 2, 2:30], pixels[:28].float() / 127.5 - 1)


def test_stream_memory_writes_small_smooth_pngs(tmp_path):
    stream_memory = load_script(Path("benchmarks/stream_memory.py"))
    stream_memory.write_folder(tmp_path, 5)
    stream_memory.write_folder(tmp_path, 7, start=5)
    images = ImageFolder(tmp_path)
    assert images.shape == (7, 3, 32, 32)
    assert all(p.stat().st_size < 4096 for p in images.paths)
