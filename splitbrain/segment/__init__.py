"""Semantic segmentation on a pre-trained network (the paper's transfer to another task):
frozen hypercolumn heads and FCN-32s, trained and scored on CamVid, VOC or any image/mask
folders; saved segmenters that colour photographs of any size.

    from splitbrain.data import open_masks
    from splitbrain.evaluate.engine import compare
    from splitbrain.segment import SegmentConfig, SegmentData, SegmentationTask
    data = SegmentData.scan(open_masks("camvid:DIR", "train"), open_masks("camvid:DIR", "val"),
                            0.01, progress=True)
    task = SegmentationTask(data, SegmentConfig(), {"data": "camvid:DIR"})
    comparison = compare(task, ["W.safetensors", "gaussian:paper:0.5"], "runs/segment")

See docs/SEGMENTATION.md for the protocol, the command line and measured results.
"""

from .metrics import SegmentationScores, confusion_matrix
from .predict import segment_files, segment_photo
from .run import SegmentationTask, SegmentData
from .train import SegmentConfig, SegmentResult, median_frequency_weights, train_segmenter

__all__ = [
    "SegmentConfig",
    "SegmentData",
    "SegmentResult",
    "SegmentationScores",
    "SegmentationTask",
    "confusion_matrix",
    "median_frequency_weights",
    "segment_files",
    "segment_photo",
    "train_segmenter",
]
