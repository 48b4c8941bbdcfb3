"""Declarative channel splits: what each half sees, what it predicts, and how.

A split works in a *channel space* (``spaces``: ``lab``, RGB -> L, a, b; ``rgbd``, RGB + HHA
-> R, G, B, H, H, A, L, a, b; ``identity``, any C channels as they are). Each half reads some
channels and predicts others; each target is either regressed or classified through a
quantizer. Splits are plain frozen dataclasses, so they serialise to JSON and back
(``to_dict`` / ``from_dict``) and travel in the weights file. ``get_split`` also reads the
``channels:A/B[:...]`` grammar of generic splits (docs/CHANNELS.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .spaces import ChannelSpace, IdentitySpace, LabSpace, RGBDSpace

LOSSES = ("cl", "reg")
_DEFAULT_BINS = 32
_DEFAULT_RANGE = (0.0, 1.0)


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
class Split:
    name: str
    space: ChannelSpace
    halves: tuple[Half, ...]
    notes: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        return {**asdict(self), "space": self.space.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> Split:
        space = ChannelSpace.from_dict(data["space"])
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


def lab_split() -> Split:
    """L | ab: the L->ab half colorizes (313 ab bins), the ab->L half predicts L (50 bins)."""
    return Split(
        name="lab",
        space=LabSpace(),
        halves=(
            Half("L->ab", inputs=(0,), targets=(Target("ab", (1, 2), "cl", "ab313"),)),
            Half("ab->L", inputs=(1, 2), targets=(Target("L", (0,), "cl", "L50"),)),
        ),
    )


def rgbd_split() -> Split:
    """RGB | HHA (SPEC section 6): F_RGB regresses HHA; F_HHA predicts L (l2) and ab (cl)
    through fc6/fc7 branches of 512 channels, the ab loss weighted 200 against L."""
    return Split(
        name="rgbd",
        space=RGBDSpace(),
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
    bins: int = _DEFAULT_BINS,
    value_range: tuple[float, float] = _DEFAULT_RANGE,
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
    space = IdentitySpace(
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


def _indices(text: str, spec: str) -> tuple[int, ...]:
    """``0,1,2`` or ``0-2,5`` -> (0, 1, 2[, 5]); ranges are inclusive."""
    out: list[int] = []
    for part in text.split(","):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ValueError(f"{spec}: {part!r} is not a channel index or range A-B") from None
        if first < 0 or last < first:
            raise ValueError(f"{spec}: bad channel range {part!r}")
        out.extend(range(first, last + 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{spec}: a channel is listed twice in {text!r}")
    return tuple(out)


def parse_channel_split(spec: str) -> Split:
    """A generic split from ``channels:A/B[:LOSS][:bins=K][:range=LOW,HIGH][:n=C]``.

    ``A`` and ``B`` are the two halves' channels (indices and inclusive ranges, ``0,1,2`` or
    ``0-2``); half 1 reads A and predicts B, half 2 the reverse. ``LOSS`` is ``reg``, ``cl``,
    or one per half (``cl,reg``: half 1's predictions classified, half 2's regressed); default
    ``reg``. ``bins`` and ``range`` set the uniform bins of ``cl`` targets (default 32 on
    [0, 1], the range of uint8 data / 255). ``n`` is the data's channel count; without it the
    count is inferred as the largest index + 1, so data with channels that neither half uses
    must say ``n=``. The returned split's name is the canonical spec, which parses back to it.
    """
    prefix, _, body = spec.partition(":")
    fields = body.split(":")
    if prefix != "channels" or "/" not in fields[0]:
        raise ValueError(f"{spec}: expected channels:A/B[:LOSS][:bins=K][:range=LOW,HIGH][:n=C]")
    first_text, _, second_text = fields[0].partition("/")
    first, second = _indices(first_text, spec), _indices(second_text, spec)
    shared = sorted(set(first) & set(second))
    if shared:
        raise ValueError(
            f"{spec}: channels {shared} are in both halves (a half would see its target)"
        )
    loss, bins, value_range, count = ("reg", "reg"), _DEFAULT_BINS, _DEFAULT_RANGE, None
    for part in fields[1:]:
        key, eq, value = part.partition("=")
        try:
            if not eq:
                kinds = tuple(part.split(","))
                if not set(kinds) <= set(LOSSES) or len(kinds) not in (1, 2):
                    raise ValueError
                loss = (kinds * 2)[:2]
            elif key == "bins":
                bins = int(value)
                if bins < 2:
                    raise ValueError
            elif key == "range":
                low, high = (float(v) for v in value.split(","))
                if not low < high:
                    raise ValueError
                value_range = (low, high)
            elif key == "n":
                count = int(value)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{spec}: cannot read {part!r}; use reg, cl, cl,reg, bins=K (K >= 2), "
                "range=LOW,HIGH (LOW < HIGH) or n=C"
            ) from None
    largest = max(first + second) + 1
    if count is not None and count < largest:
        raise ValueError(f"{spec}: n={count} but channel {largest - 1} is used")
    count = count or largest
    name = f"channels:{first_text}/{second_text}:{loss[0]},{loss[1]}"
    if "cl" in loss:
        name += f":bins={bins}:range={value_range[0]:g},{value_range[1]:g}"
    split = channel_split(count, first, second, loss, bins, value_range)
    return replace(split, name=f"{name}:n={count}")


BUILTIN = {"lab": lab_split, "rgbd": rgbd_split}


def get_split(name: str | Split) -> Split:
    """A built-in split by name (``lab``, ``rgbd``), a generic ``channels:A/B[:...]`` spec
    (grammar in docs/CHANNELS.md), or a ``Split`` passed through."""
    if isinstance(name, Split):
        return name
    if name.startswith("channels:"):
        return parse_channel_split(name)
    if name not in BUILTIN:
        raise ValueError(
            f"unknown split {name!r}; built-in: {', '.join(BUILTIN)}, or channels:A/B[:...]"
        )
    return BUILTIN[name]()
