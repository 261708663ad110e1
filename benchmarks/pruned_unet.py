"""Masks over a trained UNet (``weight_init="keep"``) against magnitude pruning of it, neither retrained.

The bases are ``quality_unet.py``'s dense UNets, one per ``--seeds`` seed: the finished runs of density 1
under ``--base`` (that script's ``--out``; its ``quality_unet.jsonl`` says what each was trained with).
At each density, on every weight the UNet family masks, layer by layer:

- ``magnitude``: ``torch.nn.utils.prune.l1_unstructured`` keeps the largest weights;
- ``ticket``: ``lt.wrap(base, TicketConfig(weight_init="keep", score_init="magnitude"))`` starts from
  that same mask and searches the scores for ``--steps`` steps with the base's own objective (its
  prediction type, moment term, starting noise and batch).

No weight changes in either: only which weights are kept. The base itself is the ``trained`` row.
Each is measured as ``quality_unet.py`` measures (``--eval-samples`` k-step DDIM samples, from the
base's starting noise, in mnist_feature_net(seed=1): FD, recognisable share, rarest class, recall;
mean ± sd over the seeds). Runs go through ``sweep.run_grid`` (one JSON line each in
``OUT/pruned_unet.jsonl``: a rerun skips finished runs; the measurements run before the searches)
and searches checkpoint under ``OUT/pruned_unet_runs/``. Writes ``OUT/pruned_unet.{txt,json}`` and
``OUT/pruned_unet_samples.png`` (the first seed's samples).

    python benchmarks/pruned_unet.py [--densities 0.9 0.7 0.5] [--seeds 0] [--base OUT] [--steps 1000]
                                     [--lr 1e-3] [--sample-steps 8 25] [--eval-samples 2000]
                                     [--workers 1] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.utils.prune as prune

import lt_plugins as lt
from lt_plugins.checkpoints import CHECKPOINT_NAME

sys.path.insert(0, str(Path(__file__).resolve().parent))
from families import families  # noqa: E402
from quality import _label, report  # noqa: E402
from quality_unet import (CHECKPOINT_EVERY, OBJECTIVE_KEYS, finished_run, measure, objective_of,  # noqa: E402
                          objective_text, per_sampler)
from sheet import sample_sheet  # noqa: E402
from sweep import finished, run_grid  # noqa: E402

METHODS = ("magnitude", "ticket")


def base_run(out: Path, seed: int) -> dict[str, Any]:
    """The objective (`OBJECTIVE_KEYS`) and finished checkpoint (``"base"``) of ``quality_unet.py``'s dense run of
    ``seed`` under ``out`` (its ``--out``)."""
    fix = f"train it first: python benchmarks/quality_unet.py --densities 1 --seeds {seed} --out {out}"
    rows = [row for row in finished(out / "quality_unet.jsonl") if row["density"] is None and row["seed"] == seed]
    if not rows:
        raise FileNotFoundError(f"No dense run of seed {seed} in {out / 'quality_unet.jsonl'}: {fix}")
    checkpoint = out / "quality_unet_runs" / Path(rows[-1]["work"]).name / CHECKPOINT_NAME
    finished_run(checkpoint, fix)
    return {**{key: rows[-1][key] for key in OBJECTIVE_KEYS if key in rows[-1]}, "base": str(checkpoint)}


def trained_base(path: Path) -> torch.nn.Module:
    """The UNet family's network holding the dense weights of ``quality_unet.py``'s finished checkpoint at ``path``."""
    unet = families()["unet"].build()
    unet.load_state_dict(finished_run(path, "finish the dense run (rerun quality_unet.py: it resumes).")["generator"])
    return unet


def magnitude_pruned(unet: torch.nn.Module, density: float) -> torch.nn.Module:
    """``unet`` with the smallest weights of every tensor the UNet family masks set to zero, by
    ``torch.nn.utils.prune`` (keeping ``density`` of each)."""
    names = lt.masks(lt.wrap(copy.deepcopy(unet), lt.TicketConfig(weight_init="keep")))
    modules = dict(unet.named_modules())
    for name in names:
        module, param = modules[name.rpartition(".")[0]], name.rpartition(".")[2]
        prune.l1_unstructured(module, param, amount=1 - density)
        prune.remove(module, param)
    return unet


def run(task: dict[str, Any]) -> dict[str, Any]:
    """One row: the base, its magnitude pruning, or a ticket searched over it; measured per DDIM step count."""
    torch.set_num_threads(1)
    unet = trained_base(Path(task["base"]))
    objective = objective_of(task)
    seconds = 0.0
    if task["family"] == "magnitude":
        unet = magnitude_pruned(unet, task["density"])
    elif task["family"] == "ticket":
        config = lt.TicketConfig(density=task["density"], seed=task["seed"], weight_init="keep", score_init="magnitude")
        unet = lt.wrap(unet, config)
        search = lt.TicketSearch(unet, objective, batch_size=task["batch"], lr=task["lr"], betas=(0.9, 0.999),
                                 seed=task["seed"], device="cpu", progress=False, output_dir=task["work"],
                                 checkpoint_every=CHECKPOINT_EVERY)
        search.run(lt.load_images("mnist"), steps=task["steps"], resume=search.checkpoint_path.exists())
        seconds = search.result.seconds_per_step * task["steps"]
    return {**task, "ddim": measure(unet, objective, task), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--densities", nargs="+", type=float, default=[0.9, 0.7, 0.5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="the bases' seeds, and their searches'")
    parser.add_argument("--base", type=Path, help="quality_unet.py's --out holding the dense runs (default: --out)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam lr of the scores, which start at |weight|")
    parser.add_argument("--sample-steps", nargs="+", type=int, default=[8, 25], help="DDIM steps per sample")
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    bases = {seed: base_run(args.base or args.out, seed) for seed in args.seeds}  # a missing base fails here
    measured, searched = [], []
    for seed, base in bases.items():
        common = {**base, "seed": seed, "sample_steps": args.sample_steps, "eval_samples": args.eval_samples}
        measured.append({**common, "family": "trained", "density": None})
        for density in args.densities:
            measured.append({**common, "family": "magnitude", "density": density})
            searched.append({**common, "family": "ticket", "density": density, "steps": args.steps, "lr": args.lr,
                             "work": str(args.out / "pruned_unet_runs" / f"{_label(density).rstrip('%')}_{seed}")})
    tasks = measured + searched  # the measurements first: they take minutes, the searches hours
    for task in tasks:
        if task["seed"] == args.seeds[0]:
            task["samples"] = str(args.out / "pruned_unet_samples" / f"{task['family']}_{_label(task['density'])}"
                                  "_ddim{steps}.png")
    rows = run_grid(tasks, args.out / "pruned_unet.jsonl", args.workers, runner=run)
    order = [(family, density) for density in [None, *args.densities] for family in ("trained", *METHODS)]
    rows.sort(key=lambda row: order.index((row["family"], row["density"])))
    first = bases[args.seeds[0]]
    report(per_sampler(rows), args.out, "pruned_unet",
           f"MNIST 32x32, UNet2DModel trained dense ({first['base']}, seeds {args.seeds}; "
           f"{objective_text(first)}, batch {first['batch']}); magnitude: torch.nn.utils.prune.l1_unstructured per "
           f"layer; ticket: scores from |weight|, {args.steps} steps of the base's objective, lr {args.lr}; "
           "no weight retrained; <method>/k: k-step DDIM samples", args.eval_samples, runs=rows)
    sheet = [(f"{method} {steps}-step", [(_label(t["density"]), t["samples"].format(steps=steps))
                                         for t in tasks if t["family"] in (method, "trained") and "samples" in t])
             for method in METHODS for steps in args.sample_steps]
    sample_sheet(sheet, args.out / "pruned_unet_samples.png")


if __name__ == "__main__":
    main()
