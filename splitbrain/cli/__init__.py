"""The ``splitbrain`` command line: one subcommand per module, argparse, no traceback on misuse.

The command line is where output is configured: the library logs through ``logging`` (logger
``splitbrain``), and ``main`` prints its messages (information to stdout, warnings to stderr)
and hides Lightning's advertisements.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..data import DatasetError
from ..errors import RunError, WriteError
from ..weights import WeightsFileError
from . import (
    colorize,
    export,
    extract,
    finetune,
    import_caffe,
    info,
    knn,
    prepare,
    pretrain,
    probe,
    rgbd,
)
from .common import ArgumentParser, UsageError, positive

__all__ = ["ArgumentParser", "UsageError", "build_parser", "main", "positive"]

COMMANDS = (
    prepare, pretrain, probe, knn, finetune, colorize, extract, export, import_caffe, rgbd, info
)  # fmt: skip


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="splitbrain",
        description="Split-Brain Autoencoders: self-supervised learning by cross-channel "
        "prediction (Zhang, Isola & Efros, CVPR 2017).",
    )
    parser.add_argument("--version", action="version", version=f"splitbrain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for module in COMMANDS:
        for command in module.register(sub):
            command.set_defaults(run=module.run, parser=command)
    return parser


class _ConsoleHandler(logging.Handler):
    """Messages as plain lines: information to stdout, warnings and errors to stderr (looked
    up when written, so redirected or captured streams are honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # logging must never take the run down
            self.handleError(record)


def _is_advert(record: logging.LogRecord) -> bool:
    """Lightning's tips ("💡 ...") are not the user's business."""
    return not str(record.msg).startswith("💡")


def configure_logging() -> None:
    """Show the library's messages on the console, once however often ``main`` runs."""
    logger = logging.getLogger("splitbrain")
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler())
    logger.setLevel(logging.INFO)
    lightning = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _is_advert not in lightning.filters:
        lightning.addFilter(_is_advert)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    configure_logging()
    try:
        return args.run(args) or 0
    except UsageError as error:
        args.parser.error(str(error))
    except (
        DatasetError, WeightsFileError, ValueError, FileNotFoundError, RunError, WriteError
    ) as error:  # fmt: skip
        # Bad input, not a bug: one line naming the file and the problem.
        print(f"splitbrain: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
