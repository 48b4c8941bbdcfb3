"""Files the tests write: noise images, odd formats, a folder of every kind of bad file,
small npz datasets."""

import io
from pathlib import Path

import numpy as np
from PIL import Image


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
