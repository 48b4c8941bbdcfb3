"""A detector on a split-brain trunk: torchvision's Faster R-CNN (Ren et al., NeurIPS 2015) with
the trunk as its backbone and the trunk's fc6/fc7 as its box head, as Fast R-CNN puts AlexNet's
(Girshick, ICCV 2015; the paper's detection test, SPEC section 3).

* Backbone: ``features`` at pool5, both halves' channels side by side (stride 16 for the
  ``paper`` preset, whose pool5 keeps conv5's resolution; 4 for ``small``).
* Proposals: torchvision's region proposal network on that one map, with anchors of the sizes
  the data's objects have (``anchor_sizes``). The paper's Fast R-CNN took selective-search
  proposals, which no maintained library ships; a learnt RPN stands in for them.
* Box head: each proposal's pool5 cells are pooled (RoIAlign) to the extent of fc6's kernel
  (11 x 11 for ``paper``: a 6 x 6 kernel dilated by 2), so each half's fc6 covers them in one
  output, then fc7: Fast R-CNN's RoI pooling to pool5's 6 x 6 before AlexNet's fc6, with the
  trunk's own fc layers. Their BatchNorm keeps the statistics measured on whole images.
* Images: float RGB in [0, 1] at any size; the detector sees them with the shorter side at
  ``side`` and gives boxes at the images' own size.

    model = sb.load("det.safetensors")             # a network with a detector (detect writes it)
    found = model.detect(rgb)                      # boxes, labels, scores for float RGB (3,H,W)

torchvision is imported when a detector is built, so the rest of splitbrain runs without it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Shorter side of the images a detector sees: Fast R-CNN's 600, which enlarges CamVid's
#: 480x360 so that its small objects span more than a cell or two of the trunk's stride.
DETECTION_SIDE = 600
ASPECT_RATIOS = (0.5, 1.0, 2.0)
#: Proposals per image: kept after the RPN (training, scoring), and sampled for the box head
#: (Fast R-CNN's 64 regions per image, a quarter of them objects).
PROPOSALS_TRAIN, PROPOSALS_TEST, BOX_SAMPLES = 600, 300, 64


def anchor_sizes(sides: np.ndarray, count: int = 5) -> tuple[int, ...]:
    """Anchor sizes (pixels) for objects whose square-root areas, at the detector's scale, are
    ``sides``: ``count`` sizes a factor 2 apart, centred on the middle of their range in log
    scale (the 5th to 95th percentile), so the objects sit between anchors."""
    low, high = np.percentile(sides, [5, 95]) if len(sides) else (32.0, 128.0)
    centre = np.sqrt(max(low, 1.0) * max(high, 1.0))
    powers = np.arange(count) - (count - 1) / 2
    return tuple(max(4, int(round(centre * 2.0**p))) for p in powers)


class TrunkBackbone(nn.Module):
    """pool5 of a trunk as torchvision's detectors read a backbone. The trunk is held, not
    owned (its ``SplitBrain`` owns it), so that the detector can live inside that network."""

    def __init__(self, trunk: nn.Module, layer: str = "pool5") -> None:
        super().__init__()
        self._trunk = [trunk]  # a list: not a submodule
        self.layer = layer
        self.out_channels = trunk.layer_channels(layer)
        self.trained = False  # whether gradients flow into the trunk (fine-tuning)

    def forward(self, images: Tensor) -> OrderedDict[str, Tensor]:
        trunk = self._trunk[0]
        return OrderedDict(pool5=trunk.features(images, self.layer, grad=self.trained)[self.layer])


class TrunkBoxHead(nn.Module):
    """Each half's fc6 over a proposal's pooled cells (one output: its kernel covers them),
    then fc7; the halves side by side (see the module)."""

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self._trunk = [trunk]
        towers = [encoder.tower for encoder in trunk.encoders]
        self.splits = [tower.conv_channels for tower in towers]
        fc6 = towers[0].layers["fc6"][0]
        self.extent = (fc6.kernel_size[0] - 1) * fc6.dilation[0] + 1
        self.out_channels = sum(tower.out_channels for tower in towers)

    def forward(self, pooled: Tensor) -> Tensor:
        outputs = []
        towers = [encoder.tower for encoder in self._trunk[0].encoders]
        for tower, part in zip(towers, pooled.split(self.splits, 1), strict=True):
            fc6, fc7 = tower.layers["fc6"], tower.layers["fc7"]
            conv, norm = fc6[0], fc6[1]
            x = F.conv2d(part, conv.weight, conv.bias, dilation=conv.dilation)  # no padding
            x = F.batch_norm(
                x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0,
                norm.eps,
            )  # fmt: skip
            x = fc6[2:](x)
            outputs.append(fc7(x).flatten(1))
        return torch.cat(outputs, 1)


def build_detector(
    trunk: nn.Module, classes: Sequence[str], anchors: Sequence[int], side: int
) -> nn.Module:
    """torchvision's Faster R-CNN on ``trunk`` (a ``SplitBrain``) for ``classes`` (the
    background is added as class 0), its RPN anchored at ``anchors`` pixels, seeing images at
    shorter side ``side`` (``transform.min_size``, which training varies for random scale)."""
    try:
        from torchvision.models.detection import FasterRCNN
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
        from torchvision.models.detection.rpn import AnchorGenerator
        from torchvision.ops import MultiScaleRoIAlign
    except ImportError as error:
        raise ImportError(
            f"detection needs torchvision ({error}); install the detect extra: "
            "pip install 'splitbrain[detect]' with a torchvision built for your torch"
        ) from None

    backbone = TrunkBackbone(trunk)
    head = TrunkBoxHead(trunk)
    generator = AnchorGenerator((tuple(int(a) for a in anchors),), (ASPECT_RATIOS,))
    detector = FasterRCNN(
        backbone,
        min_size=side,
        max_size=8 * side,  # the shorter side decides; panoramas stay whole
        image_mean=[0.0, 0.0, 0.0],  # the trunk reads RGB in [0, 1] and converts it itself
        image_std=[1.0, 1.0, 1.0],
        rpn_anchor_generator=generator,
        rpn_pre_nms_top_n_train=2 * PROPOSALS_TRAIN,
        rpn_post_nms_top_n_train=PROPOSALS_TRAIN,
        rpn_pre_nms_top_n_test=2 * PROPOSALS_TEST,
        rpn_post_nms_top_n_test=PROPOSALS_TEST,
        box_roi_pool=MultiScaleRoIAlign(["pool5"], head.extent, sampling_ratio=2),
        box_head=head,
        box_predictor=FastRCNNPredictor(head.out_channels, len(classes) + 1),
        box_batch_size_per_image=BOX_SAMPLES,
        box_score_thresh=0.01,  # AP counts low-scoring boxes too
        box_detections_per_img=100,
    )
    return detector
