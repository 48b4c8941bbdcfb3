"""The ``splitbrain`` command line: one subcommand per module, argparse, no traceback on misuse.

The command line is where output is configured: the library logs through ``logging`` (logger
``splitbrain``), and ``main`` prints its messages (information to stdout, warnings to stderr,
never glued onto a progress bar) and, for the command's duration only, hides Lightning's
messages and warnings that a user cannot act on (the library says what matters in its own
lines).

Exit codes: 0 done; 1 bad input or a fault that stopped the run (one line naming the file and
the problem); 2 a misused command line; 128 + the signal's number when a stop signal
interrupted a command (130 Ctrl-C, 143 SIGTERM, 138 SIGUSR1), in one line saying what was kept
and, for a command in ``RESUMABLE``, the command that resumes it.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from tqdm import tqdm

from .. import __version__
from ..data import DatasetError
from ..errors import Interrupted, NamesSettings, RunError, SettingError, WriteError
from ..weights import WeightsFileError
from . import (
    app,
    colorize,
    detect,
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
    segment,
)
from .common import ArgumentParser, UsageError, positive

__all__ = ["ArgumentParser", "UsageError", "build_parser", "entry_point", "main", "positive"]

COMMANDS = (
    prepare, pretrain, probe, knn, finetune, segment, detect, colorize, app, extract, export,
    import_caffe, rgbd, info,
)  # fmt: skip
#: The commands whose run folder resumes: the same command again goes on where a stop left it
#: (pretrain from its newest checkpoint, the comparisons from the models they finished). An
#: interrupted one ends by naming that command.
RESUMABLE = frozenset({"pretrain", "probe", "knn", "finetune", "segment", "detect"})


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


#: Lightning's loggers of information lines (devices found, "max_steps reached", "Restoring
#: states", distributed set-up), which the library's own summary lines replace; their warnings
#: still show. Children of "lightning.pytorch", whose own level Lightning sets on import.
LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.distributed",
    "lightning.pytorch.accelerators.cuda",
    "lightning.pytorch.trainer.connectors.signal_connector",
)
#: Warnings a user of the command line cannot act on.
UNACTIONABLE = (
    r"The '\w+_dataloader' does not have many workers",  # --workers is sized for the CPU
    r"The number of training batches \(\d+\) is smaller than the logging interval",
)


class _ConsoleHandler(logging.Handler):
    """Messages as plain lines: information to stdout, warnings and errors to stderr (looked
    up when written, so redirected or captured streams are honoured), with any progress bar
    cleared first and redrawn after. With ``quiet``, only errors and the final summary."""

    def __init__(self) -> None:
        super().__init__()
        self.quiet = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.quiet and record.levelno < logging.ERROR and not getattr(record, "summary", 0):
            return
        stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
        # a terminal's line is cleared first: a loader worker knows nothing of the bar
        clear = "\r\x1b[2K" if stream.isatty() else ""
        try:
            with tqdm.external_write_mode(file=stream):
                stream.write(clear + self.format(record) + "\n")
                stream.flush()
        except Exception:  # logging must never take the run down
            self.handleError(record)


def _is_advert(record: logging.LogRecord) -> bool:
    """Lightning's tips ("💡 ...") are not the user's business."""
    return not str(record.msg).startswith("💡")


def configure_logging(quiet: bool = False) -> None:
    """Show the library's messages on the console, once however often ``main`` runs."""
    logger = logging.getLogger("splitbrain")
    handler = next((h for h in logger.handlers if isinstance(h, _ConsoleHandler)), None)
    if handler is None:
        handler = _ConsoleHandler()
        logger.addHandler(handler)
    handler.quiet = quiet
    logger.setLevel(logging.INFO)
    lightning = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _is_advert not in lightning.filters:
        lightning.addFilter(_is_advert)


@contextmanager
def quiet_third_parties() -> Iterator[None]:
    """Lightning's information lines, the unactionable warnings and the traceback of
    TensorBoard's writer thread hidden while a command runs; the logger levels, warning
    filters and thread hook are restored afterwards."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    hook = threading.excepthook

    def quieter_hook(args: threading.ExceptHookArgs) -> None:
        """TensorBoard's writer thread ends on a file error by handing it to the run, whose
        next write raises it and which reports it in one line: no traceback for it."""
        writer = type(args.thread).__module__.startswith("tensorboard.")
        if writer and isinstance(args.exc_value, OSError):
            logging.getLogger("splitbrain").debug("%s: %s", args.thread.name, args.exc_value)
        else:
            hook(args)

    with warnings.catch_warnings():
        for message in UNACTIONABLE:
            warnings.filterwarnings("ignore", message=message)
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        threading.excepthook = quieter_hook
        try:
            yield
        finally:
            threading.excepthook = hook
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def flag(setting: str) -> str:
    """The command-line flag of a configuration field: the one place they are translated."""
    return "--" + setting.replace("_", "-")


def _resume_hint(argv: Sequence[str]) -> str:
    """The command that resumes an interrupted run: the same one, less ``--overwrite`` (or
    an abbreviation of it), which would start it again."""
    kept = [arg for arg in argv if not (len(arg) > 3 and "--overwrite".startswith(arg))]
    return "to resume: " + shlex.join(["splitbrain", *kept])


@contextmanager
def stops_end_the_command(signals: Sequence[signal.Signals]) -> Iterator[None]:
    """While a command runs, a stop signal that no training run handles ends it at once with
    ``Interrupted``: one line, exit 128 + its number. Otherwise SIGTERM and SIGUSR1 kill it
    without a word (while it scans data, say), and Lightning takes Ctrl-C inside a fit for a
    failure (exit 1, silently) and SIGTERM for a request to end it (exit 0). A training run's
    ``StopOnSignal`` takes the signals over and hands them back. A repeat of a signal other
    than Ctrl-C changes nothing while the command stops; a forked worker (a scan's or a
    shard writer's pool) ends by the signal as it would without this handler, which its pool's
    ``terminate`` relies on (loader workers ignore the signals: ``ignore_stop_signals``). The
    earlier handlers are restored after; outside the main thread, which alone can set them,
    nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    command = os.getpid()
    received: list[signal.Signals] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum)
        if os.getpid() != command:  # a forked worker: ended as before (a pool's terminate)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if received and name != signal.SIGINT:
            return
        received.append(name)
        raise Interrupted(name, "and stopped at once, keeping what was finished")

    # a handler set outside Python (getsignal: None) could not be put back: left alone
    previous = {s: handler for s in signals if (handler := signal.getsignal(s)) is not None}
    for signum in previous:
        signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    configure_logging(quiet=getattr(args, "quiet", False))
    resumes = args.command in RESUMABLE
    hint = f"; {_resume_hint(argv)}" if resumes else ""
    # Ctrl-C stays Python's KeyboardInterrupt where no Lightning fit would take it for a fault
    stops = (signal.SIGTERM, signal.SIGUSR1, *((signal.SIGINT,) if resumes else ()))
    try:
        with quiet_third_parties(), stops_end_the_command(stops):
            return args.run(args) or 0
    except UsageError as error:
        args.parser.error(str(error))
    except SettingError as error:
        args.parser.error(error.message(flag))
    except (
        DatasetError, WeightsFileError, ValueError, FileNotFoundError, RunError, WriteError
    ) as error:  # fmt: skip
        # Bad input, not a bug: one line naming the file and the problem.
        text = error.message(flag) if isinstance(error, NamesSettings) else str(error)
        print(f"splitbrain: error: {text}", file=sys.stderr)
        return 1
    except Interrupted as interruption:
        print(f"splitbrain: {interruption}{hint}", file=sys.stderr)
        return interruption.exit_code
    except KeyboardInterrupt:
        print(f"splitbrain: interrupted by SIGINT{hint}", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        configure_logging(quiet=False)  # --quiet was for this command only
    return 0


def entry_point() -> None:
    """The ``splitbrain`` command: ``main``, and a command that Ctrl-C interrupted ends by
    SIGINT itself, as Python does, so that a shell loop around it stops too ($? is 130)."""
    code = main()
    if code == 128 + signal.SIGINT:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    sys.exit(code)
