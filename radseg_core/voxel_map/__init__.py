"""Hashed sparse semantic voxel map: incremental, hit-weighted, exact in fp16, memory-bounded.

One concern per module:

* ``map``          ``VoxelMap``: integration, accessors, removal; ties the rooms below together.
* ``keys``         int64 voxel keys, lattices ("floor" / "round"), far (UTM) origins.
* ``key_index``    the hash: sorted key runs, O(log n) of them, and the only copy of the keys.
* ``slot_store``   per-voxel arrays in chunks: growth appends, never copies the map.
* ``working_set``  fp16 drift compensation for the voxels in view, sized by what frames touch.
* ``recency``      the hit cap (``max_hits``): a recency-weighted mean that follows change.
* ``eviction``     ``max_voxels``: least recently seen voxels go first.
* ``clearing``     free-space clearing, map side (the geometry is ``radseg_core.free_space``).
* ``interpolation`` per-voxel sums of the 1/16 feature grid without per-pixel vectors.

Memory, 768-d fp16: <= 1.6 KB per voxel everything included (``memory_stats()["bytes_per_voxel"]``)
plus the working set, sized by the view (``working_set_mb``; docs/voxel_map.md).
"""

from radseg_core.voxel_map.keys import GRIDS, pack_keys, unpack_keys
from radseg_core.voxel_map.map import MODES, VoxelMap
from radseg_core.voxel_map.recency import DEFAULT_MAX_HITS, recency_weights

__all__ = ["DEFAULT_MAX_HITS", "GRIDS", "MODES", "VoxelMap", "pack_keys", "recency_weights", "unpack_keys"]
