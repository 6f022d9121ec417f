"""2D cells at voxel resolution, one per voxel column: the lattice every navigation grid shares.

A cell is the xy footprint of the voxel column (i, j), so a 2D answer (a costmap filter mask, a
standing cell) lines up with the voxels exactly: no resampling, no half-cell drift. Cells are laid out
as ``nav_msgs/OccupancyGrid`` wants them: ``data[v * width + u]`` with u along +x and v along +y from
``origin``, the outer corner of cell (0, 0) (REP-103, z up).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

GRID_SHIFTS = {"floor": 0.0, "round": 0.5}  # VoxelMap.grid -> shift: voxel i spans [i - shift, i + 1 - shift) * s


def grid_shift(grid: str) -> float:
    """Offset of a VoxelMap lattice (``floor``: voxel i spans [i, i+1) * s; ``round``: centred on i * s)."""
    if grid not in GRID_SHIFTS:
        raise ValueError(f"grid must be one of {tuple(GRID_SHIFTS)}, got {grid!r}")
    return GRID_SHIFTS[grid]


@dataclass(frozen=True)
class ColumnGrid:
    """``width`` x ``height`` cells; cell (u, v) is the column of voxels (i0 + u, j0 + v, *)."""

    voxel_size: float
    shift: float  # lattice offset, see grid_shift()
    i0: int
    j0: int
    width: int
    height: int

    @classmethod
    def around(cls, ij: np.ndarray, voxel_size: float, shift: float = 0.0, *, pad: int = 0,
               points: Iterable[tuple[float, float]] = ()) -> ColumnGrid:
        """The smallest grid holding the columns ``ij`` (N, 2) and the cells of ``points`` (x, y), grown by
        ``pad`` cells on every side. No columns and no points: an empty (0 x 0) grid at the origin."""
        cols = [np.asarray(ij, dtype=np.int64).reshape(-1, 2)]
        pts = [p for p in points if p is not None]
        if pts:
            xy = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
            cols.append(np.floor(xy / voxel_size + shift).astype(np.int64))
        allc = np.concatenate(cols)
        if len(allc) == 0:
            return cls(float(voxel_size), float(shift), 0, 0, 0, 0)
        lo, hi = allc.min(axis=0) - pad, allc.max(axis=0) + pad
        return cls(float(voxel_size), float(shift), int(lo[0]), int(lo[1]),
                   int(hi[0] - lo[0] + 1), int(hi[1] - lo[1] + 1))

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width): numpy row-major, rows along +y."""
        return self.height, self.width

    @property
    def origin(self) -> tuple[float, float]:
        """Outer corner of cell (0, 0) in the map frame (metres): OccupancyGrid ``info.origin.position``."""
        s = self.voxel_size
        return (self.i0 - self.shift) * s, (self.j0 - self.shift) * s

    def cells(self, ij: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) of voxel columns ``ij`` (N, 2); may lie outside the grid (see :meth:`inside`)."""
        ij = np.asarray(ij, dtype=np.int64).reshape(-1, 2)
        return ij[:, 0] - self.i0, ij[:, 1] - self.j0

    def inside(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return (u >= 0) & (u < self.width) & (v >= 0) & (v < self.height)

    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        """Cell holding the point (x, y) (the voxel column it falls into)."""
        s = self.voxel_size
        return (math.floor(x / s + self.shift) - self.i0, math.floor(y / s + self.shift) - self.j0)

    def center(self, u: np.ndarray | int, v: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """Map-frame (x, y) of cell centres: the xy of the voxel centres of that column."""
        s = self.voxel_size
        return ((np.asarray(u) + self.i0 + 0.5 - self.shift) * s, (np.asarray(v) + self.j0 + 0.5 - self.shift) * s)


def voxel_center_z(k: np.ndarray | torch.Tensor, voxel_size: float, shift: float) -> np.ndarray:
    """Map-frame z of voxel centres from their integer k."""
    k = k.cpu().numpy() if isinstance(k, torch.Tensor) else np.asarray(k)
    return (k.astype(np.float64) + 0.5 - shift) * voxel_size


def column_max(grid: ColumnGrid, ij: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(height, width) float64: per cell, the largest of ``values`` (N,) over the voxels of its column
    (``-inf`` where none). Columns outside the grid are ignored."""
    out = torch.full((grid.height * grid.width,), -math.inf, dtype=torch.float64)
    u, v = grid.cells(ij)
    ok = grid.inside(u, v)
    if ok.any():
        flat = torch.from_numpy(v[ok] * grid.width + u[ok])
        out.scatter_reduce_(0, flat, torch.as_tensor(np.asarray(values)[ok], dtype=torch.float64), "amax")
    return out.numpy().reshape(grid.shape)


def column_any(grid: ColumnGrid, ij: np.ndarray) -> np.ndarray:
    """(height, width) bool: the column holds at least one of the voxels ``ij`` (N, 2)."""
    out = np.zeros(grid.shape, dtype=bool)
    u, v = grid.cells(ij)
    ok = grid.inside(u, v)
    out[v[ok], u[ok]] = True
    return out
