"""RGB-D items, the RGB-D model's training signal, held-out splits and the pretext evaluation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import splitbrain as sb
from splitbrain.cli import ArgumentParser
from splitbrain.cli import rgbd as rgbd_command
from splitbrain.data import EvalTransform, TrainTransform
from splitbrain.rgbd import RGBDDataset, holdout_indices, open_rgbd
from splitbrain.rgbd.hha import Intrinsics
from splitbrain.rgbd.pretext import disparity_to_depth
from splitbrain.train import TrainConfig, pretrain

H, W = 40, 48


def _scene(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a floor seen from 1.2 m up with a wall behind, coloured noise, and holes."""
    rng = np.random.default_rng(seed)
    camera = Intrinsics.default(H, W)
    v = np.arange(H, dtype=np.float32)[:, None] - camera.cy
    floor = np.where(v > 1, 1.2 * camera.fy / np.maximum(v, 1e-3), np.inf)
    depth = np.minimum(floor, 3.0).repeat(W, 1).astype(np.float32)
    rgb = rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    rgb[:, H // 2 :, :, 1] = 200  # a green floor: colour that depth can predict
    depths = np.stack([depth * (1 + 0.05 * i) for i in range(n)])
    depths[:, 4:10, 6:14] = 0  # holes: missing measurements
    depths[:, 20:26, 30:33] = 0
    return rgb, depths


@pytest.fixture
def rgbd_npz(tmp_path: Path) -> Path:
    rgb, depth = _scene(12)
    path = tmp_path / "scene.npz"
    camera = Intrinsics.default(H, W)
    k = np.array([[camera.fx, camera.fy, camera.cx, camera.cy]] * len(rgb))
    item_id = np.array([f"frame{i:02d}" for i in range(len(rgb))])
    np.savez(path, rgb=rgb, depth=depth, intrinsics=k, item_id=item_id)
    return path


def _dataset(path: Path, resize, crop: int, train: bool) -> RGBDDataset:
    transform = (TrainTransform if train else EvalTransform)(resize, crop)
    return RGBDDataset(open_rgbd(f"npz:{path}"), transform, progress=False)


def test_items_are_uint8_rgb_hha_mask_and_mask_is_zero_exactly_at_missing_depth(rgbd_npz):
    dataset = _dataset(rgbd_npz, None, 32, train=False)
    item, label = dataset[3]
    assert item.shape == (7, 32, 32) and item.dtype == torch.uint8 and label == -1
    depth = open_rgbd(f"npz:{rgbd_npz}")[3][1]
    top, left = (H - 32) // 2, (W - 32) // 2
    missing = depth[top : top + 32, left : left + 32] == 0
    assert missing.any() and (~missing).any()
    np.testing.assert_array_equal(item[6].numpy() == 0, missing)
    assert set(item[6].unique().tolist()) == {0, 255}
    assert (item[3:6][:, torch.from_numpy(missing)] == 0).all()  # no HHA where depth is missing
    images, labels = RGBDDataset.collate([dataset[0], dataset[1]])
    assert images.shape == (2, 7, 32, 32) and labels.tolist() == [-1, -1]
    assert "12 frames" in dataset.report() and "0 frames without intrinsics" in dataset.report()


def test_resize_never_blends_valid_and_missing_depth(rgbd_npz):
    item = _dataset(rgbd_npz, 24, 20, train=False)[0][0]
    assert set(item[6].unique().tolist()) <= {0, 255}
    assert (item[3:6][:, item[6] == 0] == 0).all()


def test_mirror_flips_all_channels_together_and_eval_crops_are_deterministic(rgbd_npz):
    dataset = _dataset(rgbd_npz, None, H, train=True)  # crops differ only in column and mirror
    windows = [dataset.frames[2][:, :, x : x + H] for x in range(W - H + 1)]
    mirrored = set()
    for seed in range(12):
        torch.manual_seed(seed)
        item = dataset[2][0]
        plain = any(torch.equal(w, item) for w in windows)
        flipped = any(torch.equal(w.flip(-1), item) for w in windows)  # all 7 channels at once
        assert plain != flipped
        mirrored.add(flipped)
    assert mirrored == {True, False}
    evaluation = _dataset(rgbd_npz, None, H, train=False)
    torch.manual_seed(1)
    first = evaluation[2][0]
    torch.manual_seed(2)
    assert torch.equal(first, evaluation[2][0]) and torch.equal(first, windows[(W - H) // 2])


def test_frames_without_intrinsics_warn_once_and_are_counted(tmp_path, caplog):
    rgb, depth = _scene(5)
    path = tmp_path / "nocam.npz"
    np.savez(path, rgb=rgb, depth=depth)
    with caplog.at_level("WARNING", logger="splitbrain.rgbd"):
        dataset = _dataset(path, None, 32, train=False)
    assert sum("no intrinsics" in r.getMessage() for r in caplog.records) == 1
    assert "5 frames without intrinsics" in dataset.report()


def test_rgbd_loss_falls_on_a_fixed_batch(rgbd_npz):
    torch.manual_seed(0)
    images, _ = RGBDDataset.collate(list(_dataset(rgbd_npz, None, 32, train=False)))
    model = sb.build("splitbrain", preset="small", split="rgbd", width=0.125).train()
    raw, valid = model.split.space.decode_batch(images)
    objective = sb.Objective()
    # 1e-2 rather than the small preset's 1e-3: HHA targets span +-100 normalised units, and
    # at 1e-3 the regression head needs far more than 20 steps to reach that scale.
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(20):
        loss, logs = objective(model, raw, valid)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append({k: v.item() for k, v in logs.items() if k.endswith("loss")})
    heads = {"RGB->HHA/HHA/loss", "HHA->Lab/L/loss", "HHA->Lab/ab/loss", "loss"}
    assert set(history[0]) == heads
    for head in heads:
        assert history[-1][head] < 0.9 * history[0][head], (head, history[0], history[-1])
    assert history[-1]["loss"] < 0.75 * history[0]["loss"]


def test_holdout_grammar():
    assert holdout_indices([10, 5], "0.2") == ([0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13], [8, 9, 14])
    assert holdout_indices([10], "every:4")[1] == [3, 7]
    assert holdout_indices([10], "1,3-5")[1] == [1, 3, 4, 5]
    for bad in ("every:1", "0.0", "10", "x", "0-9"):
        with pytest.raises(ValueError, match="holdout"):
            holdout_indices([10], bad)


def test_disparity_to_depth_inverts_the_hha_scaling():
    z = torch.tensor([0.5, 1.0, 4.0, 8.0])
    torch.testing.assert_close(disparity_to_depth(255 * 0.5 / z), z)
    assert disparity_to_depth(torch.tensor([0.0, 300.0])).tolist() == [20.0, 0.5]


def _cli(*argv: str) -> int:
    parser = ArgumentParser(prog="splitbrain")
    sub = parser.add_subparsers(dest="command", parser_class=ArgumentParser)
    for command in rgbd_command.register(sub):
        command.set_defaults(run=rgbd_command.run, parser=command)
    args = parser.parse_args(list(argv))
    return args.run(args)


def test_rgbd_split_and_eval_on_a_tiny_trained_model(rgbd_npz, tmp_path):
    data, holdout = f"npz:{rgbd_npz}", "every:4"
    train_npz, test_npz = tmp_path / "train.npz", tmp_path / "test.npz"
    assert (
        _cli(
            "rgbd-split",
            "--data",
            data,
            "--holdout",
            holdout,
            "--out",
            str(train_npz),
            str(test_npz),
        )
        == 0
    )
    train, test = open_rgbd(f"npz:{train_npz}"), open_rgbd(f"npz:{test_npz}")
    assert (len(train), len(test)) == (9, 3)
    assert [test.name(i) for i in range(3)] == ["frame03", "frame07", "frame11"]
    np.testing.assert_array_equal(test[1][1], open_rgbd(data)[7][1])
    assert test.intrinsics(0) == open_rgbd(data).intrinsics(7)

    config = TrainConfig(
        data=f"npz:{train_npz}",
        out=str(tmp_path / "run"),
        preset="small",
        split="rgbd",
        width=0.125,
        crop=32,
        steps=3,
        batch_size=4,
        workers=0,
        progress=False,
    )
    weights = pretrain(config)
    out = tmp_path / "eval"
    assert (
        _cli(
            "rgbd-eval",
            "--weights",
            str(weights),
            "--data",
            data,
            "--holdout",
            holdout,
            "--out",
            str(out),
        )
        == 0
    )
    report = json.loads((out / "pretext.json").read_text())
    assert set(report["metrics"]) == {
        "rgb_to_hha/rmse_hha",
        "rgb_to_hha/rmse_disparity",
        "rgb_to_hha/rmse_height",
        "rgb_to_hha/rmse_angle",
        "rgb_to_hha/depth_rmse_m",
        "rgb_to_hha/depth_delta_1.25",
        "hha_to_ab/top1",
        "hha_to_L/rmse",
    }
    for m in report["metrics"].values():
        assert (
            set(m) == {"model", "baseline", "better"}
            and np.isfinite([m["model"], m["baseline"]]).all()
        )
    assert (
        report["counts"]["test_frames"] == 3 and report["counts"]["crop"] == 32
    )  # from config.yaml
    assert {"hha_mean", "depth_mean_m", "L_mean", "ab_prior_bin"} <= set(report["baselines"])
    pictures = sorted(p.name for p in (out / "pictures").iterdir())
    assert pictures == [p["png"] for p in report["pictures"]] and len(pictures) == 3
    assert "| hha_to_ab/top1 |" in (out / "pretext.md").read_text()


def test_rgbd_command_line_cameras_frames_and_refusals(rgbd_npz, tmp_path, capsys):
    from splitbrain.cli import build_parser, main
    from splitbrain.cli.pretrain import config_from_args

    data = f"npz:{rgbd_npz}"
    train_npz, test_npz = tmp_path / "train.npz", tmp_path / "test.npz"
    argv = ["rgbd-split", "--data", data, "--holdout", "every:4", "--intrinsics",
            "100,101,30.5,20.5", "--out", str(train_npz), str(test_npz)]  # fmt: skip
    assert main(argv) == 0
    assert open_rgbd(f"npz:{test_npz}").intrinsics(0) == Intrinsics(100, 101, 30.5, 20.5)
    argv = ["rgbd-split", "--data", data, data, "--intrinsics", "1,1,1,1", "2,2,2,2", "3,3,3,3",
            "--out", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]  # fmt: skip
    with pytest.raises(SystemExit):
        main(argv)
    assert "3 cameras for 2 --data sources" in capsys.readouterr().err
    args = build_parser().parse_args(["pretrain", "--data", data, "--split", "rgbd", "--preset",
                                      "small", "--intrinsics", "100,101,30.5,20.5"])  # fmt: skip
    assert config_from_args(args).intrinsics == (100.0, 101.0, 30.5, 20.5)

    out = str(tmp_path / "eval")
    lab = sb.save(sb.build("splitbrain", preset="small", width=0.125), tmp_path / "lab.safetensors")
    with pytest.raises(SystemExit):  # refused before a single frame is encoded
        main(["rgbd-eval", "--weights", str(lab), "--data", data, "--out", out])
    assert "a lab model; rgbd-eval needs one pre-trained with --split rgbd" in (
        capsys.readouterr().err
    )
    model = sb.build("splitbrain", preset="small", split="rgbd", width=0.125)
    rgbd = sb.save(model, tmp_path / "rgbd.safetensors")
    with pytest.raises(SystemExit):
        main(["rgbd-eval", "--weights", str(rgbd), "--data", f"npz:{test_npz}", "--out", out])
    assert "the held-out frames rgbd-split wrote; pass both of its files as --frames" in (
        capsys.readouterr().err
    )
    argv = ["rgbd-eval", "--weights", str(rgbd), "--frames", str(train_npz), str(test_npz),
            "--out", out, "--no-progress", "--no-pictures"]  # fmt: skip
    assert main(argv) == 0
    assert "HHA" not in capsys.readouterr().err  # no progress bar
    assert (
        json.loads((tmp_path / "eval" / "pretext.json").read_text())["counts"]["test_frames"] == 3
    )
