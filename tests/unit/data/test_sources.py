"""Image sources, specs, transforms and the dataset, on small files written in tmp_path."""

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from splitbrain.data import (
    BadImageLog,
    DatasetError,
    EvalTransform,
    ImageDataset,
    Source,
    TrainTransform,
    detect_format,
    open_channels,
    open_source,
    scan_source,
)
from splitbrain.data import download as dl
from splitbrain.data.builtin import MAX_CROP, MIN_CROP


def _rgb(seed: int, h: int = 8, w: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png(path: Path, array: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, "PNG")
    return array


# ---------------------------------------------------------------- folder


@pytest.fixture
def photo_folder(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """A loose image, class folders (one nested), an upper-case suffix, hidden and other files."""
    root = tmp_path / "photos"
    pixels = {
        "top.png": _png(root / "top.png", _rgb(0)),
        "cat/b.png": _png(root / "cat" / "b.png", _rgb(1)),
        "cat/a.PNG": _png(root / "cat" / "a.PNG", _rgb(2)),
        "dog/x.png": _png(root / "dog" / "x.png", _rgb(3)),
        "dog/deep/y.png": _png(root / "dog" / "deep" / "y.png", _rgb(4, 10, 6)),
    }
    (root / "notes.txt").write_text("not listed")
    (root / "cat" / ".hidden.png").write_bytes(b"AppleDouble junk")
    (root / ".cache").mkdir()
    _png(root / ".cache" / "z.png", _rgb(5))
    return root, pixels


def test_folder_order_labels_and_exact_pixels(photo_folder):
    root, pixels = photo_folder
    src = open_source(f"folder:{root}")
    assert len(src) == 5
    assert src.classes == ["cat", "dog"]
    order = ["top.png", "cat/a.PNG", "cat/b.png", "dog/deep/y.png", "dog/x.png"]
    assert [Path(src.name(i)).relative_to(root).as_posix() for i in range(5)] == order
    assert src.labels.dtype == np.int64
    assert src.labels.tolist() == [-1, 0, 0, 1, 1]
    for i, key in enumerate(order):
        image, label = src.load(i)
        assert image.dtype == np.uint8 and image.shape == pixels[key].shape
        np.testing.assert_array_equal(image, pixels[key])
        assert label == src.labels[i]
    assert src.describe() == f"folder {root} split=all: 5 images, 2 classes (cat, dog)"
    with pytest.raises(IndexError):
        src.load(5)


def test_folder_of_loose_images_is_unlabeled(tmp_path):
    for k in range(3):
        _png(tmp_path / f"{k}.png", _rgb(k))
    src = open_source(str(tmp_path))  # format detected
    assert src.format == "folder"
    assert src.labels is None and src.classes is None
    assert src.load(1)[1] == -1


def test_folder_with_splits_picks_one_and_aliases_val(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        for k in range(n):
            _png(tmp_path / split / ("a" if k % 2 else "b") / f"{k}.png", _rgb(k))
    assert len(open_source(f"folder:{tmp_path}", split="train")) == 3
    val = open_source(f"folder:{tmp_path}", split="val")
    test = open_source(f"folder:{tmp_path}", split="test")  # only val/ exists: stands in
    assert len(val) == len(test) == 2
    assert val.split == "val" and val.classes == ["a", "b"]
    with pytest.raises(DatasetError, match="no split 'extra'"):
        open_source(f"folder:{tmp_path}", split="extra")


def test_missing_and_empty_folders_raise(tmp_path):
    with pytest.raises(DatasetError, match="no such"):
        open_source(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        open_source(f"folder:{tmp_path / 'empty'}")


# ---------------------------------------------------------------- CIFAR


def _cifar_batch(images: np.ndarray, labels: list[int], label_key: bytes) -> bytes:
    """A batch as the official files store it: rows of R, G, B planes; a protocol 2 pickle
    naming numpy.core.multiarray, as the Python 2 era files do."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    batch = pickle.dumps({b"data": rows, label_key: labels, b"batch_label": b"x"}, protocol=2)
    return batch.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


CIFAR10_NAMES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _write_cifar10(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cifar-10-batches-py with 2 images per train batch and 3 test images."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    train = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(10) % 10
    for k in range(5):
        pair = slice(2 * k, 2 * k + 2)
        batch = _cifar_batch(train[pair], labels[pair].tolist(), b"labels")
        (folder / f"data_batch_{k + 1}").write_bytes(batch)
    test = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    (folder / "test_batch").write_bytes(_cifar_batch(test, [3, 8, 8], b"labels"))
    names = [name.encode() for name in CIFAR10_NAMES]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return train, labels, test


def _tar(folder: Path, tarball: Path) -> Path:
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return tarball


def test_cifar10_from_dir_and_tarball_match(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    train, labels, test = _write_cifar10(folder)
    tarball = _tar(folder, tmp_path / "cifar-10-python.tar.gz")
    for spec in (f"cifar10:{folder}", str(tmp_path), str(tarball)):
        src = open_source(spec)
        assert src.format == "cifar10"
        assert len(src) == 10 and src.classes[0] == "plane" and len(src.classes) == 10
        np.testing.assert_array_equal(src.labels, labels)
        assert all(np.array_equal(src.load(i)[0], train[i]) for i in range(10))
        assert src.name(3) == "cifar10:data_batch_2[1]"
    test_src = open_source(str(tarball), split="val")  # stands in for the test split
    assert test_src.split == "test"
    assert test_src.labels.tolist() == [3, 8, 8]
    np.testing.assert_array_equal(test_src.load(2)[0], test[2])
    assert test_src.name(2) == "cifar10:test_batch[2]"
    image = test_src.load(0)[0]
    image[:] = 0  # a copy: the source's pixels are unchanged
    np.testing.assert_array_equal(test_src.load(0)[0], test[0])


def test_cifar100_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    images = _rgb(1, 32, 32)[None].repeat(4, 0)
    (folder / "train").write_bytes(_cifar_batch(images, [5, 99, 0, 1], b"fine_labels"))
    (folder / "test").write_bytes(_cifar_batch(images[:1], [42], b"fine_labels"))
    fine = [f"class{k}".encode() for k in range(100)]
    meta = {b"fine_label_names": fine, b"coarse_label_names": [b"c"] * 20}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    assert detect_format(folder) == "cifar100"
    src = open_source(str(folder))
    assert src.labels.tolist() == [5, 99, 0, 1] and src.classes[99] == "class99"
    assert open_source(f"cifar100:{tmp_path}", split="test").labels.tolist() == [42]
    assert src.name(1) == "cifar100:train[1]"


def test_cifar_pickle_that_would_run_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(DatasetError, match=r"refusing to load (__builtin__|builtins)\.print"):
        open_source(f"cifar10:{folder}", split="test")


# ---------------------------------------------------------------- STL-10


def test_stl10_column_major_layout_splits_and_names(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    planes = np.zeros((3, 3, 96, 96), dtype=np.uint8)  # [item, channel, column, row] on disk
    planes[1, 0, 7, 5] = 200  # item 1, red, column 7, row 5 -> pixel (row 5, column 7)
    planes[1, 2, 90, 2] = 77  # item 1, blue, column 90, row 2
    planes.tofile(folder / "train_X.bin")
    np.array([1, 10, 3], dtype=np.uint8).tofile(folder / "train_y.bin")
    planes[:2].tofile(folder / "test_X.bin")
    np.array([2, 2], dtype=np.uint8).tofile(folder / "test_y.bin")
    np.zeros((2, 3, 96, 96), dtype=np.uint8).tofile(folder / "unlabeled_X.bin")
    (folder / "class_names.txt").write_text(
        "airplane\nbird\ncar\ncat\ndeer\ndog\nhorse\nmonkey\nship\ntruck\n"
    )

    train = open_source(str(tmp_path))
    assert train.format == "stl10" and len(train) == 3
    assert train.labels.tolist() == [0, 9, 2] and train.classes[9] == "truck"
    image, label = train.load(1)
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8 and label == 9
    assert image[5, 7, 0] == 200 and image[2, 90, 2] == 77
    assert int(image.sum()) == 277
    both = open_source(f"stl10:{folder}", split="train+unlabeled")
    assert len(both) == 5 and both.labels.tolist() == [0, 9, 2, -1, -1]
    assert both.name(4) == "stl10:unlabeled_X.bin[1]"
    unlabeled = open_source(f"stl10:{folder}", split="unlabeled")
    assert unlabeled.labels is None and unlabeled.classes is None
    assert unlabeled.load(0)[1] == -1
    restored = pickle.loads(pickle.dumps(train))  # what a spawned worker receives
    np.testing.assert_array_equal(restored.load(1)[0], image)
    assert open_source(f"stl10:{folder}", split="val").labels.tolist() == [1, 1]  # test set
    with pytest.raises(DatasetError, match="no split"):
        open_source(f"stl10:{folder}", split="extra")


# ---------------------------------------------------------------- npz and skimage


def test_npz_rgb_with_labels_and_grey_expanded(tmp_path):
    images = np.stack([_rgb(k, 6, 5) for k in range(4)])
    np.savez(tmp_path / "rgb.npz", images=images, labels=np.array([0, 2, 1, 2]))
    src = open_source(str(tmp_path / "rgb.npz"))
    assert src.format == "npz" and len(src) == 4 and src.classes == ["0", "1", "2"]
    image, label = src.load(1)
    np.testing.assert_array_equal(image, images[1])
    assert label == 2
    grey = images[..., 0]
    np.savez(tmp_path / "grey.npz", images=grey[..., None])
    src = open_source(f"npz:{tmp_path / 'grey.npz'}")
    assert src.labels is None
    np.testing.assert_array_equal(src.load(2)[0], np.repeat(grey[2][..., None], 3, axis=2))
    np.savez(tmp_path / "float.npz", images=images.astype(np.float32))
    with pytest.raises(DatasetError, match="must be uint8"):
        open_source(f"npz:{tmp_path / 'float.npz'}")


def test_skimage_builtin_crops_are_deterministic_and_varied():
    src = open_source("skimage:64")
    again = open_source("skimage:64")
    test = open_source("skimage:64", split="test")
    assert len(src) == 64 and src.spec == "skimage:64"
    assert "astronaut" in src.classes and src.labels.max() < len(src.classes)
    sides = set()
    for i in range(len(src)):
        image, label = src.load(i)
        side = image.shape[0]
        assert image.shape == (side, side, 3) and MIN_CROP <= side <= MAX_CROP
        assert label == src.labels[i]
        sides.add(side)
        np.testing.assert_array_equal(image, again.load(i)[0])
    assert len(sides) > 10 and len(set(src.labels.tolist())) > 3
    assert not all(np.array_equal(src.load(i)[0], test.load(i)[0]) for i in range(8))
    assert len(open_source("skimage")) == 4096


def test_spec_errors_are_clear(tmp_path):
    (tmp_path / "weird.bin").write_bytes(b"?")
    with pytest.raises(DatasetError, match="FORMAT:"):
        open_source(str(tmp_path / "weird.bin"))
    with pytest.raises(DatasetError, match="skimage:N"):
        open_source("skimage:lots")
    with pytest.raises(DatasetError, match="download=True"):
        open_source("cifar10:", cache_dir=tmp_path)


# ---------------------------------------------------------------- downloads


def test_offline_download_names_the_url(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise dl.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(dl, "urlopen", offline)
    with pytest.raises(DatasetError) as error:
        open_source("cifar10:", download=True, cache_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert "download it manually and pass its path" in message
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


class _Response(io.BytesIO):
    headers: dict = {}


def test_download_verifies_md5_then_renames(tmp_path, monkeypatch):
    folder = tmp_path / "src" / "cifar-10-batches-py"
    train, _, _ = _write_cifar10(folder)
    payload = _tar(folder, tmp_path / "src" / "c.tar.gz").read_bytes()
    monkeypatch.setattr(dl, "urlopen", lambda url, timeout: _Response(payload))
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="MD5"):  # the real checksum: our fake fails it
        open_source("cifar10:", download=True, cache_dir=cache)
    assert list(cache.iterdir()) == []
    good = dl.Archive(dl.ARCHIVES["cifar10"].url, dl.hashlib.md5(payload).hexdigest())
    monkeypatch.setitem(dl.ARCHIVES, "cifar10", good)
    src = open_source("cifar10:", download=True, cache_dir=cache)
    assert sorted(p.name for p in cache.iterdir()) == [
        "cifar-10-python.tar.gz",
        "cifar-10-python.tar.gz.md5-ok",
    ]
    np.testing.assert_array_equal(src.load(9)[0], train[9])
    monkeypatch.setattr(dl, "urlopen", None)  # cached now: no network needed
    assert len(open_source("cifar10:", download=True, cache_dir=cache)) == 10


# ---------------------------------------------------------------- transforms


def test_eval_transform_is_a_deterministic_centre_crop():
    image = _rgb(3, 10, 14)
    out = EvalTransform(resize=10, crop=6)(image)  # shorter side already 10: no resampling
    assert out.dtype == torch.uint8 and out.shape == (3, 6, 6)
    np.testing.assert_array_equal(out.numpy(), image[2:8, 4:10].transpose(2, 0, 1))
    assert torch.equal(out, EvalTransform(10, 6)(image))


def test_resize_scales_the_shorter_side():
    out = EvalTransform(resize=20, crop=20)(_rgb(1, 10, 30))
    assert out.shape == (3, 20, 20)
    flat = np.full((40, 60, 3), 90, dtype=np.uint8)
    assert (EvalTransform(resize=16, crop=12)(flat) == 90).all()  # downsampled, same colour
    small = TrainTransform(resize=None, crop=16)(_rgb(2, 8, 12))  # only grows when too small
    assert small.shape == (3, 16, 16)
    with pytest.raises(ValueError, match="crop <= resize"):
        TrainTransform(resize=8, crop=16)


def test_train_transform_flips_and_is_reproducible():
    image = _rgb(5, 8, 8)
    transform = TrainTransform(resize=8, crop=8)  # the crop is the whole image: only flips vary
    torch.manual_seed(0)
    outs = [transform(image).numpy() for _ in range(32)]
    plain = image.transpose(2, 0, 1)
    flipped = image[:, ::-1].transpose(2, 0, 1)
    assert all(np.array_equal(o, plain) or np.array_equal(o, flipped) for o in outs)
    assert 4 < sum(np.array_equal(o, flipped) for o in outs) < 28
    torch.manual_seed(0)
    assert all(np.array_equal(o, transform(image).numpy()) for o in outs)
    no_mirror = TrainTransform(resize=8, crop=8, mirror=False)
    assert all(np.array_equal(no_mirror(image).numpy(), plain) for _ in range(8))
    crops = {tuple(TrainTransform(8, 4, mirror=False)(image)[0, 0].tolist()) for _ in range(64)}
    assert len(crops) > 5  # random positions


def test_scale_jittering_draws_the_shorter_side_in_its_range():
    transform = TrainTransform(resize=10, crop=6, resize_max=16)
    assert transform.largest_side == 16 and TrainTransform(10, 6).largest_side == 10
    torch.manual_seed(0)
    sides = [min(transform.resized(_rgb(1, 20, 30)).shape[-2:]) for _ in range(200)]
    assert set(sides) == set(range(10, 17))  # every side of the range, and only those
    torch.manual_seed(0)
    again = [min(transform.resized(_rgb(1, 20, 30)).shape[-2:]) for _ in range(200)]
    assert again == sides  # a function of the generator's state: resumes exactly
    assert transform(_rgb(1, 20, 30)).shape == (3, 6, 6)
    assert "resize=10..16" in repr(transform)
    with pytest.raises(ValueError, match="resize <= resize_max"):
        TrainTransform(resize=10, crop=6, resize_max=8)


# ---------------------------------------------------------------- dataset


def test_dataset_items_and_collate(photo_folder):
    root, _ = photo_folder
    ds = ImageDataset(open_source(str(root)), EvalTransform(resize=8, crop=8))
    image, label = ds[1]
    assert image.shape == (3, 8, 8) and image.dtype == torch.uint8 and label == 0
    images, labels = ImageDataset.collate([ds[0], None, ds[4]])
    assert images.shape == (2, 3, 8, 8) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == [-1, 1]
    empty_images, empty_labels = ImageDataset.collate([None])
    assert empty_images.shape[0] == 0 and empty_labels.shape == (0,)
    assert ds.log.summary() == "skipped 0 of 3 images"


def test_worker_failures_reach_the_main_process_log(photo_folder, caplog):
    root, _ = photo_folder
    bad = root / "dog" / "x.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated after the header, found at load time
    log = BadImageLog()
    ds = ImageDataset(open_source(str(root)), TrainTransform(resize=8, crop=8), log=log)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=ImageDataset.collate)
    for _ in range(2):  # two epochs: the same bad file counts once
        assert sum(len(labels) for _, labels in loader) == 4
    assert log.skipped == {"truncated": 1}
    assert log.summary() == "skipped 1 of 5 images: 1 truncated"
    assert log.bad_indices().tolist() == [4]
    with pytest.raises(ValueError, match="one per source"):
        ImageDataset(open_source("skimage:8"), EvalTransform(8, 8), log=log)


def test_scan_of_an_array_source_is_instant_and_clean():
    src = open_source("skimage:256")
    report = scan_source(src, min_side=MIN_CROP, progress=False)
    assert report.summary() == "skipped 0 of 256 images"
    assert len(ImageDataset(src, TrainTransform(64, 64), log=report)) == 256


# ---------------------------------------------------------------- real data (shared folder)


def test_shared_cifar10_folder_test_split(shared_data):
    src = open_source(f"folder:{shared_data / 'cifar10'}", split="test")
    assert len(src) == 10_000
    assert src.classes == [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ]  # fmt: skip
    # Order is class folder, then file name; the file number is the canonical row.
    assert (
        Path(src.name(0)).relative_to(shared_data / "cifar10").as_posix()
        == "test/airplane/00003.jpg"
    )
    assert np.bincount(src.labels).tolist() == [1000] * 10
    assert (np.diff(src.labels) >= 0).all()
    rows = np.array([int(Path(src.name(i)).stem) for i in range(len(src))])
    canonical = src.labels[np.argsort(rows)]
    assert canonical[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    image, label = src.load(0)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and label == 0


def test_shared_exact_npz_matches_the_jpegs(shared_data):
    exact = open_source(str(shared_data / "cifar10" / "exact_train.npz"))
    assert len(exact) == 5085 and exact.load(0)[0].shape == (32, 32, 3)
    folder = open_source(f"folder:{shared_data / 'cifar10'}", split="train")
    by_row = {int(Path(folder.name(i)).stem): i for i in range(len(folder))}
    with np.load(shared_data / "cifar10" / "exact_train.npz") as archive:
        index = archive["index"]
    for k in (0, 1, 2500, 5084):
        image, label = exact.load(k)
        jpeg, jpeg_label = folder.load(by_row[int(index[k])])
        assert label == jpeg_label
        assert np.abs(image.astype(int) - jpeg.astype(int)).mean() < 15  # JPEG error only
    assert exact.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]


# ---------------------------------------------------------------- one source protocol


def _image_sources(tmp_path: Path) -> dict:
    folder = tmp_path / "folder"
    for i in range(3):
        _png(folder / "c" / f"{i}.png", _rgb(i))
    np.savez(tmp_path / "a.npz", images=np.stack([_rgb(i) for i in range(4)]), labels=[0, 1, 0, 1])
    bands = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 5), dtype=np.uint8)
    np.savez(tmp_path / "bands.npz", images=bands)
    return {
        "folder": open_source(f"folder:{folder}"),
        "npz": open_source(f"npz:{tmp_path / 'a.npz'}"),
        "skimage": open_source("skimage:5"),
        "channels": open_channels(f"npz:{tmp_path / 'bands.npz'}"),
    }


def _rgbd_sources(tmp_path: Path) -> dict:
    from splitbrain.rgbd import RGBDSelection, open_rgbd

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4, 6, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "f.npz", rgb=rgb, depth=rng.uniform(0.5, 3, (4, 6, 8)).astype(np.float32))
    frames = open_rgbd(f"npz:{tmp_path / 'f.npz'}")
    return {"rgbd npz": frames, "rgbd selection": RGBDSelection([frames, frames], [0, 2, 5])}


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    return np.array_equal(a, b)


@pytest.mark.parametrize(
    "kind", ["folder", "npz", "skimage", "channels", "rgbd npz", "rgbd selection"]
)
def test_every_source_indexes_like_a_python_sequence(tmp_path, kind):
    """Images, channel stacks and RGB-D frames follow one protocol: negative indices count
    from the end; anything outside [-len, len) is an IndexError naming the source."""
    sources = {**_image_sources(tmp_path), **_rgbd_sources(tmp_path)}
    source = sources[kind]
    n = len(source)
    assert isinstance(source, Source) and n >= 3
    for i in (-1, -n):
        assert _same(source[i], source[i % n])
        assert source.name(i) == source.name(i % n) and source.label(i) == source.label(i % n)
        item, label = source.load(i)
        assert _same(item, source[i % n]) and label == source.label(i % n)
    for bad in (n, -n - 1):
        with pytest.raises(IndexError, match="out of range"):
            source[bad]
        with pytest.raises(IndexError, match="out of range"):
            source.name(bad)


# ---------------------------------------------------------------- reduced JPEG decoding


def test_large_jpegs_decode_at_the_size_needed_and_match_a_full_decode(tmp_path):
    """A 1600x1200 JPEG resized to 256 decodes at 1/4 scale (400x300, never below 256), and
    its crop is within a few grey levels of a full decode followed by the same resize."""
    from splitbrain.data.decode import decode_file

    photo = open_source("skimage:1")[0]
    big = Image.fromarray(photo).resize((1600, 1200), Image.Resampling.BICUBIC)
    folder = tmp_path / "big"
    folder.mkdir()
    big.save(folder / "a.jpg", quality=90)
    exif = big.getexif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    big.save(folder / "b.jpg", quality=90, exif=exif)
    assert decode_file(str(folder / "a.jpg"), min_side=256)[0].shape == (300, 400, 3)
    assert decode_file(str(folder / "b.jpg"), min_side=256)[0].shape == (400, 300, 3)
    assert decode_file(str(folder / "a.jpg"), min_side=700)[0].shape == (1200, 1600, 3)
    source = open_source(f"folder:{folder}")
    for i in range(2):
        reduced = ImageDataset(source, EvalTransform(256, 224))[i][0].int()
        full = ImageDataset(source, EvalTransform(256, 224), reduced_decode=False)[i][0].int()
        difference = (reduced - full).abs()
        assert reduced.shape == full.shape == (3, 224, 224)
        assert difference.max() <= 8 and difference.float().mean() <= 0.5
