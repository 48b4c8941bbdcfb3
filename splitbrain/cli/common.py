"""What every subcommand shares: the parser that reports misuse in one line, and argument types."""

from __future__ import annotations

import argparse


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
