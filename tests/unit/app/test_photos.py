"""What the web page does to uploads, without a browser: bad files and photographs over the
pixel limit become one line each while the others are done at full size, and ``splitbrain app``
refuses what it cannot serve in one line."""

import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image
from samples import write_app_weights
from skimage import data

import splitbrain as sb
from splitbrain.app import read_upload
from splitbrain.app.photos import Networks, legend, process
from splitbrain.cli import main
from splitbrain.data import BadImage


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_app_weights(tmp_path_factory.mktemp("weights"))


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` RGB pixels and holds none (its header is all
    a reader sees before deciding how large it is)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_bad_uploads_are_named_and_the_others_coloured_segmented_and_boxed(weights, tmp_path):
    photo = data.chelsea()[::3, ::3]  # 150 x 151, a real photograph, small for speed
    Image.fromarray(photo).save(tmp_path / "cat.png")
    (tmp_path / "notes.jpg").write_text("not a photograph")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "huge.png").write_bytes(png_header(10_000, 10_000))  # 100 megapixels
    (tmp_path / "bomb.png").write_bytes(png_header(20_000, 20_000))  # past Pillow's own limit
    Image.fromarray(photo[:10]).save(tmp_path / "strip.png")
    names = ["notes.jpg", "cat.png", "empty.png", "huge.png", "bomb.png", "strip.png"]
    networks = Networks(*(sb.load(w) for w in weights))
    pictures = process(networks, [tmp_path / n for n in names], tmp_path / "out")
    assert [p.name for p in pictures.coloured] == ["cat-colorized.png"]
    with Image.open(pictures.coloured[0]) as coloured:
        assert coloured.format == "PNG" and coloured.size == (photo.shape[1], photo.shape[0])
    assert [caption for _, caption in pictures.segmented] == ["cat.png", "cat.png: mask"]
    overlay, mask = (picture for picture, _ in pictures.segmented)
    assert overlay.shape == mask.shape == photo.shape
    colours = {tuple(c) for c in mask.reshape(-1, 3)}
    assert colours <= {colour for _, colour in legend(networks.segmenter)}
    (boxed, caption), *_ = pictures.detected
    assert caption == "cat.png" and boxed.size == (photo.shape[1], photo.shape[0])
    assert pictures.problems == [
        "notes.jpg: not an image (cannot identify image file 'notes.jpg')",
        "empty.png: empty",
        "huge.png: too large (10000x10000, 100 megapixels; this page takes at most 50)",
        "bomb.png: too large (Image size (400000000 pixels) exceeds limit of 178956970 pixels, "
        "could be decompression bomb DOS attack.)",
        "strip.png: too small (151x10, under 16 px)",
    ]


def test_the_pixel_limit_is_the_one_given(tmp_path):
    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(tmp_path / "p.png")
    assert read_upload(tmp_path / "p.png", max_megapixels=0.02).shape == (100, 200, 3)
    refused = r"p.png: too large \(200x100, 0.02 megapixels; .* at most 0.01"
    with pytest.raises(BadImage, match=refused):
        read_upload(tmp_path / "p.png", max_megapixels=0.01)


def test_the_command_names_what_it_cannot_serve_in_one_line(weights, monkeypatch, capsys):
    colour, segmenter, _ = weights
    for argv, expected in [
        (["--segmenter", str(colour)], f"{colour} has no segmenter; splitbrain segment --data"),
        (["--detector", str(segmenter)], f"{segmenter} has no detector; splitbrain detect --data"),
    ]:
        assert main(["app", "--weights", str(colour), *argv]) == 1
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"splitbrain: error: {expected}")
    monkeypatch.setitem(sys.modules, "gradio", None)  # as where gradio is not installed
    assert main(["app", "--weights", str(colour)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("splitbrain: error: the page needs gradio (")
    assert line.endswith(': pip install "splitbrain[app]"')
