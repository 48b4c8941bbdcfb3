"""Evaluation: probe grids, the linear probe's learning and its hands-off trunk, kNN, mAP,
fine-tuning, baselines and the periodic kNN callback."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score

import splitbrain as sb
from splitbrain.data.base import ArraySource
from splitbrain.errors import SettingError
from splitbrain.evaluate import (
    FinetuneConfig,
    KNNConfig,
    LabelledData,
    ProbeConfig,
    activation_shapes,
    average_precision,
    finetune,
    knn_evaluate,
    knn_scores,
    linear_probe,
    mean_average_precision,
    open_model,
    parse_baseline,
    probe_grids,
    topk_correct,
)
from splitbrain.evaluate.features import FrozenTrunk
from splitbrain.init import kraehenbuehl_init_
from splitbrain.train import TrainConfig, pretrain
from splitbrain.train.callbacks import KNNProbeCallback

CONVS = ["conv1", "conv2", "conv3", "conv4", "conv5"]


def smooth_images(n: int, seed: int) -> np.ndarray:
    """(n, 32, 32, 3) uint8: random 4x4 colour fields upsampled, plus a little noise, so
    that whole images differ (as photos do) rather than only their pixel noise."""
    g = torch.Generator().manual_seed(seed)
    low = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=32, mode="bilinear")
    x = (low + 0.1 * torch.rand(n, 3, 32, 32, generator=g)).clamp(0, 1)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def labelled(train: np.ndarray, y_train, test: np.ndarray, y_test) -> LabelledData:
    classes = [str(c) for c in range(int(max(y_train.max(), y_test.max())) + 1)]
    return LabelledData(
        ArraySource("train", "train", train, y_train, classes),
        ArraySource("test", "test", test, y_test, classes),
        progress=False,
    )


def tiny(seed: int = 0) -> sb.SplitBrain:
    torch.manual_seed(seed)
    return sb.build("splitbrain", preset="small", width=0.125).eval()


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------- grids


@pytest.mark.parametrize(("preset", "side"), [("paper", 180), ("transfer", 227)])
def test_probe_grid_is_the_papers_table(preset, side):
    model = sb.build("splitbrain", preset=preset)
    grids = probe_grids(model, side, [*CONVS, "pool1", "pool2", "pool5"])
    dims = {name: g * g * c for name, (g, c) in grids.items()}
    assert [dims[n] for n in CONVS] == [9600, 9216, 9600, 9600, 9216]
    assert (dims["pool1"], dims["pool2"], dims["pool5"]) == (9600, 9216, 9216)


def test_other_presets_get_the_grid_closest_to_9000_dimensions():
    full = sb.build("splitbrain", preset="small")
    # at full width the rule reproduces the paper's table; fc7 (1024 channels, 8x8) gets 3x3
    grids = probe_grids(full, 32, [*CONVS, "fc7"])
    assert {n: g for n, (g, _) in grids.items()} == {
        "conv1": 10, "conv2": 6, "conv3": 5, "conv4": 5, "conv5": 6, "fc7": 3,
    }  # fmt: skip
    narrow = probe_grids(tiny(), 32, ["conv1", "conv5"])
    assert narrow["conv1"] == (27, 12)  # 27x27x12 = 8,748 beats 28x28x12 = 9,408
    assert narrow["conv5"] == (8, 32)  # capped at the activation's own 8x8: never upsampled


def test_activation_shapes_match_the_real_activations():
    model = tiny()
    real = model.features(torch.rand(2, 3, 32, 32), model.layer_names)
    shapes = activation_shapes(model, 32)
    assert shapes == {n: (x.shape[1], x.shape[2]) for n, x in real.items()}


# ---------------------------------------------------------------------------- linear probe


@pytest.fixture(scope="module")
def linear_task():
    """Images whose label is a linear function (median split of a random projection) of the
    pooled conv5 features of a fixed random network, and that network."""
    train, test = smooth_images(1000, 1), smooth_images(300, 2)
    model = tiny()
    with torch.no_grad():
        pooled = [
            model.features(torch.from_numpy(x).permute(0, 3, 1, 2) / 255.0, "conv5")["conv5"].mean(
                (2, 3)
            )
            for x in (train, test)
        ]
    w = torch.randn(pooled[0].shape[1], generator=torch.Generator().manual_seed(3))
    threshold = (pooled[0] @ w).median()
    y_train, y_test = ((p @ w > threshold).long().numpy() for p in pooled)
    return model, train, y_train, test, y_test


PROBE = {"crop": 32, "resize": 32, "workers": 0, "progress": False, "batch_size": 64}


def test_probe_learns_a_linear_function_of_a_layer_and_not_shuffled_labels(linear_task):
    model, train, y_train, test, y_test = linear_task
    config = ProbeConfig(layers=("conv5",), epochs=10, cache_features=True, **PROBE)
    real = linear_probe(model, labelled(train, y_train, test, y_test), config)
    assert real.top1["conv5"] >= 85.0
    rng = np.random.default_rng(0)
    shuffled = labelled(train, rng.permutation(y_train), test, rng.permutation(y_test))
    control = linear_probe(model, shuffled, config)
    assert 35.0 <= control.top1["conv5"] <= 65.0  # chance for two balanced classes


@pytest.mark.parametrize("cache", [False, True])
def test_probe_leaves_the_trunk_bit_identical(linear_task, cache):
    model, train, y_train, test, y_test = linear_task
    data = labelled(train[:200], y_train[:200], test[:64], y_test[:64])
    before = state(model)
    config = ProbeConfig(layers=("conv1", "conv5"), epochs=1, cache_features=cache, **PROBE)
    result = linear_probe(model, data, config)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]), name
    assert not model.training
    assert result.test_items == 64 and result.train_items == 200
    assert set(result.top1) == {"conv1", "conv5"} and not result.top5  # 2 classes: no top-5


def test_frozen_trunk_ignores_train_mode():
    model = tiny()
    trunk = FrozenTrunk(model, {"conv1": (4, 12)})
    trunk.train()
    assert not any(m.training for m in model.modules())
    out = trunk(torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8))
    assert out["conv1"].shape == (3, 4 * 4 * 12) and not out["conv1"].requires_grad


# ---------------------------------------------------------------------------- kNN


def test_knn_on_separated_clusters_is_perfect():
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(5, 64, generator=g), dim=1)
    labels = torch.arange(5).repeat_interleave(300)
    points = F.normalize(centres[labels] + 0.05 * torch.randn(1500, 64, generator=g), dim=1)
    train, test = points[::2], points[1::2]
    scores = knn_scores(train, labels[::2], test, 5, ks=(20, 200))
    for k in (20, 200):
        assert topk_correct(scores[k], labels[1::2], (1,))[1] == len(test)


def test_knn_votes_are_temperature_weighted():
    train = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]]), dim=1)
    query = torch.tensor([[1.0, 0.0]])
    scores = knn_scores(train, torch.tensor([0, 1, 1]), query, 2, ks=(3,), temperature=0.07)[3]
    assert scores[0, 0] == pytest.approx(np.exp(1 / 0.07), rel=1e-5)
    assert scores[0, 1] == pytest.approx(2 * np.exp(0.6 / 0.07), rel=1e-5)
    assert scores.argmax() == 0  # one close neighbour outvotes two far ones


def test_knn_evaluate_reports_every_k_and_layer(linear_task):
    model, train, y_train, test, y_test = linear_task
    data = labelled(train[:300], y_train[:300], test[:100], y_test[:100])
    config = KNNConfig(("conv1", "conv5"), ks=(5, 20), workers=0, crop=32, resize=32)
    result = knn_evaluate(model, data, config)
    assert set(result.top1) == {5, 20} and set(result.top1[5]) == {"conv1", "conv5"}
    assert result.top1[5]["conv5"] > 60.0 and result.test_items == 100


def test_knn_evaluate_layers_none_is_every_layer_and_default_conv5(linear_task):
    model, train, y_train, test, y_test = linear_task
    data = labelled(train[:100], y_train[:100], test[:40], y_test[:40])
    every = knn_evaluate(model, data, KNNConfig(None, ks=(5,), workers=0, crop=32, resize=32))
    assert list(every.top1[5]) == model.layer_names  # `--layers all`
    default = knn_evaluate(model, data, KNNConfig(ks=(5,), workers=0, crop=32, resize=32))
    assert list(default.top1[5]) == ["conv5"]


# ---------------------------------------------------------------------------- metrics


def test_average_precision_matches_scikit_learn():
    rng = np.random.default_rng(0)
    targets = rng.random((300, 7)) < 0.3
    for scores in (rng.random((300, 7)), rng.integers(0, 5, (300, 7)).astype(float)):  # ties too
        expected = average_precision_score(targets, scores, average=None)
        mean_ap, per_class = mean_average_precision(
            torch.from_numpy(scores), torch.from_numpy(targets.astype(np.int64))
        )
        np.testing.assert_allclose(per_class, expected, rtol=1e-12)
        assert mean_ap == pytest.approx(average_precision_score(targets, scores), rel=1e-12)


def test_map_leaves_out_ignored_items_and_classes_without_positives():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.3]])
    targets = torch.tensor([[-1, 0], [1, 0], [0, 0]])
    mean_ap, per_class = mean_average_precision(scores, targets)
    assert per_class[0] == 1.0 and np.isnan(per_class[1]) and mean_ap == 1.0
    assert average_precision(torch.tensor([0.9, 0.8]), torch.tensor([False, True])) == 0.5


def test_topk_correct():
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
    assert topk_correct(scores, torch.tensor([2, 0]), (1, 2)) == {1: 1, 2: 2}


# ---------------------------------------------------------------------------- baselines


@pytest.fixture
def small_data(linear_task) -> LabelledData:
    _, train, y_train, test, y_test = linear_task
    return labelled(train[:160], y_train[:160], test[:64], y_test[:64])


def test_baseline_specs():
    assert parse_baseline("gaussian:small") == ("gaussian", "small", 1.0)
    assert parse_baseline("init:kraehenbuehl:paper:0.5") == ("kraehenbuehl", "paper", 0.5)
    assert parse_baseline("runs/x/weights.safetensors") is None
    # a SettingError (a ValueError) naming the setting, the spec and what there is
    wrong = {
        "gaussian:tiny": "no preset 'tiny'; the presets are paper, transfer, small, caffe",
        "init:foo:small": "no initialisation 'foo'; the initialisations are gaussian, kraehenbuehl",
        "init:gaussian:small:wide": "the width 'wide' is not a positive number",
        "gaussian:small:0": "the width '0' is not a positive number",
        "gaussian:small:1:2": "expected gaussian:PRESET[:WIDTH] or "
        "init:{gaussian,kraehenbuehl}:PRESET[:WIDTH]",
    }
    for spec, problem in wrong.items():
        with pytest.raises(SettingError) as raised:
            parse_baseline(spec)
        assert (raised.value.setting, str(raised.value)) == (
            "weights",
            f"weights {spec}: {problem}",
        )


def test_gaussian_baseline_has_batchnorm_statistics_from_the_data(small_data):
    name, model = open_model("base=gaussian:small:0.125", small_data)
    assert name == "base" and model.config.preset == "small" and not model.training
    bn = model.encoders[0].tower.layers["conv3"][1]
    assert not torch.equal(bn.running_var, torch.ones_like(bn.running_var))


def test_baselines_are_initialised_at_the_evaluations_geometry(small_data, monkeypatch):
    """32 px images are too small for the paper preset's 180 px crops (more than a 2x
    upscale), but not for an evaluation at 64 px: the baseline uses the evaluation's crops."""
    from splitbrain.evaluate import baselines

    seen = []
    monkeypatch.setattr(baselines, "kraehenbuehl_init_", lambda model, raw, seed: seen.append(raw))
    open_model("init:kraehenbuehl:paper:0.125", small_data, crop=64, resize=64)
    assert seen[0].shape[-2:] == (64, 64)
    _, model = open_model("gaussian:paper:0.125", small_data, crop=64, resize=64)
    assert model.config.preset == "paper" and not model.training


def test_kraehenbuehl_baseline_initialises_from_the_training_images(small_data, monkeypatch):
    """The baseline runs splitbrain.init on a batch of random crops of all 160 training
    images, scaled to [0, 1], and gives the model it initialised, in eval mode."""
    from splitbrain.evaluate import baselines

    seen = []

    def record(model, raw, seed):
        seen.append(raw)
        return kraehenbuehl_init_(model, raw, seed=seed)

    monkeypatch.setattr(baselines, "kraehenbuehl_init_", record)
    name, model = open_model("init:kraehenbuehl:small:0.125", small_data)
    (raw,) = seen
    assert name == "init:kraehenbuehl:small:0.125" and model.config.variant == "splitbrain"
    assert raw.shape == (160, 3, 32, 32) and raw.min() >= 0 and raw.max() <= 1
    assert not model.training
    # the running statistics are those of the batch: conv1's BatchNorm normalises it exactly
    bn = model.encoders[0].tower.layers["conv1"][1]
    z = model.encoders[0].tower.layers["conv1"][0](
        model.encoder_input(model.encoders[0], model.channels(raw))
    )
    torch.testing.assert_close(bn.running_mean, z.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- fine-tuning


def test_finetune_above_a_layer_leaves_the_layers_below_alone(small_data):
    model = tiny()
    before = state(model)
    config = FinetuneConfig(
        freeze_through="conv3", epochs=1, batch_size=32, workers=0, progress=False
    )
    result = finetune(model, small_data, config)
    assert result.head_layer == "fc7" and list(result.scores) == ["top1"]
    assert (result.train_items, result.test_items) == (160, 64)
    correct = result.scores["top1"] * 64 / 100  # top-1 counts whole test images
    assert correct == pytest.approx(round(correct))
    after = model.state_dict()
    for name, tensor in before.items():
        frozen = any(f".layers.{n}." in name for n in ("conv1", "conv2", "conv3"))
        if frozen or ".heads." in name:
            assert torch.equal(tensor, after[name]), name
    assert not torch.equal(before["encoders.0.tower.layers.conv4.0.weight"],
                           after["encoders.0.tower.layers.conv4.0.weight"])  # fmt: skip
    assert not torch.equal(before["encoders.1.tower.layers.fc7.1.running_mean"],
                           after["encoders.1.tower.layers.fc7.1.running_mean"])  # fmt: skip


def test_multilabel_finetune_is_scored_by_map(small_data):
    rng = np.random.default_rng(0)
    y_train = torch.from_numpy(rng.integers(-1, 2, (160, 4)))
    y_test = torch.from_numpy(rng.integers(0, 2, (64, 4)))
    data = LabelledData(small_data.train, small_data.test, progress=False, labelled=False)
    config = FinetuneConfig(head_layer="conv5", epochs=1, batch_size=32, workers=0, progress=False)
    result = finetune(tiny(), data, config, targets=(y_train, y_test))
    assert list(result.scores) == ["mAP", "mAP (11-point)"] and len(result.per_class_ap) == 4
    assert result.scores["mAP"] == pytest.approx(100 * np.mean(result.per_class_ap))


def test_finetuning_the_head_alone_learns_a_linear_function_of_its_layer(linear_task):
    """Labels that are a linear function of the pooled conv5 features: a head fine-tuned on
    the frozen conv5 of that very network learns them (chance is 50%)."""
    model, train, y_train, test, y_test = linear_task
    data = labelled(train[:400], y_train[:400], test[:200], y_test[:200])
    config = FinetuneConfig(
        head_layer="conv5", freeze_through="conv5", epochs=8, lr=0.1, batch_size=32,
        crop=32, resize=32, workers=0, progress=False,
    )  # fmt: skip
    before = state(model)
    result = finetune(model, data, config)
    assert result.scores["top1"] >= 75.0, result.scores
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


# ---------------------------------------------------------------------------- kNN callback


def test_knn_callback_logs_during_pretraining_without_changing_it(tmp_path):
    images = smooth_images(96, 5)
    path = tmp_path / "d.npz"
    np.savez(path, images=images, labels=np.arange(96) % 3)

    def run(out, callbacks):
        config = TrainConfig(
            data=f"npz:{path}", out=str(tmp_path / out), preset="small", width=0.125,
            steps=4, batch_size=8, workers=0, progress=False, checkpoint_every=100,
        )  # fmt: skip
        return sb.load(pretrain(config, callbacks=callbacks)).state_dict()

    callback = KNNProbeCallback.from_spec(
        2, f"npz:{path}", layer="conv3", k=5, train_items=64, test_items=32
    )
    probed, plain = run("probed", [callback]), run("plain", [])
    assert [step for step, _ in callback.history] == [2, 4]
    assert all(0 <= accuracy <= 100 for _, accuracy in callback.history)
    for name in plain:
        assert torch.equal(probed[name], plain[name]), name
    events = list((tmp_path / "probed" / "tensorboard").glob("events.out.tfevents*"))
    assert events and b"knn/top1" in events[0].read_bytes()
