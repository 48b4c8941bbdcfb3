"""Quantizers: exact nearest bins, soft encoding, decoders, prior and rebalancing."""

import itertools
import math

import pytest
import torch

from splitbrain import color, quantize
from splitbrain.losses import bin_histogram, rebalancing_weights
from splitbrain.quantize import _selection_network, ab_quantizer, build_quantizer


@pytest.fixture(scope="module")
def ab():
    return ab_quantizer()


def _in_gamut_ab(n: int = 20000) -> torch.Tensor:
    rgb = torch.rand(1, 3, n, 1, generator=torch.Generator().manual_seed(0))
    return color.rgb_to_lab(rgb)[:, 1:]


def _brute_force(values: torch.Tensor, centers: torch.Tensor, k: int):
    flat = values.permute(0, 2, 3, 1).reshape(-1, values.shape[1])
    return torch.cdist(flat.double(), centers.double()).topk(k, largest=False)


def test_hard_encoding_is_exact_nearest_bin(ab):
    values = _in_gamut_ab()
    ours = ab.encode_hard(values).flatten()
    assert torch.equal(ours, _brute_force(values, ab.centers, 1).indices[:, 0])


def test_hard_encoding_exact_off_the_bin_set(ab):
    # Values whose nearest grid point is not one of the 313 bins use the candidate tables.
    values = torch.empty(1, 2, 4000, 1).uniform_(-90, 95)
    off = ab.bin_at_cell[ab._cell_index(values, 1)] < 0
    assert off.any()
    ours = ab.encode_hard(values).flatten()
    assert torch.equal(ours, _brute_force(values, ab.centers, 1).indices[:, 0])


def test_soft_encoding_uses_the_five_nearest_with_gaussian_weights(ab):
    values = _in_gamut_ab(3000)
    sparse = ab.encode_soft(values, k=5, sigma=5.0)
    assert sparse.index.shape == sparse.weight.shape == (1, 5, 3000, 1)
    soft = sparse.dense(313)
    assert soft.shape == (1, 313, 3000, 1)
    flat = soft.permute(0, 2, 3, 1).reshape(-1, 313)
    assert torch.allclose(flat.sum(1), torch.ones(3000), atol=1e-5)
    assert ((flat > 0).sum(1) == 5).all()
    ref = _brute_force(values, ab.centers, 5)
    expected = torch.softmax(-ref.values.square() / (2 * 25.0), 1).float()
    assert torch.allclose(flat.gather(1, ref.indices), expected, atol=1e-5)
    assert torch.equal(sparse.index[0, 0, :, 0], ref.indices[:, 0])  # nearest first


def test_soft_encoding_exact_near_the_edge_of_the_bin_set(ab):
    values = torch.empty(1, 2, 4000, 1).uniform_(-95, 100)
    ours = ab.encode_soft(values, k=5).index[0, :, :, 0].T
    ref = _brute_force(values, ab.centers, 5).indices
    assert torch.equal(ours.sort(1).values, ref.sort(1).values)


def _assert_exact_soft(q, values: torch.Tensor, k: int, sigma: float = 5.0, tol: float = 1e-4):
    """Our k bins are distinct, nearest first and no farther than the true k-th nearest
    (so exactly the k nearest, up to ties within ``tol``); weights from true distances."""
    sparse = q.encode_soft(values, k, sigma)
    n, d, h, w = values.shape
    assert sparse.index.shape == sparse.weight.shape == (n, k, h, w)
    low, high = (torch.tensor(b).view(1, d, 1, 1) for b in (q.box_low, q.box_high))
    points = values.clamp(low, high).permute(0, 2, 3, 1).reshape(-1, d).double()
    dist = torch.cdist(points, q.centers.double())
    kth = dist.kthvalue(k, 1, keepdim=True).values
    index = sparse.index.permute(0, 2, 3, 1).reshape(-1, k)
    ours = dist.gather(1, index)
    assert (index.sort(1).values.diff(1) > 0).all()
    assert (ours.diff(1) >= -tol).all()
    assert (ours <= kth + tol).all()
    weight = sparse.weight.permute(0, 2, 3, 1).reshape(-1, k).double()
    assert torch.allclose(weight, torch.softmax(-ours.square() / (2 * sigma**2), 1), atol=1e-5)


def _ab_test_values() -> torch.Tensor:
    """(1,2,P,1): random values over (and past) the whole grid box, every point of a 2.5-grid
    (bins, grid lines, cell centres such as (5,5) with an 8-way tie for the 5th nearest), and
    points on diagonal and other bisectors."""
    g = torch.Generator().manual_seed(1)
    uniform = torch.rand(2, 40000, generator=g)
    uniform = torch.stack([uniform[0] * 210 - 100, uniform[1] * 230 - 120])
    grid = torch.stack(
        torch.meshgrid(torch.arange(-95, 105.1, 2.5), torch.arange(-115, 105.1, 2.5), indexing="ij")
    ).reshape(2, -1)
    t = torch.rand(3000, generator=g) * 200 - 100
    m = torch.randint(-10, 11, (3000,), generator=g) * 10.0
    bisectors = torch.cat(
        [
            torch.stack([t, m - t]),  # between (x, y) and (x + 10, y + 10)
            torch.stack([t, t + m]),  # between (x, y) and (x + 10, y - 10)
            torch.stack([t, m + 5 - 2 * t]),  # between (x, y) and (x + 20, y + 10)
        ],
        1,
    )
    return torch.cat([uniform, grid, bisectors], 1)[None, :, :, None]


@pytest.mark.parametrize("k", [1, 5])
def test_soft_encoding_equals_brute_force_everywhere(ab, k, monkeypatch):
    monkeypatch.setattr(quantize, "_BLOCK", 5000)  # several blocks, the last one partial
    _assert_exact_soft(ab, _ab_test_values(), k)


def test_soft_encoding_layout_for_batches(ab):
    g = torch.Generator().manual_seed(2)
    values = (torch.rand(3, 2, 9, 11, generator=g) * 200 - 100)[:, :, 1:, ::2]  # strided
    _assert_exact_soft(ab, values, 5)
    first = ab.encode_soft(values[:1], 5)
    assert torch.equal(ab.encode_soft(values, 5).index[:1], first.index)


@pytest.mark.parametrize("k", [1, 5])
def test_soft_encoding_equals_brute_force_for_lightness(k):
    g = torch.Generator().manual_seed(3)
    values = torch.cat([torch.rand(5000, generator=g) * 110 - 5, torch.arange(-1, 101.1, 0.25)])
    _assert_exact_soft(build_quantizer("L50"), values.view(1, 1, -1, 1), k)


def test_soft_encoding_rejects_more_neighbours_than_bins():
    with pytest.raises(ValueError, match="number of bins"):
        build_quantizer("uniform:-1:1:4").encode_soft(torch.zeros(1, 1, 2, 2), k=5)


@pytest.mark.parametrize("n", range(1, 13))
def test_selection_network_sorts_the_k_smallest(n):
    # 0-1 principle: a comparator network sorts every input if it sorts every 0/1 input.
    inputs = torch.tensor(list(itertools.product([0, 1], repeat=n))).T
    for k in range(1, n + 1):
        rows = list(inputs.clone())
        for a, b, low, high in _selection_network(n, k):
            rows[a], rows[b] = (
                torch.minimum(rows[a], rows[b]) if low else None,
                torch.maximum(rows[a], rows[b]) if high else None,
            )
        assert torch.equal(torch.stack(rows[:k]), inputs.sort(0).values[:k])


def test_decode_of_encode_is_within_half_a_cell_diagonal(ab):
    values = _in_gamut_ab()
    one_hot = torch.nn.functional.one_hot(ab.encode_hard(values), 313).permute(0, 3, 1, 2)
    logits = torch.log(one_hot.float().clamp(min=1e-12))
    decoded = ab.decode(logits, "annealed", 0.38)
    assert (decoded - values).norm(dim=1).max() <= 5 * math.sqrt(2) + 1e-4


def test_annealed_mean_limits(ab):
    logits = torch.randn(2, 313, 3, 3, generator=torch.Generator().manual_seed(0))
    mode = ab.decode(logits, "mode")
    mean = ab.decode(logits, "mean")
    assert torch.allclose(ab.decode(logits, "annealed", 1e-4), mode, atol=1e-3)
    assert torch.allclose(ab.decode(logits, "annealed", 1.0), mean, atol=1e-5)
    probs = torch.softmax(logits, 1)
    assert torch.allclose(mean, torch.einsum("nqhw,qd->ndhw", probs, ab.centers), atol=1e-5)
    with pytest.raises(ValueError, match="unknown decoding"):
        ab.decode(logits, "median")


def test_lightness_bins():
    L = build_quantizer("L50")
    assert L.num_bins == 50
    assert torch.allclose(L.centers[:, 0], torch.arange(1.0, 100.0, 2.0))
    values = torch.tensor([0.0, 1.99, 2.01, 50.5, 99.9, 100.0]).view(1, 1, 1, 6)
    assert L.encode_hard(values).flatten().tolist() == [0, 0, 1, 25, 49, 49]


def test_uniform_quantizer_spec_and_errors():
    q = build_quantizer("uniform:-1:1:4")
    assert q.centers[:, 0].tolist() == [-0.75, -0.25, 0.25, 0.75]
    with pytest.raises(ValueError, match="unknown quantizer"):
        build_quantizer("uniform:0:1")


def test_prior_and_rebalancing_weights_normalise(ab):
    index = ab.encode_hard(_in_gamut_ab())
    prior = bin_histogram(index, 313)
    assert prior.sum() == index.numel()
    weights = rebalancing_weights(prior, 0.5)
    p = prior / prior.sum()
    assert torch.isclose((p * weights.double()).sum(), torch.tensor(1.0, dtype=torch.float64))
    # Rare bins get larger weights than common ones.
    assert weights[prior.argmin()] > weights[prior.argmax()]
    # mix = 1: uniform weights.
    assert torch.allclose(rebalancing_weights(prior, 1.0), torch.ones(313))
