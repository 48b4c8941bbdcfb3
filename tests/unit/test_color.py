"""Lab conversion against skimage's rgb2lab, round trips, devices and gradients."""

import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from splitbrain import color


def _all_8bit_colours(stride: int) -> torch.Tensor:
    """Every ``stride``-th 8-bit colour of the RGB cube as a (1,3,n,1) float64 image."""
    levels = torch.arange(0, 256, stride, dtype=torch.float64)
    if levels[-1] != 255:
        levels = torch.cat([levels, torch.tensor([255.0], dtype=torch.float64)])
    cube = torch.stack(torch.meshgrid(levels, levels, levels, indexing="ij"), 0)
    return cube.reshape(1, 3, -1, 1) / 255.0


def _reference_lab(rgb: torch.Tensor) -> np.ndarray:
    return rgb2lab(rgb.permute(0, 2, 3, 1).numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rgb_to_lab_matches_skimage_on_strided_cube(dtype):
    rgb = _all_8bit_colours(stride=5)
    ours = color.rgb_to_lab(rgb.to(dtype)).permute(0, 2, 3, 1).double().numpy()
    error = np.abs(ours - _reference_lab(rgb)).max(axis=(0, 1, 2))
    assert error.shape == (3,)
    assert (error < 0.01).all(), error


@pytest.mark.slow
def test_rgb_to_lab_matches_skimage_on_whole_cube():
    rgb = _all_8bit_colours(stride=1)  # all 16.7M colours
    for chunk in rgb.split(2**22, dim=2):
        ours = color.rgb_to_lab(chunk.float()).permute(0, 2, 3, 1).double().numpy()
        assert np.abs(ours - _reference_lab(chunk)).max() < 0.01


def test_lab_to_rgb_round_trip_and_skimage_inverse():
    rgb = _all_8bit_colours(stride=9)
    lab = color.rgb_to_lab(rgb)
    assert (color.lab_to_rgb(lab) - rgb).abs().max() < 1e-3
    back32 = color.lab_to_rgb(lab.float()).double()
    assert (back32 - rgb).abs().max() < 1e-3
    reference = lab2rgb(lab.permute(0, 2, 3, 1).numpy())
    assert np.abs(color.lab_to_rgb(lab).permute(0, 2, 3, 1).numpy() - reference).max() < 1e-6


def test_known_values_and_ranges():
    rgb = torch.tensor([[1.0, 1, 1], [0, 0, 0], [1, 0, 0]]).T.reshape(1, 3, 3, 1)
    lab = color.rgb_to_lab(rgb)[0, :, :, 0].T
    assert torch.allclose(lab[0], torch.tensor([100.0, 0, 0]), atol=0.01)
    assert torch.allclose(lab[1], torch.zeros(3), atol=1e-4)
    assert torch.allclose(lab[2], torch.tensor([53.24, 80.09, 67.20]), atol=0.01)


def test_gradients_are_finite_including_black():
    rgb = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    rgb[0, :, 0, 0] = 0.0
    rgb.requires_grad_(True)
    color.rgb_to_lab(rgb).sum().backward()
    assert torch.isfinite(rgb.grad).all()
    assert torch.autograd.gradcheck(
        color.rgb_to_lab, (torch.rand(1, 3, 2, 2).double().requires_grad_(),)
    )


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\(N,3,H,W\)"):
        color.rgb_to_lab(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="float"):
        color.rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


def test_ab_bins_shape_order_and_grid():
    bins = color.ab_bins()
    assert bins.shape == (313, 2) and bins.dtype == torch.float32
    assert bins[0].tolist() == [-90.0, 50.0]
    assert (bins % 10 == 0).all()
    assert len({tuple(b) for b in bins.tolist()}) == 313


def test_ab_bins_equal_the_canonical_csv(shared_data):
    rows = np.loadtxt(shared_data / "colorization" / "ab_bins_313.csv", delimiter=",", skiprows=1)
    assert np.array_equal(color.ab_bins(dtype=torch.float64).numpy(), rows)


def test_conversions_stay_in_fp32_under_bf16_autocast():
    """Mixed precision runs the network in bf16; the colour conversions must not follow (bf16
    would be off by about one L unit): under autocast they still match skimage within 0.01."""
    rgb = torch.rand(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lab = color.rgb_to_lab(rgb)
        back = color.lab_to_rgb(lab)
    assert lab.dtype == back.dtype == torch.float32
    expected = rgb2lab(rgb.permute(0, 2, 3, 1).double().numpy())
    assert np.abs(lab.permute(0, 2, 3, 1).numpy() - expected).max() < 0.01
    assert (back - rgb).abs().max() < 1e-4
