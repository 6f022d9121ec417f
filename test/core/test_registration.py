"""register_depth against hand-computed reprojections and a per-pixel loop reference with a z-buffer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radseg_core.registration import register_depth


def K_of(f: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])


def T_of(R: np.ndarray, t) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = R, t
    return M


def loop_reference(depth, K_d, K_c, hw, T):
    """One pixel at a time: back-project, transform, project to the nearest pixel, keep the nearest z."""
    out = np.zeros(hw, dtype=np.float64)
    for v in range(depth.shape[0]):
        for u in range(depth.shape[1]):
            z = float(depth[v, u])
            if not (z > 0 and math.isfinite(z)):
                continue
            p = np.array([(u - K_d[0, 2]) / K_d[0, 0] * z, (v - K_d[1, 2]) / K_d[1, 1] * z, z, 1.0])
            x, y, zc, _ = T @ p
            if zc <= 1e-6:
                continue
            uc = int(np.rint(K_c[0, 0] * x / zc + K_c[0, 2]))
            vc = int(np.rint(K_c[1, 1] * y / zc + K_c[1, 2]))
            if 0 <= uc < hw[1] and 0 <= vc < hw[0] and (out[vc, uc] == 0 or zc < out[vc, uc]):
                out[vc, uc] = zc
    return out


def test_plane_from_shifted_depth_camera_lands_on_hand_computed_pixels():
    # depth camera 5 cm to the right of the colour camera (RealSense-like baseline), same orientation
    K_d, K_c = K_of(20.0, 15.5, 11.5), K_of(25.0, 19.5, 14.5)
    depth = np.full((24, 32), 2.0, dtype=np.float32)
    T = T_of(np.eye(3), [0.05, 0.0, 0.0])
    out = register_depth(depth, K_d, (24, 32), K_c, (30, 40), T)
    assert out.shape == (30, 40) and out.dtype == np.float32
    # depth pixel (u=20, v=11): X = (20-15.5)/20*2 + 0.05 = 0.5, Y = (11-11.5)/20*2 = -0.05, Z = 2
    # colour pixel u = 25*0.5/2 + 19.5 = 25.75 -> 26, v = 25*(-0.05)/2 + 14.5 = 13.875 -> 14
    assert out[14, 26] == pytest.approx(2.0)
    # a plane parallel to both image planes keeps its depth everywhere it is seen
    assert np.all((out == 0) | np.isclose(out, 2.0))
    # the colour camera's left edge is not covered by the depth camera, shifted right by 0.05*25/2 px
    leftmost = np.nonzero(out.any(axis=0))[0].min()
    assert leftmost == int(np.rint(25 * ((0 - 15.5) / 20 * 2 + 0.05) / 2 + 19.5))


def test_rotated_depth_camera_matches_loop_reference():
    rng = np.random.default_rng(0)
    K_d, K_c = K_of(18.0, 13.5, 9.5), K_of(22.0, 15.0, 12.0)
    a = 0.15
    R = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    T = T_of(R, [0.03, -0.02, 0.01])
    # tilted plane plus noise and invalid pixels (0, NaN, inf)
    u = np.arange(28)[None, :]
    depth = (1.5 + 0.04 * u + 0.02 * np.arange(20)[:, None] + rng.uniform(0, 0.05, (20, 28))).astype(np.float32)
    depth[3, 4], depth[5, 6], depth[7, 8] = 0.0, np.nan, np.inf
    out = register_depth(depth, K_d, (20, 28), K_c, (24, 30), T)
    np.testing.assert_allclose(out, loop_reference(depth, K_d, K_c, (24, 30), T), rtol=1e-6)


def test_occlusion_keeps_the_nearest_surface():
    # wall at 3 m; a box at 1 m in front; the colour camera 20 cm to the side sees the box cover wall pixels
    K = K_of(20.0, 15.5, 11.5)
    depth = np.full((24, 32), 3.0, dtype=np.float32)
    depth[8:16, 12:20] = 1.0
    T = T_of(np.eye(3), [0.2, 0.0, 0.0])
    out = register_depth(depth, K, (24, 32), K, (24, 32), T)
    ref = loop_reference(depth, K, K, (24, 32), T)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    # box pixel u=12 moves by 20*0.2/1 = 4 px, wall pixels by 20*0.2/3 = 1.33 px: where both land, 1 m wins
    assert out[10, 16] == pytest.approx(1.0)
    assert np.count_nonzero(np.isclose(out, 1.0)) == 8 * 8


def test_depth_intrinsics_rescaled_and_identity_registration_is_exact():
    K = K_of(20.0, 15.5, 11.5)  # belongs to 32x24
    depth = np.random.default_rng(1).uniform(0.5, 4, (24, 32)).astype(np.float32)
    np.testing.assert_array_equal(register_depth(depth, K, (24, 32), K, (24, 32)), depth)
    half = depth[::2, ::2]  # a half-size image of the same camera: its K is rescaled from (24, 32)
    out = register_depth(half, K, (24, 32), K, (24, 32))
    assert np.count_nonzero(out) == half.size


def test_nothing_in_front_gives_all_zero_and_bad_shapes_refused():
    K = K_of(20.0, 15.5, 11.5)
    depth = np.full((24, 32), 1.0, dtype=np.float32)
    behind = T_of(np.diag([1.0, -1.0, -1.0]), [0, 0, 0])  # colour camera looks the other way
    assert not register_depth(depth, K, (24, 32), K, (24, 32), behind).any()
    with pytest.raises(ValueError, match="single-channel"):
        register_depth(np.zeros((4, 4, 3)), K, (4, 4), K, (4, 4))
    with pytest.raises(ValueError, match="orthonormal"):
        register_depth(depth, K, (24, 32), K, (24, 32), np.diag([2.0, 1, 1, 1]))


def test_make_frame_registers_depth_from_its_own_camera():
    from radseg_core.encoder import build_encoder
    from radseg_core.pipeline import MapperConfig, SemanticMapper

    cfg = MapperConfig(model="random-tiny", device="cpu", classes=["wall", "floor"], max_depth=5.0)
    m = SemanticMapper(cfg, encoder=build_encoder("random-tiny", crop=64, stride=48))
    rgb = np.zeros((48, 64, 3), np.uint8)
    K_c, K_d = K_of(50.0, 31.5, 23.5), K_of(30.0, 19.5, 14.5)  # depth: 40x30, other intrinsics
    depth_mm = np.full((30, 40), 2000, np.uint16)
    T = T_of(np.eye(3), [0.05, 0.0, 0.0])
    f = m.make_frame(rgb, depth_mm, "16UC1", K_c, (64, 48), np.zeros(3), np.array([0, 0, 0, 1.0]),
                     depth_k=K_d, depth_size=(40, 30), T_rgb_depth=T)
    want = register_depth(np.full((30, 40), 2.0, np.float32), K_d, (30, 40), K_c, (48, 64), T)
    np.testing.assert_array_equal(f.depth, want)
    assert f.depth.shape == (48, 64) and np.count_nonzero(f.depth) > 0
