"""The data-dependent initialisation of Krähenbühl et al. (splitbrain.init)."""

import copy
import logging
import math

import pytest
import torch
import torch.nn.functional as F

import splitbrain as sb
from splitbrain.init import _kmeans, kraehenbuehl_init_

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These are small problems: on a shared two-core machine, intra-op threads fighting
    other processes cost far more than they give."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def photos(names: tuple[str, ...], count: int, side: int = 32, seed: int = 0) -> torch.Tensor:
    """``count`` random crops (3 x side x side, RGB in [0, 1]) of real photographs shipped
    with scikit-image, each crop 3x the side (at most the photo's) and area-downsampled."""
    gen = torch.Generator().manual_seed(seed)
    images = [
        torch.from_numpy(getattr(skimage_data, n)()).permute(2, 0, 1).float() / 255 for n in names
    ]
    out = []
    for i in range(count):
        image = images[i % len(images)]
        crop = min(3 * side, *image.shape[1:])
        top = int(torch.randint(image.shape[1] - crop + 1, (1,), generator=gen))
        left = int(torch.randint(image.shape[2] - crop + 1, (1,), generator=gen))
        patch = image[None, :, top : top + crop, left : left + crop]
        out.append(F.interpolate(patch, size=side, mode="area"))
    return torch.cat(out)


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return photos(("astronaut", "coffee"), 24)


@pytest.fixture(scope="module")
def held_out() -> torch.Tensor:
    return photos(("chelsea", "rocket"), 16, seed=1)


def rgbd(raw: torch.Tensor) -> torch.Tensor:
    """RGB plus a stand-in HHA (0..255) for the rgbd split's raw layout."""
    return torch.cat([raw, 255 * raw.flip(1)], 1)


def bn_outputs(model: sb.SplitBrain, raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every BatchNorm's output on ``raw`` with the model in eval mode (cloned: the ReLU
    after it works in place)."""
    found, hooks = {}, []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            hooks.append(
                module.register_forward_hook(
                    lambda m, i, o, n=name: found.__setitem__(n, o.clone())
                )
            )
    model.eval()
    with torch.no_grad():
        model(raw)
    for hook in hooks:
        hook.remove()
    return found


def gradient_ratios(model: sb.SplitBrain, raw: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """Per encoder, ||grad W|| / ||W|| of every conv (heads included) for a random linear
    readout of the outputs, BatchNorm in train mode, on a copy of the model: measured
    independently of the module under test."""
    model = copy.deepcopy(model).train()
    gen = torch.Generator().manual_seed(seed)
    channels = model.channels(raw)
    ratios = []
    for encoder in model.encoders:
        convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
        outputs = encoder(model.encoder_input(encoder, channels))
        loss = sum((torch.randn(o.shape, generator=gen) * o).sum() for o in outputs.values())
        grads = torch.autograd.grad(loss, [c.weight for c in convs])
        ratios.append(
            torch.stack(
                [g.norm() / c.weight.detach().norm() for g, c in zip(grads, convs, strict=True)]
            )
        )
    return ratios


def spread(ratios: torch.Tensor) -> float:
    return float(ratios.max() / ratios.min())


@pytest.fixture(scope="module")
def lab(batch) -> dict[bool, tuple[sb.SplitBrain, dict[str, float]]]:
    """The split-brain model (small preset, width 0.25) initialised on ``batch`` without and
    with the between-layer step: rescale flag -> (model, diagnostics)."""
    out = {}
    for rescale in (False, True):
        model = sb.build("splitbrain", preset="small", width=0.25)
        out[rescale] = model, kraehenbuehl_init_(model, batch, rescale_between_layers=rescale)
    return out


@pytest.fixture(scope="module")
def rgbd_model(batch) -> tuple[sb.SplitBrain, dict[str, float]]:
    """The RGB-D split-brain model (F_HHA with two fc6/fc7 branches), initialised."""
    model = sb.build("splitbrain", preset="small", width=0.25, split="rgbd")
    return model, kraehenbuehl_init_(model, rgbd(batch))


def check_normalised(outputs: dict[str, torch.Tensor]) -> None:
    for name, out in outputs.items():
        mean = out.mean(dim=(0, 2, 3))
        std = out.std(dim=(0, 2, 3), unbiased=False)
        assert mean.abs().max() < 1e-3, name
        assert (std - 1).abs().max() < 1e-2, name


def test_eval_mode_batchnorm_outputs_are_normalised_on_the_batch(batch, lab, rgbd_model):
    """The untrained model in eval mode gives zero-mean, unit-variance BN outputs per channel
    at every layer (RGB-D branches included) on the batch it was initialised with, with or
    without the between-layer step."""
    for (model, _), raw in ((lab[False], batch), (lab[True], batch), (rgbd_model, rgbd(batch))):
        outputs = bn_outputs(model, raw)
        assert len(outputs) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        check_normalised(outputs)


def test_heads_start_with_zero_mean_unit_variance_outputs(batch, lab):
    model, _ = lab[True]
    with torch.no_grad():
        predictions = model.eval()(batch)
    for per_encoder in predictions:
        for name, out in per_encoder.items():
            assert out.mean(dim=(0, 2, 3)).abs().max() < 0.02, name
            assert (out.std(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 0.02, name


def test_pre_activations_have_unit_variance_then_the_between_layer_scale_squared(lab):
    for bn in lab[False][0].modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            torch.testing.assert_close(bn.running_var, torch.ones_like(bn.running_var))
    model, diag = lab[True]
    for encoder in model.encoders:
        half = encoder.spec.half.name
        for layer in ("conv1", "conv3", "fc7"):
            scale = diag[f"{half}/{layer}/scale"]
            var = encoder.tower.layers[layer][1].running_var
            torch.testing.assert_close(var, torch.full_like(var, scale**2), rtol=1e-3, atol=0)


def test_between_layer_rescaling_equalises_the_gradient_to_weight_ratios(batch, held_out, lab):
    """Measured independently (other random readouts), the gradient/weight ratios of each
    encoder's layers span two to three orders of magnitude after the within-layer stage, and
    nearly agree after the between-layer stage: on the same images up to the noise of one
    random readout, and less tightly on held-out ones. The eval-mode function of the tower
    does not change."""
    plain, _ = lab[False]
    rescaled, diag = lab[True]
    before = gradient_ratios(plain, batch, seed=5)
    after = gradient_ratios(rescaled, batch, seed=5)
    for b, a in zip(before, after, strict=True):
        assert spread(b) > 30
        assert spread(a) < 2.5
    before = gradient_ratios(plain, held_out, seed=6)
    after = gradient_ratios(rescaled, held_out, seed=6)
    for b, a in zip(before, after, strict=True):
        assert spread(a) < spread(b) / 20
    for encoder in rescaled.encoders:
        half = encoder.spec.half.name
        assert diag[f"{half}/ratio_spread_before"] > 30
        assert diag[f"{half}/ratio_spread_after"] < 2
    with torch.no_grad():
        layers = plain.layer_names
        f0 = plain.eval().features(held_out, layers)
        f1 = rescaled.eval().features(held_out, layers)
    for name in layers:
        torch.testing.assert_close(f1[name], f0[name], atol=2e-2, rtol=2e-2)


def test_rgbd_branches_learn_at_the_rate_of_their_own_head(rgbd_model):
    """F_HHA has two heads (L and ab) on their own fc6/fc7 branches: each branch is anchored
    on its head, the shared trunk on both (geometric mean); the heads keep their scale. The
    two heads' ratios differ by two orders of magnitude, so the tolerances (one random
    readout's noise) still tell the anchors apart."""
    _, diag = rgbd_model
    half = "HHA->Lab"
    for target in ("L", "ab"):
        head = diag[f"{half}/{target}.head/ratio_after"]
        assert diag[f"{half}/{target}.head/scale"] == 1.0
        for layer in ("fc6", "fc7"):
            assert diag[f"{half}/{target}.{layer}/ratio_after"] == pytest.approx(head, rel=0.35)
    heads = math.sqrt(diag[f"{half}/L.head/ratio_after"] * diag[f"{half}/ab.head/ratio_after"])
    for layer in ("conv3", "conv4", "conv5"):
        assert diag[f"{half}/{layer}/ratio_after"] == pytest.approx(heads, rel=0.4)


def small_weights(method: str = "kmeans", seed: int = 0, raw: torch.Tensor | None = None):
    """conv2 filters of the L->ab half of a width-0.125 model after the initialisation."""
    model = sb.build("splitbrain", preset="small", width=0.125)
    raw = photos(("astronaut", "coffee"), 8) if raw is None else raw
    kraehenbuehl_init_(model, raw, method=method, seed=seed)
    return model.encoders[0].tower.layers["conv2"][0].weight.detach().flatten(1)


def test_kmeans_weights_are_deterministic_per_seed_and_data_dependent():
    kmeans = small_weights()
    assert torch.equal(kmeans, small_weights())
    assert not torch.allclose(kmeans, small_weights(seed=1))
    assert not torch.allclose(kmeans, small_weights(raw=photos(("chelsea", "rocket"), 8)))
    for other in ("gaussian", "pca"):
        cosine = F.cosine_similarity(kmeans, small_weights(other), dim=1)
        assert cosine.abs().max() < 0.9, other


def test_the_global_random_state_is_left_alone_and_the_work_is_announced(caplog):
    model = sb.build("splitbrain", preset="small", width=0.125)
    raw = photos(("astronaut",), 8)
    state = torch.random.get_rng_state()
    with caplog.at_level(logging.INFO, logger="splitbrain.init"):
        kraehenbuehl_init_(model, raw)
    assert torch.equal(torch.random.get_rng_state(), state)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith(f"Krähenbühl initialisation from {len(raw)} images (kmeans")
    assert lines[1].startswith("  encoder L->ab initialised (1 of 2, ")
    assert lines[2].startswith("  encoder ab->L initialised (2 of 2, ")


def test_pca_filters_decorrelate_the_layer_input(batch):
    """conv1 of the L->ab half sees 3x3 L patches (9 dimensions): its first 9 PCA filters are
    the whitened principal components, so their responses are uncorrelated."""
    model = sb.build("splitbrain", preset="small", width=0.25)
    kraehenbuehl_init_(model, batch, method="pca", rescale_between_layers=False)
    encoder = model.encoders[0]
    x = model.encoder_input(encoder, model.channels(batch))
    with torch.no_grad():
        z = encoder.tower.layers["conv1"][0](x)[:, :9]
    correlation = torch.corrcoef(z.transpose(0, 1).flatten(1))
    torch.testing.assert_close(correlation, torch.eye(9), atol=0.15, rtol=0)


def test_kmeans_finds_separated_clusters():
    gen = torch.Generator().manual_seed(0)
    truth = 10 * torch.eye(6, 8)
    points = truth.repeat_interleave(50, 0) + 0.1 * torch.randn(300, 8, generator=gen)
    centres = _kmeans(points, 6, 10, torch.Generator().manual_seed(1))
    distance = torch.cdist(truth, centres)
    assert distance.min(1).values.max() < 0.1
    assert sorted(distance.argmin(1).tolist()) == list(range(6))


@pytest.mark.parametrize("variant", list(sb.VARIANTS))
def test_every_variant(variant):
    torch.manual_seed(0)  # the model and the batch, whatever ran before
    model = sb.build(variant, preset="small", width=0.25)
    diag = kraehenbuehl_init_(model, torch.rand(16, 3, 32, 32))
    assert all(math.isfinite(v) for v in diag.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(torch.isfinite(b).all() for b in model.buffers())
    for encoder in model.encoders:
        assert len(encoder.heads) > 1 or diag[f"{encoder.spec.half.name}/ratio_spread_after"] < 3


@pytest.mark.parametrize(("preset", "side", "count"), [("paper", 180, 9), ("transfer", 227, 4)])
def test_full_size_presets(preset, side, count):
    model = sb.build("splitbrain", preset=preset, width=0.125)
    raw = photos(("astronaut", "coffee", "chelsea", "rocket"), count, side=side)
    diag = kraehenbuehl_init_(model, raw)
    check_normalised(bn_outputs(model, raw))
    # 9 images give the paper preset's fc6, fc7 (256 filters at this width) and ab head (313)
    # 9 x 12 x 12 patches, at least the 4 per filter k-means needs; the transfer preset's
    # fc6/fc7 see one position per image, too few: they fall back to Gaussian directions.
    fallback = {k.split("/")[1] for k in diag if k.endswith("/fallback")}
    assert fallback == (set() if preset == "paper" else {"fc6", "fc7", "ab.head", "L.head"})
    assert not any(k.endswith("/clamped") for k in diag)


def test_untrained_conv5_features_on_held_out_images_are_not_degenerate(held_out, lab):
    model, _ = lab[True]
    with torch.no_grad():
        conv5 = model.eval().features(held_out, "conv5")["conv5"]
    assert torch.isfinite(conv5).all()
    per_channel = conv5.transpose(0, 1).flatten(1)
    assert (per_channel.std(1) > 1e-3).float().mean() > 0.9
    assert 0.1 < (conv5 > 0).float().mean() < 0.9
    assert 0.2 < float(per_channel.std(1).median()) < 5
    # Different images give different features.
    flat = F.normalize(conv5.flatten(1), dim=1)
    similarity = flat @ flat.T
    assert similarity[~torch.eye(len(flat), dtype=torch.bool)].mean() < 0.95


def test_bad_arguments():
    model = sb.build("splitbrain", preset="small", width=0.125)
    with pytest.raises(ValueError, match="unknown method"):
        kraehenbuehl_init_(model, torch.rand(4, 3, 32, 32), method="lsuv")
    with pytest.raises(ValueError, match="batch"):
        kraehenbuehl_init_(model, torch.rand(3, 32, 32))


def test_modes_and_requires_grad_are_left_as_they_were():
    model = sb.build("splitbrain", preset="small", width=0.125).eval()
    model.encoders[1].requires_grad_(False)
    kraehenbuehl_init_(model, photos(("astronaut",), 8))
    assert not any(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.encoders[0].parameters())
    assert not any(p.requires_grad for p in model.encoders[1].parameters())


def test_kmeans_never_returns_a_vanished_centre():
    """One filter sees whitened patches of +-1; when both signs are equally common their mean
    is 0, which would be a filter that never learns: it moves to a patch instead."""
    z = torch.tensor([[1.0], [-1.0]] * 8)
    centres = _kmeans(z, 1, 10, torch.Generator().manual_seed(0))
    assert centres.abs().item() == 1.0
