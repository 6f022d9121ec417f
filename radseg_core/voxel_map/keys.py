"""Voxel keys: integer lattice coordinates packed into one int64, relative to a local origin.

One int64 per voxel makes hashing, sorting and set operations single-column (RayFronts runs
``torch.unique(dim=0)`` over rows of three ints). 21 bits per axis span +-52 km at 5 cm. Keys are
relative to ``origin_voxel``: 0 unless the first points lie far from the map frame's origin (UTM-anchored
frames), then a multiple of 2^16 voxels near them, so a map 1,000 km away is the same map shifted.
World points are binned in float64 for the same reason.

Cell lattice (``grid``): "floor" bins p into floor(p/s) (centres at (k + 1/2)s); "round" bins into
round(p/s) (centres at ks), the lattice of RayFronts' maps that its 3D evaluation assumes.
"""

from __future__ import annotations

import torch

BITS = 21
OFFSET = 1 << (BITS - 1)
MASK = (1 << BITS) - 1
GRIDS = ("floor", "round")
_ORIGIN_STEP = 65536  # a far origin is snapped to this many voxels


def grid_shift(grid: str) -> float:
    """Offset added to p/s before flooring: 0 for the "floor" lattice, 1/2 for "round"."""
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    return 0.5 if grid == "round" else 0.0


def pack_keys(ijk: torch.Tensor) -> torch.Tensor:
    """Pack (N, 3) integer voxel coordinates into (N,) int64 keys; order is lexicographic x, y, z."""
    u = ijk.long() + OFFSET
    return (u[:, 0] << (2 * BITS)) | (u[:, 1] << BITS) | u[:, 2]


def unpack_keys(keys: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_keys`: (N,) int64 → (N, 3) int64 voxel coordinates."""
    return torch.stack([(keys >> (2 * BITS)) & MASK, (keys >> BITS) & MASK, keys & MASK], dim=1) - OFFSET


def cell_indices(points: torch.Tensor, voxel_size: float, shift: float) -> torch.Tensor:
    """(N, 3) float64 lattice indices of (N, 3) points (NaN/inf stay non-finite)."""
    return torch.floor(points.to(torch.float64) / voxel_size + shift)


def far_origin(ijk: torch.Tensor) -> torch.Tensor | None:
    """A local origin (3,) int64 for a map whose first points, at lattice indices ``ijk``, lie beyond half
    the key range; None when the default origin 0 serves."""
    finite = ijk[torch.isfinite(ijk).all(dim=1)]
    if finite.numel() and bool((finite[0].abs() >= OFFSET // 2).any()):
        return (torch.round(finite[0] / _ORIGIN_STEP) * _ORIGIN_STEP).long().cpu()
    return None


def relative_keys(ijk: torch.Tensor, origin_voxel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys of float64 lattice indices relative to ``origin_voxel``, and a mask of those that are finite
    and inside the key range (the others get key 0 and must be dropped by the caller)."""
    ijk = ijk - origin_voxel.to(ijk.device, torch.float64)
    ok = torch.isfinite(ijk).all(dim=1) & (ijk >= -OFFSET).all(dim=1) & (ijk < OFFSET).all(dim=1)
    ijk = torch.where(ok[:, None], ijk, torch.zeros_like(ijk))
    return pack_keys(ijk.long()), ok


def centers_of(
    keys: torch.Tensor, origin_voxel: torch.Tensor, voxel_size: float, shift: float,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Centres (N, 3) of the voxels with these packed keys, computed in float64."""
    ijk = unpack_keys(keys) + origin_voxel.to(keys.device)
    return (ijk.to(torch.float64) + (0.5 - shift)).mul(voxel_size).to(dtype)
