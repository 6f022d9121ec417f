"""Free-space clearing, map side: which voxels a depth image sees through, and how they lose weight.

The decision per voxel is ``radseg_core.free_space`` (ROS-free geometry on a depth image); this module
finds the voxels worth asking about and turns the answer into hit decay. Only voxels inside the
bounding box of the frustum can be seen through, so only they are projected: they are found in the
sorted key runs (:meth:`KeyIndex.in_box`), and a frame costs what is near the camera, not the map
(12x cheaper than projecting all 1M voxels of a 100 m map; docs/benchmarks.md). Voxels the frame hits
are spared. A seen-through voxel keeps ``floor(hits * (1 - decay))`` hits and is removed at 0.
"""

from __future__ import annotations

import numpy as np
import torch

from radseg_core.free_space import free_voxels, frustum_voxel_box
from radseg_core.voxel_map.key_index import KeyIndex
from radseg_core.voxel_map.keys import centers_of


def seen_through(
    index: KeyIndex, origin_voxel: torch.Tensor, voxel_size: float, shift: float, depth: torch.Tensor,
    K: np.ndarray, T: np.ndarray, hit_keys: torch.Tensor, min_depth: float, max_depth: float,
) -> tuple[torch.Tensor, int]:
    """int64 slots of the voxels ``depth`` sees through (none of ``hit_keys``), and how many voxels were
    projected to find them (those in the frustum's box)."""
    lo, hi = frustum_voxel_box(depth, K, T, voxel_size, shift, min_depth=min_depth, max_depth=max_depth)
    keys, slots = index.in_box(lo - origin_voxel, hi - origin_voxel, depth.device)
    centers = centers_of(keys, origin_voxel, voxel_size, shift)
    free = free_voxels(centers, depth, K, T, voxel_size, min_depth=min_depth, max_depth=max_depth)
    cand = torch.nonzero(free, as_tuple=True)[0]
    return slots[cand[~torch.isin(keys[cand], hit_keys)]].long(), int(keys.numel())  # isin on the few


def decayed_hits(hits: torch.Tensor, decay: float) -> torch.Tensor:
    """``floor(hits * (1 - decay))`` as int32: the hits a voxel keeps after one frame sees through it."""
    return torch.floor(hits.double() * (1.0 - decay)).to(torch.int32)
