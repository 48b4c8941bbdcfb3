"""The paper's Table 2 at CIFAR-10 scale: every variant pre-trained on the same budget, then
the linear probe on conv1..conv5, beside the paper's ImageNet numbers.

    python benchmarks/paper_table.py            # all 13 rows (112 min on a quiet 2-core CPU)
    python benchmarks/paper_table.py --quick    # gaussian, l2ab-cl, ab2l-cl, splitbrain on
                                                # the 5k exact-pixel subset (about 10 min)
    python benchmarks/paper_table.py --imagenette   # real photographs at the paper's 180 px
                                                # geometry: 5 rows, linear probe and kNN

Resumable: finished rows are read back from the JSON and not run again, and a pre-training
that was stopped resumes from its last checkpoint. The JSON, a markdown table and a PNG plot
go to benchmarks/results/ (paper_table_cifar10[_quick].{json,md,png},
paper_table_imagenette.{json,md,png}). The table's machinery is the library's
(splitbrain.reproduce.paper_table); this script holds the command line and where the files go.
"""

import argparse
import dataclasses
import logging
from pathlib import Path

from splitbrain.cli import positive
from splitbrain.init import INITS
from splitbrain.reproduce.paper_table import (
    IMAGENETTE_ROWS,
    PAPER,
    QUICK_ROWS,
    TableError,
    build_table,
    chosen_rows,
    full_recipe,
    imagenette_recipe,
    markdown,
    quick_recipe,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true", help="four key rows on the 5k exact subset")
    which.add_argument(
        "--imagenette",
        action="store_true",
        help=f"{', '.join(IMAGENETTE_ROWS)} on Imagenette at the paper's geometry",
    )
    p.add_argument("--rows", help=f"comma-separated rows (default: all; {', '.join(PAPER)})")
    p.add_argument("--json", type=Path, help="results file (default benchmarks/results/...)")
    p.add_argument("--runs", type=Path, help="pre-training runs (default runs/paper_table/...)")
    p.add_argument(
        "--data",
        help="pre-training and probe training images, FORMAT:PATH (a relative PATH is from "
        "the repository root; default folder:../shared/data/cifar10)",
    )
    p.add_argument("--test-data", help="probe test images (default: the test split of --data)")
    for name in ("width", "epochs", "lr"):
        p.add_argument(f"--{name}", type=positive(float), help="override the recipe's value")
    p.add_argument("--batch-size", type=positive(int), help="override the pre-training batch")
    p.add_argument(
        "--resize-max", type=positive(int), help="pre-training's scale jittering (resize..this)"
    )
    p.add_argument(
        "--init",
        choices=INITS,
        help="override the recipe's pre-training initialisation (gaussian for CIFAR-10; "
        "kraehenbuehl, the paper's, for --imagenette)",
    )
    p.add_argument("--probe-epochs", type=positive(int), help="override the probe's epochs")
    p.add_argument("--seed", type=int, help="override the recipe's seed (pre-training, probe)")
    p.add_argument(
        "--precision",
        choices=["32-true", "bf16-mixed"],
        help="pre-training and the probe's trunk (default 32-true, the committed tables'; "
        "bf16-mixed writes a table of its own, *_bf16.json)",
    )
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    recipe = (
        quick_recipe() if args.quick else imagenette_recipe() if args.imagenette else full_recipe()
    )
    overrides = {
        "data": args.data,
        "test_data": args.test_data,
        "width": args.width,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "resize_max": args.resize_max,
        "init": args.init,
        "probe_epochs": args.probe_epochs,
        "precision": args.precision,
        "seed": args.seed,
    }
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    if args.imagenette:
        stem = "paper_table_imagenette"
    else:
        stem = "paper_table_cifar10_quick" if args.quick else "paper_table_cifar10"
        stem += "_bf16" if recipe.precision == "bf16-mixed" else ""
    path = args.json or RESULTS / f"{stem}.json"
    runs = args.runs or Path("runs") / "paper_table"
    wanted = list(QUICK_ROWS if args.quick else IMAGENETTE_ROWS if args.imagenette else PAPER)
    try:
        wanted = chosen_rows(args.rows, wanted)
        rows, order = build_table(
            recipe, wanted, path, runs, REPO, not args.no_progress, args.workers
        )
    except TableError as error:
        raise SystemExit(f"paper_table.py: {error}") from None
    print("\n" + markdown(rows, recipe, order))
    print(f"results: {path} and its .md and .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
