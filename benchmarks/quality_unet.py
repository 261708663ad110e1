"""Diffusion tickets on MNIST: FD, recognisable share and rarest class of DDIM samples against density.

The examples' diffusers UNet2DModel (``families.py``'s "unet", 686,769 weights), drawn from a seed:
a ticket at each density searched with the DDPM denoising loss (epsilon prediction by default, 1000
linear steps; no weight is trained), and dense training (density 1) of the same network with the same
loss and steps. Each is sampled with DDIM at every ``--sample-steps`` count and measured as
``quality.py`` measures the GANs: ``--eval-samples`` samples in the shipped classifier
mnist_feature_net(seed=1), FD against the 10,000 shipped digits, the share classified with
confidence above 0.9 and the rarest class among those; mean ± sd over seeds. Runs go through
``sweep.run_grid`` (one JSON line each in ``OUT/quality_unet.jsonl``: a rerun skips finished runs)
and checkpoint every 500 steps under ``OUT/quality_unet_runs/``, so a killed run resumes where it
stopped. Writes ``OUT/quality_unet.{txt,json}`` and ``OUT/quality_unet_samples.png`` (the first
seed's samples of every cell and step count).

``--moment-weight w`` adds the package's moment matching (``--moment-features``, per-map normalised)
of ``--moment-steps``-step DDIM samples to the DDPM loss, differentiated through the sampler
(`DenoisingObjective`'s ``moments``): the UNet learns to draw in few steps as the GANs do.
``--prediction-type`` sets what the UNet predicts (the noise, v or the clean image), and
``--latent-components k`` starts the moment term's samples (and the measured ones) from noise
drawn from a mixture of k Gaussians (`lt.LatentMixture`) instead of N(0, I). ``--init-from DIR`` makes
each run a second stage: its scores start from the finished run of the same density and seed under
``DIR/quality_unet_runs`` (another ``--out`` of this script), and the run's own lr schedule (warmup and
cosine over ``--steps``) starts afresh, e.g. to move a ticket searched on 4-step samples to 8-step ones.

    python benchmarks/quality_unet.py [--densities 1 0.5 0.3 0.1] [--seeds 0 1 2] [--steps 4000]
                                      [--batch 32] [--lr 3e-3] [--dense-lr 1e-3] [--beta1 0.9]
                                      [--sample-steps 8 25] [--prediction-type epsilon] [--moment-weight 0]
                                      [--moment-steps 4] [--moment-features NAME] [--latent-components 0]
                                      [--latent-separation 0.8] [--init-from DIR] [--eval-samples 2000]
                                      [--workers 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler
from torchvision.utils import save_image

import lt_plugins as lt
from lt_plugins.checkpoints import CHECKPOINT_NAME, read_checkpoint
from lt_plugins.diffusion import DDIMGenerator
from lt_plugins.generate import LatentCall, LatentMixture
from lt_plugins.features import feature_net, mnist_feature_net
from lt_plugins.metrics import evaluate
from lt_plugins.objectives import DenoisingObjective
from lt_plugins.objectives.denoising import PREDICTION_TYPES
from lt_plugins.recipes import DIFFUSION_MOMENT_FEATURES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from families import families, fresh  # noqa: E402
from quality import _label, report  # noqa: E402
from sheet import sample_sheet  # noqa: E402
from sweep import run_grid  # noqa: E402

CHECKPOINT_EVERY = 500


def run(task: dict[str, Any]) -> dict[str, Any]:
    """One search (or dense training) of the UNet; the task with, per DDIM step count, FD,
    recognisable share and rarest class, and the loop's seconds."""
    torch.set_num_threads(1)
    dense = task["density"] is None
    unet = fresh(families()["unet"], 1.0 if dense else task["density"], task["seed"])
    if "init_from" in task:
        unet.load_state_dict(first_stage(Path(task["init_from"]) / CHECKPOINT_NAME)["generator"])
    objective = objective_of(task)
    search = (lt.DenseSearch if dense else lt.TicketSearch)(
        unet, objective, batch_size=task["batch"], lr=task["dense_lr" if dense else "lr"],
        betas=(task["beta1"], 0.999), seed=task["seed"], device="cpu", progress=False,
        output_dir=task["work"], checkpoint_every=CHECKPOINT_EVERY)
    search.run(lt.load_images("mnist"), steps=task["steps"], resume=search.checkpoint_path.exists())
    return {**task, "ddim": measure(unet, objective, task), "seconds": search.result.seconds_per_step * task["steps"]}


def finished_run(path: Path, fix: str) -> dict[str, Any]:
    """The checkpoint at ``path`` of a finished run of this script (its sha256 checked); ``fix`` tells the user
    how to make the run when there is none."""
    if not path.is_file():
        raise FileNotFoundError(f"No run of quality_unet.py at {path}: {fix}")
    state = read_checkpoint(path)
    if state["step"] != state["steps"]:
        raise ValueError(f"The run at {path} stopped at step {state['step']} of {state['steps']}; finish it "
                         "(rerun it: it resumes) before building on it.")
    return state


def first_stage(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path`` of the finished run a second stage (``--init-from``) starts from."""
    return finished_run(path, "--init-from needs a first stage: run that density and seed with this script and "
                              "that --out first.")


# The keys of a task that `objective_of` reads besides its seed: a run's objective, which pruned_unet.py copies.
OBJECTIVE_KEYS = ("batch", "prediction_type", "moment_weight", "moment_steps", "moment_features", "latent_components",
                  "latent_separation")


def objective_of(task: dict[str, Any]) -> DenoisingObjective:
    """The task's DDPM loss, plus moment matching of ``task["moment_features"]`` on ``task["moment_steps"]``-step
    DDIM samples (differentiated through the sampler) with weight ``task["moment_weight"]`` when that is not 0."""
    weight = task.get("moment_weight", 0.0)
    scheduler = DDPMScheduler(prediction_type=task.get("prediction_type", "epsilon"))
    if not weight:
        return DenoisingObjective(scheduler, seed=task["seed"])
    moments = lt.MomentMatching(feature_net(task["moment_features"]))
    prior = (LatentMixture(task["latent_components"], task["latent_separation"], task["seed"])
             if task.get("latent_components") else None)
    return DenoisingObjective(scheduler, seed=task["seed"], moments=moments, moment_weight=weight,
                              moment_steps=task["moment_steps"], moment_batch=task["batch"], prior=prior)


def objective_text(task: dict[str, Any]) -> str:
    """What `objective_of` builds for ``task``, in words, for a table's header."""
    text = f"DDPM denoising ({task.get('prediction_type', 'epsilon')}, 1000 linear steps)"
    if task.get("moment_weight"):
        text += (f" + {task['moment_weight']:g} x moment matching of {task['moment_features']} on "
                 f"{task['moment_steps']}-step DDIM samples")
    if task.get("latent_components"):
        text += f" from noise of {task['latent_components']} Gaussians (separation {task['latent_separation']})"
    return text


def measure(unet: torch.nn.Module, objective: DenoisingObjective, task: dict[str, Any]) -> dict[str, dict[str, float]]:
    """FD, recognisable share and rarest class of ``unet``'s DDIM samples at each of ``task["sample_steps"]``,
    keyed by the step count; 64 samples saved to ``task["samples"]`` (formatted with ``steps``) when given."""
    by_steps = {}
    for steps in task["sample_steps"]:
        generator = DDIMGenerator(unet, objective.scheduler, steps=steps)
        metrics = evaluate(generator, "mnist", mnist_feature_net(seed=1), n=task["eval_samples"],
                           latent_dim=generator.latent_dim, prior=objective.prior, seed=task["seed"])
        by_steps[str(steps)] = {key: metrics[key] for key in ("fd", "recognisable", "rarest_class", "recall")}
        if "samples" in task:
            with torch.no_grad():
                z = LatentCall((generator.latent_dim,), prior=objective.prior).latents(64, torch.Generator().manual_seed(0))
                path = Path(task["samples"].format(steps=steps))
                path.parent.mkdir(parents=True, exist_ok=True)
                save_image(generator(z), path, nrow=8, normalize=True, value_range=(-1, 1))
    return by_steps


def per_sampler(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (run, DDIM step count), labelled ``<family>/<steps>`` (``unet/8``), as `quality.summarise`
    takes them."""
    return [{**row, **figures, "family": f"{row['family']}/{steps}"} for row in rows
            for steps, figures in row["ddim"].items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--densities", nargs="+", type=float, default=[1.0, 0.5, 0.3, 0.1])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam lr of the scores (the UNet family's default)")
    parser.add_argument("--dense-lr", type=float, default=1e-3, help="Adam lr of dense training")
    parser.add_argument("--beta1", type=float, default=0.9, help="Adam beta1 (DDPM training's 0.9, not the GANs' 0.5)")
    parser.add_argument("--sample-steps", nargs="+", type=int, default=[8, 25], help="DDIM steps per sample")
    parser.add_argument("--prediction-type", choices=PREDICTION_TYPES, default="epsilon",
                        help="what the UNet predicts: the noise, v (Salimans & Ho) or the clean image")
    parser.add_argument("--moment-weight", type=float, default=0.0,
                        help="weight of moment matching on few-step DDIM samples, added to the DDPM loss; 0: none")
    parser.add_argument("--moment-steps", type=int, default=4, help="DDIM steps of the samples the moment term sees")
    parser.add_argument("--moment-features", default=DIFFUSION_MOMENT_FEATURES,
                        help="the moment term's feature networks (feature_net names)")
    parser.add_argument("--latent-components", type=int, default=0,
                        help="the moment term's and the samples' starting noise from a mixture of this many "
                             "Gaussians (lt.LatentMixture; 0: N(0, 1))")
    parser.add_argument("--latent-separation", type=float, default=LatentMixture.separation,
                        help="weight of the mixture's component means")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="a first stage's --out: each run's scores start from its finished run there")
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if args.latent_components and not args.moment_weight:
        parser.error("--latent-components sets the noise the moment term's samples start from; give --moment-weight too.")
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = []
    for density in args.densities:
        for seed in args.seeds:
            task = {"family": "unet", "density": None if density >= 1 else density, "seed": seed, "steps": args.steps,
                    "batch": args.batch, "lr": args.lr, "dense_lr": args.dense_lr, "beta1": args.beta1,
                    "sample_steps": args.sample_steps, "eval_samples": args.eval_samples,
                    "work": str(args.out / "quality_unet_runs" / f"{_label(density).rstrip('%')}_{seed}")}
            if args.prediction_type != "epsilon":  # only when set: rows of earlier grids stay finished
                task["prediction_type"] = args.prediction_type
            if args.moment_weight:
                task.update(moment_weight=args.moment_weight, moment_steps=args.moment_steps,
                            moment_features=args.moment_features)
            if args.latent_components:
                task.update(latent_components=args.latent_components, latent_separation=args.latent_separation)
            if args.init_from:
                task["init_from"] = str(args.init_from / "quality_unet_runs" / Path(task["work"]).name)
                first_stage(Path(task["init_from"]) / CHECKPOINT_NAME)  # refuses a missing or unfinished one now
            if seed == args.seeds[0]:
                task["samples"] = str(args.out / "quality_unet_samples" / f"{_label(density)}_ddim{{steps}}.png")
            tasks.append(task)
    rows = run_grid(tasks, args.out / "quality_unet.jsonl", args.workers, runner=run)
    objective = objective_text(tasks[0])
    if args.init_from:
        objective += f", scores from the finished runs of {args.init_from}"
    report(per_sampler(rows), args.out, "quality_unet",
           f"MNIST 32x32, UNet2DModel, {args.steps} steps, batch {args.batch}, {objective}, Adam beta1 {args.beta1}, "
           f"lr {args.lr} scores / {args.dense_lr} dense; unet/k: k-step DDIM samples",
           args.eval_samples, runs=rows)
    sheet = [(f"{steps}-step DDIM", [(_label(t["density"]), t["samples"].format(steps=steps)) for t in tasks if "samples" in t])
             for steps in args.sample_steps]
    sample_sheet(sheet, args.out / "quality_unet_samples.png")


if __name__ == "__main__":
    main()
