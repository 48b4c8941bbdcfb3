"""Data-dependent initialisation of Krähenbühl, Doersch, Donahue & Darrell (ICLR 2016).

``kraehenbuehl_init_(model, raw)`` initialises every cross-channel encoder of a ``SplitBrain``
in place from one batch of real inputs, in two stages. docs/INIT.md gives the reasoning and
measurements; this is the exact procedure.

**Stage 1, within-layer** (per encoder, layer by layer in network order: the tower's conv1 ...
fc7, then per target its fc6/fc7 branch if any (RGB-D) and its 1x1 prediction head). Each
layer is initialised from the activations that actually reach it, computed through the layers
below as already initialised, on the whole batch, from the encoder's full input (every input
channel visible, no input dropout: what ``features`` and eval see).

1. Filter directions, by ``method``:

   * ``gaussian``: i.i.d. N(0, 1).
   * ``pca``: sample up to max(4096, 10 x out_channels) patches of the layer's input at random
     positions (the conv's own kernel, stride, padding and dilation), centre them and take the
     top q = min(out_channels, patch_dim) principal components (exact eigendecomposition when
     patch_dim <= 256 or q + 16 >= patch_dim / 2, otherwise randomized with one power iteration;
     the eigenvalues are exact for the subspace found). Filters are the whitened components
     v_i / sqrt(lambda_i + eps), eps = 1e-3 x the mean variance per dimension (components
     below 1e-6 of the largest get 0); when out_channels > patch_dim the remaining filters
     are random combinations of those (random directions in the whitened space).
   * ``kmeans`` (default): the same patches projected on those q components and whitened, each
     whitened patch scaled to unit length, then k-means with out_channels centres (k-means++
     seeding, 10 Lloyd iterations, an emptied centre re-seeded on a random patch). Centroid c
     becomes the filter c diag(1/sqrt(lambda + eps)) V^T: its response to a patch is the dot
     product of c with the whitened patch. This is the authors' released code
     (``magic_init.py``: whiten on the top out_channels components, normalise, k-means), with
     torch in place of sklearn's MiniBatchKMeans.
   * With fewer than 4 patches per filter in the batch (e.g. the ``transfer`` preset's fc6/fc7,
     one position per image) ``pca`` and ``kmeans`` fall back to ``gaussian`` for that layer,
     as the authors' code does when data is short; diagnostics ``<layer>/fallback`` = 1.

2. Scale and shift: each output channel is divided by the standard deviation of its
   pre-activations on the batch (unit variance). The paper then sets the bias to -mean/std
   (zero mean). Our convs have no bias, since BatchNorm follows and would cancel it; what
   carries the paper's intent here is the BatchNorm's *running statistics*, which are set to
   the batch mean and (biased) variance of the rescaled pre-activations (and affine
   parameters, if any, to 1 and 0). The *untrained* model in eval mode then gives exactly
   zero-mean, unit-variance BN outputs per channel on this batch at every layer, and the next
   layer is initialised on those outputs. The 1x1 prediction heads have a bias and no
   BatchNorm: there it is the paper's rule, bias = -mean/std, so each head's outputs (logits
   or regressions) start with zero mean and unit variance per channel.

**Stage 2, between-layer** (``rescale_between_layers``, per encoder). The paper makes all
layers learn at a similar rate, measured by C_k = ||dL/dW_k|| / ||W_k||, estimated on the
batch with a surrogate loss since there are no labels yet: a random linear readout of the
outputs, L = sum(eta * output) over every head, eta ~ N(0, 1 / channels) per element (the
authors' code backpropagates N(0, 1) noise from the top; the 1/channels makes each of several
heads inject about the same gradient). Gradients are taken with BatchNorm in train mode, as
in training, on a random subset of at most 32 images; modes, running statistics and
``requires_grad`` are restored afterwards.

With BatchNorm after every conv this becomes a question of weight norms. Such a layer is
scale invariant: in train mode its output does not depend on ||W_k||, so its gradient is
orthogonal to W_k, scales like 1/||W_k||, and C_k scales exactly like 1/||W_k||^2 -- the
layer's weight norm *is* its effective learning rate (lr / ||W_k||^2 under SGD), and choosing
the norms is all this stage can and need do. The heads are not scale invariant (their scale is
the output's scale), so they keep stage 1's unit-variance outputs and serve as anchors: the
target C* of a BN'd layer is the geometric mean of the ratios of the heads it feeds (every
head for the tower, its own head for a branch). Each round draws a fresh readout, measures
all C_k and multiplies every BN'd layer's weights by r_k = (C_k / C*)^(1 / (2 t)) in round
t = 1, 2, 3: round 1 is the paper's update r = sqrt(C_k / target), which under the exact
1/||W||^2 law reaches the target in one step; the gains 1/2 and 1/3 of rounds 2 and 3 then
average the estimate over three independent readouts (Robbins-Monro) instead of replacing
one noisy estimate by another. A final fresh readout measures the result
(``ratio_after``). Scales never take a pre-activation's std below 10 x sqrt(BN eps), where BN
stops being scale invariant (``<layer>/clamped`` = 1 if that binds; it does not in any preset
we tried). The layer's BN running mean and variance follow (x r_k, x r_k^2), and are
re-measured on the batch at the end, so the eval-mode network computes the same function as
after stage 1 (up to BN's eps) and still normalises the batch exactly; only the pre-BN
activations change scale (std r_k instead of 1).

The gradient ratio is the criterion for SGD-like updates. Under Adam (our pre-training
optimiser) each weight moves by about lr per step whatever its gradient, so a layer's relative
rate is about lr / rms(W_k) instead; the diagnostics report ``weight_rms`` for that reason.

Randomness comes from private generators seeded from ``seed`` (one per encoder and stage):
the global RNG is not touched, an encoder's weights do not depend on the other encoders nor on
``rescale_between_layers``, and the result is deterministic for a given batch, seed and device.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import CrossChannelEncoder, SplitBrain

log = logging.getLogger("splitbrain.init")
INITS = ("gaussian", "kraehenbuehl")  # a network's starting weights, by name
METHODS = ("gaussian", "pca", "kmeans")
KMEANS_ITERATIONS = 10
SAMPLES_PER_FILTER = 10  # patches sampled per output channel, at least MIN_SAMPLES
MIN_SAMPLES = 4096
MIN_PATCHES_PER_FILTER = 4  # fewer patches than this per filter: Gaussian fallback
MAX_PATCH_FLOATS = 2**26  # cap on samples x patch_dim (256 MB of float32)
EXACT_EIG_DIM = 256  # exact eigendecomposition up to this patch dimension (or q + 16 >= dim / 2)
OVERSAMPLE = 16  # randomized eigendecomposition: extra basis vectors
POWER_ITERATIONS = 1
WHITENING_EPS = 1e-3  # added to the eigenvalues, relative to the mean variance per dimension
GRADIENT_IMAGES = 32  # images per gradient-ratio measurement (a random subset)
EPS_MARGIN = 10  # between-layer scales stay >= EPS_MARGIN * sqrt(BatchNorm eps)
BETWEEN_ROUNDS = 3  # rescaling rounds, each with a fresh random readout
CALIBRATION_BATCHES = 10  # batches an untrained baseline's BatchNorm statistics come from


@dataclass
class _Layer:
    """A parametrised layer: a conv followed by BatchNorm, or a prediction head (bn None)."""

    name: str
    conv: nn.Conv2d
    bn: nn.BatchNorm2d | None
    targets: tuple[str, ...]  # the heads this layer feeds


def _block_parts(block: nn.Module) -> tuple[nn.Conv2d, nn.BatchNorm2d, nn.Sequential]:
    if not (
        isinstance(block, nn.Sequential)
        and len(block) >= 2
        and isinstance(block[0], nn.Conv2d)
        and isinstance(block[1], nn.BatchNorm2d)
    ):
        raise TypeError(f"expected a conv -> BatchNorm block, got {block}")
    if block[0].groups != 1:
        raise TypeError("grouped convolutions are not supported")
    return block[0], block[1], block[2:]


def _layers(encoder: CrossChannelEncoder) -> list[_Layer]:
    """Every parametrised layer of an encoder, in network order, heads last."""
    layers = []
    targets = tuple(encoder.heads)
    for name, module in encoder.tower.layers.items():
        if isinstance(module, nn.Sequential):
            conv, bn, _ = _block_parts(module)
            layers.append(_Layer(name, conv, bn, targets))
    for target, branch in encoder.branches.items():
        for i, block in enumerate(branch):
            conv, bn, _ = _block_parts(block)
            layers.append(_Layer(f"{target}.fc{6 + i}", conv, bn, (target,)))
    for target, head in encoder.heads.items():
        layers.append(_Layer(f"{target}.head", head, None, (target,)))
    return layers


def _positions(x: Tensor, conv: nn.Conv2d) -> int:
    """Output positions per image of ``conv`` on ``x``."""
    if isinstance(conv.padding, str):
        raise TypeError("convs with string padding are not supported")
    count = 1
    for size, k, s, p, d in zip(
        x.shape[2:], conv.kernel_size, conv.stride, conv.padding, conv.dilation, strict=True
    ):
        count *= (size + 2 * p - d * (k - 1) - 1) // s + 1
    return count


def _sample_patches(x: Tensor, conv: nn.Conv2d, count: int, gen: torch.Generator) -> Tensor:
    """``count`` random patches (count, C*kh*kw) of ``x`` as ``conv`` sees them."""
    kw = dict(
        kernel_size=conv.kernel_size,
        dilation=conv.dilation,
        padding=conv.padding,
        stride=conv.stride,
    )
    n = x.shape[0]
    positions = _positions(x, conv)
    dim = x.shape[1] * math.prod(conv.kernel_size)
    total = n * positions
    pick = torch.randperm(total, generator=gen)[:count].to(x.device).sort()[0]
    chunk = max(1, 2**24 // (dim * positions))  # images unfolded at a time
    parts = []
    for start in range(0, n, chunk):
        lo, hi = start * positions, min(n, start + chunk) * positions
        rows = pick[(pick >= lo) & (pick < hi)] - lo
        if rows.numel():
            unfolded = F.unfold(x[start : start + chunk], **kw)  # (n, dim, positions)
            parts.append(unfolded.transpose(1, 2).reshape(-1, dim)[rows])
    return torch.cat(parts)


def _top_eigen(x: Tensor, q: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Top ``q`` eigenvalues (descending) and eigenvectors (dim, q) of the covariance of the
    centred rows of ``x``: exact for small dimensions, randomized (Halko et al.) above."""
    m, d = x.shape
    if d <= EXACT_EIG_DIM or 2 * (q + OVERSAMPLE) >= d:
        values, vectors = torch.linalg.eigh((x.T @ x).double() / m)
        return values.flip(0)[:q].float(), vectors.flip(1)[:, :q].float()
    basis = torch.randn(d, q + OVERSAMPLE, generator=gen).to(x.device)
    for _ in range(POWER_ITERATIONS + 1):
        basis = torch.linalg.qr(x.T @ (x @ basis)).Q
    projected = x @ basis
    values, vectors = torch.linalg.eigh((projected.T @ projected).double() / m)
    values, vectors = values.flip(0)[:q].float(), vectors.flip(1)[:, :q].float()
    return values, basis @ vectors


def _kmeans(z: Tensor, k: int, iterations: int, gen: torch.Generator) -> Tensor:
    """k-means of the rows of ``z``: k-means++ seeding, then ``iterations`` Lloyd steps;
    (k, dim) centres. A centre that loses all its points, or ends at zero, moves to a random
    row."""
    m = z.shape[0]
    squares = (z * z).sum(1)
    centres = torch.empty(k, z.shape[1], dtype=z.dtype, device=z.device)
    nearest = torch.full_like(squares, math.inf)
    row = int(torch.randint(m, (1,), generator=gen))
    for i in range(k):  # k-means++: D^2 sampling
        centres[i] = z[row]
        distance = squares - 2 * (z @ centres[i]) + squares[row]
        nearest = torch.minimum(nearest, distance.clamp(min=0))
        cumulative = nearest.cumsum(0)
        if i + 1 < k:
            if cumulative[-1] > 0:
                threshold = torch.rand(1, generator=gen).to(z.device) * cumulative[-1]
                row = min(int(torch.searchsorted(cumulative, threshold)), m - 1)
            else:
                row = int(torch.randint(m, (1,), generator=gen))
    chunk = max(1, 2**24 // k)
    for _ in range(iterations):
        half_norms = 0.5 * (centres * centres).sum(1)
        assign = torch.cat(
            [(z[i : i + chunk] @ centres.T - half_norms).argmax(1) for i in range(0, m, chunk)]
        )
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, assign, z)
        centres = sums / counts.clamp(min=1).unsqueeze(1).to(z.dtype)
        empty = (counts == 0).nonzero().squeeze(1)
        if empty.numel():
            rows = torch.randint(m, (empty.numel(),), generator=gen)
            centres[empty] = z[rows.to(z.device)]
    # A mean of unit rows can vanish (with one filter the whitened patches are +-1, and their
    # mean is 0 when both signs are equally common): a zero filter would never learn.
    vanished = (centres.norm(dim=1) <= 1e-6 * z.norm(dim=1).max()).nonzero().squeeze(1)
    if vanished.numel():
        rows = torch.randint(m, (vanished.numel(),), generator=gen)
        centres[vanished] = z[rows.to(z.device)]
    return centres


def _directions(
    x: Tensor, conv: nn.Conv2d, method: str, gen: torch.Generator
) -> tuple[Tensor, bool]:
    """Filters (out, in*kh*kw) for ``conv`` on input ``x``, and whether ``method`` had to fall
    back to Gaussian weights for lack of patches."""
    out = conv.out_channels
    dim = conv.in_channels * math.prod(conv.kernel_size)
    gaussian = torch.randn(out, dim, generator=gen).to(x.device)
    if method == "gaussian":
        return gaussian, False
    positions = _positions(x, conv)
    count = min(x.shape[0] * positions, max(MIN_SAMPLES, SAMPLES_PER_FILTER * out))
    count = min(count, max(1, MAX_PATCH_FLOATS // dim))
    if count < MIN_PATCHES_PER_FILTER * out:
        return gaussian, True
    patches = _sample_patches(x.float(), conv, count, gen)
    patches = patches - patches.mean(0)
    q = min(out, dim)
    values, vectors = _top_eigen(patches, q, gen)
    eps = WHITENING_EPS * (patches * patches).sum() / (count * dim)
    keep = values > 1e-6 * values[0].clamp(min=1e-30)
    inverse_std = torch.where(keep, (values.clamp(min=0) + eps).rsqrt(), torch.zeros_like(values))
    whitening = vectors * inverse_std  # (dim, q): patch -> whitened coordinates
    if method == "pca":
        filters = whitening.T  # (q, dim)
        if out > q:
            mix = torch.randn(out - q, q, generator=gen).to(x.device)
            filters = torch.cat([filters, mix @ filters / math.sqrt(q)])
        return filters, False
    whitened = patches @ whitening
    whitened = whitened / whitened.norm(dim=1, keepdim=True).clamp(min=1e-12)
    centres = _kmeans(whitened, out, KMEANS_ITERATIONS, gen)
    return centres @ whitening.T, False


def _normalise_channels(conv: nn.Conv2d, x: Tensor) -> tuple[Tensor, Tensor]:
    """Divide each filter by the std of its response to ``x``; the rescaled responses and
    the number of (constant) channels left as they were."""
    z = conv(x)
    std = z.std(dim=(0, 2, 3), unbiased=False)
    dead = std <= 1e-8 * std.max().clamp(min=1e-30)
    scale = torch.where(dead, torch.ones_like(std), 1.0 / std)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    return z * scale.view(1, -1, 1, 1), dead.sum()


def _init_block(
    block: nn.Sequential, x: Tensor, method: str, gen: torch.Generator, key: str, diag: dict
) -> Tensor:
    conv, bn, rest = _block_parts(block)
    weights, fallback = _directions(x, conv, method, gen)
    conv.weight.copy_(weights.view_as(conv.weight))
    if conv.bias is not None:
        conv.bias.zero_()
    z, dead = _normalise_channels(conv, x)
    bn.reset_running_stats()
    if bn.running_mean is not None:
        bn.running_mean.copy_(z.mean(dim=(0, 2, 3)))
        var = z.var(dim=(0, 2, 3), unbiased=False)
        bn.running_var.copy_(torch.where(var > 0, var, torch.ones_like(var)))
    if bn.affine:
        bn.weight.fill_(1.0)
        bn.bias.zero_()
    if fallback:
        diag[f"{key}/fallback"] = 1.0
    if dead:
        diag[f"{key}/constant_channels"] = float(dead)
    mean = z.mean(dim=(0, 2, 3), keepdim=True)
    std = (z.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + bn.eps).sqrt()
    return rest((z - mean) / std)  # what the eval-mode block now gives on this batch


def _init_head(
    head: nn.Conv2d, x: Tensor, method: str, gen: torch.Generator, key: str, diag: dict
) -> None:
    weights, fallback = _directions(x, head, method, gen)
    head.weight.copy_(weights.view_as(head.weight))
    if head.bias is not None:
        head.bias.zero_()
    z, dead = _normalise_channels(head, x)
    if head.bias is not None:
        head.bias.copy_(-z.mean(dim=(0, 2, 3)))
    if fallback:
        diag[f"{key}/fallback"] = 1.0
    if dead:
        diag[f"{key}/constant_channels"] = float(dead)


def _within_layer(
    encoder: CrossChannelEncoder, x: Tensor, method: str, gen: torch.Generator, prefix: str
) -> dict[str, float]:
    diag: dict[str, float] = {}
    for name, module in encoder.tower.layers.items():
        if isinstance(module, nn.Sequential):
            x = _init_block(module, x, method, gen, f"{prefix}/{name}", diag)
        else:
            x = module(x)
    for target, head in encoder.heads.items():
        h, blocks = x, []
        if target in encoder.branches:  # (an nn.ModuleDict has no .get)
            blocks = list(encoder.branches[target])
        for i, block in enumerate(blocks):
            h = _init_block(block, h, method, gen, f"{prefix}/{target}.fc{6 + i}", diag)
        _init_head(head, h, method, gen, f"{prefix}/{target}.head", diag)
    return diag


def _set_batch_statistics(encoder: CrossChannelEncoder, x: Tensor) -> None:
    """Set every BatchNorm's running statistics to the batch statistics of its input, in
    network order, weights unchanged: the eval-mode encoder then normalises this batch exactly
    as train mode does."""

    def run(block: nn.Sequential, x: Tensor) -> Tensor:
        conv, bn, rest = _block_parts(block)
        z = conv(x)
        mean = z.mean(dim=(0, 2, 3))
        var = z.var(dim=(0, 2, 3), unbiased=False)
        if bn.running_mean is not None:
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(torch.where(var > 0, var, torch.ones_like(var)))
        var = torch.where(var > 0, var, torch.ones_like(var))
        return rest(F.batch_norm(z, mean, var, bn.weight, bn.bias, False, 0.0, bn.eps))

    for module in encoder.tower.layers.values():
        x = run(module, x) if isinstance(module, nn.Sequential) else module(x)
    for branch in encoder.branches.values():
        h = x
        for block in branch:
            h = run(block, h)


def _gradient_ratios(
    encoder: CrossChannelEncoder, x: Tensor, layers: list[_Layer], gen: torch.Generator
) -> Tensor:
    """||grad W|| / ||W|| of every layer for a fresh random linear readout of the outputs,
    on at most GRADIENT_IMAGES random images of ``x``, BatchNorm in train mode (as in
    training); leaves modes, running statistics and requires_grad as they were."""
    if x.shape[0] > GRADIENT_IMAGES:
        x = x[torch.randperm(x.shape[0], generator=gen)[:GRADIENT_IMAGES].to(x.device)]
    modes = {m: m.training for m in encoder.modules()}
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    saved = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in norms]
    weights = [layer.conv.weight for layer in layers]
    needs = [w.requires_grad for w in weights]
    try:
        encoder.train()
        for w in weights:
            w.requires_grad_(True)
        with torch.enable_grad():
            outputs = encoder(x)
            loss = 0
            for out in outputs.values():
                # N(0, 1/channels): every head injects about unit gradient per position.
                eta = torch.randn(out.shape, generator=gen) / math.sqrt(out.shape[1])
                loss = loss + (eta.to(out.device, out.dtype) * out).sum()
            grads = torch.autograd.grad(loss, weights)
    finally:
        for module, mode in modes.items():
            module.training = mode
        for module, buffers in zip(norms, saved, strict=True):
            for k, v in buffers.items():
                getattr(module, k).copy_(v)
        for w, need in zip(weights, needs, strict=True):
            w.requires_grad_(need)
    return torch.stack(
        [g.norm() / w.detach().norm() for g, w in zip(grads, weights, strict=True)]
    ).double()


def _spread(ratios: Tensor) -> float:
    return float(ratios.max() / ratios.min())


def _between_layers(
    encoder: CrossChannelEncoder, x: Tensor, gen: torch.Generator, prefix: str
) -> dict[str, float]:
    """Equalise the gradient/weight ratios of the encoder's BN'd layers with those of the
    heads they feed, by rescaling the BN'd layers; see the module docstring."""
    layers = _layers(encoder)
    scaled = [i for i, layer in enumerate(layers) if layer.bn is not None]
    heads = {layer.targets[0]: i for i, layer in enumerate(layers) if layer.bn is None}
    # Each BN'd layer is anchored on the heads it feeds (all of them for the tower).
    anchors = [[heads[t] for t in layers[i].targets if t in heads] or scaled for i in scaled]
    total = torch.ones(len(layers), dtype=torch.float64)
    for step in range(1, BETWEEN_ROUNDS + 1):
        logs = _gradient_ratios(encoder, x, layers, gen).clamp(min=1e-30).log()
        if step == 1:
            before = logs.exp()
        target = torch.stack([logs[a].mean() for a in anchors])
        # C_k scales like 1/r^2: r = sqrt(C_k / C*) reaches the target in one step. Gain 1/step
        # averages the estimate over the rounds' independent readouts (Robbins-Monro).
        factors = ((logs[scaled] - target) / (2 * step)).exp()
        with torch.no_grad():
            for i, r in zip(scaled, factors.tolist(), strict=True):
                layer = layers[i]
                # The pre-activations' std is now total[i]; keep it well above sqrt(eps), where
                # BatchNorm stops being scale invariant.
                r = r if math.isfinite(r) else 1.0
                r = max(r, EPS_MARGIN * math.sqrt(layer.bn.eps) / total[i].item())
                layer.conv.weight.mul_(r)
                if layer.bn.running_mean is not None:
                    layer.bn.running_mean.mul_(r)
                    layer.bn.running_var.mul_(r * r)
                total[i] *= r
    after = _gradient_ratios(encoder, x, layers, gen)  # a fresh readout, for the record
    diag = {}
    for i, layer in enumerate(layers):
        key = f"{prefix}/{layer.name}"
        diag[f"{key}/ratio_before"] = float(before[i])
        diag[f"{key}/ratio_after"] = float(after[i])
        diag[f"{key}/scale"] = float(total[i])
        if layer.bn is not None and total[i] <= EPS_MARGIN * math.sqrt(layer.bn.eps) * 1.0001:
            diag[f"{key}/clamped"] = 1.0
    diag[f"{prefix}/ratio_spread_before"] = _spread(before)
    diag[f"{prefix}/ratio_spread_after"] = _spread(after)
    return diag


def _generator(seed: int, encoder: int, stage: int) -> torch.Generator:
    """A CPU generator per (seed, encoder, stage): an encoder's weights do not depend on
    what was drawn for the encoders before it, nor on whether the between-layer step runs."""
    return torch.Generator().manual_seed((seed * 1_000_003 + encoder * 2 + stage) % 2**63)


def _encoder_names(model: SplitBrain) -> list[str]:
    names = [e.spec.half.name for e in model.encoders]
    if len(set(names)) < len(names):
        names = [f"{i}:{n}" for i, n in enumerate(names)]
    return names


def calibrate_batchnorm(
    model: SplitBrain, batches: Iterable, limit: int = CALIBRATION_BATCHES
) -> None:
    """Set BatchNorm running statistics from ``limit`` uint8 batches (images, labels) of the
    loader, without any weight update, for untrained baselines: with the initial statistics
    (0, 1) deep layers of a random net explode or vanish in eval mode. Leaves it in eval mode;
    batches whose every item proved unreadable are passed over."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        seen = 0
        for images, _ in batches:
            if seen == limit:
                break
            if len(images):
                model(*model.split.space.decode_batch(images))
                seen += 1
    model.eval()


def kraehenbuehl_init_(
    model: SplitBrain,
    raw: Tensor,
    method: str = "kmeans",
    rescale_between_layers: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """Initialise ``model`` in place from a batch of real raw inputs (Krähenbühl et al. 2016).

    ``raw``: (N, C, H, W) float, as the model's split expects (RGB in [0, 1] for ``lab``),
    e.g. 64-256 images; moved to the model's device. ``method``: ``kmeans``, ``pca`` or
    ``gaussian`` filter directions. ``rescale_between_layers``: also equalise the layers'
    gradient-to-weight ratios. ``seed``: all random draws (the global RNG is not used).

    Overwrites every conv weight, head bias and BatchNorm running statistic (these end up
    measured on ``raw``; re-measuring them on more data afterwards is fine). Modes and
    ``requires_grad`` flags are left as they were.

    Returns diagnostics keyed ``<encoder>/<layer>/<what>``, the encoder named by its half
    (``L->ab``), layers ``conv1`` ... ``fc7``, ``<target>.fc6``/``.fc7`` for RGB-D branches and
    ``<target>.head``: ``weight_rms``; with the between-layer step ``ratio_before`` and
    ``ratio_after`` (gradient/weight ratios measured before and after it), ``scale`` (the
    factor it applied); and, only where they happen, ``fallback`` (1: too few patches for
    ``method``, Gaussian directions used), ``constant_channels`` (filters with no response
    variance, left unscaled) and ``clamped`` (1: the scale hit its BatchNorm-eps floor). Per
    encoder ``<encoder>/ratio_spread_before`` and ``_after`` (max / min ratio over its layers);
    and ``seconds``. The module docstring says exactly what is done, docs/INIT.md why.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if raw.dim() != 4 or raw.shape[0] < 2:
        raise ValueError(f"raw must be a batch (N>=2, C, H, W), got shape {tuple(raw.shape)}")
    start = time.perf_counter()
    device = next(model.parameters()).device
    raw = raw.to(device=device, dtype=torch.float32)
    diagnostics: dict[str, float] = {}
    log.info(
        "Krähenbühl initialisation from %d images (%s filters%s), one encoder at a time: "
        "a minute or more on a CPU", raw.shape[0], method,
        ", then the layers' rescaling" if rescale_between_layers else "",
    )  # fmt: skip
    with torch.no_grad():
        channels = model.channels(raw)
    names = _encoder_names(model)
    for index, (encoder, name) in enumerate(zip(model.encoders, names, strict=True)):
        with torch.no_grad():
            x = model.encoder_input(encoder, channels)
            diagnostics.update(_within_layer(encoder, x, method, _generator(seed, index, 0), name))
        if rescale_between_layers:
            diagnostics.update(_between_layers(encoder, x, _generator(seed, index, 1), name))
            with torch.no_grad():
                _set_batch_statistics(encoder, x)
        for layer in _layers(encoder):
            w = layer.conv.weight.detach()
            diagnostics[f"{name}/{layer.name}/weight_rms"] = float(w.pow(2).mean().sqrt())
        log.info("  encoder %s initialised (%d of %d, %.0f s)", name, index + 1, len(names),
                 time.perf_counter() - start)  # fmt: skip
    diagnostics["seconds"] = time.perf_counter() - start
    return diagnostics


__all__ = ["CALIBRATION_BATCHES", "METHODS", "calibrate_batchnorm", "kraehenbuehl_init_"]
