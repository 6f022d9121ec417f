"""What every dataset reader shares: frame selection (stride, max_frames), resizing and the Frame API.

Readers differ only in how they find and decode frame ``i``; selection and resizing live here so all of
them agree on what ``stride``/``max_frames``/``resize`` mean, and ``K`` is always rescaled the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from radseg_core.geometry import depth_to_metres, scale_intrinsics
from radseg_core.types import Frame


def resize_frame(frame: Frame, shorter_side: int | None) -> Frame:
    """Resize rgb so its shorter side is ``shorter_side`` (paper A3: 640); K follows, depth keeps its FOV.

    Depth is resampled with nearest neighbour (averaging depths across an edge invents surfaces) to the
    rgb's new size when it had the rgb's size, else by the same factor, so rgb/depth stay registered.
    """
    if shorter_side is None:
        return frame
    if shorter_side <= 0:
        raise ValueError(f"resize must be a positive shorter-side length, got {shorter_side}")
    H, W = frame.rgb.shape[:2]
    s = shorter_side / min(H, W)
    if abs(s - 1.0) < 1e-9:
        return frame
    new_hw = (max(1, round(H * s)), max(1, round(W * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    rgb = cv2.resize(frame.rgb, (new_hw[1], new_hw[0]), interpolation=interp)
    Hd, Wd = frame.depth.shape
    d_hw = new_hw if (Hd, Wd) == (H, W) else (max(1, round(Hd * s)), max(1, round(Wd * s)))
    depth = cv2.resize(frame.depth, (d_hw[1], d_hw[0]), interpolation=cv2.INTER_NEAREST)
    K = scale_intrinsics(frame.K, (H, W), new_hw)
    return Frame(rgb=rgb, depth=depth, K=K, T_world_cam=frame.T_world_cam, stamp=frame.stamp,
                 frame_id=frame.frame_id)


def resize_labels(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label image (labels are ids, never interpolated)."""
    if labels.shape[:2] == tuple(hw):
        return labels
    return cv2.resize(labels, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)


class FrameDataset:
    """Base reader: an indexable, iterable sequence of :class:`Frame`.

    Subclasses set ``self._n_raw`` (frames available) and implement ``_load(raw_index) -> Frame``;
    labelled ones override ``_load_labels``. ``stride`` keeps every stride-th frame, ``max_frames``
    caps the count after striding, ``resize`` sets the rgb's shorter side (None keeps the native size).
    """

    name: str = "dataset"
    classes: list[str] | None = None  # labels k+1 <-> classes[k]; 0 = ignore (encoder convention)

    def __init__(self, *, stride: int = 1, max_frames: int | None = None, resize: int | None = None):
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if max_frames is not None and max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        self.stride = int(stride)
        self.max_frames = max_frames
        self.resize = resize
        self._n_raw = 0

    def _indices(self) -> Sequence[int]:
        r = range(0, self._n_raw, self.stride)
        return r if self.max_frames is None else r[: self.max_frames]

    def __len__(self) -> int:
        return len(self._indices())

    def raw_index(self, i: int) -> int:
        """Index into the underlying recording of the ``i``-th selected frame."""
        idx = self._indices()
        if not -len(idx) <= i < len(idx):
            raise IndexError(f"frame {i} out of range for {len(idx)} frames")
        return idx[i]

    def __getitem__(self, i: int) -> Frame:
        return resize_frame(self._load(self.raw_index(i)), self.resize)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]

    def native_rgbd(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """Frame ``i`` as stored, before ``resize``: rgb, depth (m), intrinsics of the *depth* image, pose,
        stamp. Loaders that resize rgb and depth on their own (the RayFronts-style 3D presets) start here."""
        f = self._load(self.raw_index(i))
        K = f.K if f.rgb.shape[:2] == f.depth.shape else scale_intrinsics(f.K, f.rgb.shape[:2], f.depth.shape)
        return f.rgb, f.depth, np.asarray(K, np.float64), f.T_world_cam, f.stamp

    def labels(self, i: int) -> np.ndarray:
        """(H, W) int32 ground-truth labels of frame ``i`` at the rgb's (resized) size; 0 = ignore."""
        lab = self._load_labels(self.raw_index(i))
        if self.resize is None:
            return lab
        H, W = lab.shape
        s = self.resize / min(H, W)
        return resize_labels(lab, (max(1, round(H * s)), max(1, round(W * s))))

    def _load(self, raw_index: int) -> Frame:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_labels(self, raw_index: int) -> np.ndarray:
        raise NotImplementedError(f"{self.name} has no per-pixel labels")

    def gt_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth labelled cloud ``(points (N, 3) world, labels (N,))`` for 3D evaluation."""
        raise NotImplementedError(f"{self.name} has no ground-truth point cloud")

    def close(self) -> None:
        """Release open files (bags); a no-op for folder and generated readers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, frames={len(self)})"


def read_depth_png(path: str, scale: float) -> np.ndarray:
    """16-bit depth PNG -> float32 metres, ``scale`` metres per unit (as the node's ``depth_scale``).

    Datasets quote the inverse ("factor 5000"): their scale is ``1 / factor``. 0 stays 0 = no measurement.
    """
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise FileNotFoundError(f"cannot read depth image {path}")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel 16-bit depth PNG, got {raw.dtype} {raw.shape}")
    return depth_to_metres(raw, "16UC1", scale)


def read_depth_png_divided(path: str, units_per_metre: float) -> np.ndarray:
    """16-bit depth PNG -> float32 metres as ``raw / units_per_metre`` in float32 (RayFronts' loaders divide
    the torch tensor; multiplying by the reciprocal, as :func:`read_depth_png`, can differ by one ulp)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"{path}: expected a readable single-channel 16-bit depth PNG")
    return raw.astype(np.float32) / np.float32(units_per_metre)


def read_rgb(path: str) -> np.ndarray:
    """Colour image file -> (H, W, 3) uint8 RGB (OpenCV reads BGR)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
