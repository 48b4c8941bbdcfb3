"""The ``splitbrain`` command line: one subcommand per job, argparse, no traceback on misuse."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .data import DatasetError
from .weights import WeightsFileError


class ArgumentParser(argparse.ArgumentParser):
    """Misuse prints one line and exits with status 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


class UsageError(Exception):
    """An argument that parsed but makes no sense; reported like a parse error."""


def positive(kind: type):
    """An argparse type for positive numbers of ``kind`` (int or float)."""

    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="splitbrain",
        description="Split-Brain Autoencoders: self-supervised learning by cross-channel "
        "prediction (Zhang, Isola & Efros, CVPR 2017).",
    )
    parser.add_argument("--version", action="version", version=f"splitbrain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    from .commands import register_all

    register_all(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args) or 0
    except UsageError as error:
        parser_for = getattr(args, "parser", parser)
        parser_for.error(str(error))
    except (DatasetError, WeightsFileError, ValueError, FileNotFoundError) as error:
        # Bad input, not a bug: one line naming the file and the problem.
        print(f"splitbrain: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
