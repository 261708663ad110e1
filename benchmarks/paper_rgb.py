"""A first RGB check of the paper's claim: a 10% DCGAN ticket against the dense network, same loss.

Data: 32×32 natural-image patches cut deterministically from the public-domain and CC0
photos that ship inside the scikit-image wheel (``pip install 'lt-plugins[bench]'``). Each
photo is resized so its short side is ``--short-side`` pixels, centre-cropped to a square
and cut on a grid with stride ``--stride``. Their licences, as scikit-image's docstrings
state them, are in `PHOTOS` and go into the results JSON.

Runs: the DCGAN (32×32, nz 100, ngf 32) densely trained, and as a 10% ticket (layer scope),
with the same moment-matching loss on ImageNet EfficientNet-Lite0 features (at the patches'
own 32×32, to fit a CPU), the same steps and the same seed. The metric uses another network
than the loss: FD in a randomly initialised ResNet-18 (timm, seeded; last stage averaged
over pixels), 2,000 samples against every patch. FD in the loss network's own features is
printed beside it, marked as what the loss optimised. The random-init generator gives the
starting point.

    python benchmarks/paper_rgb.py [--steps 150] [--seeds 0] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import lt_plugins as lt
from lt_plugins._io import atomic_path
from lt_plugins.features import TimmFeatures, efficientnet_lite0, random_resnet18
from lt_plugins.models import DCGANGenerator
from lt_plugins.search import save_image_grid

# scikit-image data file -> licence, as its loader's docstring states it.
PHOTOS = {
    "astronaut.png": "public domain (NASA)",
    "coffee.png": "CC0 (Rachel Michetti)",
    "chelsea.png": "CC0 (Stefan van der Walt)",
    "rocket.jpg": "public domain (SpaceX)",
    "hubble_deep_field.jpg": "public domain (NASA)",
    "retina.jpg": "CC0 1.0 (Häggström, Wikimedia Commons)",
}


def patches(short_side: int, stride: int, size: int = 32) -> torch.Tensor:
    """Every photo's grid of ``size``×``size`` patches, as (N, 3, size, size) in [-1, 1]."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    out = []
    for name in PHOTOS:
        image = lt.load_images(_one(folder / name), image_size=short_side, channels=3)  # centre crop + resize
        tiles = image.unfold(2, size, stride).unfold(3, size, stride)  # (1, 3, rows, cols, size, size)
        out.append(tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, size, size))
    return torch.cat(out)


def _one(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)[None]


def metric_net() -> TimmFeatures:
    return random_resnet18(seed=0)  # the CLI's RGB metric network (--metric-features auto)


def run_one(real: torch.Tensor, dense: bool, steps: int, seed: int, loss_net, measure, work: Path) -> dict:
    config = lt.TicketConfig(density=1.0 if dense else 0.1, seed=seed)
    gen = lt.wrap(DCGANGenerator(nz=100, ngf=32, nc=3, image_size=32), config)
    if dense:
        gen = lt.unwrap(gen)  # the same seeded start, every weight trainable
    search = lt.TicketSearch(gen, lt.MomentMatching(loss_net), latent_dim=100, batch_size=64, dense=dense,
                             seed=seed, progress=False)
    began = time.perf_counter()
    search.run(real, steps=steps)
    seconds = time.perf_counter() - began
    samples = search.sample(gen)
    path = work / f"{'dense' if dense else 'ticket10'}_seed{seed}.png"
    save_image_grid(samples, path)
    return {**measure(gen), "seconds_per_step": seconds / steps, "samples": str(path),
            "final_loss": search.result.losses[-1]}


def write_sheet(real: torch.Tensor, results: dict[str, dict], out: Path) -> Path:
    """One PNG: 64 real patches (a seeded pick) beside each trained variant's first seed."""
    from sheet import sample_sheet  # benchmarks/ is on the path when the script runs
    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))[:64]
    save_image_grid(real[pick], out / "paper_rgb_samples" / "real.png")
    grids = [("real patches", out / "paper_rgb_samples" / "real.png")]
    grids += [(name, next(iter(runs.values()))["samples"]) for name, runs in results.items() if name != "random init"]
    sample_sheet([("", grids)], out / "paper_rgb_samples.png")
    return out / "paper_rgb_samples.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--short-side", type=int, default=256)
    parser.add_argument("--stride", type=int, default=16)
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    real = patches(args.short_side, args.stride)
    print(f"{len(real)} patches of 32x32 from {len(PHOTOS)} photos", flush=True)
    loss_net = efficientnet_lite0(input_size=None)
    other = metric_net()

    def measure(gen) -> dict:
        fd = lt.evaluate(gen, real, other, n=args.eval_samples, latent_dim=100)
        own = lt.evaluate(gen, real, loss_net, n=args.eval_samples, latent_dim=100)
        return {"fd": fd["fd"], "precision": fd["precision"], "recall": fd["recall"], "fd_loss_net": own["fd"]}

    work = args.out / "paper_rgb_samples"
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {"random init": {}, "dense": {}, "ticket 10%": {}}
    for seed in args.seeds:
        start = lt.wrap(DCGANGenerator(nz=100, ngf=32, nc=3, image_size=32), lt.TicketConfig(density=1.0, seed=seed))
        results["random init"][str(seed)] = measure(lt.unwrap(start))
        for name, dense in (("dense", True), ("ticket 10%", False)):
            results[name][str(seed)] = run_one(real, dense, args.steps, seed, loss_net, measure, work)
            print(name, seed, json.dumps(results[name][str(seed)]), flush=True)
    lines = [
        f"DCGAN 32x32 on {len(real)} scikit-image photo patches; loss: moment matching on EfficientNet-Lite0 "
        f"(ImageNet) features; {args.steps} steps, batch 64, seeds {args.seeds}; FD on {args.eval_samples} samples "
        "vs every patch",
        f"{'variant':<12} {'FD random ResNet-18':>20} {'precision':>9} {'recall':>7} {'FD loss net*':>12} {'s/step':>7}",
    ]
    for name, runs in results.items():
        mean = {k: float(np.mean([r[k] for r in runs.values()])) for k in ("fd", "precision", "recall", "fd_loss_net")}
        step = np.mean([r["seconds_per_step"] for r in runs.values()]) if "seconds_per_step" in next(iter(runs.values())) else None
        lines.append(f"{name:<12} {mean['fd']:>20.3f} {mean['precision']:>9.3f} {mean['recall']:>7.3f} "
                     f"{mean['fd_loss_net']:>12.3f} {'-' if step is None else f'{step:.2f}':>7}")
    lines.append("* in the features the loss matched: not an independent measure")
    text = "\n".join(lines)
    print("\n" + text)
    with atomic_path(args.out / "paper_rgb.json") as tmp:
        tmp.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "photos": PHOTOS,
                                   "patches": len(real), "results": results}, indent=1))
    with atomic_path(args.out / "paper_rgb.txt") as tmp:
        tmp.write_text(text + "\n")
    print("samples:", write_sheet(real, results, args.out))


if __name__ == "__main__":
    main()
