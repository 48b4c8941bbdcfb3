"""Model folders in the Hugging Face convention and hub names: a weights file made a folder and
back, the folder's files and card, loading ``owner/name`` from a Hugging Face cache filled here
(offline), and one-line errors for what is neither a path nor a name."""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, constants

import splitbrain as sb
from splitbrain.cli import main
from splitbrain.weights import record_of

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A weights file whose BatchNorm statistics moved away from their initial values."""
    model = sb.build("splitbrain", preset="small", width=0.125)
    model.train()
    model(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    provenance = {"data": "cifar10:", "steps": 5, "batch size": 4}
    return sb.save(model.eval(), tmp_path_factory.mktemp("w") / "w.safetensors", provenance)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache that huggingface_hub reads offline, as HF_HUB_OFFLINE=1 and
    HF_HUB_CACHE make it (its constants are read once, on import: set here too)."""
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def publish(cache: Path, name: str, folder: Path) -> None:
    """``folder`` as huggingface_hub caches a download of hub model ``name``: its files in
    snapshots/COMMIT/, and refs/main naming COMMIT."""
    repo = cache / f"models--{name.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


def assert_same_outputs(model: sb.SplitBrain, other: sb.SplitBrain) -> None:
    rgb = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for ours, theirs in zip(model(rgb), other(rgb), strict=True):
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert torch.equal(ours[name], theirs[name]), name


def test_a_weights_file_made_a_folder_and_back_gives_the_same_outputs(trained, tmp_path):
    model = sb.load(trained)
    folder = sb.save_pretrained(model, tmp_path / "demo")
    from_folder = sb.load(folder)
    assert from_folder.config == model.config
    assert from_folder.provenance == model.provenance
    assert_same_outputs(model, from_folder)
    alone = tmp_path / "alone.safetensors"  # the folder's weights file loads by itself
    shutil.copy(folder / "model.safetensors", alone)
    assert_same_outputs(model, sb.load(alone))


def test_the_folder_holds_the_configuration_the_weights_and_a_card(trained, tmp_path):
    folder = sb.save_pretrained(sb.load(trained), tmp_path / "demo")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "model.safetensors"
    ]  # fmt: skip
    config = json.loads((folder / "config.json").read_text())
    assert config == record_of(trained) == record_of(folder / "model.safetensors")
    assert config["format"] == "splitbrain/1"
    assert config["config"]["variant"] == "splitbrain" and config["config"]["preset"] == "small"
    assert config["provenance"]["geometry"] == {"preset": "small", "resize": 36, "crop": 32}
    assert config["provenance"]["decoding"] == {"decode": "annealed", "temperature": 0.38}


def test_the_card_metadata_reads_back(trained, tmp_path):
    folder = sb.save_pretrained(sb.load(trained), tmp_path / "demo", "me/demo")
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "splitbrain" and data["license"] == "mit"
    assert data["tags"] == [
        "self-supervised", "colorization", "split-brain-autoencoder", "pytorch", "safetensors",
        "arxiv:1611.09842",
    ]  # fmt: skip
    assert data["datasets"] == ["cifar10"]
    assert data["pipeline_tag"] == "image-feature-extraction"
    assert "model-index" not in data  # no scores recorded
    assert 'model = sb.load("me/demo")' in card.text
    assert "splitbrain colorize --weights me/demo photos/ --out coloured/" in card.text
    assert "pip install splitbrain" in card.text
    assert "- **steps**: 5" in card.text and "- **data**: cifar10:" in card.text


def test_a_segmenter_card_lists_its_recorded_scores(tmp_path):
    trunk = sb.build("splitbrain", preset="small", width=0.125)
    head = ("hypercolumn", ("conv1", "conv5"), ("road", "car"))
    segmenter = sb.SplitBrain(dataclasses.replace(trunk.config, segmenter=head))
    provenance = {
        "segmented from": "runs/demo/weights.safetensors",
        "data": "camvid:DIR",
        "scored on": "camvid:DIR val, 101 frames",
        "scores": {"mIoU": 19.75, "pixel acc": 45.5, "class acc": math.nan},
        "trunk": {"data": "stl10:", "steps": 5},
    }
    path = sb.save(segmenter, tmp_path / "seg.safetensors", provenance)
    folder = sb.save_pretrained(sb.load(path), tmp_path / "seg", "me/seg")
    card = ModelCard.load(folder / "README.md")
    assert card.data.pipeline_tag == "image-segmentation"
    assert card.data.datasets == ["camvid", "stl10"]
    results = [
        (r.task_type, r.dataset_type, r.dataset_split, r.metric_name, r.metric_value)
        for r in card.data.eval_results
    ]
    assert results == [  # the undefined class accuracy is left out
        ("image-segmentation", "camvid", "val", "mIoU", 19.75),
        ("image-segmentation", "camvid", "val", "pixel acc", 45.5),
    ]
    assert "| mIoU | 19.75 |" in card.text and "| class acc | - |" in card.text
    assert "splitbrain segment --predict --weights me/seg photos/ --out masks/" in card.text


def test_a_detector_card_lists_its_recorded_scores(tmp_path):
    trunk = sb.build("splitbrain", preset="small", width=0.125)
    detector = sb.SplitBrain(dataclasses.replace(trunk.config, detector=(("car",), (8, 16), 64)))
    provenance = {
        "detected from": "runs/demo/weights.safetensors",
        "data": "coco:DIR",
        "scored on": "coco:DIR val, 12 images",
        "scores": {"AP50": 12.5, "AP": 4.25, "AP75": 2.0, "VOC07 AP50": 11.0},
    }
    path = sb.save(detector, tmp_path / "det.safetensors", provenance)
    folder = sb.save_pretrained(sb.load(path), tmp_path / "det", "me/det")
    card = ModelCard.load(folder / "README.md")
    assert card.data.pipeline_tag == "object-detection" and card.data.datasets == ["coco"]
    results = [(r.task_type, r.metric_type, r.metric_value) for r in card.data.eval_results]
    assert results == [
        ("object-detection", "ap50", 12.5), ("object-detection", "ap", 4.25),
        ("object-detection", "ap75", 2.0), ("object-detection", "voc07_ap50", 11.0),
    ]  # fmt: skip
    assert "splitbrain detect --predict --weights me/det photos/ --out found/" in card.text


def test_a_hub_name_loads_from_the_cache_offline(trained, tmp_path, hf_cache):
    model = sb.load(trained)
    publish(hf_cache, "owner/demo", sb.save_pretrained(model, tmp_path / "demo"))
    loaded = sb.load("owner/demo")
    assert loaded.config == model.config
    assert_same_outputs(model, loaded)
    entry = torch.hub.load(str(ROOT), "splitbrain", source="local", weights="owner/demo")
    assert_same_outputs(model, entry)


def test_what_is_neither_a_path_nor_a_name_is_one_line_of_bad_input(tmp_path, hf_cache, capsys):
    cases = {
        "owner/missing": "owner/missing: no such file or folder here, and not in the Hugging "
        "Face cache (HF_HUB_OFFLINE is set: fetch it once online)",
        "not a name": "not a name: no such file, folder or hub name (owner/name)",
        "a//b": "a//b: no such file, folder or hub name (owner/name)",
        str(tmp_path): f"{tmp_path} is a folder, neither a weights file nor a model folder "
        "(model.safetensors)",
    }
    for source, message in cases.items():
        with pytest.raises(sb.WeightsFileError) as raised:
            sb.load(source)
        assert str(raised.value) == message
        assert main(["info", source]) == 1
        assert capsys.readouterr().err.strip().splitlines() == [f"splitbrain: error: {message}"]


def test_a_folder_whose_config_json_was_edited_is_refused(trained, tmp_path):
    folder = sb.save_pretrained(sb.load(trained), tmp_path / "demo")
    config = json.loads((folder / "config.json").read_text())
    config["provenance"]["decoding"]["temperature"] = 1.0
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(sb.WeightsFileError, match="config.json disagrees with model.safetens"):
        sb.load(folder)


def test_export_hub_writes_a_folder_and_keeps_an_earlier_one(trained, tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["export", "--weights", str(trained), "--hub", str(out), "--hub-name", "me/demo"]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"model folder: {out} (README.md, config.json, model.safetensors)"
    )
    assert 'sb.load("me/demo")' in (out / "README.md").read_text()
    assert_same_outputs(sb.load(trained), sb.load(out))
    assert main(argv) == 0  # an earlier folder is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "demo-2"]
    for misused in (["--hub-name", "me/demo"], ["--hub", str(out), "--hub-name", "no name"]):
        onnx = [] if "--hub" in misused else ["--onnx", str(tmp_path / "f.onnx")]
        with pytest.raises(SystemExit) as exited:
            main(["export", "--weights", str(trained), *onnx, *misused])
        assert exited.value.code == 2
