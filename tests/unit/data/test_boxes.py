"""Box readers for detection: COCO JSON and the VOC layout on folders written here from real
photographs, bad pairs named and counted, crowd and difficult objects kept as ignored, boxes
turned with an EXIF-rotated photograph, and CamVid's boxes split by street."""

import json
import logging

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from splitbrain.data import DatasetError, scan_source
from splitbrain.data.boxes import detection_pairs, open_boxes

CAMVID = SHARED_DATA / "camvid"


def _photo(width: int = 64, height: int = 48) -> np.ndarray:
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((width, height)))


def _coco(root, images: dict[str, list], categories=((1, "car"), (7, "person"))) -> None:
    """A COCO folder: ``images`` maps a file name to its annotations (bbox, category, crowd)."""
    (root / "train").mkdir(parents=True)
    records, annotations = [], []
    for k, (name, objects) in enumerate(images.items(), start=1):
        if name != "missing.jpg":
            Image.fromarray(_photo()).save(root / "train" / name)
        records.append({"id": k, "file_name": f"train/{name}", "width": 64, "height": 48})
        for bbox, category, crowd in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": k, "bbox": bbox,
                                "category_id": category, "iscrowd": crowd})  # fmt: skip
    (root / "boxes").mkdir()
    data = {"images": records, "annotations": annotations,
            "categories": [{"id": i, "name": n} for i, n in categories]}  # fmt: skip
    (root / "boxes" / "train.json").write_text(json.dumps(data))


def test_coco_boxes_become_corners_with_crowds_ignored_and_negatives_kept(tmp_path):
    _coco(tmp_path, {"a.jpg": [([10, 5, 20, 30], 7, 0), ([0, 0, 64, 48], 1, 1)], "b.jpg": []})
    source = open_boxes(f"coco:{tmp_path}", "train")
    assert source.classes == ["car", "person"] and len(source) == 2
    objects = source.boxes(0)
    np.testing.assert_array_equal(objects.boxes, [[10, 5, 30, 35], [0, 0, 64, 48]])
    assert objects.labels.tolist() == [2, 1] and objects.ignored.tolist() == [False, True]
    assert len(source.boxes(1)) == 0  # no boxes: a valid negative
    assert source[1].shape == (48, 64, 3)
    assert source.describe().endswith("2 images, 2 classes (car, person), 1 object")


def test_bad_coco_pairs_are_named_skipped_and_counted(tmp_path, caplog):
    good = [([10, 5, 20, 30], 1, 0)]
    _coco(tmp_path, {
        "ok0.jpg": good, "ok1.jpg": good, "ok2.jpg": [],
        "missing.jpg": good,  # an image that is not there
        "outside.jpg": [([50, 5, 20, 30], 1, 0)],  # reaches x = 70 in a 64-wide image
        "flat.jpg": [([10, 5, 0, 30], 1, 0)],  # zero width
        "unknown.jpg": [([10, 5, 20, 30], 3, 0)],  # category 3 is not listed
    })  # fmt: skip
    source = open_boxes(f"coco:{tmp_path}", "train")
    with caplog.at_level(logging.WARNING):
        with pytest.raises(DatasetError, match=r"57.1% of 7 images .* unusable"):
            scan_source(source, 0.01, progress=False)
        log = scan_source(source, 1.0, progress=False)
    assert log.skipped == {"unreadable file": 1, "bad box": 2, "unknown category": 1}
    assert sorted(log.good_indices().tolist()) == [0, 1, 2]
    train = tmp_path / "train"
    assert (
        f"{train / 'outside.jpg'}: bad box (box (50, 5, 70, 35) is outside the image, 64x48)"
        in caplog.text
    )
    assert f"{train / 'flat.jpg'}: bad box (box (10, 5, 10, 35) has zero area)" in caplog.text
    assert (
        f"{train / 'unknown.jpg'}: unknown category (train.json: category 3 is not one of its "
        "categories)" in caplog.text
    )
    (tmp_path / "boxes" / "train.json").write_text('{"images": [')
    with pytest.raises(DatasetError, match=r"train.json: not a COCO annotation file \("):
        open_boxes(f"coco:{tmp_path}", "train")
    with pytest.raises(DatasetError, match="no annotations for split 'val'"):
        open_boxes(f"coco:{tmp_path}", "val")


def _voc(root, annotations: dict[str, str | None]) -> None:
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    for image_id, xml in annotations.items():
        Image.fromarray(_photo()).save(root / "JPEGImages" / f"{image_id}.jpg")
        if xml is not None:
            (root / "Annotations" / f"{image_id}.xml").write_text(xml)
    (root / "ImageSets/Main/train.txt").write_text("\n".join(annotations) + "\n")


def _object(name: str, box: tuple[int, int, int, int], difficult: int = 0) -> str:
    keys = ("xmin", "ymin", "xmax", "ymax")
    corners = "".join(f"<{k}>{v}</{k}>" for k, v in zip(keys, box, strict=True))
    return f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{corners}" \
           "</bndbox></object>"  # fmt: skip


def test_voc_boxes_are_zero_based_edges_with_difficult_ones_ignored(tmp_path, caplog):
    _voc(tmp_path, {
        "000001": f"<annotation>{_object('dog', (1, 1, 10, 20))}"
                  f"{_object('person', (5, 6, 64, 48), difficult=1)}</annotation>",
        "000002": "<annotation></annotation>",  # no objects: a negative
        "000003": None,  # no annotation file
        "000004": "<annotation><object><name>cat</name>",  # malformed
        "000005": f"<annotation>{_object('unicorn', (1, 1, 5, 5))}</annotation>",
    })  # fmt: skip
    source = open_boxes(f"voc:{tmp_path}", "train")
    objects = source.boxes(0)
    np.testing.assert_array_equal(objects.boxes, [[0, 0, 10, 20], [4, 5, 64, 48]])
    assert [source.classes[k - 1] for k in objects.labels] == ["dog", "person"]
    assert objects.ignored.tolist() == [False, True]
    with caplog.at_level(logging.WARNING):
        log = scan_source(source, 1.0, progress=False)
    assert log.skipped == {"no annotation": 1, "malformed annotation": 1, "unknown category": 1}
    assert "000005.jpg: unknown category (Annotations/000005.xml: unknown class 'unicorn')" in (
        caplog.text
    )


def test_boxes_turn_with_an_exif_rotated_photo(tmp_path):
    """A red box painted on the stored pixels is where the turned box says on the upright
    photograph."""
    stored = np.zeros((48, 64, 3), np.uint8)
    stored[5:35, 10:30] = (255, 0, 0)  # x 10-30, y 5-35
    (tmp_path / "train").mkdir()
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(stored).save(tmp_path / "train" / f"o{orientation}.png", exif=exif)
    records = [{"id": k, "file_name": f"train/o{k}.png"} for k in range(1, 9)]
    annotations = [{"id": k, "image_id": k, "bbox": [10, 5, 20, 30], "category_id": 1}
                   for k in range(1, 9)]  # fmt: skip
    (tmp_path / "boxes").mkdir()
    (tmp_path / "boxes" / "train.json").write_text(json.dumps(
        {"images": records, "annotations": annotations, "categories": [{"id": 1, "name": "a"}]}
    ))  # fmt: skip
    source = open_boxes(f"coco:{tmp_path}", "train")
    for k in range(8):
        red = np.argwhere(source[k][..., 0] == 255)
        (y1, x1), (y2, x2) = red.min(0), red.max(0) + 1
        assert source.boxes(k).boxes.tolist() == [[x1, y1, x2, y2]], k + 1


@pytest.mark.skipif(not (CAMVID / "boxes").is_dir(), reason=f"needs CamVid's boxes at {CAMVID}")
def test_camvid_boxes_split_by_street():
    train, test = detection_pairs(f"coco:{CAMVID}", hold_out=["0016E5"])
    assert train.classes == ["Car", "Pedestrian", "Bicyclist", "SignSymbol"]
    assert len(train) + len(test) == 468 and len(test) == 305
    assert all("0016E5_" in image for image in test.images)
    assert not any("0016E5_" in image for image in train.images)
    first = train.boxes(0)
    assert first.boxes.shape[1] == 4 and (first.boxes[:, 2] <= 480).all()
