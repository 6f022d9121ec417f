"""Geometry: depth decoding, intrinsics, back-projection, REP-103 frames, quaternions, bilinear taps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radseg_core.geometry import (
    R_BODY_OPTICAL,
    backproject_depth,
    bilinear_taps,
    depth_to_metres,
    optical_from_body_pose,
    pose_to_matrix,
    quaternion_to_rotation,
    random_subsample,
    scale_intrinsics,
    transform_points,
    validate_rigid_transform,
)


def test_depth_16uc1_scaled_and_32fc1_passthrough():
    mm = np.array([[0, 1000, 65535]], dtype=np.uint16)
    np.testing.assert_allclose(depth_to_metres(mm, "16UC1"), [[0.0, 1.0, 65.535]], rtol=1e-6)
    np.testing.assert_allclose(depth_to_metres(mm, "16UC1", scale=0.0002), [[0.0, 0.2, 13.107]], rtol=1e-6)
    m = np.array([[1.5, np.nan, 0.0]], dtype=np.float32)
    out = depth_to_metres(m, "32FC1")
    assert out.dtype == np.float32 and out[0, 0] == 1.5 and np.isnan(out[0, 1])
    out[0, 0] = 9.0
    assert m[0, 0] == 1.5  # a copy, the message buffer is not aliased


@pytest.mark.parametrize(
    ("arr", "enc", "match"),
    [
        (np.zeros((2, 2), np.float32), "16UC1", "uint16"),
        (np.zeros((2, 2), np.uint16), "32FC1", "float32"),
        (np.zeros((2, 2), np.uint8), "8UC1", "unsupported"),
    ],
)
def test_depth_bad_encoding_raises(arr, enc, match):
    with pytest.raises(ValueError, match=match):
        depth_to_metres(arr, enc)


def test_scale_intrinsics_keeps_pixel_centres():
    K = np.array([[500.0, 0, 319.5], [0, 400.0, 239.5], [0, 0, 1]])
    K2 = scale_intrinsics(K, (480, 640), (240, 320))
    np.testing.assert_allclose(K2, [[250, 0, 159.5], [0, 200, 119.5], [0, 0, 1]])
    # A 3D point's projection moves exactly as the continuous image coordinate does: u' = (u + .5) s - .5
    p = np.array([0.3, -0.2, 2.0])
    uv = (K @ p)[:2] / p[2]
    uv2 = (K2 @ p)[:2] / p[2]
    np.testing.assert_allclose(uv2, (uv + 0.5) * 0.5 - 0.5)


def test_backproject_hand_checked_and_reprojects():
    K = np.array([[2.0, 0, 1.0], [0, 2.0, 1.0], [0, 0, 1]])
    depth = torch.full((3, 3), 2.0)
    pts, rows, cols = backproject_depth(depth, K)
    i = int(torch.nonzero((rows == 0) & (cols == 2))[0])
    torch.testing.assert_close(pts[i], torch.tensor([1.0, -1.0, 2.0]))  # right of and above the centre
    rng = np.random.default_rng(0)
    K = np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]])
    depth = torch.from_numpy(rng.uniform(0.5, 4, (48, 64)).astype(np.float32))
    pts, rows, cols = backproject_depth(depth, K)
    proj = pts.double().numpy() @ K.T
    np.testing.assert_allclose(proj[:, 0] / proj[:, 2], cols.numpy(), atol=1e-3)
    np.testing.assert_allclose(proj[:, 1] / proj[:, 2], rows.numpy(), atol=1e-3)
    np.testing.assert_allclose(pts[:, 2].numpy(), depth[rows, cols].numpy())


def test_backproject_drops_invalid_and_out_of_range():
    d = torch.tensor([[1.0, float("nan"), float("inf"), 0.0, -1.0, 0.2, 9.0, 2.0]])
    pts, rows, cols = backproject_depth(d, np.eye(3), min_depth=0.5, max_depth=5.0)
    assert cols.tolist() == [0, 7]
    assert pts[:, 2].tolist() == [1.0, 2.0]


def test_backproject_stride_keeps_original_pixel_coordinates():
    d = torch.ones(6, 8)
    pts, rows, cols = backproject_depth(d, np.eye(3), stride=3)
    assert set(rows.tolist()) == {0, 3} and set(cols.tolist()) == {0, 3, 6}
    torch.testing.assert_close(pts[:, 0], cols.float())  # fx = 1, cx = 0, z = 1


def test_random_subsample():
    assert random_subsample(10, None) is None and random_subsample(10, 10) is None
    idx = random_subsample(100, 7, torch.Generator().manual_seed(0))
    assert idx.numel() == 7 and idx.unique().numel() == 7 and bool((idx[1:] > idx[:-1]).all())


def _rodrigues(axis, angle):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    Kx = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * Kx + (1 - math.cos(angle)) * Kx @ Kx


def test_quaternion_matches_axis_angle():
    np.testing.assert_allclose(quaternion_to_rotation([0, 0, 0, 1]), np.eye(3))
    s = math.sin(math.pi / 4)
    R = quaternion_to_rotation([0, 0, s, s])  # 90 degrees about z: x -> y
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(5):
        axis, angle = rng.normal(size=3), rng.uniform(-3, 3)
        a = axis / np.linalg.norm(axis)
        q = [*(a * math.sin(angle / 2)), math.cos(angle / 2)]
        np.testing.assert_allclose(quaternion_to_rotation(q), _rodrigues(axis, angle), atol=1e-12)


def test_quaternion_validation():
    q = np.array([0.1, 0.2, 0.3, 0.9])
    q /= np.linalg.norm(q)
    np.testing.assert_allclose(quaternion_to_rotation(q * 1.0004), quaternion_to_rotation(q), atol=1e-12)
    with pytest.raises(ValueError, match="not unit length"):
        quaternion_to_rotation(q * 1.1)
    with pytest.raises(ValueError, match="not unit length"):
        quaternion_to_rotation([0, 0, 0, 0])
    with pytest.raises(ValueError, match="non-finite"):
        quaternion_to_rotation([0, 0, float("nan"), 1])
    with pytest.raises(ValueError, match="4 components"):
        quaternion_to_rotation([0, 0, 1])


def test_pose_to_matrix_and_transform_points():
    s = math.sin(math.pi / 4)
    T = pose_to_matrix([1.0, 2.0, 3.0], [0, 0, s, s])
    out = transform_points(T, torch.tensor([[1.0, 0.0, 0.0]]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 3.0, 3.0]]))
    with pytest.raises(ValueError, match="position"):
        pose_to_matrix([0, float("inf"), 0], [0, 0, 0, 1])


def test_body_to_optical_convention():
    # Camera body at the origin looking along world +x (REP-103 body: x forward, y left, z up).
    T = optical_from_body_pose(np.eye(4))
    pts = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # optical forward, right, down
    out = transform_points(T, pts)
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]))
    assert np.isclose(np.linalg.det(R_BODY_OPTICAL), 1.0)


def test_validate_rigid_transform():
    validate_rigid_transform(np.eye(4))
    bad = np.eye(4)
    bad[0, 0] = 2.0
    with pytest.raises(ValueError, match="orthonormal"):
        validate_rigid_transform(bad)
    refl = np.diag([1.0, 1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="det"):
        validate_rigid_transform(refl)
    nan = np.eye(4)
    nan[0, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        validate_rigid_transform(nan)


@pytest.mark.parametrize(
    ("image_hw", "grid_hw"), [((48, 64), (3, 4)), ((30, 40), (7, 9)), ((5, 5), (10, 10))]
)
def test_bilinear_taps_match_interpolate(image_hw, grid_hw):
    torch.manual_seed(0)
    grid = torch.randn(5, *grid_hw)
    up = F.interpolate(grid[None], size=image_hw, mode="bilinear", align_corners=False)[0]
    rows, cols = torch.meshgrid(torch.arange(image_hw[0]), torch.arange(image_hw[1]), indexing="ij")
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    idx, w = bilinear_taps(rows, cols, image_hw, grid_hw)
    torch.testing.assert_close(w.sum(1), torch.ones(rows.numel()))
    approx = (grid.reshape(5, -1)[:, idx] * w).sum(-1)
    torch.testing.assert_close(approx, up[:, rows, cols], atol=1e-5, rtol=1e-5)
