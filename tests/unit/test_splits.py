"""Split descriptions: the built-ins and what later domains need."""

import pytest
import torch

from splitbrain.splits import Split, channel_split, get_split, lab_split, rgbd_split


def test_lab_split():
    split = lab_split()
    first, second = split.halves
    assert (first.inputs, first.targets[0].channels, first.targets[0].quantizer) == (
        (0,),
        (1, 2),
        "ab313",
    )
    assert (second.inputs, second.targets[0].channels, second.targets[0].quantizer) == (
        (1, 2),
        (0,),
        "L50",
    )
    reg = split.with_loss("reg")
    assert all(t.loss == "reg" and t.quantizer is None for h in reg.halves for t in h.targets)


def test_rgbd_split_expresses_two_targets_weighted_1_to_200():
    rgb, hha = rgbd_split().halves
    assert rgb.targets[0].loss == "reg" and rgb.targets[0].channels == (3, 4, 5)
    assert [(t.name, t.loss, t.weight) for t in hha.targets] == [
        ("L", "reg", 1.0),
        ("ab", "cl", 200.0),
    ]
    assert hha.branch_width == 512
    raw = torch.cat([torch.rand(1, 3, 4, 4), 255 * torch.rand(1, 3, 4, 4)], 1)
    assert rgbd_split().space.convert(raw).shape == (1, 9, 4, 4)


def test_generic_channel_split_per_channel_quantization():
    split = channel_split(13, (0, 1, 2), (3, 4), loss=("cl", "reg"), bins=16)
    first, second = split.halves
    assert [t.channels for t in first.targets] == [(3,), (4,)]
    assert first.targets[0].quantizer == "uniform:0.0:1.0:16"
    assert second.targets[0].channels == (0, 1, 2) and second.targets[0].loss == "reg"
    with pytest.raises(ValueError, match="out of range"):
        channel_split(4, (0,), (7,))


def test_splits_round_trip_through_dicts():
    for split in (lab_split(), rgbd_split(), channel_split(5, (0,), (1, 2, 3, 4))):
        assert Split.from_dict(split.to_dict()) == split


def test_unknown_split_and_invalid_targets():
    with pytest.raises(ValueError, match="unknown split"):
        get_split("xyz")
    from splitbrain.splits import Target

    with pytest.raises(ValueError, match="needs a quantizer"):
        Target("ab", (1, 2), "cl")


def test_channel_spaces_are_kinds_and_the_base_is_not_one():
    from splitbrain.spaces import KINDS, ChannelSpace, IdentitySpace

    assert set(KINDS) >= {"lab", "rgbd", "identity"}
    with pytest.raises(TypeError, match="use LabSpace, RGBDSpace, IdentitySpace"):
        ChannelSpace(("a",), (0.0,), (1.0,))
    space = IdentitySpace(("c0", "c1"), (0.5, 0.5), (2.0, 2.0))
    assert ChannelSpace.from_dict(space.to_dict()) == space and space.data == "channels"
    with pytest.raises(ValueError, match="unknown channel space 'hyperspectral'"):
        ChannelSpace.from_dict({**space.to_dict(), "kind": "hyperspectral"})


def test_a_new_kind_of_space_is_one_class(tmp_path):
    """A multispectral space with its own normalisation: one subclass, and models over it
    train, save and load with no other change."""
    from dataclasses import dataclass, replace
    from typing import ClassVar

    import splitbrain as sb
    from splitbrain.spaces import IdentitySpace

    @dataclass(frozen=True)
    class Reflectance(IdentitySpace):
        kind: ClassVar[str] = "test-reflectance"

        def decode_batch(self, batch):
            return batch.float() / 100.0, None  # stored as percent

    base = channel_split(4, (0, 1), (2, 3))
    split = replace(base, space=Reflectance(base.space.names, base.space.shift, base.space.scale))
    model = sb.build("splitbrain", preset="small", split=split, width=0.125)
    raw, valid = model.split.space.decode_batch(torch.full((2, 4, 16, 16), 50, dtype=torch.uint8))
    assert torch.equal(raw, torch.full((2, 4, 16, 16), 0.5)) and valid is None
    loss, _ = sb.Objective()(model.train(), raw)
    assert torch.isfinite(loss)
    loaded = sb.load(sb.save(model, tmp_path / "w.safetensors"))
    assert type(loaded.split.space) is Reflectance and loaded.split == split
