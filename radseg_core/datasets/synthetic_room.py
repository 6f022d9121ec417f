"""A procedural labelled room: analytic boxes ray-cast from a camera loop, with exact per-pixel labels.

No labelled real scene can be downloaded here, yet the evaluation code and the mapping pipeline need
ground truth to be tested end to end. A room of axis-aligned boxes gives exact depth, labels and a
labelled surface cloud with no rendering library: every pixel's ray is intersected with every box
(slab method) and the nearest hit wins. The room itself is the inside of one box (floor, ceiling, walls).

Labels follow the encoder's convention: ``labels == k + 1`` is ``classes[k]``, 0 = ignore (no surface).
The world frame is REP-103 (z up); the floor is z = 0 and the room spans ``[0, size]`` on each axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radseg_core.datasets._base import FrameDataset
from radseg_core.types import Frame

ROOM_CLASSES = ["wall", "floor", "ceiling", "table", "chair", "cabinet", "bed", "door"]
# RGB per class: distinct enough to read in a screenshot, plus per-face checker shading below.
CLASS_COLORS = {
    "wall": (200, 196, 186), "floor": (140, 100, 60), "ceiling": (235, 235, 235), "table": (170, 110, 50),
    "chair": (40, 90, 170), "cabinet": (120, 120, 120), "bed": (180, 40, 50), "door": (90, 60, 30),
}


@dataclass
class Box:
    """Axis-aligned solid box ``lo <= p <= hi`` (metres, world) of one class."""

    cls: str
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]


def default_furniture(size=(5.0, 4.0, 2.6)) -> list[Box]:
    """A bedroom-office: table with legs, two chairs, a cabinet, a bed and a door, along the walls."""
    X, Y, _ = size
    boxes = [Box("table", (0.6, Y - 1.0, 0.72), (2.0, Y - 0.2, 0.76))]
    for x in (0.62, 1.94):
        for y in (Y - 0.98, Y - 0.26):
            boxes.append(Box("table", (x, y, 0.0), (x + 0.04, y + 0.04, 0.72)))
    for cx in (0.9, 1.6):  # chairs facing the table: legs, seat, backrest
        y0 = Y - 1.45
        for dx in (0.0, 0.36):
            for dy in (0.0, 0.36):
                boxes.append(Box("chair", (cx + dx, y0 + dy, 0.0), (cx + dx + 0.04, y0 + dy + 0.04, 0.45)))
        boxes.append(Box("chair", (cx, y0, 0.45), (cx + 0.4, y0 + 0.4, 0.5)))
        boxes.append(Box("chair", (cx, y0 - 0.04, 0.5), (cx + 0.4, y0, 0.95)))
    boxes.append(Box("cabinet", (X - 0.5, Y - 1.2, 0.0), (X, Y - 0.2, 1.9)))
    boxes.append(Box("bed", (X - 2.1, 0.0, 0.0), (X - 0.2, 1.5, 0.55)))
    boxes.append(Box("door", (0.0, 0.8, 0.0), (0.03, 1.7, 2.05)))
    return boxes


def orbit_poses(n: int, size=(5.0, 4.0, 2.6), radius: float = 0.5, height: float = 1.5,
                pitch_deg: float = -25.0) -> list[np.ndarray]:
    """``n`` optical-frame poses on a circle around the room centre, each looking outward and slightly
    down, so one loop sees every wall and piece of furniture."""
    c = np.array([size[0] / 2, size[1] / 2, height])
    poses = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = c + radius * np.array([np.cos(a), np.sin(a), 0.0])
        p = np.deg2rad(pitch_deg)
        fwd = np.array([np.cos(a) * np.cos(p), np.sin(a) * np.cos(p), np.sin(p)])
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        T = np.eye(4)
        T[:3, :3] = np.stack([right, down, fwd], axis=1)
        T[:3, 3] = eye
        poses.append(T)
    return poses


def _slabs(o: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Entry/exit ray parameters (P, B) of rays ``o + t d`` through boxes ``[lo, hi]`` (B, 3)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d[:, None, :]  # (P, 1, 3)
        t0 = (lo[None] - o) * inv
        t1 = (hi[None] - o) * inv
    tmin = np.nan_to_num(np.minimum(t0, t1), nan=-np.inf)
    tmax = np.nan_to_num(np.maximum(t0, t1), nan=np.inf)
    return tmin.max(axis=2), tmax.min(axis=2)


class SyntheticRoom(FrameDataset):
    """Ray-cast RGB-D frames of a furnished room with per-pixel labels and a labelled surface cloud."""

    def __init__(self, *, n_frames: int = 24, hw: tuple[int, int] = (240, 320), fov_deg: float = 75.0,
                 size=(5.0, 4.0, 2.6), boxes: list[Box] | None = None, gt_spacing: float = 0.05,
                 fps: float = 10.0, **kw):
        super().__init__(**kw)
        self.name = "synthetic-room"
        self.classes = list(ROOM_CLASSES)
        self.size = np.asarray(size, dtype=np.float64)
        self.boxes = default_furniture(tuple(size)) if boxes is None else list(boxes)
        for b in self.boxes:
            if b.cls not in self.classes:
                raise ValueError(f"box class {b.cls!r} is not one of {self.classes}")
        self.hw = tuple(hw)
        H, W = self.hw
        f = (W / 2) / np.tan(np.deg2rad(fov_deg) / 2)
        self.K = np.array([[f, 0.0, (W - 1) / 2], [0.0, f, (H - 1) / 2], [0.0, 0.0, 1.0]])
        self.poses = orbit_poses(n_frames, tuple(size))
        self.gt_spacing = gt_spacing
        self.fps = fps
        self._lo = np.array([b.lo for b in self.boxes], dtype=np.float64).reshape(-1, 3)
        self._hi = np.array([b.hi for b in self.boxes], dtype=np.float64).reshape(-1, 3)
        self._box_label = np.array([self.classes.index(b.cls) + 1 for b in self.boxes], dtype=np.int32)
        self._cache: tuple[int, tuple] | None = None
        self._n_raw = n_frames

    def label_of(self, name: str) -> int:
        return self.classes.index(name) + 1

    def render(self, T_world_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ray-cast one view: rgb (H, W, 3) uint8, depth (H, W) float32 metres, labels (H, W) int32."""
        H, W = self.hw
        v, u = np.mgrid[0:H, 0:W]
        d_cam = np.stack([(u - self.K[0, 2]) / self.K[0, 0], (v - self.K[1, 2]) / self.K[1, 1],
                          np.ones_like(u, dtype=np.float64)], axis=-1).reshape(-1, 3)
        R, o = T_world_cam[:3, :3], T_world_cam[:3, 3]
        d = d_cam @ R.T  # t along d is the optical depth because d_cam has z = 1
        # Room shell: the camera is inside, so the visible surface is where the ray leaves the box.
        _, t_room = _slabs(o, d, np.zeros((1, 3)), self.size[None])
        t = t_room[:, 0]
        hit = o + t[:, None] * d
        labels = np.full(len(d), self.label_of("wall"), np.int32)
        labels[hit[:, 2] <= 1e-6] = self.label_of("floor")
        labels[hit[:, 2] >= self.size[2] - 1e-6] = self.label_of("ceiling")
        normal = np.zeros_like(d)
        ax = np.argmin(np.minimum(np.abs(hit), np.abs(hit - self.size)), axis=1)
        normal[np.arange(len(d)), ax] = 1.0
        if len(self.boxes):
            tin, tout = _slabs(o, d, self._lo, self._hi)
            valid = (tin <= tout) & (tin > 1e-6)
            tb = np.where(valid, tin, np.inf)
            k = np.argmin(tb, axis=1)
            tk = tb[np.arange(len(d)), k]
            closer = tk < t
            t = np.where(closer, tk, t)
            labels[closer] = self._box_label[k[closer]]
            hit = o + t[:, None] * d
            lo, hi = self._lo[k[closer]], self._hi[k[closer]]
            hc = hit[closer]
            ax_b = np.argmin(np.minimum(np.abs(hc - lo), np.abs(hc - hi)), axis=1)
            nb = np.zeros_like(hc)
            nb[np.arange(len(hc)), ax_b] = 1.0
            normal[closer] = nb
        rgb = self._shade(labels, hit, normal, d)
        return rgb.reshape(H, W, 3), t.astype(np.float32).reshape(H, W), labels.reshape(H, W)

    def _shade(self, labels: np.ndarray, hit: np.ndarray, normal: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Class colour x Lambert term x 10 cm checker: flat colours would make texture-free images."""
        base = np.array([CLASS_COLORS[c] for c in self.classes], dtype=np.float64)[labels - 1]
        dn = d / np.linalg.norm(d, axis=1, keepdims=True)
        lam = 0.55 + 0.45 * np.abs((normal * dn).sum(axis=1))
        check = (np.floor(hit / 0.1).astype(np.int64).sum(axis=1) % 2) * 0.12 + 0.88
        return np.clip(base * (lam * check)[:, None], 0, 255).astype(np.uint8)

    def _render_cached(self, raw_index: int):
        if self._cache is None or self._cache[0] != raw_index:
            self._cache = (raw_index, self.render(self.poses[raw_index]))
        return self._cache[1]

    def _load(self, raw_index: int) -> Frame:
        rgb, depth, _ = self._render_cached(raw_index)
        return Frame(rgb=rgb, depth=depth, K=self.K.copy(), T_world_cam=self.poses[raw_index].copy(),
                     stamp=1.0 + raw_index / self.fps, frame_id="camera_optical_frame")

    def _load_labels(self, raw_index: int) -> np.ndarray:
        return self._render_cached(raw_index)[2].copy()

    def gt_points(self, observed_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Labelled surface samples on a ``gt_spacing`` grid: every face of the room and of each box,
        minus what lies inside or on another solid (floor under the cabinet, faces of touching boxes).

        ``observed_only`` keeps the samples some frame of this sequence sees (in the image, not occluded),
        like RayFronts' ground truth lifted from the labelled frames: surfaces no camera saw cannot be
        mapped and would only measure where the trajectory went. Returns points (N, 3), labels (N,).
        """
        pts, labs = self._surface_samples()
        if observed_only:
            keep = self.visible(pts)
            pts, labs = pts[keep], labs[keep]
        return pts, labs

    def visible(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: the point is inside the image of at least one selected frame and no box lies between
        it and that camera (the segment is tested against every box; the room shell never occludes)."""
        H, W = self.hw
        seen = np.zeros(len(points), bool)
        for raw in self._indices():
            T = self.poses[raw]
            p_cam = (points - T[:3, 3]) @ T[:3, :3]
            z = p_cam[:, 2]
            with np.errstate(divide="ignore", invalid="ignore"):
                u = self.K[0, 0] * p_cam[:, 0] / z + self.K[0, 2]
                v = self.K[1, 1] * p_cam[:, 1] / z + self.K[1, 2]
            cand = np.nonzero(~seen & (z > 1e-3) & (u > -0.5) & (u < W - 0.5) & (v > -0.5) & (v < H - 0.5))[0]
            if len(cand) == 0:
                continue
            if len(self.boxes):
                seg = points[cand] - T[:3, 3]
                length = np.linalg.norm(seg, axis=1, keepdims=True)
                # stop 2 mm short of the surface so the point's own face does not occlude it
                seg = seg * (1.0 - 2e-3 / np.maximum(length, 1e-9))
                tin, tout = _slabs(T[:3, 3], seg, self._lo, self._hi)
                blocked = np.any((tin <= tout) & (tout > 0) & (tin < 1.0), axis=1)
                cand = cand[~blocked]
            seen[cand] = True
        return seen

    def _surface_samples(self) -> tuple[np.ndarray, np.ndarray]:
        pts, labs = [], []
        faces = [(np.zeros(3), self.size, None)]
        faces += [(self._lo[i], self._hi[i], i) for i in range(len(self.boxes))]
        for lo, hi, owner in faces:
            for axis in range(3):
                for side in (lo[axis], hi[axis]):
                    p = self._grid_face(lo, hi, axis, side)
                    if owner is None:
                        lab = np.full(len(p), self.label_of("wall"), np.int32)
                        if axis == 2:
                            lab[:] = self.label_of("floor" if side == lo[2] else "ceiling")
                    else:
                        lab = np.full(len(p), self._box_label[owner], np.int32)
                    keep = ~self._inside_other(p, owner)
                    if owner is not None:  # a box face lying on the room shell is against a wall/floor
                        keep &= ~np.any((np.abs(p) < 1e-6) | (np.abs(p - self.size) < 1e-6), axis=1)
                    pts.append(p[keep])
                    labs.append(lab[keep])
        return np.concatenate(pts), np.concatenate(labs)

    def _grid_face(self, lo, hi, axis, value) -> np.ndarray:
        others = [a for a in range(3) if a != axis]
        axes = []
        for a in others:
            n = max(1, int(np.ceil((hi[a] - lo[a]) / self.gt_spacing)))
            axes.append(lo[a] + (np.arange(n) + 0.5) * (hi[a] - lo[a]) / n)
        g0, g1 = np.meshgrid(*axes, indexing="ij")
        p = np.empty((g0.size, 3))
        p[:, axis], p[:, others[0]], p[:, others[1]] = value, g0.ravel(), g1.ravel()
        return p

    def _inside_other(self, p: np.ndarray, owner: int | None, eps: float = 1e-6) -> np.ndarray:
        out = np.zeros(len(p), bool)
        for j in range(len(self.boxes)):
            if j != owner:
                out |= np.all((p >= self._lo[j] - eps) & (p <= self._hi[j] + eps), axis=1)
        return out
