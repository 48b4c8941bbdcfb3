"""Towers, presets, the split-brain model, variants, losses and the objective."""

import math

import pytest
import torch

import splitbrain as sb
from splitbrain.losses import classification_loss, regression_loss
from splitbrain.models import AlexNet, count_parameters
from splitbrain.objective import downsample, target_histograms
from splitbrain.quantize import SoftTargets, ab_quantizer


@pytest.mark.parametrize(
    ("preset", "side", "grid"), [("paper", 180, 12), ("transfer", 227, 1), ("small", 32, 8)]
)
def test_preset_output_grids(preset, side, grid):
    model = sb.build("splitbrain", preset=preset).eval()
    ab, L = model(torch.rand(2, 3, side, side))
    assert ab["ab"].shape == (2, 313, grid, grid)
    assert L["L"].shape == (2, 50, grid, grid)


def test_small_preset_grid_is_a_quarter_of_the_side():
    model = sb.build("splitbrain", preset="small", width=0.25)
    assert [model.output_size(s) for s in (32, 64, 96)] == [8, 16, 24]


def test_paper_preset_layer_sizes():
    model = sb.build("splitbrain", preset="paper").eval()
    feats = model.features(torch.rand(1, 3, 180, 180), model.layer_names)
    sizes = {k: (v.shape[1], v.shape[-1]) for k, v in feats.items()}
    assert sizes == {
        "conv1": (96, 45),
        "pool1": (96, 23),
        "conv2": (256, 23),
        "pool2": (256, 12),
        "conv3": (384, 12),
        "conv4": (384, 12),
        "conv5": (256, 12),
        "pool5": (256, 12),
        "fc6": (4096, 12),
        "fc7": (4096, 12),
    }


def test_transfer_preset_reaches_fc7_at_1x1():
    model = sb.build("splitbrain", preset="transfer").eval()
    feats = model.features(torch.rand(2, 3, 227, 227), ["pool5", "fc7"])
    assert feats["pool5"].shape == (2, 256, 6, 6)
    assert feats["fc7"].shape == (2, 4096, 1, 1)


def test_halves_hold_half_the_parameters_of_a_full_tower():
    """Group-2 equivalence: two half-width towers have half the weights of one full tower,
    up to conv1, whose input channels differ (1 and 2 versus 3)."""
    model = sb.build("splitbrain", preset="paper")
    towers = [e.tower for e in model.encoders]
    full = AlexNet(in_channels=3, width=1.0, preset="paper")

    def without_conv1(t):
        return count_parameters(t) - count_parameters(t.layers["conv1"])

    assert sum(without_conv1(t) for t in towers) * 2 == without_conv1(full)
    conv1 = [t.layers["conv1"][0].weight.shape for t in towers]
    assert conv1 == [(48, 1, 11, 11), (48, 2, 11, 11)]
    assert full.layers["conv1"][0].weight.shape == (96, 3, 11, 11)


def test_batchnorm_after_every_conv_without_affine():
    tower = AlexNet(3, preset="small")
    blocks = [m for m in tower.layers.values() if isinstance(m, torch.nn.Sequential)]
    assert len(blocks) == 7
    for block in blocks:
        conv, bn, _ = block
        assert conv.bias is None and isinstance(bn, torch.nn.BatchNorm2d) and not bn.affine


def test_features_concatenate_both_halves():
    model = sb.build("splitbrain", preset="small", width=0.5).eval()
    rgb = torch.rand(2, 3, 32, 32)
    feats = model.features(rgb, ["conv1", "conv5"])
    lab = sb.color.rgb_to_lab(rgb)
    first = model.encoders[0].tower(lab[:, :1] - 50, ["conv5"])["conv5"]
    assert feats["conv5"].shape == (2, 128, 8, 8)
    assert torch.equal(feats["conv5"][:, :64], first)


def test_unknown_names_give_clear_errors():
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        sb.build("nope")
    with pytest.raises(ValueError, match="unknown preset"):
        sb.build("splitbrain", preset="huge")
    model = sb.build("splitbrain", preset="small", width=0.25)
    with pytest.raises(ValueError, match="unknown layers"):
        model.features(torch.rand(1, 3, 32, 32), ["conv9"])


def test_cross_entropy_of_uniform_logits_is_log_q():
    logits = torch.zeros(2, 313, 4, 4)
    target = torch.randint(0, 313, (2, 4, 4))
    assert torch.isclose(classification_loss(logits, target), torch.tensor(math.log(313)))
    soft = torch.softmax(torch.randn(2, 313, 4, 4), 1)
    assert torch.isclose(classification_loss(logits, soft), torch.tensor(math.log(313)))
    sparse = SoftTargets(torch.randint(0, 313, (2, 5, 4, 4)), torch.full((2, 5, 4, 4), 0.2))
    assert torch.isclose(classification_loss(logits, sparse), torch.tensor(math.log(313)))


def test_sparse_and_dense_soft_targets_give_the_same_loss():
    logits = torch.randn(2, 313, 3, 3)
    values = torch.empty(2, 2, 3, 3).uniform_(-60, 60)
    sparse = ab_quantizer().encode_soft(values)
    dense = sparse.dense(313)
    assert torch.isclose(classification_loss(logits, sparse), classification_loss(logits, dense))


def test_masks_remove_positions_from_the_losses():
    pred, target = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[:, :2] = True
    changed = target.clone()
    changed[:, :, 2:] += 100.0
    assert regression_loss(pred, target, mask) == regression_loss(pred, changed, mask)
    assert torch.isclose(
        regression_loss(pred, target), 0.5 * (pred - target).square().sum(1).mean()
    )
    logits = torch.randn(1, 5, 4, 4)
    hard = torch.randint(0, 5, (1, 4, 4))
    other = hard.clone()
    other[:, 2:] = (other[:, 2:] + 1) % 5
    assert classification_loss(logits, hard, mask=mask) == classification_loss(
        logits, other, mask=mask
    )


def test_downsample_averages_valid_pixels_only():
    channels = torch.arange(16.0).view(1, 1, 4, 4)
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    valid[0, 0, 0] = False
    means, cells = downsample(channels, 2, valid)
    assert means[0, 0, 0, 0] == pytest.approx((1 + 4 + 5) / 3)
    assert cells.all()
    valid[0, :2, :2] = False
    assert not downsample(channels, 2, valid)[1][0, 0, 0]


@pytest.mark.parametrize("variant", [v for v in sb.VARIANTS if v != "gaussian"])
def test_every_variant_learns_a_fixed_batch(variant):
    torch.manual_seed(0)
    model = sb.build(variant, preset="small", width=0.25).train()
    rgb = torch.rand(8, 3, 32, 32)
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    objective = sb.Objective()
    losses = []
    for _ in range(20):
        loss, logs = objective(model, rgb)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses
    # one loss per head (and a pixel accuracy per classification head), weighted into the total
    heads = {
        f"{e.half.name}/{t.name}": (task.weight * t.weight, t.loss)
        for e in model.config.encoders
        for task in e.all_tasks
        for t in e.half.targets
        if t.name in task.targets
    }
    expected = {"loss"} | {f"{h}/loss" for h in heads}
    expected |= {f"{h}/accuracy" for h, (_, kind) in heads.items() if kind == "cl"}
    assert set(logs) == expected
    total = sum(weight * logs[f"{h}/loss"] for h, (weight, _) in heads.items())
    torch.testing.assert_close(logs["loss"], total)
    torch.testing.assert_close(logs["loss"], loss.detach())


def test_joint_network_zeroes_the_channels_a_task_does_not_see():
    model = sb.build("joint", preset="small", width=0.25)
    tasks = model.config.encoders[0].all_tasks
    assert [t.visible for t in tasks] == [(0,), (1, 2)]
    assert [t.targets for t in tasks] == [("ab",), ("L",)]
    full = sb.build("joint-full", preset="small", width=0.25).config.encoders[0].all_tasks
    assert [t.weight for t in full] == pytest.approx([1 / 3] * 3)


def test_rebalancing_multiplies_each_position_by_the_weight_of_its_bin():
    """A flat colour puts every grid cell in one ab bin b: rebalancing weights w scale the
    loss by exactly w[b], whatever the other bins' weights, with hard and soft targets."""
    torch.manual_seed(0)
    model = sb.build("l2ab-cl", preset="small", width=0.25)
    rgb = torch.tensor([0.8, 0.3, 0.2]).view(1, 3, 1, 1).expand(2, 3, 32, 32).contiguous()
    counts = target_histograms(model, rgb)
    (b,) = counts["ab"].nonzero().flatten().tolist()
    assert counts["ab"][b] == 2 * 8 * 8 and set(counts) == {"ab"}
    weights = torch.full((313,), 7.0)
    weights[b] = 2.5
    for soft in (False, True):
        plain, _ = sb.Objective(soft=soft)(model, rgb)
        weighted, _ = sb.Objective(soft=soft, rebalance={"ab": weights})(model, rgb)
        torch.testing.assert_close(weighted, 2.5 * plain)


def test_models_are_built_and_loaded_in_eval_mode_and_features_change_nothing(tmp_path):
    model = sb.build("splitbrain", preset="small", width=0.25)
    loaded = sb.load(sb.save(model, tmp_path / "w.safetensors"))
    assert not model.training and not loaded.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rgb = torch.rand(4, 3, 32, 32)
    frozen = model.features(rgb, "conv5")["conv5"]
    assert not frozen.requires_grad
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    # eval mode: an image's features do not depend on the rest of its batch
    torch.testing.assert_close(frozen[:2], model.features(rgb[:2], "conv5")["conv5"])
    graph = model.features(rgb, "conv5", grad=True)["conv5"]
    assert graph.requires_grad
    graph.sum().backward()
    assert model.encoders[0].tower.layers["conv1"][0].weight.grad is not None


def test_missing_depth_never_leaks_into_the_loss():
    """Changing only the HHA values where depth is missing leaves the loss unchanged."""
    torch.manual_seed(0)
    model = sb.build("splitbrain", preset="small", split="rgbd", width=0.125)
    rgb, hha = torch.rand(4, 3, 32, 32), 255 * torch.rand(4, 3, 32, 32)
    valid = torch.rand(4, 32, 32) > 0.3
    valid[0, :16] = False  # a whole missing region, several grid cells
    objective = sb.Objective()
    first, _ = objective(model, torch.cat([rgb, hha], 1), valid)
    changed = torch.where(valid.unsqueeze(1), hha, 255 * torch.rand_like(hha))
    second, _ = objective(model, torch.cat([rgb, changed], 1), valid)
    assert torch.equal(first, second)
    unmasked, _ = objective(model, torch.cat([rgb, changed], 1))
    assert not torch.equal(first, unmasked)


def test_rgbd_batches_decode_rgb_hha_and_validity():
    space = sb.splits.rgbd_split().space
    batch = torch.randint(0, 256, (2, 7, 4, 4), dtype=torch.uint8)
    raw, valid = space.decode_batch(batch)
    assert raw.shape == (2, 6, 4, 4)
    assert torch.allclose(raw[:, :3], batch[:, :3].float() / 255)
    assert torch.equal(raw[:, 3:], batch[:, 3:6].float())
    assert torch.equal(valid, batch[:, 6] > 0)
