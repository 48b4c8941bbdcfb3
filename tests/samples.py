"""Files the tests write: noise images, odd formats, a folder of every kind of bad file,
small npz datasets, small weights files."""

import dataclasses
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import splitbrain as sb
from splitbrain.colorize import colorizer


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def palette_image() -> tuple[Image.Image, np.ndarray]:
    colours = np.array([[255, 0, 0], [0, 128, 255], [10, 20, 30], [200, 200, 0]], dtype=np.uint8)
    index = np.random.default_rng(1).integers(0, 4, (20, 20), dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(colours.flatten().tolist())
    return image, colours[index]


def rgba() -> tuple[np.ndarray, np.ndarray]:
    rgba = noise(20, 20, 2)
    rgba = np.concatenate(
        [rgba, np.random.default_rng(3).integers(0, 256, (20, 20, 1), np.uint8)], 2
    )
    alpha = rgba[..., 3:4].astype(int)
    on_white = (rgba[..., :3].astype(int) * alpha + 255 * (255 - alpha) + 127) // 255
    return rgba, on_white.astype(np.uint8)


def write_messy_folder(root: Path) -> Path:
    """Every kind of bad or odd file next to plain good ones."""
    root.mkdir()
    for k in range(4):
        Image.fromarray(noise(20, 20, 10 + k)).save(root / f"good{k}.png")
    (root / "good_jpeg.jpg").write_bytes(encoded(noise(64, 64), "JPEG"))
    jpeg = encoded(noise(64, 64), "JPEG")
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = encoded(noise(64, 64), "PNG")
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("this is not a JPEG at all\n")
    palette_image()[0].save(root / "palette.png")
    Image.fromarray(rgba()[0], "RGBA").save(root / "rgba.png")
    Image.fromarray(noise(20, 20, 4)).convert("CMYK").save(root / "cmyk.jpg")
    ramp = (np.arange(400, dtype=np.uint16).reshape(20, 20) * 163).astype(np.uint16)
    Image.fromarray(ramp).save(root / "sixteen.png")  # mode I;16
    Image.fromarray(noise(20, 20, 5)[..., 0]).save(root / "grey.png")
    Image.fromarray(noise(5, 30, 6)).save(root / "tiny.png")  # shorter side 5 < min_side 8
    return root


def write_noise_npz(path: Path, n: int = 64, side: int = 32, seed: int = 0) -> Path:
    """``n`` random ``side`` px images whose label is their own index (to trace which item
    went where)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    np.savez(path, images=images, labels=np.arange(n))
    return path


def write_app_weights(folder: Path) -> tuple[Path, Path, Path]:
    """Three small networks for the web page: one that colours everything a saturated orange
    (its colour head certain of one bin), an untrained segmenter of 3 classes and an untrained
    detector of 2 (the detector needs torchvision)."""
    torch.manual_seed(0)
    trunk = sb.build("splitbrain", preset="small", width=0.125)
    encoder, target = colorizer(trunk)
    orange = int((sb.color.ab_bins() - torch.tensor([40.0, 50.0])).norm(dim=1).argmin())
    with torch.no_grad():
        encoder.heads[target.name].weight.zero_()
        encoder.heads[target.name].bias.zero_()
        encoder.heads[target.name].bias[orange] = 100.0
    heads = {
        "segmenter": ("hypercolumn", ("conv1", "conv2"), ("sky", "road", "tree")),
        "detector": (("car", "pedestrian"), (8, 16, 32), 64),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = [sb.save(trunk, folder / "colour.safetensors", {"steps": 5})]
    for name, head in heads.items():
        model = sb.SplitBrain(dataclasses.replace(trunk.config, **{name: head}))
        model.load_state_dict(trunk.state_dict(), strict=False)
        paths.append(sb.save(model, folder / f"{name}.safetensors", {"steps": 5}))
    return tuple(paths)
