"""The colorizer: which half colorizes, what it returns, and its picture grid."""

import numpy as np
import pytest
import torch
from PIL import Image

import splitbrain as sb
from splitbrain.colorize import colorizer, save_colorization_grid
from splitbrain.spaces import LabSpace
from splitbrain.splits import Half, Split, Target


def force_bin(model: sb.SplitBrain, target: str, index: int) -> None:
    """Make the colorizing head predict bin ``index`` everywhere, with certainty."""
    encoder, _ = colorizer(model)
    head = encoder.heads[target]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[index] = 100.0


def expected(rgb: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """The input's own L with a constant ab, back to RGB."""
    lab = sb.color.rgb_to_lab(rgb)
    lab[:, 1:] = ab.view(1, 2, 1, 1)
    return sb.color.lab_to_rgb(lab)


def test_colorize_keeps_the_lightness_and_paints_the_predicted_colour():
    torch.manual_seed(0)
    model = sb.build("splitbrain", preset="small", width=0.25)
    bins = sb.color.ab_bins()
    b = int(((bins - torch.tensor([40.0, 30.0])).norm(dim=1)).argmin())  # a saturated orange
    force_bin(model, "ab", b)
    rgb = torch.rand(2, 3, 40, 48)  # any size: the ab grid is upsampled to the image
    out = sb.colorize(model, rgb)
    assert out.shape == rgb.shape and not model.training
    torch.testing.assert_close(out, expected(rgb, bins[b]), atol=2e-3, rtol=0)
    # with a certain prediction, the plain mean (T = 1) is the same colour
    torch.testing.assert_close(sb.colorize(model, rgb, temperature=1.0), out, atol=2e-3, rtol=0)


def test_the_colorizing_target_need_not_be_its_halfs_first():
    """A half that regresses ab first and classifies it second colorizes through the second
    target's quantizer (an earlier version read the first target's)."""
    split = Split(
        "lab-two-heads",
        LabSpace(),
        (
            Half(
                "L->ab",
                (0,),
                (Target("ab-reg", (1, 2), "reg"), Target("ab", (1, 2), "cl", "ab313")),
            ),
            Half("ab->L", (1, 2), (Target("L", (0,), "cl", "L50"),)),
        ),
    )
    model = sb.build("l2ab-cl", preset="small", split=split, width=0.25)
    encoder, target = colorizer(model)
    assert target.name == "ab" and target.quantizer == "ab313"
    force_bin(model, "ab", 200)
    rgb = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(
        sb.colorize(model, rgb), expected(rgb, sb.color.ab_bins()[200]), atol=2e-3, rtol=0
    )


@pytest.mark.parametrize("variant", ["ab2l-cl", "l2ab-reg", "lab2lab"])
def test_variants_without_a_classifying_l_to_ab_half_cannot_colorize(variant):
    model = sb.build(variant, preset="small", width=0.25)
    assert colorizer(model) is None
    with pytest.raises(ValueError) as error:
        sb.colorize(model, torch.rand(1, 3, 32, 32))
    assert str(error.value) == (
        f"variant '{variant}' on split 'lab' has no L->ab classification half; variants that "
        "can colorize: splitbrain, l2ab-cl, ensemble-l2ab"
    )


def test_rgbd_and_channel_spaces_do_not_colorize_photographs():
    for split in ("rgbd", "channels:0/1-2:cl,cl"):
        assert colorizer(sb.build("splitbrain", preset="small", split=split, width=0.25)) is None


def test_colorization_grid_is_grey_colorized_original_per_column(tmp_path):
    model = sb.build("splitbrain", preset="small", width=0.25)
    force_bin(model, "ab", 200)
    rgb = torch.rand(3, 3, 16, 20)
    path = save_colorization_grid(model, rgb, tmp_path / "grid.png", scale=2)
    picture = torch.from_numpy(np.array(Image.open(path))).float() / 255
    assert picture.shape == (3 * 16 * 2, 3 * 20 * 2, 3)
    original = picture[2 * 32 : 3 * 32 : 2, 0:40:2].permute(2, 0, 1)  # row 3, column 1
    torch.testing.assert_close(original, rgb[0], atol=1 / 255, rtol=0)
    grey = picture[0:32:2, 0:40:2]
    assert (grey.max(-1).values - grey.min(-1).values).max() <= 2 / 255  # no colour


def test_a_model_whose_colour_head_never_learnt_colours_is_refused(tmp_path):
    import dataclasses

    from splitbrain.cli import main

    photo = torch.rand(1, 3, 32, 32)
    random = sb.build("gaussian", preset="small", width=0.25)
    with pytest.raises(ValueError, match="cannot colorize: variant 'gaussian' is an untrained"):
        sb.colorize(random, photo)
    trained = sb.build("splitbrain", preset="small", width=0.25)
    classifier = sb.SplitBrain(dataclasses.replace(trained.config, classifier=("fc7", ("a", "b"))))
    with pytest.raises(ValueError, match="a classifier fine-tuned since its pre-training"):
        sb.colorize(classifier, photo)
    cases = {"caffe": ({"source": "caffe:x.caffemodel sha256:0"}, "imported Caffe weights"),
             "zero": ({"steps": 0, "data": "skimage:"}, "records 0 training steps")}  # fmt: skip
    for name, (provenance, reason) in cases.items():
        path = sb.save(trained, tmp_path / f"{name}.safetensors", provenance)
        recorded = {  # always
            "geometry": {"preset": "small", "resize": 36, "crop": 32},
            "decoding": {"decode": "annealed", "temperature": 0.38},
        }
        assert sb.load(path).provenance == {**provenance, **recorded}
        with pytest.raises(ValueError, match=reason):
            sb.colorize(sb.load(path), photo)
        assert main(["colorize", str(tmp_path), "--weights", str(path), "--out",
                     str(tmp_path / "out"), "--no-progress"]) == 1  # fmt: skip
    assert not (tmp_path / "out").exists()
    fine = sb.save(trained, tmp_path / "trained.safetensors", {"steps": 10})
    assert sb.colorize(sb.load(fine), photo).shape == photo.shape
