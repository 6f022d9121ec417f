"""ScanNet frames exported by the official ``SensReader``: ``color/ depth/ pose/ intrinsic/``.

Depth (640x480, millimetres) is registered to colour but has its own intrinsics
(``intrinsic_depth.txt``), and colour (1296x968) is not exactly the same field of view scaled. Like
NICE-SLAM and RayFronts we therefore resize colour to the depth size and use the depth intrinsics: rgb
and depth then share pixels and ``K`` exactly. Poses (``pose/<i>.txt``, 4x4 camera-to-world, optical
convention) are ``-inf`` where tracking failed; those frames are skipped, not given a made-up pose: before
``stride`` applies (default), or after it with ``frame_skip_first=True`` (RayFronts: every
``frame_skip + 1``-th frame of the recording, those without a valid pose then dropped).
Optional ``label-filt/<i>.png`` (also ``<scene>_2d-label-filt/label-filt/``, the official zip's layout;
raw ScanNet label ids, 0 = unannotated) are returned by ``labels``. With ``scannetv2-labels.combined.tsv``
in the scene folder or its parent (RayFronts' layout) they are mapped to NYU40 (the ``nyu40id`` column;
classes = ``nyu40class`` names by id), the label set RADSeg's 3D table uses, and ``gt_points`` lifts
them into ground-truth voxels (RADSeg A3: "we derive the ground truth by lifting the 2D semantic
segmentation annotations into 3D").
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from radseg_core.datasets._base import FrameDataset, read_depth_png, read_depth_png_divided, read_rgb
from radseg_core.types import Frame

SCANNET_DEPTH_SCALE = 0.001  # metres per unit
SCANNET_FPS = 30.0
TSV = "scannetv2-labels.combined.tsv"


def is_scannet(path: Path) -> bool:
    return all((path / d).is_dir() for d in ("color", "depth", "pose", "intrinsic"))


def _stem_map(folder: Path, suffixes: tuple[str, ...]) -> dict[int, Path]:
    out = {}
    if folder.is_dir():
        for p in folder.iterdir():
            if p.suffix in suffixes and p.stem.isdigit():
                out[int(p.stem)] = p
    return out


class ScanNetDataset(FrameDataset):
    """Reader for one exported ScanNet scene folder (e.g. ``scans/scene0000_00/exported``)."""

    def __init__(self, path: str | Path, *, depth_scale: float = SCANNET_DEPTH_SCALE, frame_skip_first: bool = False,
                 **kw):
        super().__init__(**kw)
        self.frame_skip_first = bool(frame_skip_first)
        self.root = Path(path)
        if not is_scannet(self.root):
            raise FileNotFoundError(f"{self.root} is not a ScanNet export (color/ depth/ pose/ intrinsic/)")
        self.name = f"scannet/{self.root.name}"
        self.depth_scale = float(depth_scale)
        self.K = np.loadtxt(self.root / "intrinsic" / "intrinsic_depth.txt")[:3, :3].astype(np.float64)
        self.K_color = np.loadtxt(self.root / "intrinsic" / "intrinsic_color.txt")[:3, :3].astype(np.float64)
        self._rgb = _stem_map(self.root / "color", (".jpg", ".png"))
        self._depth = _stem_map(self.root / "depth", (".png",))
        self._pose = _stem_map(self.root / "pose", (".txt",))
        self._label = _stem_map(self.root / "label-filt", (".png",)) or _stem_map(
            self.root / f"{self.root.name}_2d-label-filt" / "label-filt", (".png",))
        self._id_to_index: np.ndarray | None = None
        tsv = next((p for p in (self.root / TSV, self.root.parent / TSV) if p.is_file()), None)
        if tsv is not None:
            self.classes, self._id_to_index = read_nyu40_mapping(tsv)
        self._ids, self._poses, self._valid = [], {}, []
        for fid in sorted(set(self._rgb) & set(self._depth) & set(self._pose)):
            T = np.loadtxt(self._pose[fid]).reshape(4, 4)
            ok = bool(np.all(np.isfinite(T)))
            if ok or self.frame_skip_first:
                self._ids.append(fid)
                self._valid.append(ok)
            if ok:
                self._poses[fid] = T
        if not self._poses:
            raise FileNotFoundError(f"{self.root}: no frames with colour, depth and a valid pose")
        self._n_raw = len(self._ids)

    def _indices(self):
        if not self.frame_skip_first:
            return super()._indices()
        picked = [i for i in range(0, self._n_raw, self.stride) if self._valid[i]]
        return picked if self.max_frames is None else picked[: self.max_frames]

    def native_rgbd(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """Frame ``i`` as stored: colour at its own size (1296x968), depth (m), the depth intrinsics, pose
        and stamp (the inputs RayFronts' ScanNet loader resizes itself)."""
        fid = self._ids[self.raw_index(i)]
        depth = read_depth_png_divided(self._depth[fid], 1.0 / self.depth_scale)
        return read_rgb(self._rgb[fid]), depth, self.K.copy(), self._poses[fid].copy(), fid / SCANNET_FPS

    def native_labels(self, i: int) -> np.ndarray:
        """Labels of frame ``i`` at the label image's own size (NYU40 labels when the TSV is there)."""
        fid = self._ids[self.raw_index(i)]
        if fid not in self._label:
            raise FileNotFoundError(f"{self.root}: no label-filt/{fid}.png")
        return self._map_labels(cv2.imread(str(self._label[fid]), cv2.IMREAD_UNCHANGED).astype(np.int32))

    def _map_labels(self, lab: np.ndarray) -> np.ndarray:
        if self._id_to_index is None:
            return lab
        ok = (lab >= 0) & (lab < len(self._id_to_index))
        return np.where(ok, self._id_to_index[np.clip(lab, 0, len(self._id_to_index) - 1)], 0).astype(np.int32)

    def _load(self, raw_index: int) -> Frame:
        fid = self._ids[raw_index]
        depth = read_depth_png(self._depth[fid], self.depth_scale)
        rgb = read_rgb(self._rgb[fid])
        if rgb.shape[:2] != depth.shape:
            rgb = cv2.resize(rgb, (depth.shape[1], depth.shape[0]), interpolation=cv2.INTER_AREA)
        return Frame(rgb=rgb, depth=depth, K=self.K.copy(), T_world_cam=self._poses[fid].copy(),
                     stamp=fid / SCANNET_FPS, frame_id="camera_optical_frame")

    def _load_labels(self, raw_index: int) -> np.ndarray:
        fid = self._ids[raw_index]
        if fid not in self._label:
            raise FileNotFoundError(f"{self.root}: no label-filt/{fid}.png")
        lab = cv2.imread(str(self._label[fid]), cv2.IMREAD_UNCHANGED).astype(np.int32)
        H, W = cv2.imread(str(self._depth[fid]), cv2.IMREAD_UNCHANGED).shape
        lab = cv2.resize(lab, (W, H), interpolation=cv2.INTER_NEAREST) if lab.shape != (H, W) else lab
        return self._map_labels(lab)

    def gt_points(self, voxel_size: float = 0.05, grid: str = "round",
                  ignore_labels: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Ground truth lifted from the NYU40 label images of the selected frames (stride applies, as
        RayFronts lifts the frames it maps) into voxels at the depth size, labelled by RayFronts'
        ``compute_semseg_gt`` rule (``LabelVoxelizer``); ``ignore_labels`` are not queried there."""
        if self._id_to_index is None:
            raise NotImplementedError(f"{self.root}: no {TSV} next to the scene, so labels have no NYU40 names")
        if not self._label:
            raise NotImplementedError(f"{self.root}: no label-filt/ images")
        from radseg_core.eval import LabelVoxelizer

        vox = LabelVoxelizer(voxel_size, grid)
        for i in range(len(self)):
            raw = self.raw_index(i)
            frame = self._load(raw)
            vox.add_frame(frame.depth, frame.K, frame.T_world_cam, self._load_labels(raw))
        return vox.result(len(self.classes), ignore_labels)


def read_nyu40_mapping(tsv: Path) -> tuple[list[str], np.ndarray]:
    """NYU40 class names (by ``nyu40id``) and a lookup table raw ScanNet id -> label (0 = unannotated)."""
    raw_to_nyu: dict[int, int] = {}
    names: dict[int, str] = {}
    with open(tsv, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"id", "nyu40id", "nyu40class"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{tsv}: missing columns {sorted(missing)}")
        for row in reader:
            try:
                rid, nid = int(row["id"]), int(row["nyu40id"])
            except (TypeError, ValueError):
                continue
            raw_to_nyu[rid] = nid
            if nid > 0:
                names[nid] = row["nyu40class"]
    if not names:
        raise ValueError(f"{tsv}: no NYU40 classes")
    ids = sorted(names)
    nyu_to_label = {n: k + 1 for k, n in enumerate(ids)}
    lut = np.zeros(max(raw_to_nyu) + 1, np.int64)
    for rid, nid in raw_to_nyu.items():
        if rid >= 0:
            lut[rid] = nyu_to_label.get(nid, 0)
    return [names[n] for n in ids], lut
