"""The mask readers' rules: only usable masks decide a folder's classes, a lossy mask is
refused, gaps in the class values are warned about, a folder without splits holds frames out,
and a mask lines up with an EXIF-rotated photograph."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splitbrain.data import DatasetError, open_masks, scan_source, segmentation_pairs
from splitbrain.data.masks import FLAT_SPLIT

COLOURS = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 230]], dtype=np.uint8)


def _blocks(height: int, width: int, seed: int) -> np.ndarray:
    """A mask of classes 0-2 in 8-pixel blocks."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 3, (height // 8 + 1, width // 8 + 1))
    return np.kron(cells, np.ones((8, 8), dtype=np.int64))[:height, :width].astype(np.uint8)


def _folder(root, n: int = 6, height: int = 32, width: int = 40) -> None:
    """``n`` photographs coloured by their masks (classes 0-2), no classes.txt."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(n):
        mask = _blocks(height, width, k)
        Image.fromarray(COLOURS[mask]).save(root / "images" / f"p{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"p{k}.png")


def test_only_usable_masks_decide_the_classes_and_a_lossy_mask_is_refused(tmp_path, caplog):
    _folder(tmp_path)
    noisy = _blocks(32, 40, 1) * 60  # a JPEG of values 0, 60, 120: noise around them
    Image.fromarray(noisy).save(tmp_path / "masks" / "p1.jpg", quality=70)
    (tmp_path / "masks" / "p1.png").unlink()
    rgb = np.full((32, 40, 3), 222, dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "masks" / "p2.png")  # colour, not class indices
    Image.fromarray(np.full((10, 10), 50, np.uint8)).save(tmp_path / "masks" / "p3.png")
    with caplog.at_level(logging.INFO, logger="splitbrain.data"):
        source = open_masks(f"masks:{tmp_path}", "all")
    assert source.classes == ["0", "1", "2"]
    assert "classes 0-2, from the values in its 3 usable masks" in caplog.text
    log = scan_source(source, 0.9, progress=False)
    assert log.skipped == {"lossy mask": 1, "bad mask value": 1, "mask size differs": 1}
    assert (
        f"p1.png: lossy mask ({tmp_path / 'masks' / 'p1.jpg'} is JPEG, whose compression "
        "changes pixel values; save masks as PNG)" in caplog.text
    )


def test_gaps_in_the_class_values_are_warned_about_with_the_values_seen(tmp_path, caplog):
    _folder(tmp_path)
    stray = _blocks(32, 40, 0)
    stray[:10, :10] = 50  # a patch of one stray value
    Image.fromarray(stray).save(tmp_path / "masks" / "p0.png")
    with caplog.at_level(logging.INFO, logger="splitbrain.data"):
        assert len(open_masks(f"masks:{tmp_path}", "all").classes) == 51
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == [
        f"masks:{tmp_path}: 47 of classes 0-50 have no pixel (values seen: 0, 1, 2, 50); a class "
        "without pixels is often a stray value's doing: list the real classes in classes.txt"
    ]


def test_with_classes_txt_a_value_outside_it_is_a_bad_pair(tmp_path):
    _folder(tmp_path)
    (tmp_path / "classes.txt").write_text("red\ngreen\n")  # no class 2
    source = open_masks(f"masks:{tmp_path}", "all")
    log = scan_source(source, 1.0, progress=False)
    assert source.classes == ["red", "green"] and log.skipped == {"bad mask value": 6}


def test_a_folder_without_splits_holds_out_one_frame_in_five_by_name(tmp_path, caplog):
    _folder(tmp_path, n=10)
    with caplog.at_level(logging.INFO, logger="splitbrain.data"):
        train, test = segmentation_pairs(f"masks:{tmp_path}")
    assert len(train) == 8 and len(test) == 2 and not set(train.images) & set(test.images)
    assert test.split == FLAT_SPLIT == "held out (1 in 5 by name)"
    assert "has no train/ and val/ subfolders: 2 frames of its 10 (1 in 5, chosen by a hash" in (
        caplog.text
    )
    assert caplog.text.count("has no classes.txt") == 1  # the folder is read once
    assert [Path(i).stem for i in test.images] == ["p2", "p8"]  # crc32 of the stem, mod 5
    assert segmentation_pairs(f"masks:{tmp_path}")[1].images == test.images  # every run
    _folder(tmp_path / "more", n=3)  # adding frames keeps the others' sides
    for k in range(3):
        for kind in ("images", "masks"):
            (tmp_path / "more" / kind / f"p{k}.png").rename(tmp_path / kind / f"q{k}.png")
    train_after, test_after = segmentation_pairs(f"masks:{tmp_path}")
    assert set(test.images) <= set(test_after.images)
    assert set(train.images) <= set(train_after.images)
    # another folder without splits given to score: all of it
    _folder(tmp_path / "other", n=3)
    scored = segmentation_pairs(f"masks:{tmp_path}", f"masks:{tmp_path / 'other'}")[1]
    assert len(scored) == 3
    _folder(tmp_path / "one", n=1)
    with pytest.raises(DatasetError, match="needs 2 frames or more"):
        segmentation_pairs(f"masks:{tmp_path / 'one'}")


def _exif_photo(path, mask_stored: np.ndarray, orientation: int) -> None:
    """A photograph coloured by ``mask_stored`` on its stored pixels, with an EXIF
    orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(COLOURS[mask_stored]).save(path, exif=exif)


@pytest.mark.parametrize("size", [(32, 32), (32, 48)], ids=["square", "non-square"])
def test_a_mask_drawn_on_the_stored_pixels_lines_up_with_an_exif_rotated_photo(tmp_path, size):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for k in range(2):
        mask = _blocks(*size, k)
        _exif_photo(tmp_path / "images" / f"p{k}.png", mask, orientation=6)
        Image.fromarray(mask).save(tmp_path / "masks" / f"p{k}.png")
    source = open_masks(f"masks:{tmp_path}", "all")
    frame = source[0]
    assert frame.shape[:2] == (size[1], size[0])  # upright: turned by its orientation
    assert (COLOURS[frame[..., 3]] == frame[..., :3]).all()  # every pixel lines up


def test_a_mask_drawn_on_the_turned_photo_is_refused_in_width_x_height(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for k in range(2):
        mask = _blocks(32, 48, k)  # stored 48 wide, 32 high; shown 32 wide, 48 high
        _exif_photo(tmp_path / "images" / f"p{k}.png", mask, orientation=6)
        Image.fromarray(np.ascontiguousarray(np.rot90(mask, -1))).save(
            tmp_path / "masks" / f"p{k}.png"
        )
    source = open_masks(f"masks:{tmp_path}", "all")
    log = scan_source(source, 1.0, progress=False)
    assert log.skipped == {"mask size differs": 2}
    with pytest.raises(Exception) as raised:
        source[0]
    assert str(raised.value).endswith(
        f"{tmp_path / 'masks' / 'p0.png'} is 32x48, its photograph 48x32 (width x height); the "
        "photograph is shown turned to 32x48 by its EXIF orientation: a mask labels the stored "
        "pixels)"
    )
