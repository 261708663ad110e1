"""Absolute quality on MNIST: FD, recognisable share and rarest class against density, per family.

Every cell is a search with the package's defaults (moment matching of the features and class
probabilities of the adversarially trained mnist_feature_net(robust=True) seeds 0 and 2, per-map
normalised, the family's learning rate,
batch 64, layer scope unless ``--scope global``): a ticket at
each density, and dense training (density 1) of the same seeded network with the same loss and
steps. Measured on ``--eval-samples`` samples with the shipped classifier mnist_feature_net(seed=1),
never the loss's network: FD against the 10,000 shipped digits, the share classified with
confidence above 0.9 and the share of the rarest class among those (`lt.recognisability`);
mean ± sd over seeds. The first row measures 2,000 held-out real digits the same way.
Runs go through benchmarks/sweep.py: one JSON line each in ``OUT/quality.jsonl``, so an
interrupted run resumes. Writes ``OUT/quality.{txt,json}`` and ``OUT/quality_samples.png``
(the first seed's samples of every cell).

    python benchmarks/quality.py [--families dcgan stylegan] [--densities 1 0.5 0.3 0.1]
                                 [--seeds 0 1 2] [--steps 600] [--batch 64] [--workers 2]
                                 [--features NAME] [--warmup 0.05] [--scope layer] [--model-kwargs JSON]
                                 [--latent-components 100] [--latent-separation 0.8]
                                 [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

import lt_plugins as lt
from lt_plugins._io import atomic_path
from lt_plugins.config import SCOPES
from lt_plugins.features import HOLDOUT_EVERY, mnist_feature_net
from lt_plugins.metrics import embed, frechet_distance_from_stats, gaussian_fit, real_statistics
from lt_plugins.objectives.moments import NORMALISATIONS
from lt_plugins.recipes import SearchJob

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sheet import sample_sheet  # noqa: E402
from sweep import run_grid  # noqa: E402


def grid(families: list[str], densities: list[float], seeds: list[int], samples_dir: Path,
         **settings: Any) -> list[dict[str, Any]]:
    """One sweep task per (family, density, seed), each with ``settings``; density 1 is dense training."""
    tasks = []
    for family in families:
        for density in densities:
            for seed in seeds:
                task = {"family": family, "density": None if density >= 1 else density, "seed": seed, **settings}
                if seed == seeds[0]:
                    task["samples"] = str(samples_dir / f"{family}_{_label(density)}.png")
                tasks.append(task)
    return tasks


def _label(density: float | None) -> str:
    return "dense" if density is None or density >= 1 else f"{density:.0%}"


@torch.no_grad()
def real_row(eval_samples: int) -> dict[str, float]:
    """The held-out real digits (never seen by either network), measured as a generator's samples are."""
    real = lt.load_images("mnist")
    held_out = real[::HOLDOUT_EVERY][:eval_samples]
    net = mnist_feature_net(seed=1)
    fd = frechet_distance_from_stats(*real_statistics(net, real), *gaussian_fit(embed(net, held_out)))
    return {"fd": fd, **lt.recognisability(held_out)}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sd over seeds of every (family, density) cell."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault((row["family"], _label(row["density"])), []).append(row)
    out = []
    for (family, label), runs in cells.items():
        cell = {"family": family, "density": label, "seeds": [r["seed"] for r in runs]}
        for key in ("fd", "recognisable", "rarest_class", "recall", "seconds"):
            values = [r.get(key) for r in runs]
            if None in values:  # rows of grids run before recall was recorded
                continue
            cell[key] = statistics.fmean(values)
            cell[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out.append(cell)
    return out


MEASURED = ("samples in mnist_feature_net(seed=1): FD vs the 10,000 shipped digits, recognisable = softmax > 0.9, "
            "rarest = smallest class share among those; mean ± sd over seeds")


def report(rows: list[dict[str, Any]], out: Path, name: str, what: str, eval_samples: int,
           runs: list[dict[str, Any]] | None = None) -> str:
    """Summarise ``rows`` over seeds under ``what`` (what was run), after the real row; print the table and
    write it to ``out/name.txt``, and it with the cells and ``runs`` (default ``rows``) to ``out/name.json``."""
    cells = summarise(rows)
    real = real_row(eval_samples)
    text = table(cells, real, f"{what}; {eval_samples} {MEASURED}")
    print(text)
    with atomic_path(out / f"{name}.txt") as tmp:
        tmp.write_text(text + "\n")
    with atomic_path(out / f"{name}.json") as tmp:
        tmp.write_text(json.dumps({"real": real, "cells": cells, "runs": rows if runs is None else runs}, indent=1))
    return text


def table(cells: list[dict[str, Any]], real: dict[str, float], header: str) -> str:
    """The cells of `summarise` under ``header`` (what was run and how it is measured), after the real row."""
    lines = [header,
             f"{'family':<10}{'density':>8}{'FD':>17}{'recognisable':>17}{'rarest class':>17}{'recall':>15}"
             f"{'s/run':>8}{'seeds':>8}",
             f"{'real':<10}{'-':>8}{real['fd']:>17.2f}{real['recognisable']:>17.1%}{real['rarest_class']:>17.1%}"]
    for c in cells:
        recall = f"{c['recall']:>8.2f} ± {c['recall_sd']:<4.2f}" if "recall" in c else f"{'-':>15}"
        lines.append(f"{c['family']:<10}{c['density']:>8}{c['fd']:>10.2f} ± {c['fd_sd']:<5.2f}"
                     f"{c['recognisable']:>10.1%} ± {c['recognisable_sd']:<5.1%}"
                     f"{c['rarest_class']:>10.1%} ± {c['rarest_class_sd']:<5.1%}{recall}"
                     f"{c['seconds']:>8.0f}{len(c['seeds']):>8}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=["dcgan", "stylegan"])
    parser.add_argument("--densities", nargs="+", type=float, default=[1.0, 0.5, 0.3, 0.1])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--normalise", choices=NORMALISATIONS,
                        default=inspect.signature(lt.MomentMatching).parameters["normalise"].default)
    parser.add_argument("--warmup", type=float, default=SearchJob.warmup, help="share of steps of lr warmup")
    parser.add_argument("--scope", choices=SCOPES, default=SearchJob.scope, help="the tickets' top-k scope")
    parser.add_argument("--features", default=SearchJob.features, help="the loss's feature networks (feature_net)")
    parser.add_argument("--latent-components", type=int, default=SearchJob.latent_components,
                        help="latents from a mixture of this many Gaussians (0: N(0, 1))")
    parser.add_argument("--latent-separation", type=float, default=SearchJob.latent_separation,
                        help="weight of the mixture's component means")
    parser.add_argument("--model-kwargs", type=json.loads, default=None, help="JSON of generator arguments")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"steps": args.steps, "batch": args.batch, "eval_samples": args.eval_samples, "normalise": args.normalise,
                "features": args.features, "warmup": args.warmup, "latent_components": args.latent_components}
    if args.latent_components:
        settings["latent_separation"] = args.latent_separation
    if args.scope != SearchJob.scope:  # only when set: rows of earlier grids stay finished
        settings["scope"] = args.scope
    if args.model_kwargs:
        settings["model_kwargs"] = args.model_kwargs
    tasks = grid(args.families, args.densities, args.seeds, args.out / "quality_samples", **settings)
    rows = run_grid(tasks, args.out / "quality.jsonl", args.workers)
    latents = (f"latents from {args.latent_components} Gaussians (separation {args.latent_separation})"
               if args.latent_components else "latents N(0, 1)")
    report(rows, args.out, "quality", f"MNIST 32x32, {args.steps} steps ({args.warmup:.0%} warmup), batch {args.batch}, "
           f"{args.scope} top-k, {latents}, moment matching of {args.features} (normalise={args.normalise})",
           args.eval_samples)
    sheet = [(family, [(_label(t["density"]), t["samples"]) for t in tasks if t["family"] == family and "samples" in t])
             for family in args.families]
    sample_sheet(sheet, args.out / "quality_samples.png")


if __name__ == "__main__":
    main()
