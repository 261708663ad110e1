"""Masks over a trained UNet (``weight_init="keep"``) against magnitude pruning of it, neither retrained.

The base is ``quality_unet.py``'s dense UNet of ``--seed``, trained on MNIST with the DDPM loss (its
final checkpoint, ``OUT/quality_unet_runs/dense_<seed>/checkpoint.pt``: run that benchmark with
``--densities 1`` first). At each density, on every weight the UNet family masks, layer by layer:

- ``magnitude``: ``torch.nn.utils.prune.l1_unstructured`` keeps the largest weights;
- ``ticket``: ``lt.wrap(base, TicketConfig(weight_init="keep", score_init="magnitude"))`` starts from
  that same mask and searches the scores for ``--steps`` steps with the base's own denoising loss.

No weight changes in either: only which weights are kept. The base itself is the ``trained`` row.
Each is measured as ``quality_unet.py`` measures (``--eval-samples`` k-step DDIM samples in
mnist_feature_net(seed=1): FD, recognisable share, rarest class). Runs go through ``sweep.run_grid``
(one JSON line each in ``OUT/pruned_unet.jsonl``: a rerun skips finished runs) and searches
checkpoint under ``OUT/pruned_unet_runs/``. Writes ``OUT/pruned_unet.{txt,json}`` and
``OUT/pruned_unet_samples.png``.

    python benchmarks/pruned_unet.py [--densities 0.9 0.7 0.5] [--seed 0] [--steps 1000] [--batch 32]
                                     [--lr 1e-3] [--sample-steps 8 25] [--eval-samples 2000]
                                     [--workers 2] [--out benchmarks/results]
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
from lt_plugins.objectives import DenoisingObjective

sys.path.insert(0, str(Path(__file__).resolve().parent))
from families import families  # noqa: E402
from quality import _label, report  # noqa: E402
from quality_unet import CHECKPOINT_EVERY, finished_run, measure, per_sampler  # noqa: E402
from sheet import sample_sheet  # noqa: E402
from sweep import run_grid  # noqa: E402

METHODS = ("magnitude", "ticket")


def trained_base(path: Path) -> torch.nn.Module:
    """The UNet family's network holding the dense weights of ``quality_unet.py``'s finished checkpoint at ``path``."""
    state = finished_run(path, "train it first: python benchmarks/quality_unet.py --densities 1 --seeds <seed> "
                               "--out <out>, or point --base at a dense checkpoint.pt of it.")
    unet = families()["unet"].build()
    unet.load_state_dict(state["generator"])
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
    objective = DenoisingObjective(seed=task["seed"])
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
    parser.add_argument("--seed", type=int, default=0, help="the base's seed (quality_unet.py's) and the search's")
    parser.add_argument("--base", type=Path, help="the dense checkpoint.pt (default: quality_unet.py's of --seed)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam lr of the scores, which start at |weight|")
    parser.add_argument("--sample-steps", nargs="+", type=int, default=[8, 25], help="DDIM steps per sample")
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    base = args.base or args.out / "quality_unet_runs" / f"dense_{args.seed}" / CHECKPOINT_NAME
    trained_base(base)  # a missing base fails here, not once per run
    common = {"seed": args.seed, "base": str(base), "sample_steps": args.sample_steps,
              "eval_samples": args.eval_samples}
    tasks = [{**common, "family": "trained", "density": None}]
    for density in args.densities:
        tasks.append({**common, "family": "magnitude", "density": density})
        tasks.append({**common, "family": "ticket", "density": density, "steps": args.steps, "batch": args.batch,
                      "lr": args.lr, "work": str(args.out / "pruned_unet_runs" / f"{_label(density).rstrip('%')}")})
    for task in tasks:
        name = f"{task['family']}_{_label(task['density'])}_ddim{{steps}}.png"
        task["samples"] = str(args.out / "pruned_unet_samples" / name)
    rows = run_grid(tasks, args.out / "pruned_unet.jsonl", args.workers, runner=run)
    report(per_sampler(rows), args.out, "pruned_unet",
           f"MNIST 32x32, UNet2DModel trained dense ({base}); magnitude: torch.nn.utils.prune.l1_unstructured per "
           f"layer; ticket: scores from |weight|, {args.steps} steps of its DDPM loss, batch {args.batch}, "
           f"lr {args.lr}; "
           "no weight retrained; <method>/k: k-step DDIM samples", args.eval_samples, runs=rows)
    sheet = [(f"{method} {steps}-step", [(_label(t["density"]), t["samples"].format(steps=steps))
                                         for t in tasks if t["family"] in (method, "trained")])
             for method in METHODS for steps in args.sample_steps]
    sample_sheet(sheet, args.out / "pruned_unet_samples.png")


if __name__ == "__main__":
    main()
