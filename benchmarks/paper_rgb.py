"""The paper's claim on RGB and grey photos: tickets against the baselines users would pick instead.

Data sets (``--data``):

- ``photos``: 32×32 natural-image patches cut deterministically from the public-domain, CC0
  and CC-BY photos that ship inside the scikit-image, scikit-learn and matplotlib wheels
  (`PHOTOS` holds each file's licence as its package states it; a package that is not
  installed is skipped with a message, and the results record the photos used). Each photo
  is resized so its short side is ``--short-side`` pixels, centre-cropped to a square and
  cut on a grid with stride ``--stride``.
- ``fashion``: Fashion-MNIST (MIT licence, Zalando), the first ``--fashion-limit`` training
  images, padded 28 -> 32, grey: Debian's ``dataset-fashion-mnist`` puts it in
  `FASHION_DIR` (skipped with a message when absent).

Runs, for each data set, generator (``--generators``: the DCGAN and the StyleGAN-style
generator of `lt_plugins.models`) and seed, all with the same moment-matching loss on
ImageNet EfficientNet-Lite0 features (at 32×32, to fit a CPU), the same steps, batch and
seed-drawn start:

- ``dense``: every weight trained (``lt.DenseSearch``);
- ``ticket``: edge-popup scores trained over the frozen weights at each ``--densities``, in
  each ``--scopes`` (layer or global ranking);
- ``magnitude``: the trained dense network pruned to the same density by weight magnitude
  (per tensor, ``torch.nn.utils.prune``), then its surviving weights fine-tuned for the
  same steps: a one-shot IMP-style weak ticket (it has had twice the steps of the others);
- ``random``: the ticket's own starting mask (random scores, so a random mask of the same
  density per tensor) with its surviving weights trained.

The random-init generator gives the starting point. ``--seeds`` run every cell;
``--headline-seeds`` add seeds to the ``--headline-density`` cells and to dense. The
metric uses another network than the loss: FD, precision and recall in a randomly
initialised ResNet-18 (timm, seeded; last stage averaged over pixels), ``--eval-samples``
samples against every real image. FD in the loss network's own features is kept beside
it, marked as what the loss optimised.

Every finished run is one line of ``<out>/<tag>_runs.jsonl``, rewritten atomically; a
rerun skips the runs it finds there, so an interrupted benchmark resumes. Per data set it
writes ``<tag>_<data>.txt``/``.json`` (the table), ``<tag>_<data>_fd.png`` (FD against
density per method) and ``<tag>_<data>_samples.png`` (sample sheet).

    python benchmarks/paper_rgb.py  # the full grid: 3 seeds everywhere, 300 steps, batch 64 (a GPU's work)

The README's RGB section gives the smaller grid that fits one CPU core, and the command.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import inspect
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

import lt_plugins as lt
from lt_plugins._io import atomic_path
from lt_plugins.features import TimmFeatures, efficientnet_lite0, random_resnet18
from lt_plugins.metrics import embed, frechet_distance, generated, latent_call, prdc
from lt_plugins.models import DCGANGenerator, StyleGANGenerator
from lt_plugins.objectives.moments import NORMALISATIONS
from lt_plugins.search import save_image_grid

# package -> (folder inside it, {file: licence as the package states it}).
PHOTOS = {
    "skimage": ("data", {
        "astronaut.png": "public domain (NASA)",
        "coffee.png": "CC0 (Rachel Michetti)",
        "chelsea.png": "CC0 (Stefan van der Walt)",
        "rocket.jpg": "public domain (SpaceX)",
        "hubble_deep_field.jpg": "public domain (NASA)",
        "retina.jpg": "CC0 1.0 (Häggström, Wikimedia Commons)",
    }),
    "sklearn": ("datasets/images", {  # its README.txt beside the files
        "china.jpg": "CC BY 2.0 (danielbuechele, Flickr)",
        "flower.jpg": "CC BY 2.0 (vultilion, Flickr)",
    }),
    "matplotlib": ("mpl-data/sample_data", {
        "grace_hopper.jpg": "public domain (U.S. Navy official photo; the wheel itself states no licence)",
    }),
}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_LICENCE = "MIT (Zalando SE), Debian package dataset-fashion-mnist"
# name -> (builder taking the image channels, latent size)
GENERATORS: dict[str, tuple[Callable[[int], nn.Module], int]] = {
    "dcgan": (lambda nc: DCGANGenerator(nz=100, ngf=32, nc=nc, image_size=32), 100),
    "stylegan": (lambda nc: StyleGANGenerator(z_dim=64, w_dim=64, img_resolution=32, img_channels=nc), 64),
}
METHODS = ("dense", "ticket", "magnitude", "random")


def photo_files() -> dict[str, str]:
    """Path -> licence of every listed photo whose package is installed (found without importing it)."""
    found = {}
    for package, (sub, files) in PHOTOS.items():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            print(f"{package} is not installed: its photos ({', '.join(files)}) are left out", flush=True)
            continue
        folder = Path(spec.submodule_search_locations[0]) / sub
        found.update({str(folder / name): licence for name, licence in files.items()})
    return found


def patches(short_side: int, stride: int, size: int = 32, files: list[str] | None = None) -> torch.Tensor:
    """Every photo's grid of ``size``×``size`` patches, as (N, 3, size, size) in [-1, 1]."""
    out = []
    for path in files if files is not None else photo_files():
        image = lt.load_images(_one(Path(path)), image_size=short_side, channels=3)  # centre crop + resize
        tiles = image.unfold(2, size, stride).unfold(3, size, stride)  # (1, 3, rows, cols, size, size)
        out.append(tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, size, size))
    return torch.cat(out)


def _one(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)[None]


def fashion_mnist(limit: int, folder: Path = FASHION_DIR) -> torch.Tensor:
    """The first ``limit`` Fashion-MNIST training images, (N, 1, 32, 32) in [-1, 1] (zero-padded 28 -> 32)."""
    path = folder / "train-images-idx3-ubyte.gz"
    if not path.is_file():
        raise FileNotFoundError(f"no Fashion-MNIST at {path}; install it with "
                                "`apt-get install dataset-fashion-mnist` or leave 'fashion' out of --data.")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))  # idx3 header
    n = min(limit, count)
    images = torch.frombuffer(bytearray(raw[16:16 + n * rows * cols]), dtype=torch.uint8).reshape(n, 1, rows, cols)
    pad = (32 - rows) // 2
    return lt.load_images(nn.functional.pad(images, (pad, pad, pad, pad)), channels=1)


def metric_net() -> TimmFeatures:
    return random_resnet18(seed=0)  # the CLI's RGB metric network (--metric-features auto)


def setting(data: str, args: argparse.Namespace) -> str:
    """What a run's result depends on besides its cell: the data set's cut and the training and eval sizes."""
    cut = f"{args.short_side}s{args.stride}" if data == "photos" else str(args.fashion_limit)
    return f"{data}{cut}-steps{args.steps}-b{args.batch_size}-n{args.eval_samples}-{args.normalise}"


def run_key(setting: str, generator: str, method: str, scope: str, density: float, seed: int) -> str:
    return f"{setting}|{generator}|{method}|{scope}|{density:g}|{seed}"


class Runs:
    """The finished runs, one JSON line each in ``path``: read on start, rewritten atomically per run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records = [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []
        self.done = {r["key"]: r for r in self.records}

    def add(self, record: dict) -> None:
        self.records = [r for r in self.records if r["key"] != record["key"]] + [record]
        self.done[record["key"]] = record
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.records))


def seeded_start(generator: str, channels: int, density: float, scope: str, seed: int) -> nn.Module:
    """The generator wrapped at ``density``: its seeded weights and its random starting mask."""
    build, _ = GENERATORS[generator]
    return lt.wrap(build(channels), lt.TicketConfig(density=density, scope=scope, seed=seed))


def prune_to(model: nn.Module, keep: dict[str, torch.Tensor]) -> nn.Module:
    """Fix ``keep`` (parameter name -> bool mask) on ``model`` with torch's pruning hooks (in place)."""
    for name, mask in keep.items():
        module_name, _, param = name.rpartition(".")
        prune.custom_from_mask(model.get_submodule(module_name), param, mask)
    return model


def magnitude_masks(model: nn.Module, names: list[str], density: float) -> dict[str, torch.Tensor]:
    """Per tensor, keep the ``density`` share of weights largest in magnitude."""
    out = {}
    for name in names:
        weight = model.get_parameter(name).detach().abs().flatten()
        kept = max(1, round(density * weight.numel()))
        mask = torch.zeros_like(weight, dtype=torch.bool)
        mask[weight.topk(kept).indices] = True
        out[name] = mask.reshape(model.get_parameter(name).shape)
    return out


class RealFeatures:
    """Each network's features of the real images, computed once per data set (as `lt.evaluate` would
    compute them per call: the last output, averaged over pixels; PRDC on a seeded subset of as many
    reals as fakes)."""

    def __init__(self, real: torch.Tensor) -> None:
        self.images, self.cache = real, {}

    @torch.no_grad()
    def embed(self, net: nn.Module, images: torch.Tensor) -> torch.Tensor:
        net.eval()
        return torch.cat([embed(net, images[i:i + 250]) for i in range(0, len(images), 250)])

    def real(self, net: nn.Module) -> torch.Tensor:
        if id(net) not in self.cache:
            self.cache[id(net)] = self.embed(net, self.images)
        return self.cache[id(net)]

    def prdc_subset(self, n: int) -> torch.Tensor:
        return torch.randperm(len(self.images), generator=torch.Generator().manual_seed(0))[:n]


class Bench:
    """One data set's runs: builds each method's generator, trains it, measures and records it."""

    def __init__(self, data: str, real: torch.Tensor, args: argparse.Namespace, loss_net: nn.Module,
                 other: nn.Module, runs: Runs) -> None:
        self.data, self.real, self.args, self.loss_net, self.other, self.runs = data, real, args, loss_net, other, runs
        self.channels, self.setting = real.shape[1], setting(data, args)
        self.features = RealFeatures(real)
        self.work = args.out / f"{args.tag}_work"
        self.work.mkdir(parents=True, exist_ok=True)

    def measure(self, gen: nn.Module, latent_dim: int) -> dict:
        """FD, precision and recall in the metric network, FD in the loss network: ``--eval-samples`` fakes."""
        was = gen.training
        gen.eval()
        try:
            fakes = torch.cat(list(generated(gen, latent_call(latent_dim, None, None), self.args.eval_samples,
                                             250, torch.device("cpu"), seed=0)))
        finally:
            gen.train(was)
        fake, own = (self.features.embed(net, fakes) for net in (self.other, self.loss_net))
        out = {"fd": frechet_distance(self.features.real(self.other), fake), "fd_loss_net":
               frechet_distance(self.features.real(self.loss_net), own)}
        scores = prdc(self.features.real(self.other)[self.features.prdc_subset(len(fake))], fake)
        return {**out, "precision": scores["precision"], "recall": scores["recall"]}

    def train(self, gen: nn.Module, dense: bool, seed: int, latent_dim: int, name: str) -> dict:
        loop = lt.DenseSearch if dense else lt.TicketSearch
        search = loop(gen, lt.MomentMatching(self.loss_net, normalise=self.args.normalise), latent_dim=latent_dim,
                      batch_size=self.args.batch_size, seed=seed, progress=False)
        began = time.perf_counter()
        search.run(self.real, steps=self.args.steps)
        seconds = time.perf_counter() - began
        samples = self.work / f"{name}.png"
        save_image_grid(search.sample(gen), samples)
        return {"train_seconds": seconds, "final_loss": search.result.losses[-1], "samples": str(samples)}

    def run(self, generator: str, method: str, scope: str, density: float, seed: int) -> dict | None:
        key = run_key(self.setting, generator, method, scope, density, seed)
        if key in self.runs.done and (method != "dense" or self.dense_path(generator, seed).is_file()):
            print("skip (done):", key, flush=True)
            return self.runs.done[key]
        if self.args.report_only:
            return None
        began = time.perf_counter()
        _, latent_dim = GENERATORS[generator]
        name = key.replace("|", "_")
        start = seeded_start(generator, self.channels, 1.0 if method in ("dense", "init") else density,
                             "layer" if method != "ticket" else scope, seed)
        if method == "init":
            record = {}
            gen = lt.unwrap(start)
        elif method == "ticket":
            gen = start
            record = self.train(gen, False, seed, latent_dim, name)
        elif method == "random":
            keep = lt.masks(start)
            gen = prune_to(lt.unwrap(start), keep)
            record = self.train(gen, True, seed, latent_dim, name)
        elif method == "dense":
            gen = lt.unwrap(start)
            record = self.train(gen, True, seed, latent_dim, name)
            from safetensors.torch import save_file  # the trained weights the magnitude runs prune
            save_file(gen.state_dict(), self.dense_path(generator, seed))
        else:  # magnitude
            names = list(lt.masks(start))
            gen = lt.unwrap(start)
            gen.load_state_dict(self.dense_weights(generator, seed))
            gen = prune_to(gen, magnitude_masks(gen, names, density))
            record = self.train(gen, True, seed, latent_dim, name)
        record.update(self.measure(gen, latent_dim))
        record.update(key=key, setting=self.setting, data=self.data, generator=generator, method=method, scope=scope, density=density,
                      seed=seed, steps=self.args.steps, batch_size=self.args.batch_size,
                      eval_samples=self.args.eval_samples, seconds=time.perf_counter() - began)
        self.runs.add(record)
        print(json.dumps(record), flush=True)
        return record

    def dense_path(self, generator: str, seed: int) -> Path:
        return self.work / f"{self.setting}_{generator}_dense_seed{seed}.safetensors"

    def dense_weights(self, generator: str, seed: int) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(self.dense_path(generator, seed))

    def grid(self) -> list[dict]:
        """Every run of this data set, in an order where each dense run precedes its magnitude runs."""
        a = self.args
        out = []
        for generator in a.generators:
            for seed in sorted(set(a.seeds) | set(a.headline_seeds)):
                densities = [d for d in a.densities if seed in a.seeds or d == a.headline_density]
                out.append(self.run(generator, "init", "-", 1.0, seed))
                if "dense" in a.methods or "magnitude" in a.methods:
                    out.append(self.run(generator, "dense", "layer", 1.0, seed))
                for density in densities:
                    if "ticket" in a.methods:
                        out += [self.run(generator, "ticket", scope, density, seed) for scope in a.scopes]
                    out += [self.run(generator, m, "layer", density, seed) for m in ("magnitude", "random")
                            if m in a.methods]
        return [r for r in out if r is not None]


def label(r: dict) -> str:
    if r["method"] in ("init", "dense"):
        return {"init": "random init", "dense": "dense"}[r["method"]]
    return f"{r['method']} ({r['scope']})" if r["method"] == "ticket" else r["method"]


def summarise(records: list[dict]) -> list[dict]:
    """Per (generator, method, scope, density): mean, min and max over seeds of each measure."""
    cells: dict[tuple, list[dict]] = {}
    for r in records:
        cells.setdefault((r["generator"], label(r), r["density"]), []).append(r)
    rows = []
    for (generator, name, density), rs in cells.items():
        row = {"generator": generator, "method": name, "density": density, "seeds": [r["seed"] for r in rs]}
        for k in ("fd", "precision", "recall", "fd_loss_net"):
            values = [r[k] for r in rs]
            row[k] = float(np.mean(values))
            row[f"{k}_min"], row[f"{k}_max"] = float(min(values)), float(max(values))
        row["seconds"] = float(np.mean([r["seconds"] for r in rs]))
        rows.append(row)
    order = ("random init", "dense")  # then every density, methods in name order
    return sorted(rows, key=lambda r: (r["generator"], r["method"] not in order,
                                       order.index(r["method"]) if r["method"] in order else 0, r["density"], r["method"]))


def table(rows: list[dict], header: str) -> str:
    lines = [header, f"{'generator':<9} {'method':<16} {'density':>7} {'seeds':>5} {'FD ResNet-18 (min-max)':>26} "
             f"{'prec':>5} {'recall':>6} {'FD loss*':>9} {'s/run':>6}"]
    for r in rows:
        spread = f"{r['fd']:.3f} ({r['fd_min']:.3f}-{r['fd_max']:.3f})" if len(r["seeds"]) > 1 else f"{r['fd']:.3f}"
        lines.append(f"{r['generator']:<9} {r['method']:<16} {r['density']:>7.2f} {len(r['seeds']):>5} {spread:>26} "
                     f"{r['precision']:>5.3f} {r['recall']:>6.3f} {r['fd_loss_net']:>9.2f} {r['seconds']:>6.0f}")
    lines.append("* FD in the features the loss matched: not an independent measure")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """FD against density, one line per generator and method; dense and random init as flat lines."""
    from fd_plot import fd_plot  # benchmarks/ is on the path when the script runs

    with fd_plot(path, "density (share of weights kept)", ylabel="FD (random ResNet-18 features)") as ax:
        for generator, style in zip(sorted({r["generator"] for r in rows}), ("-", "--")):
            mine = [r for r in rows if r["generator"] == generator]
            for name in sorted({r["method"] for r in mine}):
                cell = sorted((r for r in mine if r["method"] == name), key=lambda r: r["density"])
                if name in ("dense", "random init"):
                    ax.axhline(cell[0]["fd"], ls=":" if name == "dense" else (0, (1, 4)), lw=1,
                               color="black" if generator == "dcgan" else "grey", label=f"{generator} {name}")
                    continue
                x = [r["density"] for r in cell]
                err = [[r["fd"] - r["fd_min"] for r in cell], [r["fd_max"] - r["fd"] for r in cell]]
                ax.errorbar(x, [r["fd"] for r in cell], yerr=err, ls=style, marker="o", ms=3, capsize=2,
                            label=f"{generator} {name}")
        ax.set_xscale("log")
        ticks = sorted({r["density"] for r in rows if r["density"] < 1})
        ax.set_xticks(ticks, [f"{d:g}" for d in ticks])
        ax.minorticks_off()


def sheet(real: torch.Tensor, records: list[dict], density: float, path: Path) -> None:
    """Real images beside each generator's variants at ``density`` (first seed), one row per generator."""
    from sheet import sample_sheet

    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))[:64]
    real_png = path.with_name(path.stem + "_real.png")
    save_image_grid(real[pick], real_png)
    rows = []
    for generator in sorted({r["generator"] for r in records}):
        first = {}
        for r in records:
            if r["generator"] == generator and "samples" in r and r["density"] in (1.0, density):
                first.setdefault(label(r), r["samples"])
        rows.append((generator, [("real", real_png)] + [(f"{name} {density:g}" if name != "dense" else name, png)
                                                        for name, png in first.items()]))
    sample_sheet(rows, path)


def report(data: str, real: torch.Tensor, sources: dict, args: argparse.Namespace, records: list[dict]) -> str:
    rows = summarise(records)
    header = (f"{data}: {len(real)} images {tuple(real.shape[1:])}; loss: moment matching (normalise={args.normalise}) on "
              f"EfficientNet-Lite0 (ImageNet) features; {args.steps} steps, batch {args.batch_size}; FD, precision, recall in a random "
              f"ResNet-18 on {args.eval_samples} samples vs every real image (PRDC: as many reals), mean "
              f"(min-max) over the row's seeds; magnitude = dense run + {args.steps} fine-tune steps")
    text = table(rows, header)
    stem = args.out / f"{args.tag}_{data}"
    with atomic_path(stem.with_suffix(".txt")) as tmp:
        tmp.write_text(text + "\n")
    with atomic_path(stem.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "sources": sources,
                                   "images": len(real), "rows": rows, "runs": records}, indent=1))
    if importlib.util.find_spec("matplotlib") is None:
        print("matplotlib is not installed (pip install 'lt-plugins[bench]'): no FD plot", flush=True)
    else:
        plot(rows, stem.with_name(stem.name + "_fd.png"))
    sheet(real, records, args.headline_density, stem.with_name(stem.name + "_samples.png"))
    return text


def load_data(name: str, args: argparse.Namespace) -> tuple[torch.Tensor, dict] | None:
    """The data set's images and its sources' licences, or None (with a message) when it is not here."""
    if name == "photos":
        files = photo_files()
        return patches(args.short_side, args.stride, files=list(files)), files
    try:
        return fashion_mnist(args.fashion_limit), {str(FASHION_DIR): FASHION_LICENCE}
    except FileNotFoundError as error:
        print(f"skipping fashion: {error}", flush=True)
        return None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", choices=("photos", "fashion"), default=["photos", "fashion"])
    p.add_argument("--generators", nargs="+", choices=sorted(GENERATORS), default=sorted(GENERATORS))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.1, 0.3, 0.5])
    p.add_argument("--scopes", nargs="+", choices=("layer", "global"), default=["layer", "global"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of every cell")
    p.add_argument("--headline-seeds", type=int, nargs="*", default=[],
                   help="more seeds for dense and the --headline-density cells only")
    p.add_argument("--headline-density", type=float, default=0.1, help="also the density the sample sheet shows")
    p.add_argument("--normalise", choices=NORMALISATIONS, default=inspect.signature(lt.MomentMatching).parameters["normalise"].default,
                   help="moment matching's per-map normalisation ('none': raw moments, as the paper)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-samples", type=int, default=2000)
    p.add_argument("--short-side", type=int, default=256)
    p.add_argument("--stride", type=int, default=16)
    p.add_argument("--fashion-limit", type=int, default=60000)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the tables, plots and sheets of the runs already finished")
    p.add_argument("--tag", default="paper_rgb", help="prefix of every file written under --out")
    return p


def main(argv: list[str] | None = None) -> dict[str, list[dict]]:
    args = parser().parse_args(argv)
    runs = Runs(args.out / f"{args.tag}_runs.jsonl")
    loss_net, other = efficientnet_lite0(input_size=None), metric_net()
    results = {}
    for name in args.data:
        loaded = load_data(name, args)
        if loaded is None:
            continue
        real, sources = loaded
        print(f"{name}: {len(real)} images of {tuple(real.shape[1:])} from {len(sources)} sources", flush=True)
        bench = Bench(name, real, args, loss_net, other, runs)
        results[name] = bench.grid()
        # the table holds every finished run of this setting, from earlier invocations (other cells) too
        finished = [r for r in runs.records if r["setting"] == bench.setting]
        print("\n" + report(name, real, sources, args, finished), flush=True)
    return results


if __name__ == "__main__":
    main()
