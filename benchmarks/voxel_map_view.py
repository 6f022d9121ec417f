"""Bound for every voxel in view (issue #17): a parked 640x480 camera, fp16 storage, thousands of frames.

A static camera looks down the corridor of ``benchmarks/voxel_map.py`` (fixed pose ``camera_pose(POSE)``,
ray-cast depth to 8 m, 5 cm voxels). Each frame's feature map is a fixed base map (D x 60 x 80, as an
encoder gives, so integration interpolates bilinearly) plus N(0, noise) per entry; after ``--static``
frames the base is replaced by another one (a scene change) for ``--changed`` frames. Every frame goes
through ``VoxelMap.integrate_frame`` (the map's real path).

Reference, float64, written here from the semantics (not the map's code): the camera never moves, so
each voxel receives the same pixels, with the same bilinear weights, every frame. The exact hit-weighted
mean of voxel v after frames 1..T is therefore ``P_v . (sum_t F_t / T)``, where ``P_v`` holds the
voxel's per-pixel bilinear tap weights (``align_corners=False``, computed here in float64) divided by its
pixel count and ``F_t`` the float32 feature map given to the map, summed in float64. Reported per
checkpoint over all voxels in view: worst and p99 of ``|stored - exact| / |exact|`` (vector norms), the
share above 2e-3, working-set rows/MB, uncompensated voxels, bytes per voxel, CPU ms per frame
(``integrate_frame`` only, one torch thread).

Usage:
  ``python benchmarks/voxel_map_view.py --static 10000 --changed 500 --out docs/bench/voxel_map_view.json``
  (``--tree DIR`` imports ``radseg_core`` from another checkout, e.g. the tree before #17);
  ``python benchmarks/voxel_map_view.py --compare BEFORE_TREE --static 300 --changed 100 --out X.json``
  runs the sizing options side by side on the same stream (fresh interpreters): the before tree
  (``min(8192, max(256, n/160))`` rows), this tree's default (2x the largest recent update, cap 131072)
  and this tree with ``--residual-rows 16384`` (a cap below the view).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _import(tree: Path | None):
    root = (tree or HERE.parent).resolve()
    # The tree's own benchmarks/voxel_map.py (same corridor): ours imports modules an older radseg_core lacks.
    bench = root / "benchmarks" if (root / "benchmarks" / "voxel_map.py").exists() else HERE
    sys.path[:0] = [str(root), str(bench)]
    import torch

    torch.set_num_threads(1)
    import radseg_core

    assert radseg_core.__file__.startswith(str(root)), radseg_core.__file__
    import voxel_map as corridor  # benchmarks/voxel_map.py: camera, corridor ray-casting

    from radseg_core.voxel_map import VoxelMap

    return torch, corridor, VoxelMap, str(root)


def reference_matrix(torch, frame, max_depth: float, voxel: float, fhw: tuple[int, int]):
    """(voxel ijk (V, 3), P (V x h*w) float64 sparse): exact per-frame mean = P @ F.flat (own arithmetic)."""
    from radseg_core.geometry import backproject_depth, transform_points

    depth = torch.from_numpy(frame.depth)
    pts, rows, cols = backproject_depth(depth, frame.K, max_depth=max_depth)
    world = transform_points(frame.T_world_cam, pts.double())
    ijk = torch.floor(world / voxel).long()
    uijk, inv = torch.unique(ijk, dim=0, return_inverse=True)
    Hd, Wd = depth.shape
    h, w = fhw

    def taps(pos, n_out, n_in):  # F.interpolate(bilinear, align_corners=False), in float64
        src = ((pos.double() + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
        i0 = src.floor().long().clamp_max(n_in - 1)
        return i0, (i0 + 1).clamp_max(n_in - 1), src - i0.double()

    y0, y1, ly = taps(rows, Hd, h)
    x0, x1, lx = taps(cols, Wd, w)
    cell = torch.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1], 1)
    wt = torch.stack([(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx], 1)
    count = torch.bincount(inv, minlength=uijk.shape[0]).double()
    wt = wt / count[inv][:, None]
    P = torch.sparse_coo_tensor(
        torch.stack([inv[:, None].expand(-1, 4).reshape(-1), cell.reshape(-1)]), wt.reshape(-1),
        size=(uijk.shape[0], h * w), check_invariants=False,
    ).coalesce()
    return uijk, P, int(rows.numel())


def errors(torch, vm, uijk, P, fsum, frames: int) -> dict:
    exact = torch.sparse.mm(P, (fsum / frames).reshape(fsum.shape[0], -1).T.contiguous())  # (V, D) float64
    got = vm.voxel_indices()
    assert got.shape[0] == uijk.shape[0], (got.shape, uijk.shape)

    def flat(ijk):
        u = ijk - uijk.min(0).values
        return (u[:, 0] * 100000 + u[:, 1]) * 100000 + u[:, 2]

    a, b = flat(uijk), flat(got)
    order = torch.argsort(b)
    pos = torch.searchsorted(b[order], a)
    slot = order[pos]
    assert torch.equal(b[slot], a)
    stored = vm.gather_values(slot).double()
    err = (stored - exact).norm(dim=1) / exact.norm(dim=1)
    return {
        "worst_rel_err": float(err.max()),
        "p99_rel_err": float(torch.quantile(err, 0.99)),
        "median_rel_err": float(err.median()),
        "pct_over_2e-3": 100.0 * float((err > 2e-3).double().mean()),
    }


def run(a) -> dict:
    torch, corridor, VoxelMap, root = _import(a.tree)
    gen = torch.Generator().manual_seed(a.seed)
    frame, _ = corridor.render_frame(a.pose, gen)
    fhw = (a.fh, a.fw)
    kw = {} if a.residual_rows is None else {"residual_rows": a.residual_rows}
    vm = VoxelMap(voxel_size=corridor.VOXEL, dim=a.dim, dtype=torch.float16, **kw)
    uijk, P, n_pts = reference_matrix(torch, frame, a.max_depth, corridor.VOXEL, fhw)
    bases = [torch.randn(a.dim, *fhw, generator=gen) for _ in range(2)]
    fsum = torch.zeros(a.dim, *fhw, dtype=torch.float64)
    total = a.static + a.changed
    marks = set(range(a.every, total + 1, a.every)) | {a.static, total}
    ms, rows = [], []
    res = {
        "tree": root, "dim": a.dim, "feature_hw": list(fhw), "image_hw": list(frame.depth.shape),
        "pose": a.pose, "max_depth": a.max_depth, "noise": a.noise, "points_per_frame": n_pts,
        "voxels_in_view": int(uijk.shape[0]),
        "static_frames": a.static, "changed_frames": a.changed, "residual_rows": a.residual_rows,
        "label": a.label, "machine": f"CPU, shared 2-core VM ({platform.machine()}), 1 torch thread",
        "checkpoints": rows,
    }
    print(f"{a.label}: {n_pts} points/frame, {uijk.shape[0]} voxels in view, dim {a.dim}", flush=True)
    print(f"{'frame':>6} {'worst':>9} {'p99':>9} {'%>2e-3':>7} {'ws rows':>8} {'ws MB':>7} {'uncomp':>9} "
          f"{'B/vox':>6} {'ms/fr':>6}", flush=True)
    for t in range(1, total + 1):
        fm = bases[t > a.static] + a.noise * torch.randn(a.dim, *fhw, generator=gen)
        fsum += fm.double()
        c0 = time.process_time()
        vm.integrate_frame(frame, fm, max_depth=a.max_depth)
        ms.append(1e3 * (time.process_time() - c0))
        if t in marks:
            st = vm.memory_stats()
            r = {"frame": t, **errors(torch, vm, uijk, P, fsum, t)}
            ws_rows = st.get("working_set_rows", st.get("residual_rows"))
            r.update(
                voxels=st["voxels"], working_set_rows=ws_rows,
                # the map's own figure; a tree before #17 has none (its rows: fp16 residuals)
                working_set_mb=st.get("working_set_mb", round(ws_rows * ((a.dim + 3) * 2 + 16) / 2**20, 2)),
                uncompensated_last=st.get("uncompensated_last"),
                uncompensated_total=st.get("uncompensated_total"),
                bytes_per_voxel=st["bytes_per_voxel"], bytes_allocated=st["bytes_allocated"],
                ms_per_frame_median=statistics.median(ms[-min(len(ms), 100):]),
                ms_per_frame_mean_all=statistics.mean(ms),
            )
            rows.append(r)
            unc = "-" if r["uncompensated_total"] is None else str(r["uncompensated_total"])
            print(f"{t:6d} {r['worst_rel_err']:9.2e} {r['p99_rel_err']:9.2e} {r['pct_over_2e-3']:7.2f} "
                  f"{ws_rows:8d} {r['working_set_mb']:7.1f} {unc:>9} {r['bytes_per_voxel']:6.0f} "
                  f"{r['ms_per_frame_median']:6.0f}", flush=True)
            if a.out:
                a.out.write_text(json.dumps(res, indent=1))
    res["ms_per_frame_mean"] = statistics.mean(ms)
    res["ms_per_frame_median"] = statistics.median(ms)
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))
    return res


def compare(a) -> None:
    """The sizing options on the same stream, each in a fresh interpreter (same seed, same frames)."""
    common = ["--static", str(a.static), "--changed", str(a.changed), "--dim", str(a.dim), "--every",
              str(a.every), "--max-depth", str(a.max_depth), "--noise", str(a.noise), "--pose", str(a.pose),
              "--seed", str(a.seed)]
    options = [
        ("before #17: min(8192, max(256, n/160)) rows", ["--tree", str(a.compare)]),
        ("#17: 2x largest recent update, cap 131072", []),
        ("#17 with residual_rows=16384 (cap below the view)", ["--residual-rows", "16384"]),
    ]
    out = []
    for label, extra in options:
        tmp = Path(f"/tmp/voxel_map_view_{len(out)}.json")
        subprocess.run([sys.executable, __file__, *common, *extra, "--label", label, "--out", str(tmp)],
                       check=True)
        out.append(json.loads(tmp.read_text()))
    print(f"\n{'option':<52} {'frame':>6} {'worst':>9} {'p99':>9} {'%>2e-3':>7} {'ws MB':>7} {'ms/fr':>6}")
    for r in out:
        for c in r["checkpoints"]:
            if c["frame"] in (a.static, a.static + a.changed):
                print(f"{r['label']:<52} {c['frame']:6d} {c['worst_rel_err']:9.2e} {c['p99_rel_err']:9.2e} "
                      f"{c['pct_over_2e-3']:7.2f} {c['working_set_mb']:7.1f} {r['ms_per_frame_mean']:6.0f}")
    if a.out:
        a.out.write_text(json.dumps(out, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--static", type=int, default=10_000)
    ap.add_argument("--changed", type=int, default=500)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--fh", type=int, default=60)
    ap.add_argument("--fw", type=int, default=80)
    ap.add_argument("--noise", type=float, default=0.1, help="std of per-frame noise (base entries ~ N(0, 1))")
    ap.add_argument("--pose", type=int, default=10, help="corridor frame whose pose the camera keeps")
    ap.add_argument("--max-depth", type=float, default=8.0, help="8 m: benchmarks/voxel_map.py; node default 5")
    ap.add_argument("--every", type=int, default=500, help="checkpoint every n frames")
    ap.add_argument("--residual-rows", type=int, default=None)
    ap.add_argument("--tree", type=Path, default=None, help="import radseg_core from this checkout")
    ap.add_argument("--compare", type=Path, default=None, help="before tree: run the sizing options")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label", default="this tree")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    if a.compare:
        compare(a)
    else:
        run(a)


if __name__ == "__main__":
    main()
