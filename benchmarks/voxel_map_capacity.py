"""Map capacity (issue #17): occupied voxels per m² of floor for an indoor sweep, bytes per voxel, m² per GB.

Scene: the procedural furnished room of ``radseg_core.datasets.synthetic_room`` (5 m x 4 m x 2.6 m:
floor, walls, ceiling, table, chairs, cabinet, bed, door), a 640x480 camera loop at 1.5 m looking out and
down, depth to the node's default 5 m, 5 cm voxels, through ``VoxelMap.integrate_frame``. Two depth
models: exact ray-cast depth, and depth with N(0, (sigma * z)^2) noise per pixel (a structured-light /
stereo sensor's error grows with range; noise thickens surfaces to several voxels). The room's planes lie
on voxel boundaries (z = 0, x = 0, ...), where exact depth splits a surface over two voxel layers, so the
exact run is not a lower bound: the single-layer surface count (the room's labelled 5 cm surface samples
that the loop sees) is reported too.

Bytes per voxel (``memory_stats()["bytes_per_voxel"]``: chunks, slack and key index; the working set is
separate, sized by the view) are measured on the noisy map at 768-d (C-RADIOv3-B raw features, what the
node stores) and 1152-d (SigLIP2-aligned width; the map stores it only if run on aligned features; the
optional aligned query cache, ``cache_aligned``, adds its own 1152 x 2 B per voxel).

Usage: ``python benchmarks/voxel_map_capacity.py [--frames 48] [--out docs/bench/voxel_map_capacity.json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
torch.set_num_threads(1)

from radseg_core.datasets.synthetic_room import SyntheticRoom  # noqa: E402
from radseg_core.types import Frame  # noqa: E402
from radseg_core.voxel_map import VoxelMap  # noqa: E402

GB = 2**30


def sweep(room: SyntheticRoom, sigma: float, dim: int, max_depth: float, seed: int = 0) -> VoxelMap:
    rng = np.random.default_rng(seed)
    vm = VoxelMap(voxel_size=0.05, dim=dim, dtype=torch.float16)
    fmap = torch.zeros(dim, 30, 40)  # geometry only: values do not change the voxel count
    for i in range(len(room)):
        f = room[i]
        depth = f.depth.astype(np.float32)
        if sigma:
            depth = np.where(depth > 0, depth * (1 + sigma * rng.standard_normal(depth.shape)), 0).astype(np.float32)
        vm.integrate_frame(Frame(f.rgb, depth, f.K, f.T_world_cam), fmap, max_depth=max_depth)
    return vm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--sigma", type=float, default=0.01, help="relative depth noise (1 %% of range)")
    ap.add_argument("--max-depth", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    room = SyntheticRoom(n_frames=a.frames, hw=(480, 640))
    floor = float(room.size[0] * room.size[1])
    pts, _ = room.gt_points(observed_only=True)
    single = np.unique(np.floor(pts / 0.05 + 1e-9).astype(np.int64), axis=0).shape[0]
    res = {"machine": f"CPU, shared 2-core VM ({platform.machine()})", "frames": a.frames, "image_hw": [480, 640],
           "max_depth": a.max_depth, "floor_m2": floor, "single_layer_surface_voxels": single,
           "single_layer_voxels_per_m2_floor": single / floor, "sweeps": {}, "bytes_per_voxel": {}}
    for name, sigma in (("exact_depth", 0.0), (f"depth_noise_{a.sigma:g}z", a.sigma)):
        vm = sweep(room, sigma, 4, a.max_depth)
        res["sweeps"][name] = {"voxels": len(vm), "voxels_per_m2_floor": len(vm) / floor}
    for dim in (768, 1152):
        vm = sweep(room, a.sigma, dim, a.max_depth)
        st = vm.memory_stats()
        res["bytes_per_voxel"][str(dim)] = {
            "bytes_per_voxel": st["bytes_per_voxel"], "row_bytes": vm._store.row_bytes,
            "working_set_mb": st["working_set_mb"], "voxels": st["voxels"],
        }
    print(f"floor {floor:.0f} m², single-layer surface voxels {single} ({single / floor:.0f}/m² floor)")
    for name, s in res["sweeps"].items():
        print(f"{name:>22}: {s['voxels']} voxels, {s['voxels_per_m2_floor']:.0f} per m² of floor")
    heads = " ".join(f"{n[:14]:>16}" for n in res["sweeps"])
    print(f"{'dim':>5} {'B/voxel':>8} {'ws MB':>7} {heads}  (m² floor per GB)")
    cap = {}
    for dim, b in res["bytes_per_voxel"].items():
        per = {n: GB / (b["bytes_per_voxel"] * s["voxels_per_m2_floor"]) for n, s in res["sweeps"].items()}
        per["single_layer"] = GB / (b["bytes_per_voxel"] * single / floor)
        cap[dim] = per
        print(f"{dim:>5} {b['bytes_per_voxel']:8.0f} {b['working_set_mb']:7.1f} "
              + " ".join(f"{per[n]:16.0f}" for n in res["sweeps"]) + f"   single layer {per['single_layer']:.0f}")
    res["m2_floor_per_gb"] = cap
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
