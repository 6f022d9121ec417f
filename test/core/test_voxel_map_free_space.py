"""Free-space clearing: a removed object disappears; static surfaces, grazing ones included, stay."""

import functools
import math

import numpy as np
import pytest
import torch

import radseg_core.voxel_map.map as voxel_map_module
from radseg_core.free_space import free_voxels, frustum_voxel_box, incidence_sine, min_pool_pyramid, vouched_depth
from radseg_core.types import Frame
from radseg_core.voxel_map import VoxelMap
from radseg_core.voxel_map.slot_store import SlotStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True, params=["chunks-default", "chunks-tiny"])
def _chunking(request, monkeypatch):
    """Every test runs twice: default chunks, and 4-row chunks with doubling every 4 chunks, so gathers,
    scatters, moves and merges across many chunks meet the same reference results."""
    if request.param == "chunks-tiny":
        monkeypatch.setattr(voxel_map_module, "SlotStore", functools.partial(SlotStore, min_rows=4, max_chunks=4))


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
    d[0, 0] = -float("inf")
    p = min_pool_pyramid(d)
    assert p[0, 1, 1] == 4.0 and p[0, 0, 0] == -float("inf")  # level 0 is the image itself
    assert p[1, 1, 2] == 1.0 and p[1, 0, 1] == -float("inf") and p[1, 0, 2] == 4.0  # 3x3 windows
    assert p[2, 4, 5] == 1.0 and p[2, 4, 6] == 4.0  # 5x5 windows
    assert p[1, 4, 6] == 4.0  # the outside of the image is neutral


def test_voxel_in_front_of_the_measured_surface_is_free_and_the_surface_voxel_is_not():
    depth = torch.full((H, W), 3.0)
    centres = torch.tensor([[0.025, 0.025, 1.025], [0.025, 0.025, 2.975], [0.025, 0.025, 3.5]], dtype=torch.float64)
    free = free_voxels(centres, depth, K, np.eye(4), 0.05)
    assert free.tolist() == [True, False, False]  # in front / on the wall / behind it (occluded)
    depth[50:70, 70:90] = 0.0  # unknown depth never clears
    assert not free_voxels(centres[:1], depth, K, np.eye(4), 0.05).any()


def test_incidence_sine_and_vouched_depth_of_planes_by_hand():
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    ray = np.stack([(u - K[0, 2]) / F, (v - K[1, 2]) / F, np.ones_like(u)], axis=-1)
    wall = torch.full((H, W), 2.0)
    sine = incidence_sine(wall, K).numpy()
    np.testing.assert_allclose(sine, 1.0 / np.linalg.norm(ray, axis=-1), rtol=1e-5)  # normal = optical axis
    pitch = math.radians(5.0)
    floor = torch.from_numpy(floor_depth(pitch)).float()  # normal: optical y turned by the pitch
    n = np.array([0.0, math.cos(pitch), math.sin(pitch)])
    expected = np.abs(ray @ n) / np.linalg.norm(ray, axis=-1)
    seen = floor.numpy() > 0
    seen[:-1] &= seen[1:]  # a pixel needs a known neighbour (the horizon row has none below)
    np.testing.assert_allclose(incidence_sine(floor, K).numpy()[seen], expected[seen], rtol=1e-3)
    assert (incidence_sine(floor, K).numpy()[floor.numpy() == 0] == 0).all()  # unknown: vouches for nothing
    vouched = vouched_depth(wall, K, 0.05, clearance=1.0, noise=0.01, pixels=1.5)
    # centre pixel: sin = 1, |ray| = 1; clearance max(0.025, 1.5 pixels * 2 m / 100 px) = 0.03
    assert float(vouched[60, 80]) == pytest.approx(2.0 * 0.99 - 0.03, abs=1e-6)
    assert float(vouched_depth(wall, K, 0.1, clearance=1.0, noise=0.0, pixels=1.5)[60, 80]) == pytest.approx(1.95)


def brute_force_free(centres, depth, K_, T, voxel, min_depth, max_depth):
    """The rule of ``free_voxels`` from its definition: every pixel of the image, float64 slab tests, each
    pixel vouching no further than its 8 neighbours (a 3 x 3 minimum, outside the image neutral)."""
    vouched = vouched_depth(depth, K_, voxel, clearance=0.5, noise=0.01, pixels=1.0, max_depth=max_depth).double()
    vouched = -torch.nn.functional.max_pool2d(-vouched[None, None], 3, stride=1, padding=1)[0, 0]
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    ray = torch.stack([(u - K_[0, 2]) / K_[0, 0], (v - K_[1, 2]) / K_[1, 1], torch.ones_like(u)], -1).reshape(-1, 3)
    R, o = torch.from_numpy(T[:3, :3]), torch.from_numpy(T[:3, 3])
    ray_w = ray @ R.T
    near = max(min_depth, 1e-3)
    out = []
    for c in centres.double():
        rel = c - o
        pc = rel @ R
        cube = torch.tensor([[a, b, e] for a in (-1, 1) for b in (-1, 1) for e in (-1, 1)], dtype=torch.float64)
        corners = pc + (cube * voxel / 2) @ R
        uc, vc = round(float(pc[0] / pc[2] * K_[0, 0] + K_[0, 2])), round(float(pc[1] / pc[2] * K_[1, 1] + K_[1, 2]))
        if not (pc[2] > near and (corners[:, 2] > near).all() and 0 <= uc < W and 0 <= vc < H):
            out.append(False)
            continue
        with np.errstate(divide="ignore"):
            t1, t2 = (rel - voxel / 2) / ray_w, (rel + voxel / 2) / ray_w
        t_in, t_out = torch.minimum(t1, t2).amax(1), torch.maximum(t1, t2).amin(1)
        meets = t_in <= t_out
        through = vouched.reshape(-1) > t_out
        out.append(bool(meets[vc * W + uc]) and bool((through | ~meets).all()))
    return torch.tensor(out)


def test_free_voxels_equal_every_pixel_ray_tested_and_the_shortcut_changes_nothing():
    rng = np.random.default_rng(4)
    agree = total = n_free = 0
    for trial in range(6):
        T = np.eye(4)
        T[:3, :3] = random_rotation(rng)
        T[:3, 3] = rng.uniform(-1, 1, 3)
        depth = random_depth(rng)
        cam = np.concatenate([(rng.uniform(0, W, (400, 1)) - K[0, 2]) / F, (rng.uniform(0, H, (400, 1)) - K[1, 2]) / F,
                              np.ones((400, 1))], 1) * rng.uniform(0.3, 8.0, (400, 1))
        centres = torch.from_numpy(cam @ T[:3, :3].T + T[:3, 3])  # anywhere in the view, 0.3-8 m deep
        min_depth, max_depth = (0.0, math.inf) if trial % 2 else (0.5, 6.0)
        kw = {"min_depth": min_depth, "max_depth": max_depth, "max_rays": 10_000}
        got = free_voxels(centres, depth, K, T, 0.05, **kw)
        assert torch.equal(got, free_voxels(centres, depth, K, T, 0.05, shortcut=True, **kw))
        assert torch.equal(got, free_voxels(centres, depth, K, T, 0.05, shortcut=False, chunk=37, pair_chunk=999, **kw))
        ref = brute_force_free(centres, depth, K, T, 0.05, min_depth, max_depth)
        agree += int((got == ref).sum())
        total += len(ref)
        n_free += int(ref.sum())
    assert 0.2 * total < n_free < 0.8 * total  # not vacuous: both verdicts are common
    assert agree >= total - 2, (agree, total)  # float32 vs float64 at a cube's very edge, at most


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


def test_a_voxel_goes_after_as_many_frames_as_halve_the_frames_that_hit_it():
    """Frames, not points: 1 hit frame -> 1 frame seeing through, 2-3 -> 2, 16 -> 5; the count saturates
    at 128 (8 frames), however many points or frames came before."""
    depth = torch.full((H, W), 3.0)
    for hit_frames, expected in ((1, 1), (3, 2), (16, 5), (127, 7), (128, 8), (300, 8)):
        vm = VoxelMap(dim=1, dtype=torch.float32, free_space_decay=0.5)
        vm.integrate_points(torch.tensor([[0.025, 0.025, 1.025]] * 1000), torch.zeros(1000, 1))  # 1000 points
        key = vm.keys()
        for _ in range(hit_frames - 1):  # integrate_points counts as the first frame
            vm._clear_free_space(depth, K, np.eye(4), key, 0.0, math.inf)
        assert len(vm) == 1 and int(vm.hits()[0]) == 1000
        frames = 0
        while len(vm):
            vm._clear_free_space(depth, K, np.eye(4), torch.empty(0, dtype=torch.int64), 0.0, math.inf)
            frames += 1
        assert frames == expected, (hit_frames, frames)


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


# ---------------------------------------------------------------- frustum pre-filter (exact vs full scan)
def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def random_map(rng: np.random.Generator, grid: str, origin: np.ndarray, n: int = 6000, extent: float = 8.0,
               voxel: float = 0.1) -> VoxelMap:
    """Voxels scattered over a cube of side ``extent`` at ``origin``, 1-4 hits each, in several runs."""
    vm = VoxelMap(voxel_size=voxel, dim=1, dtype=torch.float32, grid=grid, free_space_decay=0.5)
    pts = origin + (rng.random((n, 3)) - 0.5) * extent
    reps = rng.integers(1, 5, n)
    pts = np.repeat(pts, reps, axis=0) + rng.normal(scale=1e-4, size=(int(reps.sum()), 3))
    pts = torch.from_numpy(pts)
    for chunk in torch.tensor_split(pts, [len(pts) * 70 // 100, len(pts) * 90 // 100, len(pts) * 97 // 100]):
        vm.integrate_points(chunk, torch.zeros(len(chunk), 1))  # decreasing batches: several runs
    return vm


def random_depth(rng: np.random.Generator) -> torch.Tensor:
    """Blocky depth (0.3-8 m) with patches of unknown depth (0, NaN, inf) and a few far readings."""
    blocks = rng.uniform(0.3, 8.0, (H // 10 + 1, W // 10 + 1))
    d = np.kron(blocks, np.ones((10, 10)))[:H, :W] + rng.normal(scale=0.01, size=(H, W))
    for bad in (0.0, np.nan, np.inf):  # unknown depth comes in patches (it blocks clearing around it)
        r, c = rng.integers(0, H - 10), rng.integers(0, W - 10)
        d[r : r + rng.integers(1, 10), c : c + rng.integers(1, 10)] = bad
    d[rng.random((H, W)) < 0.005] = 30.0
    return torch.from_numpy(d.astype(np.float32))


def full_scan_reference(vm: VoxelMap, depth, K_, T, hit_keys, min_depth, max_depth) -> tuple[dict, int]:
    """Expected key -> (hits, frames that hit it) after one clearing, by testing every voxel of the map (no
    pre-filter), and how many voxels it flags."""
    free = free_voxels(vm.centers(torch.float64), depth, K_, T, vm.voxel_size, min_depth=min_depth,
                       max_depth=max_depth)
    keys, hits = vm.keys(), vm.hits().clone()
    frames = vm._store.cat("hit_frames").long() + 1
    hit = torch.isin(keys, hit_keys)
    frames[hit] = (frames[hit] + 1).clamp_max(128)
    flag = free & ~hit
    keep = 1.0 - vm.free_space_decay
    hits[flag] = torch.floor(hits[flag].double() * keep).to(torch.int32)
    frames[flag] = torch.floor(frames[flag].double() * keep).long()
    expected = {k: (h, f) for k, h, f in zip(keys.tolist(), hits.tolist(), frames.tolist(), strict=True)
                if h > 0 and f > 0}
    return expected, int(flag.sum())


def test_prefiltered_clearing_equals_full_scan_on_random_maps_and_poses():
    rng = np.random.default_rng(0)
    flagged_total = removed_total = 0
    for trial in range(16):
        grid = ("floor", "round")[trial % 2]
        origin = np.array([1.0e6, -2.0e6, 30.0]) if trial % 4 >= 2 else np.zeros(3)  # 1,000 km: far origin
        vm = random_map(rng, grid, origin)
        if trial % 4 >= 2:
            assert vm.origin_voxel.abs().max() > 1 << 20
        for _ in range(4):
            T = np.eye(4)
            T[:3, :3] = random_rotation(rng)
            T[:3, 3] = origin + rng.uniform(-3, 3, 3)
            depth = random_depth(rng)
            min_depth, max_depth = (0.0, math.inf) if rng.random() < 0.5 else (0.5, float(rng.uniform(2, 9)))
            # a frame hits only voxels in its frustum (their points are in the image, before the largest depth)
            lo, hi = frustum_voxel_box(depth, K, T, vm.voxel_size, vm._grid_shift, min_depth=min_depth,
                                       max_depth=max_depth)
            in_box = brute_force_box(vm, lo, hi)
            keys = torch.tensor(sorted(k for k, _ in in_box), dtype=torch.int64)
            hit_keys = torch.unique(torch.cat([keys[torch.randperm(len(keys))[:300]], torch.arange(50)]))
            vm.free_space_decay = float(rng.choice([0.3, 0.5, 1.0]))
            expected, flagged = full_scan_reference(vm, depth, K, T, hit_keys, min_depth, max_depth)
            before, cleared = len(vm), vm.cleared
            vm._clear_free_space(depth, K, T, hit_keys, min_depth, max_depth)
            frames = (vm._store.cat("hit_frames").long() + 1).tolist()
            got = {k: (h, f) for k, h, f in zip(vm.keys().tolist(), vm.hits().tolist(), frames, strict=True)}
            assert got == expected
            assert vm.cleared - cleared == before - len(expected)
            assert 0 < vm.last_clearing_candidates < before  # something is in view, not everything
            flagged_total += flagged
            removed_total += before - len(expected)
    assert flagged_total > 1000 and removed_total > 200  # not vacuous: many voxels decayed, some removed


def test_frustum_box_contains_the_flagged_voxels_and_is_empty_without_depth():
    depth = torch.full((H, W), 2.0)
    lo, hi = frustum_voxel_box(depth, K, np.eye(4), 0.1)
    assert lo.dtype == hi.dtype == torch.int64
    # looking down +z from the origin, 2 m deep; half widths 2 * (W/2) / F = 1.6 m and 1.2 m (+ padding)
    assert lo.tolist() == [-18, -14, -2] and hi.tolist() == [17, 13, 21]
    lo, hi = frustum_voxel_box(depth, K, np.eye(4), 0.1, max_depth=1.0)
    assert hi[2] == 11  # the box stops at max_depth when the depth reaches beyond it
    for bad in (torch.zeros(H, W), torch.full((H, W), float("nan"))):
        lo, hi = frustum_voxel_box(bad, K, np.eye(4), 0.1)
        assert (lo > hi).any()


def brute_force_box(vm: VoxelMap, lo, hi) -> set:
    idx = vm.voxel_indices()
    inside = ((idx >= torch.as_tensor(lo)) & (idx <= torch.as_tensor(hi))).all(dim=1)
    slots = torch.nonzero(inside, as_tuple=True)[0]
    return set(zip(vm.keys()[slots].tolist(), slots.tolist(), strict=True))


def test_slots_in_box_equals_brute_force_including_after_removals():
    rng = np.random.default_rng(1)
    for origin in (np.zeros(3), np.array([-1.0e6, 3.0e5, 5.0])):
        vm = random_map(rng, "floor", origin, n=5000, extent=20.0, voxel=0.1)
        assert len(vm._index.runs) >= 2
        centre = vm.voxel_indices().median(dim=0).values
        for step in range(30):
            if step % 10 == 9:  # removals rebuild the runs
                vm._remove(torch.from_numpy(rng.random(len(vm)) < 0.2))
            if step % 10 == 4:
                pts = origin + (rng.random((300, 3)) - 0.5) * 20.0
                vm.integrate_points(torch.from_numpy(pts), torch.zeros(300, 1))
            half = rng.integers(0, 120, 3)
            lo = centre + torch.from_numpy(rng.integers(-100, 100, 3)) - torch.from_numpy(half)
            hi = lo + torch.from_numpy(2 * half - rng.integers(0, 3, 3))  # sometimes empty (hi < lo)
            keys, slots = vm._slots_in_box(lo, hi)
            got = set(zip(keys.tolist(), slots.tolist(), strict=True))
            assert len(got) == keys.numel()
            assert got == brute_force_box(vm, lo, hi)
        everything = vm._slots_in_box(torch.full((3,), -(1 << 40)), torch.full((3,), 1 << 40))[1]
        assert sorted(everything.tolist()) == list(range(len(vm)))


def test_robot_in_a_big_map_projects_only_the_voxels_near_the_camera():
    rng = np.random.default_rng(2)
    vm = VoxelMap(dim=2, dtype=torch.float16, free_space_decay=0.5)
    pts = rng.random((60_000, 3)) * [100.0, 100.0, 2.0] - [50.0, 50.0, 0.0]  # a 100 m x 100 m floor
    vm.integrate_points(torch.from_numpy(pts), torch.zeros(60_000, 2))
    T = np.eye(4)
    T[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # optical z along world +x, optical y down
    T[:3, 3] = [3.0, 1.0, 1.0]
    vm.integrate_frame(frame(np.full((H, W), 3.0), T), torch.ones(2, 4, 5))
    assert 0 < vm.last_clearing_candidates < 0.01 * len(vm), vm.last_clearing_candidates
