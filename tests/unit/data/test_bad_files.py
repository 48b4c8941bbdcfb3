"""Bad and odd image files: what is converted (and how exactly), what is skipped and counted."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from samples import noise, palette_image, rgba

from splitbrain.cli import flag
from splitbrain.data import (
    BadImage,
    DatasetError,
    EvalTransform,
    ImageDataset,
    open_source,
    scan_source,
)
from splitbrain.data import scan as scan_module
from splitbrain.data.decode import decode_file, probe_file


def test_scan_counts_each_reason_and_conversion(messy_folder, caplog):
    src = open_source(f"folder:{messy_folder}")
    assert len(src) == 15
    with caplog.at_level(logging.WARNING, logger="splitbrain.data"):
        report = scan_source(src, max_bad_fraction=0.5, min_side=8, progress=False)
    assert report.skipped == {
        "truncated": 2,
        "empty": 1,
        "not an image": 1,
        "too small": 1,
    }
    assert report.converted == {"palette": 1, "RGBA": 1, "CMYK": 1, "16-bit": 1, "greyscale": 1}
    assert report.summary() == (
        "skipped 5 of 15 images: 2 truncated, 1 empty, 1 not an image, 1 too small; "
        "converted 5 (1 palette, 1 RGBA, 1 CMYK, 1 16-bit, 1 greyscale)"
    )
    logged = caplog.text
    for name, reason in [
        ("truncated.jpg", "truncated"),
        ("truncated.png", "truncated"),
        ("empty.jpg", "empty"),
        ("text.jpg", "not an image"),
        ("tiny.png", "too small"),
    ]:
        assert f"{messy_folder / name}: {reason}" in logged
    bad = {Path(src.name(i)).name for i in report.bad_indices()}
    assert bad == {"truncated.jpg", "truncated.png", "empty.jpg", "text.jpg", "tiny.png"}

    dataset = ImageDataset(src, EvalTransform(resize=16, crop=16), log=report)
    assert len(dataset) == 10  # the scan's bad items are left out up front
    items = [dataset[k] for k in range(len(dataset))]
    assert all(item is not None and item[0].shape == (3, 16, 16) for item in items)


def test_every_bad_file_raises_bad_image_with_its_reason(messy_folder):
    expected = {
        "truncated.jpg": "truncated",
        "truncated.png": "truncated",
        "empty.jpg": "empty",
        "text.jpg": "not an image",
    }
    src = open_source(f"folder:{messy_folder}")
    for i in range(len(src)):
        name = Path(src.name(i)).name
        if name in expected:
            with pytest.raises(BadImage) as error:
                src.load(i)
            assert error.value.reason == expected[name] and error.value.path == src.name(i)
        else:
            image, label = src.load(i)
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            assert label == -1


def test_conversions_give_the_right_pixels(messy_folder):
    image, note = decode_file(str(messy_folder / "palette.png"))
    assert note == "palette"
    np.testing.assert_array_equal(image, palette_image()[1])
    image, note = decode_file(str(messy_folder / "rgba.png"))
    assert note == "RGBA"
    np.testing.assert_array_equal(image, rgba()[1])  # composited on white
    image, note = decode_file(str(messy_folder / "sixteen.png"))
    assert note == "16-bit"
    ramp = np.arange(400).reshape(20, 20) * 163
    np.testing.assert_array_equal(image[..., 1], (ramp + 128) // 257)
    assert image[-1, -1, 0] == 253 and (image[..., 0] == image[..., 2]).all()
    image, note = decode_file(str(messy_folder / "grey.png"))
    assert note == "greyscale"
    np.testing.assert_array_equal(image, np.repeat(noise(20, 20, 5)[..., :1], 3, axis=2))
    image, note = decode_file(str(messy_folder / "cmyk.jpg"))
    assert note == "CMYK" and image.shape == (20, 20, 3)
    assert np.abs(image.astype(int) - noise(20, 20, 4)).mean() < 40  # lossy, but the same picture


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(noise(10, 30)).save(tmp_path / "rotated.jpg", exif=exif)
    image, _ = decode_file(str(tmp_path / "rotated.jpg"))
    assert image.shape == (30, 10, 3)
    assert probe_file(str(tmp_path / "rotated.jpg")) == (None, (30, 10))


def test_too_many_bad_files_stop_the_run_with_a_clear_message(tmp_path):
    for k in range(60):
        Image.fromarray(noise(8, 8, k)).save(tmp_path / f"{k:03d}.png")
    (tmp_path / "zzz_broken.jpg").write_text("oops")
    src = open_source(f"folder:{tmp_path}")
    with pytest.raises(DatasetError) as error:
        scan_source(src, progress=False)
    assert str(error.value) == (
        f"1.6% of 61 images in folder:{tmp_path} (split all) are unusable (limit 1%): "
        f"1 not an image; first few: {tmp_path / 'zzz_broken.jpg'}: not an image; to train "
        "on the rest anyway, raise max_bad_fraction (now 0.01)"
    )  # the setting by its field in Python; the command line names its flag
    assert error.value.message(flag).endswith("raise --max-bad-fraction (now 0.01)")
    assert scan_source(src, max_bad_fraction=0.02, progress=False).skipped == {"not an image": 1}


def test_parallel_scan_agrees_with_serial(messy_folder, monkeypatch):
    src = open_source(f"folder:{messy_folder}")
    serial = scan_source(src, max_bad_fraction=1, min_side=8, workers=1, progress=False)
    monkeypatch.setattr(scan_module, "PARALLEL_FROM", 1)
    monkeypatch.setattr(scan_module, "CHUNK", 3)
    parallel = scan_source(src, max_bad_fraction=1, min_side=8, workers=2, progress=False)
    assert parallel.summary() == serial.summary()
    assert parallel.bad_indices().tolist() == serial.bad_indices().tolist()


def test_scan_workers_drop_the_runs_stop_handler(messy_folder):
    """A run's stop handler is installed before its data is scanned, and forked scan workers
    inherit it: when the pool ended a worker with SIGTERM while it waited for a task, the
    worker raised "interrupted before training started" and printed a traceback into the
    run's log. Workers now take SIGTERM's default (a quiet end) and leave Ctrl-C to the run."""
    import signal

    def stop(signum, frame):
        raise AssertionError("the run's handler")

    saved = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        scan_module._init_worker(open_source(f"folder:{messy_folder}"))  # as a forked worker
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
