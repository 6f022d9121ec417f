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
* Bytes per voxel, fp16, 768-d, everything included (index, hits, colour, clock).

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

from radseg_core.geometry import backproject_depth, optical_from_body_pose, transform_points  # noqa: E402
from radseg_core.query import AlignedFeatures, align_and_normalize, cosine_scores  # noqa: E402
from radseg_core.types import Frame  # noqa: E402
from radseg_core.voxel_map import VoxelMap  # noqa: E402

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
    pts = transform_points(frame.T_world_cam, pts)
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
    return vm.centers(), vm.values().float(), vm.hits().clone()


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
            }
        )
        if i in checkpoints:
            win = series[max(0, i - window) : i]
            r = {
                "frame": i,
                "voxels": len(vm),
                "points": n_pts,
                "sparse_ms": statistics.median(x["cpu_ms"] for x in win),
                "sparse_wall_ms": statistics.median(x["wall_ms"] for x in win),
                "dense_ms": 1e3 * td,
                "baseline_ms": None if tb is None else 1e3 * tb,
            }
            rows.append(r)
            base = "-" if tb is None else f"{r['baseline_ms']:9.0f}"
            print(
                f"{i:6d} {r['voxels']:9d} {r['points']:8d} {r['sparse_ms']:9.1f} {r['sparse_wall_ms']:9.1f} "
                f"{r['dense_ms']:9.1f} {base:>9}",
                flush=True,
            )
    return vm, rows, series


def check_same_averages(n_frames: int) -> dict:
    gen = torch.Generator().manual_seed(1)
    vm = VoxelMap(voxel_size=VOXEL, dim=D, dtype=torch.float32)
    state = (torch.zeros(0, 3), torch.zeros(0, D), torch.zeros(0))
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
        "hits_equal": bool(torch.equal(vm.hits()[idx], state[2])),
    }


def tiled_random(n: int, dim: int, gen: torch.Generator, unit: bool = False, block: int = 65536) -> torch.Tensor:
    """(n, dim) fp16 rows: a random block repeated (cheap to build at 1M rows, same query cost)."""
    b = torch.randn(min(n, block), dim, generator=gen)
    b = (F.normalize(b, dim=1) if unit else b).half()
    return b.repeat(-(-n // b.shape[0]), 1)[:n].contiguous()


def bench_queries(sizes: list[int], align_sizes: set[int], text_dim: int = 1152, touched: int = 50_000) -> dict:
    """Query cost vs map size: cached aligned copy, raw 768-d, and aligning the whole map per query."""
    gen = torch.Generator().manual_seed(2)
    align_lin = torch.nn.Linear(D, text_dim)
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
            if n in align_sizes:
                t, _ = cpu_timed(lambda v=values: cosine_scores(align_and_normalize(v, align_lin), text))
                row["query_align_each_time_ms"] = 1e3 * t
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
        vm._last_seen[:touched] = 2
        vm.frames_integrated = 2
        refresh, _ = cpu_timed(cache.update, vm)
    print(f"aligned-cache refresh, {touched} touched voxels (768 -> {text_dim}): {1e3 * refresh:.0f} ms")
    return {
        "rows": rows,
        "cache_refresh_ms": 1e3 * refresh,
        "cache_refresh_voxels": touched,
        "cache_bytes_per_voxel": 2 * text_dim,
    }


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
    ap.add_argument("--quick", action="store_true", help="smoke run: 40 frames, small queries")
    ap.add_argument("--out", type=Path, default=None, help="write results as JSON")
    a = ap.parse_args()
    if a.quick:
        a.frames, a.checkpoints, a.baseline_at, a.check_frames = 40, [10, 40], [10, 40], 3
        a.query_sizes, a.align_sizes = [10_000, 50_000], [10_000]
        a.window = 3
    torch.set_num_threads(a.threads)
    checkpoints = [c for c in a.checkpoints if c <= a.frames]
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, CPU only"
    print(f"# voxel map benchmark — {machine}, torch {torch.__version__}")
    t0 = time.perf_counter()
    print("\n## same averages (fp32) vs re-voxelize-everything baseline")
    same = check_same_averages(a.check_frames)
    print(json.dumps(same))
    print("\n## integration per 640x480 frame, 768-d features at 30x40 (ms)")
    print("CPU ms of this process (1 thread: immune to other jobs on the cores); sparse = median of window")
    print(f"{'frame':>6} {'voxels':>9} {'points':>8} {'sparse':>9} {'wall':>9} {'dense':>9} {'baseline':>9}")
    vm, rows, series = bench_integration(a.frames, checkpoints, a.window, set(a.baseline_at))
    alloc = vm.nbytes() / len(vm)
    vm.shrink_to_fit()
    tight = vm.nbytes() / len(vm)
    n_vox = len(vm)
    del vm
    print(f"\nbytes/voxel fp16 768-d: {tight:.0f} (tight), {alloc:.0f} (with growth slack) at {n_vox} voxels")
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
                    "summary": summary,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
