"""Find a strong lottery ticket in a StyleGAN2-style generator on MNIST: no weight is trained.

The generator's weights -- mapping MLP, modulated convolutions, style affines, toRGB -- are
drawn from a seed and frozen; a score per weight is trained so that the top `--density` of
each layer, alone, makes the features of generated digits match those of real ones (moment
matching). The modulated convolutions call F.conv2d on ``self.weight`` themselves: the masks
reach them through torch.nn.utils.parametrize, with no change to the model's code. The ticket
(mask bits + seed) is saved, optionally pushed to the Hub, rebuilt from disk, and sampled; FD
is measured with a feature network trained from another seed than the one the loss matched.

    python examples/stylegan_mnist.py                      # a few minutes on a laptop CPU
    python examples/stylegan_mnist.py --density 0.3 --steps 600 --out out/stylegan30
    python examples/stylegan_mnist.py --push me/stylegan-mnist-10pct
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

import lt_plugins as lt
from lt_plugins.data import load_mnist
from lt_plugins.features import mnist_feature_net
from lt_plugins.metrics import evaluate
from lt_plugins.models import StyleGANGenerator

NZ = 64


def make_generator() -> StyleGANGenerator:
    """The third-party network: mapping MLP, modulated convs, style affines and toRGB all get masks."""
    return StyleGANGenerator(z_dim=NZ, w_dim=64, img_resolution=32, img_channels=1, channel_max=64)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="search steps (default: %(default)s)")
    parser.add_argument("--density", type=float, default=0.1, help="fraction of weights kept (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the frozen weights and scores (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="latents per step (default: %(default)s)")
    parser.add_argument("--eval-samples", type=int, default=1000,
                        help="FD on this many generated vs as many real images (default: %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu, cuda, ... (default: %(default)s)")
    parser.add_argument("--out", default="out/stylegan_mnist", help="output folder (default: %(default)s)")
    parser.add_argument("--push", metavar="REPO_ID", help="also upload the ticket to this Hub repo")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> float:
    """Search, save (and push) the ticket, sample a grid from the rebuilt ticket; return its FD."""
    args = parse_args(argv)
    out = Path(args.out)
    real = load_mnist(image_size=32)
    fd_of = lambda model: evaluate(  # noqa: E731
        model, real[: args.eval_samples], mnist_feature_net(args.device, seed=1), n=args.eval_samples, latent_dim=NZ
    )["fd"]

    torch.manual_seed(args.seed)  # seeds the model's own init: what the ticket seed does not redraw (biases, constants)
    gen = lt.wrap(make_generator(), lt.TicketConfig(density=args.density, seed=args.seed)).to(args.device)
    fd_random = fd_of(gen)
    objective = lt.MomentMatching(mnist_feature_net(args.device))
    search = lt.TicketSearch(gen, objective, latent_dim=NZ, batch_size=args.batch_size, seed=args.seed,
                             device=args.device, output_dir=out / "search")
    ticket = search.run(real, steps=args.steps)

    fd = fd_of(gen)
    ticket.metrics = {"fd": fd, "fd_random_init": fd_random, "eval_samples": args.eval_samples}
    ticket.save_pretrained(out / "ticket")
    if args.push:
        print(f"pushed: {ticket.push_to_hub(args.push).commit_url}")

    rebuilt = lt.Ticket.from_pretrained(out / "ticket").apply(make_generator()).to(args.device).eval()
    with torch.no_grad():
        z = torch.randn(64, NZ, generator=torch.Generator().manual_seed(0)).to(args.device)
        save_image(rebuilt(z), out / "samples.png", normalize=True, value_range=(-1, 1))
    print(f"FD random init {fd_random:.2f} -> ticket ({lt.density(gen).overall:.0%} of weights) {fd:.2f}  "
          f"[{args.eval_samples} generated vs {args.eval_samples} real, mnist_feature_net(seed=1)]")
    print(f"ticket: {out / 'ticket'}   samples: {out / 'samples.png'}")
    return fd


if __name__ == "__main__":
    main()
