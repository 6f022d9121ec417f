"""Free-space clearing designs side by side (issue #22): what a removed object leaves, what a static room
loses, and what a frame costs.

Every design decides, per frame, which map voxels in the frustum's box the depth image sees through; all
run through the real ``VoxelMap.integrate_frame`` on the same exact ray-cast frames
(``radseg_core.datasets.change_scene``), one-hot label features, 5 cm voxels, depth 0.1-8 m (the node's
minimum; the whole room), ``free_space_decay`` 0.5 with each design's evidence as stated:

* ``today``: voxel centre in front of the *minimum* depth over a window >= 2 voxel footprints, margin
  2 voxels + 2 % (:func:`free_voxels_window`, the rule before issue #22); hits decay, removed at 0.
* ``tsdf``: projective signed distance at the centre pixel, free beyond nvblox's default truncation
  (4 voxels): ``z < d - 4 * voxel`` (a TSDF's sign without its averaging).
* ``incidence``: centre pixel, along-ray margin from the voxel size and the incidence angle of the surface
  the centre ray lands on: ``z < d - (voxel/2 * |n|_1 / sin(incidence) + 1 % d)`` (``|n|_1``: the cube's
  extent along the surface normal, so a cube crossed by that surface can never pass).
* ``rayfronts``: RayFronts ``SemanticOccVDBMap`` defaults: centre pixel, occupied when ``|z - d| < voxel``
  (``occ_thickness`` 2), free when ``z < d - voxel``; per-voxel int8 log-odds, +4 occupied / -1 free,
  clamped to [-3, 5]; voxels updated this frame at <= 0 are pruned (hits play no part).
* ``rays-hits``: the chosen per-ray rule (below) with the evidence before #22 (hits halved, removed at 0).
* ``rays``: the design chosen (``free_space.free_voxels`` + ``VoxelMap``'s frame counter): every pixel
  ray that meets the voxel's cube (its projected rectangle) must land beyond where it leaves the cube by a
  clearance perpendicular to the surface it lands on, max(voxel/4, one pixel footprint) (``/ sin(incidence)``
  along the ray), plus 1 % depth noise, and no further than its 8 neighbours; one ray landing inside, in
  front, on unknown depth or too close keeps the voxel. Evidence counts frames: a frame seeing through a
  voxel keeps floor(n / 2) of the n frames that hit it; removed at 0.

Scenes (an 8 x 6 x 3 m room; the object is a box ``L`` wide, 0.5 m in front of the far wall):

* removal: 16 frames with the object from an arc of 30 degrees at ``distance`` and camera ``height``,
  looking at it, then the same 16 poses without it. Stump = object voxels above the floor layer (z index
  >= 1) after phase A still in the map after phase B (issue target <= 2 %). Static loss = voxels a plain
  map of phase B's frames holds that the design lost (target <= 0.5 %), label changes among survivors.
* static: grazing floor (camera 0.5 m, pitch 0-8 deg), grazing walls (0.3 m from a wall, looking along
  it), thin table top and chair back seen from above, then edge-on (table height, chair back plane), the
  furnished SyntheticRoom orbit; loss and label changes against the plain map of the same frames.
* with noise: the static scenes with depth times (1 + N(0, 0.5 %)) per pixel, rounded to mm (as 16UC1);
  four removal scenes with 0.5 % and 1 %.
* dynamic: a person-sized box (0.4 x 0.3 x 1.7 m) walking across the view, then gone; a removed object
  seen only from new poses (another side, another height).
* follow (issue item 2): the floor layer under a removed object, with the chosen design, against the hit
  cap ``max_hits``: object-labelled floor-layer voxels left and ``query_map`` candidates where it stood.

Cost: CPU ms of ``_clear_free_space`` per frame (1 torch thread), median over the run's frames.

Usage: ``python benchmarks/free_space_designs.py [--quick] [--hw 240 320] [--out results.json]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import radseg_core.voxel_map.clearing as clearing_module  # noqa: E402
from radseg_core.datasets.change_scene import arc_poses, look_at, one_hot, room, view  # noqa: E402
from radseg_core.datasets.synthetic_room import ROOM_CLASSES, Box, SyntheticRoom  # noqa: E402
from radseg_core.free_space import free_voxels, frustum_voxel_box, incidence_sine, min_pool_pyramid  # noqa: E402
from radseg_core.voxel_map import VoxelMap, pack_keys, unpack_keys  # noqa: E402
from radseg_core.voxel_map.slot_store import SlotStore  # noqa: E402

SIZE = (8.0, 6.0, 3.0)
MIN_DEPTH, MAX_DEPTH = 0.1, 8.0  # the node's minimum; far enough for the whole 8 m room
OBJ = "cabinet"
N_CLASSES = len(ROOM_CLASSES)


# ------------------------------------------------------------------------------------------ designs
_RADII = (0, 1, 2, 4, 8, 16, 32)


def free_voxels_window(centers_world, depth, K, T_world_cam, voxel_size, *, min_depth=0.0, max_depth=math.inf):
    """The rule before issue #22 (``free_space.free_voxels`` then): centre in front of the minimum depth over
    a window of at least twice the voxel's footprint (capped at 32 px), margin 2 voxels + 2 %."""
    n = centers_world.shape[0]
    H, W = depth.shape
    T = torch.as_tensor(np.linalg.inv(T_world_cam), dtype=torch.float64)
    pc = (centers_world.to(torch.float64) @ T[:3, :3].T + T[:3, 3]).float()
    z = pc[:, 2]
    fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    front = z > max(min_depth, 1e-3)
    zs = torch.where(front, z, torch.ones_like(z))
    u = torch.round(pc[:, 0] / zs * fx + cx).long()
    v = torch.round(pc[:, 1] / zs * fy + cy).long()
    inside = front & (u >= 0) & (u < W) & (v >= 0) & (v < H) & (z < max_depth)
    idx = torch.nonzero(inside, as_tuple=True)[0]
    out = torch.zeros(n, dtype=torch.bool)
    if idx.numel() == 0:
        return out
    zi = z[idx]
    footprint = 2.0 * max(fx, fy) * 0.87 * voxel_size / zi
    level = torch.searchsorted(torch.tensor(_RADII, dtype=footprint.dtype), footprint.contiguous())
    d = torch.where(torch.isfinite(depth) & (depth > 0), depth.float().clamp_max(max_depth), torch.zeros(()))
    d_min = min_pool_pyramid(d)[level.clamp_max(len(_RADII) - 1), v[idx], u[idx]]
    out[idx] = zi < d_min - (2.0 * voxel_size + 0.02 * zi)
    return out


def _centre_pixels(centers_world, depth, K, T, min_depth, max_depth):
    """Camera-frame centres, rounded pixels and a mask of those in front of the camera and in the image."""
    H, W = depth.shape
    Ti = torch.as_tensor(np.linalg.inv(T), dtype=torch.float64)
    pc = (centers_world.to(torch.float64) @ Ti[:3, :3].T + Ti[:3, 3]).float()
    z = pc[:, 2]
    front = z > max(min_depth, 1e-3)
    zs = torch.where(front, z, torch.ones_like(z))
    u = torch.round(pc[:, 0] / zs * float(K[0, 0]) + float(K[0, 2])).long()
    v = torch.round(pc[:, 1] / zs * float(K[1, 1]) + float(K[1, 2])).long()
    inside = front & (u >= 0) & (u < W) & (v >= 0) & (v < H) & (z < max_depth)
    return pc, u.clamp(0, W - 1), v.clamp(0, H - 1), inside


def _depth(depth, max_depth):
    return torch.where(torch.isfinite(depth) & (depth > 0), depth.float().clamp_max(max_depth), torch.zeros_like(depth))


def free_tsdf(centers_world, depth, K, T, voxel_size, *, min_depth=0.0, max_depth=math.inf):
    pc, u, v, inside = _centre_pixels(centers_world, depth, K, T, min_depth, max_depth)
    d = _depth(depth, max_depth)[v, u]
    return inside & (d > 0) & (pc[:, 2] < d - 4 * voxel_size)


def _pixel_rays(K, u, v) -> torch.Tensor:
    """(3, ...) optical-frame rays of pixels (u, v) at unit optical depth."""
    x, y = (u - float(K[0, 2])) / float(K[0, 0]), (v - float(K[1, 2])) / float(K[1, 1])
    return torch.stack([x, y, torch.ones_like(u)])


def normals_cam(depth: torch.Tensor, K) -> torch.Tensor:
    """(3, H, W) unit camera-frame normals from central differences (0 where unknown)."""
    H, W = depth.shape
    d = _depth(depth, math.inf)
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    P = _pixel_rays(K, u, v) * d
    out = torch.zeros(3, H, W)
    n = torch.linalg.cross(P[:, 1:-1, 2:] - P[:, 1:-1, :-2], P[:, 2:, 1:-1] - P[:, :-2, 1:-1], dim=0)
    out[:, 1:-1, 1:-1] = n / n.norm(dim=0).clamp_min(1e-12)
    return out


def free_incidence(centers_world, depth, K, T, voxel_size, *, min_depth=0.0, max_depth=math.inf):
    pc, u, v, inside = _centre_pixels(centers_world, depth, K, T, min_depth, max_depth)
    d = _depth(depth, max_depth)[v, u]
    sine = incidence_sine(depth, K)[v, u]
    n_world = torch.as_tensor(np.asarray(T)[:3, :3], dtype=torch.float32) @ normals_cam(depth, K)[:, v, u]
    ray_norm = _pixel_rays(K, u.float(), v.float()).norm(dim=0)
    along = voxel_size / 2 * n_world.abs().sum(0) / sine.clamp_min(1e-6)
    margin = along / ray_norm + 0.01 * d
    return inside & (d > 0) & (sine > 0) & (pc[:, 2] < d - margin)


@dataclass
class Design:
    name: str
    test: object  # free-voxel function (centres, depth, K, T, voxel_size, min_depth=, max_depth=) -> (N,) bool
    evidence: str = "hits"  # "hits": keep floor(h * (1 - decay)) of the hits, removed at 0 (before #22);
    # "frames": VoxelMap's own (frames that hit the voxel decay; free_space.free_voxels); "logodds": RayFronts'


DESIGNS = {
    "today": Design("today", free_voxels_window),
    "tsdf": Design("tsdf", free_tsdf),
    "incidence": Design("incidence", free_incidence),
    "rayfronts": Design("rayfronts", None, "logodds"),
    "rays-hits": Design("rays-hits", free_voxels),
    "rays": Design("rays", free_voxels, "frames"),
}


def clear_before_22(vm: VoxelMap, test, depth, K, T, hit_keys, min_depth, max_depth) -> None:
    """``VoxelMap._clear_free_space`` before issue #22 with free-voxel rule ``test``: voxels in the frustum's
    box that ``test`` flags and the frame does not hit keep floor(hits / 2) (decay 0.5), removed at 0."""
    lo, hi = frustum_voxel_box(depth, K, T, vm.voxel_size, vm._grid_shift, min_depth=min_depth, max_depth=max_depth)
    keys, slots = vm._slots_in_box(lo, hi)
    vm.last_clearing_candidates = int(keys.numel())
    free = test(vm._centers_of(keys), depth, K, T, vm.voxel_size, min_depth=min_depth, max_depth=max_depth)
    cand = torch.nonzero(free, as_tuple=True)[0]
    idx = slots[cand[~torch.isin(keys[cand], hit_keys)]].long()
    if idx.numel():
        at = vm._store.locate(idx)
        h = torch.floor(vm._store.gather("hits", at).double() * 0.5).to(torch.int32)
        vm._store.scatter("hits", at, h)
        remove = torch.zeros(vm._size, dtype=torch.bool)
        remove[idx[h <= 0]] = True
        vm.cleared += vm._remove(remove)


@contextlib.contextmanager
def _patched_free_voxels(test):
    """``VoxelMap._clear_free_space`` with ``test`` as its free-voxel rule (variants of the chosen design)."""
    saved = clearing_module.free_voxels
    clearing_module.free_voxels = test
    try:
        yield
    finally:
        clearing_module.free_voxels = saved


class DesignMap(VoxelMap):
    """A VoxelMap whose free-space clearing is one of the designs; times ``_clear_free_space`` per frame."""

    def __init__(self, design: Design | None, **kw):
        self.design = design
        super().__init__(free_space_decay=0.5 if design is not None else 0.0, **kw)
        self.clear_ms: list[float] = []
        self._pending = None

    def _alloc(self) -> None:
        super()._alloc()
        if self.design is not None and self.design.evidence == "logodds":
            self._store = SlotStore({**self._store.fields, "occ": ((), torch.int8)}, self.device)

    def _clear_free_space(self, depth, K, T, hit_keys, min_depth, max_depth) -> None:
        if self.design.evidence == "logodds":  # RayFronts updates occupancy after the frame's voxels exist
            self._pending = (depth, K, T, min_depth, max_depth)
            return
        t = time.process_time()
        if self.design.evidence == "frames":  # the map's own code
            with _patched_free_voxels(self.design.test):
                super()._clear_free_space(depth, K, T, hit_keys, min_depth, max_depth)
        else:
            clear_before_22(self, self.design.test, depth, K, T, hit_keys, min_depth, max_depth)
        self.clear_ms.append(1e3 * (time.process_time() - t))

    def integrate_frame(self, frame, feature_map, **kw) -> int:
        n = super().integrate_frame(frame, feature_map, **kw)
        if self._pending is not None:
            t = time.process_time()
            self._rayfronts_update(*self._pending)
            self.clear_ms.append(1e3 * (time.process_time() - t))
            self._pending = None
        return n

    def _rayfronts_update(self, depth, K, T, min_depth, max_depth) -> None:
        """RayFronts ``depth_to_sparse_occupancy_voxels`` (frustum culling) + ``occ_pc2vdb`` + pruning."""
        vox = self.voxel_size
        lo, hi = frustum_voxel_box(depth, K, T, vox, self._grid_shift, min_depth=min_depth, max_depth=max_depth)
        keys, slots = self._slots_in_box(lo, hi)
        pc, u, v, inside = _centre_pixels(self._centers_of(keys), depth, K, T, min_depth, max_depth)
        inside &= (u > 0) & (v > 0)  # RayFronts' mask is strict at 0
        d = depth.float()[v, u]
        z = pc[:, 2]
        occ = inside & ((z - d).abs() < vox / 2 * 2)
        far = float(_depth(depth, max_depth).max())
        free = inside & ~occ & (z < d - vox) & (z < far - vox) & (z > vox / 2)
        upd = occ | free
        at = self._store.locate(slots[upd].long())
        val = self._store.gather("occ", at).int() + torch.where(occ[upd], 4, -1)
        val = val.clamp(-3, 5)
        self._store.scatter("occ", at, val.to(torch.int8))
        remove = torch.zeros(self._size, dtype=torch.bool)
        remove[slots[upd][val <= 0].long()] = True
        self.cleared += self._remove(remove)


# ------------------------------------------------------------------------------------------ scenes
@dataclass
class Seq:
    frames: list  # (Frame, one-hot) pairs


def render(scene: SyntheticRoom, poses, noise: float = 0.0, seed: int = 0) -> list:
    """(frame, one-hot) per pose; ``noise`` > 0: depth times (1 + N(0, noise)) per pixel, in whole mm (16UC1)."""
    out = []
    rng = np.random.default_rng(seed)
    for T in poses:
        f, lab = view(scene, T)
        if noise > 0:
            f.depth = (np.round(f.depth * (1.0 + noise * rng.standard_normal(f.depth.shape)) * 1000) / 1000).astype(
                np.float32)
        out.append((f, one_hot(lab, N_CLASSES)))
    return out


def build(design: Design | None, frames) -> DesignMap:
    vm = DesignMap(design, mode="probabilities", dim=N_CLASSES)
    vm.metadata["classes"] = list(ROOM_CLASSES)
    for f, oh in frames:
        vm.integrate_frame(f, oh, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
    return vm


def key_set(vm: VoxelMap, mask=None) -> set:
    k = vm.keys()
    return set((k if mask is None else k[mask]).tolist())


def labels_by_key(vm: VoxelMap) -> dict:
    return dict(zip(vm.keys().tolist(), vm.labels().tolist(), strict=True))


_NEIGHBOURS = torch.tensor([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                            if (i, j, k) != (0, 0, 0)])


def static_loss(vm: VoxelMap, plain: VoxelMap) -> dict:
    """Voxels of the plain map (same frames, no clearing) the design lost; of those, *holes*: lost voxels
    with no voxel of the same label among their 26 neighbours (the surface is gone there, not just a
    sliver on a voxel boundary whose neighbour holds the same surface); label changes among survivors."""
    ref, got = labels_by_key(plain), labels_by_key(vm)
    lost = [k for k in ref if k not in got]
    holes = 0
    if lost:
        nb = pack_keys((unpack_keys(torch.tensor(lost))[:, None, :] + _NEIGHBOURS).reshape(-1, 3))
        nb = nb.reshape(len(lost), -1).tolist()
        holes = sum(1 for k, row in zip(lost, nb, strict=True) if not any(got.get(m) == ref[k] for m in row))
    changed = sum(1 for k, lab in got.items() if k in ref and ref[k] != lab)
    return {"static_voxels": len(ref), "lost": len(lost), "loss_pct": 100.0 * len(lost) / max(len(ref), 1),
            "holes": holes, "labels_changed": changed}


def object_box(L: float) -> Box:
    x1, y0 = 7.5 + 0.013, 3.0 - L / 2 + 0.012  # off the 5 cm lattice
    return Box(OBJ, (x1 - L, y0, 0.0), (x1, y0 + L, L))


def removal_poses(box: Box, distance: float, height: float, n: int = 16, azimuth: float = 180.0):
    """Cameras on an arc around the object, ``distance`` from its near face (horizontally), aimed at it."""
    tgt = (np.array(box.lo) + np.array(box.hi)) / 2
    half = (box.hi[0] - box.lo[0]) / 2
    return arc_poses(tgt, distance + half, height, n, azimuth_deg=azimuth, spread_deg=30.0)


def removal_metrics(vm: DesignMap, after_a: tuple[set, set], plain_b: VoxelMap) -> dict:
    above, floor_layer = after_a
    keys = vm.keys()
    left = torch.isin(keys, torch.tensor(sorted(above), dtype=torch.int64))
    z = vm.voxel_indices()[:, 2]
    lab = vm.labels()
    obj = ROOM_CLASSES.index(OBJ)
    out = {"object_voxels": len(above), "stump": int(left.sum()),
           "stump_pct": 100.0 * int(left.sum()) / max(len(above), 1),
           "stump_top_cm": float(100 * (vm.centers()[left][:, 2].max() + vm.voxel_size / 2)) if left.any() else 0.0,
           "floor_layer_object": len(floor_layer),
           "floor_layer_still_object": int(((lab == obj) & (z <= 0)).sum())}
    out.update(static_loss(vm, plain_b))
    return out


def run_removal(designs, heights, distances, sizes, hw, n, noise: float = 0.0, cases=None) -> list[dict]:
    """Every (size, height, distance) of the grid, or only ``cases``; ``noise``: relative depth noise."""
    rows = []
    obj = ROOM_CLASSES.index(OBJ)
    cases = cases or [(L, h, d) for L in sizes for h in heights for d in distances]
    for L in dict.fromkeys(c[0] for c in cases):
        box = object_box(L)
        with_obj, without = room([box], size=SIZE, hw=hw), room([], size=SIZE, hw=hw)
        for h, dist in [(c[1], c[2]) for c in cases if c[0] == L]:
            poses = removal_poses(box, dist, h, n)
            fa, fb = render(with_obj, poses, noise, 1), render(without, poses, noise, 2)
            plain_b = build(None, fb)
            for name in designs:
                vm = DesignMap(DESIGNS[name], mode="probabilities", dim=N_CLASSES)
                for f, oh in fa:
                    vm.integrate_frame(f, oh, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
                z = vm.voxel_indices()[:, 2]
                is_obj = vm.labels() == obj
                after_a = (key_set(vm, is_obj & (z >= 1)), key_set(vm, is_obj & (z <= 0)))
                for f, oh in fb:
                    vm.integrate_frame(f, oh, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
                r = {"design": name, "size": L, "height": h, "distance": dist, "depth_noise": noise,
                     **removal_metrics(vm, after_a, plain_b),
                     "clear_ms": statistics.median(vm.clear_ms) if vm.clear_ms else 0.0}
                rows.append(r)
                print(f"{name:>10} L={L:.1f} h={h:.2f} d={dist:.1f}  stump {r['stump']:4d}/{r['object_voxels']:4d} "
                      f"({r['stump_pct']:5.1f} %, top {r['stump_top_cm']:4.1f} cm)  floor-layer object "
                      f"{r['floor_layer_still_object']:3d}/{r['floor_layer_object']:3d}  static loss "
                      f"{r['lost']:4d}/{r['static_voxels']} ({r['loss_pct']:.2f} %, holes {r['holes']})  "
                      f"{r['clear_ms']:6.1f} ms",
                      flush=True)
    return rows


def walk_poses(n: int, height: float, pitch_deg: float, y: float, x0: float, step: float, yaw_deg: float = 0.0):
    poses = []
    for i in range(n):
        eye = np.array([x0 + step * i, y, height])
        yaw = math.radians(yaw_deg)
        p = math.radians(pitch_deg * ((i % 5) / 4))
        fwd = np.array([math.cos(yaw) * math.cos(p), math.sin(yaw) * math.cos(p), -math.sin(p)])
        poses.append(look_at(eye, eye + fwd))
    return poses


def furniture() -> list[Box]:
    """A table (4 cm top at 0.72-0.76 m, legs) and a chair (4 cm back), off the 5 cm lattice."""
    t0 = np.array([3.013, 2.012])
    boxes = [Box("table", (t0[0], t0[1], 0.72), (t0[0] + 1.4, t0[1] + 0.8, 0.76))]
    for dx in (0.02, 1.34):
        for dy in (0.02, 0.74):
            boxes.append(Box("table", (t0[0] + dx, t0[1] + dy, 0.0), (t0[0] + dx + 0.04, t0[1] + dy + 0.04, 0.72)))
    c0 = np.array([3.513, 3.212])
    for dx in (0.0, 0.36):
        for dy in (0.0, 0.36):
            boxes.append(Box("chair", (c0[0] + dx, c0[1] + dy, 0.0), (c0[0] + dx + 0.04, c0[1] + dy + 0.04, 0.45)))
    boxes.append(Box("chair", (c0[0], c0[1], 0.45), (c0[0] + 0.4, c0[1] + 0.4, 0.5)))
    boxes.append(Box("chair", (c0[0], c0[1] + 0.4, 0.5), (c0[0] + 0.4, c0[1] + 0.44, 0.95)))
    return boxes


def static_scenes(hw, quick: bool) -> dict:
    n = 8 if quick else 20
    empty = room([], size=SIZE, hw=hw)
    furnished = room(furniture(), size=SIZE, hw=hw)
    table_c = np.array([3.713, 2.412, 0.74])
    above = [look_at([table_c[0] - 1.6 + 0.1 * i, table_c[1] - 1.2 + 0.15 * i, 1.5], table_c) for i in range(n // 2)]
    edge = []
    for i in range(n // 2):  # table height and just above/below it; then along the chair back's plane
        hz = (0.74, 0.76, 0.78, 0.73)[i % 4]
        edge.append(look_at([table_c[0] - 2.5, table_c[1] - 0.3 + 0.15 * i, hz], [table_c[0], table_c[1], hz]))
    back_c = np.array([3.713, 3.632, 0.72])
    side = [look_at([back_c[0] - 2.0 - 0.1 * i, back_c[1] + 0.02 * (i - 2), 0.6 + 0.1 * (i % 3)], back_c)
            for i in range(n // 2)]
    orbit = SyntheticRoom(n_frames=n, hw=hw, fov_deg=empty_fov(empty))
    return {
        "grazing floor 0.5 m": (empty, walk_poses(n, 0.5, 8.0, 3.0, 0.5, 0.1)),
        "grazing wall 0.3 m": (empty, walk_poses(n, 1.2, 4.0, 0.3, 0.5, 0.1, yaw_deg=-6.0)),
        "table top and chair back edge-on": (furnished, above + edge + side),
        "furnished room orbit": (orbit, orbit.poses),
    }


def empty_fov(scene: SyntheticRoom) -> float:
    return 2.0 * math.degrees(math.atan((scene.hw[1] / 2) / scene.K[0, 0]))


def run_static(designs, hw, quick, noise: float = 0.0) -> list[dict]:
    rows = []
    for name_s, (scene, poses) in static_scenes(hw, quick).items():
        frames = render(scene, poses, noise)
        plain = build(None, frames)
        thin = None
        for name in designs:
            vm = build(DESIGNS[name], frames)
            r = {"design": name, "scene": name_s, "depth_noise": noise, **static_loss(vm, plain),
                 "clear_ms": statistics.median(vm.clear_ms) if vm.clear_ms else 0.0}
            if "table" in name_s:
                thin = thin or {k for k, lab in labels_by_key(plain).items() if ROOM_CLASSES[lab] in ("table", "chair")}
                got = set(vm.keys().tolist())
                r["thin_voxels"], r["thin_lost"] = len(thin), len(thin - got)
            rows.append(r)
            extra = f"  thin lost {r['thin_lost']}/{r['thin_voxels']}" if "thin_voxels" in r else ""
            print(f"{name:>10} {name_s:<34} lost {r['lost']:5d}/{r['static_voxels']:6d} ({r['loss_pct']:.3f} %)  "
                  f"holes {r['holes']}  labels changed {r['labels_changed']}{extra}  {r['clear_ms']:6.1f} ms",
                  flush=True)
    return rows


def run_dynamic(designs, hw, quick) -> list[dict]:
    rows = []
    n = 12 if quick else 24
    obj = ROOM_CLASSES.index(OBJ)
    # a person walking across in front of the far wall, 3 m from a camera at 1.2 m (its whole walk in view)
    cam = [look_at([3.0, 3.0 + 0.01 * (i % 3), 1.2], [7.0, 3.0, 0.8]) for i in range(n + 8)]
    scenes = [room([Box(OBJ, (6.0, 1.4 + 3.2 * i / n, 0.0), (6.3, 1.8 + 3.2 * i / n, 1.7))], size=SIZE, hw=hw)
              for i in range(n)]
    frames = [render(s, [T])[0] for s, T in zip(scenes, cam[:n], strict=True)]
    frames += render(room([], size=SIZE, hw=hw), cam[n:])
    plain_static = build(None, render(room([], size=SIZE, hw=hw), cam))
    box = object_box(0.5)
    fa = render(room([box], size=SIZE, hw=hw), removal_poses(box, 2.5, 0.55, 16))
    new_poses = removal_poses(box, 2.0, 1.3, 16, azimuth=230.0)
    fb = render(room([], size=SIZE, hw=hw), new_poses)
    plain_new = build(None, fb)
    for name in designs:
        vm = build(DESIGNS[name], frames)
        z = vm.voxel_indices()[:, 2]
        left, floor_layer = int(((vm.labels() == obj) & (z >= 1)).sum()), int(((vm.labels() == obj) & (z <= 0)).sum())
        r = {"design": name, "scene": "person walking through", "person_left": left, "person_floor_layer": floor_layer,
             **static_loss(vm, plain_static), "clear_ms": statistics.median(vm.clear_ms)}
        rows.append(r)
        print(f"{name:>10} person walking through: person voxels left above the floor layer {left:4d} (in it "
              f"{floor_layer})  static lost {r['lost']}/{r['static_voxels']} ({r['loss_pct']:.3f} %)", flush=True)
        vm = build(DESIGNS[name], fa)
        z = vm.voxel_indices()[:, 2]
        is_obj = vm.labels() == obj
        after_a = (key_set(vm, is_obj & (z >= 1)), key_set(vm, is_obj & (z <= 0)))
        for f, oh in fb:
            vm.integrate_frame(f, oh, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
        r = {"design": name, "scene": "removed, seen from new poses", **removal_metrics(vm, after_a, plain_new)}
        rows.append(r)
        print(f"{name:>10} removed, seen from new poses: stump {r['stump']}/{r['object_voxels']} "
              f"({r['stump_pct']:.1f} %)  static lost {r['lost']}/{r['static_voxels']}", flush=True)
    return rows


def run_follow(hw, caps) -> list[dict]:
    """Issue item 2, the floor layer under a removed object, with the map's own clearing (``rays``): object
    voxels left in the floor layer after 16 frames without it, and ``query_map`` candidates for the
    object's class where it stood, for each hit cap ``max_hits`` (None: no cap)."""
    from radseg_core.query import query_map

    rows = []
    obj = ROOM_CLASSES.index(OBJ)
    box = object_box(0.5)
    lo, hi = np.array(box.lo) - 0.05, np.array(box.hi) + 0.05
    for h in (0.55, 1.2):
        poses = removal_poses(box, 2.0, h, 16)
        fa, fb = render(room([box], size=SIZE, hw=hw), poses), render(room([], size=SIZE, hw=hw), poses)
        for cap in caps:
            vm = DesignMap(DESIGNS["rays"], mode="probabilities", dim=N_CLASSES, max_hits=cap)
            vm.metadata["classes"] = list(ROOM_CLASSES)
            for f, oh in fa + fb:
                vm.integrate_frame(f, oh, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
            z = vm.voxel_indices()[:, 2]
            cands = [c for c in query_map(vm, [OBJ]).candidates if np.all((c.centroid > lo) & (c.centroid < hi))]
            r = {"height": h, "max_hits": cap, "floor_layer_still_object": int(((vm.labels() == obj) & (z <= 0)).sum()),
                 "above_floor_object": int(((vm.labels() == obj) & (z >= 1)).sum()),
                 "candidates_where_it_stood": len(cands), "candidate_voxels": sum(c.voxels for c in cands)}
            rows.append(r)
            print(f"h={h:.2f} max_hits={cap!s:>5}: floor-layer object voxels {r['floor_layer_still_object']:3d}, "
                  f"above {r['above_floor_object']}, candidates where it stood {r['candidates_where_it_stood']} "
                  f"({r['candidate_voxels']} voxels)", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--designs", nargs="+", default=list(DESIGNS))
    ap.add_argument("--hw", type=int, nargs=2, default=[240, 320])
    ap.add_argument("--heights", type=float, nargs="+", default=[0.5, 1.0, 1.5])
    ap.add_argument("--distances", type=float, nargs="+", default=[1.0, 2.5, 4.0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[0.2, 0.5, 1.0])
    parts = ["removal", "static", "noisy", "dynamic", "follow"]
    ap.add_argument("--only", choices=parts, nargs="+", default=parts)
    ap.add_argument("--noise", type=float, default=0.005, help="relative depth noise of the noisy static run")
    ap.add_argument("--quick", action="store_true", help="fewer scenes and frames (smoke run)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.quick:
        a.heights, a.distances, a.sizes = [0.5, 1.5], [1.0, 4.0], [0.2, 1.0]
    hw = tuple(a.hw)
    t0 = time.time()
    result = {"machine": f"{platform.processor() or platform.machine()}, 1 torch thread, CPU only",
              "torch": torch.__version__, "hw": list(hw), "voxel_size": 0.05, "depth_limits": [MIN_DEPTH, MAX_DEPTH]}
    if "removal" in a.only:
        print("## removal: object voxels above the floor layer left after 16 frames without it (target <= 2 %)")
        result["removal"] = run_removal(a.designs, a.heights, a.distances, a.sizes, hw, 16)
    if "static" in a.only:
        print("\n## static scenes: voxels lost against the plain map of the same frames (target <= 0.5 %)")
        result["static"] = run_static(a.designs, hw, a.quick)
    if "noisy" in a.only:
        print(f"\n## static scenes, depth with {100 * a.noise:.1f} % Gaussian noise in whole mm (today vs rays): "
              "lost voxels include noise specks rightly cleared; holes do not")
        pair = [d for d in ("today", "rays") if d in a.designs]
        result["static_noisy"] = run_static(pair, hw, a.quick, a.noise)
        print("\n## removal with depth noise (0.5 % and 1 %), four of the scenes")
        cases = [(0.5, 0.55, 2.0), (0.5, 1.2, 2.0), (0.2, 1.5, 4.0), (0.5, 0.5, 4.0)]
        result["removal_noisy"] = [row for nz in (0.005, 0.01)
                                   for row in run_removal(pair, [], [], [], hw, 16, nz, cases)]
    if "dynamic" in a.only:
        print("\n## dynamic scenes")
        result["dynamic"] = run_dynamic(a.designs, hw, a.quick)
    if "follow" in a.only:
        print("\n## floor layer under the removed 0.5 m box (2 m away) vs the hit cap max_hits, design 'rays'")
        result["follow"] = run_follow(hw, [None, 1000, 300, 100, 50, 20])
    result["wall_s"] = time.time() - t0
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))
        print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
