"""The fault table: what a pre-training run does when something goes wrong, one row each.

    python benchmarks/faults.py                      # the exact CIFAR-10 images of ../shared
    python benchmarks/faults.py --data skimage:256   # anywhere

Not a test: the scenarios live with the tests (tests/fault_scenarios.py), which check every
row; this prints them as the table of the robustness results.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fault_scenarios import EVERY, SHARED, STEPS, Faults, markdown  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = f"npz:{SHARED}" if SHARED.exists() else "skimage:256"
    parser.add_argument("--data", default=default, help=f"default: {default}")
    parser.add_argument("--out", help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args()
    np.seterr(all="ignore")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        rows = Faults(args.data, root).all()
    print(f"data: {args.data}; {STEPS} steps, a checkpoint every {EVERY}\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
