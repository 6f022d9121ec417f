"""Nav2 costmap filter masks: cell values against the voxels, read back the way Nav2 reads them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radseg_core.navigation import KEEPOUT_FILTER, SPEED_FILTER_PERCENT, ColumnGrid, keepout_mask, speed_mask
from radseg_core.navigation.grid import grid_shift

S = 0.05
BAND = (-0.1, 1.5)


def nav2_world_to_map(mask, wx: float, wy: float) -> tuple[int, int] | None:
    """nav2_util::worldToMap on the message fields: float32 resolution, double arithmetic, truncation."""
    ox, oy = mask.grid.origin
    res = float(np.float32(mask.grid.voxel_size))  # OccupancyGrid.info.resolution is float32
    if wx < ox or wy < oy:
        return None
    mx, my = int((wx - ox) / res), int((wy - oy) / res)
    if mx >= mask.grid.width or my >= mask.grid.height:
        return None
    return mx, my


def nav2_keepout_cost(value: int) -> int | None:
    """CostmapFilter::getMaskCost: -1 -> NO_INFORMATION (None here), else round(value * 254 / 100)."""
    return None if value == -1 else round(value * 254 / 100)


def random_voxels(seed: int, n: int = 3000, far: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ijk = np.unique(rng.integers(-40, 40, size=(n, 3)), axis=0) + np.array([far, -far, 0])
    return ijk, rng.random((2, len(ijk)))


def reference_columns(ijk, scores, shift, threshold):
    """Plain loops: the best score of either query per column over voxels with centre z in the band."""
    best: dict[tuple[int, int], float] = {}
    for n, (i, j, k) in enumerate(ijk.tolist()):
        z = (k + 0.5 - shift) * S
        if BAND[0] <= z <= BAND[1]:
            best[(i, j)] = max(best.get((i, j), -math.inf), float(scores[:, n].max()))
    return {c for c, v in best.items() if v >= threshold}


@pytest.mark.parametrize("grid", ["floor", "round"])
@pytest.mark.parametrize("far", [0, 2_000_000])  # 100 km from the origin: UTM-like coordinates
def test_keepout_cells_are_the_columns_whose_band_maximum_passes(grid, far):
    ijk, scores = random_voxels(1, far=far)
    shift = grid_shift(grid)
    mask = keepout_mask(ijk, scores, voxel_size=S, shift=shift, z_band=BAND, threshold=0.8)
    assert (mask.filter_type, mask.base, mask.multiplier) == (KEEPOUT_FILTER, 0.0, 1.0)
    hot = reference_columns(ijk, scores, shift, 0.8)
    assert 100 < len(hot) < mask.grid.width * mask.grid.height
    # every voxel centre, looked up as Nav2 looks up a world point, finds its own column's value
    seen = set()
    for i, j, _ in ijk.tolist():
        cell = nav2_world_to_map(mask, (i + 0.5 - shift) * S, (j + 0.5 - shift) * S)
        assert cell is not None
        value = int(mask.data[cell[1], cell[0]])
        assert value == (100 if (i, j) in hot else -1)
        assert nav2_keepout_cost(value) in (254, None)  # lethal, or left alone
        seen.add(cell)
    assert mask.cells == len(hot) and set(np.unique(mask.data).tolist()) == {-1, 100}
    # cells hold exactly the map's columns: no row or column of padding
    assert mask.grid.width == ijk[:, 0].max() - ijk[:, 0].min() + 1
    assert mask.grid.height == ijk[:, 1].max() - ijk[:, 1].min() + 1


def test_speed_mask_holds_the_limit_where_a_query_matches_and_zero_elsewhere():
    ijk, scores = random_voxels(2)
    mask = speed_mask(ijk, scores, voxel_size=S, z_band=BAND, threshold=0.9, limit_percent=35)
    assert (mask.filter_type, mask.base, mask.multiplier) == (SPEED_FILTER_PERCENT, 0.0, 1.0)
    hot = reference_columns(ijk, scores, 0.0, 0.9)
    for i, j, _ in ijk.tolist():
        mx, my = nav2_world_to_map(mask, (i + 0.5) * S, (j + 0.5) * S)
        value = int(mask.data[my, mx])
        # SpeedFilter: 0 = no limit, -1 would be an error, else limit = base + multiplier * value percent
        assert value == (35 if (i, j) in hot else 0)
    assert -1 not in mask.data and mask.cells == len(hot)
    with pytest.raises(ValueError, match="1..100"):
        speed_mask(ijk, scores, voxel_size=S, z_band=BAND, threshold=0.9, limit_percent=0)


def test_band_leaves_out_voxels_above_the_robot_and_below_the_floor():
    ijk = np.array([[0, 0, 0], [1, 0, 40], [2, 0, -10], [3, 0, 29]])  # z 0.025, 2.025, -0.475, 1.475
    scores = np.ones((1, 4))
    mask = keepout_mask(ijk, scores, voxel_size=S, z_band=BAND, threshold=0.5)
    assert mask.data.tolist() == [[100, -1, -1, 100]]
    assert mask.grid.origin == (0.0, 0.0) and (mask.grid.width, mask.grid.height) == (4, 1)


def test_empty_map_gives_empty_masks():
    empty = np.zeros((0, 3), np.int64)
    for mask in (keepout_mask(empty, np.zeros((1, 0)), voxel_size=S, z_band=BAND, threshold=0.5),
                 speed_mask(empty, np.zeros((2, 0)), voxel_size=S, z_band=BAND, threshold=0.5, limit_percent=40)):
        assert mask.data.shape == (0, 0) and mask.cells == 0
        assert (mask.grid.width, mask.grid.height) == (0, 0)


def test_column_grid_centres_and_cells_agree():
    g = ColumnGrid.around(np.array([[-3, 5], [4, -2]]), S, 0.5, pad=2, points=[(0.3, -0.4)])  # cell (6, -8)
    assert (g.i0, g.j0, g.width, g.height) == (-5, -10, 14, 18)
    u, v = np.meshgrid(np.arange(g.width), np.arange(g.height))
    x, y = g.center(u, v)
    back = np.array([g.cell_of(a, b) for a, b in zip(x.ravel(), y.ravel(), strict=True)])
    assert np.array_equal(back, np.stack([u.ravel(), v.ravel()], axis=1))
    assert g.origin == ((-5 - 0.5) * S, (-10 - 0.5) * S)
