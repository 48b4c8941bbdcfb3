"""HHA on a rendered scene of known geometry: gravity, height, angle, holes, intrinsics."""

import math

import pytest
import torch

from splitbrain.rgbd.hha import (
    Intrinsics,
    backproject,
    estimate_gravity,
    hha,
    range_to_z,
    surface_normals,
    valid_depth,
)

H, W = 120, 160
CAMERA = Intrinsics(140.0, 141.0, 79.0, 61.0)
UNIT = 255 / 180  # angle channel units per degree
HEIGHT_UNIT = 255 / 3.0  # height channel units per metre


def _rotation(axis: tuple[float, float, float], degrees: float) -> torch.Tensor:
    """Rodrigues rotation matrix about a unit axis."""
    x, y, z = axis
    k = torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], dtype=torch.float64)
    a = math.radians(degrees)
    return torch.eye(3, dtype=torch.float64) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def render(pitch: float, roll: float, camera_height: float = 1.3, wall: float = 3.0, noise=0.0):
    """z-depth of a floor (world z = 0) and a wall (world x = wall) seen from a tilted camera.

    The camera sits at height ``camera_height`` looking along world +x, pitched down by
    ``pitch`` and rolled by ``roll`` degrees. Returns depth (H,W) float32, the floor mask, the
    true up vector in camera coordinates and the true height of every pixel above the floor.
    """
    # Columns: the camera's right, down and forward axes in world coordinates, before tilting.
    level = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
    cam_to_world = level @ _rotation((1, 0, 0), -pitch) @ _rotation((0, 0, 1), roll)
    u = torch.arange(W, dtype=torch.float64)
    v = torch.arange(H, dtype=torch.float64)
    rays = torch.stack(
        torch.broadcast_tensors(
            ((u - CAMERA.cx) / CAMERA.fx)[None, :],
            ((v - CAMERA.cy) / CAMERA.fy)[:, None],
            torch.ones(H, W, dtype=torch.float64),
        ),
        -1,
    )  # z = 1, so the ray parameter at a hit is the z-depth
    world = rays @ cam_to_world.T
    t_floor = torch.where(world[..., 2] < 0, -camera_height / world[..., 2], torch.inf)
    t_wall = torch.where(world[..., 0] > 0, wall / world[..., 0], torch.inf)
    depth = torch.minimum(t_floor, t_wall)
    height = camera_height + depth * world[..., 2]
    gen = torch.Generator().manual_seed(0)
    depth = depth + noise * torch.randn(depth.shape, generator=gen, dtype=torch.float64)
    up = cam_to_world.T @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    return depth.float(), t_floor < t_wall, up.float(), height.float()


def _interior(mask: torch.Tensor, margin: int = 5) -> torch.Tensor:
    """Pixels of ``mask`` whose whole (2*margin+1)^2 neighbourhood is in ``mask``."""
    inv = (~mask).float()[None, None]
    near_other = torch.nn.functional.max_pool2d(inv, 2 * margin + 1, 1, margin)[0, 0] > 0
    return mask & ~near_other


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    cos = (a * b).sum() / (a.norm() * b.norm())
    return math.degrees(math.acos(float(cos.clamp(-1, 1))))


def test_default_intrinsics_follow_the_kinect_field_of_view():
    k = Intrinsics.default(240, 320)
    assert k.fx == k.fy == pytest.approx(0.8925 * 320, rel=1e-3)
    assert 2 * math.degrees(math.atan(160 / k.fx)) == pytest.approx(58.5)
    assert (k.cx, k.cy) == (159.5, 119.5)


def test_backproject_and_range_to_z_round_trip():
    depth = 1 + torch.rand(2, H, W)
    points = backproject(depth, CAMERA)
    assert points.shape == (2, 3, H, W)
    # Pixel (u, v) = (10, 20): x = (u - cx) z / fx, y = (v - cy) z / fy.
    z = depth[1, 20, 10]
    expected = torch.stack([(10 - CAMERA.cx) * z / CAMERA.fx, (20 - CAMERA.cy) * z / CAMERA.fy, z])
    torch.testing.assert_close(points[1, :, 20, 10], expected)
    rng = points.norm(dim=1)
    rng[0, :5] = 0  # missing range stays missing
    z_back = range_to_z(rng, CAMERA)
    torch.testing.assert_close(z_back[:, 5:], depth[:, 5:])
    assert (z_back[0, :5] == 0).all()


def test_normals_of_a_plane_ignore_holes_and_face_the_camera():
    # Plane n . p = d with n pointing away from the camera; expected normals are -n.
    n = torch.tensor([0.3, -0.5, 0.8])
    n = n / n.norm()
    xn = (torch.arange(W) - CAMERA.cx) / CAMERA.fx
    yn = (torch.arange(H)[:, None] - CAMERA.cy) / CAMERA.fy
    depth = (2.0 / (n[0] * xn + n[1] * yn + n[2])).expand(1, H, W).clone()
    depth[0, 40:60, 50:90] = 0
    valid = valid_depth(depth)
    normals = surface_normals(backproject(depth, CAMERA), valid)
    assert (normals[0, :, ~valid[0]] == 0).all()
    err = torch.rad2deg(torch.acos((normals[0, :, valid[0]] * -n[:, None]).sum(0).clamp(-1, 1)))
    assert err.max() < 0.05


@pytest.mark.parametrize(("pitch", "roll"), [(15.0, 10.0), (30.0, -20.0), (5.0, 0.0)])
def test_hha_of_a_rendered_floor_and_wall(pitch, roll):
    depth, floor, up, true_height = render(pitch, roll, noise=0.002)
    assert floor.float().mean() > 0.05 and (~floor).float().mean() > 0.2
    out = hha(depth[None], CAMERA)
    assert out.image.shape == (1, 3, H, W) and out.valid.all()
    assert out.image.min() >= 0 and out.image.max() <= 255
    assert _angle_deg(out.gravity[0], up) < 5

    image = out.image[0]
    on_floor, on_wall = _interior(floor), _interior(~floor)
    # Height: constant (zero) along the floor, the true height on the wall.
    assert image[1][on_floor].std() < 1.0  # 1 unit = 1.2 cm
    wall_height_err = (image[1][on_wall] / HEIGHT_UNIT - true_height[on_wall]).abs()
    assert wall_height_err.median() < 0.02
    # Angle to gravity: floor ~ 0 degrees, wall ~ 90 degrees.
    assert (image[2][on_floor] < 5 * UNIT).float().mean() > 0.95
    assert ((image[2][on_wall] - 90 * UNIT).abs() < 5 * UNIT).float().mean() > 0.95
    # Disparity: 255 * 0.5 m / z.
    torch.testing.assert_close(image[0], 127.5 / depth.clamp_min(0.5))


def test_holes_are_masked_not_near_and_leave_the_rest_alone():
    depth, *_ = render(15.0, 10.0, noise=0.002)
    holed = depth.clone()
    holed[30:50, 60:100] = 0
    holed[90:95, 10:20] = float("nan")
    holed[torch.rand(H, W, generator=torch.Generator().manual_seed(1)) < 0.05] = 0
    missing = ~valid_depth(holed)
    full = hha(depth[None], CAMERA)
    out = hha(holed[None], CAMERA)
    assert not out.valid[0][missing].any()
    assert (out.image[0][:, missing] == 0).all()
    assert out.valid[0][~missing].float().mean() > 0.99
    both = out.valid[0] & full.valid[0]
    diff = (out.image[0] - full.image[0])[:, both].abs()
    assert diff.median() < 0.5 and torch.quantile(diff.flatten(), 0.99) < 3
    assert _angle_deg(out.gravity[0], full.gravity[0]) < 1


def test_unknown_intrinsics_warn_and_use_the_default(caplog):
    depth, *_ = render(15.0, 0.0)
    with caplog.at_level("WARNING", logger="splitbrain.rgbd"):
        out = hha(depth[None])
    assert "hha: no camera intrinsics given" in caplog.text
    expected = hha(depth[None], Intrinsics.default(H, W))
    torch.testing.assert_close(out.image, expected.image)


def test_batches_per_frame_cameras_and_a_given_up_vector():
    a, _, up_a, _ = render(15.0, 10.0)
    b, _, up_b, _ = render(25.0, -5.0)
    other = Intrinsics(150.0, 150.0, 80.0, 60.0)
    batch = hha(torch.stack([a, b]), [CAMERA, other])
    torch.testing.assert_close(batch.image[1], hha(b[None], other).image[0])
    torch.testing.assert_close(batch.image[0], hha(a[None], CAMERA).image[0])
    given = hha(torch.stack([a, a]), CAMERA, up=up_a)
    torch.testing.assert_close(given.gravity, (up_a / up_a.norm()).expand(2, 3))
    assert _angle_deg(given.gravity[0], batch.gravity[0]) < 5
    with pytest.raises(ValueError, match="intrinsics"):
        hha(torch.stack([a, b]), [CAMERA])


def test_gravity_stays_at_camera_up_when_the_normals_do_not_decide():
    normals = torch.zeros(2, 3, 8, 8)  # frame 0: no normals at all
    normals[1, 2] = -1.0  # frame 1: one wall facing the camera, any up in its plane fits
    gravity = estimate_gravity(normals, torch.ones(2, 8, 8, dtype=torch.bool))
    torch.testing.assert_close(gravity, torch.tensor([[0.0, -1.0, 0.0]] * 2))
