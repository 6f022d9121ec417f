"""Replica as rendered by NICE-SLAM: ``results/frame%06d.jpg``, ``results/depth%06d.png``, ``traj.txt``.

``traj.txt`` has one row of 16 numbers per frame: the 4x4 camera-to-world matrix in the OpenCV (= REP-103
optical) convention, so it is ``T_world_cam`` as is (NICE-SLAM itself flips y/z afterwards for its
OpenGL renderer; we do not). Depth PNGs hold metres x 6553.5 (``depth_scale`` = 1/6553.5 m per unit).
The sequences share one pinhole camera (1200x680, f=600, c=(599.5, 339.5)), given in NICE-SLAM's config
rather than in the folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from radseg_core.datasets._base import FrameDataset, read_depth_png, read_rgb
from radseg_core.types import Frame

REPLICA_K = np.array([[600.0, 0.0, 599.5], [0.0, 600.0, 339.5], [0.0, 0.0, 1.0]])
REPLICA_DEPTH_SCALE = 1.0 / 6553.5  # metres per unit (NICE-SLAM png_depth_scale 6553.5)
REPLICA_FPS = 30.0  # Replica renders have no timestamps; index / fps gives a monotonic stamp


def is_replica(path: Path) -> bool:
    return (path / "traj.txt").is_file() and (path / "results").is_dir()


def _numbered(folder: Path, prefix: str, suffix: str) -> dict[int, Path]:
    pat = re.compile(rf"^{prefix}(\d+){re.escape(suffix)}$")
    out = {}
    for p in folder.iterdir():
        m = pat.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return out


class ReplicaDataset(FrameDataset):
    """Reader for one NICE-SLAM Replica sequence folder (e.g. ``Replica/room0``)."""

    def __init__(self, path: str | Path, *, K: np.ndarray | None = None,
                 depth_scale: float = REPLICA_DEPTH_SCALE, **kw):
        super().__init__(**kw)
        self.root = Path(path)
        if not is_replica(self.root):
            raise FileNotFoundError(f"{self.root} is not a Replica folder (results/ and traj.txt)")
        self.name = f"replica/{self.root.name}"
        self.K = np.array(REPLICA_K if K is None else K, dtype=np.float64)
        self.depth_scale = float(depth_scale)
        res = self.root / "results"
        rgb, depth = _numbered(res, "frame", ".jpg"), _numbered(res, "depth", ".png")
        if not rgb:
            rgb = _numbered(res, "frame", ".png")
        ids = sorted(set(rgb) & set(depth))
        if not ids:
            raise FileNotFoundError(f"{res}: no frame*.jpg / depth*.png pairs")
        poses = np.loadtxt(self.root / "traj.txt", ndmin=2)
        if poses.shape[1] != 16:
            raise ValueError(f"{self.root / 'traj.txt'}: expected 16 numbers per row, got {poses.shape[1]}")
        if len(poses) < ids[-1] + 1:
            raise ValueError(f"traj.txt has {len(poses)} poses but frames go up to index {ids[-1]}")
        self._ids = ids
        self._rgb, self._depth = rgb, depth
        self._poses = poses.reshape(-1, 4, 4)
        self._n_raw = len(ids)

    def _load(self, raw_index: int) -> Frame:
        fid = self._ids[raw_index]
        return Frame(
            rgb=read_rgb(self._rgb[fid]),
            depth=read_depth_png(self._depth[fid], self.depth_scale),
            K=self.K.copy(),
            T_world_cam=self._poses[fid].copy(),
            stamp=fid / REPLICA_FPS,
            frame_id="camera_optical_frame",
        )
