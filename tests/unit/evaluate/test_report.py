"""Reports: the JSON of a table with an undefined score is valid JSON, and a table of one
column is drawn as bars, not as lines of one point."""

import dataclasses
import json
import math

import pytest
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from splitbrain.evaluate.report import Table, plot_figure, write_report
from splitbrain.segment import SegmentationScores


def strict_json(text: str):
    """``json.loads`` as JavaScript's ``JSON.parse``: a bare NaN or Infinity is an error."""

    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_strict_json_refuses_what_python_writes_for_nan():
    with pytest.raises(ValueError, match="not JSON: NaN"):
        strict_json(json.dumps([math.nan]))


def test_a_report_with_an_absent_class_is_json_and_its_scores_read_back_as_nan(tmp_path):
    # class 2 is neither true nor predicted anywhere: its IoU and accuracy are undefined
    scores = SegmentationScores.from_confusion(torch.tensor([[3, 1, 0], [0, 4, 0], [0, 0, 0]]))
    assert math.isnan(scores.iou[2]) and math.isnan(scores.class_accuracy[2])
    classes = ["road", "sky", "pole"]
    table = Table("IoU (%)", classes, {"fcn": dict(zip(classes, scores.iou, strict=True))})
    record = {"name": "fcn", "scores": {"fcn32s": dataclasses.asdict(scores)}}
    paths = write_report(tmp_path, "segment", "a title", [table], {"models": [record]})
    written = strict_json(paths["json"].read_text())
    assert written["tables"][0]["rows"]["fcn"]["pole"] is None
    stored = written["models"][0]["scores"]["fcn32s"]
    assert stored["iou"][2] is None and stored["class_accuracy"][2] is None
    back = SegmentationScores.from_dict(stored)
    assert math.isnan(back.iou[2]) and math.isnan(back.class_accuracy[2])
    assert back.iou[:2] == scores.iou[:2] and back.mean_iou == scores.mean_iou


def test_a_table_of_one_column_is_drawn_as_one_bar_per_model():
    table = Table("mIoU (%)", ["fcn32s"], {"a": {"fcn32s": 20.5}, "b": {"fcn32s": 31.0}})
    axes = plot_figure([table], "segmentation").axes[0]
    bars = [p for p in axes.patches if isinstance(p, Rectangle)]
    assert [bar.get_height() for bar in bars] == [20.5, 31.0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["a", "b"]
    assert not [line for line in axes.get_lines() if len(line.get_xdata()) > 0]


def test_a_table_of_several_columns_is_drawn_as_one_line_per_model():
    rows = {"a": {"conv1": 10.0, "conv2": 20.0}, "b": {"conv1": 15.0}}
    axes = plot_figure([Table("top-1 (%)", ["conv1", "conv2"], rows)], "probe").axes[0]
    lines = [line for line in axes.get_lines() if isinstance(line, Line2D)]
    assert [line.get_label() for line in lines] == ["a", "b"]
    assert list(lines[0].get_ydata()) == [10.0, 20.0]
    assert lines[1].get_ydata()[0] == 15.0 and math.isnan(lines[1].get_ydata()[1])
    assert not axes.patches
