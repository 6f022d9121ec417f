"""Long runs: fp16 means stay within the stated bound of exact float64 references; any map origin works.

Bound (docs/voxel_map.md): every stored component within 2e-3 relative or 2 fp16 ulps of the exact
hit-weighted mean (or of the exact recency-weighted mean under ``max_hits``), colours likewise.
"""

import math
import warnings

import numpy as np
import pytest
import torch

from radseg_core.types import Frame
from radseg_core.voxel_map import VoxelMap, recency_weights

D = 16
N_VOX = 4


def within_bound(stored: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """True where |stored - exact| <= max(2e-3 |exact|, 2 fp16 ulps of exact)."""
    ulp = np.spacing(np.abs(exact).astype(np.float16)).astype(np.float64)
    return np.abs(stored - exact) <= np.maximum(2e-3 * np.abs(exact), 2 * ulp)


def recency_reference(updates, max_hits):
    """Plain float64 restatement of the documented weights, one voxel: list of (points, colours)."""
    mean = col = None
    h = 0
    for vals, cols in updates:
        c = len(vals)
        fits = max_hits is None or h + c <= max_hits
        w_new = c if fits else min(c, max(max_hits - h, math.ceil(max_hits / 2)))
        w_old = h if max_hits is None else min(h, max_hits - w_new)
        bm, bc = vals.mean(axis=0), cols.mean(axis=0)
        if mean is None:
            mean, col = bm, bc
        else:
            mean = (w_old * mean + w_new * bm) / (w_old + w_new)
            col = (w_old * col + w_new * bc) / (w_old + w_new)
        h = w_old + w_new
    return mean, col, h


def run(n_static, n_changed, max_hits=None, residual_rows=8192, seed=0):
    """N_VOX voxels, each update 1-3 noisy points per voxel; scene changes after n_static updates."""
    rng = np.random.default_rng(seed)
    vm = VoxelMap(voxel_size=1.0, dim=D, dtype=torch.float16, max_hits=max_hits, residual_rows=residual_rows)
    base_a = rng.uniform(-1, 1, (N_VOX, D))
    base_b = rng.uniform(-1, 1, (N_VOX, D))
    base_a[:, :4] *= 1e-3  # small components: their fp16 residuals would be subnormal without scaling
    base_b[:, :4] *= 1e-3
    col_a, col_b = rng.uniform(20, 235, (N_VOX, 3)), rng.uniform(20, 235, (N_VOX, 3))
    history = [[] for _ in range(N_VOX)]
    checkpoints = []
    for t in range(n_static + n_changed):
        base, cbase = (base_a, col_a) if t < n_static else (base_b, col_b)
        pts, vals, cols = [], [], []
        for v in range(N_VOX):
            c = int(rng.integers(1, 4))
            x = base[v] + rng.normal(0, 0.05, (c, D)) * np.maximum(np.abs(base[v]), 1e-3)
            k = np.clip(cbase[v] + rng.normal(0, 8, (c, 3)), 0, 255)
            history[v].append((x, k))
            pts.append(np.full((c, 3), v + 0.5))
            vals.append(x)
            cols.append(k)
        vm.integrate_points(
            torch.from_numpy(np.concatenate(pts)).float(),
            torch.from_numpy(np.concatenate(vals)).float(),
            torch.from_numpy(np.concatenate(cols)).float(),
        )
        if t + 1 in (n_static, n_static + n_changed):
            checkpoints.append(check(vm, history, max_hits))
    return checkpoints


def check(vm, history, max_hits):
    order = vm.voxel_indices()[:, 0].argsort()
    vals = vm.values()[order].double().numpy()
    cols = vm.color_means()[order].double().numpy()
    hits = vm.hits()[order].numpy()
    ok_v = ok_c = True
    for v in range(N_VOX):
        mean, col, h = recency_reference(history[v], max_hits)
        # fp16 inputs: the map averages the fp32 points it was given; the reference uses the same points.
        ok_v &= bool(within_bound(vals[v], mean).all())
        ok_c &= bool(within_bound(cols[v], col).all())
        assert hits[v] == h and vm.hits().dtype == torch.int32
    return ok_v, ok_c


def test_static_10000_updates_then_500_after_scene_change_within_bound():
    (static_v, static_c), (changed_v, changed_c) = run(10_000, 500)
    assert static_v and static_c
    assert changed_v and changed_c


def test_without_compensation_the_bound_is_missed():
    """The check can fail: plain fp16 re-rounding (residual_rows=0) drifts past it after a scene change."""
    _, (changed_v, changed_c) = run(3_000, 500, residual_rows=0)
    assert not (changed_v and changed_c)


def test_max_hits_recency_weighted_mean_within_bound():
    (static_v, static_c), (changed_v, changed_c) = run(3_000, 500, max_hits=2000)
    assert static_v and static_c and changed_v and changed_c


def test_one_update_with_max_hits_points_keeps_half_the_history():
    vm = VoxelMap(voxel_size=1.0, dim=1, dtype=torch.float32, max_hits=10)
    p = torch.full((20, 3), 0.5)
    vm.integrate_points(p[:10], torch.zeros(10, 1))
    vm.integrate_points(p, torch.ones(20, 1))  # 20 >= max_hits points in one frame
    assert vm.hits().tolist() == [10]
    assert vm.values().item() == pytest.approx(0.5)  # history kept ceil(10/2) = 5 of 10


def test_residual_working_set_evicts_least_recently_used_and_survives_removal():
    vm = VoxelMap(voxel_size=1.0, dim=2, dtype=torch.float16, residual_rows=2)
    for x in (0.5, 1.5, 2.5):  # three voxels, two rows: the first one loses its row
        vm.integrate_points(torch.tensor([[x, 0.5, 0.5]]), torch.tensor([[1.0 / 3, 0.1]]))
    slots, _, _ = vm.residuals()
    assert sorted(slots.tolist()) == [1, 2]
    assert vm.clear_region([1.0, 0, 0], [2.0, 1, 1]) == 1  # voxel 1 (slot 1) goes; slot 2 becomes 1
    slots, _, _ = vm.residuals()
    assert slots.tolist() == [1] and vm._working.rows_of(torch.tensor([0, 1])).tolist() == [-1, 0]


def frame_points(offset, rng):
    H, W = 24, 32
    K = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
    depth = rng.uniform(0.5, 3.0, (H, W)).astype(np.float32)
    T = np.eye(4)
    ang = 0.3
    T[:3, :3] = [[math.cos(ang), 0, math.sin(ang)], [0, 1, 0], [-math.sin(ang), 0, math.cos(ang)]]
    T[:3, 3] = np.array([1.3, -0.7, 0.4]) + offset
    return Frame(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), depth, K, T)


@pytest.mark.parametrize("distance", [1_000.0, 40_000.0, 1_000_000.0])
def test_far_map_origin_gives_the_shifted_map(distance):
    offset = np.array([distance, -distance / 2, 30.0])
    fmap = torch.from_numpy(np.random.default_rng(1).normal(size=(3, 3, 4))).float()
    near, far = VoxelMap(dim=3, dtype=torch.float32), VoxelMap(dim=3, dtype=torch.float32)
    near.integrate_frame(frame_points(np.zeros(3), np.random.default_rng(2)), fmap)
    far.integrate_frame(frame_points(offset, np.random.default_rng(2)), fmap)
    shift = torch.from_numpy(np.round(offset / near.voxel_size)).long()
    a = {tuple(k): i for i, k in enumerate(near.voxel_indices().tolist())}
    b = {tuple((k - shift).tolist()): i for i, k in enumerate(far.voxel_indices())}
    assert a.keys() == b.keys() and far.out_of_range == 0
    ia, ib = torch.tensor(list(a.values())), torch.tensor([b[k] for k in a])
    assert torch.equal(near.hits()[ia], far.hits()[ib])
    torch.testing.assert_close(near.values()[ia], far.values()[ib], rtol=1e-6, atol=1e-6)
    centre = far.centers(torch.float64)[ib] - torch.from_numpy(offset)
    torch.testing.assert_close(centre, near.centers(torch.float64)[ia], rtol=0, atol=0.05 + 1e-6)


def test_points_beyond_the_key_range_are_counted_and_warned_once():
    vm = VoxelMap(voxel_size=1.0, dim=1, dtype=torch.float32)
    far = 2.0e6  # key range is +-2^20 voxels = +-1049 km at 1 m around the local origin
    pts = torch.tensor([[0.5, 0.5, 0.5], [far, 0.5, 0.5]], dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="beyond the voxel map's key range"):
        vm.integrate_points(pts, torch.ones(2, 1))
    assert len(vm) == 1 and vm.out_of_range == 1 and vm.last_out_of_range == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # second time: counted, not warned again
        vm.integrate_points(pts, torch.ones(2, 1))
    assert vm.out_of_range == 2


def view_run(n_static, n_changed, n_view=4096, pts_per_voxel=16, dim=8, max_hits=None, residual_rows=131072, seed=3):
    """A camera keeps ``n_view`` voxels in view (more than any map-size rule would compensate), each hit by
    ``pts_per_voxel`` noisy points per frame; the scene changes after ``n_static`` frames. Returns, per
    checkpoint, the worst relative error |stored - exact| / |exact| over the voxels in view, and the map."""
    rng = np.random.default_rng(seed)
    vm = VoxelMap(voxel_size=1.0, dim=dim, dtype=torch.float16, max_hits=max_hits, residual_rows=residual_rows)
    side = int(math.isqrt(n_view))
    ij = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1).reshape(-1, 2)
    centres = np.concatenate([ij + 0.5, np.full((n_view, 1), 0.5)], 1)
    pts = torch.from_numpy(np.repeat(centres, pts_per_voxel, axis=0))
    bases = [rng.uniform(-1, 1, (n_view, dim)), rng.uniform(-1, 1, (n_view, dim))]
    mean = np.zeros((n_view, dim))  # the exact reference, float64
    hits = np.zeros(n_view)
    worst = []
    for t in range(n_static + n_changed):
        base = bases[t >= n_static]
        x = np.repeat(base, pts_per_voxel, axis=0) + rng.normal(0, 0.1, (n_view * pts_per_voxel, dim))
        vm.integrate_points(pts, torch.from_numpy(x).float())
        batch = x.astype(np.float32).astype(np.float64).reshape(n_view, pts_per_voxel, dim).mean(axis=1)
        if max_hits is None:
            w_old, w_new = hits, np.full(n_view, pts_per_voxel)
        else:
            w_old, w_new = (t.numpy() for t in recency_weights(
                torch.from_numpy(hits).long(), torch.full((n_view,), pts_per_voxel), max_hits))
        mean = (w_old[:, None] * mean + w_new[:, None] * batch) / (w_old + w_new)[:, None]
        hits = (w_old + w_new).astype(np.float64)
        if t + 1 in (n_static, n_static + n_changed):
            order = np.lexsort(vm.voxel_indices()[:, :2].numpy().T[::-1])
            stored = vm.values()[torch.from_numpy(order)].double().numpy()
            err = np.linalg.norm(stored - mean, axis=1) / np.linalg.norm(mean, axis=1)
            worst.append(float(err.max()))
    return worst, vm


def test_every_voxel_in_a_large_view_stays_exact_over_thousands_of_frames():
    """Issue #17: 4,096 voxels in view (a working set sized by the map would cover 256), 16 points each per
    frame: every voxel within 2e-3 of its exact mean after 2,000 static frames and 500 after a change."""
    (static, changed), vm = view_run(2_000, 500)
    assert static <= 2e-3 and changed <= 2e-3, (static, changed)
    st = vm.memory_stats()
    assert st["working_set_rows"] >= 4096 and st["uncompensated_total"] == 0
    assert st["working_set_bytes"] == st["working_set_rows"] * ((8 + 3) * 4 + 16)


def test_voxels_beyond_the_working_set_cap_are_counted():
    """A cap below the view (``residual_rows``): the rest round as before, and are counted."""
    (_, changed), vm = view_run(300, 300, residual_rows=1024)
    st = vm.memory_stats()
    assert st["working_set_rows"] == 1024
    assert st["uncompensated_last"] == 4096 - 1024 and st["uncompensated_total"] == (4096 - 1024) * 600
    assert changed > 2e-3  # the check can fail: uncompensated voxels drift after the change


def test_large_view_with_hit_cap_follows_the_recency_weighted_mean():
    (static, changed), _ = view_run(1_000, 500, max_hits=800)
    assert static <= 2e-3 and changed <= 2e-3, (static, changed)
