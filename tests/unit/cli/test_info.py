"""``splitbrain info``: a weights file's provenance readable, floats rounded, nested entries
on indented lines rather than Python's reprs, whatever keys the file holds."""

import math

import splitbrain as sb
from splitbrain.cli import main

PROVENANCE = {
    "segmented from": "runs/demo/weights.safetensors",
    "scored on": "camvid:DIR val, 101 frames",
    "trial": "--max-items 16",
    "segment": {"head": "fcn32s", "epochs": 20.0, "trained": {"lr": 0.001, "above": "conv3"}},
    "classes": ["Sky", "Road"],
    "palette": [[128, 128, 128], [128, 64, 128]],
    "scores": {"mIoU": 19.744173587976743, "pixel acc": 45.912, "class acc": math.nan},
    "seconds": 12345.6,
}


def test_info_shows_provenance_readably(tmp_path, capsys):
    path = sb.save(sb.build("splitbrain", preset="small", width=0.25), tmp_path / "w.safetensors",
                   PROVENANCE)  # fmt: skip
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    expected = """\
  segmented from: runs/demo/weights.safetensors
  scored on: camvid:DIR val, 101 frames
  trial: --max-items 16
  segment:
    head: fcn32s
    epochs: 20
    trained:
      lr: 0.001
      above: conv3
  classes: Sky, Road
  palette: [128, 128, 128], [128, 64, 128]
  scores:
    mIoU: 19.74
    pixel acc: 45.91
    class acc: -
  seconds: 12346
  geometry:
    preset: small
    resize: 36
    crop: 32
  decoding:
    decode: annealed
    temperature: 0.38
"""
    assert out.endswith(expected), out
    assert "{" not in out and "'" not in out
