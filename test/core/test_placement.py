"""Placing a map into another frame: exact for lattice-preserving transforms, hit-weighted merges otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from radseg_core.geometry import pose_to_matrix
from radseg_core.placement import is_lattice_preserving, place_map
from radseg_core.voxel_map import VoxelMap

S = 0.05


def build_map(offset=(0.0, 0.0, 0.0), dtype=torch.float32, grid="floor", n=600, dim=6, max_hits=None, seed=0):
    """Three frames of random points in a 1 m cube at ``offset`` (float64: a 1,000 km offset stays exact)."""
    g = torch.Generator().manual_seed(seed)
    vm = VoxelMap(voxel_size=S, dim=dim, dtype=dtype, grid=grid, max_hits=max_hits)
    for _ in range(3):
        p = torch.rand(n, 3, generator=g, dtype=torch.float64) + torch.tensor(offset, dtype=torch.float64)
        vm.integrate_points(p, torch.rand(n, dim, generator=g), torch.randint(0, 256, (n, 3), generator=g))
    vm.metadata["frame_id"] = "odom"
    return vm


def by_index(vm: VoxelMap) -> dict[tuple[int, int, int], int]:
    return {tuple(ijk): slot for slot, ijk in enumerate(vm.voxel_indices().tolist())}


def rigid(yaw=0.0, pitch=0.0, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Rotation about z then y (radians), then translation."""
    cz, sz, cy, sy = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    T = np.eye(4)
    T[:3, :3] = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    T[:3, 3] = t
    return T


def reference(vm: VoxelMap, T: np.ndarray) -> dict[tuple[int, int, int], tuple]:
    """Brute force, one voxel at a time in plain Python/NumPy float64: {cell: (hits, mean, colour, last_seen)}."""
    shift = 0.5 if vm.grid == "round" else 0.0
    acc: dict[tuple[int, int, int], list] = {}
    idx, vals = vm.voxel_indices().numpy(), vm.values().double().numpy()
    cols, hits, seen = vm.colors().double().numpy(), vm.hits().numpy(), vm.last_seen().numpy()
    for i in range(len(vm)):
        centre = (idx[i].astype(np.float64) + 0.5 - shift) * vm.voxel_size
        p = T[:3, :3] @ centre + T[:3, 3]
        cell = tuple(int(math.floor(x / vm.voxel_size + shift)) for x in p)
        a = acc.setdefault(cell, [0, np.zeros(vm.dim), np.zeros(3), 0])
        a[0] += int(hits[i])
        a[1] += hits[i] * vals[i]
        a[2] += hits[i] * cols[i]
        a[3] = max(a[3], int(seen[i]))
    return {k: (h, v / h, c / h, s) for k, (h, v, c, s) in acc.items()}


@pytest.mark.parametrize("grid", ["floor", "round"])
def test_whole_voxel_translation_is_an_exact_shift(grid):
    vm = build_map(dtype=torch.float16, grid=grid)
    k = np.array([3, -7, 12])
    placed, info = place_map(vm, rigid(t=k * S))
    assert info.exact and info.merged == 0 and len(placed) == len(vm)
    src, dst = by_index(vm), by_index(placed)
    assert set(dst) == {(i + k[0], j + k[1], z + k[2]) for i, j, z in src}
    a = torch.tensor([src[c] for c in src])
    b = torch.tensor([dst[(c[0] + k[0], c[1] + k[1], c[2] + k[2])] for c in src])
    assert torch.equal(placed.values()[b], vm.values()[a])  # bit for bit, fp16 included
    assert torch.equal(placed.colors()[b], vm.colors()[a])
    assert torch.equal(placed.hits()[b], vm.hits()[a]) and torch.equal(placed.last_seen()[b], vm.last_seen()[a])
    assert placed.frames_integrated == vm.frames_integrated and placed.metadata == vm.metadata
    # fp16 drift-compensation residuals travel with their voxels: both maps keep integrating alike
    g = torch.Generator().manual_seed(5)
    p = torch.rand(400, 3, generator=g, dtype=torch.float64)
    v = torch.rand(400, vm.dim, generator=g)
    vm.integrate_points(p, v)
    placed.integrate_points(p + torch.tensor(k * S), v)
    src, dst = by_index(vm), by_index(placed)
    b = torch.tensor([dst[(c[0] + k[0], c[1] + k[1], c[2] + k[2])] for c in src])
    assert torch.equal(placed.values()[b], vm.values()[torch.tensor(list(src.values()))])


@pytest.mark.parametrize("grid", ["floor", "round"])
@pytest.mark.parametrize("from_quaternion", [False, True])
def test_quarter_turn_yaw_is_an_exact_permutation(grid, from_quaternion):
    vm = build_map(grid=grid)
    T = pose_to_matrix((0, 0, 0), (0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4))) if from_quaternion \
        else np.array([[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    placed, info = place_map(vm, T)
    assert info.exact and info.merged == 0
    # a centre (i + 1/2, j + 1/2) s turns to (-(j + 1/2), i + 1/2) s: cell (-j - 1, i); round grid: (-j, i)
    d = 1 if grid == "floor" else 0
    src, dst = by_index(vm), by_index(placed)
    assert set(dst) == {(-j - d, i, z) for i, j, z in src}
    for (i, j, z), slot in src.items():
        out = dst[(-j - d, i, z)]
        assert torch.equal(placed.values()[out], vm.values()[slot]) and placed.hits()[out] == vm.hits()[slot]


@pytest.mark.parametrize("offset", [(0.0, 0.0, 0.0), (1.0e6, -2.5e5, 30.0)])  # at the origin; 1,000 km out
@pytest.mark.parametrize("max_hits", [None, 4.0])
def test_arbitrary_rotation_merges_hit_weighted_like_brute_force(offset, max_hits):
    vm = build_map(offset=offset, max_hits=max_hits)
    # rotate about the cube's corner (keeps a far map far) and move by a fraction of a voxel
    c = np.asarray(offset)
    T = rigid(yaw=0.37, pitch=0.21, t=(0.013, -0.021, 0.004))
    T[:3, 3] += c - T[:3, :3] @ c
    placed, info = place_map(vm, T)
    ref = reference(vm, T)
    assert not info.exact and info.merged == len(vm) - len(ref) > 0 and len(placed) == len(ref)
    dst = by_index(placed)
    assert set(dst) == set(ref)
    order = torch.tensor([dst[k] for k in ref])
    hits, mean, col, seen = (np.array([r[i] for r in ref.values()]) for i in range(4))
    cap = 2**31 - 1 if max_hits is None else int(max_hits)
    np.testing.assert_array_equal(placed.hits()[order].numpy(), np.minimum(hits, cap))
    np.testing.assert_allclose(placed.values()[order].double().numpy(), mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(placed.colors()[order].numpy(), np.clip(np.round(col), 0, 255))
    np.testing.assert_array_equal(placed.last_seen()[order].numpy(), seen)
    if offset[0]:  # keys relative to a local origin near the data, as a map built there would have
        assert placed.origin_voxel.abs().max() > 0


def test_far_map_translated_by_whole_voxels_is_exact():
    vm = build_map(offset=(1.0e6, 1.0e6, 0.0))
    k = np.array([-40, 25, 1])
    placed, info = place_map(vm, rigid(t=k * S))
    assert info.exact and info.merged == 0
    assert set(by_index(placed)) == {(i + k[0], j + k[1], z + k[2]) for i, j, z in by_index(vm)}


def test_a_map_near_the_origin_placed_1000_km_away_keeps_every_voxel():
    vm = build_map()
    t = np.array([1.0e6, -3.0e5, 12.0])  # whole voxels at 5 cm
    placed, info = place_map(vm, rigid(t=t))
    assert info.exact and len(placed) == len(vm)
    np.testing.assert_allclose(placed.centers(torch.float64).numpy().min(0),
                               vm.centers(torch.float64).numpy().min(0) + t, atol=1e-6)


@pytest.mark.parametrize(
    ("T", "match"),
    [
        (np.diag([2.0, 2.0, 2.0, 1.0]), "orthonormal"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "det"),
        (np.full((4, 4), np.nan), "non-finite"),
        (np.eye(3), "4x4"),
        (np.vstack([np.eye(4)[:3], [0.1, 0, 0, 1]]), "last row"),
    ],
)
def test_bad_transforms_are_refused(T, match):
    vm = build_map()
    before = vm.values().clone()
    with pytest.raises(ValueError, match=match):
        place_map(vm, T)
    assert torch.equal(vm.values(), before)


def test_placement_beyond_the_key_range_is_refused():
    vm = VoxelMap(voxel_size=0.0001, dim=2, dtype=torch.float32)  # key range +-105 m around one origin
    vm.integrate_points(torch.tensor([[0.0, 0.0, 0.0], [-100.0, -100.0, 0.0], [100.0, 100.0, 0.0]]), torch.ones(3, 2))
    assert len(vm) == 3
    with pytest.raises(ValueError, match="key range"):
        place_map(vm, rigid(yaw=math.pi / 4))  # the diagonal becomes 283 m along y


def test_empty_map_places_to_an_empty_map():
    vm = VoxelMap(voxel_size=S, dim=3)
    vm.frames_integrated = 7
    placed, info = place_map(vm, rigid(yaw=0.3))
    assert len(placed) == 0 and info.merged == 0 and placed.frames_integrated == 7


def test_lattice_preserving_transforms():
    assert is_lattice_preserving(rigid(yaw=math.pi, t=(0.1, 0.0, -0.05)), S)
    assert not is_lattice_preserving(rigid(t=(0.01, 0, 0)), S)
    assert not is_lattice_preserving(rigid(yaw=0.1), S)
