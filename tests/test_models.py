"""Towers, presets, the split-brain model, variants, losses and the objective."""

import math

import pytest
import torch

import splitbrain as sb
from splitbrain.losses import classification_loss, regression_loss
from splitbrain.models import AlexNet, count_parameters
from splitbrain.objective import downsample
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
    model = sb.build(variant, preset="small", width=0.25)
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
    assert set(logs) >= {"loss"}


def test_joint_network_zeroes_the_channels_a_task_does_not_see():
    model = sb.build("joint", preset="small", width=0.25)
    tasks = model.config.encoders[0].all_tasks
    assert [t.visible for t in tasks] == [(0,), (1, 2)]
    assert [t.targets for t in tasks] == [("ab",), ("L",)]
    full = sb.build("joint-full", preset="small", width=0.25).config.encoders[0].all_tasks
    assert [t.weight for t in full] == pytest.approx([1 / 3] * 3)


def test_soft_encoding_and_rebalancing_objective_runs():
    model = sb.build("l2ab-cl", preset="small", width=0.25)
    weights = torch.ones(313)
    loss, logs = sb.Objective(soft=True, rebalance={"ab": weights})(model, torch.rand(2, 3, 32, 32))
    assert loss.item() > 0 and "L->ab/ab/accuracy" in logs


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
