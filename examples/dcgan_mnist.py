"""Find a strong lottery ticket in a DCGAN on MNIST: no weight is trained, only which ones to keep.

The generator's weights are drawn from a seed and frozen; a score per weight is trained so
that the top `--density` of each layer, alone, makes the features of generated digits match
those of real ones (moment matching). The ticket (mask bits + seed) is saved, optionally
pushed to the Hub, rebuilt from disk, and sampled; FD is measured with a feature network
trained from another seed than the one the loss matched.

    python examples/dcgan_mnist.py                      # ~2 minutes on a laptop CPU
    python examples/dcgan_mnist.py --density 0.3 --steps 600 --out out/dcgan30
    python examples/dcgan_mnist.py --push me/dcgan-mnist-10pct
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torchvision.utils import save_image

import lt_plugins as lt
from lt_plugins.data import load_mnist
from lt_plugins.features import mnist_feature_net
from lt_plugins.generate import LatentCall
from lt_plugins.metrics import evaluate
from lt_plugins.models import DCGANGenerator

NZ = 100


def make_generator() -> DCGANGenerator:
    """The third-party network: any nn.Module would do."""
    return DCGANGenerator(nz=NZ, ngf=32, nc=1, image_size=32)


def parse_args(argv: list[str] | None, description: str, default_out: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="search steps (default: %(default)s)")
    parser.add_argument("--density", type=float, default=0.1, help="fraction of weights kept (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the frozen weights and scores (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="latents per step (default: %(default)s)")
    parser.add_argument("--latent-components", type=int, default=lt.LatentMixture.components,
                        help="draw latents from a mixture of this many Gaussians, lt.LatentMixture; 0: N(0, 1) "
                             "(default: %(default)s)")
    parser.add_argument("--eval-samples", type=int, default=1000,
                        help="FD on this many generated vs as many real images (default: %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu, cuda, ... (default: %(default)s)")
    parser.add_argument("--out", default=default_out, help="output folder (default: %(default)s)")
    parser.add_argument("--push", metavar="REPO_ID", help="also upload the ticket to this Hub repo")
    return parser.parse_args(argv)


def search_example(make_generator: Callable[[], nn.Module], latent_dim: int | tuple[int, ...], argv: list[str] | None,
                   description: str, default_out: str, generate: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None) -> float:
    """Search, save (and push) the ticket, sample a grid from the rebuilt ticket; return its FD.

    ``latent_dim`` may be a latent shape, e.g. (100, 1, 1), and ``generate(G, z)`` says how the generator is
    called when it is not ``G(z)`` (see `lt_plugins.generate.LatentCall`)."""
    args = parse_args(argv, description, default_out)
    # Blends of two digits then fall between the mixture's components (see lt.LatentMixture).
    prior = lt.LatentMixture(args.latent_components, seed=args.seed) if args.latent_components else None
    call = LatentCall(latent_dim if isinstance(latent_dim, tuple) else (latent_dim,), generate, prior)
    out = Path(args.out)
    real = load_mnist(image_size=32)
    fd_of = lambda model: evaluate(  # noqa: E731
        model, real[: args.eval_samples], mnist_feature_net(args.device, seed=1), n=args.eval_samples,
        latent_shape=call.latent_shape, generate=generate, prior=prior,
    )["fd"]

    torch.manual_seed(args.seed)  # seeds the model's own init: what the ticket seed does not redraw (biases, constants)
    gen = lt.wrap(make_generator(), lt.TicketConfig(density=args.density, seed=args.seed)).to(args.device)
    fd_random = fd_of(gen)
    objective = lt.MomentMatching(mnist_feature_net(args.device, robust=True))  # adversarially trained: see the README
    search = lt.TicketSearch(gen, objective, latent_shape=call.latent_shape, generate=generate, prior=prior,
                             batch_size=args.batch_size, seed=args.seed, device=args.device, output_dir=out / "search")
    ticket = search.run(real, steps=args.steps)

    fd = fd_of(gen)
    ticket.metrics = {"fd": fd, "fd_random_init": fd_random, "eval_samples": args.eval_samples}
    ticket.save_pretrained(out / "ticket")
    if args.push:
        print(f"pushed: {ticket.push_to_hub(args.push).commit_url}")

    rebuilt = lt.Ticket.from_pretrained(out / "ticket").apply(make_generator()).to(args.device).eval()
    with torch.no_grad():
        z = call.latents(64, torch.Generator().manual_seed(0)).to(args.device)
        save_image(call(rebuilt, z), out / "samples.png", normalize=True, value_range=(-1, 1))
    print(f"FD random init {fd_random:.2f} -> ticket ({lt.density(gen).overall:.0%} of weights) {fd:.2f}  "
          f"[{args.eval_samples} generated vs {args.eval_samples} real, mnist_feature_net(seed=1)]")
    print(f"ticket: {out / 'ticket'}   samples: {out / 'samples.png'}")
    return fd


def main(argv: list[str] | None = None) -> float:
    return search_example(make_generator, NZ, argv, __doc__, "out/dcgan_mnist")


if __name__ == "__main__":
    main()
