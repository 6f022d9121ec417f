"""Voxel map benchmark: integration cost as the map grows, vs a re-voxelize-everything baseline.

Synthetic scene: a camera (640x480, f=525) walks down a 4 m x 3 m corridor (0.1 m per frame, yawing
and swaying) so new wall, floor and ceiling voxels keep arriving; depth is ray-cast analytically,
features are random 768-d maps at 1/16 resolution (30x40), exactly the shapes RADSeg produces.

Measured side by side in one run (ratios are what matter; state the machine):

* ``integrate_frame`` (sparse interpolation-weight path) per frame at checkpoints, median of a few
  frames around each; plus the dense "upsample every pixel" path at the same checkpoints.
* RayFronts-style baseline: upsample features to every pixel, concatenate the new points with the
  whole map (centres, features, hits) and run ``torch.unique(dim=0)`` + scatter means over all of it.
  Timed on the real map state at each checkpoint (one update each: running it every frame would take
  hours, and its cost depends only on the map size it sees).
* Same averages: baseline run on every frame of a short prefix vs the map (fp32), max |diff|.
* Query time vs map size (random maps up to 1M voxels): cached aligned fp16 copy (one matrix
  product), align at query time (768 -> 1152 linear stand-in for the SigLIP2 head), raw 768-d.
* Bytes per voxel, fp16, 768-d, everything included (index, hits, colour, clock, residual working set,
  growth slack) at every checkpoint; the aligned query cache (if enabled) is stated separately.
* Drift (issue #11): one voxel, 10,000 static updates then 500 after a scene change, for each numeric
  option: fp16 round-to-nearest (before), stochastic rounding, fp32 accumulation flushed to fp16
  every F updates, compensated two-term working set (VoxelMap default), fp32 storage.
* Key-index cost per frame vs map size (100k and 2M voxels): integrate 20k points (5k new voxels).
* Free-space clearing cost per 640x480 frame at each checkpoint (every voxel tested), and at 100k and 1M
  voxels the map's path (frustum pre-filter) vs testing every voxel vs the path before issue #22 (window
  rule, ``free_space_designs.clear_before_22``) for voxels all in the frustum's box (worst case) and
  spread over 100 m x 100 m (robot case).

Usage: ``python benchmarks/voxel_map.py [--frames 500] [--out results.json]``; ``--quick`` for a
smoke run. Default run: ~6 min wall on a 2-core CPU shared with other jobs
(timings are CPU time of this process with one torch thread, so contention does not distort them).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from free_space_designs import clear_before_22, free_voxels_window  # noqa: E402  (this script's folder)

from radseg_core.free_space import free_voxels, frustum_voxel_box  # noqa: E402
from radseg_core.geometry import backproject_depth, optical_from_body_pose, transform_points  # noqa: E402
from radseg_core.query import AlignedFeatures, cosine_scores, map_cosines  # noqa: E402
from radseg_core.types import Frame  # noqa: E402
from radseg_core.voxel_map import VoxelMap, pack_keys  # noqa: E402

H, W, D, PATCH = 480, 640, 768, 16
K = np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]])
MAX_DEPTH = 8.0
VOXEL = 0.05


def camera_pose(i: int) -> np.ndarray:
    """Body pose walking down +x, swaying in y, yawing ±35 degrees, pitched slightly down."""
    yaw, pitch = 0.6 * math.sin(i / 15.0), 0.15
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    T = np.eye(4)
    T[:3, :3] = Rz @ Ry
    T[:3, 3] = [0.1 * i, 0.6 * math.sin(i / 20.0), 1.4]
    return optical_from_body_pose(T)


_RAYS = None


def render_frame(i: int, gen: torch.Generator) -> tuple[Frame, torch.Tensor]:
    """Ray-cast the corridor (floor z=0, ceiling z=3, walls y=±2) for frame i; random feature map."""
    global _RAYS
    if _RAYS is None:
        v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
        _RAYS = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    T = camera_pose(i)
    d = _RAYS @ torch.from_numpy(T[:3, :3]).T  # world direction per unit optical depth
    o = torch.from_numpy(T[:3, 3])
    t = torch.full((H, W), math.inf, dtype=torch.float64)
    for axis, planes in ((2, (0.0, 3.0)), (1, (-2.0, 2.0))):
        for c in planes:
            ti = (c - o[axis]) / d[..., axis]
            t = torch.where((ti > 1e-6) & (ti < t), ti, t)
    depth = t.float()
    depth[depth > MAX_DEPTH] = 0.0
    rgb = torch.randint(0, 256, (H, W, 3), generator=gen, dtype=torch.uint8).numpy()
    fmap = torch.randn(D, H // PATCH, W // PATCH, generator=gen)
    return Frame(rgb=rgb, depth=depth.numpy(), K=K, T_world_cam=T), fmap


def baseline_update(state, frame: Frame, fmap: torch.Tensor):
    """RayFronts-style: per-pixel features, concat with the whole map, unique(dim=0) over everything."""
    pts, rows, cols = backproject_depth(torch.from_numpy(frame.depth), frame.K, max_depth=MAX_DEPTH)
    pts = transform_points(frame.T_world_cam, pts.double())  # float64 world points, as VoxelMap
    feats = F.interpolate(fmap[None], size=(H, W), mode="bilinear", align_corners=False)[0][:, rows, cols].T
    centres, values, hits = state
    all_p = torch.cat([centres, pts])
    all_f = torch.cat([values * hits[:, None], feats])
    all_h = torch.cat([hits, torch.ones(pts.shape[0])])
    ijk = torch.floor(all_p.double() / VOXEL).long()
    uniq, inv = torch.unique(ijk, dim=0, return_inverse=True)
    h = torch.zeros(uniq.shape[0]).index_add_(0, inv, all_h)
    f = torch.zeros(uniq.shape[0], D).index_add_(0, inv, all_f) / h[:, None]
    return ((uniq.double() + 0.5) * VOXEL).float(), f, h


def map_state(vm: VoxelMap):
    return vm.centers(torch.float64), vm.values().float(), vm.hits().float()


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, out


def cpu_timed(fn, *args, **kwargs):
    """CPU seconds of this process: robust to other jobs sharing the cores (run with --threads 1)."""
    t = time.process_time()
    out = fn(*args, **kwargs)
    return time.process_time() - t, out


def bench_integration(n_frames: int, checkpoints: list[int], window: int, baseline_at: set[int]):
    """Integrate n_frames; at checkpoints also time the dense path (fresh map) and the baseline (real map)."""
    gen = torch.Generator().manual_seed(0)
    vm = VoxelMap(voxel_size=VOXEL, dim=D, dtype=torch.float16)
    series, rows = [], []
    for i in range(1, n_frames + 1):
        frame, fmap = render_frame(i, gen)
        if i in checkpoints:
            fresh = VoxelMap(voxel_size=VOXEL, dim=D, dtype=torch.float16)
            td, _ = cpu_timed(fresh.integrate_frame, frame, fmap, max_depth=MAX_DEPTH, method="dense")
            del fresh
            tb = cpu_timed(baseline_update, map_state(vm), frame, fmap)[0] if i in baseline_at else None
        t_wall, t0 = time.perf_counter(), time.process_time()
        n_pts = vm.integrate_frame(frame, fmap, max_depth=MAX_DEPTH)
        series.append(
            {
                "frame": i,
                "voxels": len(vm),
                "points": n_pts,
                "cpu_ms": 1e3 * (time.process_time() - t0),
                "wall_ms": 1e3 * (time.perf_counter() - t_wall),
                "bytes_per_voxel": vm.nbytes() / len(vm),  # after every update, not only at checkpoints
            }
        )
        if i in checkpoints:
            tc, free = cpu_timed(
                free_voxels, vm.centers(torch.float64), torch.from_numpy(frame.depth), frame.K,
                frame.T_world_cam, VOXEL, max_depth=MAX_DEPTH,
            )
            n_free = int(free.sum())
            win = series[max(0, i - window) : i]
            r = {
                "frame": i,
                "voxels": len(vm),
                "points": n_pts,
                "sparse_ms": statistics.median(x["cpu_ms"] for x in win),
                "sparse_wall_ms": statistics.median(x["wall_ms"] for x in win),
                "dense_ms": 1e3 * td,
                "baseline_ms": None if tb is None else 1e3 * tb,
                "bytes_per_voxel": vm.nbytes() / len(vm),
                "clearing_ms": 1e3 * tc,
                "cleared_candidates": n_free,
            }
            rows.append(r)
            base = "-" if tb is None else f"{r['baseline_ms']:9.0f}"
            print(
                f"{i:6d} {r['voxels']:9d} {r['points']:8d} {r['sparse_ms']:9.1f} {r['sparse_wall_ms']:9.1f} "
                f"{r['dense_ms']:9.1f} {base:>9} {r['bytes_per_voxel']:9.0f} {r['clearing_ms']:9.1f}",
                flush=True,
            )
    return vm, rows, series


def check_same_averages(n_frames: int) -> dict:
    gen = torch.Generator().manual_seed(1)
    vm = VoxelMap(voxel_size=VOXEL, dim=D, dtype=torch.float32)
    state = (torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, D), torch.zeros(0))
    for i in range(1, n_frames + 1):
        frame, fmap = render_frame(5 * i, gen)
        vm.integrate_frame(frame, fmap, max_depth=MAX_DEPTH)
        state = baseline_update(state, frame, fmap)
    ours = {tuple(k): j for j, k in enumerate(vm.voxel_indices().tolist())}
    base_ijk = torch.floor(state[0].double() / VOXEL).long().tolist()
    assert len(ours) == len(base_ijk), (len(ours), len(base_ijk))
    idx = torch.tensor([ours[tuple(k)] for k in base_ijk])
    return {
        "frames": n_frames,
        "voxels": len(vm),
        "max_abs_diff_values": float((vm.values()[idx] - state[1]).abs().max()),
        "hits_equal": bool(torch.equal(vm.hits()[idx].float(), state[2])),
    }


def tiled_random(n: int, dim: int, gen: torch.Generator, unit: bool = False, block: int = 65536) -> torch.Tensor:
    """(n, dim) fp16 rows: a random block repeated (cheap to build at 1M rows, same query cost)."""
    b = torch.randn(min(n, block), dim, generator=gen)
    b = (F.normalize(b, dim=1) if unit else b).half()
    return b.repeat(-(-n // b.shape[0]), 1)[:n].contiguous()


def bench_queries(sizes: list[int], align_sizes: set[int], text_dim: int = 1152, touched: int = 50_000) -> dict:
    """Query cost vs map size: cached aligned copy, raw 768-d, and aligning the whole map per query."""
    gen = torch.Generator().manual_seed(2)
    # Stand-in with the SigLIP2 adaptor head's shape (an MLP 768 -> 1536 -> 1152), random weights.
    align_lin = torch.nn.Sequential(torch.nn.Linear(D, 1536), torch.nn.GELU(), torch.nn.Linear(1536, text_dim))
    text = torch.randn(1, text_dim, generator=gen)
    rows = []
    with torch.no_grad():
        for n in sizes:
            values = tiled_random(n, D, gen)  # content does not change the cost; generating 1M rows does
            aligned = tiled_random(n, text_dim, gen, unit=True)  # what the aligned cache holds
            row = {"voxels": n}
            row["query_cached_ms"] = 1e3 * min(cpu_timed(cosine_scores, aligned, text)[0] for _ in range(3))
            row["query_raw768_ms"] = 1e3 * min(cpu_timed(cosine_scores, values, text[:, :D])[0] for _ in range(3))
            row["query_align_each_time_ms"] = None
            if n in align_sizes:  # the default (no cache): the chunked map aligned chunk by chunk
                vm = VoxelMap(voxel_size=VOXEL, dim=D, dtype=torch.float16)
                vm._restore(torch.randperm(1 << 30, generator=gen)[:n].long(), values, torch.zeros(n, 3).half(),
                            torch.ones(n), torch.zeros(n, dtype=torch.int32), 1)
                t, _ = cpu_timed(map_cosines, vm, text, align_lin)
                row["query_align_each_time_ms"] = 1e3 * t
                del vm
            del values, aligned
            a = row["query_align_each_time_ms"]
            print(
                f"{n:9d} {row['query_cached_ms']:10.1f} {row['query_raw768_ms']:10.1f} "
                f"{float('nan') if a is None else a:14.1f}",
                flush=True,
            )
            rows.append(row)
        # Incremental refresh of the aligned cache after one frame touching `touched` voxels.
        vm = VoxelMap(voxel_size=VOXEL, dim=D, dtype=torch.float16)
        n = max(sizes[0], touched)
        keys = torch.randperm(1 << 30, generator=gen)[:n].long()
        vm._restore(
            keys,
            torch.randn(n, D, generator=gen).half(),
            torch.zeros(n, 3).half(),
            torch.ones(n),
            torch.zeros(n, dtype=torch.int32),
            1,
        )
        cache = AlignedFeatures(align_lin)
        cache.update(vm)
        vm._store.write_range("last_seen", 0, torch.full((touched,), 2, dtype=torch.int32))
        vm.frames_integrated = 2
        refresh, _ = cpu_timed(cache.update, vm)
    print(f"aligned-cache refresh, {touched} touched voxels (768 -> {text_dim}): {1e3 * refresh:.0f} ms")
    return {
        "rows": rows,
        "cache_refresh_ms": 1e3 * refresh,
        "cache_refresh_voxels": touched,
        "cache_bytes_per_voxel": 2 * text_dim,
    }


def _stochastic_round(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unbiased rounding of float64 ``x`` to float16: up with probability (x - lower) / (upper - lower)."""
    near = x.astype(np.float16)
    below = near.astype(np.float64) > x
    lower = np.where(below, np.nextafter(near, np.float16(-np.inf)), near)
    upper = np.where(below, near, np.nextafter(near, np.float16(np.inf)))
    span = upper.astype(np.float64) - lower.astype(np.float64)
    p = np.where(span > 0, (x - lower.astype(np.float64)) / np.where(span > 0, span, 1), 0)
    return np.where(rng.random(x.shape) < p, upper, lower)


def bench_drift(n_static: int, n_changed: int, dim: int = D, seed: int = 0) -> dict:
    """Stored mean vs exact float64 hit-weighted mean for each numeric option (one voxel, 1-3 pts/update)."""
    rng = np.random.default_rng(seed)
    base_a, base_b = rng.uniform(-1, 1, dim), rng.uniform(-1, 1, dim)
    col_a, col_b = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    updates = []
    for t in range(n_static + n_changed):
        c = int(rng.integers(1, 4))
        b, cb = (base_a, col_a) if t < n_static else (base_b, col_b)
        x = (b + rng.normal(0, 0.05, (c, dim))).astype(np.float32).astype(np.float64)
        k = np.clip(cb + rng.normal(0, 8, (c, 3)), 0, 255).astype(np.float32).astype(np.float64)
        updates.append((x, k))
    checkpoints = (n_static, n_static + n_changed)

    def metrics(stored: np.ndarray, exact: np.ndarray) -> dict:
        ulp = np.spacing(np.abs(exact).astype(np.float16)).astype(np.float64)
        err = np.abs(stored - exact)
        bound = np.maximum(2e-3 * np.abs(exact), 2 * ulp)
        return {
            "max_rel": float((err / np.maximum(np.abs(exact), 1e-3)).max()),
            "max_ulps": float((err / ulp).max()),
            "frac_outside_bound": float((err > bound).mean()),
        }

    def emulate(step) -> dict:
        """Run ``step(mean, col, h, x, k) -> (mean, col)`` over the updates with exact refs alongside."""
        out = {}
        mean = col = None
        h = 0
        s_x, s_k, n = np.zeros(dim), np.zeros(3), 0
        for t, (x, k) in enumerate(updates, 1):
            mean, col = step(mean, col, h, x, k, t)
            h += len(x)
            s_x += x.sum(0)
            s_k += k.sum(0)
            n += len(x)
            if t in checkpoints:
                out[t] = {"values": metrics(mean.astype(np.float64), s_x / n),
                          "colors": metrics(col.astype(np.float64), s_k / n)}
        return out

    def rounding(kind: str, flush: int = 1):
        srng = np.random.default_rng(1)
        master = {}

        def step(mean, col, h, x, k, t):
            if mean is None:
                m, c = x.mean(0), k.mean(0)
            else:
                src_m, src_c = master.get("m", mean.astype(np.float64)), master.get("c", col.astype(np.float64))
                m = (src_m * h + x.sum(0)) / (h + len(x))
                c = (src_c * h + k.sum(0)) / (h + len(x))
            m32, c32 = m.astype(np.float32).astype(np.float64), c.astype(np.float32).astype(np.float64)
            if kind == "sr":
                sm, sc = _stochastic_round(m32, srng), _stochastic_round(c32, srng)
            else:
                sm, sc = m32.astype(np.float16), c32.astype(np.float16)
            if kind == "flush" and t % flush:
                master["m"], master["c"] = m32, c32  # fp32 master kept while the voxel stays active
            else:
                master.clear()  # flushed: the fp16 value is all that remains
            return sm, sc

        return emulate(step)

    results = {
        "fp16 round-to-nearest (before)": rounding("rn"),
        "fp16 stochastic rounding": rounding("sr"),
        "fp32 accumulate, flush to fp16 every 16 updates": rounding("flush", 16),
        "fp32 accumulate, flush to fp16 every 256 updates": rounding("flush", 256),
    }
    for name, kw in (("compensated fp16 working set (VoxelMap default)", {}),
                     ("fp16, VoxelMap residual_rows=0", {"residual_rows": 0})):
        vm = VoxelMap(voxel_size=1.0, dim=dim, dtype=torch.float16, **kw)
        out, s_x, s_k, n = {}, np.zeros(dim), np.zeros(3), 0
        for t, (x, k) in enumerate(updates, 1):
            vm.integrate_points(torch.full((len(x), 3), 0.5), torch.from_numpy(x).float(), torch.from_numpy(k).float())
            s_x += x.sum(0)
            s_k += k.sum(0)
            n += len(x)
            if t in checkpoints:
                out[t] = {"values": metrics(vm.values()[0].double().numpy(), s_x / n),
                          "colors": metrics(vm.color_means()[0].double().numpy(), s_k / n)}
        results[name] = out
    return {"n_static": n_static, "n_changed": n_changed, "dim": dim, "options": results}


def bench_memory_growth(target: int, step: int = 50_000, dim: int = D) -> list[dict]:
    """Grow a 768-d fp16 map to ``target`` voxels, ``step`` new ones per update (plus revisits); after
    every update: bytes per voxel (everything the map holds) and allocated / used. Peak RSS growth of
    the process is reported too (it includes each update's temporaries: the step's fp32 input)."""
    import resource

    gen = torch.Generator().manual_seed(4)
    vm = VoxelMap(voxel_size=1.0, dim=dim, dtype=torch.float16)
    rows = []
    side = 1000
    prev = torch.zeros(0, 3, dtype=torch.int64)
    for i in range(-(-target // step)):
        lin = torch.arange(i * step, (i + 1) * step)
        ijk = torch.stack([lin % side, (lin // side) % side, lin // (side * side)], 1)
        pts = torch.cat([ijk, prev[: step // 10]]).double() + 0.5  # new voxels + revisits of the last slab
        t, _ = cpu_timed(vm.integrate_points, pts, torch.randn(pts.shape[0], dim, generator=gen))
        prev = ijk
        st = vm.memory_stats()
        st.update(update_ms=1e3 * t, maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        rows.append(st)
        print(f"{st['voxels']:9d} {st['bytes_per_voxel']:9.1f} {st['allocated_over_used']:9.4f} "
              f"{st['chunk_rows']:7d} {st['chunks']:7d} {st['residual_rows']:7d} {st['update_ms']:9.0f}", flush=True)
    return rows


def bench_index(sizes: list[int], repeats: int = 40, n_points: int = 20_000, n_new: int = 5_000) -> list[dict]:
    """Per-frame cost of finding / inserting keys as the map grows (dim 1: the key index dominates)."""
    rows = []
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        side = int(round(n ** (1 / 3))) + 1
        ijk = torch.stack(torch.meshgrid(*(torch.arange(side),) * 3, indexing="ij"), -1).reshape(-1, 3)[:n]
        vm = VoxelMap(voxel_size=1.0, dim=1, dtype=torch.float16)
        keys = ijk + 0  # existing voxels at integer coordinates 0..side-1
        vm.integrate_points((keys.double() + 0.5), torch.zeros(n, 1))
        times = []
        for r in range(repeats):
            old = ijk[torch.randint(0, n, (n_points - n_new,), generator=gen)]
            new = torch.randint(0, 1 << 14, (n_new, 3), generator=gen) + side + 1 + r * (1 << 14)
            pts = torch.cat([old, new]).double() + 0.5
            t, _ = cpu_timed(vm.integrate_points, pts, torch.zeros(n_points, 1))
            times.append(1e3 * t)
        rows.append({"voxels": n, "ms_per_frame": statistics.median(times), "mean_ms": statistics.mean(times),
                     "max_ms": max(times), "runs": len(vm._index.runs), "points": n_points, "new": n_new})
        print(f"{n:9d} {rows[-1]['ms_per_frame']:9.1f} {rows[-1]['mean_ms']:9.1f} {rows[-1]['max_ms']:9.1f}",
              flush=True)
        del vm
    return rows


def full_scan_clear(vm: VoxelMap, depth: torch.Tensor, K_: np.ndarray, T: np.ndarray, hit_keys: torch.Tensor,
                    max_depth: float) -> None:
    """``VoxelMap._clear_free_space`` without the frustum pre-filter: every voxel tested (reference)."""
    keys = vm.keys()
    hit = torch.isin(keys, hit_keys)
    at = vm._store.locate(torch.nonzero(hit, as_tuple=True)[0])
    vm._store.scatter("hit_frames", at, (vm._store.gather("hit_frames", at).int() + 1).clamp_max(127).to(torch.int8))
    free = free_voxels(vm.centers(torch.float64), depth, K_, T, vm.voxel_size, max_depth=max_depth)
    vm._decay_seen_through(torch.nonzero(free & ~hit, as_tuple=True)[0])


def bench_clearing_at(n: int, scene: str, repeats: int = 3) -> dict:
    """Free-space clearing of one 640x480 corridor frame against an n-voxel map: the map's path (frustum
    pre-filter, per-ray rule of issue #22) vs the same rule testing every voxel (same maps, same result)
    and vs the map's path before #22 (pre-filter, window-minimum rule, hits decay). ``scene="frustum"``:
    every voxel inside the frustum's box (worst case: nothing filtered out); ``"spread"``: voxels over
    100 m x 100 m x 3 m around the camera (a robot in a big map). Hits start at 2^20 (and frames at 128)
    so repeats decay but never remove (the maps stay comparable)."""
    gen = torch.Generator().manual_seed(3)
    frame, _ = render_frame(50, gen)
    depth = torch.from_numpy(frame.depth)
    if scene == "frustum":
        lo, hi = frustum_voxel_box(depth, frame.K, frame.T_world_cam, VOXEL, max_depth=MAX_DEPTH)
    else:
        c = torch.from_numpy(np.floor(frame.T_world_cam[:3, 3] / VOXEL)).long()
        lo, hi = c - torch.tensor([1000, 1000, 0]), c + torch.tensor([1000, 1000, 0])
        lo[2], hi[2] = 0, 59
    box = int((hi - lo + 1).prod())
    assert box > 1.5 * n, f"box of {box} cells too small for {n} voxels"
    cells = torch.unique(torch.randint(0, box, (int(1.3 * n),), generator=gen))
    cells = cells[torch.randperm(cells.numel(), generator=gen)[:n]]
    ext = hi - lo + 1
    ijk = torch.stack([cells // (ext[1] * ext[2]), cells // ext[2] % ext[1], cells % ext[2]], 1) + lo
    keys = pack_keys(ijk)
    maps = []
    for _ in range(3):
        vm = VoxelMap(voxel_size=VOXEL, dim=1, dtype=torch.float32, free_space_decay=0.5)
        vm._restore(keys, torch.zeros(n, 1), torch.zeros(n, 3), torch.full((n,), 1 << 20, dtype=torch.int32),
                    torch.zeros(n, dtype=torch.int32), 1)
        maps.append(vm)
    pts = transform_points(torch.from_numpy(frame.T_world_cam),
                           backproject_depth(depth, frame.K, max_depth=MAX_DEPTH)[0].double())
    hit_keys = torch.unique(maps[0]._point_keys(pts)[0])
    pre, full, before = maps
    args = (depth, frame.K, frame.T_world_cam, hit_keys)
    times = {"full_scan_ms": [], "prefilter_ms": [], "before_22_ms": []}
    for _ in range(repeats):
        t, _ = cpu_timed(full_scan_clear, full, *args, MAX_DEPTH)
        times["full_scan_ms"].append(1e3 * t)
        t, _ = cpu_timed(pre._clear_free_space, *args, 0.0, MAX_DEPTH)
        times["prefilter_ms"].append(1e3 * t)
        t, _ = cpu_timed(clear_before_22, before, free_voxels_window, *args, 0.0, MAX_DEPTH)
        times["before_22_ms"].append(1e3 * t)
    out = {"voxels": n, "scene": scene, **{k: float(np.median(v)) for k, v in times.items()}}
    out["ratio"] = out["full_scan_ms"] / out["prefilter_ms"]
    out["vs_before_22"] = out["prefilter_ms"] / out["before_22_ms"]
    out["candidates"] = pre.last_clearing_candidates
    out["flagged"] = int((pre.hits() < 1 << 20).sum())
    out["flagged_before_22"] = int((before.hits() < 1 << 20).sum())
    out["same_result"] = bool(torch.equal(pre.hits(), full.hits())) and bool(
        torch.equal(pre._store.cat("hit_frames"), full._store.cat("hit_frames")))
    return out


def bench_removal(n: int, removed: int = 200, repeats: int = 5) -> dict:
    """Removing ``removed`` random voxels of an n-voxel 768-d fp16 map (what free-space clearing does
    most frames): ``VoxelMap._remove`` (holes refilled from the tail) vs the full compaction it replaced
    (every slot array rewritten through a boolean mask), side by side on the same map."""
    gen = torch.Generator().manual_seed(5)
    keys = torch.randperm(4 * n, generator=gen)[:n].long()

    def fresh() -> VoxelMap:
        vm = VoxelMap(voxel_size=VOXEL, dim=D, dtype=torch.float16)
        vm._restore(keys, torch.randn(n, D, generator=gen).half(), torch.zeros(n, 3).half(),
                    torch.ones(n, dtype=torch.int32), torch.zeros(n, dtype=torch.int32), 1)
        return vm

    def contiguous() -> list[torch.Tensor]:
        """The slot arrays of the storage before chunking (keys, values, colours, hits, clock, residual row)."""
        return [keys.clone(), torch.randn(n, D, generator=gen).half(), torch.zeros(n, 3).half(),
                *(torch.zeros(n, dtype=torch.int32) for _ in range(3))]

    def full_compaction(arrays: list[torch.Tensor], remove: torch.Tensor) -> None:
        keep, m = ~remove, n - int(remove.sum())
        for t in arrays:
            t[:m] = t[:n][keep]

    times = {"tail_fill_ms": [], "full_compaction_ms": []}
    for _ in range(repeats):
        remove = torch.zeros(n, dtype=torch.bool)
        remove[torch.randperm(n, generator=gen)[:removed]] = True
        for name, fn, make in (("tail_fill_ms", VoxelMap._remove, fresh),
                               ("full_compaction_ms", full_compaction, contiguous)):
            target = make()
            t, _ = cpu_timed(fn, target, remove)
            times[name].append(1e3 * t)
    out = {"voxels": n, "removed": removed, **{k: float(np.median(v)) for k, v in times.items()}}
    out["ratio"] = out["full_compaction_ms"] / out["tail_fill_ms"]
    return out


def run_clearing(sizes: list[int], repeats: int) -> list[dict]:
    print("\n## free-space clearing, one 640x480 frame (CPU ms, median): per-ray rule (#22) with the frustum "
          "pre-filter, the same without it, and the window rule before #22 (pre-filter)")
    print(f"{'scene':>8} {'voxels':>9} {'full':>9} {'prefilter':>9} {'ratio':>7} {'before#22':>9} {'new/old':>7} "
          f"{'projected':>9} {'flagged':>8} {'old flag':>8} same")
    out = []
    for scene in ("frustum", "spread"):
        for n in sizes:
            c = bench_clearing_at(n, scene, repeats)
            print(f"{scene:>8} {n:9d} {c['full_scan_ms']:9.1f} {c['prefilter_ms']:9.1f} {c['ratio']:6.1f}x "
                  f"{c['before_22_ms']:9.1f} {c['vs_before_22']:6.2f}x {c['candidates']:9d} {c['flagged']:8d} "
                  f"{c['flagged_before_22']:8d} {c['same_result']}", flush=True)
            out.append(c)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[10, 50, 100, 200, 300, 400, 500])
    ap.add_argument("--baseline-at", type=int, nargs="+", default=[10, 100, 300])
    ap.add_argument("--window", type=int, default=5, help="frames per checkpoint median")
    ap.add_argument("--check-frames", type=int, default=15, help="frames for the same-averages check")
    ap.add_argument("--query-sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000, 1_000_000])
    ap.add_argument("--align-sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time == work done)")
    ap.add_argument("--drift-updates", type=int, nargs=2, default=[10_000, 500], help="static, after change")
    ap.add_argument("--index-sizes", type=int, nargs="+", default=[100_000, 2_000_000])
    ap.add_argument("--clearing-sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--removal-sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--growth-voxels", type=int, default=1_000_000, help="memory-growth section target")
    ap.add_argument("--only-memory", action="store_true", help="run only the memory-growth section")
    ap.add_argument("--only-queries", action="store_true", help="run only the query section")
    ap.add_argument("--only-removal", action="store_true",
                    help="run only the removal section (seconds instead of ~10 minutes)")
    ap.add_argument("--only-clearing", action="store_true",
                    help="run only the clearing section, full scan vs frustum pre-filter (about a minute)")
    ap.add_argument("--clearing-repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke run: 40 frames, small queries")
    ap.add_argument("--out", type=Path, default=None, help="write results as JSON")
    a = ap.parse_args()
    if a.quick:
        a.frames, a.checkpoints, a.baseline_at, a.check_frames = 40, [10, 40], [10, 40], 3
        a.query_sizes, a.align_sizes = [10_000, 50_000], [10_000]
        a.window = 3
        a.drift_updates, a.index_sizes, a.clearing_sizes = [500, 100], [10_000, 50_000], [10_000]
        a.growth_voxels = 100_000
    torch.set_num_threads(a.threads)
    checkpoints = [c for c in a.checkpoints if c <= a.frames]
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, CPU only"
    print(f"# voxel map benchmark — {machine}, torch {torch.__version__}")
    t0 = time.perf_counter()
    if a.only_queries:
        print(f"{'voxels':>9} {'cached ms':>10} {'raw768 ms':>10} {'align/query ms':>14}")
        queries = bench_queries(a.query_sizes, set(a.align_sizes))
        if a.out:
            a.out.write_text(json.dumps({"machine": machine, "torch": torch.__version__, "queries": queries},
                                        indent=1))
        return
    if a.only_memory:
        print(f"{'voxels':>9} {'B/voxel':>9} {'alloc/use':>9} {'rows':>7} {'chunks':>7} {'resid':>7} {'ms':>9}")
        growth = bench_memory_growth(a.growth_voxels)
        if a.out:
            a.out.write_text(json.dumps({"machine": machine, "torch": torch.__version__, "growth": growth},
                                        indent=1))
        return
    if a.only_clearing:
        clearing = run_clearing(a.clearing_sizes, a.clearing_repeats)
        if a.out:
            a.out.write_text(json.dumps({"machine": machine, "torch": torch.__version__, "clearing": clearing},
                                        indent=1))
        return
    print("\n## removing 200 voxels (free-space clearing), 768-d fp16, CPU ms: tail fill vs full compaction")
    removal = [bench_removal(n) for n in a.removal_sizes]
    for r in removal:
        print(f"{r['voxels']:9d} {r['tail_fill_ms']:9.1f} {r['full_compaction_ms']:9.1f} {r['ratio']:7.1f}x")
    if a.only_removal:
        if a.out:
            a.out.write_text(json.dumps({"machine": machine, "torch": torch.__version__, "removal": removal},
                                        indent=1))
        return
    print("\n## same averages (fp32) vs re-voxelize-everything baseline")
    same = check_same_averages(a.check_frames)
    print(json.dumps(same))
    print("\n## integration per 640x480 frame, 768-d features at 30x40 (ms)")
    print("CPU ms of this process (1 thread: immune to other jobs on the cores); sparse = median of window")
    print(
        f"{'frame':>6} {'voxels':>9} {'points':>8} {'sparse':>9} {'wall':>9} {'dense':>9} {'baseline':>9} "
        f"{'B/voxel':>9} {'clear ms':>9}"
    )
    vm, rows, series = bench_integration(a.frames, checkpoints, a.window, set(a.baseline_at))
    alloc = vm.nbytes() / len(vm)
    vm.shrink_to_fit()
    tight = vm.nbytes() / len(vm)
    n_vox = len(vm)
    del vm
    print(f"\nbytes/voxel fp16 768-d: {tight:.0f} (tight), {alloc:.0f} (with growth slack) at {n_vox} voxels")
    print("\n## drift: stored fp16 mean vs exact mean, one voxel, 768-d")
    drift = bench_drift(*a.drift_updates)
    print(f"{'option':50} {'after':>7} {'max rel':>9} {'max ulps':>9} {'% out':>7} {'col ulps':>9} {'col %out':>8}")
    for name, res in drift["options"].items():
        for t, m in res.items():
            v, c = m["values"], m["colors"]
            print(f"{name:50} {t:7d} {v['max_rel']:9.2e} {v['max_ulps']:9.1f} {100 * v['frac_outside_bound']:7.2f} "
                  f"{c['max_ulps']:9.1f} {100 * c['frac_outside_bound']:8.2f}")
    print("\n## memory while a 768-d fp16 map grows (after every update of 50k new voxels)")
    print(f"{'voxels':>9} {'B/voxel':>9} {'alloc/use':>9} {'rows':>7} {'chunks':>7} {'resid':>7} {'ms':>9}")
    growth = bench_memory_growth(a.growth_voxels)
    print("\n## key-index cost per frame vs map size (20k points, 5k new voxels, CPU ms: median mean max)")
    index = bench_index(a.index_sizes)
    clearing = run_clearing(a.clearing_sizes, a.clearing_repeats)
    print("\n## query time vs map size (1 query)")
    print(f"{'voxels':>9} {'cached ms':>10} {'raw768 ms':>10} {'align/query ms':>14}")
    queries = bench_queries(a.query_sizes, set(a.align_sizes))
    first, last = rows[0], rows[-1]
    summary = {
        "flatness_last_over_first": last["sparse_ms"] / first["sparse_ms"],
        "speedup_vs_baseline": {r["frame"]: r["baseline_ms"] / r["sparse_ms"] for r in rows if r["baseline_ms"]},
        "speedup_vs_dense": {r["frame"]: r["dense_ms"] / r["sparse_ms"] for r in rows},
        "bytes_per_voxel": tight,
        "bytes_per_voxel_allocated": alloc,
        "bytes_per_voxel_max_over_checkpoints": max(r["bytes_per_voxel"] for r in rows),
        "bytes_per_voxel_max_every_frame_from_32k": max(
            (r["bytes_per_voxel"] for r in series if r["voxels"] >= 32768), default=None),
        "growth_bytes_per_voxel_max_from_32k": max(r["bytes_per_voxel"] for r in growth if r["voxels"] >= 32768),
        "growth_allocated_over_used_max_from_32k": max(
            r["allocated_over_used"] for r in growth if r["voxels"] >= 32768),
        "index_cost_ratio_largest_over_smallest": index[-1]["ms_per_frame"] / index[0]["ms_per_frame"],
    }
    print("\n## summary vs targets")
    print(
        f"integration flat: frame {last['frame']} / frame {first['frame']} = "
        f"{summary['flatness_last_over_first']:.2f} (target <= 1.5)"
    )
    for f, s in summary["speedup_vs_baseline"].items():
        print(f"speed-up vs re-voxelize baseline at frame {f}: {s:.1f}x (target >= 5x at 300)")
    print(f"bytes/voxel fp16 768-d: {tight:.0f} (target <= 1600)")
    print(f"total {time.perf_counter() - t0:.0f} s")
    if a.out:
        a.out.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "torch": torch.__version__,
                    "same_averages": same,
                    "integration": rows,
                    "per_frame": series,
                    "queries": queries,
                    "removal": removal,
                    "drift": drift,
                    "index": index,
                    "growth": growth,
                    "clearing": clearing,
                    "summary": summary,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
