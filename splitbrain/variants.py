"""The paper's variants (SPEC section 3) as compositions of cross-channel encoders.

Each variant maps a split to the encoders it trains. Names follow the paper's Table 2:
``splitbrain`` is (cl,cl), ``l2ab-cl`` is the full-width colorization network, ``joint`` is
(L,ab)->(ab,L), and so on. They are written for any two-half split, so the same names work
for RGB-D and generic channel splits where they make sense.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from .models import EncoderSpec, ModelConfig, SplitBrain, Task
from .splits import Half, Split, Target, get_split


def _all_channels(split: Split) -> tuple[int, ...]:
    return tuple(sorted({c for h in split.halves for c in h.inputs}))


def _autoencoder_half(split: Split) -> Half:
    channels = _all_channels(split)
    name = "".join(split.space.names[c] for c in channels)
    return Half(f"{name}->{name}", channels, (Target(name, channels, "reg"),))


def _joint(split: Split, with_autoencoder: bool) -> tuple[EncoderSpec, ...]:
    """One full-width network for both mappings; the channels a task does not see are zeroed."""
    reg = split.with_loss("reg")
    first, second = reg.halves
    targets = first.targets + second.targets
    tasks = [
        Task(first.inputs, tuple(t.name for t in first.targets)),
        Task(second.inputs, tuple(t.name for t in second.targets)),
    ]
    if with_autoencoder:
        auto = _autoencoder_half(split)
        targets += auto.targets
        tasks.append(Task(auto.inputs, (auto.targets[0].name,)))
    weight = 1.0 / len(tasks)
    tasks = tuple(replace(t, weight=weight) for t in tasks)
    half = Half("joint", _all_channels(split), targets)
    return (EncoderSpec(half, 1.0, tasks),)


VARIANTS: dict[str, Callable[[Split], tuple[EncoderSpec, ...]]] = {
    "splitbrain": lambda s: tuple(EncoderSpec(h, 0.5) for h in s.halves),
    "splitbrain-reg": lambda s: tuple(EncoderSpec(h, 0.5) for h in s.with_loss("reg").halves),
    "l2ab-cl": lambda s: (EncoderSpec(s.halves[0], 1.0),),
    "l2ab-reg": lambda s: (EncoderSpec(s.with_loss("reg").halves[0], 1.0),),
    "ab2l-cl": lambda s: (EncoderSpec(s.halves[1], 1.0),),
    "ab2l-reg": lambda s: (EncoderSpec(s.with_loss("reg").halves[1], 1.0),),
    "lab2lab": lambda s: (EncoderSpec(_autoencoder_half(s), 1.0),),
    "lab2lab-drop50": lambda s: (EncoderSpec(_autoencoder_half(s), 1.0, input_dropout=0.5),),
    "joint": lambda s: _joint(s, with_autoencoder=False),
    "joint-full": lambda s: _joint(s, with_autoencoder=True),
    "ensemble-l2ab": lambda s: (
        EncoderSpec(replace(s.halves[0], name=f"{s.halves[0].name}:cl"), 0.5),
        EncoderSpec(replace(s.with_loss("reg").halves[0], name=f"{s.halves[0].name}:reg"), 0.5),
    ),
    # Random initialisation, never trained: the split-brain architecture, saved as is.
    "gaussian": lambda s: tuple(EncoderSpec(h, 0.5) for h in s.halves),
}
UNTRAINED = {"gaussian"}


def build(
    variant: str = "splitbrain",
    preset: str = "paper",
    split: str | Split = "lab",
    width: float = 1.0,
    bn_affine: bool = False,
    fc_channels: int | None = None,
) -> SplitBrain:
    """Build any variant by name: ``sb.build("splitbrain", preset="paper")``.

    ``width`` scales every encoder (1.0 = the paper's AlexNet channel counts, halved per
    split-brain half).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    split = get_split(split)
    encoders = tuple(replace(e, width=e.width * width) for e in VARIANTS[variant](split))
    config = ModelConfig(variant, split, encoders, preset, bn_affine, fc_channels)
    return SplitBrain(config)


def width_of(config: ModelConfig) -> float:
    """The ``width`` a model of ``config`` was built with: its first encoder's channel scale
    against its variant's (an imported or custom network outside the variants: that scale)."""
    if config.variant not in VARIANTS:
        return config.encoders[0].width
    return config.encoders[0].width / VARIANTS[config.variant](config.split)[0].width
