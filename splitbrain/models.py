"""AlexNet towers and the split-brain network, as plain ``torch.nn`` modules.

Every variant of the paper is a ``SplitBrain``: one or more cross-channel encoders (an AlexNet
tower plus 1x1 prediction heads), each reading some channels of a ``Split``'s channel space and
predicting others. The split-brain model proper has two half-width encoders; the single-network
variants have one full-width encoder. ``features`` concatenates the encoders' activations
layer by layer, which is the split-brain representation F^l(X) = [F1^l(X1), F2^l(X2)].
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .errors import SettingError
from .quantize import GridQuantizer, build_quantizer
from .segmentation import FRAME_SIDE, build_head, seen_at, upsampled
from .splits import Half, Split, Target

# Layer -> (kernel, stride, padding[, dilation]) for convs, (kernel, stride, padding) for pools.
Geometry = dict[str, tuple[int, ...]]

PRESETS: dict[str, Geometry] = {
    # SPEC section 4: 180 input -> 12x12 prediction grid.
    "paper": {
        "conv1": (11, 4, 5),
        "pool1": (3, 2, 1),
        "conv2": (5, 1, 2),
        "pool2": (3, 2, 1),
        "conv3": (3, 1, 1),
        "conv4": (3, 1, 1),
        "conv5": (3, 1, 1),
        "pool5": (3, 1, 1),
        "fc6": (6, 1, 5, 2),
        "fc7": (1, 1, 0),
    },
    # Standard Caffe AlexNet for probing and fine-tuning: 227 input -> fc6/fc7 at 1x1.
    "transfer": {
        "conv1": (11, 4, 0),
        "pool1": (3, 2, 0),
        "conv2": (5, 1, 2),
        "pool2": (3, 2, 0),
        "conv3": (3, 1, 1),
        "conv4": (3, 1, 1),
        "conv5": (3, 1, 1),
        "pool5": (3, 2, 0),
        "fc6": (6, 1, 0),
        "fc7": (1, 1, 0),
    },
    # 32-96 px images (CIFAR-10, STL-10): side s -> s/4 grid. conv1 3x3 stride 1 keeps the
    # few input pixels, pools 1 and 2 halve the side like the paper's, conv2 is 3x3 (a 5x5 at
    # this resolution costs 3x the FLOPs for a receptive field the small images do not need),
    # fc6 is a dilated 3x3 (the paper's dilated 6x6 scaled down) and fc6/fc7 have 1024 channels.
    "small": {
        "conv1": (3, 1, 1),
        "pool1": (3, 2, 1),
        "conv2": (3, 1, 1),
        "pool2": (3, 2, 1),
        "conv3": (3, 1, 1),
        "conv4": (3, 1, 1),
        "conv5": (3, 1, 1),
        "pool5": (3, 1, 1),
        "fc6": (3, 1, 2, 2),
        "fc7": (1, 1, 0),
    },
}
# The authors' released Caffe deploy files (docs/INTEROP.md): "transfer" with the paper's
# dilated fc6, so 227 input -> fc6/fc7 at 6x6.
PRESETS["caffe"] = {**PRESETS["transfer"], "fc6": PRESETS["paper"]["fc6"]}
PRESET_INPUT = {"paper": 180, "transfer": 227, "caffe": 227, "small": 32}
# The paper resizes to 256 and crops 180; other presets keep that ratio, except that small
# images (CIFAR) are padded by the usual 4 pixels' worth of resize instead of upscaled 1.4x.
PRESET_RESIZE = {"paper": 256, "transfer": 256, "caffe": 256, "small": 36}
CONV_CHANNELS = {"conv1": 96, "conv2": 256, "conv3": 384, "conv4": 384, "conv5": 256}
FC_CHANNELS = {"paper": 4096, "transfer": 4096, "caffe": 4096, "small": 1024}
CONV_LAYERS = ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")
FC_LAYERS = ("fc6", "fc7")


def input_geometry(
    preset: str, crop: int | None = None, resize: int | None = None
) -> tuple[int, int]:
    """(resize, crop) of a preset's images: the shorter side is resized to ``resize``, then a
    ``crop`` square is taken. Unset values are the preset's pre-training geometry (paper:
    256 -> 180; small: 36 -> 32), and a resize never falls below the crop."""
    crop = crop or PRESET_INPUT[preset]
    return resize or max(crop, PRESET_RESIZE[preset]), crop


def _conv_block(cin: int, cout: int, geometry: tuple[int, ...], bn_affine: bool) -> nn.Sequential:
    k, s, p, *dil = geometry
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, s, p, dilation=dil[0] if dil else 1, bias=False),
        nn.BatchNorm2d(cout, affine=bn_affine),
        nn.ReLU(inplace=True),
    )


class AlexNet(nn.Module):
    """A fully convolutional AlexNet tower: conv -> BN -> ReLU at every conv, no LRN.

    ``width`` multiplies every channel count (0.5 for a split-brain half). ``include_fc`` False
    stops at pool5 (for towers whose fc layers are per-target branches).
    """

    def __init__(
        self,
        in_channels: int,
        width: float = 1.0,
        preset: str = "paper",
        include_fc: bool = True,
        bn_affine: bool = False,
        fc_channels: int | None = None,
    ) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        geometry = PRESETS[preset]
        self.layers = nn.ModuleDict()
        channels = in_channels
        for name in CONV_LAYERS:
            if name.startswith("pool"):
                self.layers[name] = nn.MaxPool2d(*geometry[name])
                continue
            out = round(CONV_CHANNELS[name] * width)
            self.layers[name] = _conv_block(channels, out, geometry[name], bn_affine)
            channels = out
        self.conv_channels = channels
        if include_fc:
            fc = round((fc_channels or FC_CHANNELS[preset]) * width)
            self.layers["fc6"] = _conv_block(channels, fc, geometry["fc6"], bn_affine)
            self.layers["fc7"] = _conv_block(fc, fc, geometry["fc7"], bn_affine)
            channels = fc
        self.out_channels = channels

    @property
    def layer_names(self) -> list[str]:
        return list(self.layers)

    def forward(self, x: Tensor, layers: list[str] | None = None) -> dict[str, Tensor]:
        """Activations of ``layers`` (default: the last layer); stops after the last asked."""
        wanted = set(layers or [self.layer_names[-1]])
        unknown = wanted - set(self.layers)
        if unknown:
            raise ValueError(f"unknown layers {sorted(unknown)}; have {self.layer_names}")
        out = {}
        for name, layer in self.layers.items():
            x = layer(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out


@dataclass(frozen=True)
class Task:
    """One mapping an encoder learns: ``visible`` channels in (the encoder's other inputs
    are zeroed), the named ``targets`` out. Used by the joint (L,ab)->(ab,L) networks."""

    visible: tuple[int, ...]
    targets: tuple[str, ...]
    weight: float = 1.0


@dataclass(frozen=True)
class EncoderSpec:
    """A cross-channel encoder: a half of the split, its width, its tasks."""

    half: Half
    width: float = 0.5
    tasks: tuple[Task, ...] = ()
    input_dropout: float = 0.0

    @property
    def all_tasks(self) -> tuple[Task, ...]:
        return self.tasks or (Task(self.half.inputs, tuple(t.name for t in self.half.targets)),)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: stored in the weights file's metadata."""

    variant: str
    split: Split
    encoders: tuple[EncoderSpec, ...]
    preset: str = "paper"
    bn_affine: bool = False
    fc_channels: int | None = None
    # A fine-tuned network's linear classifier: (the layer it reads, averaged over space, and
    # the class names of its outputs).
    classifier: tuple[str, tuple[str, ...]] | None = None
    # A segmentation network's head (``splitbrain.segmentation``): its kind, the layers it
    # reads and the class names of its outputs.
    segmenter: tuple[str, tuple[str, ...], tuple[str, ...]] | None = None
    # A detector (``splitbrain.detection``): the class names of its objects, its anchor sizes
    # (pixels) and the shorter side of the images it sees.
    detector: tuple[tuple[str, ...], tuple[int, ...], int] | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["split"] = self.split.to_dict()
        for head in ("classifier", "segmenter", "detector"):  # files without one stay as they were
            if data[head] is None:
                del data[head]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        encoders = tuple(
            EncoderSpec(
                Half.from_dict(e["half"]),
                e["width"],
                tuple(
                    Task(tuple(t["visible"]), tuple(t["targets"]), t["weight"]) for t in e["tasks"]
                ),
                e["input_dropout"],
            )
            for e in data["encoders"]
        )
        return cls(
            variant=data["variant"],
            split=Split.from_dict(data["split"]),
            encoders=encoders,
            preset=data["preset"],
            bn_affine=data["bn_affine"],
            fc_channels=data["fc_channels"],
            classifier=(
                (data["classifier"][0], tuple(data["classifier"][1]))
                if data.get("classifier")
                else None
            ),
            segmenter=(
                (data["segmenter"][0], tuple(data["segmenter"][1]), tuple(data["segmenter"][2]))
                if data.get("segmenter")
                else None
            ),
            detector=(
                (tuple(data["detector"][0]), tuple(data["detector"][1]), int(data["detector"][2]))
                if data.get("detector")
                else None
            ),
        )


def _quantizer_key(spec: str) -> str:
    """Module names may not contain dots (``uniform:0.0:1.0:32``)."""
    return spec.replace(".", "_")


def _build_quantizers(config: ModelConfig) -> nn.ModuleDict:
    specs = {t.quantizer for e in config.encoders for t in e.half.targets if t.quantizer}
    return nn.ModuleDict({_quantizer_key(q): build_quantizer(q) for q in sorted(specs)})


def _target_channels(target: Target, quantizers: nn.ModuleDict) -> int:
    if target.loss == "reg":
        return len(target.channels)
    return quantizers[_quantizer_key(target.quantizer)].num_bins


class CrossChannelEncoder(nn.Module):
    """An AlexNet tower that reads some channels and predicts others through 1x1 heads."""

    def __init__(self, spec: EncoderSpec, config: ModelConfig, quantizers: dict) -> None:
        super().__init__()
        self.spec = spec
        half = spec.half
        shared_fc = half.branch_width is None
        self.tower = AlexNet(
            len(half.inputs),
            spec.width,
            config.preset,
            shared_fc,
            config.bn_affine,
            config.fc_channels,
        )
        self.branches = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        geometry = PRESETS[config.preset]
        for target in half.targets:
            channels = self.tower.out_channels
            if not shared_fc:
                width = half.branch_width
                self.branches[target.name] = nn.Sequential(
                    _conv_block(channels, width, geometry["fc6"], config.bn_affine),
                    _conv_block(width, width, geometry["fc7"], config.bn_affine),
                )
                channels = width
            self.heads[target.name] = nn.Conv2d(
                channels, _target_channels(target, quantizers), kernel_size=1
            )

    def forward(self, x: Tensor, targets: tuple[str, ...] | None = None) -> dict[str, Tensor]:
        """Normalised input channels (N,len(inputs),H,W) -> predictions per target name."""
        trunk = self.tower(x)[self.tower.layer_names[-1]]
        names = targets or tuple(self.heads)
        out = {}
        for name in names:
            h = self.branches[name](trunk) if name in self.branches else trunk
            out[name] = self.heads[name](h)
        return out


DEFAULT_DECODING = {"decode": "annealed", "temperature": 0.38}  # SPEC section 2


class SplitBrain(nn.Module):
    """The whole model of any variant: cross-channel encoders over one channel space.

    ``features(raw, layers)`` is the representation; calling the model gives each encoder's
    predictions. Raw input for the ``lab`` split is RGB in [0, 1], (N,3,H,W). Built in eval
    mode, like a loaded model: BatchNorm uses its running statistics until training says
    otherwise.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.provenance: dict = {}  # what made the weights file it was loaded from, if any
        self.split = config.split
        self.quantizers = _build_quantizers(config)
        self.encoders = nn.ModuleList(
            CrossChannelEncoder(e, config, self.quantizers) for e in config.encoders
        )
        if config.classifier is not None:
            layer, classes = config.classifier
            self.classifier = nn.Linear(self.layer_channels(layer), len(classes))
        if config.segmenter is not None:
            kind, layers, classes = config.segmenter
            channels = [self.layer_channels(layer) for layer in layers]
            strides = [self.stride(layer) for layer in layers]
            self.segmenter = build_head(kind, channels, len(classes), strides)
        if config.detector is not None:
            from .detection import build_detector  # torchvision: only for detectors

            self.detector = build_detector(self, *config.detector)
        self.eval()  # safe to read features from at once; training switches to train mode

    def quantizer(self, spec: str) -> GridQuantizer:
        """The quantizer a classification target names."""
        return self.quantizers[_quantizer_key(spec)]

    def geometry(self, crop: int | None = None, resize: int | None = None) -> tuple[int, int]:
        """(resize, crop) of this model's images, by one rule for every reader: the values
        given, else those it was pre-trained at (``provenance["geometry"]``, recorded in its
        weights file) while it keeps that preset, else its preset's (``input_geometry``); a
        crop larger than the resize is a ``SettingError``."""
        trained = self.provenance.get("geometry") or {}
        if trained.get("preset") == self.config.preset:
            crop, resize = crop or trained.get("crop"), resize or trained.get("resize")
        resize, crop = input_geometry(self.config.preset, crop, resize)
        if not 1 <= crop <= resize:
            raise SettingError(
                "crop", f"larger than the resize, {resize}: crops need 1 <= crop <= resize", crop
            )
        return resize, crop

    def decoding(self, decode: str | None = None, temperature: float | None = None) -> tuple:
        """(decode, temperature) that turn its colour bins into a colour, by the same rule as
        ``geometry``: the values given, else those its weights file records
        (``provenance["decoding"]``), else the paper's annealed mean at T = 0.38."""
        recorded = {**DEFAULT_DECODING, **(self.provenance.get("decoding") or {})}
        decode = recorded["decode"] if decode is None else decode
        return decode, recorded["temperature"] if temperature is None else temperature

    @property
    def layer_names(self) -> list[str]:
        """Layers every encoder has, in network order (fc layers only when shared)."""
        names = [set(e.tower.layer_names) for e in self.encoders]
        return [n for n in self.encoders[0].tower.layer_names if all(n in s for s in names)]

    def channels(self, raw: Tensor) -> Tensor:
        """Raw input -> the split's channel space (e.g. RGB -> Lab), always in float32: colour
        conversion in bf16 under mixed precision would cost about one L unit."""
        with torch.autocast(raw.device.type, enabled=False):
            return self.split.space.convert(raw.float())

    def encoder_input(
        self, encoder: CrossChannelEncoder, channels: Tensor, valid: Tensor | None = None
    ) -> Tensor:
        return self.split.space.normalise(channels, encoder.spec.half.inputs, valid)

    def features(
        self,
        raw: Tensor,
        layers: list[str] | str,
        valid: Tensor | None = None,
        grad: bool = False,
    ) -> dict[str, Tensor]:
        """Layer-wise concatenation of every encoder's activations on the full input.

        Without gradients unless ``grad`` (fine-tuning): a representation is usually read, not
        trained. BatchNorm follows the module's mode, eval after ``build`` and ``load``.
        """
        layers = [layers] if isinstance(layers, str) else list(layers)
        with nullcontext() if grad else torch.no_grad():
            channels = self.channels(raw)
            parts = [e.tower(self.encoder_input(e, channels, valid), layers) for e in self.encoders]
            return {name: torch.cat([p[name] for p in parts], 1) for name in layers}

    def layer_channels(self, layer: str) -> int:
        """Channels of ``layer`` in ``features`` (every encoder's, concatenated)."""
        total = 0
        for encoder in self.encoders:
            channels = 0
            for name, module in encoder.tower.layers.items():
                if isinstance(module, nn.Sequential):
                    channels = module[0].out_channels
                if name == layer:
                    break
            total += channels
        return total

    def classify(self, raw: Tensor, valid: Tensor | None = None) -> Tensor:
        """Class logits (N, classes) of a fine-tuned network (``splitbrain finetune``)."""
        if self.config.classifier is None:
            raise ValueError("this network has no classifier; splitbrain finetune gives one")
        layer = self.config.classifier[0]
        with torch.no_grad():
            return self.classifier(self.features(raw, layer, valid)[layer].mean((2, 3)))

    @torch.no_grad()
    def segment(self, raw: Tensor, side: int | None = None) -> Tensor:
        """Class logits (N, classes, H, W) of every pixel of float RGB ``raw`` (N, 3, H, W) in
        [0, 1], from a network with a segmenter (``splitbrain segment`` trains one), as that
        command scores and predicts: the network sees the images with their shorter side at
        ``side`` (default: the side its segmenter was trained at) and the logits are upsampled
        bilinearly to (H, W)."""
        if self.config.segmenter is None:
            raise ValueError("this network has no segmenter; splitbrain segment gives one")
        layers = list(self.config.segmenter[1])
        small = seen_at(raw, side or self.segment_side())
        features = self.features(small, layers)
        logits = self.segmenter([features[n] for n in layers], small.shape[-2:])
        return upsampled(logits, raw.shape[-2:])

    def segment_side(self) -> int:
        """The shorter side of the frames its segmenter was trained at (its file records it)."""
        return (self.provenance.get("segment") or {}).get("resize") or FRAME_SIDE

    @torch.no_grad()
    def detect(self, images: Tensor | list[Tensor]) -> list[dict[str, Tensor]]:
        """Objects in float RGB images (3, H, W) in [0, 1], any size, from a network with a
        detector (``splitbrain detect`` trains one): per image ``boxes`` (x1, y1, x2, y2 in its
        own pixels), ``labels`` (1..classes, ``config.detector[0][label - 1]`` names one) and
        ``scores``, as that command scores and predicts."""
        if self.config.detector is None:
            raise ValueError("this network has no detector; splitbrain detect gives one")
        was_training = self.training
        self.eval()
        try:
            return self.detector(list(images))
        finally:
            self.train(was_training)

    def stride(self, layer: str) -> int:
        """How many input pixels one step of ``layer``'s grid spans (16 at fc7 of ``paper``)."""
        stride = 1
        for name in (*CONV_LAYERS, *FC_LAYERS):
            stride *= PRESETS[self.config.preset][name][1]
            if name == layer:
                return stride
        raise ValueError(f"no layer {layer}")

    def forward(self, raw: Tensor, valid: Tensor | None = None) -> list[dict[str, Tensor]]:
        """Each encoder's predictions from all of its inputs (for inference and display)."""
        channels = self.channels(raw)
        return [e(self.encoder_input(e, channels, valid)) for e in self.encoders]

    def output_size(self, input_size: int) -> int:
        """Side of the prediction grid for a square input of ``input_size``."""
        side = input_size
        for name in (*CONV_LAYERS, *FC_LAYERS):
            kernel, stride, padding, *dilation = PRESETS[self.config.preset][name]
            reach = (dilation[0] if dilation else 1) * (kernel - 1)
            side = (side + 2 * padding - reach - 1) // stride + 1
        return side


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def training_flops_per_image(config: ModelConfig, side: int) -> int:
    """FLOPs of one training forward and backward pass of the encoders for one square image,
    counted on the meta device (no memory, no real weights touched)."""
    from torch.utils.flop_counter import FlopCounterMode

    quantizers = _build_quantizers(config)
    with torch.device("meta"):
        counter = FlopCounterMode(display=False)
        with counter:
            for spec in config.encoders:
                encoder = CrossChannelEncoder(spec, config, quantizers)
                x = torch.zeros(1, len(encoder.spec.half.inputs), side, side)
                for task in encoder.spec.all_tasks:
                    outputs = encoder(x, task.targets)
                    sum(o.sum() for o in outputs.values()).backward()
    return counter.get_total_flops()
