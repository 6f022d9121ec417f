"""Free-space clearing: a removed object disappears; static surfaces, grazing ones included, stay."""

import math

import numpy as np
import torch

from radseg_core.free_space import free_voxels, min_pool_pyramid
from radseg_core.types import Frame
from radseg_core.voxel_map import VoxelMap

H, W, F = 120, 160, 100.0
K = np.array([[F, 0, (W - 1) / 2], [0, F, (H - 1) / 2], [0, 0, 1]])


def pose(x=0.0, z=0.0, pitch=0.0):
    T = np.eye(4)
    c, s = math.cos(pitch), math.sin(pitch)
    T[:3, :3] = [[1, 0, 0], [0, c, s], [0, -s, c]]  # about optical x: positive pitch looks down (y down)
    T[:3, 3] = [x, 0.0, z]
    return T


def frame(depth, T):
    return Frame(np.full((H, W, 3), 128, np.uint8), depth.astype(np.float32), K, T)


def test_min_pool_pyramid_by_hand():
    d = torch.full((5, 7), 4.0)
    d[2, 3] = 1.0
    d[0, 0] = float("nan")
    p = min_pool_pyramid(d, max_depth=3.0)
    assert p[0, 1, 1] == 3.0 and p[0, 0, 0] == 0.0  # beyond max_depth clamps, NaN is unknown (0)
    assert p[1, 1, 2] == 1.0 and p[1, 0, 1] == 0.0 and p[1, 0, 2] == 3.0  # 3x3 windows
    assert p[2, 4, 5] == 1.0 and p[2, 4, 6] == 3.0  # 5x5 windows
    assert p[1, 4, 6] == 3.0


def test_voxel_in_front_of_the_measured_surface_is_free_and_the_surface_voxel_is_not():
    depth = torch.full((H, W), 3.0)
    centres = torch.tensor([[0.025, 0.025, 1.025], [0.025, 0.025, 2.975], [0.025, 0.025, 3.5]], dtype=torch.float64)
    free = free_voxels(centres, depth, K, np.eye(4), 0.05)
    assert free.tolist() == [True, False, False]  # in front / on the wall / behind it (occluded)
    depth[50:70, 70:90] = 0.0  # unknown depth never clears
    assert not free_voxels(centres[:1], depth, K, np.eye(4), 0.05).any()


def wall_with_box(box: bool) -> np.ndarray:
    d = np.full((H, W), 3.0)
    if box:
        d[40:80, 60:100] = 1.5
    return d


def test_object_present_early_then_removed_is_gone():
    vm = VoxelMap(dim=2, dtype=torch.float16, free_space_decay=0.5)
    fmap = torch.ones(2, 4, 5)
    for i in range(5):
        vm.integrate_frame(frame(wall_with_box(True), pose(x=0.01 * i)), fmap)
    assert (vm.centers()[:, 2] < 2.0).sum() > 50
    for i in range(12):
        vm.integrate_frame(frame(wall_with_box(False), pose(x=0.01 * i)), fmap)
    assert (vm.centers()[:, 2] < 2.0).sum() == 0 and vm.cleared > 0
    ref = VoxelMap(dim=2, dtype=torch.float16)
    for i in range(12):
        ref.integrate_frame(frame(wall_with_box(False), pose(x=0.01 * i)), fmap)
    wall = set(map(tuple, ref.voxel_indices().tolist()))
    assert wall <= set(map(tuple, vm.voxel_indices().tolist()))  # the wall behind the box is all there


def floor_depth(pitch: float, height: float = 0.3) -> np.ndarray:
    """Analytic depth of a floor ``height`` below the camera (optical y down), pitched down by ``pitch``."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    ray = np.stack([(u - K[0, 2]) / F, (v - K[1, 2]) / F, np.ones_like(u)], axis=-1)
    c, s = math.cos(pitch), math.sin(pitch)
    ray_world_y = c * ray[..., 1] + s * ray[..., 2]
    with np.errstate(divide="ignore"):
        z = np.where(ray_world_y > 1e-6, height / ray_world_y, 0.0)  # depth along the optical axis
    return z


def test_static_floor_at_grazing_angles_is_not_eroded():
    fmap = torch.ones(2, 4, 5)
    kw = {"max_depth": 8.0}
    cleared, plain = VoxelMap(dim=2, free_space_decay=0.5), VoxelMap(dim=2)
    for i in range(20):  # walking forward and sideways, pitched 2-8 degrees: rays meet the floor at ~2-30 deg
        pitch = math.radians(2 + 6 * (i % 4) / 3)
        f = frame(floor_depth(pitch), pose(x=0.02 * i, z=0.05 * i, pitch=pitch))
        cleared.integrate_frame(f, fmap, **kw)
        plain.integrate_frame(f, fmap, **kw)
    assert len(plain) > 1000
    assert cleared.cleared == 0 and len(cleared) == len(plain)
    assert torch.equal(cleared.hits().sort().values, plain.hits().sort().values)
