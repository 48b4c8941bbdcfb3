"""Detection: anchors that fit the objects, the trunk's fc layers as the box head, a detector
that learns a planted rule, the command end to end on CamVid's boxes (the same numbers from
Python, a finished folder left alone, --predict in COCO's results format), and the package
without torchvision."""

import ast
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from PIL import Image

import splitbrain as sb
from splitbrain.cli import main
from splitbrain.detection import anchor_sizes

pytest.importorskip("torchvision", reason="detection needs torchvision (.[detect])")
pytest.importorskip("pycocotools", reason="detection needs pycocotools (.[detect])")

CAMVID = SHARED_DATA / "camvid"
needs_camvid = pytest.mark.skipif(
    not (CAMVID / "boxes").is_dir(), reason=f"needs CamVid's boxes at {CAMVID}"
)


def test_anchor_sizes_span_the_objects_a_factor_two_apart():
    sides = np.linspace(10, 160, 1000)  # 5th-95th percentile: 17.5-152.5, centre 51.7
    sizes = anchor_sizes(sides)
    assert sizes == (13, 26, 52, 103, 207)
    assert sizes[0] < np.percentile(sides, 5) and sizes[-1] > np.percentile(sides, 95)


def _detector(classes=("a", "b"), anchors=(8, 16, 32), side=64) -> sb.SplitBrain:
    torch.manual_seed(0)
    trunk = sb.build("splitbrain", preset="small", width=0.125)
    config = dataclasses.replace(trunk.config, detector=(classes, anchors, side))
    model = sb.SplitBrain(config)
    model.load_state_dict(trunk.state_dict(), strict=False)
    return model


def test_the_box_head_is_the_trunks_fc6_and_fc7_over_each_proposal():
    """fc6 without its padding over a pooled proposal of its kernel's extent gives one
    output: the trunk's own fc6 at the centre cell of a map of that size."""
    model = _detector()
    head = model.detector.roi_heads.box_head
    assert head.extent == 5  # small: a 3x3 fc6 dilated by 2
    channels = model.layer_channels("pool5")
    pooled = torch.randn(3, channels, 5, 5)
    halves = pooled.split(channels // 2, 1)
    expected = []
    for encoder, part in zip(model.encoders, halves, strict=True):
        whole = encoder.tower.layers["fc7"](encoder.tower.layers["fc6"](part))  # padded
        expected.append(whole[:, :, 2, 2])  # the centre cell sees exactly the 5x5 cells
    torch.testing.assert_close(head(pooled), torch.cat(expected, 1))
    assert not list(head.parameters())  # the trunk's weights, not copies
    assert "detector.roi_heads.box_predictor.cls_score.weight" in model.state_dict()


def test_detect_gives_boxes_at_each_images_own_size_and_a_file_rebuilds_it(tmp_path):
    model = _detector()
    images = [torch.rand(3, 48, 80), torch.rand(3, 120, 90)]
    found = model.detect(images)
    for image, output in zip(images, found, strict=True):
        assert set(output) == {"boxes", "labels", "scores"}
        assert (output["boxes"][:, 2] <= image.shape[2] + 1e-3).all()
        assert (output["boxes"][:, 3] <= image.shape[1] + 1e-3).all()
    sb.save(model, tmp_path / "det.safetensors", {"steps": 1})
    again = sb.load(tmp_path / "det.safetensors")
    assert again.config.detector == (("a", "b"), (8, 16, 32), 64) and not again.training
    for first, second in zip(found, again.detect(images), strict=True):
        torch.testing.assert_close(first["boxes"], second["boxes"])


def _planted(root, n: int, seed: int) -> None:
    """Noise with red squares, a COCO folder: one category, boxes exact."""
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "boxes").mkdir(exist_ok=True)
    for split, count in (("train", n), ("val", n // 2)):
        images, annotations = [], []
        for k in range(count):
            photo = rng.integers(60, 190, (64, 64, 3)).astype(np.uint8)
            side = int(rng.integers(18, 26))
            x, y = (int(v) for v in rng.integers(0, 64 - side, 2))
            photo[y : y + side, x : x + side] = (230, 30, 30)
            Image.fromarray(photo).save(root / "train" / f"{split}{k}.png")
            images.append({"id": k + 1, "file_name": f"train/{split}{k}.png"})
            annotations.append({"id": k + 1, "image_id": k + 1, "category_id": 1,
                                "bbox": [x, y, side, side]})  # fmt: skip
        data = {"images": images, "annotations": annotations,
                "categories": [{"id": 1, "name": "square"}]}  # fmt: skip
        (root / "boxes" / f"{split}.json").write_text(json.dumps(data))


def test_a_detector_learns_a_planted_rule(tmp_path):
    from splitbrain.data.boxes import detection_pairs
    from splitbrain.detect import DetectConfig, train_detector
    from splitbrain.detect.train import data_anchors
    from splitbrain.evaluate.data import ScoredData

    _planted(tmp_path / "squares", 12, seed=0)
    data = ScoredData.scan(*detection_pairs(f"coco:{tmp_path / 'squares'}"), 0.01, False)
    anchors = data_anchors(data.train, data.train_log.good_indices(), 64)
    torch.manual_seed(0)
    model = sb.build("splitbrain", preset="small", width=0.25)
    config = DetectConfig(side=64, side_max=64, epochs=10, batch_size=4, lr=0.05, workers=0,
                          progress=False, precision="32-true", accelerator="cpu")  # fmt: skip
    result = train_detector(model, data.train, data.train_log, data.test, data.test_indices,
                            anchors, config, tmp_path / "run", "squares")  # fmt: skip
    assert result.scores.ap50 > 50, result.scores
    assert result.model.config.detector[0] == ("square",)


@needs_camvid
def test_detect_command_end_to_end_on_camvid_boxes_then_predict(tmp_path, capsys):
    from pycocotools.coco import COCO

    from splitbrain.data.boxes import detection_pairs
    from splitbrain.detect import Detections, detection_scores
    from splitbrain.detect.predict import detect_photo

    weights = tmp_path / "w.safetensors"
    sb.save(sb.build("splitbrain", preset="small", width=0.125), weights, {"steps": 5})
    out = tmp_path / "det"
    argv = ["detect", "--weights", f"sb={weights}", "--data", f"coco:{CAMVID}",
            "--hold-out", "0016E5", "--max-items", "4", "--side", "64", "--epochs", "1",
            "--workers", "0", "--no-progress", "--precision", "32-true",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "anchors " in printed and "from the training objects' sizes" in printed
    report = json.loads((out / "detect.json").read_text())
    assert report["title"] == (
        f"Object detection, scored on coco:{CAMVID} held out: 0016E5, 4 images, a trial on 4 items"
    )
    row = report["models"][0]
    assert set(row["scores"]) >= {"ap", "ap50", "ap75", "voc07_ap50", "category_ap50"}
    for picture in ("detect.png", "detect_ap.png", "detect_frames.png"):
        assert (out / picture).stat().st_size > 1000
    detector = out / "models" / "sb" / "sb.safetensors"
    model = sb.load(detector)
    assert model.config.detector[0] == ("Car", "Pedestrian", "Bicyclist", "SignSymbol")
    # Python gives the command's numbers
    test = detection_pairs(f"coco:{CAMVID}", hold_out=["0016E5"])[1].subset(4)
    found = [Detections(**detect_photo(model, test[k])) for k in range(len(test))]
    python = detection_scores([test.boxes(k) for k in range(len(test))], found, test.classes)
    assert python.ap50 == pytest.approx(row["scores"]["ap50"], abs=1e-6)
    assert main(["info", str(detector)]) == 0
    info = capsys.readouterr().out
    assert f"scored on: coco:{CAMVID} held out: 0016E5, 4 images" in info and "detect:" in info
    # the same command on its finished folder: no work
    assert main(argv) == 0
    assert f"{out}: finished earlier, nothing to do" in capsys.readouterr().out
    # --predict: COCO's results format at each photo's size, bad files named and counted
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(CAMVID / test.images[0]).resize((200, 150)).save(photos / "street.jpg")
    (photos / "broken.png").write_bytes(b"not a png")
    boxes = tmp_path / "boxes"
    code = main(["detect", "--predict", "--weights", str(detector), str(photos), "--out",
                 str(boxes), "--no-progress"])  # fmt: skip
    assert code == 0
    assert "detected objects in 1 of 2 images; skipped 1: 1 not an image" in (
        capsys.readouterr().out
    )
    assert Image.open(boxes / "street.png").size == (200, 150)
    listing = json.loads((boxes / "images.json").read_text())
    assert listing["images"] == [{"id": 1, "file_name": "street.jpg", "width": 200, "height": 150}]
    coco = COCO()
    coco.dataset = {**listing, "annotations": []}
    coco.createIndex()
    results = json.loads((boxes / "detections.json").read_text())
    if results:  # pycocotools reads them as results of those images
        assert len(coco.loadRes(str(boxes / "detections.json")).anns) == len(results)
    # weights without a detector are bad input: 1, in one line
    assert main(["detect", "--predict", "--weights", str(weights), str(photos)]) == 1
    assert "has no detector; splitbrain detect --data trains one" in capsys.readouterr().err


def test_torchvision_and_pycocotools_are_imported_only_where_a_detector_is_built_or_scored():
    """The core package imports without the detect extra: no module imports them at its top
    (Lightning's torchmetrics imports torchvision only where it is installed)."""
    package = Path(sb.__file__).parent
    for path in package.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:  # the module's top level only
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )  # fmt: skip
            extra = [n for n in names if n.split(".")[0] in ("torchvision", "pycocotools")]
            assert not extra, f"{path.relative_to(package)} imports {extra} at its top"
