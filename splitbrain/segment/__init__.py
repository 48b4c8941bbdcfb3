"""Semantic segmentation on a pre-trained network (the paper's transfer to another task):
frozen hypercolumn heads and FCN-32s, trained and scored on CamVid, VOC or any image/mask
folders; saved segmenters that colour photographs of any size.

    from splitbrain.data import segmentation_pairs
    from splitbrain.evaluate.data import ScoredData
    from splitbrain.evaluate.engine import compare
    from splitbrain.segment import SegmentConfig, SegmentationTask
    data = ScoredData.scan(*segmentation_pairs("camvid:DIR"), 0.01, progress=True)
    task = SegmentationTask(data, SegmentConfig(), {"data": "camvid:DIR"})
    comparison = compare(task, ["W.safetensors", "gaussian:paper:0.5"], "runs/segment")

See docs/SEGMENTATION.md for the protocol, the command line and measured results.
"""

from .metrics import SegmentationScores, confusion_matrix
from .predict import segment_files, segment_photo
from .run import SegmentationTask
from .train import SegmentConfig, SegmentResult, median_frequency_weights, train_segmenter

__all__ = [
    "SegmentConfig",
    "SegmentResult",
    "SegmentationScores",
    "SegmentationTask",
    "confusion_matrix",
    "median_frequency_weights",
    "segment_files",
    "segment_photo",
    "train_segmenter",
]
