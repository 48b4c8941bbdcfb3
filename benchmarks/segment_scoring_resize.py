"""How much a segmentation score depends on how a frame is brought to the segmenter's side:
resized as uint8 (the scoring before it was made the same as ``model.segment``) or as float
(``model.segment``'s and the command's now). Prints a markdown table.

    python benchmarks/segment_scoring_resize.py SEGMENTER --data camvid:../shared/data/camvid \
        --hold-out 0016E5
"""

import argparse

import torch

import splitbrain as sb
from splitbrain.data import segmentation_pairs
from splitbrain.data.transforms import resize_frame, resized_shape
from splitbrain.segment import SegmentationScores, confusion_matrix
from splitbrain.segmentation import seen_at, upsampled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("segmenter", help="a weights file that `splitbrain segment` saved")
    parser.add_argument("--data", required=True, help="camvid:DIR, voc:DIR or masks:DIR")
    parser.add_argument("--hold-out", help="score these sources (default: the val split)")
    args = parser.parse_args()
    model = sb.load(args.segmenter)
    side, layers = model.segment_side(), list(model.config.segmenter[1])
    names = args.hold_out.split(",") if args.hold_out else None
    _, test = segmentation_pairs(args.data, hold_out=names)
    classes = test.num_classes
    confusion = {k: torch.zeros(classes, classes, dtype=torch.int64) for k in ("uint8", "float")}

    def logits(raw: torch.Tensor) -> torch.Tensor:
        features = model.features(raw, layers)
        return model.segmenter([features[n] for n in layers], raw.shape[-2:])

    with torch.no_grad():
        for i in range(len(test)):
            chw = torch.from_numpy(test[i]).permute(2, 0, 1)
            size = resized_shape(*chw.shape[-2:], side, 1)
            as_uint8 = resize_frame(chw[:3], size)[None].float() / 255
            as_float = seen_at(chw[:3][None].float() / 255, side)
            for key, raw in (("uint8", as_uint8), ("float", as_float)):
                predicted = upsampled(logits(raw), chw.shape[-2:]).argmax(1)
                confusion[key] += confusion_matrix(predicted, chw[3], classes)
    print(f"| frame resized as | mIoU | pixel acc | class acc |  ({len(test)} frames, side {side})")
    print("|---|---:|---:|---:|")
    for key, counts in confusion.items():
        s = SegmentationScores.from_confusion(counts)
        print(
            f"| {key} | {s.mean_iou:.2f} | {s.pixel_accuracy:.2f} | {s.mean_class_accuracy:.2f} |"
        )


if __name__ == "__main__":
    main()
