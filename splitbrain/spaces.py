"""Channel spaces: how a raw input becomes the named channels a split divides.

A space is a fixed conversion of what the data loader delivers into channels (RGB -> L, a, b;
RGB + HHA -> R, G, B, HHA, L, a, b; C channels as they are), plus the scaling of each channel
as network input. Each kind is one class that owns everything that differs between kinds:
its raw channel count, how a uint8 batch is decoded, the conversion, which data stack opens
its input (``data``), which channel groups it names (``groups``: colorization needs "L" and
"ab", the RGB-D pretext evaluation "HHA") and whether it can colorize photographs. Adding a
kind, e.g. a multispectral space with its own normalisation, is one subclass; it registers
itself under its ``kind`` so that weights files naming it load again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import Tensor

from . import color

KINDS: dict[str, type[ChannelSpace]] = {}


@dataclass(frozen=True)
class ChannelSpace:
    """Named channels and their input scaling: network input = (channel - shift) * scale.

    ``masked`` channels are undefined where the input is invalid (HHA where depth is missing):
    they are zeroed there in the network input, and invalid positions leave every loss.
    """

    kind: ClassVar[str]
    #: The data stack that opens this space's input: "images", "channels" or "rgbd".
    data: ClassVar[str]
    #: Whether photographs (RGB) can be colorized through this space (an L->ab half).
    colorizes: ClassVar[bool] = False
    #: Named groups of channel indices, e.g. {"L": (0,), "ab": (1, 2)}.
    groups: ClassVar[dict[str, tuple[int, ...]]] = {}

    names: tuple[str, ...]
    shift: tuple[float, ...]
    scale: tuple[float, ...]
    masked: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not hasattr(type(self), "kind"):
            raise TypeError(
                "ChannelSpace is the base of the kinds of space; use LabSpace, RGBDSpace, "
                "IdentitySpace or a subclass that names its kind"
            )

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            KINDS[cls.kind] = cls

    @property
    def raw_channels(self) -> int:
        """Channels of the raw float input that ``convert`` takes."""
        return len(self.names)

    def decode_batch(self, batch: Tensor) -> tuple[Tensor, Tensor | None]:
        """A uint8 batch from the loader -> (raw float channels, validity mask or None).
        By default every channel is value / 255."""
        return batch.float() / 255.0, None

    def convert(self, raw: Tensor) -> Tensor:
        """Raw (N,C,H,W) float -> (N,len(names),H,W) channels."""
        self._check_raw(raw)
        return raw

    def _check_raw(self, raw: Tensor) -> None:
        if raw.shape[1] != self.raw_channels:
            raise ValueError(
                f"channel space {self.kind!r} expects {self.raw_channels} raw channels, "
                f"got {raw.shape[1]}"
            )

    def _scaling(self, index: tuple[int, ...], like: Tensor) -> tuple[Tensor, Tensor]:
        view = (1, -1, 1, 1)
        shift = torch.tensor([self.shift[i] for i in index], device=like.device).view(view)
        scale = torch.tensor([self.scale[i] for i in index], device=like.device).view(view)
        return shift, scale

    def normalise(
        self, channels: Tensor, index: tuple[int, ...], valid: Tensor | None = None
    ) -> Tensor:
        """Scale the selected channels for the network input; masked channels are 0 where
        ``valid`` (N,H,W) is False."""
        shift, scale = self._scaling(index, channels)
        out = (channels[:, list(index)] - shift) * scale
        masked = [k for k, i in enumerate(index) if i in self.masked]
        if valid is not None and masked:
            keep = torch.ones(len(index), device=out.device, dtype=torch.bool)
            keep[masked] = False
            out = out * (keep.view(1, -1, 1, 1) | valid.unsqueeze(1)).to(out.dtype)
        return out

    def denormalise(self, values: Tensor, index: tuple[int, ...]) -> Tensor:
        """The inverse of ``normalise``: network units of channels ``index`` -> channel values."""
        shift, scale = self._scaling(index, values)
        return values.float() / scale + shift

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    @staticmethod
    def from_dict(data: dict) -> ChannelSpace:
        """The space a ``to_dict`` (or a weights file of any earlier version) describes."""
        kind = data["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown channel space {kind!r}; known: {', '.join(KINDS)}")
        fields = {k: tuple(v) for k, v in data.items() if k != "kind"}
        return KINDS[kind](**fields)


@dataclass(frozen=True)
class LabSpace(ChannelSpace):
    """RGB in [0, 1] -> CIE Lab; the paper feeds L - 50 and ab as they are."""

    kind: ClassVar[str] = "lab"
    data: ClassVar[str] = "images"
    colorizes: ClassVar[bool] = True
    groups: ClassVar[dict[str, tuple[int, ...]]] = {"L": (0,), "ab": (1, 2)}

    names: tuple[str, ...] = ("L", "a", "b")
    shift: tuple[float, ...] = (50.0, 0.0, 0.0)
    scale: tuple[float, ...] = (1.0, 1.0, 1.0)

    @property
    def raw_channels(self) -> int:
        return 3

    def convert(self, raw: Tensor) -> Tensor:
        self._check_raw(raw)
        return color.rgb_to_lab(raw)


@dataclass(frozen=True)
class RGBDSpace(ChannelSpace):
    """RGB in [0, 1] and HHA in [0, 255] -> R, G, B, HHA, L, a, b (SPEC section 6).

    Loader batches have a 7th channel, the validity of the depth (HHA is undefined where depth
    is missing); it becomes the mask that keeps those pixels out of the inputs and losses.
    """

    kind: ClassVar[str] = "rgbd"
    data: ClassVar[str] = "rgbd"
    groups: ClassVar[dict[str, tuple[int, ...]]] = {
        "RGB": (0, 1, 2),
        "HHA": (3, 4, 5),
        "L": (6,),
        "ab": (7, 8),
    }

    names: tuple[str, ...] = (
        "R", "G", "B", "HHA-disparity", "HHA-height", "HHA-angle", "L", "a", "b"
    )  # fmt: skip
    shift: tuple[float, ...] = (0.5, 0.5, 0.5, 127.5, 127.5, 127.5, 50.0, 0.0, 0.0)
    # HHA in +-1: as RGB->HHA's regression target a head starts near that scale (at +-100 it
    # needed far more steps than a run has to leave the mean behind, docs/results/transfer.md,
    # "RGB-D"); as the HHA tower's input the BatchNorm after conv1 makes the scale irrelevant. L
    # keeps Lab's units, which the SPEC's 1:200 weighting of its loss against ab's is made for.
    scale: tuple[float, ...] = (
        100.0, 100.0, 100.0, 1 / 127.5, 1 / 127.5, 1 / 127.5, 1.0, 1.0, 1.0
    )  # fmt: skip
    masked: tuple[int, ...] = (3, 4, 5)

    @property
    def raw_channels(self) -> int:
        return 6

    def decode_batch(self, batch: Tensor) -> tuple[Tensor, Tensor | None]:
        x = batch.float()
        return torch.cat((x[:, :3] / 255.0, x[:, 3:6]), 1), batch[:, 6] > 0

    def convert(self, raw: Tensor) -> Tensor:
        self._check_raw(raw)
        return torch.cat((raw, color.rgb_to_lab(raw[:, :3])), 1)


@dataclass(frozen=True)
class IdentitySpace(ChannelSpace):
    """Any C uint8 channels as they are, / 255 (multispectral tiles, stacked sensors)."""

    kind: ClassVar[str] = "identity"
    data: ClassVar[str] = "channels"
