"""One rule for every JSON file the package writes: valid JSON, a NaN or infinity as null.
Every writer goes through ``jsontext.json_text`` (checked on the source with ``ast``), and what
it writes is read back as the NaN it stood for."""

import ast
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import splitbrain as sb
from splitbrain.jsontext import json_text
from splitbrain.segment import SegmentationScores
from splitbrain.weights import read_metadata, read_provenance

PACKAGE = Path(__file__).resolve().parents[2] / "splitbrain"
HELPER = PACKAGE / "jsontext.py"


def strict_json(text: str):
    """``json.loads`` as JavaScript's ``JSON.parse``: a bare NaN or Infinity is an error."""

    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def json_writer_lines(source: str) -> list[int]:
    """The lines of a module's source that use ``json.dump``/``json.dumps``, called on the
    module or imported by name."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        called = isinstance(node, ast.Attribute) and node.attr in ("dump", "dumps")
        called = called and isinstance(node.value, ast.Name) and node.value.id == "json"
        imported = isinstance(node, ast.ImportFrom) and node.module == "json"
        imported = imported and any(a.name in ("dump", "dumps") for a in node.names)
        if called or imported:
            lines.append(node.lineno)
    return sorted(lines)


def test_the_writer_finder_finds_both_spellings():
    source = "import json\nfrom json import dumps\njson.dump({}, f)\njson.loads('1')\n"
    assert json_writer_lines(source) == [2, 3]


def test_every_json_file_of_the_package_is_written_by_json_text():
    writers = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != HELPER
        for line in json_writer_lines(path.read_text())
    ]
    assert not writers, f"JSON written without jsontext.json_text: {writers}"


def test_json_text_writes_non_finite_floats_as_null_at_any_depth():
    data = {"a": [1.5, math.nan, (math.inf, -math.inf)], "b": {"c": np.float64("nan")}, "d": 2}
    assert json_text(data) == '{"a": [1.5, null, [null, null]], "b": {"c": null}, "d": 2}'
    assert strict_json(json_text(data, indent=2)) == strict_json(json_text(data))


def test_json_text_refuses_a_nan_that_default_makes():
    with pytest.raises(ValueError, match="JSON compliant"):
        json_text({"x": object()}, default=lambda _: math.nan)


def test_scores_with_an_absent_class_round_trip_through_json_text():
    scores = SegmentationScores.from_confusion(torch.tensor([[3, 1, 0], [0, 4, 0], [0, 0, 0]]))
    stored = strict_json(json_text(dataclasses.asdict(scores), indent=1))
    assert stored["iou"][2] is None and stored["mean_iou"] == scores.mean_iou
    back = SegmentationScores.from_dict(stored)
    assert math.isnan(back.iou[2]) and back.iou[:2] == scores.iou[:2]


def test_a_weights_file_with_an_undefined_score_holds_json(tmp_path):
    model = sb.build("splitbrain", preset="small", width=0.25)
    path = sb.save(model, tmp_path / "w.safetensors", {"scores": {"mIoU": math.nan, "acc": 40.0}})
    assert strict_json(read_metadata(path)["provenance"])["scores"] == {"mIoU": None, "acc": 40.0}
    assert read_provenance(path)["scores"]["acc"] == 40.0
