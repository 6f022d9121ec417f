"""Replica as rendered by NICE-SLAM: ``results/frame%06d.jpg``, ``results/depth%06d.png``, ``traj.txt``.

``traj.txt`` has one row of 16 numbers per frame: the 4x4 camera-to-world matrix in the OpenCV (= REP-103
optical) convention, so it is ``T_world_cam`` as is (NICE-SLAM itself flips y/z afterwards for its
OpenGL renderer; we do not). Depth PNGs hold metres x 6553.5 (``depth_scale`` = 1/6553.5 m per unit).
The sequences share one pinhole camera (1200x680, f=600, c=(599.5, 339.5)), given in NICE-SLAM's config
rather than in the folder.

Labels (optional, for ``radseg-eval``), where RayFronts looks for them (``datasets/replica.py``,
``scripts/semseg_eval.py``): the class list ``<root>/semantic_info/<office_0>/info_semantic.json`` (Replica
category ids and names; copied from Semantic-NeRF's Replica) or ``info_semantic.json`` in the scene
folder; the ground-truth cloud (HOV-SG's Replica voxels, which RADSeg uses) as ``semseg_gt.npz`` /
``external_semseg_gt.pt`` in the scene folder or ``<root>/semseg_gt/<scene>.npz``, holding
``semseg_gt_xyz`` (N, 3) and ``semseg_gt_label`` (N,) category ids (negative = unlabelled).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from radseg_core.datasets._base import FrameDataset, read_depth_png, read_depth_png_divided, read_rgb
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
        self._id_to_index: np.ndarray | None = None
        info = self.semantic_info_path()
        if info is not None:
            self.classes, self._id_to_index = read_info_semantic(info)

    def semantic_info_path(self) -> Path | None:
        """Class list file (see module doc), or None when the folder has no labels."""
        n = self.root.name
        scene = f"{n[:-1]}_{n[-1]}" if n[-1:].isdigit() and n[-2:-1] != "_" else n
        for p in (self.root.parent / "semantic_info" / scene / "info_semantic.json",
                  self.root / "info_semantic.json"):
            if p.is_file():
                return p
        return None

    def gt_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth voxels (points, labels 0..K) from ``semseg_gt.npz`` / ``external_semseg_gt.pt``."""
        if self._id_to_index is None:
            raise NotImplementedError(f"{self.root}: no info_semantic.json, so the class ids have no names")
        cands = [self.root / "semseg_gt.npz", self.root.parent / "semseg_gt" / f"{self.root.name}.npz",
                 self.root / "external_semseg_gt.pt"]
        path = next((p for p in cands if p.is_file()), None)
        if path is None:
            raise NotImplementedError(f"no ground-truth cloud: looked for {', '.join(map(str, cands))}")
        if path.suffix == ".pt":
            import torch

            d = {k: v.cpu().numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
        else:
            with np.load(path) as z:
                d = {k: z[k] for k in z.files}
        try:
            xyz = np.asarray(d["semseg_gt_xyz"], np.float64).reshape(-1, 3)
            ids = np.asarray(d["semseg_gt_label"], np.int64).ravel()
        except KeyError as e:
            raise ValueError(f"{path}: missing {e} (expected semseg_gt_xyz and semseg_gt_label)") from None
        if len(xyz) != len(ids):
            raise ValueError(f"{path}: {len(xyz)} points but {len(ids)} labels")
        if not np.isfinite(xyz).all():
            raise ValueError(f"{path}: {int((~np.isfinite(xyz)).any(axis=1).sum())} points are not finite")
        return xyz, map_ids(ids, self._id_to_index)

    def native_rgbd(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """Frame ``i`` as stored (1200x680), depth divided by NICE-SLAM's 6553.5 as RayFronts does."""
        fid = self._ids[self.raw_index(i)]
        depth = read_depth_png_divided(self._depth[fid], 1.0 / self.depth_scale)
        return read_rgb(self._rgb[fid]), depth, self.K.copy(), self._poses[fid].copy(), fid / REPLICA_FPS

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


def read_info_semantic(path: Path) -> tuple[list[str], np.ndarray]:
    """Class names (sorted by Replica category id, id 0 excluded: it is "undefined") and a lookup table
    from category id to our label (0 = ignore), as RayFronts' ``_init_semseg_mappings``."""
    data = json.loads(Path(path).read_text())
    try:
        pairs = sorted((int(c["id"]), str(c["name"])) for c in data["classes"] if int(c["id"]) != 0)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: expected {{'classes': [{{'id': int, 'name': str}}, ...]}} ({e})") from None
    if not pairs:
        raise ValueError(f"{path}: no classes")
    lut = np.zeros(max(i for i, _ in pairs) + 1, np.int64)
    for k, (i, _) in enumerate(pairs):
        lut[i] = k + 1
    return [n for _, n in pairs], lut


def map_ids(ids: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Dataset category ids -> labels via ``lut``; negative or unknown ids become 0 (ignore)."""
    ids = np.asarray(ids, np.int64)
    ok = (ids >= 0) & (ids < len(lut))
    return np.where(ok, lut[np.clip(ids, 0, len(lut) - 1)], 0)
