"""Declarative channel splits: what each half sees, what it predicts, and how.

A split works in a *channel space*: a fixed conversion of the raw input into named channels
(``lab``: RGB in [0,1] -> L, a, b; ``rgbd``: RGB + HHA -> R, G, B, H, H, A, L, a, b;
``identity``: any C channels as they are). Each half reads some channels and predicts others;
each target is either regressed or classified through a quantizer. Splits are plain frozen
dataclasses, so they serialise to JSON and back (``to_dict`` / ``from_dict``) and travel in the
weights file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
from torch import Tensor

from . import color

LOSSES = ("cl", "reg")


@dataclass(frozen=True)
class Target:
    """One predicted group of channels.

    ``quantizer`` names the binning for ``cl`` (see ``quantize.build_quantizer``); ``weight``
    multiplies this target's loss.
    """

    name: str
    channels: tuple[int, ...]
    loss: str = "reg"
    quantizer: str | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"target {self.name!r}: loss must be one of {LOSSES}")
        if self.loss == "cl" and self.quantizer is None:
            raise ValueError(f"target {self.name!r}: a classification target needs a quantizer")


@dataclass(frozen=True)
class Half:
    """One cross-channel encoder: input channels -> targets.

    ``branch_width`` gives each target its own fc6/fc7 branch of that many channels on a trunk
    shared up to pool5 (the RGB-D paper's F_HHA); ``None`` shares fc6/fc7 across targets.
    """

    name: str
    inputs: tuple[int, ...]
    targets: tuple[Target, ...]
    branch_width: int | None = None

    @classmethod
    def from_dict(cls, data: dict) -> Half:
        return cls(
            name=data["name"],
            inputs=tuple(data["inputs"]),
            targets=tuple(
                Target(**{**t, "channels": tuple(t["channels"])}) for t in data["targets"]
            ),
            branch_width=data.get("branch_width"),
        )


@dataclass(frozen=True)
class ChannelSpace:
    """How raw input becomes the split's channels, and how each channel is scaled as input.

    Network input = (channel - shift) * scale, per channel; the paper feeds L - 50 and ab as is.
    ``masked`` channels are undefined where the input is invalid (HHA where depth is missing):
    they are zeroed there in the network input, and invalid positions leave every loss.
    """

    kind: str  # "lab", "rgbd" or "identity"
    names: tuple[str, ...]
    shift: tuple[float, ...]
    scale: tuple[float, ...]
    masked: tuple[int, ...] = ()

    @property
    def raw_channels(self) -> int:
        return {"lab": 3, "rgbd": 6}.get(self.kind, len(self.names))

    def decode_batch(self, batch: Tensor) -> tuple[Tensor, Tensor | None]:
        """A uint8 batch from the loader -> (raw float channels, validity mask or None).

        Images: RGB / 255. RGB-D: RGB / 255, HHA as 0..255, and a 7th channel that is the
        validity mask. Other data: every channel / 255.
        """
        x = batch.float()
        if self.kind == "rgbd":
            return torch.cat((x[:, :3] / 255.0, x[:, 3:6]), 1), batch[:, 6] > 0
        return x / 255.0, None

    def convert(self, raw: Tensor) -> Tensor:
        """Raw (N,C,H,W) float -> (N,len(names),H,W) channels."""
        if raw.shape[1] != self.raw_channels:
            raise ValueError(
                f"channel space {self.kind!r} expects {self.raw_channels} raw channels, "
                f"got {raw.shape[1]}"
            )
        if self.kind == "lab":
            return color.rgb_to_lab(raw)
        if self.kind == "rgbd":  # RGB in [0,1], HHA in [0,255]
            return torch.cat((raw, color.rgb_to_lab(raw[:, :3])), 1)
        return raw

    def normalise(
        self, channels: Tensor, index: tuple[int, ...], valid: Tensor | None = None
    ) -> Tensor:
        """Scale the selected channels for the network input; masked channels are 0 where
        ``valid`` (N,H,W) is False."""
        shift = torch.tensor([self.shift[i] for i in index], device=channels.device)
        scale = torch.tensor([self.scale[i] for i in index], device=channels.device)
        view = (1, -1, 1, 1)
        out = (channels[:, list(index)] - shift.view(view)) * scale.view(view)
        masked = [k for k, i in enumerate(index) if i in self.masked]
        if valid is not None and masked:
            keep = torch.ones(len(index), device=out.device, dtype=torch.bool)
            keep[masked] = False
            out = out * (keep.view(view) | valid.unsqueeze(1)).to(out.dtype)
        return out


@dataclass(frozen=True)
class Split:
    name: str
    space: ChannelSpace
    halves: tuple[Half, ...]
    notes: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Split:
        space = ChannelSpace(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data["space"].items()}
        )
        halves = tuple(Half.from_dict(h) for h in data["halves"])
        return cls(name=data["name"], space=space, halves=halves, notes=data.get("notes", ""))

    def with_loss(self, loss: str) -> Split:
        """The same split with every target regressed (``reg``) or classified (``cl``)."""
        if loss == "cl":
            return self
        halves = tuple(
            replace(h, targets=tuple(replace(t, loss=loss, quantizer=None) for t in h.targets))
            for h in self.halves
        )
        return replace(self, halves=halves)


LAB_SPACE = ChannelSpace("lab", ("L", "a", "b"), shift=(50.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0))


def lab_split() -> Split:
    """L | ab: the L->ab half colorizes (313 ab bins), the ab->L half predicts L (50 bins)."""
    return Split(
        name="lab",
        space=LAB_SPACE,
        halves=(
            Half("L->ab", inputs=(0,), targets=(Target("ab", (1, 2), "cl", "ab313"),)),
            Half("ab->L", inputs=(1, 2), targets=(Target("L", (0,), "cl", "L50"),)),
        ),
    )


def rgbd_split() -> Split:
    """RGB | HHA (SPEC section 6): F_RGB regresses HHA; F_HHA predicts L (l2) and ab (cl)
    through fc6/fc7 branches of 512 channels, the ab loss weighted 200 against L."""
    space = ChannelSpace(
        "rgbd",
        ("R", "G", "B", "HHA-disparity", "HHA-height", "HHA-angle", "L", "a", "b"),
        shift=(0.5, 0.5, 0.5, 127.5, 127.5, 127.5, 50.0, 0.0, 0.0),
        scale=(100.0, 100.0, 100.0, 100 / 127.5, 100 / 127.5, 100 / 127.5, 1.0, 1.0, 1.0),
        masked=(3, 4, 5),
    )
    return Split(
        name="rgbd",
        space=space,
        halves=(
            Half("RGB->HHA", inputs=(0, 1, 2), targets=(Target("HHA", (3, 4, 5), "reg"),)),
            Half(
                "HHA->Lab",
                inputs=(3, 4, 5),
                targets=(
                    Target("L", (6,), "reg", weight=1.0),
                    Target("ab", (7, 8), "cl", "ab313", weight=200.0),
                ),
                branch_width=512,
            ),
        ),
    )


def channel_split(
    num_channels: int,
    first: tuple[int, ...],
    second: tuple[int, ...],
    loss: tuple[str, str] = ("reg", "reg"),
    bins: int = 32,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Split:
    """A generic split of a C-channel tensor by channel indices.

    Half 1 reads ``first`` and predicts ``second``; half 2 the reverse. ``loss[i]`` is how the
    channels predicted *by* half i are encoded: ``reg`` (one regression target over them) or
    ``cl`` (one classification target per channel, ``bins`` uniform bins on ``value_range``).
    """
    for idx in (*first, *second):
        if not 0 <= idx < num_channels:
            raise ValueError(f"channel {idx} is out of range for {num_channels} channels")
    low, high = value_range
    centre, half_span = (low + high) / 2, (high - low) / 2
    space = ChannelSpace(
        "identity",
        tuple(f"c{i}" for i in range(num_channels)),
        shift=(centre,) * num_channels,
        scale=(1.0 / half_span,) * num_channels,
    )

    def targets(channels: tuple[int, ...], kind: str) -> tuple[Target, ...]:
        if kind == "reg":
            return (Target("+".join(f"c{c}" for c in channels), channels, "reg"),)
        quantizer = f"uniform:{low}:{high}:{bins}"
        return tuple(Target(f"c{c}", (c,), "cl", quantizer) for c in channels)

    name = f"channels:{','.join(map(str, first))}/{','.join(map(str, second))}"
    return Split(
        name=name,
        space=space,
        halves=(
            Half(f"{name}:a", inputs=first, targets=targets(second, loss[0])),
            Half(f"{name}:b", inputs=second, targets=targets(first, loss[1])),
        ),
    )


BUILTIN = {"lab": lab_split, "rgbd": rgbd_split}


def get_split(name: str | Split) -> Split:
    """A built-in split by name (``lab``, ``rgbd``), a generic ``channels:A/B[:...]`` spec
    (grammar in docs/CHANNELS.md), or a ``Split`` passed through."""
    if isinstance(name, Split):
        return name
    if name.startswith("channels:"):
        from .data.channels import parse_channel_split  # the grammar lives with the data

        return parse_channel_split(name)
    if name not in BUILTIN:
        raise ValueError(
            f"unknown split {name!r}; built-in: {', '.join(BUILTIN)}, or channels:A/B[:...]"
        )
    return BUILTIN[name]()
