"""Where a robot may stand: floor the map has seen, clear of occupied voxels, connected to the robot.

Evidence of free space. The voxel map keeps surfaces, not free space (free-space clearing only decays
voxels a ray passed through). A voxelised floor is the evidence we use: a depth ray that hit the floor
at (x, y) crossed free space to get there, and the column above that floor cell is free if no voxel sits
in the robot's height band. So a cell is *standable* when

* its column holds a voxel whose centre lies within ``step_height`` of ``floor_z`` (floor seen), and
* no voxel with centre in (floor_z + step_height, floor_z + height] (the body band) has its xy square
  closer than ``radius`` to the cell centre (exact square distance, not centre distance).

Why not a grid of ray traversals fed by every frame: it needs state next to the map (saved, loaded,
placed, reset with it) and work on every frame, while the floor evidence costs nothing per frame, is
saved with the map already, and says more (a ray that passed over a cell at 1.5 m says nothing about a
box on the floor). What it cannot see: a floor the camera never looked at (too far, too dark, outside
``max_depth``) is not standable, and a goal there is refused rather than guessed.

Reachability: 8-connected regions of cells that are not blocked (within ``radius`` of an occupied
voxel). Unseen cells count as passable, as Nav2's planners do by default (``allow_unknown: true``);
walls seen all round an object separate it from the robot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from radseg_core.navigation.grid import ColumnGrid, column_any, voxel_center_z


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("radseg_core.navigation needs OpenCV: pip install opencv-python-headless (the 'io' "
                          "extra; ROS installs: python3-opencv)") from exc
    return cv2


@dataclass(frozen=True)
class Body:
    """The robot as navigation sees it; heights in the map frame (REP-103 z up)."""

    floor_z: float = 0.0  # height of the floor the robot drives on
    step_height: float = 0.1  # voxels up to this far from floor_z are floor (thresholds, rugs)
    height: float = 1.5  # the robot cannot pass under a voxel up to floor_z + height
    radius: float = 0.3  # no occupied voxel within this distance of where it stands

    def __post_init__(self) -> None:
        if not (self.step_height >= 0 and self.height > self.step_height and self.radius >= 0):
            raise ValueError(f"need step_height >= 0, height > step_height and radius >= 0, got {self}")

    @property
    def floor_band(self) -> tuple[float, float]:
        return self.floor_z - self.step_height, self.floor_z + self.step_height

    @property
    def body_band(self) -> tuple[float, float]:
        """(low, high]: voxels with centres in here are obstacles."""
        return self.floor_z + self.step_height, self.floor_z + self.height


@dataclass
class StandingSpace:
    """Per-cell evidence over one grid (all arrays (height, width))."""

    grid: ColumnGrid
    floor: np.ndarray  # bool: the floor was seen here
    occupied: np.ndarray  # bool: a voxel in the body band
    blocked: np.ndarray  # bool: an occupied voxel's square lies within the radius of the cell centre
    regions: np.ndarray  # int32: 8-connected regions of unblocked cells (1..); 0 = blocked

    @property
    def standable(self) -> np.ndarray:
        return self.floor & ~self.blocked

    def region_at(self, u: int, v: int, search: int = 0) -> int:
        """Region of cell (u, v); a blocked (or outside) cell takes the nearest unblocked cell's region within
        ``search`` cells (a robot touching its clearance radius must still find its way out). 0: none."""
        g = self.grid
        lo_u, hi_u = max(u - search, 0), min(u + search + 1, g.width)
        lo_v, hi_v = max(v - search, 0), min(v + search + 1, g.height)
        if lo_u >= hi_u or lo_v >= hi_v:
            return 0
        win = self.regions[lo_v:hi_v, lo_u:hi_u]
        vv, uu = np.nonzero(win)
        if len(vv) == 0:
            return 0
        d2 = (uu + lo_u - u) ** 2 + (vv + lo_v - v) ** 2
        k = int(np.argmin(d2))
        return int(win[vv[k], uu[k]]) if d2[k] <= search * search else 0


def clearance_kernel(radius: float, voxel_size: float) -> np.ndarray:
    """(2R+1, 2R+1) uint8: 1 at offsets (du, dv) whose cell square lies closer than ``radius`` to the centre
    of cell (0, 0). Dilating occupied cells with it marks every centre within ``radius`` of one."""
    r_cells = max(int(math.ceil(radius / voxel_size + 0.5)), 0)
    off = np.arange(-r_cells, r_cells + 1)
    du, dv = np.meshgrid(off, off)
    gap_u = np.maximum(np.abs(du) - 0.5, 0.0)
    gap_v = np.maximum(np.abs(dv) - 0.5, 0.0)
    near = voxel_size * np.hypot(gap_u, gap_v) < radius
    near[r_cells, r_cells] = True  # the occupied cell itself, also for radius 0
    return near.astype(np.uint8)


def standing_space(ijk: np.ndarray, voxel_size: float, shift: float, body: Body, *, pad: int = 1,
                   points: tuple[tuple[float, float] | None, ...] = ()) -> StandingSpace:
    """Floor, obstacles, clearance and regions over the map's columns (plus ``points``' cells), padded by
    ``pad`` cells so unseen space around the map connects what the walls do not enclose."""
    cv2 = _cv2()
    ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
    z = voxel_center_z(ijk[:, 2], voxel_size, shift)
    grid = ColumnGrid.around(ijk[:, :2], voxel_size, shift, pad=max(pad, 1), points=points)
    f_lo, f_hi = body.floor_band
    b_lo, b_hi = body.body_band
    floor = column_any(grid, ijk[(z >= f_lo) & (z <= f_hi), :2])
    occupied = column_any(grid, ijk[(z > b_lo) & (z <= b_hi), :2])
    if occupied.any():
        blocked = cv2.dilate(occupied.astype(np.uint8), clearance_kernel(body.radius, voxel_size)) > 0
    else:
        blocked = occupied.copy()
    if grid.width and grid.height:
        _, regions = cv2.connectedComponents((~blocked).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    else:
        regions = np.zeros(grid.shape, np.int32)
    return StandingSpace(grid, floor, occupied, blocked, regions)


def distance_from(mask: np.ndarray) -> np.ndarray:
    """(h, w) float32: Euclidean distance in cells from each cell centre to the nearest True cell's centre
    (exact: OpenCV's precise distance transform)."""
    cv2 = _cv2()
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
