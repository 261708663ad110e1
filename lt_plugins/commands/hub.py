"""``lt-plugins push / pull / sample``: tickets to and from the Hugging Face Hub, and sample grids.

Each ``add_*`` function registers one subcommand on an ``argparse`` subparsers object, with
``set_defaults(func=...)``; the command line calls ``args.func(args)``.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="lt-plugins")
    >>> sub = parser.add_subparsers(dest="command")
    >>> for add in (add_push, add_pull, add_sample):
    ...     _ = add(sub)
    >>> args = parser.parse_args(["pull", "me/dcgan-10pct", "--revision", "v1"])
    >>> args.func is pull_command, args.revision
    (True, 'v1')
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..generate import latent_sample
from ..ticket import Ticket, TicketError, image_grid
from .search import add_generator_options, applied_ticket

_TOKEN_HELP = "Hugging Face token; default: HF_TOKEN or the stored `hf auth login`."


def push_command(args: argparse.Namespace) -> str:
    """Check the ticket in ``args.dir`` (the same checks as loading) and upload it to ``args.repo_id``."""
    ticket = Ticket.from_pretrained(Path(args.dir))  # a Path: only ever the local folder, never the Hub
    info = ticket.push_to_hub(
        args.repo_id, private=args.private, token=args.token, commit_message=args.commit_message, revision=args.revision
    )
    url = getattr(info, "commit_url", None) or str(info)
    print(f"Pushed {ticket} to {args.repo_id}: {url}")
    return url


def pull_command(args: argparse.Namespace) -> Path:
    """Download and check the ticket ``args.repo_id``; copy it to ``args.out`` when given."""
    ticket = Ticket.from_pretrained(
        args.repo_id, revision=args.revision, token=args.token, force_download=args.force_download
    )
    folder = ticket.path
    if args.out is not None:
        folder = ticket.save_pretrained(args.out, repo_id=args.repo_id)
    print(f"{ticket}\n{folder}")
    return folder


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def sample_command(args: argparse.Namespace) -> Path:
    """Rebuild the ticket's model from its spec and write a grid of ``args.n`` samples to ``args.out``."""
    if args.n < 1:
        raise TicketError(f"--n {args.n}: ask for at least one sample.")
    device = _device(args.device)
    ticket, generator, call = applied_ticket(args, device)
    images = latent_sample(generator, call, args.n, torch.Generator().manual_seed(args.seed), device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images).save(out)
    print(f"Wrote {args.n} samples of {ticket} to {out}")
    return out


def image_path(text: str) -> str:
    """``--out`` of ``sample``: a file path whose extension names an image format (argparse ``type=``).

    Example:
        >>> image_path("grid.png")
        'grid.png'
        >>> image_path("grid")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: 'grid' has no image file extension; name a file such as grid.png.
    """
    from PIL import Image

    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; name the image file to write, e.g. {text}/grid.png.")
    if Path(text).suffix.lower() not in Image.registered_extensions():
        raise argparse.ArgumentTypeError(f"{text!r} has no image file extension; name a file such as grid.png.")
    return text


def add_push(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``lt-plugins push DIR REPO_ID``."""
    parser = subparsers.add_parser(
        "push",
        help="Upload a saved ticket folder to the Hugging Face Hub.",
        description=(
            "Check the ticket saved in DIR (sizes, hashes, shapes and bit counts, as when loading it) and "
            "upload it to the Hub repo REPO_ID in one commit, creating the repo if needed. The model card "
            "is regenerated so that its loading snippet names REPO_ID. HF_ENDPOINT and HF_TOKEN are honoured."
        ),
    )
    parser.add_argument(
        "dir", metavar="DIR", help="Folder written by Ticket.save_pretrained (holds ticket_config.json)."
    )
    parser.add_argument("repo_id", metavar="REPO_ID", help="Hub repo to upload to, e.g. me/dcgan-10pct.")
    parser.add_argument("--private", action="store_true", default=None, help="Create the repo as private.")
    parser.add_argument("--token", default=None, help=_TOKEN_HELP)
    parser.add_argument("--commit-message", default=None, help="Commit message (default: states the density).")
    parser.add_argument("--revision", default=None, help="Branch to commit to (created if missing); default main.")
    parser.set_defaults(func=push_command)
    return parser


def add_pull(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``lt-plugins pull REPO_ID [--revision REV] [--out DIR]``."""
    parser = subparsers.add_parser(
        "pull",
        help="Download a ticket from the Hugging Face Hub and check it.",
        description=(
            "Download the ticket REPO_ID into the Hugging Face cache (or reuse the cached copy; with "
            "HF_HUB_OFFLINE=1 only the cache is used), check every file, print a summary and the folder. "
            "With --out, also save a copy of the ticket there."
        ),
    )
    parser.add_argument(
        "repo_id", metavar="REPO_ID", help="Hub repo id, e.g. me/dcgan-10pct (a local ticket folder works too)."
    )
    parser.add_argument("--revision", default=None, help="Branch, tag or commit sha (default: main).")
    parser.add_argument("--out", default=None, help="Folder to save a copy of the ticket to.")
    parser.add_argument("--token", default=None, help=_TOKEN_HELP)
    parser.add_argument(
        "--force-download", action="store_true",
        help="Download every file again even if it is cached (e.g. after a 'changed or corrupted' error).",
    )
    parser.set_defaults(func=pull_command)
    return parser


def add_sample(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``lt-plugins sample REPO_ID_OR_DIR --n 64 --out grid.png``."""
    parser = subparsers.add_parser(
        "sample",
        help="Draw a grid of samples from a ticket (built-in model families).",
        description=(
            "Load the ticket (a folder or a Hub repo id), rebuild its model from the spec it records "
            "(DCGAN, StyleGAN and diffusers UNet2DModel; other families need the Python API and your "
            "model), verify it, and save a grid of N samples as a PNG. Latents come from --seed on the "
            "CPU, so a seed gives the same images on any device. UNets are sampled with 50 DDIM steps."
        ),
    )
    parser.add_argument("ticket", metavar="REPO_ID_OR_DIR", help="Ticket folder or Hub repo id.")
    parser.add_argument("--n", type=int, default=64, help="Number of samples (default: 64).")
    parser.add_argument("--out", default="grid.png", type=image_path, help="PNG file to write (default: grid.png).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the latents (default: 0).")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available).")
    parser.add_argument("--revision", default=None, help="Branch, tag or commit sha of a Hub ticket.")
    parser.add_argument("--token", default=None, help=_TOKEN_HELP)
    parser.add_argument("--force-download", action="store_true",
                        help="Download a Hub ticket again even if it is cached (repairs a damaged cache).")
    add_generator_options(parser)
    parser.set_defaults(func=sample_command)
    return parser
