"""The `lt-plugins` command: search, eval, demo, sample, push, pull, env.

Every error ends the command with one line, ``lt-plugins: error: ...``, and exit status 1
(2 for a wrong option or config file, as argparse does); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys

from .commands.env import add_env
from .commands.hub import add_pull, add_push, add_sample
from .commands.search import add_demo, add_eval, add_search, load_yaml_defaults
from .distributed import end_processes

DEBUG_HELP = "On an error, show the full Python traceback instead of one line."


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: ...)" to an option's help unless its help already names its default or it has none.

    Example:
        >>> parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
        >>> _ = parser.add_argument("--n", type=int, default=64, help="samples (default: 64)")
        >>> _ = parser.add_argument("--lr", type=float, default=None, help="learning rate")
        >>> _ = parser.add_argument("--k", type=int, default=5, help="neighbours")
        >>> text = parser.format_help()
        >>> text.count("default"), "(default: 5)" in text
        (2, True)
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The ``lt-plugins`` parser with every subcommand, each accepting ``--debug``.

    Example:
        >>> build_parser().parse_args(["env", "--debug"]).debug
        True
    """
    parser = argparse.ArgumentParser(
        prog="lt-plugins",
        description="Strong lottery tickets in generators: find, measure, share.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (add_search, add_eval, add_demo, add_sample, add_push, add_pull, add_env):
        add(subparsers)
    for sub in subparsers.choices.values():
        sub.formatter_class = HelpFormatter
        # SUPPRESS: a subcommand that was not given --debug leaves the main parser's value alone.
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def error_line(err: BaseException) -> str:
    """One line saying what went wrong: the message (with its notes), prefixed by the type unless it is ours.

    Example:
        >>> error_line(ValueError("n=0 must be\\n at least 1"))
        'n=0 must be at least 1'
        >>> error_line(RuntimeError())
        'RuntimeError (no message)'
    """
    message = " ".join(str(err).split()) or "(no message)"
    notes = " ".join(" ".join(str(n).split()) for n in getattr(err, "__notes__", ()))
    if type(err) not in (ValueError, TypeError, FileNotFoundError) and type(err).__name__ != "TicketError":
        message = f"{type(err).__name__}{':' if str(err).strip() else ''} {message}"
    return f"{message} ({notes})" if notes else message


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lt-plugins``; returns the exit status.

    Example:
        >>> main(["env"])  # doctest: +ELLIPSIS
        - python: ...
        0
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "config", None):
            load_yaml_defaults(args.parser, args.config)
            args = parser.parse_args(argv)
        args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("lt-plugins: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        print(f"lt-plugins: error: {error_line(err)} (--debug shows the traceback)", file=sys.stderr)
        return 1
    finally:
        end_processes()  # under accelerate launch / torchrun; nothing to do in one process
    return 0


if __name__ == "__main__":
    sys.exit(main())
