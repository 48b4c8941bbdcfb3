"""The web page of ``splitbrain app`` in a real browser: Debian's Chromium, driven by Playwright,
drops a real photograph (and a file that is none) on the page served with small networks, and
reads back the coloured PNG from the page's download link. Without the browser, playwright or
gradio the tests skip, saying which; where SPLITBRAIN_REQUIRE_BROWSER is set (CI sets it) they
fail instead."""

import io
import os
import socket

import numpy as np
import pytest
import torch
from browser import chromium, colour, missing
from PIL import Image
from samples import write_app_weights
from skimage import data

import splitbrain as sb
from splitbrain.cli import main

#: Gradio's queue, on pandas 3, warns of options pandas deprecated: nothing this project can act on.
pytestmark = [
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The page with a colorizer, a segmenter and a detector, on a free port of 127.0.0.1,
    and every connection the server process tried to open to another host meanwhile."""
    if absent := missing():
        message = f"the browser test needs {absent}"
        if os.environ.get("SPLITBRAIN_REQUIRE_BROWSER"):
            pytest.fail(message + " (SPLITBRAIN_REQUIRE_BROWSER is set)")
        pytest.skip(message)
    from splitbrain.app.page import start
    from splitbrain.app.photos import Networks

    weights = write_app_weights(tmp_path_factory.mktemp("weights"))
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        for method in ("connect", "connect_ex"):
            patch.setattr(socket.socket, method, _recording(getattr(socket.socket, method), calls))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        page = start(Networks(*(sb.load(w) for w in weights)), port=port)
        try:
            yield page, weights, calls
        finally:
            page.close()


def _recording(connect, calls: list):
    """``socket.connect`` that notes every address off this machine."""

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
            "127.0.0.1", "::1", "localhost",
        ):  # fmt: skip
            calls.append(address)
        return connect(self, address)

    return guarded


def chroma(png: bytes) -> float:
    """The mean chroma (Lab) of a picture."""
    rgb = torch.tensor(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
    lab = sb.color.rgb_to_lab(rgb.permute(2, 0, 1)[None].float() / 255)
    return float(lab[0, 1:].norm(dim=0).mean())


def test_a_photograph_comes_back_coloured_at_its_size_in_a_real_browser(served, tmp_path):
    page_server, _, calls = served
    photo, broken = tmp_path / "chelsea.png", tmp_path / "notes.jpg"
    grey = Image.fromarray(data.chelsea()).convert("L")  # a black-and-white photograph
    grey.save(photo)
    broken.write_text("not a photograph")
    with chromium() as (page, outside):
        (coloured,) = colour(page, page_server.local_url, [photo, broken], coloured=1)
        page.screenshot(path=tmp_path / "app.png", full_page=True)
        notes = page.locator("#notes").inner_text()
        legend = page.locator("#legend").inner_text()
        shown = [page.locator(f"#{k} img").count() for k in ("segmented", "detected")]
    picture = Image.open(io.BytesIO(coloured))
    assert picture.format == "PNG" and picture.size == grey.size
    assert chroma(coloured) > 20  # the orange of the colour head: grey has none
    assert "notes.jpg: not an image" in notes
    assert legend.split() == ["sky", "road", "tree"]
    assert shown[0] >= 2 and shown[1] >= 1  # overlay and mask; the photograph with its boxes
    assert not outside, f"the page fetched from elsewhere: {outside}"
    assert not calls, f"the server called out: {calls}"


def test_a_port_in_use_is_a_misused_option(served, capsys):
    page, weights, _ = served
    port = page.local_url.rstrip("/").rsplit(":", 1)[1]
    with pytest.raises(SystemExit) as exited:
        main(["app", "--weights", str(weights[0]), "--port", port])
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"splitbrain app: error: --host 127.0.0.1 --port {port}: ")
