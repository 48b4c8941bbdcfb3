"""RGB-D readers (npz, NYU .mat, TUM/SUN PNG pairs) on files written here, and real frames."""

import math
import pickle

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from splitbrain.rgbd.hha import Intrinsics, hha
from splitbrain.rgbd.sources import (
    NYU_INTRINSICS,
    NYUDepthMat,
    RGBDError,
    RGBDNpz,
    RGBDPngPairs,
    open_rgbd,
)


def _frames(n: int, h: int, w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 8.0, (n, h, w)).astype(np.float32)
    depth[:, 0, :3] = 0  # missing
    return rgb, depth


# --- npz ---------------------------------------------------------------------------------


def test_npz_reads_frames_labels_names_and_intrinsics(tmp_path):
    rgb, depth = _frames(3, 6, 8)
    k = np.array([[100.0, 101.0, 3.5, 2.5]] * 3)
    path = tmp_path / "frames.npz"
    ids = np.array(["a", "b", "c"])
    np.savez(path, rgb=rgb, depth=depth, labels=np.array([2, 0, 1]), intrinsics=k, item_id=ids)
    src = open_rgbd(f"npz:{path}")
    assert isinstance(src, RGBDNpz) and len(src) == 3
    got_rgb, got_depth = src[1]
    np.testing.assert_array_equal(got_rgb, rgb[1])
    np.testing.assert_array_equal(got_depth, depth[1])
    assert got_depth.dtype == np.float32 and got_rgb.dtype == np.uint8
    np.testing.assert_array_equal(src.labels, [2, 0, 1])
    assert src.intrinsics(2) == Intrinsics(100.0, 101.0, 3.5, 2.5)
    assert src.name(0) == "a" and src[-1][0].shape == (6, 8, 3)
    assert "3 frames" in src.describe()
    with pytest.raises(IndexError):
        src[3]


def test_npz_converts_range_depth_to_z(tmp_path, caplog):
    rgb, depth = _frames(1, 6, 8)
    path = tmp_path / "cornell.npz"
    np.savez(path, rgb=rgb, depth=depth, depth_kind=np.array("range_m_inpainted"))
    camera = Intrinsics(5.0, 5.0, 3.5, 2.5)
    z = RGBDNpz(path, intrinsics=camera)[0][1]
    xn = (np.arange(8) - 3.5) / 5.0
    yn = (np.arange(6)[:, None] - 2.5) / 5.0
    np.testing.assert_allclose(z, depth[0] / np.sqrt(1 + xn**2 + yn**2), rtol=1e-6)
    with caplog.at_level("WARNING", logger="splitbrain.rgbd"):
        RGBDNpz(path)[0]
    assert "range depth without intrinsics" in caplog.text


def test_npz_errors_name_the_file_and_the_problem(tmp_path):
    rgb, depth = _frames(2, 6, 8)
    missing = tmp_path / "missing.npz"
    np.savez(missing, rgb=rgb)
    with pytest.raises(RGBDError, match=r"missing\.npz.*missing key 'depth'"):
        RGBDNpz(missing)
    bad = tmp_path / "bad.npz"
    np.savez(bad, rgb=rgb, depth=depth[:, :5])
    with pytest.raises(RGBDError, match=r"bad\.npz.*'depth' must be"):
        open_rgbd(bad)
    with pytest.raises(RGBDError, match="no such file"):
        RGBDNpz(tmp_path / "absent.npz")


# --- NYU Depth v2 labelled .mat (HDF5) ---------------------------------------------------


def _write_nyu(path, rgb, depth, labels=None, transpose=True):
    """Write arrays the way MATLAB v7.3 stores H x W x 3 x N: axes reversed in HDF5."""
    with h5py.File(path, "w") as f:
        f["images"] = rgb.transpose(0, 3, 2, 1) if transpose else rgb
        f["depths"] = depth.transpose(0, 2, 1)
        f["rawDepths"] = np.where(depth > 4, 0, depth).transpose(0, 2, 1)
        if labels is not None:
            f["labels"] = labels.transpose(0, 2, 1)


def test_nyu_mat_reader_undoes_the_matlab_transpose(tmp_path):
    rgb, depth = _frames(2, 480, 640)
    labels = np.random.default_rng(1).integers(0, 895, (2, 480, 640), dtype=np.uint16)
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    _write_nyu(path, rgb, depth, labels)
    with h5py.File(path) as f:
        assert f["images"].shape == (2, 3, 640, 480)
    src = open_rgbd(path)
    assert isinstance(src, NYUDepthMat) and len(src) == 2
    got_rgb, got_depth = src[1]
    assert got_rgb.shape == (480, 640, 3) and got_depth.shape == (480, 640)
    np.testing.assert_array_equal(got_rgb, rgb[1])
    np.testing.assert_array_equal(got_depth, depth[1])
    np.testing.assert_array_equal(src.segmentation(0), labels[0])
    np.testing.assert_array_equal(
        NYUDepthMat(path, raw=True)[0][1], np.where(depth[0] > 4, 0, depth[0])
    )
    assert src.intrinsics(0) == NYU_INTRINSICS
    assert NYU_INTRINSICS.fx == 518.857901 and NYU_INTRINSICS.cx == pytest.approx(324.582449)
    assert src.name(0) == "nyu0001" and src.labels is None
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(src))[1][0], rgb[1])


def test_nyu_mat_reader_rejects_wrong_layouts(tmp_path):
    rgb, depth = _frames(2, 5, 7)
    wrong = tmp_path / "wrong.mat"
    _write_nyu(wrong, rgb, depth, transpose=False)  # images left (N,H,W,3)
    with pytest.raises(RGBDError, match=r"wrong\.mat.*'images' must be \(N,3,W,H\)"):
        NYUDepthMat(wrong)
    no_depth = tmp_path / "nodepth.mat"
    with h5py.File(no_depth, "w") as f:
        f["images"] = rgb.transpose(0, 3, 2, 1)
    with pytest.raises(RGBDError, match="missing dataset 'depths'"):
        open_rgbd(f"nyu:{no_depth}")
    small = tmp_path / "small.mat"
    _write_nyu(small, rgb, depth)
    assert NYUDepthMat(small).intrinsics(0) is None  # not the 640x480 NYU camera


# --- 16-bit PNG pairs (TUM, SUN RGB-D) ---------------------------------------------------

DEPTH_MM = np.array([[0, 1, 500, 1234], [4000, 8191, 9999, 65535 >> 3]], dtype=np.uint16)


def _png16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)
    with Image.open(path) as img:
        assert img.mode in ("I;16", "I")  # really a 16-bit PNG


def _png_rgb(path, h=2, w=4, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return rgb


def test_tum_pairs_by_stem_and_divide_by_5000(tmp_path):
    raw = np.array([[0, 1, 5000, 12345], [40000, 65535, 2, 3]], dtype=np.uint16)
    rgb = _png_rgb(tmp_path / "rgb" / "1305031102.175304.png")
    _png16(tmp_path / "depth" / "1305031102.175304.png", raw)
    _png_rgb(tmp_path / "rgb" / "unpaired.png")
    src = open_rgbd(f"pairs:{tmp_path}")
    assert isinstance(src, RGBDPngPairs) and src.convention == "tum" and len(src) == 1
    got_rgb, got_depth = src[0]
    np.testing.assert_array_equal(got_rgb, rgb)
    np.testing.assert_array_equal(got_depth, raw.astype(np.float32) / np.float32(5000))
    assert got_depth.dtype == np.float32 and got_depth[0, 0] == 0
    assert src.name(0) == "rgb/1305031102.175304" and src.intrinsics(0) is None
    mm = RGBDPngPairs(tmp_path, depth_scale=1000.0)[0][1]
    np.testing.assert_array_equal(mm, raw.astype(np.float32) / np.float32(1000))


def test_sun_rotates_three_bits_reads_intrinsics_and_walks_samples(tmp_path):
    stored = (DEPTH_MM << 3) | (DEPTH_MM >> 13)  # how SUN RGB-D writes millimetres
    colours = {}
    for name in ("kv2/sample_a", "kv1/sample_b"):
        sample = tmp_path / name
        colours[name] = _png_rgb(sample / "image" / "0000001.png", seed=len(colours))
        _png16(sample / "depth" / "0000001.png", stored)
        (sample / "intrinsics.txt").write_text("529.5 0 365\n0 529.5 265\n0 0 1\n")
    src = open_rgbd(tmp_path)
    assert src.convention == "sun" and len(src) == 2
    assert [src.name(i) for i in range(2)] == [
        "kv1/sample_b/image/0000001",
        "kv2/sample_a/image/0000001",
    ]
    got_rgb, got_depth = src[1]
    np.testing.assert_array_equal(got_rgb, colours["kv2/sample_a"])
    np.testing.assert_array_equal(got_depth, DEPTH_MM.astype(np.float32) / np.float32(1000))
    assert src.intrinsics(0) == Intrinsics(529.5, 529.5, 364.0, 264.0)
    forced = open_rgbd(f"sun:{tmp_path / 'kv1' / 'sample_b'}")
    assert len(forced) == 1 and forced.name(0) == "image/0000001"


def test_png_pair_errors(tmp_path):
    with pytest.raises(RGBDError, match="no pair folder"):
        RGBDPngPairs(tmp_path)
    _png_rgb(tmp_path / "rgb" / "a.png")
    (tmp_path / "depth").mkdir()
    Image.fromarray(np.zeros((2, 4), np.uint8)).save(tmp_path / "depth" / "a.png")
    with pytest.raises(RGBDError, match=r"a\.png.*16-bit"):
        RGBDPngPairs(tmp_path)[0]
    _png16(tmp_path / "depth" / "a.png", np.zeros((3, 4)))
    with pytest.raises(RGBDError, match=r"depth is 4x3, its colour image a\.png 4x2 \(width x h"):
        RGBDPngPairs(tmp_path)[0]
    with pytest.raises(RGBDError, match="cannot tell the RGB-D format"):
        open_rgbd(tmp_path / "x.h5")


# --- real frames -------------------------------------------------------------------------


def _tilt_deg(gravity: torch.Tensor) -> float:
    """Angle between the estimated up and the camera's up (-y)."""
    return math.degrees(math.acos(float(-gravity[1])))


def test_hha_of_real_frames(shared_data, caplog):
    indoor = open_rgbd(f"npz:{shared_data / 'rgbd' / 'indoor_scenes_240x320.npz'}")
    assert len(indoor) == 42 and indoor.intrinsics(0) is None
    # Frame 0 is slambook2 (fx 518, fy 519, cx 325.5, cy 253.5 at 640x480), halved to 320x240.
    depth = torch.from_numpy(indoor[0][1])[None]
    out = hha(depth, Intrinsics(259.0, 259.5, 162.75, 126.75))
    assert out.valid.float().mean() > 0.5
    assert out.gravity[0, 1] < 0 and _tilt_deg(out.gravity[0]) < 30  # a hand-held camera
    assert not out.image[0][:, depth[0] == 0].any()

    cornell = RGBDNpz(shared_data / "rgbd" / "cornell_tabletop_240x320.npz")
    with caplog.at_level("WARNING", logger="splitbrain.rgbd"):
        frames = torch.stack([torch.from_numpy(cornell[i][1]) for i in (0, 60)])
        table = hha(frames)
    assert "range depth without intrinsics" in caplog.text and "hha: no camera" in caplog.text
    assert table.valid.float().mean() > 0.9
    # One fixed rig looking down at a table: the same, clearly downward, gravity in both frames.
    assert all(20 < _tilt_deg(g) < 50 for g in table.gravity)
    cos = float((table.gravity[0] * table.gravity[1]).sum())
    assert math.degrees(math.acos(min(1.0, cos))) < 3


def test_open_data_opens_each_kind_with_its_own_stack(tmp_path):
    """One opener for what a channel space reads: photographs keep their split, channel
    stacks keep every band, RGB-D frames take the camera given and are never cut to
    ``max_items``; an unknown kind is refused."""
    from splitbrain.rgbd.sources import open_data

    rgb, depth = _frames(2, 6, 8)
    np.savez(tmp_path / "frames.npz", rgb=rgb, depth=depth)
    np.savez(tmp_path / "bands.npz", images=np.zeros((3, 5, 5, 7), np.uint8))
    camera = Intrinsics(100.0, 101.0, 3.5, 2.5)
    assert len(open_data("skimage:5", "images", split="test")) == 5
    assert len(open_data("skimage:5", "images", max_items=2)) == 2  # evenly spread
    assert open_data(f"npz:{tmp_path / 'bands.npz'}", "channels")[0].shape == (5, 5, 7)
    frames = open_data(f"npz:{tmp_path / 'frames.npz'}", "rgbd", intrinsics=camera, max_items=1)
    assert len(frames) == 2  # every RGB-D frame: their HHA is the cost, not their count
    np.testing.assert_array_equal(frames[1][0], rgb[1])
    assert frames.intrinsics(0) == camera
    with pytest.raises(ValueError, match="data kind 'tiff': expected one of images, channels"):
        open_data(f"npz:{tmp_path / 'bands.npz'}", "tiff")
