"""Every generator family side by side: random init, dense training, and 10% / 30% tickets, same objective and steps.

For each family -- DCGAN, StyleGAN2-style, diffusers UNet2DModel (the networks of examples/) --
one network is drawn from a seed and then (a) measured as drawn, (b) trained densely, and
(c) searched for tickets at 10% and 30% of its weights, (b) and (c) with the same objective,
batch and number of steps. GANs: moment matching of mnist_feature_net(seed=0) features. UNet:
the DDPM denoising loss (epsilon prediction, 1000 linear steps), measured on 8-step DDIM
samples. FD: N generated vs N real MNIST digits in mnist_feature_net(seed=1) features, with the
FD of N real vs N other real digits as the floor. Wall time is that of the search/training loop.
Prints one table; writes it and the raw numbers to benchmarks/results/families.{txt,json}, and
each variant's final sample grid to families_samples.png.

    python benchmarks/families.py [--steps 600] [--eval-samples 1000] [--families dcgan stylegan unet]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

import lt_plugins as lt
from lt_plugins.data import load_mnist
from lt_plugins.diffusion import DDIMGenerator
from lt_plugins.features import mnist_feature_net
from lt_plugins.metrics import embed, evaluate, frechet_distance
from lt_plugins.objectives import DenoisingObjective

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from dcgan_mnist import make_generator as make_dcgan  # noqa: E402
from stylegan_mnist import make_generator as make_stylegan  # noqa: E402
from unet_ddpm_mnist import make_unet  # noqa: E402

from sheet import sample_sheet  # noqa: E402

DENSITIES = (0.1, 0.3)
SAMPLE_STEPS = 8


@dataclass
class Family:
    name: str
    objective_name: str
    build: Callable[[], nn.Module]
    objective: Callable[[], lt.Objective]
    latent_dim: int | None  # None: the objective feeds the model itself (UNet)
    batch_size: int

    def as_generator(self, model: nn.Module) -> tuple[nn.Module, int]:
        """(a generator of latents, its latent size), for `evaluate`."""
        if self.latent_dim is not None:
            return model, self.latent_dim
        sampler = DDIMGenerator(model, steps=SAMPLE_STEPS)
        return sampler, sampler.latent_dim


def families() -> dict[str, Family]:
    moments = lambda: lt.MomentMatching(mnist_feature_net())  # noqa: E731
    return {
        "dcgan": Family("DCGAN", "moment matching", make_dcgan, moments, 100, 64),
        "stylegan": Family("StyleGAN2-style", "moment matching", make_stylegan, moments, 64, 64),
        "unet": Family("UNet2DModel", "DDPM denoising", make_unet, lambda: DenoisingObjective(seed=0), None, 32),
    }


def fresh(family: Family, density: float, seed: int) -> nn.Module:
    """The family's network drawn from ``seed``: wrapped at ``density``, or dense (density 1, unwrapped)."""
    torch.manual_seed(seed)  # the model's own init: biases and constants the ticket seed does not draw
    config = lt.TicketConfig(density=min(density, 1.0), seed=seed)  # the family's targets and scale_fan
    model = lt.wrap(family.build(), config)
    return lt.unwrap(model) if density >= 1.0 else model


def fd(family: Family, model: nn.Module, real: torch.Tensor, metric_net: nn.Module, n: int) -> float:
    generator, latent_dim = family.as_generator(model)
    return evaluate(generator, real[:n], metric_net, n=n, latent_dim=latent_dim)["fd"]


def run_family(family: Family, steps: int, n: int, seed: int, real: torch.Tensor, metric_net: nn.Module,
               work: Path) -> dict:
    dense = fresh(family, 1.0, seed)
    result = {"family": family.name, "objective": family.objective_name, "steps": steps,
              "weights": sum(p.numel() for p in dense.parameters()), "fd": {"random": fd(family, dense, real, metric_net, n)},
              "seconds": {}, "final_loss": {}}
    variants = [("dense", dense)] + [(f"{d:.0%}", fresh(family, d, seed)) for d in DENSITIES]
    for name, model in variants:
        search = (lt.DenseSearch if name == "dense" else lt.TicketSearch)(
            model, family.objective(), family.latent_dim, batch_size=family.batch_size, seed=seed, device="cpu",
            progress=False, n_samples=64, checkpoint_every=steps, output_dir=work / f"{family.name}_{name.rstrip('%')}")
        search.run(real, steps=steps)
        result["seconds"][name] = search.result.seconds_per_step * steps  # the loop alone, not the final samples
        losses = search.result.losses
        result["final_loss"][name] = sum(losses[-20:]) / len(losses[-20:])
        result.setdefault("samples", {})[name] = str(search.output_dir / "samples" / f"step_{steps:06d}.png")
        result["fd"][name] = fd(family, model, real, metric_net, n)
        print(f"  {family.name:<16} {name:>6}: FD {result['fd'][name]:8.2f}  ({result['seconds'][name]:.0f} s)", flush=True)
    return result


@torch.no_grad()
def real_floor(real: torch.Tensor, metric_net: nn.Module, n: int) -> float:
    """FD of n real digits vs n other real digits: what a perfect generator would score."""
    return frechet_distance(embed(metric_net, real[:n]), embed(metric_net, real[n : 2 * n]))


def table(results: list[dict], steps: int, n: int, floor: float) -> str:
    head = (f"{'family':<17}{'objective':<17}{'weights':>9}{'random':>9}{'dense':>9}{'10%':>9}{'30%':>9}"
            f"{'s dense':>9}{'s 10%':>7}{'s 30%':>7}")
    lines = [f"MNIST 32x32, {steps} steps, batch 64 (UNet 32), seed 0. FD (lower is better) of {n} generated vs {n} real",
             f"digits in mnist_feature_net(seed=1) features; UNet samples: {SAMPLE_STEPS}-step DDIM. "
             f"Real vs real: FD {floor:.2f}.", head]
    for r in results:
        f, s = r["fd"], r["seconds"]
        lines.append(f"{r['family']:<17}{r['objective']:<17}{r['weights']:>9,}{f['random']:>9.2f}{f['dense']:>9.2f}"
                     f"{f['10%']:>9.2f}{f['30%']:>9.2f}{s['dense']:>9.0f}{s['10%']:>7.0f}{s['30%']:>7.0f}")
    lines.append("random: the seeded network as drawn; dense: all its weights trained; 10%/30%: tickets, no weight "
                 "trained; s: wall time of the search/training loop, seconds. Adam, beta1 0.5, each family's default lr")
    lines.append("(lt_plugins.adapters; scores / dense: DCGAN 0.1 / 3e-3, StyleGAN 3e-4 / 3e-4, UNet 3e-3 / 1e-3).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600, help="steps of every search and dense training")
    parser.add_argument("--eval-samples", type=int, default=1000, help="generated (and real) images per FD")
    parser.add_argument("--seed", type=int, default=0, help="seed of the networks, scores and latents")
    parser.add_argument("--families", nargs="+", choices=sorted(families()), default=["dcgan", "stylegan", "unet"])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads; 1 because on a shared 2-core machine 2 threads thrashed (10x slower)")
    parser.add_argument("--work", default="benchmarks/out/families", help="checkpoints and sample grids")
    parser.add_argument("--out", default="benchmarks/results", help="where families.txt and families.json go")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    real = load_mnist(image_size=32)
    metric_net = mnist_feature_net(seed=1)
    floor = real_floor(real, metric_net, args.eval_samples)
    began = time.perf_counter()
    results = [run_family(families()[name], args.steps, args.eval_samples, args.seed, real, metric_net, Path(args.work))
               for name in args.families]
    text = table(results, args.steps, args.eval_samples, floor) + f"\nTotal wall time {time.perf_counter() - began:.0f} s."
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "families.txt").write_text(text + "\n")
    sample_sheet([(r["family"], list(r["samples"].items())) for r in results], out / "families_samples.png")
    (out / "families.json").write_text(json.dumps({"steps": args.steps, "eval_samples": args.eval_samples,
                                                   "seed": args.seed, "real_vs_real_fd": floor,
                                                   "torch_threads": torch.get_num_threads(), "results": results},
                                                  indent=2))


if __name__ == "__main__":
    main()
