"""The web page in a real browser: Debian's Chromium (``apt-get install chromium``), driven by
Playwright, for tests/e2e/test_app.py and benchmarks/app_screenshot.py. The browser is the
system's: nothing here downloads one (``playwright install`` is never run)."""

import importlib.util
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin

CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and none of the browser's own calls out (updates, sync, field trials).
ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip
#: Seconds a batch of photographs may take on the page.
TIMEOUT = 120


def missing() -> str | None:
    """What the browser test lacks (Debian's chromium, playwright, gradio), or None."""
    absent = [] if CHROMIUM.exists() else [f"{CHROMIUM} (apt-get install chromium)"]
    absent += [
        f'{name} (pip install -e ".[test]")'
        for name in ("playwright", "gradio")
        if importlib.util.find_spec(name) is None
    ]
    return ", ".join(absent) or None


@contextmanager
def chromium(width: int = 1200, height: int = 900) -> Iterator[tuple[object, list[str]]]:
    """A page of a headless Chromium, closed after, and the list of every request it makes to
    another host than 127.0.0.1."""
    from playwright.sync_api import sync_playwright

    outside = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(ARGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("request", lambda request: _note_outside(outside, request.url))
            yield page, outside
        finally:
            browser.close()


def _note_outside(outside: list[str], url: str) -> None:
    if not url.startswith(("http://127.0.0.1", "data:", "blob:")):
        outside.append(url)


def colour(page, url: str, photos: Sequence[Path], coloured: int) -> list[bytes]:
    """Open the page at ``url``, drop ``photos`` on it, press Colour and wait for ``coloured``
    results; the coloured PNGs, as downloaded from the page's links."""
    page.goto(url)
    page.locator("#photos input[type=file]").set_input_files([str(p) for p in photos])
    page.locator("#photos a[download]").nth(len(photos) - 1).wait_for(timeout=TIMEOUT * 1000)
    page.click("#run")
    links = page.locator("#downloads a[download]")
    links.nth(coloured - 1).wait_for(timeout=TIMEOUT * 1000)
    hrefs = [links.nth(k).get_attribute("href") for k in range(links.count())]
    page.wait_for_function("Array.from(document.images).every(image => image.complete)")
    return [page.request.get(urljoin(url, href)).body() for href in hrefs]
