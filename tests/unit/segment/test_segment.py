"""Semantic segmentation: metrics against hand-made confusion matrices, the three mask readers
on folders written here from real photographs, bad pairs named and counted, heads that learn a
planted rule, the command end to end on CamVid frames, and --predict at full size."""

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from PIL import Image

import splitbrain as sb
from splitbrain.cli import main
from splitbrain.data import IGNORE, DatasetError, open_masks, scan_source, segmentation_pairs
from splitbrain.evaluate.data import ScoredData
from splitbrain.segment import (
    SegmentationScores,
    SegmentConfig,
    confusion_matrix,
    median_frequency_weights,
    segment_photo,
    train_segmenter,
)
from splitbrain.segmentation import FCN32sHead, bilinear_kernel, upsample

CAMVID = SHARED_DATA / "camvid"
needs_camvid = pytest.mark.skipif(not CAMVID.is_dir(), reason=f"needs CamVid at {CAMVID}")


# ------------------------------------------------------------------------------- metrics


def test_confusion_matrix_counts_pixels_and_leaves_ignored_ones_out():
    truth = torch.tensor([[0, 0, 1], [1, 2, IGNORE]])
    predicted = torch.tensor([[0, 1, 1], [1, 0, 2]])
    expected = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert torch.equal(confusion_matrix(predicted, truth, 3), expected)


def test_scores_from_one_confusion_matrix_computed_by_hand():
    # rows: truth, columns: predicted; class 3 absent from truth and prediction
    confusion = torch.tensor([[8, 2, 0, 0], [1, 3, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    scores = SegmentationScores.from_confusion(confusion)
    assert scores.pixel_accuracy == pytest.approx(100 * 11 / 15)
    # class 0: 8 / (10 + 9 - 8) = 8/11; class 1: 3 / (5 + 5 - 3) = 3/7
    # class 2: predicted once, never true: IoU 0 (counts); class 3: 0/0, left out
    assert scores.iou[:3] == pytest.approx([800 / 11, 300 / 7, 0.0])
    assert math.isnan(scores.iou[3])
    assert scores.mean_iou == pytest.approx((800 / 11 + 300 / 7 + 0) / 3)
    # class accuracy: only classes present in the truth (0 and 1)
    assert scores.mean_class_accuracy == pytest.approx((80 + 60) / 2)
    assert math.isnan(scores.class_accuracy[2]) and math.isnan(scores.class_accuracy[3])


def test_bilinear_kernel_upsamples_a_constant_to_a_constant():
    up = torch.nn.ConvTranspose2d(2, 2, 8, 4, 2, bias=False)
    up.weight.data.copy_(bilinear_kernel(2, 8))
    up.requires_grad_(False)
    out = up(torch.ones(1, 2, 5, 5))
    assert out.shape[-2:] == (20, 20)
    torch.testing.assert_close(out[..., 4:-4, 4:-4], torch.ones(1, 2, 12, 12))
    assert float(up(torch.tensor([[[[1.0]], [[0.0]]]]))[0, 1].abs().max()) == 0  # per channel


def test_both_heads_put_a_cell_on_its_pixel_at_any_size():
    """Cell n of a stride-4 map is pixel 4n, in a 20 px crop and a 23 px frame alike."""
    cell = torch.zeros(1, 1, 6, 6)
    cell[0, 0, 2, 3] = 1.0
    fcn = FCN32sHead([1], 1, [4])
    with torch.no_grad():
        fcn.score.weight.fill_(1.0)
    for size in ((20, 20), (23, 21)):
        for out in (upsample(cell, 4, size), fcn([cell], size).detach()):
            assert out.shape[-2:] == size
            assert divmod(int(out.flatten().argmax()), size[1]) == (8, 12)
            assert float(out.max()) == pytest.approx(1.0)
            assert float(out[0, 0, 8, 14]) == pytest.approx(0.5)  # halfway to the next cell


# ------------------------------------------------------------------------------- readers


def _photos(n: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Crops of real photographs (scikit-image's)."""
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    out = []
    for k in range(n):
        image = Image.fromarray(sources[k % len(sources)]).resize((width, height))
        out.append(np.asarray(image))
    return out


def _mask(height: int, width: int, classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, classes, (height, width), dtype=np.uint8)


def _write_camvid(root, n_train=3, n_val=2):
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for k, photo in enumerate(_photos(n)):
            Image.fromarray(photo).save(root / split / f"f{k}.jpg")
            mask = _mask(*photo.shape[:2], 12, k)  # 11 is CamVid's void
            Image.fromarray(mask).save(root / f"{split}annot" / f"f{k}.png")


def test_camvid_reader_pairs_frames_and_reads_void_as_ignore(tmp_path):
    _write_camvid(tmp_path)
    source = open_masks(f"camvid:{tmp_path}", "train")
    assert len(source) == 3 and source.num_classes == 11 and source.classes[0] == "Sky"
    frame = source[1]
    assert frame.shape == (48, 64, 4) and frame.dtype == np.uint8
    raw = np.asarray(Image.open(tmp_path / "trainannot" / "f1.png"))
    expected = np.where(raw == 11, IGNORE, raw)
    np.testing.assert_array_equal(frame[..., 3], expected)
    assert len(open_masks(f"camvid:{tmp_path}", "val")) == 2
    with pytest.raises(DatasetError, match="no test/ folder .it has train, val."):
        open_masks(f"camvid:{tmp_path}", "test")


def test_voc_reader_reads_palette_masks_with_255_borders(tmp_path):
    root = tmp_path / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    ids = ["2007_000001", "2007_000002"]
    for k, (name, photo) in enumerate(zip(ids, _photos(2), strict=True)):
        Image.fromarray(photo).save(root / "JPEGImages" / f"{name}.jpg")
        mask = _mask(*photo.shape[:2], 21, k)
        mask[0] = 255  # the border VOC draws around objects
        picture = Image.fromarray(mask, "P")
        picture.putpalette(sb.data.masks.voc_palette().reshape(-1).tolist())
        picture.save(root / "SegmentationClass" / f"{name}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids) + "\n")
    source = open_masks(f"voc:{root}", "train")
    assert source.num_classes == 21 and source.classes[:2] == ["background", "aeroplane"]
    frame = source[0]
    assert (frame[0, :, 3] == IGNORE).all() and frame[1:, :, 3].max() < 21
    np.testing.assert_array_equal(source.palette[15], [192, 128, 128])  # person, as VOC draws it
    with pytest.raises(DatasetError, match=r"no ImageSets/Segmentation/val.txt"):
        open_masks(f"voc:{root}", "val")


def _write_masks_folder(root, n=4, classes=3, names=True):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k, photo in enumerate(_photos(n)):
        Image.fromarray(photo).save(root / "images" / f"p{k}.png")
        Image.fromarray(_mask(*photo.shape[:2], classes, k)).save(root / "masks" / f"p{k}.png")
    if names:
        (root / "classes.txt").write_text("\n".join(f"c{k}" for k in range(classes)) + "\n")


def _write_streets(root):
    """A CamVid-layout folder whose frames come from three drives, as CamVid's do: AAA in
    train, BBB in train and val, CC in val."""
    layout = {"train": ["AAA_001", "AAA_002", "BBB_001"], "val": ["BBB_002", "CC_001", "CC_0"]}
    for split, stems in layout.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for k, (stem, photo) in enumerate(zip(stems, _photos(len(stems)), strict=True)):
            Image.fromarray(photo).save(root / split / f"{stem}.png")
            Image.fromarray(_mask(*photo.shape[:2], 11, k)).save(
                root / f"{split}annot" / f"{stem}.png"
            )


def test_a_held_out_source_is_scored_from_every_split_and_never_trained_on(tmp_path):
    _write_streets(tmp_path)
    stems = lambda source: [Path(image).stem for image in source.images]  # noqa: E731
    train, test = segmentation_pairs(f"camvid:{tmp_path}", hold_out=["BBB"])
    assert stems(train) == ["AAA_001", "AAA_002", "CC_0", "CC_001"]
    assert stems(test) == ["BBB_001", "BBB_002"] and test.split == "held out: BBB"
    assert train.classes == test.classes and len(test.classes) == 11
    # a list of frames
    train, test = segmentation_pairs(f"camvid:{tmp_path}", hold_out=["CC_0", "AAA_001"])
    assert stems(test) == ["AAA_001", "CC_0"]  # CC_0 is a frame, not the start of CC_001
    with pytest.raises(DatasetError, match="no frame is one of AA .*begin with AAA, BBB, CC"):
        segmentation_pairs(f"camvid:{tmp_path}", hold_out=["AA"])  # a name ends at a separator
    with pytest.raises(DatasetError, match="every frame is one of"):
        segmentation_pairs(f"camvid:{tmp_path}", hold_out=["AAA", "BBB", "CC"])


def test_segment_hold_out_trains_on_the_other_sources_and_says_what_it_scored(tmp_path, capsys):
    _write_streets(tmp_path / "streets")
    weights = tmp_path / "w.safetensors"
    sb.save(sb.build("splitbrain", preset="small", width=0.125), weights, {"steps": 5})
    (tmp_path / "held.txt").write_text("CC_001\nCC_0\n")
    argv = ["segment", "--weights", str(weights), "--data", f"camvid:{tmp_path / 'streets'}",
            "--hold-out", f"@{tmp_path / 'held.txt'}", "--epochs", "1", "--batch-size", "2",
            "--resize", "48", "--crop", "32", "--workers", "0", "--no-progress",
            "--out", str(tmp_path / "seg")]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "train: camvid " in printed and "split=all but CC_001, CC_0: 4 images" in printed
    assert "split=held out: CC_001, CC_0: 2 images" in printed
    report = json.loads((tmp_path / "seg" / "segment.json").read_text())
    assert report["settings"]["hold_out"] == ["CC_001", "CC_0"]
    assert report["settings"]["test_data"].endswith("(held out: CC_001, CC_0)")
    assert report["models"][0]["test_items"] == 2
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--test-data", f"camvid:{tmp_path / 'streets'}"])
    assert exit_.value.code == 2 and "--hold-out scores frames of --data" in capsys.readouterr().err


def test_generic_masks_take_class_names_from_classes_txt_or_the_values(tmp_path, caplog):
    _write_masks_folder(tmp_path / "named")
    assert open_masks(f"masks:{tmp_path / 'named'}").classes == ["c0", "c1", "c2"]
    _write_masks_folder(tmp_path / "bare", names=False)
    with caplog.at_level(logging.INFO, logger="splitbrain.data"):
        assert open_masks(f"masks:{tmp_path / 'bare'}").classes == ["0", "1", "2"]
    assert "has no classes.txt: classes 0-2" in caplog.text
    with pytest.raises(DatasetError, match="no images/ folder"):
        open_masks(f"masks:{tmp_path}")
    with pytest.raises(DatasetError, match="segmentation data is camvid:DIR"):
        open_masks(f"folder:{tmp_path}")


def test_generic_masks_share_one_class_list_and_read_binary_masks(tmp_path):
    for split, classes in (("train", 3), ("val", 2)):  # val lacks class 2
        _write_masks_folder(tmp_path / "split" / split, n=2, classes=classes, names=False)
    train, val = (open_masks(f"masks:{tmp_path / 'split'}", s) for s in ("train", "val"))
    assert train.classes == val.classes == ["0", "1", "2"]
    root = tmp_path / "binary"
    _write_masks_folder(root, n=2, classes=2)
    for mask in (root / "masks").iterdir():
        Image.fromarray(np.asarray(Image.open(mask)) > 0).save(mask)  # mode "1"
    assert Image.open(root / "masks" / "p0.png").mode == "1"
    assert set(np.unique(open_masks(f"masks:{root}")[0][..., 3])) == {0, 1}
    (tmp_path / "nomasks" / "images").mkdir(parents=True)
    for name, photo in zip("ab", _photos(2), strict=True):
        Image.fromarray(photo).save(tmp_path / "nomasks" / "images" / f"{name}.png")
    with pytest.raises(DatasetError, match="no image of split 'train' has a mask"):
        open_masks(f"masks:{tmp_path / 'nomasks'}")


def test_bad_pairs_are_named_skipped_and_counted(tmp_path, caplog):
    root = tmp_path / "data"
    _write_masks_folder(root, n=8)
    Image.fromarray(_mask(10, 10, 3, 0)).save(root / "masks" / "p1.png")  # wrong size
    wrong = _mask(48, 64, 3, 0)
    wrong[5, 5] = 7  # neither a class nor 255
    Image.fromarray(wrong).save(root / "masks" / "p2.png")
    (root / "masks" / "p3.png").unlink()  # an image without its mask
    source = open_masks(f"masks:{root}", "all")
    with caplog.at_level(logging.WARNING):
        with pytest.raises(DatasetError, match=r"37.5% of 8 images .* unusable .limit 1%"):
            scan_source(source, 0.01, progress=False)
        log = scan_source(source, 0.5, progress=False)
    assert log.skipped == {"no mask": 1, "mask size differs": 1, "bad mask value": 1}
    assert sorted(log.good_indices().tolist()) == [0, 4, 5, 6, 7]
    text = caplog.text
    masks = root / "masks"
    assert (
        f"p1.png: mask size differs ({masks / 'p1.png'} is 10x10, its photograph 64x48 "
        "(width x height))" in text
    )
    assert (
        f"p2.png: bad mask value ({masks / 'p2.png'} holds 7; classes are 0-2, 255 ignored)" in text
    )
    assert f"{root / 'images' / 'p3.png'}: no mask" in text


@needs_camvid
def test_median_frequency_weights_match_segnets_on_camvid():
    source = open_masks(f"camvid:{CAMVID}", "train")
    weights = median_frequency_weights(source, np.arange(len(source)))
    segnet = [0.2595, 0.1826, 4.5640, 0.1417, 0.9051, 0.3826, 9.6446, 1.8418, 0.6823, 6.2478,
              7.3614]  # fmt: skip
    # SegNet took the median over its 12 classes, void included: its weights are ours times
    # one factor (0.93), within 12% for every class but SignSymbol, whose pixels its own
    # copy of the masks must have counted 2.5 times rarer (docs/SEGMENTATION.md)
    ratio = weights.numpy() / np.array(segnet)
    factor = np.median(ratio)
    assert 1.0 < factor < 1.15
    others = np.delete(ratio / factor, 6)
    np.testing.assert_allclose(others, 1.0, rtol=0.12)
    assert 0.3 < ratio[6] < 0.5


# ---------------------------------------------------------------- heads learn a planted rule


def _planted(root, n=48, side=48, block=16, seed=0):
    """Photographs of three flat colours in blocks; the mask is the colour's class."""
    rng = np.random.default_rng(seed)
    colours = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 230]], dtype=np.uint8)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(n):
        blocks = rng.integers(0, 3, (side // block, side // block))
        mask = np.kron(blocks, np.ones((block, block), dtype=np.int64)).astype(np.uint8)
        noise = rng.integers(-20, 21, (side, side, 3))
        photo = np.clip(colours[mask].astype(int) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(photo).save(root / "images" / f"{k:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{k:03d}.png")


@pytest.mark.parametrize(
    ("head", "freeze"), [("hypercolumn", None), ("fcn32s", "conv2")], ids=["frozen", "fcn32s"]
)
def test_each_head_learns_a_planted_rule(tmp_path, head, freeze):
    _planted(tmp_path / "planted")
    source = open_masks(f"masks:{tmp_path / 'planted'}", "all")
    data = ScoredData.scan(source, source, 0.01, progress=False)
    torch.manual_seed(0)
    model = sb.build("splitbrain", preset="small", width=0.25)
    config = SegmentConfig(
        head=head, freeze_through=freeze, resize=48, crop=48, epochs=8 if freeze is None else 16,
        lr=0.05 if head == "hypercolumn" else 0.1, class_weights="none", workers=0,
        progress=False, precision="32-true", accelerator="cpu",
    )  # fmt: skip
    result = train_segmenter(model, data.train, data.train_log, data.test, data.test_indices,
                             config, tmp_path / "run", "planted")  # fmt: skip
    main_column = config.columns()[-1]
    assert result.scores[main_column].mean_iou > 90, result.scores[main_column]
    assert result.model.config.segmenter[0] == head
    frame = data.test[0]
    mask = segment_photo(result.model, frame[..., :3], side=48)
    assert mask.shape == (48, 48) and (mask == frame[..., 3]).mean() > 0.9


# ------------------------------------------------------------------ the command end to end


@needs_camvid
def test_segment_command_end_to_end_on_camvid_frames_then_predict(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    sb.save(sb.build("splitbrain", preset="small", width=0.125), weights, {"steps": 5})
    out = tmp_path / "seg"
    argv = ["segment", "--weights", f"sb={weights}", "gaussian:small", "--data",
            f"camvid:{CAMVID}", "--max-items", "4", "--epochs", "1", "--batch-size", "2",
            "--resize", "60", "--crop", "48", "--workers", "0", "--no-progress",
            "--precision", "32-true", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (  # the geometry it uses, said once
        "frames at shorter side 60 for scoring; training crops 48x48 from frames at shorter "
        "side 60-90, mirrored half the time" in printed
    )
    for split in ("train", "val"):  # each scan says what it scanned
        assert printed.count(f"camvid:{CAMVID} ({split}): skipped 0 of 4 images") == 1
    assert (
        "training 6 heads side by side (conv1, conv2, conv3, conv4, conv5, hypercolumn); "
        "the loss shown is their mean" in printed
    )
    report = json.loads((out / "segment.json").read_text())
    assert [m["name"] for m in report["models"]] == ["sb", "gaussian:small:0.125"]
    scores = report["models"][0]["scores"]["hypercolumn"]
    assert len(scores["iou"]) == 11 and 0 <= scores["mean_iou"] <= 100
    assert report["settings"]["subset"].startswith("a trial: 4 frames")
    for picture in ("segment.png", "segment_iou.png", "segment_frames.png"):
        assert (out / picture).stat().st_size > 1000
    md = (out / "segment.md").read_text()
    assert "## mIoU (%)" in md and "| sb |" in md and "Bicyclist" in md
    segmenter = out / "models" / "sb" / "sb.safetensors"
    model = sb.load(segmenter)
    assert model.config.segmenter[0] == "hypercolumn" and model.config.segmenter[2][0] == "Sky"
    assert model.provenance["segment"]["resize"] == 60
    # Python gives the command's numbers: model.segment sees each frame as the command does
    confusion = torch.zeros(11, 11, dtype=torch.int64)
    val = open_masks(f"camvid:{CAMVID}", "val").subset(4)
    for frame in (val[k] for k in range(len(val))):
        raw = torch.from_numpy(frame[..., :3].copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            predicted = model.segment(raw).argmax(1)
        assert predicted.shape[-2:] == frame.shape[:2]
        confusion += confusion_matrix(predicted, torch.from_numpy(frame[..., 3].copy()), 11)
    python = SegmentationScores.from_confusion(confusion)
    assert python.pixel_accuracy == pytest.approx(scores["pixel_accuracy"], abs=0.01)
    assert python.mean_iou == pytest.approx(scores["mean_iou"], abs=0.01)
    assert main(["info", str(segmenter)]) == 0
    printed = capsys.readouterr().out
    assert "head: hypercolumn" in printed and "trunk:" in printed
    assert f"scored on: camvid:{CAMVID} val, 4 images" in printed
    assert "trial: a trial: 4 frames of each split" in printed
    assert not (out / "models" / "sb" / "checkpoints").exists()  # the result is kept instead
    # run again: both models are done: no work, the table printed, nothing written
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "mIoU (%)" in printed.out and f"report: {out / 'segment.json'}" in printed.out
    assert f"{out}: finished earlier, nothing to do" in printed.out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == written
    assert not (tmp_path / "seg-2").exists()
    # --predict: full size, palette PNGs, bad files named and counted, inputs kept
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(_photos(1, 75, 100)[0]).save(photos / "a.jpg")
    (photos / "broken.png").write_bytes(b"not a png")
    masks = tmp_path / "masks"
    code = main(["segment", "--predict", "--weights", str(segmenter), str(photos), "--out",
                 str(masks), "--overlay", "--no-progress"])  # the order the help gives  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "segmented 1 of 2 images; skipped 1: 1 not an image" in printed
    written = Image.open(masks / "a.png")
    assert written.mode == "P" and written.size == (100, 75)
    assert np.asarray(written).max() < 11
    assert Image.open(masks / "a-overlay.png").size == (100, 75)
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg", "broken.png"]
    listing = (masks / "classes.txt").read_text().splitlines()  # which colour is which class
    assert listing[0] == "0\tSky\t#808080" and listing[-1] == "10\tBicyclist\t#0080c0"
    # no output replaces another: a.jpg's overlay and a-overlay.jpg's mask are refused
    Image.fromarray(_photos(1, 75, 100)[0]).save(photos / "a-overlay.jpg")
    with pytest.raises(SystemExit) as exit_:
        main(["segment", "--predict", "--weights", str(segmenter), str(photos), "--out",
              str(tmp_path / "masks2"), "--overlay", "--no-progress"])  # fmt: skip
    assert exit_.value.code == 2
    assert (
        f"the overlay of {photos / 'a.jpg'} would replace the mask of "
        f"{photos / 'a-overlay.jpg'} at {tmp_path / 'masks2' / 'a-overlay.png'}; rename one of"
    ) in capsys.readouterr().err
    assert not (tmp_path / "masks2").exists()


def test_segment_refuses_what_cannot_work(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    sb.save(sb.build("splitbrain", preset="small", width=0.125), weights, {"steps": 5})
    cases = {
        "--data is needed to train": ["--weights", str(weights)],
        "--freeze-through is for --head fcn32s": ["--weights", str(weights), "--data",
                                                  f"masks:{tmp_path}", "--freeze-through", "conv2"],
        f"--data folder:{tmp_path}: segmentation reads frames with masks": [
            "--weights", str(weights), "--data", f"folder:{tmp_path}"],
    }  # fmt: skip
    for message, argv in cases.items():  # misused options: 2
        with pytest.raises(SystemExit) as exit_:
            main(["segment", *argv])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    # a weights file that is not a segmenter is bad input: 1, one line
    assert main(["segment", "--predict", "--weights", str(weights), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"splitbrain: error: {weights} has no segmenter; splitbrain segment --data trains one\n"
    )


def test_an_interrupted_segment_run_resumes_and_refuses_another_recipe(tmp_path, capsys):
    """A run whose second model was interrupted: the same command skips the first model and
    finishes the second; a third model adds its row; another recipe in that folder, or another
    model under a name it holds, is refused; --overwrite starts again."""
    import signal

    from splitbrain.errors import Interrupted
    from splitbrain.segment import run as run_module

    _planted(tmp_path / "planted", n=16)
    out = tmp_path / "seg"
    argv = ["segment", "--weights", "a=gaussian:small:0.125", "b=gaussian:small:0.25",
            "--data", f"masks:{tmp_path / 'planted'}", "--resize", "48", "--crop", "48",
            "--epochs", "1", "--batch-size", "4", "--workers", "0", "--no-progress",
            "--out", str(out)]  # fmt: skip
    trained = []
    real = run_module.train_segmenter

    def interrupted_at_b(model, *args, **kwargs):
        name = args[6] if len(args) > 6 else kwargs["name"]
        trained.append(name)
        if name == "b" and len(trained) == 2:
            raise Interrupted(signal.SIGTERM, "at step 1 of 4")
        return real(model, *args, **kwargs)

    run_module.train_segmenter = interrupted_at_b
    try:
        assert main(argv) == 128 + signal.SIGTERM  # as an interrupted run ends
        assert (out / "models" / "a" / "result.json").exists()
        assert not (out / "models" / "b" / "result.json").exists()
        assert main(argv) == 0  # resumed in the same folder
        assert trained == ["a", "b", "b"]  # a was not trained again
        # one more model, named first: its row joins the finished folder's table
        assert main([*argv[:2], "c=gaussian:small:0.5", *argv[2:]]) == 0
        assert trained == ["a", "b", "b", "c"]
    finally:
        run_module.train_segmenter = real
    assert not (tmp_path / "seg-2").exists()
    report = json.loads((out / "segment.json").read_text())
    assert [m["name"] for m in report["models"]] == ["c", "a", "b"]
    # c's row is the one it gets alone: each model is seeded on its own
    assert main([*argv[:2], "c=gaussian:small:0.5", *argv[4:-1], str(tmp_path / "c")]) == 0
    alone = json.loads((tmp_path / "c" / "segment.json").read_text())["models"][0]
    assert alone["scores"] == report["models"][0]["scores"]
    capsys.readouterr()
    assert main([*argv[:2], "d=gaussian:small:0.5", "b=gaussian:small:0.5", *argv[4:]]) == 1
    assert f"{out} holds a model named b made from gaussian:small:0.25, not gaussian:small:0.5" in (
        capsys.readouterr().err
    )
    (out / "models" / "b" / "result.json").unlink()  # as if b had stopped after a checkpoint
    (out / "models" / "b" / "checkpoints").mkdir()
    (out / "models" / "b" / "checkpoints" / "step-00000001.ckpt").write_bytes(b"x")
    capsys.readouterr()
    assert main([*argv[:3], "b=gaussian:small:0.5", *argv[4:]]) == 1  # b is another model there
    assert f"{out} holds a model named b made from gaussian:small:0.25, not gaussian:small:0.5" in (
        capsys.readouterr().err
    )
    assert main([*argv, "--lr", "0.02"]) == 1
    assert "holds a run made with other settings (--lr 0.01 there, 0.02 now)" in (
        capsys.readouterr().err
    )
    assert main([*argv, "--lr", "0.02", "--overwrite"]) == 0
    assert json.loads((out / "segment.json").read_text())["settings"]["lr"] == 0.02


def test_bn_stats_target_measures_the_trunks_statistics_on_the_training_frames(tmp_path):
    _write_streets(tmp_path / "streets")
    weights = tmp_path / "w.safetensors"
    sb.save(sb.build("splitbrain", preset="small", width=0.125), weights, {"steps": 5})
    argv = ["segment", "--weights", f"w={weights}", "--data", f"camvid:{tmp_path / 'streets'}",
            "--epochs", "1", "--batch-size", "2", "--resize", "48", "--crop", "32",
            "--workers", "0", "--no-progress"]  # fmt: skip
    trunk_bn = "encoders.0.tower.layers.conv1.1.running_mean"
    stored = sb.load(weights).state_dict()[trunk_bn]
    for stats in ("weights", "target"):
        assert main([*argv, "--bn-stats", stats, "--out", str(tmp_path / stats)]) == 0
        segmenter = sb.load(tmp_path / stats / "models" / "w" / "w.safetensors")
        mean = segmenter.state_dict()[trunk_bn]
        if stats == "weights":  # the frozen trunk keeps its file's statistics
            assert torch.equal(mean, stored)
        else:  # measured on the training frames: not the file's (zero, for an untrained one)
            assert not torch.allclose(mean, stored) and mean.abs().max() > 0.01
    settings = json.loads((tmp_path / "target" / "segment.json").read_text())["settings"]
    assert settings["bn_stats"] == "target"


def test_softened_class_weights_are_the_square_root_of_median_frequency(tmp_path):
    from splitbrain.segment.train import class_weights

    _write_streets(tmp_path)
    source = open_masks(f"camvid:{tmp_path}", "train")
    indices = np.arange(len(source))
    full = median_frequency_weights(source, indices)
    assert full.min() < 1 < full.max()  # some classes lifted, some lowered
    softened = class_weights(source, indices, "sqrt-median-freq")
    torch.testing.assert_close(softened, full.sqrt())
    assert torch.equal(class_weights(source, indices, "median-freq"), full)
    assert class_weights(source, indices, "none") is None
    assert SegmentConfig().class_weights == "sqrt-median-freq"  # the default, as measured


def test_a_folder_without_splits_is_scored_on_frames_it_never_trained_on(tmp_path, capsys):
    _write_masks_folder(tmp_path / "flat", n=10)
    weights = tmp_path / "w.safetensors"
    sb.save(sb.build("splitbrain", preset="small", width=0.125), weights, {"steps": 5})
    argv = ["segment", "--weights", str(weights), "--data", f"masks:{tmp_path / 'flat'}",
            "--epochs", "1", "--batch-size", "4", "--resize", "36", "--crop", "32",
            "--workers", "0", "--no-progress", "--out", str(tmp_path / "seg")]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 frames of its 10 (1 in 5, chosen by a hash of the file name" in printed
    title = (tmp_path / "seg" / "segment.md").read_text().splitlines()[0]
    assert title == (
        f"# Semantic segmentation, scored on masks:{tmp_path / 'flat'} held out (1 in 5 by "
        "name), 2 images"
    )
    report = json.loads((tmp_path / "seg" / "segment.json").read_text())
    assert report["models"][0]["train_items"] == 8 and report["models"][0]["test_items"] == 2


def test_what_a_segmentation_says_it_does(tmp_path, caplog):
    """Class weights of 0 say why, the loss shown is explained, one frame is "1 image", and
    segmenting a read-only array warns of nothing."""
    import warnings

    from splitbrain.segment import SegmentationTask

    _write_masks_folder(tmp_path / "d" / "train", n=2, classes=2, names=False)
    _write_masks_folder(tmp_path / "d" / "val", n=1, classes=3, names=False)
    train, test = segmentation_pairs(f"masks:{tmp_path / 'd'}")
    assert test.describe().endswith(": 1 image, 4 channels, 3 classes (0, 1, 2)")
    data = ScoredData.scan(train, test, 0.01, progress=False)
    with caplog.at_level(logging.INFO, logger="splitbrain.segment"):
        SegmentationTask(data, SegmentConfig(resize=48, crop=32), {})
    assert "2 0.000 (no pixel in the training frames)" in caplog.text
    assert "the loss shown is their mean" in caplog.text
    model = sb.build("splitbrain", preset="small", width=0.125)
    model = _untrained_segmenter(model, 3)
    photo = _photos(1)[0].copy()
    photo.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert segment_photo(model, photo).shape == photo.shape[:2]


def _untrained_segmenter(model, classes: int):
    """``model`` with an untrained hypercolumn segmenter of ``classes`` classes."""
    import dataclasses

    head = ("hypercolumn", ("conv1", "conv2"), tuple(str(k) for k in range(classes)))
    segmenter = sb.SplitBrain(dataclasses.replace(model.config, segmenter=head))
    segmenter.load_state_dict(model.state_dict(), strict=False)
    return segmenter.eval()
