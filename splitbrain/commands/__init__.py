"""Subcommands of the ``splitbrain`` command line, one module each."""

from __future__ import annotations

import argparse

from . import info, pretrain


def register_all(sub: argparse._SubParsersAction) -> None:
    for module in (pretrain, info):
        parser = module.register(sub)
        parser.set_defaults(run=module.run, parser=parser)
