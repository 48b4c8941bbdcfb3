"""Using a trained network: colorizing photographs, extracting features, ONNX, torch.hub,
rebuilding weights at another preset."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import splitbrain as sb
from splitbrain.cli import main
from splitbrain.colorize import colorizer
from splitbrain.data import EvalTransform, ImageDataset, open_source
from splitbrain.inference import FeatureWriter
from splitbrain.init import calibrate_batchnorm

REPO = Path(__file__).resolve().parents[2]


def photos(n: int = 6, side: int = 64) -> np.ndarray:
    """Real photographs: crops of the pictures inside scikit-image, (n, side, side, 3) uint8."""
    source = open_source(f"skimage:{n}")
    dataset = ImageDataset(source, EvalTransform(side, side))
    return np.stack([dataset[i][0].permute(1, 2, 0).numpy() for i in range(n)])


def trained(preset: str = "small", width: float = 0.25, seed: int = 0) -> sb.SplitBrain:
    """A model whose BatchNorm statistics come from real photographs (as after training)."""
    torch.manual_seed(seed)
    model = sb.build("splitbrain", preset=preset, width=width)
    images = torch.from_numpy(photos(16, 64)).permute(0, 3, 1, 2)
    calibrate_batchnorm(model, [(images, None)], 1)
    return model


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    return sb.save(trained(), folder / "weights.safetensors")


# ---------------------------------------------------------------------------- sb.colorize


def test_colorize_returns_the_kind_it_was_given_at_full_resolution():
    model = trained()
    picture = photos(1, 64)[0]
    big = np.array(Image.fromarray(picture).resize((300, 200)))
    out = sb.colorize(model, big)
    assert isinstance(out, np.ndarray) and out.shape == (200, 300, 3) and out.dtype == np.uint8
    grey = sb.colorize(model, big[..., 0])
    assert grey.shape == (200, 300, 3)
    pil = sb.colorize(model, Image.fromarray(big))
    assert isinstance(pil, Image.Image) and pil.size == (300, 200) and pil.mode == "RGB"
    assert np.array_equal(np.asarray(pil), out)
    tensor = torch.from_numpy(big).permute(2, 0, 1).float() / 255
    again = sb.colorize(model, tensor)
    assert again.shape == tensor.shape and again.dtype == torch.float32
    # the output keeps the original's lightness, at its own size (but where the colour it is
    # given falls outside sRGB and is clipped)
    lightness = sb.color.rgb_to_lab(again[None])[0, 0]
    difference = (lightness - sb.color.rgb_to_lab(tensor[None])[0, 0]).abs()
    assert (difference < 0.5).float().mean() > 0.99 and difference.mean() < 0.05


def test_colorize_shows_the_network_the_lightness_at_its_geometry():
    model = trained()
    encoder, _ = colorizer(model)
    seen = []
    hook = encoder.tower.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    sb.colorize(model, np.zeros((200, 300, 3), np.uint8))  # default: the preset's resize, 36
    sb.colorize(model, np.zeros((200, 300, 3), np.uint8), side=64)
    hook.remove()
    assert [tuple(s[-2:]) for s in seen] == [(36, 54), (64, 96)]


def test_colorize_respects_exif_orientation():
    model = trained()
    image = Image.fromarray(photos(1, 64)[0]).resize((80, 40))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rotated = Image.open(_saved(image, exif))
    assert sb.colorize(model, rotated).size == (40, 80)


def _saved(image: Image.Image, exif) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "rotated.jpg"
    image.save(path, exif=exif)
    return path


@pytest.mark.parametrize("decode", ["annealed", "mean", "mode"])
def test_decodings_give_colours_in_range(decode):
    out = sb.colorize(trained(), torch.rand(2, 3, 48, 48), decode=decode)
    assert out.shape == (2, 3, 48, 48) and out.min() >= 0 and out.max() <= 1


# ---------------------------------------------------------------------------- colorize command


def test_colorize_command_mirrors_names_skips_bad_inputs_and_counts(weights, tmp_path, capsys):
    pictures = photos(4, 64)
    inputs = tmp_path / "in"
    for i, name in enumerate(["a.png", "nested/b.jpg", "c.png"]):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pictures[i]).save(inputs / name)
    Image.fromarray(pictures[3][..., 0]).save(tmp_path / "grey.png")  # mode L
    (inputs / "broken.jpg").write_bytes(b"not a picture")
    Image.fromarray(pictures[0][:8, :8]).save(inputs / "tiny.png")
    out = tmp_path / "out"
    argv = ["colorize", str(inputs), str(tmp_path / "*.png"), str(tmp_path / "missing.jpg"),
            "--weights", str(weights), "--out", str(out), "--side-by-side",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert (
        "colorized 4 of 7 images; skipped 3: 1 not an image, 1 too small, "
        "1 no such file or directory"
    ) in printed.out.splitlines()
    assert "missing.jpg: no such file or directory" in printed.err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a.png", "c.png", "grey.png", "nested/b.png"]
    # grey | colorized | original for colour inputs, grey | colorized for a grey one
    assert Image.open(out / "a.png").size == (3 * 64, 64)
    assert Image.open(out / "grey.png").size == (2 * 64, 64)


def test_colorize_command_writes_jpeg_and_names_the_variants_that_can(weights, tmp_path, capsys):
    Image.fromarray(photos(1, 64)[0]).save(tmp_path / "x.png")
    out = tmp_path / "out"
    argv = ["colorize", str(tmp_path / "x.png"), "--weights", str(weights), "--out", str(out),
            "--format", "jpg", "--quality", "80", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert Image.open(out / "x.jpg").format == "JPEG"
    ab_to_l = sb.save(
        sb.build("ab2l-cl", preset="small", width=0.25), tmp_path / "ab2l.safetensors"
    )
    argv[argv.index("--weights") + 1] = str(ab_to_l)
    capsys.readouterr()
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "variants that can colorize: splitbrain" in error
    blocked = tmp_path / "file"
    blocked.write_text("a file where the output folder should be")
    argv[argv.index("--weights") + 1] = str(weights)
    argv[argv.index("--out") + 1] = str(blocked / "out")
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "cannot create the output folder" in error


# ---------------------------------------------------------------------------- extract


def test_extract_equals_the_models_features_for_every_kind_of_input():
    model = trained()
    images = torch.from_numpy(photos(6, 32)).permute(0, 3, 1, 2)
    raw = images.float() / 255
    direct = model.features(raw, ["conv3", "conv5"])
    for given in (raw, images, [(images[:4], None), (images[4:], None)]):
        features = sb.extract(model, given, ["conv3", "conv5"], pool="none", batch_size=4)
        for name in ("conv3", "conv5"):
            torch.testing.assert_close(features[name], direct[name])
    avg = sb.extract(model, raw, "conv5")["conv5"]
    torch.testing.assert_close(avg, direct["conv5"].mean((2, 3)))
    paper = sb.extract(model, raw, "conv5", pool="paper")["conv5"]
    assert paper.shape == (6, 64 * 8 * 8)  # small preset: the grid nearest 9,000 dims, at most 8
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        sb.extract(model, raw, "conv5", pool="max")


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_feature_writer_streams_batches_into_one_file(tmp_path, suffix):
    writer = FeatureWriter(tmp_path / f"f{suffix}")
    parts = [torch.randn(n, 3, 2) for n in (4, 5, 1)]
    for k, part in enumerate(parts):
        writer.write({"x": part, "labels": torch.full((len(part),), k)})
    path = writer.close({"note": "test"})
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left
    if suffix == ".npz":
        with np.load(path) as archive:
            x, labels = torch.from_numpy(archive["x"]), torch.from_numpy(archive["labels"])
    else:
        with safe_open(str(path), framework="pt") as f:
            x, labels = f.get_tensor("x"), f.get_tensor("labels")
            assert f.metadata() == {"note": "test"}
    torch.testing.assert_close(x, torch.cat(parts))
    assert labels.tolist() == [0] * 4 + [1] * 5 + [2]


def test_extract_command_writes_features_that_match_the_files(weights, tmp_path, capsys):
    pictures = photos(5, 40)
    folder = tmp_path / "photos"
    for i, picture in enumerate(pictures):
        (folder / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(folder / f"class{i % 2}" / f"{i}.png")
    (folder / "class0" / "broken.png").write_bytes(b"broken")
    out = tmp_path / "features.safetensors"
    argv = ["extract", "--weights", str(weights), "--data", f"folder:{folder}",
            "--layers", "conv5,fc7", "--out", str(out), "--workers", "0", "--no-progress",
            "--crop", "32", "--resize", "36", "--precision", "32-true"]  # fmt: skip
    assert main(argv) == 0
    model = sb.load(weights)
    with safe_open(str(out), framework="pt") as f:
        conv5, fc7, labels = (f.get_tensor(k) for k in ("conv5", "fc7", "labels"))
    with open(out.with_suffix(".csv")) as table:
        rows = list(csv.DictReader(table))
    assert len(rows) == len(conv5) == 5 and fc7.shape == (
        5,
        model.encoders[0].tower.out_channels * 2,
    )
    transform = EvalTransform(36, 32)
    for row in rows:
        image = np.array(Image.open(row["name"]))
        expected = model.features(transform(image)[None].float() / 255, ["conv5"])["conv5"]
        torch.testing.assert_close(conv5[int(row["row"])], expected.mean((2, 3))[0])
        assert (
            int(row["label"]) == labels[int(row["row"])] == int(Path(row["name"]).parent.name[-1])
        )
    assert "skipped 1 of 6 images" in capsys.readouterr().out


# ---------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize(
    ("what", "options", "channels"),
    [
        ("features", ["--layers", "conv1,conv5,fc7"], 3),
        ("colorizer", ["--takes", "rgb", "--gives", "rgb"], 3),
        ("colorizer", ["--takes", "L", "--gives", "ab"], 1),
    ],
)
def test_onnx_graphs_match_torch_on_random_and_real_images(
    weights, tmp_path, what, options, channels
):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from splitbrain.inference.onnx import ColorizerGraph, FeaturesGraph

    path = tmp_path / "model.onnx"
    assert (
        main(["export", "--weights", str(weights), "--onnx", str(path), "--what", what, *options])
        == 0
    )
    session = ort.InferenceSession(str(path))
    model = sb.load(weights)
    if what == "features":
        graph = FeaturesGraph(model, ["conv1", "conv5", "fc7"])
    else:
        graph = ColorizerGraph(model, options[1], options[3])
    real = torch.from_numpy(photos(3, 72)).permute(0, 3, 1, 2).float() / 255
    for x in (torch.rand(1, 3, 64, 80), torch.rand(2, 3, 96, 64), real):
        if channels == 1:
            x = sb.color.rgb_to_lab(x)[:, :1]
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            want = graph(x)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want, strict=True):
            # float32 agreement: 1e-4 for values of order 1 (features, RGB), 1e-4 of the scale
            # beyond (ab runs to +-110): two runtimes sum convolutions in different orders
            assert g.shape == tuple(w.shape)
            assert np.abs(g - w.numpy()).max() < 1e-4 * max(1.0, float(w.abs().max()))


# ---------------------------------------------------------------------------- torch.hub


def test_torch_hub_builds_and_loads_every_variant(weights):
    model = torch.hub.load(str(REPO), "l2ab_cl", source="local", preset="small", width=0.25)
    assert (
        model.config.variant == "l2ab-cl" and model.config.preset == "small" and not model.training
    )
    loaded = torch.hub.load(str(REPO), "splitbrain", source="local", weights=str(weights))
    state = sb.load(weights).state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())
    with pytest.raises(ValueError, match="holds a splitbrain model, not joint"):
        torch.hub.load(str(REPO), "joint", source="local", weights=str(weights))
    for variant in sb.VARIANTS:
        name = variant.replace("-", "_")
        built = torch.hub.load(str(REPO), name, source="local", preset="small", width=0.125)
        assert built.config.variant == variant


# ---------------------------------------------------------------------------- presets


def test_paper_weights_rebuild_at_the_transfer_geometry(tmp_path):
    model = trained(preset="paper", width=0.25)
    path = sb.save(model, tmp_path / "paper.safetensors")
    transfer = sb.load(path, preset="transfer")
    assert transfer.config.preset == "transfer"
    before, after = model.state_dict(), transfer.state_dict()
    for name in before:
        if any(f".layers.{n}." in name for n in ("conv1", "conv2", "conv3", "conv4", "conv5")):
            assert torch.equal(before[name], after[name]), name
    feats = transfer.features(torch.rand(1, 3, 227, 227), ["conv1", "pool5", "fc6", "fc7"])
    assert {k: tuple(v.shape[-2:]) for k, v in feats.items()} == {
        "conv1": (55, 55), "pool5": (6, 6), "fc6": (1, 1), "fc7": (1, 1)
    }  # fmt: skip
    fc6 = transfer.encoders[0].tower.layers["fc6"][0]
    assert (fc6.kernel_size, fc6.dilation, fc6.padding) == ((6, 6), (1, 1), (0, 0))


def test_a_preset_change_that_cannot_be_done_is_one_line(weights, tmp_path, capsys):
    with pytest.raises(sb.WeightsFileError, match="small model cannot be rebuilt as paper: "):
        sb.load(weights, preset="paper")
    np.savez(tmp_path / "d.npz", images=photos(8, 32), labels=np.arange(8) % 2)
    data = f"npz:{tmp_path / 'd.npz'}"
    argv = ["knn", "--weights", str(weights), "--preset", "paper", "--data", data,
            "--test-data", data, "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "cannot be rebuilt as paper" in error


def test_extract_report_settings_are_recorded(weights, tmp_path):
    np.savez(tmp_path / "d.npz", images=photos(4, 32))
    out = tmp_path / "f.safetensors"
    argv = ["extract", "--weights", str(weights), "--data", f"npz:{tmp_path / 'd.npz'}",
            "--pool", "paper", "--out", str(out), "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
        assert f.get_tensor("labels").tolist() == [-1] * 4
    assert json.loads(json.dumps(meta))["pool"] == "paper" and meta["layers"] == "conv5"


# ---------------------------------------------------------------------------- review cases


def test_colorize_refuses_what_it_cannot_take():
    model = trained()
    with pytest.raises(TypeError, match="float RGB tensor"):
        sb.colorize(model, torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"uint8 array, got uint8 \(32, 32, 4\)"):
        sb.colorize(model, np.zeros((32, 32, 4), np.uint8))
    with pytest.raises(ValueError, match="temperature must be positive and finite"):
        sb.colorize(model, torch.rand(3, 32, 32), temperature=0.0)
    double = sb.colorize(model, torch.rand(3, 32, 32, dtype=torch.float64))
    assert double.dtype == torch.float64 and double.shape == (3, 32, 32)


def test_colorize_inputs_named_twice_and_globs_that_keep_the_tree(weights, tmp_path, capsys):
    pictures = photos(2, 64)
    for name, picture in zip(["a/x.png", "b/x.png"], pictures, strict=True):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(tmp_path / "in" / name)
    out = tmp_path / "out"
    argv = ["colorize", str(tmp_path / "in" / "**" / "*.png"), str(tmp_path / "in" / "a"),
            "--weights", str(weights), "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "colorized 2 of 2 images" in capsys.readouterr().out  # a/x.png only once
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "a/x.png",
        "b/x.png",
    ]
    argv = ["colorize", str(tmp_path / "in"), "--weights", str(weights), "--out",
            str(tmp_path / "in"), "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.endswith("in: the output folder or inside it (--out is never read as input)")
    with pytest.raises(SystemExit):
        main(["colorize", str(tmp_path / "in"), "--weights", str(weights), "--out", str(out),
              "--quality", "0"])  # fmt: skip


def test_feature_writer_refuses_what_safetensors_cannot_hold(tmp_path):
    writer = FeatureWriter(tmp_path / "f.safetensors")
    with pytest.raises(ValueError, match="float32 or int64"):
        writer.write({"x": torch.zeros(2, 3, dtype=torch.float16)})
    writer.write({"x": torch.ones(2, 3)})
    path = writer.close({"crop": 224})  # not a string: stored as one
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"crop": "224"}


def test_paper_weights_extract_and_export_at_the_transfer_geometry(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    run = tmp_path / "run"
    weights = sb.save(trained(preset="paper", width=0.125), run / "weights.safetensors")
    (run / "config.yaml").write_text("preset: paper\ncrop: 180\nresize: 256\n")
    np.savez(tmp_path / "d.npz", images=photos(3, 128))
    out = tmp_path / "f.safetensors"
    argv = ["extract", "--weights", str(weights), "--preset", "transfer", "--data",
            f"npz:{tmp_path / 'd.npz'}", "--layers", "fc7", "--out", str(out), "--workers", "0",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    with safe_open(str(out), framework="pt") as f:
        assert f.metadata()["crop"] == "227" and f.get_tensor("fc7").shape[0] == 3
    onnx = tmp_path / "transfer.onnx"
    argv = ["export", "--weights", str(weights), "--preset", "transfer", "--onnx", str(onnx),
            "--layers", "pool5,fc7"]  # fmt: skip
    assert main(argv) == 0
    session = ort.InferenceSession(str(onnx))
    model = sb.load(weights, preset="transfer")
    for side in (227, 260):  # fc7 1x1, then 2x2
        x = torch.rand(1, 3, side, side)
        pool5, fc7 = session.run(None, {"rgb": x.numpy()})
        want = model.features(x, ["pool5", "fc7"])
        assert pool5.shape == tuple(want["pool5"].shape) and fc7.shape == tuple(want["fc7"].shape)
        assert np.abs(fc7 - want["fc7"].numpy()).max() < 1e-4 * max(
            1.0, float(want["fc7"].abs().max())
        )


# ---------------------------------------------------------------- outputs never replaced


def test_extract_and_export_keep_an_existing_output_and_write_beside_it(weights, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, picture in enumerate(photos(12, 40)):
        Image.fromarray(picture).save(folder / f"{i:02d}.png")
    out = tmp_path / "features.safetensors"
    extract = ["extract", "--weights", str(weights), "--data", f"folder:{folder}", "--out",
               str(out), "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(extract) == 0
    assert main([*extract, "--max-items", "3"]) == 0
    beside = tmp_path / "features-2.safetensors"
    assert (
        f"{out} holds an earlier features file; this one goes to {beside}"
        in capsys.readouterr().out
    )
    with (
        safe_open(str(out), framework="pt") as first,
        safe_open(str(beside), framework="pt") as second,
    ):
        assert len(first.get_tensor("index")) == 12 and len(second.get_tensor("index")) == 3
    assert beside.with_suffix(".csv").exists()
    assert main([*extract, "--max-items", "3", "--overwrite"]) == 0
    with safe_open(str(out), framework="pt") as replaced:
        assert len(replaced.get_tensor("index")) == 3
    onnx = tmp_path / "net.onnx"
    export = ["export", "--weights", str(weights), "--onnx", str(onnx)]
    assert main(export) == 0 and main(export) == 0
    assert f"this one goes to {tmp_path / 'net-2.onnx'}" in capsys.readouterr().out
    assert (tmp_path / "net-2.onnx").exists()


def test_colorize_never_reads_its_own_outputs_nor_replaces_them(weights, tmp_path, capsys):
    photos_folder = tmp_path / "photos"
    photos_folder.mkdir()
    for i, picture in enumerate(photos(2, 64)):
        Image.fromarray(picture).save(photos_folder / f"{i}.png")
    out = photos_folder / "coloured"  # inside its own input folder
    argv = ["colorize", str(photos_folder), "--weights", str(weights), "--out", str(out),
            "--no-progress"]  # fmt: skip
    for run in range(3):
        assert main(argv) == 0
        assert "colorized 2 of 2 images" in capsys.readouterr().out, run
    written = sorted(p.relative_to(photos_folder).as_posix() for p in photos_folder.rglob("*.png"))
    assert written == [
        "0.png",
        "1.png",
        "coloured-2/0.png",
        "coloured-2/1.png",
        "coloured-3/0.png",
        "coloured-3/1.png",
        "coloured/0.png",
        "coloured/1.png",
    ]
    first = (out / "0.png").read_bytes()
    assert main([*argv, "--overwrite", "--side", "48"]) == 0
    assert f"output: {out} " in capsys.readouterr().out
    assert (out / "0.png").read_bytes() != first  # replaced, as asked


def test_colorize_streams_within_a_pixel_budget_and_an_interrupt_keeps_what_was_written(
    weights, tmp_path, monkeypatch, caplog
):
    import importlib
    import logging

    from splitbrain.inference import ColorizeSettings, colorize_files

    module = importlib.import_module("splitbrain.inference.colorize_files")

    folder = tmp_path / "in"
    folder.mkdir()
    for i, picture in enumerate(photos(5, 64)):
        Image.fromarray(picture).save(folder / f"{i}.png")
    out = tmp_path / "out"
    original, batches = module.colorize_rgb, []

    def recording(model, rgb, *args):
        batches.append((len(rgb), len(list(out.glob("*.png")))))  # images, files written before
        if len(batches) == 3 and interrupt:
            raise KeyboardInterrupt
        return original(model, rgb, *args)

    monkeypatch.setattr(module, "colorize_rgb", recording)
    interrupt = False
    budget = 2 * 64 * 64 / 1e6  # two 64x64 photos per batch
    settings = ColorizeSettings(batch_megapixels=budget, progress=False)
    assert len(colorize_files(sb.load(weights), [str(folder)], out, settings).written) == 5
    assert batches == [(2, 0), (2, 2), (1, 4)]  # each batch written before the next one runs
    batches.clear()
    interrupt = True
    with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
        colorize_files(sb.load(weights), [str(folder)], tmp_path / "cut", settings)
    assert len(list((tmp_path / "cut").glob("*.png"))) == 4  # the two batches before it
    assert f"interrupted: 4 of 5 images colorized into {tmp_path / 'cut'}, kept" in caplog.text
