"""TUM RGB-D: ``rgb.txt``, ``depth.txt``, ``groundtruth.txt`` with independent clocks, associated by time.

Each rgb image is paired with the nearest depth image within ``max_dt`` seconds (one-to-one, as the
benchmark's ``associate.py``), and gets the ground-truth pose interpolated at its stamp (linear position,
slerp rotation) when mocap samples bracket it within ``max_pose_gap``; frames without either are dropped.
Ground truth is ``tx ty tz qx qy qz qw`` of the colour camera's optical centre in the world, i.e.
``T_world_cam`` in the optical convention. Depth PNGs hold metres x 5000 (``depth_scale`` = 1/5000 m/unit).

Intrinsics come from the sequence name (freiburg1/2/3 calibrations published with the dataset) or from a
``camera.json`` beside the lists (``{"K": 3x3, "depth_scale": metres per unit}``), which is how the
sample sequence written by :mod:`radseg_core.datasets.sample` describes itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from radseg_core.datasets._base import FrameDataset, read_depth_png, read_rgb
from radseg_core.geometry import pose_to_matrix
from radseg_core.types import Frame

TUM_DEPTH_SCALE = 1.0 / 5000.0  # metres per unit (the dataset's "factor 5000")
# fx, fy, cx, cy of the colour cameras (vision.in.tum.de/data/datasets/rgbd-dataset/file_formats)
TUM_INTRINSICS = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
    "default": (525.0, 525.0, 319.5, 239.5),
}


def is_tum(path: Path) -> bool:
    return all((path / f).is_file() for f in ("rgb.txt", "depth.txt"))


def read_tum_list(path: Path) -> tuple[np.ndarray, list[list[str]]]:
    """Stamps and remaining columns of a TUM list file (``#`` comments and blank lines skipped)."""
    stamps, rows = [], []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        stamps.append(float(parts[0]))
        rows.append(parts[1:])
    return np.asarray(stamps, dtype=np.float64), rows


def associate(a: np.ndarray, b: np.ndarray, max_dt: float) -> list[tuple[int, int]]:
    """One-to-one pairs ``(i, j)`` of nearest stamps ``|a[i] - b[j]| <= max_dt``, closest pairs first."""
    if len(a) == 0 or len(b) == 0:
        return []
    order = np.argsort(b)
    bs = b[order]
    pos = np.searchsorted(bs, a)
    cands = []
    for i, p in enumerate(pos):
        for q in (p - 1, p):
            if 0 <= q < len(bs) and abs(a[i] - bs[q]) <= max_dt:
                cands.append((abs(a[i] - bs[q]), i, int(order[q])))
    cands.sort()
    used_a, used_b, pairs = set(), set(), []
    for _, i, j in cands:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    q0, q1 = q0 / np.linalg.norm(q0), q1 / np.linalg.norm(q1)
    d = float(np.dot(q0, q1))
    if d < 0:  # take the short way round
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + t * (q1 - q0)
    else:
        th = np.arccos(d)
        q = (np.sin((1 - t) * th) * q0 + np.sin(t * th) * q1) / np.sin(th)
    return q / np.linalg.norm(q)


def interpolate_pose(stamps: np.ndarray, poses: np.ndarray, t: float, max_gap: float) -> np.ndarray | None:
    """``T_world_cam`` at ``t`` from sorted ``(tx ty tz qx qy qz qw)`` samples, None if not bracketed.

    A sample at exactly ``t`` is used as is, so a pose stream stamped like the images needs no neighbours.
    """
    j = int(np.searchsorted(stamps, t))
    if j < len(stamps) and stamps[j] == t:
        return pose_to_matrix(poses[j, :3], poses[j, 3:] / np.linalg.norm(poses[j, 3:]))
    if j == 0 or j >= len(stamps) or stamps[j] - stamps[j - 1] > max_gap:
        return None
    a = (t - stamps[j - 1]) / (stamps[j] - stamps[j - 1])
    p = (1 - a) * poses[j - 1, :3] + a * poses[j, :3]
    return pose_to_matrix(p, _slerp(poses[j - 1, 3:], poses[j, 3:], a))


class TUMDataset(FrameDataset):
    """Reader for one TUM RGB-D sequence folder (e.g. ``rgbd_dataset_freiburg1_desk``)."""

    def __init__(self, path: str | Path, *, K: np.ndarray | None = None, depth_scale: float | None = None,
                 max_dt: float = 0.02, max_pose_gap: float = 0.1, **kw):
        super().__init__(**kw)
        self.root = Path(path)
        if not is_tum(self.root):
            raise FileNotFoundError(f"{self.root} is not a TUM RGB-D folder (rgb.txt, depth.txt)")
        self.name = f"tum/{self.root.name}"
        meta = {}
        if (self.root / "camera.json").is_file():
            meta = json.loads((self.root / "camera.json").read_text())
            self.name = meta.get("name", self.name)
            self.classes = meta.get("classes")
        self.depth_scale = float(depth_scale or meta.get("depth_scale", TUM_DEPTH_SCALE))
        self.K = self._intrinsics(K, meta)
        self.frame_id = meta.get("frame_id", "camera_optical_frame")

        rgb_t, rgb_rows = read_tum_list(self.root / "rgb.txt")
        d_t, d_rows = read_tum_list(self.root / "depth.txt")
        gt_file = self.root / "groundtruth.txt"
        if not gt_file.is_file():
            raise FileNotFoundError(f"{gt_file} missing: frames need poses")
        g_t, g_rows = read_tum_list(gt_file)
        g = np.asarray(g_rows, dtype=np.float64).reshape(-1, 7)
        order = np.argsort(g_t)
        g_t, g = g_t[order], g[order]

        self._items: list[tuple[float, Path, Path, np.ndarray]] = []
        for i, j in associate(rgb_t, d_t, max_dt):
            T = interpolate_pose(g_t, g, rgb_t[i], max_pose_gap)
            if T is not None:
                self._items.append((rgb_t[i], self.root / rgb_rows[i][0], self.root / d_rows[j][0], T))
        if not self._items:
            raise FileNotFoundError(f"{self.root}: no rgb/depth pairs with a ground-truth pose")
        self._n_raw = len(self._items)

    def _intrinsics(self, K: np.ndarray | None, meta: dict) -> np.ndarray:
        if K is not None:
            return np.asarray(K, dtype=np.float64).reshape(3, 3)
        if "K" in meta:
            return np.asarray(meta["K"], dtype=np.float64).reshape(3, 3)
        key = next((k for k in TUM_INTRINSICS if k in self.root.name), "default")
        fx, fy, cx, cy = TUM_INTRINSICS[key]
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    def _load(self, raw_index: int) -> Frame:
        stamp, rgb_path, depth_path, T = self._items[raw_index]
        return Frame(rgb=read_rgb(rgb_path), depth=read_depth_png(depth_path, self.depth_scale),
                     K=self.K.copy(), T_world_cam=T.copy(), stamp=float(stamp), frame_id=self.frame_id)

    def _load_labels(self, raw_index: int) -> np.ndarray:
        """Labels of folders written with ``labels/`` (same file name as the rgb image), 16-bit PNG."""
        import cv2

        path = self.root / "labels" / self._items[raw_index][1].name
        lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if lab is None:
            raise FileNotFoundError(f"{self.root}: no labels for frame {raw_index} ({path})")
        return lab.astype(np.int32)
