"""The Table 2 reproduction's bookkeeping (rows, resumption, recipe checks, claims), run end
to end on a tiny npz; and its command line, benchmarks/paper_table.py."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import splitbrain.reproduce.paper_table as table
from splitbrain.runs.checkpoints import checkpoints

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "benchmarks" / "results"


@pytest.fixture
def tiny(tmp_path) -> table.Recipe:
    """The full recipe on 64 train and 32 test images of 32 px, one epoch of everything."""
    rng = np.random.default_rng(0)
    for name, n in (("train", 64), ("test", 32)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        np.savez(tmp_path / f"{name}.npz", images=images, labels=np.arange(n) % 3)
    return dataclasses.replace(
        table.full_recipe(), data=f"npz:{tmp_path / 'train.npz'}",
        test_data=f"npz:{tmp_path / 'test.npz'}", width=0.125, epochs=1, batch_size=32,
        probe_epochs=1,
    )  # fmt: skip


def _build(recipe, rows, tmp_path):
    return table.build_table(
        recipe, rows, tmp_path / "t.json", tmp_path / "runs", progress=False, workers=0
    )


def test_rows_are_written_and_not_run_again(tiny, tmp_path, monkeypatch):
    _build(tiny, table.chosen_rows("gaussian,l2ab-cl", table.PAPER), tmp_path)
    record = json.loads((tmp_path / "t.json").read_text())
    assert set(record["rows"]) == {"gaussian", "l2ab-cl"}
    for row in record["rows"].values():
        assert list(row["top1"]) == list(table.LAYERS)
        assert all(0 <= v <= 100 for v in row["top1"].values())
        assert row["probe_test_items"] == 32
    assert record["rows"]["l2ab-cl"]["pretrain_seconds"] > 0
    assert record["rows"]["gaussian"]["pretrain_seconds"] == 0
    assert record["recipe"]["width"] == 0.125
    assert record["paper_imagenet"]["splitbrain"]["conv3"] == 35.4
    key = table.Recipe(**record["recipe"]).key()
    assert (tmp_path / "runs" / key / "l2ab-cl" / "weights.safetensors").exists()
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert "| `l2ab-cl` | L→ab (cl) |" in (tmp_path / "t.md").read_text()

    ran = []
    fake = {**_row(1, 2, 3, 4, 5), "pretrain_seconds": 0, "probe_seconds": 0}
    monkeypatch.setattr(table, "run_row", lambda row, *a, **k: ran.append(row) or fake)
    _build(tiny, ["gaussian", "l2ab-cl", "ab2l-cl"], tmp_path)
    assert ran == ["ab2l-cl"]  # the finished rows were read back, not run again
    again = json.loads((tmp_path / "t.json").read_text())["rows"]
    assert again["l2ab-cl"] == record["rows"]["l2ab-cl"] and again["ab2l-cl"]["top1"]["conv5"] == 5


def test_a_resumed_pretraining_reports_the_time_of_every_sitting(tiny, tmp_path):
    recipe = table.Recipe(
        data=tiny.data, test_data=None, width=0.125, epochs=1, batch_size=32, probe_epochs=1
    )
    _, first = table.pretrain_row("l2ab-cl", recipe, tmp_path / "runs", False, 0)
    ((_, last),) = checkpoints(tmp_path / "runs" / recipe.key() / "l2ab-cl" / "checkpoints")
    checkpoint = torch.load(last, weights_only=False)
    (key,) = [k for k in checkpoint["callbacks"] if "WallClock" in k]
    assert 0 < checkpoint["callbacks"][key]["seconds"] <= first["pretrain_seconds"]
    checkpoint["callbacks"][key]["seconds"] = 1000.0  # as if the first sitting took 1000 s
    torch.save(checkpoint, last)
    _, second = table.pretrain_row("l2ab-cl", recipe, tmp_path / "runs", False, 0)
    assert not first["resumed"] and second["resumed"]
    assert 1000 < second["pretrain_seconds"] < 1000 + 60
    other = dataclasses.replace(recipe, lr=1e-4)
    assert other.key() != recipe.key()  # another recipe never resumes this one's run


def test_quick_recipe_and_root_relative_paths():
    quick = table.quick_recipe()
    assert quick.data == "npz:../shared/data/cifar10/exact_train.npz"
    absolute = table.from_root(quick.data, ROOT)
    exact_train = (ROOT.parent / "shared/data/cifar10/exact_train.npz").resolve()
    assert absolute == f"npz:{exact_train}"
    assert table.from_root("npz:/abs/x.npz", ROOT) == "npz:/abs/x.npz"
    assert table.from_root("skimage:", ROOT) == "skimage:"
    assert table.QUICK_ROWS == ("gaussian", "l2ab-cl", "ab2l-cl", "splitbrain")


def test_a_different_recipe_is_refused(tiny, tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"recipe": {"width": 9}, "rows": {}}))
    with pytest.raises(table.TableError, match="different recipe"):
        _build(tiny, list(table.PAPER), tmp_path)


def test_unknown_rows_are_refused_by_the_library_and_the_script():
    with pytest.raises(table.TableError, match="unknown splitbrian"):
        table.chosen_rows("splitbrian", table.PAPER)
    with pytest.raises(table.TableError, match="none given"):
        table.chosen_rows(",", table.PAPER)
    assert table.chosen_rows(None, table.QUICK_ROWS) == list(table.QUICK_ROWS)
    script = ROOT / "benchmarks" / "paper_table.py"
    done = subprocess.run([sys.executable, script, "--rows", "splitbrian"], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"paper_table.py: rows: unknown splitbrian; choose from {', '.join(table.PAPER)}"
    )


def _row(*values):
    return {"top1": dict(zip(("conv1", "conv2", "conv3", "conv4", "conv5"), values, strict=True))}


def test_claims_give_verdicts_with_margins():
    rows = {
        "gaussian": _row(50, 55, 56, 55, 53),
        "lab2lab": _row(50, 55, 57, 56, 54),
        "lab2lab-drop50": _row(50, 55, 57, 59, 54),
        "l2ab-cl": _row(50, 58, 60, 61, 60),
        "l2ab-reg": _row(50, 57, 61, 60, 59),
        "ab2l-cl": _row(50, 56, 58, 58, 57),
        "splitbrain": _row(52, 60, 62, 62, 59),
    }
    verdicts = dict(table.claims(rows))
    halves = verdicts["split-brain (cl,cl) beats its halves (L→ab cl, ab→L cl)"]
    assert halves.startswith("not reproduced") and "conv5 -1.0" in halves
    assert "conv3 +2.0" in halves
    assert verdicts["cl beats reg for L→ab"].startswith("not reproduced")
    assert verdicts["L→ab beats ab→L (cl)"].startswith("reproduced")
    auto = [v for k, v in verdicts.items() if k.startswith("autoencoders")][0]
    assert auto.startswith("not reproduced") and "lab2lab-drop50 +4.0 / +1.0" in auto
    everything = "split-brain (cl,cl) beats its halves and every other aggregation"
    assert verdicts[everything] == "pending"  # joint, ensemble, ... are missing
    quick = dict(table.claims(rows, list(table.QUICK_ROWS)))
    assert quick[everything].startswith("not in this table (joint, joint-full")


def test_markdown_puts_the_papers_numbers_beside_ours():
    rows = {"splitbrain": {**_row(52, 60, 62, 62, 59), "pretrain_seconds": 60, "probe_seconds": 30}}
    text = table.markdown(rows, table.full_recipe(), list(table.PAPER))
    line = next(
        x for x in text.splitlines() if x.startswith("| `splitbrain` | Split-Brain (cl,cl)")
    )
    assert "**62.0**" in line and "35.4 | 35.2 | 32.8 |" in line
    assert "| `joint` | (L,ab)→(ab,L) | … |" in text
    assert "| `splitbrain` | 1.0 min | 0.5 min |" in text


def test_knn_rows_and_recipes_that_predate_the_new_fields(tiny, tmp_path):
    committed = json.loads((RESULTS / "paper_table_cifar10.json").read_text())["recipe"]
    assert table.full_recipe().as_dict() == committed  # new fields at their old values: same key
    imagenette = table.imagenette_recipe()
    assert imagenette.preset == "paper" and imagenette.resize == 200 and imagenette.knn
    assert {"resize", "knn", "precision"} <= set(imagenette.as_dict())
    assert table.train_config("splitbrain", imagenette, tmp_path, False, 0).init == "kraehenbuehl"
    from_gaussian = dataclasses.replace(imagenette, init="gaussian")
    assert "init" not in from_gaussian.as_dict()  # the default: older tables keep their key
    older = RESULTS / "paper_table_imagenette_gaussian_init.json"
    assert json.loads(older.read_text())["recipe"] == from_gaussian.as_dict()

    recipe = dataclasses.replace(
        table.Recipe(**table.full_recipe().as_dict()),
        data=tiny.data, test_data=tiny.test_data, width=0.125, probe_epochs=1, resize=40, knn=True,
    )  # fmt: skip
    data = table.LabelledData.open(recipe.data, recipe.test_data, progress=False)
    row = table.run_row("gaussian", recipe, data, tmp_path / "runs", False, 0)
    assert list(row["knn_top1"]) == list(table.LAYERS)
    assert all(0 <= v <= 100 for v in row["knn_top1"].values())
    text = table.markdown({"gaussian": row}, recipe, ["gaussian"])
    assert "| row | kNN k=20 conv1 | conv2 | conv3 | conv4 | conv5 |" in text
    assert (
        "| split-brain (cl,cl) beats random weights (Gaussian) | not in this table (splitbrain) |"
        in text
    )
