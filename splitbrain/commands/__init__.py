"""Subcommands of the ``splitbrain`` command line, one module each."""

from __future__ import annotations

import argparse

from . import finetune, info, knn, pretrain, probe, rgbd


def register_all(sub: argparse._SubParsersAction) -> None:
    for module in (pretrain, probe, knn, finetune, rgbd, info):
        parser = module.register(sub)
        parser.set_defaults(run=module.run, parser=parser)
