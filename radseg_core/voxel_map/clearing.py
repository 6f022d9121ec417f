"""Free-space clearing, map side: which voxels a depth image hits or sees through, and how they lose weight.

The decision per voxel is ``radseg_core.free_space`` (ROS-free geometry on a depth image); this module
finds the voxels worth asking about and turns the answer into decay. Only voxels inside the bounding box
of the frustum can be hit or seen through, so only they are looked at: they are found in the sorted key
runs (:meth:`KeyIndex.in_box`), and a frame costs what is near the camera, not the map (12x cheaper than
projecting all 1M voxels of a 100 m map; docs/benchmarks.md).

Evidence is counted in frames, not points: a voxel remembers how many frames hit it (``hit_frames``,
int8, saturating at 127) and each frame that sees through it keeps ``floor(n * (1 - decay))`` of those
n frames (and as much of its hits). A voxel hit by one frame at 1 m holds ~700 points, one hit by twenty
frames at 4 m ~300; counting frames makes either go after as many see-through frames as it needs to lose
the frames that saw it, however close the camera was and whatever ``max_hits`` is.
"""

from __future__ import annotations

import numpy as np
import torch

from radseg_core.free_space import free_voxels, frustum_voxel_box
from radseg_core.voxel_map.key_index import KeyIndex
from radseg_core.voxel_map.keys import centers_of

FRAMES_MAX = 127  # int8: a voxel hit by more frames counts as this many


def hit_and_seen_through(
    index: KeyIndex, origin_voxel: torch.Tensor, voxel_size: float, shift: float, depth: torch.Tensor,
    K: np.ndarray, T: np.ndarray, hit_keys: torch.Tensor, min_depth: float, max_depth: float,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """int64 slots of the mapped voxels this frame hits (``hit_keys``: sorted, unique), of those it sees
    through (never one it hits), and how many voxels were looked at (those in the frustum's box)."""
    lo, hi = frustum_voxel_box(depth, K, T, voxel_size, shift, min_depth=min_depth, max_depth=max_depth)
    keys, slots = index.in_box(lo - origin_voxel, hi - origin_voxel, depth.device)
    hit = torch.zeros_like(keys, dtype=torch.bool)
    if hit_keys.numel():
        hit = hit_keys[torch.searchsorted(hit_keys, keys).clamp_max(hit_keys.numel() - 1)] == keys
    rest = ~hit
    centers = centers_of(keys[rest], origin_voxel, voxel_size, shift)
    free = free_voxels(centers, depth, K, T, voxel_size, min_depth=min_depth, max_depth=max_depth)
    return slots[hit].long(), slots[rest][free].long(), int(keys.numel())


def counted_frame(hit_frames: torch.Tensor) -> torch.Tensor:
    """``hit_frames`` (frames minus one, int8) after one more frame hit the voxel, saturating."""
    return (hit_frames.int() + 1).clamp_max(FRAMES_MAX).to(torch.int8)


def decayed(hits: torch.Tensor, hit_frames: torch.Tensor, decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(hits, frames) a voxel keeps after one frame sees through it: ``floor(x * (1 - decay))`` of each,
    frames counted from 1 (the stored ``hit_frames`` is frames minus one); removed where either is 0."""
    keep = 1.0 - decay
    h = torch.floor(hits.double() * keep).to(torch.int32)
    f = torch.floor((hit_frames.double() + 1.0) * keep).to(torch.int32)
    return h, f
