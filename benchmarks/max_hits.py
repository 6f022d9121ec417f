"""Following a changed scene vs noise on a static one, per ``max_hits`` (issue #17).

Geometry: the parked camera of ``benchmarks/voxel_map_view.py`` (640x480, corridor of
``benchmarks/voxel_map.py``, fixed pose, 5 cm voxels, depth up to ``--max-depth``, the node's default
5 m); every frame goes through ``VoxelMap.integrate_frame``. Feature / probability maps are 60x80 (as
an encoder gives), so integration interpolates bilinearly.

*Follow*: an "object" is a rectangle of feature cells (a poster on the wall / a thing on the floor in
that part of the image). Its voxels are those whose every pixel samples only object cells (interior
voxels; boundary voxels mix object and background at any time and are left out). After ``N0`` static
frames the object is replaced, and we count frames until >= 50 % and >= 95 % of its voxels take the
new label (probability mode: argmax of the stored class probabilities) or the new top query (feature
mode: cosine of the stored mean with the new object's base vector above that with the old one).
Per-frame noise is small (``--follow-noise``), so this measures the weighting, not noise.

*Noise cost*: a static scene whose classes are close (top class 0.4, runner-up 0.3, margin 0.1) with
N(0, ``--noise``) per entry per frame; after ``--noise-frames`` frames: % of voxels in view whose argmax
is wrong, and the mean relative deviation ``|stored - true| / |true|`` of the stored mean from the
noise-free mean ``true`` (the same bilinear average of the base map). The noise is per feature cell, so
all points of a voxel share it: a frame is one sample, however many points it brings.

``max_hits`` counts hits = points: a voxel at 640x480 receives many points per frame, so the hits per
frame of the object voxels are reported (frames to saturate = max_hits / hits per frame).

Usage: ``python benchmarks/max_hits.py --out docs/bench/max_hits.json`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
torch.set_num_threads(1)

import voxel_map as corridor  # noqa: E402
from voxel_map_view import reference_matrix  # noqa: E402

from radseg_core.voxel_map import VoxelMap  # noqa: E402

FH, FW = 60, 80
OBJ_ROWS, OBJ_COLS = slice(36, 52), slice(20, 40)  # object cells of the 60x80 map (lower left: floor/wall)


def new_map(mode, dim, max_hits):
    return VoxelMap(voxel_size=corridor.VOXEL, mode=mode, dim=dim, dtype=torch.float16,
                    max_hits=max_hits or None)


def slots_of(vm, uijk):
    """Map slot of each reference voxel (rows of ``uijk``)."""
    got = vm.voxel_indices()
    lo = torch.minimum(uijk.min(0).values, got.min(0).values)

    def flat(ijk):
        u = ijk - lo
        return (u[:, 0] * 100000 + u[:, 1]) * 100000 + u[:, 2]

    a, b = flat(uijk), flat(got)
    order = torch.argsort(b)
    pos = torch.searchsorted(b[order], a).clamp_max(b.numel() - 1)
    slot = order[pos]
    assert torch.equal(b[slot], a), "map and reference voxels differ"
    return slot


def follow(frame, geo, a, n0, caps, modes, gen):
    """Frames after the change until 50 % / 95 % of the object's voxels flip, per mode and max_hits."""
    uijk, P, obj_vox, max_depth = geo
    out = []
    for mode, dim in (("probabilities", 4), ("features", a.feature_dim)):
        if mode not in modes:
            continue
        if mode == "probabilities":  # classes: wall/floor, other, old object, new object
            bg = torch.tensor([0.7, 0.1, 0.1, 0.1])
            old, new = torch.tensor([0.1, 0.1, 0.7, 0.1]), torch.tensor([0.1, 0.1, 0.1, 0.7])
            base_bg = bg[:, None, None].expand(dim, FH, FW).clone()
        else:
            old, new = torch.randn(dim, generator=gen), torch.randn(dim, generator=gen)
            base_bg = torch.randn(dim, FH, FW, generator=gen)
        bases = []
        for v in (old, new):
            b = base_bg.clone()
            b[:, OBJ_ROWS, OBJ_COLS] = v[:, None, None]
            bases.append(b)
        maps = {m: new_map(mode, dim, m) for m in caps}
        done = {m: {} for m in caps}
        slot = None
        limit = n0 + a.follow_max
        ms = []
        for t in range(1, limit + 1):
            changed = t > n0
            fm = bases[changed] + a.follow_noise * torch.randn(dim, FH, FW, generator=gen)
            for m, vm in maps.items():
                if changed and "95" in done[m]:
                    continue
                c0 = time.process_time()
                vm.integrate_frame(frame, fm, max_depth=max_depth)
                ms.append(1e3 * (time.process_time() - c0))
                if not changed:
                    continue
                if slot is None:
                    slot = slots_of(vm, uijk)[obj_vox]
                v = vm.gather_values(slot).float()
                # probabilities: argmax is the new class; features: the new object's vector scores higher
                prob = mode == "probabilities"
                flipped = v.argmax(1) == 3 if prob else (v @ new) / new.norm() > (v @ old) / old.norm()
                share = float(flipped.float().mean())
                for key, need in (("50", 0.5), ("95", 0.95)):
                    if key not in done[m] and share >= need:
                        done[m][key] = t - n0
            if changed and all("95" in d for d in done.values()):
                break
        for m in caps:
            r = {"mode": mode, "dim": dim, "N0": n0, "max_hits": m,
                 "frames_to_50pct": done[m].get("50"), "frames_to_95pct": done[m].get("95"),
                 "followed_frames_max": a.follow_max}
            out.append(r)
            print(f"{mode:>13} {n0:6d} {m:8d} {str(r['frames_to_50pct']):>8} {str(r['frames_to_95pct']):>8}",
                  flush=True)
        print(f"   ({mode}: median integrate_frame {statistics.median(ms):.0f} ms CPU)", flush=True)
    return out


def noise_cost(frame, geo, a, caps, gen):
    """Static scene, close classes (0.4 vs 0.3 everywhere), N(0, noise) per cell and class each frame:
    wrong-argmax % and mean relative deviation from the noise-free mean."""
    uijk, P, _, max_depth = geo
    dim = 4
    base = torch.tensor([0.4, 0.3, 0.15, 0.15])[:, None, None].expand(dim, FH, FW).contiguous()
    true_mean = torch.sparse.mm(P, base.double().reshape(dim, -1).T.contiguous())  # noise-free mean, float64
    true_label = true_mean.argmax(1)
    margin = true_mean.topk(2, dim=1).values
    clear = (margin[:, 0] - margin[:, 1]) > 1e-3  # all of them here: every cell has margin 0.1
    maps = {m: new_map("probabilities", dim, m) for m in caps}
    for _ in range(a.noise_frames):
        fm = base + a.noise * torch.randn(dim, FH, FW, generator=gen)
        for vm in maps.values():
            vm.integrate_frame(frame, fm, max_depth=max_depth)
    out = []
    for m, vm in maps.items():
        v = vm.gather_values(slots_of(vm, uijk)).double()
        wrong = (v.argmax(1) != true_label)[clear]
        dev = (v - true_mean).norm(dim=1) / true_mean.norm(dim=1)
        r = {"max_hits": m, "frames": a.noise_frames, "noise": a.noise, "margin": 0.1,
             "pct_wrong_label": 100.0 * float(wrong.double().mean()),
             "mean_rel_deviation": float(dev.mean()), "p99_rel_deviation": float(torch.quantile(dev, 0.99)),
             "voxels": int(clear.sum())}
        out.append(r)
        print(f"{m:8d} {r['pct_wrong_label']:8.2f} {r['mean_rel_deviation']:10.4f} {r['p99_rel_deviation']:10.4f}",
              flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--caps", type=int, nargs="+", default=[0, 100, 300, 1000, 3000], help="max_hits (0 = none)")
    ap.add_argument("--n0", type=int, nargs="+", default=[1000, 3000], help="static frames before the change")
    ap.add_argument("--long-caps", type=int, nargs="+", default=[0, 1000],
                    help="max_hits values also run at the longer N0 (the others saturate long before)")
    ap.add_argument("--modes", nargs="+", default=["probabilities", "features"], help="modes run at the first N0")
    ap.add_argument("--long-modes", nargs="+", default=["probabilities"], help="modes run at the longer N0")
    ap.add_argument("--follow-max", type=int, default=4000, help="frames followed after the change at most")
    ap.add_argument("--follow-noise", type=float, default=0.05)
    ap.add_argument("--feature-dim", type=int, default=32)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--noise-caps", type=int, nargs="+", default=None, help="max_hits of the noise part (--caps)")
    ap.add_argument("--noise-frames", type=int, default=1000)
    ap.add_argument("--max-depth", type=float, default=5.0, help="the node's default")
    ap.add_argument("--pose", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    if a.quick:
        a.n0, a.noise_frames, a.follow_max = [30], 30, 60
    gen = torch.Generator().manual_seed(0)
    frame, _ = corridor.render_frame(a.pose, gen)
    uijk, P, n_pts = reference_matrix(torch, frame, a.max_depth, corridor.VOXEL, (FH, FW))
    cells = torch.zeros(FH, FW, dtype=torch.bool)
    cells[OBJ_ROWS, OBJ_COLS] = True
    vox, cell = P.indices()
    in_obj = cells.reshape(-1)[cell] & (P.values() > 0)
    inside = torch.bincount(vox[in_obj], minlength=P.shape[0]) > 0
    outside = torch.bincount(vox[~in_obj & (P.values() > 0)], minlength=P.shape[0]) > 0
    obj_vox = torch.nonzero(inside & ~outside, as_tuple=True)[0]
    # Points per object voxel per frame = its hits per frame.
    vm = new_map("probabilities", 4, 0)
    vm.integrate_frame(frame, torch.zeros(4, FH, FW), max_depth=a.max_depth)
    hpf = vm.hits()[slots_of(vm, uijk)[obj_vox]].double()
    all_hpf = vm.hits().double()
    geo = (uijk, P, obj_vox, a.max_depth)
    res = {
        "machine": f"CPU, shared 2-core VM ({platform.machine()}), 1 torch thread",
        "image_hw": list(frame.depth.shape), "feature_hw": [FH, FW], "max_depth": a.max_depth,
        "points_per_frame": n_pts, "voxels_in_view": int(uijk.shape[0]), "object_voxels": int(obj_vox.numel()),
        "object_hits_per_frame": {"min": float(hpf.min()), "median": float(hpf.median()),
                                  "mean": float(hpf.mean()), "max": float(hpf.max())},
        "view_hits_per_frame": {"median": float(all_hpf.median()), "mean": float(all_hpf.mean()),
                                "p90": float(torch.quantile(all_hpf, 0.9)), "max": float(all_hpf.max())},
        "follow_noise": a.follow_noise, "feature_dim": a.feature_dim,
    }
    print(f"{n_pts} points/frame, {uijk.shape[0]} voxels in view, {obj_vox.numel()} object voxels; "
          f"object hits/frame median {hpf.median():.0f} (min {hpf.min():.0f}, max {hpf.max():.0f}); "
          f"view hits/frame median {all_hpf.median():.0f}, p90 {torch.quantile(all_hpf, 0.9):.0f}", flush=True)
    print(f"{'mode':>13} {'N0':>6} {'max_hits':>8} {'50 %':>8} {'95 %':>8}   (frames after the change)")
    rows = []
    for i, n0 in enumerate(a.n0):
        rows += follow(frame, geo, a, n0, a.caps if i == 0 else a.long_caps,
                       a.modes if i == 0 else a.long_modes, gen)
        res["follow"] = rows
        if a.out:
            a.out.write_text(json.dumps(res, indent=1))
    if a.noise_frames <= 0:
        return
    print(f"\nnoise cost: {a.noise_frames} static frames, margin 0.1, noise {a.noise}")
    print(f"{'max_hits':>8} {'% wrong':>8} {'mean dev':>10} {'p99 dev':>10}")
    res["noise_cost"] = noise_cost(frame, geo, a, a.noise_caps or a.caps, gen)
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
