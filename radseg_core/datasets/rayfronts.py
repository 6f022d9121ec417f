"""Frames as RayFronts' dataset loaders hand them to the mapper (the 3D evaluation behind RADSeg's Tab. 2).

RayFronts' ``NiceReplicaDataset`` and ``ScanNetDataset`` (``rayfronts/datasets/replica.py``, ``scannet.py``
at the commit RADSeg pins) resize every frame themselves, and RADSeg's 3D configs set both resolutions
(640x1136 Replica, 640x864 ScanNet):

* rgb: float in [0, 1] (``uint8 / 255``), ``torch.nn.functional.interpolate(mode="bilinear",
  antialias=True)`` to ``rgb_resolution``, straight from the stored image (ScanNet's 1296x968 colour
  included);
* depth: metres as ``raw / units`` in float32, ``interpolate(mode="nearest-exact")`` to
  ``depth_resolution``;
* intrinsics: the depth camera's, each row scaled by its axis' ratio (``K[0, :] *= w_ratio``,
  ``K[1, :] *= h_ratio``: the principal point scales as ``c * s``, not ``(c + 0.5) * s - 0.5``);
* labels (ScanNet): ids mapped first, then ``nearest-exact`` to ``rgb_resolution``.

Intrinsics and poses are float32 tensors there; here they are rounded to float32 once and carried in
float64. The mapper samples features at depth pixels, so when the two resolutions differ ``Frame.K`` is
given for the rgb size (our convention) and maps back to these depth intrinsics exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from radseg_core.geometry import scale_intrinsics
from radseg_core.types import Frame


def nearest_exact(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``interpolate(mode="nearest-exact")`` of a 2-D array (depth, label ids) to ``hw``."""
    if image.shape[:2] == tuple(hw):
        return image
    t = torch.from_numpy(np.ascontiguousarray(image).astype(np.float32, copy=False))[None, None]
    out = F.interpolate(t, size=tuple(hw), mode="nearest-exact")[0, 0].numpy()
    return out.astype(image.dtype, copy=False)


def bilinear_antialias(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) float32 in [0, 1]: ``uint8 / 255`` then bilinear with antialias."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255
    if tuple(x.shape[-2:]) != tuple(hw):
        x = F.interpolate(x[None], size=tuple(hw), mode="bilinear", antialias=True)[0]
    return x.permute(1, 2, 0).contiguous().numpy()


def scale_rows(K: np.ndarray, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> np.ndarray:
    """RayFronts' intrinsics for a resized depth image: row 0 times the width ratio, row 1 times the
    height ratio, in float32."""
    K = np.asarray(K, np.float32).copy()
    if tuple(from_hw) != tuple(to_hw):
        K[0, :] = K[0, :] * np.float32(to_hw[1] / from_hw[1])
        K[1, :] = K[1, :] * np.float32(to_hw[0] / from_hw[0])
    return K.astype(np.float64)


def load_like_rayfronts(rgb: np.ndarray, depth: np.ndarray, K_depth: np.ndarray, T: np.ndarray, stamp: float,
                        rgb_hw: tuple[int, int], depth_hw: tuple[int, int]) -> Frame:
    """One stored frame (see ``FrameDataset.native_rgbd``) resized as RayFronts' loaders do."""
    Kd = scale_rows(K_depth, depth.shape, depth_hw)
    K = Kd if tuple(rgb_hw) == tuple(depth_hw) else scale_intrinsics(Kd, depth_hw, rgb_hw)
    return Frame(rgb=bilinear_antialias(rgb, rgb_hw), depth=nearest_exact(np.asarray(depth, np.float32), depth_hw),
                 K=K, T_world_cam=np.asarray(T, np.float32).astype(np.float64), stamp=stamp,
                 frame_id="camera_optical_frame")


class RayFrontsFrames:
    """A reader's selected frames, loaded as RayFronts loads them at ``rgb_hw`` / ``depth_hw``."""

    def __init__(self, dataset, rgb_hw: tuple[int, int], depth_hw: tuple[int, int]):
        self.dataset, self.rgb_hw, self.depth_hw = dataset, tuple(rgb_hw), tuple(depth_hw)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Frame:
        return load_like_rayfronts(*self.dataset.native_rgbd(i), self.rgb_hw, self.depth_hw)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]

    def labels(self, i: int) -> np.ndarray:
        """Label ids of frame ``i`` at ``rgb_hw`` (mapped, then nearest-exact, as RayFronts' ScanNet)."""
        return nearest_exact(self.dataset.native_labels(i), self.rgb_hw)
