"""Object detection on a pre-trained network (the paper's last transfer test): torchvision's
Faster R-CNN on the split-brain trunk, trained and scored on COCO-format or VOC boxes, frozen or
fine-tuned; saved detectors that find objects in photographs of any size.

    from splitbrain.data.boxes import detection_pairs
    from splitbrain.evaluate.data import ScoredData
    from splitbrain.evaluate.engine import compare
    from splitbrain.detect import DetectConfig, DetectionTask
    data = ScoredData.scan(*detection_pairs("coco:DIR"), 0.01, progress=True)
    task = DetectionTask(data, DetectConfig(), {"data": "coco:DIR"})
    comparison = compare(task, ["W.safetensors", "init:kraehenbuehl:paper:0.5"], "runs/detect")

See docs/DETECTION.md for the protocol, the command line and measured results. torchvision and
pycocotools (the ``detect`` extra) are imported when a detector is built or scored.
"""

from .metrics import Detections, DetectionScores, detection_scores
from .predict import detect_files, detect_photo
from .run import DetectionTask
from .train import DetectConfig, DetectResult, train_detector

__all__ = [
    "DetectConfig",
    "DetectResult",
    "DetectionScores",
    "DetectionTask",
    "Detections",
    "detect_files",
    "detect_photo",
    "detection_scores",
    "train_detector",
]
