"""Place a map into another frame: re-voxelise its voxels under a rigid transform.

Why: a map saved in ``odom`` (or in last week's ``map``) is only useful to a node mapping in ``map`` if
its voxels are re-expressed in that frame; loading it as if the frames were the same would put every
voxel in the wrong place without a word.

Each source voxel's centre (float64, so a map 1,000 km from its origin is placed as exactly as one at
the origin) is transformed and binned into the target lattice (same voxel size and grid). Voxels that
land in one target cell merge as if all their points had been integrated at once: hit counts add
(capped by ``max_hits`` when set), values and colours become hit-weighted means (float64, rounded once
to the storage dtype), ``last_seen`` is the latest.

Honest limits:

* Exact only when the transform maps lattice onto lattice: rotations by multiples of 90° about the grid
  axes and translations by whole voxels. Then every voxel keeps its own cell and its data unchanged.
* Any other rotation resamples: a rotated lattice does not coincide with the target's, so some target
  cells receive two source centres (they merge, counted in :attr:`Placement.merged`) and others none
  (holes). A fractional translation never merges but moves centres by up to half a voxel.
* Colours are merged from the uint8 means (``VoxelMap.colors()``); fp32 drift-compensation rows are
  kept only for voxels that did not merge (a merged mean is recomputed in float64 and rounded once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from radseg_core.geometry import validate_rigid_transform
from radseg_core.voxel_map import VoxelMap, pack_keys, unpack_keys

_ORIGIN_STEP = 65536  # local origins are multiples of this many voxels, as VoxelMap chooses them
_CHUNK_ELEMENTS = 1 << 24  # float64 merge buffers stay below 128 MB whatever the map's size and width


@dataclass(frozen=True)
class Placement:
    """What placing a map did, for the caller's report."""

    T_target_source: np.ndarray  # 4x4 float64, source frame -> target frame
    source_voxels: int
    voxels: int  # after merging
    exact: bool  # lattice onto lattice (90° rotations, whole-voxel translation): nothing resampled

    @property
    def merged(self) -> int:
        """Source voxels that fell into a cell another source voxel already occupied."""
        return self.source_voxels - self.voxels


def is_lattice_preserving(T: np.ndarray, voxel_size: float, tol: float = 1e-6) -> bool:
    """Whether ``T`` maps voxel centres onto voxel centres (signed-permutation rotation, whole-voxel shift).

    Both grids (floor and round) are symmetric under such rotations about the origin, so this does not
    depend on the grid.
    """
    R, t = T[:3, :3], T[:3, 3] / voxel_size
    signed_perm = np.all((np.abs(np.abs(R) - 1.0) < tol) | (np.abs(R) < tol))
    return bool(signed_perm and np.all(np.abs(t - np.round(t)) < tol))


def place_map(vmap: VoxelMap, T_target_source: np.ndarray) -> tuple[VoxelMap, Placement]:
    """A new VoxelMap holding ``vmap`` re-voxelised into the target frame (``p_target = T @ p_source``).

    ``vmap`` is not modified. The new map has the same configuration, metadata (the caller sets its
    ``frame_id``) and frame clock. ValueError: a non-finite or non-rigid transform, or placed voxels
    spanning more than the key range (±52 km at 5 cm around one local origin).
    """
    try:
        T = validate_rigid_transform(T_target_source)
    except ValueError as e:
        raise ValueError(f"cannot place the map: {e}") from None
    dev, s = vmap.device, vmap.voxel_size
    shift = 0.5 if vmap.grid == "round" else 0.0  # floor bins p into floor(p/s), round into round(p/s)
    out = VoxelMap(
        voxel_size=s, mode=vmap.mode, dim=vmap.dim, dtype=vmap.dtype, device=dev, max_voxels=vmap.max_voxels,
        max_hits=vmap.max_hits, evict_fraction=vmap.evict_fraction, residual_rows=vmap.residual_rows,
        free_space_decay=vmap.free_space_decay, grid=vmap.grid,
    )
    out.metadata = dict(vmap.metadata)
    n = len(vmap)
    if n == 0:
        none = torch.zeros(0, dtype=torch.int64)
        out._restore(none, torch.zeros(0, vmap.dim), torch.zeros(0, 3), none, none, vmap.frames_integrated)
        return out, Placement(T, 0, 0, is_lattice_preserving(T, s))
    T_t = torch.as_tensor(T, dtype=torch.float64, device=dev)
    p = vmap.centers(torch.float64) @ T_t[:3, :3].T + T_t[:3, 3]
    ijk = torch.floor(p / s + shift)
    lo, hi = ijk.min(dim=0).values, ijk.max(dim=0).values
    origin = torch.round((lo + hi) / 2 / _ORIGIN_STEP) * _ORIGIN_STEP
    rel = (ijk - origin).long()
    keys = pack_keys(rel)
    if not torch.equal(unpack_keys(keys), rel):
        span = ((hi - lo) * s).tolist()
        raise ValueError(f"cannot place the map: its voxels would span {span} m, beyond the voxel map's key "
                         "range around one origin")
    ukeys, inv = torch.unique(keys, return_inverse=True)
    m = ukeys.numel()
    hits = vmap.hits().long()
    total = torch.zeros(m, dtype=torch.int64, device=dev).index_add_(0, inv, hits)
    w = (hits.double() / total[inv].double())[:, None]  # each source voxel's share of its target cell
    values = torch.empty(m, vmap.dim, dtype=vmap.dtype, device=dev)
    src = vmap.values()
    step = max(1, _CHUNK_ELEMENTS // max(n, m))
    for c0 in range(0, vmap.dim, step):  # column chunks keep the float64 buffers bounded
        c1 = min(c0 + step, vmap.dim)
        acc = torch.zeros(m, c1 - c0, dtype=torch.float64, device=dev)
        values[:, c0:c1] = acc.index_add_(0, inv, src[:, c0:c1].double() * w).to(vmap.dtype)
    colors = torch.zeros(m, 3, dtype=torch.float64, device=dev).index_add_(0, inv, vmap.colors().double() * w)
    last_seen = torch.zeros(m, dtype=torch.int32, device=dev).scatter_reduce_(
        0, inv, vmap.last_seen(), reduce="amax", include_self=False)
    cap = (1 << 31) - 1 if vmap.max_hits is None else min((1 << 31) - 1, int(vmap.max_hits))
    counts = torch.bincount(inv, minlength=m)
    residuals = None
    slots, res, res_col = vmap.residuals()
    if slots.numel():
        alone = counts[inv[slots]] == 1  # a merged voxel's mean was recomputed: its residual no longer applies
        residuals = (inv[slots[alone]], res[alone], res_col[alone])
    out._restore(ukeys, values, colors.to(vmap.dtype), total.clamp_max(cap), last_seen, vmap.frames_integrated,
                 residuals, tuple(int(o) for o in origin.tolist()))
    return out, Placement(T, n, m, is_lattice_preserving(T, s))
