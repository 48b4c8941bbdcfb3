"""PASCAL VOC classification: the reader of a VOCdevkit year folder (difficult objects, bad
annotations and missing JPEGs), both kinds of average precision, 10-crop testing, and
``finetune --data voc:DIR`` end to end."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from sklearn.metrics import average_precision_score

import splitbrain as sb
from splitbrain.cli import main
from splitbrain.data import DatasetError, open_source, scan_source
from splitbrain.data.voc import VOC_CLASSES, VOCClassification, label_matrix
from splitbrain.evaluate import LabelledData
from splitbrain.evaluate.finetune import eval_logits, ten_crops
from splitbrain.evaluate.metrics import (
    average_precision,
    average_precision_11point,
    mean_average_precision,
)

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry")
#: image id -> (class, difficult) objects; "bad" marks a malformed annotation file.
OBJECTS = {
    "000001": [("person", 0)],
    "000002": "bad",
    "000003": [("cat", 0)],  # its JPEG is missing
    "000004": [("cat", 0), ("dog", 1)],
    "000005": [("dog", 1), ("person", 1), ("person", 0)],  # dog: difficult only
    "000006": [("diningtable", 0)],
    "000007": [("aeroplane", 0), ("person", 0)],
    "000008": [("cat", 0), ("chair", 0)],
    "000009": [("person", 0)],
    "000010": [("cat", 0), ("cat", 1)],
    "000011": [("person", 0), ("cat", 0)],
    "000012": [("chair", 1)],
}
TRAIN, VAL = list(OBJECTS)[:8], list(OBJECTS)[8:]


def _annotation(objects: list[tuple[str, int]]) -> str:
    body = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{difficult}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>"
        "<ymax>9</ymax></bndbox></object>"
        for name, difficult in objects
    )
    return f"<annotation><folder>VOC2007</folder><size><width>64</width><height>48</height>" \
        f"<depth>3</depth></size>{body}</annotation>"  # fmt: skip


def write_voc(root: Path) -> Path:
    """A VOCdevkit year folder of 12 small JPEGs cut from scikit-image's photographs, with
    train.txt and val.txt (no test.txt, as VOC 2012), one malformed annotation and one
    listed image without its JPEG."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    for k, (image_id, objects) in enumerate(OBJECTS.items()):
        photo = getattr(skimage.data, PHOTOS[k % len(PHOTOS)])()
        photo = photo[:, ::-1] if k >= len(PHOTOS) else photo  # the second six mirrored
        if image_id != "000003":
            Image.fromarray(photo).resize((64, 48)).save(root / "JPEGImages" / f"{image_id}.jpg")
        xml = "<annotation><object><name>cat</name>" if objects == "bad" else _annotation(objects)
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)
    (root / "ImageSets/Main/train.txt").write_text("\n".join(TRAIN) + "\n")
    (root / "ImageSets/Main/val.txt").write_text("\n".join(VAL) + "\n")
    return root


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return write_voc(tmp_path_factory.mktemp("VOCdevkit") / "VOC2012")


# --- average precision ------------------------------------------------------------------------


def test_average_precision_of_a_ranking_worked_by_hand():
    # ranked: hit, miss, hit, miss, hit -> precision 1, 1/2, 2/3, 2/4, 3/5 at recall 1/3 .. 1
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    hits = torch.tensor([1, 0, 1, 0, 1])
    # area: each hit adds 1/3 of recall at its precision
    assert average_precision(scores, hits) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3, abs=1e-15)
    # 11-point: recall >= 0, .1, .2, .3 -> 1; >= .4, .5, .6 -> 2/3; >= .7 ... 1 -> 3/5
    eleven = (4 * 1 + 3 * 2 / 3 + 4 * 3 / 5) / 11
    assert average_precision_11point(scores, hits) == pytest.approx(eleven, abs=1e-15)
    # tied scores enter together: the two items at 0.8 count as one threshold (2 retrieved
    # there, 1 hit: precision 2/3 at recall 1/2, then 2/4 at recall 1)
    tied = torch.tensor([0.9, 0.8, 0.8, 0.1])
    assert average_precision(tied, torch.tensor([1, 1, 0, 0])) == pytest.approx(
        0.5 * 1 + 0.5 * 2 / 3
    )
    # a recall of exactly 3/10 reaches the 0.3 threshold: 3 hits first, 7 misses, 7 hits
    exact = torch.tensor([1] * 3 + [0] * 7 + [1] * 7)
    ranked = torch.arange(len(exact), 0, -1).float()
    by_hand = (4 * 1 + 7 * 10 / 17) / 11  # thresholds 0-0.3 at precision 1, then 10/17
    assert average_precision_11point(ranked, exact) == pytest.approx(by_hand, abs=1e-15)
    for ap in (average_precision, average_precision_11point):
        assert np.isnan(ap(scores, torch.zeros(5, dtype=torch.int64)))


def _voc2007_devkit_ap(scores: np.ndarray, positives: np.ndarray) -> float:
    """VOCevalcls.m of the VOC 2007 devkit, line for line: 11-point interpolated AP."""
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(positives[order] > 0)
    fp = np.cumsum(positives[order] == 0)
    rec = tp / (positives > 0).sum()
    prec = tp / (fp + tp)
    ap = 0.0
    for t in np.arange(0, 1.1, 0.1):
        p = prec[rec >= t].max() if (rec >= t).any() else 0.0
        ap += p / 11
    return ap


def test_average_precision_matches_scikit_learn_and_the_voc2007_devkit():
    rng = np.random.default_rng(0)
    for n, classes in ((50, 4), (301, 6)):
        targets = rng.integers(0, 2, (n, classes))
        scores = rng.normal(size=(n, classes)) + targets
        coarse = np.round(scores, 1)  # ties, which scikit-learn also takes together
        for s in (scores, coarse):
            _, per_class = mean_average_precision(torch.from_numpy(s), torch.from_numpy(targets))
            expected = average_precision_score(targets, s, average=None)
            np.testing.assert_allclose(per_class, expected, rtol=1e-12)
        _, eleven = mean_average_precision(
            torch.from_numpy(scores), torch.from_numpy(targets), average_precision_11point
        )
        devkit = [_voc2007_devkit_ap(scores[:, c], targets[:, c]) for c in range(classes)]
        np.testing.assert_allclose(eleven, devkit, rtol=1e-12)


def test_ignored_items_and_classes_without_positives():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.3]])
    targets = torch.tensor([[-1, 0], [1, 0], [0, 0]])  # item 0 difficult for class 0
    for ap in (average_precision, average_precision_11point):
        mean, per_class = mean_average_precision(scores, targets, ap)
        assert per_class[0] == 1.0 and np.isnan(per_class[1]) and mean == 1.0


# --- the reader -------------------------------------------------------------------------------


def test_reader_labels_difficult_objects_and_splits(voc):
    source = open_source(f"voc:{voc}", "train")
    assert isinstance(source, VOCClassification) and source.spec == f"voc:{voc}"
    assert len(source) == 8 and source.classes == list(VOC_CLASSES)
    assert source.targets.shape == (8, 20) and source.targets.dtype == np.int64
    row = dict(zip(VOC_CLASSES, source.targets[TRAIN.index("000005")], strict=True))
    assert row["dog"] == -1  # only a difficult dog: ignored
    assert row["person"] == 1  # a difficult person beside a plain one: present
    assert row["cat"] == 0
    assert (source.targets[TRAIN.index("000002")] == -1).all()  # malformed: nothing known
    assert source[0].shape == (48, 64, 3)
    assert "ImageSets/Main/train.txt" in source.describe()
    # no test.txt (VOC 2012): the test split is val.txt
    test = open_source(f"voc:{voc}", "test")
    assert [Path(p).stem for p in test.paths] == VAL
    row = dict(zip(VOC_CLASSES, test.targets[VAL.index("000010")], strict=True))
    assert row["cat"] == 1 and row["chair"] == 0


def test_test_txt_is_the_test_split_where_its_labels_are_public(voc, tmp_path):
    root = shutil.copytree(voc, tmp_path / "VOC2007")
    main_sets = root / "ImageSets" / "Main"
    (main_sets / "trainval.txt").write_text("\n".join(TRAIN + VAL[:2]) + "\n")
    (main_sets / "test.txt").write_text("000013\n")
    (root / "Annotations" / "000013.xml").write_text("<annotation><size/></annotation>")
    shutil.copy(root / "JPEGImages" / "000001.jpg", root / "JPEGImages" / "000013.jpg")
    # labels withheld (no objects, as VOC 2012's test set): train.txt and val.txt
    assert len(open_source(f"voc:{root}", "train")) == 8
    assert len(open_source(f"voc:{root}", "test")) == 4
    # VOC 2007: trainval.txt and test.txt
    (root / "Annotations" / "000013.xml").write_text(_annotation([("bus", 0)]))
    assert len(open_source(f"voc:{root}", "train")) == 10
    test = open_source(f"voc:{root}", "test")
    assert len(test) == 1 and test.targets[0, VOC_CLASSES.index("bus")] == 1
    assert len(open_source(f"voc:{root}", "val")) == 4  # other names read as they are


def test_bad_annotations_and_missing_jpegs_are_named_counted_and_left_out(voc, caplog):
    source = open_source(f"voc:{voc}", "train")
    with caplog.at_level(logging.INFO, logger="splitbrain.data"):
        log = scan_source(source, max_bad_fraction=0.5, progress=False)
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(skipped) == 2
    bad, missing = sorted(skipped)
    assert bad.startswith(f"skipping {voc / 'JPEGImages' / '000002.jpg'}: malformed annotation")
    assert "Annotations/000002.xml" in bad  # the file at fault, and what is wrong with it
    assert missing.startswith(f"skipping {voc / 'JPEGImages' / '000003.jpg'}: unreadable file")
    assert "No such file" in missing
    assert log.summary() == "skipped 2 of 8 images: 1 unreadable file, 1 malformed annotation"
    assert sorted(log.bad_indices().tolist()) == [1, 2]
    # above the limit (1% by default), the run stops in one line naming the count and files
    with pytest.raises(DatasetError) as error:
        scan_source(source, progress=False)
    message = str(error.value)
    assert message.startswith(f"25.0% of 8 images in voc:{voc} (split train) are unusable")
    assert "000002.jpg: malformed annotation" in message and "\n" not in message
    # opened as labelled data without labels of its own, with the matrix from the source
    data = LabelledData.open(f"voc:{voc}", labelled=False, max_bad_fraction=0.5, progress=False)
    assert data.num_classes == 20 and len(data.test) == 4
    subset = LabelledData.open(f"voc:{voc}", labelled=False, max_items=4, progress=False)
    np.testing.assert_array_equal(
        label_matrix(subset.train), data.train.targets[subset.train.indices]
    )
    assert label_matrix(open_source("skimage:4")) is None


def test_a_missing_annotation_is_named_as_such(voc, tmp_path, caplog):
    """Not an "unreadable file" (the reason of a JPEG that is missing), nor malformed."""
    root = shutil.copytree(voc, tmp_path / "VOC2012")
    (root / "Annotations" / "000004.xml").unlink()
    source = open_source(f"voc:{root}", "train")
    with caplog.at_level(logging.INFO, logger="splitbrain.data"):
        log = scan_source(source, max_bad_fraction=0.5, progress=False)
    jpeg = root / "JPEGImages" / "000004.jpg"
    assert f"skipping {jpeg}: no annotation (Annotations/000004.xml does not exist)" in [
        r.getMessage() for r in caplog.records
    ]
    assert log.skipped == {"unreadable file": 1, "no annotation": 1, "malformed annotation": 1}


def test_a_missing_listing_is_one_line(voc, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no ImageSets/Main/train\.txt; expected a VOCdevkit"):
        open_source(f"voc:{tmp_path / 'empty'}")
    with pytest.raises(DatasetError, match="no such directory"):
        open_source(f"voc:{tmp_path / 'none'}")


# --- ten crops --------------------------------------------------------------------------------


def test_ten_crops_are_the_corners_and_centre_then_mirrored():
    image = torch.arange(2 * 3 * 6 * 8, dtype=torch.int64).reshape(2, 3, 6, 8).to(torch.uint8)
    crops = ten_crops(image, 4)
    assert crops.shape == (10, 2, 3, 4, 4) and crops.dtype == torch.uint8
    expected = [
        image[..., 0:4, 0:4],  # top left
        image[..., 0:4, 4:8],  # top right
        image[..., 2:6, 0:4],  # bottom left
        image[..., 2:6, 4:8],  # bottom right
        image[..., 1:5, 2:6],  # centre, as EvalTransform takes it
    ]
    for k, view in enumerate(expected):
        assert torch.equal(crops[k], view)
        assert torch.equal(crops[k + 5], view.flip(-1))

    class Mean(torch.nn.Module):  # one logit per channel: the crop's mean value
        def forward(self, images):
            return images.float().mean((2, 3))

    logits = eval_logits(Mean(), image, 4)
    by_hand = torch.stack([v.float().mean((2, 3)) for v in expected]).mean(0)
    torch.testing.assert_close(logits, by_hand)  # a mirror keeps a crop's mean
    torch.testing.assert_close(eval_logits(Mean(), image, None), image.float().mean((2, 3)))


# --- the command ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = sb.build("splitbrain", preset="small", width=0.125)
    return sb.save(model, tmp_path_factory.mktemp("run") / "weights.safetensors", {"steps": 5})


def test_finetune_on_voc_reports_both_maps_and_per_class_ap(voc, weights, tmp_path, capsys):
    out = tmp_path / "ft"
    argv = ["finetune", "--weights", str(weights), "--data", f"voc:{voc}", "--epochs", "1",
            "--batch-size", "4", "--workers", "0", "--no-progress", "--max-bad-fraction", "0.5",
            "--freeze-through", "pool5", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "mAP (11-point)" in printed and "ImageSets/Main/val.txt" in printed
    report = json.loads((out / "finetune.json").read_text())
    metrics = [t["metric"] for t in report["tables"]]
    assert metrics == ["mAP (%)", "mAP (11-point) (%)", "AP (%)", "AP (11-point) (%)"]
    assert report["tables"][2]["columns"] == list(VOC_CLASSES)
    assert report["settings"]["test crops"].startswith("10 ")
    (model,) = report["models"]
    assert model["train_items"] == 6 and model["test_items"] == 4  # 2 bad items left out
    for kind, score in (("per_class_ap", "mAP"), ("per_class_ap_11point", "mAP (11-point)")):
        per_class = model[kind]
        assert list(per_class) == list(VOC_CLASSES)
        # in val.txt: person and cat have positives; chair only a difficult one; the rest none
        known = {c for c, ap in per_class.items() if ap is not None}
        assert known == {"person", "cat"}
        assert all(0 < per_class[c] <= 100 for c in known)
        assert model["scores"][score] == pytest.approx(np.mean([per_class[c] for c in known]))
    markdown = (out / "finetune.md").read_text()
    assert "## AP (%)" in markdown and "| model | aeroplane | bicycle |" in markdown
    # the listing read, not "(test split)": VOC 2012 keeps its test labels, val.txt is read
    assert f"- test_data: voc:{voc} (ImageSets/Main/val.txt)\n" in markdown
    assert "test crops: 10 " in markdown


def test_voc_refuses_label_matrices(voc, weights, tmp_path, capsys):
    argv = ["finetune", "--weights", str(weights), "--data", f"voc:{voc}", "--targets", "a.npy",
            "--test-targets", "b.npy", "--out", str(tmp_path / "x")]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith("voc: data takes its labels from Annotations/")


def test_finetune_help_names_voc_among_the_data_formats(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["finetune", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    data = text[text.index("--data SPEC labelled") : text.index("--test-data SPEC test")]
    assert "voc:DIR, a VOCdevkit year folder (VOC2007, VOC2012)" in data
