"""The README's picture of the web page: `splitbrain app`'s page served with the networks given,
the photographs dropped on it in Debian's Chromium (as the browser test drives it,
tests/browser.py), and the page photographed once the results are in.

    python benchmarks/app_screenshot.py --weights W.safetensors --segmenter S.safetensors \
        --detector D.safetensors PHOTO... --out docs/images/app.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import chromium, colour, missing  # noqa: E402

import splitbrain as sb  # noqa: E402
from splitbrain.app.page import start  # noqa: E402
from splitbrain.app.photos import Networks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--segmenter")
    parser.add_argument("--detector")
    parser.add_argument("--out", type=Path, default=Path("docs/images/app.png"))
    args = parser.parse_args()
    if absent := missing():
        sys.exit(f"needs {absent}")
    networks = Networks(*(sb.load(w) if w else None
                          for w in (args.weights, args.segmenter, args.detector)))  # fmt: skip
    page = start(networks)
    try:
        with chromium(1200, 1000) as (browser, _):
            colour(browser, page.local_url, args.photos, coloured=len(args.photos))
            browser.wait_for_timeout(6000)  # the warnings' toasts, if any, fade
            args.out.parent.mkdir(parents=True, exist_ok=True)
            browser.screenshot(path=args.out, full_page=True)
    finally:
        page.close()
    print(args.out)


if __name__ == "__main__":
    main()
