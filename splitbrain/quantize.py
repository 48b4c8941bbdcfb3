"""Quantization of target channels into classes, batched on the device.

A quantizer's bin centres lie on a regular grid (the ab bins on a 10-grid, the L bins on a
2-grid), so a value's grid cell is found by arithmetic. Per cell we precompute (a) the bin at
that grid point, if it is a bin (O(1) hard encoding), and (b) a short list of candidate bins
that provably contains the k nearest bins of every value in the cell (soft encoding, and hard
encoding where the grid point is not a bin). Every lookup is an exact nearest-neighbour search
with no Python loop over pixels. Values outside the grid's extent (half a cell beyond the
outermost bins; for ab this box holds the whole sRGB gamut) are clamped onto it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from . import color

# Soft-encoding tables use cells this many times finer than the grid: fewer candidates each.
SOFT_SUBDIVISION = 4


class SoftTargets(NamedTuple):
    """Sparse soft targets: the k nearest bins (N,k,H,W), nearest first, and their weights."""

    index: Tensor
    weight: Tensor

    def dense(self, num_bins: int) -> Tensor:
        n, k, h, w = self.index.shape
        out = self.weight.new_zeros(n, num_bins, h, w)
        return out.scatter_(1, self.index, self.weight)


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
        self.box_high = [lo + n * spacing for lo, n in zip(self.box_low, self.grid_shape)]
        # Bin centres padded with one far-away point, the filler of the candidate tables.
        far = torch.full((1, self.dim), 1e6, dtype=torch.float64)
        self.register_buffer("centers", centers.float(), persistent=False)
        self.register_buffer("padded_centers", torch.cat([centers, far]).float(), persistent=False)
        cells = self._cell_index(centers.T.reshape(1, self.dim, -1, 1), 1).flatten()
        bin_at_cell = torch.full((math.prod(self.grid_shape),), -1, dtype=torch.long)
        bin_at_cell[cells] = torch.arange(self.num_bins)
        self.register_buffer("bin_at_cell", bin_at_cell, persistent=False)
        self._tables: dict[tuple[int, int, str], Tensor] = {}

    def _cell_index(self, values: Tensor, subdivision: int) -> Tensor:
        """(N,D,H,W) values -> (N,H,W) index of their cell on a grid ``subdivision`` finer."""
        width = self.spacing / subdivision
        index = None
        for d in range(self.dim):
            cells = self.grid_shape[d] * subdivision
            i = ((values[:, d] - self.box_low[d]) / width).floor_().clamp_(0, cells - 1).long()
            index = i if index is None else index * cells + i
        return index

    def _clamp(self, values: Tensor) -> Tensor:
        return torch.stack(
            [values[:, d].clamp(lo, hi) for d, (lo, hi) in enumerate(zip(self.box_low,
                                                                        self.box_high))], 1)

    def candidates(self, k: int, subdivision: int = 1) -> Tensor:
        """(cells, C) bin indices per cell, padded with ``num_bins``, holding the k nearest
        bins of every value in the cell: all bins within d_k(c) + 2r of the cell centre c,
        r the cell's half-diagonal (by the triangle inequality)."""
        key = (k, subdivision, str(self.centers.device))
        if key not in self._tables:
            width = self.spacing / subdivision
            axes = [
                lo + width * (torch.arange(n * subdivision, dtype=torch.float64) + 0.5)
                for lo, n in zip(self.box_low, self.grid_shape)
            ]
            points = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, self.dim)
            dist = torch.cdist(points, self.centers.double().cpu())
            kth = dist.topk(min(k, self.num_bins), largest=False).values[:, -1:]
            within = dist <= kth + width * math.sqrt(self.dim) + 1e-6
            size = int(within.sum(1).max())
            order = torch.where(within, dist, torch.inf).argsort(1)[:, :size]
            table = torch.where(within.gather(1, order), order, self.num_bins)
            self._tables[key] = table.to(self.centers.device)
        return self._tables[key]

    def _nearest(self, values: Tensor, k: int, subdivision: int) -> tuple[Tensor, Tensor]:
        """Exact k nearest bins (N,k,H,W), nearest first, and squared distances.

        Selection packs each candidate's slot into the low mantissa bits of its float32
        squared distance (non-negative floats order like their bit patterns), so k passes of
        an integer ``amin`` replace a much slower ``topk``; distances keep 19 bits of mantissa.
        """
        values = self._clamp(values).float()
        cells = self._cell_index(values, subdivision)
        table = self.candidates(k, subdivision)
        candidates = table.index_select(0, cells.flatten()).view(*cells.shape, -1)
        d2 = None
        for d in range(self.dim):
            diff = self.padded_centers[:, d][candidates] - values[:, d].unsqueeze(-1)
            d2 = diff.square() if d2 is None else d2.add_(diff.square())
        slot_bits = max(1, (candidates.shape[-1] - 1).bit_length())
        low = (1 << slot_bits) - 1
        slots = torch.arange(candidates.shape[-1], dtype=torch.int32, device=values.device)
        keys = (d2.view(torch.int32) & ~low) | slots
        best = []
        for _ in range(k):
            smallest = keys.amin(-1, keepdim=True)
            best.append(smallest)
            keys.masked_fill_(keys == smallest, torch.iinfo(torch.int32).max)
        best = torch.cat(best, -1)
        index = candidates.gather(-1, (best & low).long())
        return index.movedim(-1, 1), (best & ~low).view(torch.float32).movedim(-1, 1)

    def encode_hard(self, values: Tensor) -> Tensor:
        """(N,D,H,W) -> (N,H,W) index of the nearest bin."""
        index = self.bin_at_cell[self._cell_index(values, 1)]
        off = index < 0
        if off.any():  # the grid point is not a bin: search the cell's candidates
            nearest = self._nearest(values.movedim(1, -1)[off].T[None, :, :, None], 1, 1)[0]
            index[off] = nearest.flatten()
        return index

    def encode_soft(self, values: Tensor, k: int = 5, sigma: float = 5.0) -> SoftTargets:
        """The ECCV16 soft encoding: the k nearest bins weighted by a Gaussian of ``sigma``
        on their distance, normalised to sum to 1. Sparse; ``.dense(Q)`` gives (N,Q,H,W)."""
        index, d2 = self._nearest(values, k, SOFT_SUBDIVISION)
        return SoftTargets(index, torch.softmax(-d2 / (2 * sigma**2), dim=1))

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
