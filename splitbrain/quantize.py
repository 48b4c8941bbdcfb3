"""Quantization of target channels into classes, batched on the device.

A quantizer's bin centres lie on a regular grid (the ab bins on a 10-grid, the L bins on a
2-grid), so a value's grid cell is found by arithmetic. Hard encoding looks up the bin at the
value's grid point, if it is a bin (O(1)). The k nearest bins (soft encoding, and hard encoding
where the grid point is not a bin) come from a table over cells ``SOFT_SUBDIVISION`` times
finer than the grid: per cell, the few bins that can be among the k nearest of any value in it
(usually k or k + 1), whose distances are computed and ordered by a small selection network.
Every lookup is an exact nearest-neighbour search with no Python loop over pixels. Values
outside the grid's extent (half a cell beyond the outermost bins; for ab this box holds the
whole sRGB gamut) are clamped onto it.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from . import color

# Nearest-bin tables use cells this many times finer than the grid: finer cells need fewer
# candidates, but 4 already gives k + 1 almost everywhere and keeps the tables in cache.
SOFT_SUBDIVISION = 4
# Cells needing more candidates than most take a slower path; per candidate, a value there
# costs about this many in the fast path (it is gathered out and scattered back).
_WIDE_COST = 3.0
# On the CPU, values are searched in blocks of this many, one row of a block per op: below
# ATen's intra-op grain size (32768), ops run on the calling thread (no barrier to stall on
# when other processes hold the cores), and rows stay in cache and reuse freed memory (fresh
# memory costs more than this arithmetic). Accelerators take blocks 128 times larger: kernel
# launches are their overhead.
_BLOCK = (1 << 15) - 1


class SoftTargets(NamedTuple):
    """Sparse soft targets: the k nearest bins (N,k,H,W), nearest first, and their weights."""

    index: Tensor
    weight: Tensor

    def dense(self, num_bins: int) -> Tensor:
        n, k, h, w = self.index.shape
        out = self.weight.new_zeros(n, num_bins, h, w)
        return out.scatter_(1, self.index, self.weight)


@functools.cache
def _selection_network(n: int, k: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """Comparators (a, b, keep the min at a, keep the max at b) of Batcher's odd-even merge
    sort of n items, pruned to those the k smallest outputs depend on."""
    size, pairs, p = 1 << (n - 1).bit_length(), [], 1
    while p < size:
        step = p
        while step:
            for j in range(step % p, size - step, 2 * step):
                for i in range(j, j + min(step, size - j - step)):
                    if i // (2 * p) == (i + step) // (2 * p) and i + step < n:
                        pairs.append((i, i + step))
            step //= 2
        p *= 2
    live, network = set(range(k)), []
    for a, b in reversed(pairs):
        if a in live or b in live:
            network.append((a, b, a in live, b in live))
            live |= {a, b}
    return tuple(reversed(network))


class _NeighbourTable(NamedTuple):
    """Per fine cell (columns): the bins that can be among the k nearest of its values, then
    padding by bins that never are. Rows ``[:fast]`` hold all candidates of every cell that
    is not ``wide``."""

    bins: Tensor  # (C, cells) int64
    coords: Tensor  # (D, C, cells) float32: the bins' centres
    fast: int
    wide: Tensor  # (cells,) bool


class GridQuantizer(nn.Module):
    """Bins at a subset of the points ``origin + spacing * integer`` of a D-dimensional grid.

    Values are (N,D,H,W); bins are (Q,D).
    """

    def __init__(
        self, centers: Tensor, spacing: float, origin: float = 0.0, name: str = ""
    ) -> None:
        super().__init__()
        centers = centers.double()
        self.name = name
        self.spacing = float(spacing)
        self.num_bins, self.dim = centers.shape
        steps = torch.round((centers - origin) / spacing)
        if not torch.allclose(origin + steps * spacing, centers):
            raise ValueError(f"bin centres of {name!r} are not on a grid of spacing {spacing}")
        low = steps.min(0).values
        self.grid_shape = (steps.max(0).values - low + 1).long().tolist()
        # The box covered by the grid cells, per dimension.
        self.box_low = (origin + (low - 0.5) * spacing).tolist()
        self.box_high = [
            lo + n * spacing for lo, n in zip(self.box_low, self.grid_shape, strict=True)
        ]
        self.register_buffer("centers", centers.float(), persistent=False)
        self._centers64 = centers
        self._bin_mask = (1 << max(1, (self.num_bins - 1).bit_length())) - 1
        cells = self._cell_index(centers.T.reshape(1, self.dim, -1, 1), 1).flatten()
        bin_at_cell = torch.full((math.prod(self.grid_shape),), -1, dtype=torch.long)
        bin_at_cell[cells] = torch.arange(self.num_bins)
        self.register_buffer("bin_at_cell", bin_at_cell, persistent=False)
        self._neighbour_tables: dict[tuple[int, str], _NeighbourTable] = {}

    def _cell_index(self, values: Tensor, subdivision: int) -> Tensor:
        """(N,D,H,W) values -> (N,H,W) index of their cell on a grid ``subdivision`` finer."""
        width = self.spacing / subdivision
        index = None
        for d in range(self.dim):
            cells = self.grid_shape[d] * subdivision
            i = ((values[:, d] - self.box_low[d]) / width).floor_().clamp_(0, cells - 1).long()
            index = i if index is None else index * cells + i
        return index

    def _fine_cell_centres(self, subdivision: int) -> Tensor:
        """(cells, D) float64 centres of the cells ``subdivision`` finer, in index order."""
        width = self.spacing / subdivision
        axes = [
            lo + width * (torch.arange(n * subdivision, dtype=torch.float64) + 0.5)
            for lo, n in zip(self.box_low, self.grid_shape, strict=True)
        ]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, self.dim)

    def _neighbour_table(self, k: int) -> _NeighbourTable:
        key = (k, str(self.centers.device))
        if key not in self._neighbour_tables:
            table = self._build_neighbour_table(k)
            device = self.centers.device
            self._neighbour_tables[key] = table._replace(
                bins=table.bins.to(device),
                coords=table.coords.to(device),
                wide=table.wide.to(device),
            )
        return self._neighbour_tables[key]

    def _build_neighbour_table(self, k: int) -> _NeighbourTable:
        """A bin is dropped from a cell's candidates when k others are no farther from it at
        every corner of the cell: squared-distance differences are affine, so then they are
        no farther anywhere in the cell. Dropped bins, nearest first, pad the rows: distinct
        bins that are never needed (at most tied), so the selection cannot pick a duplicate."""
        if not 1 <= k <= self.num_bins:
            raise ValueError(f"k={k} must be between 1 and the number of bins {self.num_bins}")
        width = self.spacing / SOFT_SUBDIVISION
        points, centres = self._fine_cell_centres(SOFT_SUBDIVISION), self._centers64
        tolerance = 1e-9 * self.spacing**2  # so that exact ties stay ties despite rounding
        # Every bin among a cell's k nearest lies within d_k(c) + 2r of its centre c.
        dist = torch.cdist(points, centres)
        kth = dist.kthvalue(k, 1, keepdim=True).values
        size = int((dist <= kth + width * math.sqrt(self.dim) + tolerance).sum(1).max())
        near = dist.topk(size, 1, largest=False).indices
        no_farther = None
        for corner in itertools.product((-width / 2, width / 2), repeat=self.dim):
            d2 = (points[:, None] + torch.tensor(corner) - centres[near]).square().sum(-1)
            pair = d2[:, :, None] <= d2[:, None, :] + tolerance  # [cell, a, b]: a <= b
            no_farther = pair if no_farther is None else no_farther & pair
        kept = no_farther.sum(1) - 1 < k  # - 1: a bin's pair with itself
        counts = kept.sum(1)
        order = (~kept).byte().argsort(dim=1, stable=True)[:, : int(counts.max())]
        bins = near.gather(1, order).T.contiguous()
        # The fast width that minimises the expected work, weighing each cell alike.
        widths = torch.arange(k, len(bins) + 1)
        wide_share = (counts[:, None] > widths).double().mean(0)
        fast = int(widths[(widths + _WIDE_COST * len(bins) * wide_share).argmin()])
        coords = self._centers64[bins].permute(2, 0, 1).float().contiguous()
        return _NeighbourTable(bins, coords, fast, counts > fast)

    @staticmethod
    def _keys(values: list[Tensor], cell: Tensor, bins: Tensor, coords: Tensor) -> list[Tensor]:
        """Rows of keys of the C candidates (``bins`` (C, cells), their ``coords``) of each
        value's ``cell``; ``values`` per dimension.

        A key is the float32 squared distance widened to float64 (exact, its 29 low bits
        zero) with the bin index in those bits, viewed as int64: non-negative floats order
        like their bit patterns, so comparing keys compares distances (ties by bin) and
        carries the bin along.
        """
        keys = []
        for c, candidate in enumerate(bins):
            d2 = None
            for x, centre in zip(values, coords, strict=True):
                diff = centre[c].index_select(0, cell)
                diff = torch.sub(x, diff, out=diff)
                d2 = diff.square_() if d2 is None else d2.addcmul_(diff, diff)
            key = d2.double().view(torch.int64)
            keys.append(key.bitwise_or_(candidate.index_select(0, cell)))
        return keys

    @staticmethod
    def _smallest(rows: list[Tensor], k: int) -> list[Tensor]:
        """The k smallest of the ``rows`` per column, in order, by a sorting network of
        ``minimum``/``maximum`` (no Python work per value), in place."""
        spare = torch.empty_like(rows[0])
        for a, b, low, high in _selection_network(len(rows), k):
            if low and high:
                torch.maximum(rows[a], rows[b], out=spare)
                torch.minimum(rows[a], rows[b], out=rows[a])
                rows[b], spare = spare, rows[b]
            elif low:
                torch.minimum(rows[a], rows[b], out=rows[a])
            else:
                torch.maximum(rows[a], rows[b], out=rows[b])
        return rows[:k]

    def _nearest_keys(self, values: Tensor, table: _NeighbourTable, k: int) -> list[Tensor]:
        """k rows of keys (see ``_keys``) of the k nearest bins of (D, m) values, in order."""
        box = zip(self.box_low, self.box_high, self.grid_shape, strict=True)
        clamped, cell = [], None  # the values clamped into the box; their fine cells
        for d, (lo, hi, n) in enumerate(box):
            clamped.append(values[d].clamp(lo, hi))
            fine = n * SOFT_SUBDIVISION
            i = (clamped[d] - lo).div_(self.spacing / SOFT_SUBDIVISION).clamp_(max=fine - 1)
            i = i.long()  # the floor, as i >= 0
            cell = i if cell is None else cell.mul_(fine).add_(i)
        fast = slice(table.fast)
        best = self._smallest(self._keys(clamped, cell, table.bins[fast], table.coords), k)
        wide = table.wide.index_select(0, cell)
        if wide.any():
            wide = wide.nonzero().squeeze(1)
            clamped, cell = [x[wide] for x in clamped], cell[wide]
            exact = self._smallest(self._keys(clamped, cell, table.bins, table.coords), k)
            for key, fix in zip(best, exact, strict=True):
                key[wide] = fix
        return best

    def _nearest(self, values: Tensor, k: int, sigma: float = 1.0) -> tuple[Tensor, Tensor]:
        """Exact k nearest bins (N,k,H,W), nearest first, and their Gaussian weights
        softmax(-d^2 / (2 sigma^2)) over the k (d: Euclidean distance to the bin centre).

        The outputs are k-major ((k,N,H,W) transposed), so each block writes whole rows.
        """
        n, _, h, w = values.shape
        size = n * h * w
        table = self._neighbour_table(k)
        flat = values.transpose(0, 1).reshape(self.dim, size).float()
        index = torch.empty(k, size, dtype=torch.long, device=values.device)
        weight = torch.empty(k, size, device=values.device)
        scale = -0.5 / sigma**2 * math.log2(math.e)  # in base 2: exp2 is the faster exp
        step = _BLOCK if values.device.type == "cpu" else (_BLOCK + 1) << 7
        index_rows, weight_rows = list(index), list(weight)
        for start in range(0, size, step):
            block = slice(start, start + step)
            keys = self._nearest_keys(flat[:, block], table, k)
            rows = [row[block] for row in weight_rows]
            for key, out, d2 in zip(keys, index_rows, rows, strict=True):
                torch.bitwise_and(key, self._bin_mask, out=out[block])
                # The bin bits lie below half a float32 ulp: converting rounds them away.
                d2.copy_(key.view(torch.float64))
            # Softmax over k, relative to the nearest bin (whose term is 1).
            offset = rows[0] * -scale
            total = rows[0].fill_(1)
            for d2 in rows[1:]:
                total += torch.add(offset, d2, alpha=scale, out=d2).exp2_()
            total.reciprocal_()
            for d2 in rows[1:]:
                d2 *= total
        return index.view(k, n, h, w).transpose(0, 1), weight.view(k, n, h, w).transpose(0, 1)

    def encode_hard(self, values: Tensor) -> Tensor:
        """(N,D,H,W) -> (N,H,W) index of the nearest bin."""
        index = self.bin_at_cell[self._cell_index(values, 1)]
        off = index < 0
        if off.any():  # the grid point is not a bin: search the cell's candidates
            nearest = self._nearest(values.movedim(1, -1)[off].T[None, :, :, None], 1)[0]
            index[off] = nearest.flatten()
        return index

    def encode_soft(self, values: Tensor, k: int = 5, sigma: float = 5.0) -> SoftTargets:
        """The ECCV16 soft encoding: the k nearest bins weighted by a Gaussian of ``sigma``
        on their distance, normalised to sum to 1. Sparse; ``.dense(Q)`` gives (N,Q,H,W)."""
        return SoftTargets(*self._nearest(values, k, sigma))

    def decode(self, logits: Tensor, method: str = "annealed", temperature: float = 0.38) -> Tensor:
        """(N,Q,H,W) logits -> (N,D,H,W) values.

        ``annealed``: expectation over bin centres of softmax(logits / T) (T -> 0: mode,
        T = 1: mean); ``mean``; ``mode``.
        """
        if method == "mode":
            return self.centers[logits.argmax(1)].movedim(-1, 1)
        if method == "mean":
            temperature = 1.0
        elif method != "annealed":
            raise ValueError(f"unknown decoding {method!r}; choose annealed, mean or mode")
        with torch.autocast(logits.device.type, enabled=False):  # values to within 1e-6 ab
            probs = torch.softmax(logits.float() / temperature, dim=1)
            return torch.einsum("nqhw,qd->ndhw", probs, self.centers)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, bins={self.num_bins}, dim={self.dim}, spacing={self.spacing}"


def ab_quantizer() -> GridQuantizer:
    """The paper's 313 in-gamut ab bins on a 10-grid."""
    return GridQuantizer(color.ab_bins(dtype=torch.float64), spacing=10.0, name="ab313")


def uniform_quantizer(low: float, high: float, bins: int, name: str = "") -> GridQuantizer:
    """``bins`` equal bins on [low, high], one channel (L: 0..100 in 50 bins of width 2)."""
    width = (high - low) / bins
    centers = low + width * (torch.arange(bins, dtype=torch.float64) + 0.5)
    return GridQuantizer(centers.unsqueeze(1), spacing=width, origin=low + width / 2, name=name)


def build_quantizer(spec: str) -> GridQuantizer:
    """``ab313``, ``L50`` or ``uniform:LOW:HIGH:BINS`` (for any single channel)."""
    if spec == "ab313":
        return ab_quantizer()
    if spec == "L50":
        return uniform_quantizer(0.0, 100.0, 50, name="L50")
    if spec.startswith("uniform:"):
        try:
            low, high, bins = spec.split(":")[1:]
            return uniform_quantizer(float(low), float(high), int(bins), name=spec)
        except ValueError:
            pass
    raise ValueError(f"unknown quantizer {spec!r}; use ab313, L50 or uniform:LOW:HIGH:BINS")
