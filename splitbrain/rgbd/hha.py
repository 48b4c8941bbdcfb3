"""HHA encoding of metric depth (Gupta, Girshick, Arbelaez & Malik, ECCV 2014).

The split-brain RGB-D model (SPEC section 6) sees depth as a three-channel image: horizontal
disparity, height above the lowest point along gravity, and the angle between the surface
normal and gravity. Everything here is batched torch on whatever device the depth lives on,
with no Python loop over pixels, so HHA can be computed on the fly or cached once per dataset.

Conventions: camera coordinates are x right, y down, z forward (metres); pixel ``(u, v)`` =
(column, row) has its centre at integer coordinates starting at 0. Missing depth is 0 or
non-finite and is masked everywhere (never encoded as near).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

log = logging.getLogger("splitbrain.rgbd")

# Kinect v1 nominal horizontal field of view (vertical: 46.6), used when intrinsics are unknown.
KINECT_HFOV_DEG = 58.5

# Channel scalings (documented in docs/RGBD.md). Disparity: 255 * min(1, NEAR / z), so z = 0.5 m
# and nearer saturate at 255, 1 m -> 127.5, 4 m -> 31.9. Height: 255 * min(1, h / MAX_HEIGHT).
# Angle: degrees * 255 / 180.
DISPARITY_NEAR_M = 0.5
HEIGHT_MAX_M = 3.0
# The "lowest point" is this quantile of the valid heights, so that a few outliers below the
# floor (reflections, flying pixels) cannot shift the whole height channel.
FLOOR_QUANTILE = 0.01
NORMAL_RADIUS = 3
GRAVITY_THRESHOLDS_DEG = (45.0, 15.0)
_CHUNK_PIXELS = 1 << 18


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels for 0-based pixel-centre coordinates."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def default(cls, height: int, width: int) -> Intrinsics:
        """Kinect-like camera: square pixels with a 58.5 degree horizontal field of view.

        The vertical field of view then follows from the aspect ratio (45.6 degrees at 4:3,
        close to the Kinect's nominal 46.6); the principal point is the image centre.
        """
        f = (width / 2) / math.tan(math.radians(KINECT_HFOV_DEG) / 2)
        return cls(f, f, (width - 1) / 2, (height - 1) / 2)

    @classmethod
    def from_one_based(cls, fx: float, fy: float, cx: float, cy: float) -> Intrinsics:
        """Intrinsics published for MATLAB's 1-based pixel grid (NYU and SUN RGB-D toolboxes)."""
        return cls(fx, fy, cx - 1.0, cy - 1.0)


CameraSpec = Intrinsics | Sequence[Intrinsics]


class HHA(NamedTuple):
    """HHA image (N,3,H,W) in [0, 255], its valid mask (N,H,W) and the gravity used (N,3)."""

    image: Tensor
    valid: Tensor
    gravity: Tensor


def _check_depth(depth: Tensor, name: str = "depth") -> None:
    if depth.dim() != 3:
        raise ValueError(f"{name} must be a (N,H,W) tensor, got shape {tuple(depth.shape)}")
    if not depth.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in metres, got {depth.dtype}")


def valid_depth(depth: Tensor) -> Tensor:
    """Pixels with a measurement: finite and strictly positive."""
    return torch.isfinite(depth) & (depth > 0)


def _camera_tensors(K: CameraSpec, n: int, like: Tensor) -> tuple[Tensor, ...]:
    """fx, fy, cx, cy as (N,1,1) tensors, from one camera for all frames or one per frame."""
    cams = [K] * n if isinstance(K, Intrinsics) else list(K)
    if len(cams) != n:
        raise ValueError(f"got {len(cams)} intrinsics for a batch of {n} frames")
    values = torch.tensor(
        [[c.fx, c.fy, c.cx, c.cy] for c in cams], dtype=like.dtype, device=like.device
    )
    return tuple(values[:, i].view(n, 1, 1) for i in range(4))


def _rays(shape: torch.Size, K: CameraSpec, like: Tensor) -> tuple[Tensor, Tensor]:
    """Normalised image coordinates (x/z, y/z) of every pixel, each (N,H,W)."""
    n, h, w = shape
    fx, fy, cx, cy = _camera_tensors(K, n, like)
    u = torch.arange(w, dtype=like.dtype, device=like.device).view(1, 1, w)
    v = torch.arange(h, dtype=like.dtype, device=like.device).view(1, h, 1)
    return ((u - cx) / fx).expand(n, h, w), ((v - cy) / fy).expand(n, h, w)


def backproject(depth: Tensor, K: CameraSpec) -> Tensor:
    """z-depth (N,H,W) in metres -> camera-frame points (N,3,H,W) in metres."""
    _check_depth(depth)
    xn, yn = _rays(depth.shape, K, depth)
    return torch.stack((xn * depth, yn * depth, depth), 1)


def range_to_z(range_m: Tensor, K: CameraSpec) -> Tensor:
    """Euclidean distance from the camera centre (Cornell-style range maps) -> z-depth.

    Zeros (missing) stay zero.
    """
    _check_depth(range_m, "range_m")
    xn, yn = _rays(range_m.shape, K, range_m)
    return range_m / torch.sqrt(1 + xn * xn + yn * yn)


def _work_dtype(device: torch.device) -> torch.dtype:
    # Second moments of points metres away lose the few-millimetre plane residual in float32;
    # use float64 wherever the backend has it.
    return torch.float32 if device.type == "mps" else torch.float64


def _box_sum(x: Tensor, radius: int) -> Tensor:
    """Sum over the (2r+1)^2 window around each pixel of (N,C,H,W), zero outside the image."""
    k = 2 * radius + 1
    for dim in (-1, -2):
        pad = [0, 0, 0, 0]
        pad[0 if dim == -1 else 2] = radius + 1
        pad[1 if dim == -1 else 3] = radius
        c = torch.nn.functional.pad(x, pad).cumsum(dim)
        size = x.shape[dim]
        x = c.narrow(dim, k, size) - c.narrow(dim, 0, size)
    return x


def _smallest_eigenvector(c: Tensor) -> tuple[Tensor, Tensor]:
    """Closed-form unit eigenvector of the smallest eigenvalue of symmetric 3x3 fields.

    ``c`` holds the six unique entries (N,6,H,W) in the order xx, xy, xz, yy, yz, zz; returns
    (N,3,H,W) vectors and a mask of where that eigenvector is well defined. Closed form because
    a batched eigh over every pixel is an order of magnitude slower on CPU: the eigenvalue by
    the trigonometric formula, then the eigenvector as the adjugate of the rank-2 matrix
    M = C - lambda I, whose every column is proportional to it (column k by e_k^2, read off the
    diagonal, so the column with the largest diagonal is the best conditioned).
    """
    a00, a01, a02, a11, a12, a22 = c.unbind(1)
    q = (a00 + a11 + a22) / 3
    b00, b11, b22 = a00 - q, a11 - q, a22 - q
    p = torch.sqrt(
        (b00 * b00 + b11 * b11 + b22 * b22 + 2 * (a01 * a01 + a02 * a02 + a12 * a12)) / 6
    )
    det = (
        b00 * (b11 * b22 - a12 * a12)
        - a01 * (a01 * b22 - a12 * a02)
        + a02 * (a01 * a12 - b11 * a02)
    )
    r = (det / (2 * p.clamp_min(torch.finfo(c.dtype).tiny) ** 3)).clamp(-1, 1)
    lam = q + 2 * p * torch.cos(torch.acos(r) / 3 + 2 * math.pi / 3)
    m00, m11, m22 = a00 - lam, a11 - lam, a22 - lam
    d0, d1, d2 = m11 * m22 - a12 * a12, m00 * m22 - a02 * a02, m00 * m11 - a01 * a01
    o01, o02, o12 = a02 * a12 - a01 * m22, a01 * a12 - a02 * m11, a01 * a02 - m00 * a12
    col0 = torch.stack((d0, o01, o02), 1)
    col1 = torch.stack((o01, d1, o12), 1)
    col2 = torch.stack((o02, o12, d2), 1)
    first = (d0 >= d1) & (d0 >= d2)
    second = ~first & (d1 >= d2)
    vec = torch.where(first[:, None], col0, torch.where(second[:, None], col1, col2))
    norm = vec.norm(dim=1)
    # Rank-deficient M (collinear or coincident points): no plane to speak of.
    ok = norm > 1e-6 * (3 * q) ** 2
    return vec / norm.clamp_min(torch.finfo(c.dtype).tiny)[:, None], ok


def surface_normals(points: Tensor, valid: Tensor, radius: int = NORMAL_RADIUS) -> Tensor:
    """Unit normals (N,3,H,W) of the plane fitted to each pixel's valid neighbours.

    A least-squares plane over the (2r+1)^2 window (normal = smallest eigenvector of the
    box-filtered covariance, as in Gupta et al.), ignoring invalid pixels, oriented towards the
    camera. Zero where the pixel is invalid or its neighbourhood has no well-defined plane.
    """
    if points.dim() != 4 or points.shape[1] != 3:
        raise ValueError(f"points must be (N,3,H,W), got shape {tuple(points.shape)}")
    if valid.shape != points[:, 0].shape:
        raise ValueError(f"valid must be (N,H,W) {tuple(points[:, 0].shape)}, got {valid.shape}")
    dtype = _work_dtype(points.device)
    p = torch.where(valid[:, None], points.to(dtype), 0)
    x, y, z = p.unbind(1)
    w = valid.to(dtype)
    moments = torch.stack((w, x, y, z, x * x, x * y, x * z, y * y, y * z, z * z), 1)
    sums = _box_sum(moments, radius)
    count = sums[:, 0]
    mean = sums[:, 1:4] / count.clamp_min(1)[:, None]
    mx, my, mz = mean.unbind(1)
    outer = torch.stack((mx * mx, mx * my, mx * mz, my * my, my * mz, mz * mz), 1)
    cov = sums[:, 4:] / count.clamp_min(1)[:, None] - outer
    normal, ok = _smallest_eigenvector(cov)
    towards_camera = torch.where((normal * p).sum(1, keepdim=True) > 0, -normal, normal)
    keep = valid & ok & (count >= 3)
    return torch.where(keep[:, None], towards_camera, 0).to(points.dtype)


def estimate_gravity(
    normals: Tensor,
    valid: Tensor,
    iterations: int = 5,
    thresholds_deg: Sequence[float] = GRAVITY_THRESHOLDS_DEG,
    initial: Tensor | None = None,
) -> Tensor:
    """Gravity "up" direction (N,3) in camera coordinates, by Gupta et al.'s iteration.

    Indoor surfaces are mostly horizontal or vertical. Starting from the camera's up (-y),
    each step takes the normals within d degrees of parallel to the estimate (set P) and within
    d degrees of orthogonal (set O) and picks the unit g minimising
    sum_P sin^2(n, g) + sum_O cos^2(n, g) = |P| + g^T (sum_O n n^T - sum_P n n^T) g,
    i.e. the eigenvector of the smallest eigenvalue of N_O^T N_O - N_P^T N_P, signed to agree
    with the previous estimate. ``iterations`` steps are run at each threshold in turn.
    """
    n, _, h, w = normals.shape
    dtype = _work_dtype(normals.device)
    flat = normals.to(dtype).reshape(n, 3, h * w)
    usable = valid.reshape(n, h * w) & (flat.abs().sum(1) > 0)
    if initial is None:
        initial = torch.tensor([0.0, -1.0, 0.0])
    g = initial.to(device=normals.device, dtype=dtype).expand(n, 3).clone()
    for threshold in thresholds_deg:
        cos_t, sin_t = math.cos(math.radians(threshold)), math.sin(math.radians(threshold))
        for _ in range(iterations):
            s = torch.einsum("ncp,nc->np", flat, g).abs()
            weight = (usable & (s < sin_t)).to(dtype) - (usable & (s > cos_t)).to(dtype)
            a = (flat * weight[:, None]) @ flat.transpose(1, 2)
            # A vanishing pull towards the current estimate decides only between otherwise
            # equal directions: a view of one wall leaves gravity anywhere in the wall's plane,
            # and the camera's up is the best guess there.
            prior = 1e-6 * weight.abs().sum(1).clamp_min(1)
            a = a - prior[:, None, None] * g[:, :, None] * g[:, None, :]
            new = torch.linalg.eigh(a).eigenvectors[..., 0]
            new = torch.where((new * g).sum(1, keepdim=True) < 0, -new, new)
            # A frame with no normal in either set keeps its estimate.
            g = torch.where(weight.abs().sum(1, keepdim=True) > 0, new, g)
    return (g / g.norm(dim=1, keepdim=True)).to(normals.dtype)


def _lowest(height: Tensor, valid: Tensor, quantile: float) -> Tensor:
    """Per-frame ``quantile`` of the valid entries of (N,P) heights; 0 for empty frames."""
    masked = torch.where(valid, height, torch.inf).sort(dim=1).values
    count = valid.sum(1)
    k = (quantile * (count - 1).clamp_min(0)).floor().long()
    low = masked.gather(1, k[:, None]).squeeze(1)
    return torch.where(count > 0, low, 0)


def hha(
    depth: Tensor,
    K: CameraSpec | None = None,
    *,
    up: Tensor | None = None,
    radius: int = NORMAL_RADIUS,
) -> HHA:
    """HHA encoding of z-depth (N,H,W) in metres; see docs/RGBD.md for the scalings.

    Channels: 0 = 255 * min(1, 0.5 m / z) (disparity), 1 = 255 * min(1, h / 3 m) with h the
    height above the lowest point along gravity, 2 = angle(normal, up) * 255 / 180. Pixels with
    no depth (0 or non-finite) or no well-defined normal are 0 in all channels and invalid.
    ``K`` is one camera or one per frame; ``up`` (3,) or (N,3) in camera coordinates skips the
    gravity estimate (e.g. from an IMU or a dataset's tilt).
    """
    _check_depth(depth)
    n, h, w = depth.shape
    if n == 0:
        raise ValueError("hha needs at least one frame")
    if K is None:
        K = Intrinsics.default(h, w)
        log.warning(f"hha: no camera intrinsics given; assuming a Kinect-like default {K}")
    cams = [K] * n if isinstance(K, Intrinsics) else list(K)
    if up is not None:
        up = up.to(device=depth.device, dtype=depth.dtype).reshape(-1, 3).expand(n, 3)
        up = up / up.norm(dim=1, keepdim=True)
    # Frames go through in chunks of about _CHUNK_PIXELS: the work is memory-bound, and
    # intermediates of a whole batch at once fall out of cache (several times slower on CPU).
    step = max(1, _CHUNK_PIXELS // (h * w))
    parts = [
        _hha(
            depth[i : i + step], cams[i : i + step], up if up is None else up[i : i + step], radius
        )
        for i in range(0, n, step)
    ]
    return HHA(*(torch.cat(t) for t in zip(*parts, strict=True)))


def _hha(depth: Tensor, K: Sequence[Intrinsics], up: Tensor | None, radius: int) -> HHA:
    n = depth.shape[0]
    valid = valid_depth(depth)
    z = torch.where(valid, depth, 0)
    points = backproject(z, K)
    normals = surface_normals(points, valid, radius)
    valid = valid & (normals.abs().sum(1) > 0)
    gravity = estimate_gravity(normals, valid) if up is None else up

    disparity = 255 * (DISPARITY_NEAR_M / z.clamp_min(DISPARITY_NEAR_M))
    along = torch.einsum("nchw,nc->nhw", points, gravity)
    floor = _lowest(along.reshape(n, -1), valid.reshape(n, -1), FLOOR_QUANTILE)
    height = 255 * ((along - floor.view(n, 1, 1)) / HEIGHT_MAX_M).clamp(0, 1)
    cosine = torch.einsum("nchw,nc->nhw", normals, gravity).clamp(-1, 1)
    angle = torch.rad2deg(torch.acos(cosine)) * (255 / 180)
    image = torch.stack((disparity, height, angle), 1)
    return HHA(torch.where(valid[:, None], image, 0), valid, gravity)
