"""Nav2 costmap filter masks from query scores: "avoid X" (keepout) and "slow near X" (speed).

A mask is a ``nav_msgs/OccupancyGrid`` whose cell (u, v) is the voxel column (i0 + u, j0 + v): the
query's score projected top-down as the maximum over the voxels of the column inside a height band,
then thresholded. Nav2 reads masks like this (ros-navigation/navigation2, ``nav2_costmap_2d``):

* ``CostmapFilter::getMaskCost``: mask value -1 is NO_INFORMATION, else ``round(value * 254 / 100)``.
  ``KeepoutFilter::process`` skips NO_INFORMATION cells and otherwise raises a costmap cell to that
  cost (or sets it where the costmap had no information). So a keepout cell is 100 (-> 254, lethal), and
  every other cell is -1, *not* 0: a 0 would write "free" over cells the costmap knows nothing about.
  KeepoutFilter expects base 0 and multiplier 1 in its CostmapFilterInfo (it logs an error otherwise).
* ``SpeedFilter::getSpeedLimitAtPose``: value 0 is "no limit", -1 is an error ("unknown cell ... invalid
  for this kind of filter"), 1..100 give ``speed_limit = value * multiplier + base`` in percent of the
  maximum speed (filter type 1). So a slow cell holds the limit in percent (base 0, multiplier 1), every
  other cell 0.
* ``nav2_util::worldToMap``: the cell of (x, y) is ``floor((x - origin) / resolution)``, so a voxel
  centre falls in the cell of its own column (tested with the float32 resolution the message carries).

Filter types and defaults: ``filter_values.hpp`` (KEEPOUT_FILTER 0, SPEED_FILTER_PERCENT 1,
BASE_DEFAULT 0, MULTIPLIER_DEFAULT 1); docs.nav2.org "Costmap Filter Info Server".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radseg_core.navigation.grid import ColumnGrid, column_max, voxel_center_z

KEEPOUT_FILTER = 0  # nav2_costmap_2d filter_values.hpp
SPEED_FILTER_PERCENT = 1
OCC_GRID_UNKNOWN = -1  # nav2_util occ_grid_values.hpp
OCC_GRID_FREE = 0
OCC_GRID_OCCUPIED = 100


@dataclass
class FilterMask:
    """One costmap filter mask and the CostmapFilterInfo fields that tell Nav2 how to read it."""

    grid: ColumnGrid
    data: np.ndarray  # (height, width) int8, OccupancyGrid values
    filter_type: int  # CostmapFilterInfo.type
    base: float = 0.0
    multiplier: float = 1.0

    @property
    def cells(self) -> int:
        """Cells the filter acts on (keepout: 100, speed: a limit)."""
        inactive = OCC_GRID_UNKNOWN if self.filter_type == KEEPOUT_FILTER else OCC_GRID_FREE
        return int((self.data != inactive).sum())


def band_max(
    ijk: np.ndarray, scores: np.ndarray, grid: ColumnGrid, z_band: tuple[float, float]
) -> np.ndarray:
    """(height, width): per column, the best score of any query (``scores`` (Q, N)) over its voxels whose
    centre z lies in ``z_band`` [low, high] (-inf where none)."""
    ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    z = voxel_center_z(ijk[:, 2], grid.voxel_size, grid.shift)
    keep = (z >= z_band[0]) & (z <= z_band[1])
    best = scores[:, keep].max(axis=0) if scores.shape[0] else np.full(int(keep.sum()), -np.inf)
    return column_max(grid, ijk[keep, :2], best)


def map_grid(ijk: np.ndarray, voxel_size: float, shift: float) -> ColumnGrid:
    """The grid of every voxel column of the map: masks cover the whole map, whatever the band."""
    return ColumnGrid.around(np.asarray(ijk).reshape(-1, 3)[:, :2], voxel_size, shift)


def keepout_mask(ijk: np.ndarray, scores: np.ndarray, *, voxel_size: float, shift: float = 0.0,
                 z_band: tuple[float, float], threshold: float) -> FilterMask:
    """Keepout mask: 100 where any query's band maximum reaches ``threshold``, -1 (no information) elsewhere."""
    grid = map_grid(ijk, voxel_size, shift)
    hot = band_max(ijk, scores, grid, z_band) >= threshold
    data = np.where(hot, OCC_GRID_OCCUPIED, OCC_GRID_UNKNOWN).astype(np.int8)
    return FilterMask(grid, data, KEEPOUT_FILTER, base=0.0, multiplier=1.0)


def speed_mask(ijk: np.ndarray, scores: np.ndarray, *, voxel_size: float, shift: float = 0.0,
               z_band: tuple[float, float], threshold: float, limit_percent: int) -> FilterMask:
    """Speed mask (percent): ``limit_percent`` (1..100) where any query's band maximum reaches ``threshold``,
    0 (no limit) elsewhere."""
    if not 1 <= int(limit_percent) <= 100:
        raise ValueError(f"limit_percent must lie in 1..100 (0 means no limit to Nav2), got {limit_percent}")
    grid = map_grid(ijk, voxel_size, shift)
    hot = band_max(ijk, scores, grid, z_band) >= threshold
    data = np.where(hot, int(limit_percent), OCC_GRID_FREE).astype(np.int8)
    return FilterMask(grid, data, SPEED_FILTER_PERCENT, base=0.0, multiplier=1.0)
