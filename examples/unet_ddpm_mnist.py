"""Find a strong lottery ticket in a diffusers UNet2DModel on MNIST, with the DDPM denoising loss.

The UNet's weights (convolutions, attention projections, time embedding) are drawn from a
seed and frozen; a score per weight is trained so that the top `--density` of each layer,
alone, predicts the noise a diffusers DDPMScheduler added to real digits. Optionally
(`--moment-weight`), feature moments of 4-step DDIM samples are matched too, with the plain MNIST
networks and their class probabilities (`DIFFUSION_MOMENT_FEATURES`): on MNIST that term, not the
DDPM loss, is what makes a CPU-sized search draw digits (README, "Diffusion tickets"); sample it
with `--sample-steps 4`, the steps it was matched at. The ticket is
saved, optionally pushed to the Hub, rebuilt from disk, and sampled with DDIM (the images of
diffusers' DDIMPipeline); FD of DDIM samples is measured with a feature network trained from another seed.

    python examples/unet_ddpm_mnist.py                      # a few minutes on a laptop CPU
    python examples/unet_ddpm_mnist.py --density 0.3 --moment-weight 1 --sample-steps 4 --out out/unet30
    python examples/unet_ddpm_mnist.py --moment-weight 1 --prediction-type sample --sample-steps 4 --out out/unet_x0
    python examples/unet_ddpm_mnist.py --push me/unet-mnist-10pct
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch import nn
from torchvision.utils import save_image

import lt_plugins as lt
from lt_plugins.data import load_mnist
from lt_plugins.diffusion import DDIMGenerator, sample
from lt_plugins.features import feature_net, mnist_feature_net
from lt_plugins.metrics import evaluate
from lt_plugins.objectives import DenoisingObjective
from lt_plugins.objectives.denoising import PREDICTION_TYPES
from lt_plugins.recipes import DIFFUSION_MOMENT_FEATURES


def make_unet() -> UNet2DModel:
    """A small diffusers UNet for 32x32 grey images, self-attention at 8x8."""
    return UNet2DModel(
        sample_size=32, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(16, 32, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), norm_num_groups=8,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="search steps (default: %(default)s)")
    parser.add_argument("--density", type=float, default=0.1, help="fraction of weights kept (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the frozen weights, scores and noise (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="noised real images per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam learning rate of the scores (default: the UNet family's, 3e-3; 0.1, right for GANs, stalls a UNet)")
    parser.add_argument("--sample-steps", type=int, default=8, help="DDIM steps per sample (default: %(default)s)")
    parser.add_argument("--prediction-type", choices=PREDICTION_TYPES, default="epsilon",
                        help="what the UNet predicts: the noise (DDPM's), v, or the clean image ('sample'), which keeps "
                             "few-step DDIM samples clean under the moment term (README; default: %(default)s)")
    parser.add_argument("--moment-weight", type=float, default=0.0,
                        help="weight of feature moment matching on 4-step DDIM samples; 0 turns it off (default: %(default)s)")
    parser.add_argument("--latent-components", type=int, default=0,
                        help="start the moment term's samples (and the ticket's) from noise drawn from a mixture of this "
                             "many Gaussians, lt.LatentMixture (0: N(0, 1); default: %(default)s)")
    parser.add_argument("--eval-samples", type=int, default=500,
                        help="FD on this many generated vs as many real images (default: %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu, cuda, ... (default: %(default)s)")
    parser.add_argument("--out", default="out/unet_ddpm_mnist", help="output folder (default: %(default)s)")
    parser.add_argument("--push", metavar="REPO_ID", help="also upload the ticket to this Hub repo")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> float:
    """Search, save (and push) the ticket, sample a grid from the rebuilt ticket; return its FD."""
    args = parse_args(argv)
    device = args.device
    moments = lt.MomentMatching(feature_net(DIFFUSION_MOMENT_FEATURES, device=device)) if args.moment_weight else None
    if args.latent_components and not moments:
        raise SystemExit("--latent-components sets the noise the moment term's samples start from; give --moment-weight too.")
    prior = lt.LatentMixture(args.latent_components, seed=args.seed) if args.latent_components else None
    # The diffusers family's defaults: convolutions, attention and time embedding masked, scale_fan=False.
    scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type=args.prediction_type)
    return denoising_example(args, make_unet, scheduler, rebuild=lambda: None,
                             moments=moments, moment_weight=args.moment_weight, prior=prior)


def denoising_example(
    args: argparse.Namespace,
    make_unet: Callable[[], nn.Module],
    scheduler: Any,
    rebuild: Callable[[], nn.Module | None],
    sample_shape: tuple[int, int, int] | None = None,
    **objective_kwargs: Any,
) -> float:
    """The UNet examples' flow: wrap, search with the denoising objective, measure, save, rebuild, sample.

    ``scheduler`` is a diffusers noise scheduler or the UNet's own betas; ``rebuild()`` gives the model
    the saved ticket is applied to (None: built from the ticket's spec); ``sample_shape`` is needed for a
    UNet that carries no diffusers config.
    """
    out = Path(args.out)
    real = load_mnist(image_size=32)
    prior = objective_kwargs.get("prior")  # the starting noise of the samples, when not N(0, 1)

    def fd_of(unet: nn.Module) -> float:
        # DDIM (eta = 0) maps the starting noise to an image: a generator of latents like any other.
        generator = DDIMGenerator(unet, scheduler, steps=args.sample_steps, sample_shape=sample_shape)
        return evaluate(generator, real[: args.eval_samples], mnist_feature_net(args.device, seed=1),
                        n=args.eval_samples, latent_dim=generator.latent_dim, prior=prior)["fd"]

    torch.manual_seed(args.seed)  # seeds the model's own init: what the ticket seed does not redraw (biases, norms)
    unet = lt.wrap(make_unet(), lt.TicketConfig(density=args.density, seed=args.seed)).to(args.device)
    fd_random = fd_of(unet)
    objective = DenoisingObjective(scheduler, sample_shape=sample_shape, seed=args.seed,
                                   sample_steps=args.sample_steps, **objective_kwargs)
    search = lt.TicketSearch(unet, objective, batch_size=args.batch_size, lr=getattr(args, "lr", None),
                             seed=args.seed, device=args.device, output_dir=out / "search")
    ticket = search.run(real, steps=args.steps)

    fd = fd_of(unet)
    ticket.metrics = {"fd": fd, "fd_random_init": fd_random, "eval_samples": args.eval_samples,
                      "ddim_steps": args.sample_steps}
    ticket.save_pretrained(out / "ticket")
    if args.push:
        print(f"pushed: {ticket.push_to_hub(args.push).commit_url}")

    rebuilt = lt.Ticket.from_pretrained(out / "ticket").apply(rebuild()).to(args.device)
    images = sample(rebuilt, 64, steps=args.sample_steps, generator=0, scheduler=scheduler, sample_shape=sample_shape,
                    prior=prior)
    save_image(images, out / "samples.png", normalize=True, value_range=(-1, 1))
    print(f"FD random init {fd_random:.2f} -> ticket ({lt.density(unet).overall:.0%} of weights) {fd:.2f}  "
          f"[{args.eval_samples} {args.sample_steps}-step DDIM samples vs {args.eval_samples} real, "
          "mnist_feature_net(seed=1)]")
    print(f"ticket: {out / 'ticket'}   samples: {out / 'samples.png'}")
    return fd


if __name__ == "__main__":
    main()
