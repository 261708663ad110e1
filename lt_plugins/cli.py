"""The `lt-plugins` command: search, eval, demo, sample, push, pull, env."""

from __future__ import annotations

import argparse
import sys

from .commands.env import add_env
from .commands.hub import add_pull, add_push, add_sample
from .commands.search import add_demo, add_eval, add_search, load_yaml_defaults
from .search import end_processes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lt-plugins",
        description="Strong lottery tickets in generators: find, measure, share.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (add_search, add_eval, add_demo, add_sample, add_push, add_pull, add_env):
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lt-plugins``.

    Example:
        >>> main(["env"])  # doctest: +ELLIPSIS
        - python: ...
        0
    """
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        load_yaml_defaults(args.parser, args.config)
        args = parser.parse_args(argv)
    args.func(args)
    end_processes()  # under accelerate launch / torchrun; nothing to do in one process
    return 0


if __name__ == "__main__":
    sys.exit(main())
