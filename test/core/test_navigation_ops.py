"""Navigation on a SemanticMapper: what the node calls, on the room mapped from its true labels."""

from __future__ import annotations

import numpy as np
import pytest
from test_navigation_objects import mapper

from radseg_core.navigation import NavSettings, goal_for, masks_for, plan_goal
from radseg_core.navigation.grid import ColumnGrid
from radseg_core.navigation.scenes import ROOM_CLASSES, integrate_labelled, room

SETTINGS = NavSettings(speed_limit_percent=30)


@pytest.fixture(scope="module")
def encoder():
    from radseg_core.encoder import build_encoder

    return build_encoder("random-tiny", crop=64, stride=48)


@pytest.fixture(scope="module")
def room_mapper(encoder):
    m = mapper(encoder)
    integrate_labelled(m.map, room(), range(24))
    return m


def test_goal_for_is_plan_goal_on_the_query_scores(room_mapper):
    ans = goal_for(room_mapper, "bed", (2.5, 2.0), SETTINGS)
    vm = room_mapper.map
    direct = plan_goal(vm.voxel_indices(), vm.values()[:, ROOM_CLASSES.index("bed")], voxel_size=vm.voxel_size,
                       threshold=0.5, robot_xy=(2.5, 2.0), standoff=0.8, body=SETTINGS.body)
    assert ans.goal is not None and (ans.goal.x, ans.goal.y, ans.goal.yaw) == (direct.goal.x, direct.goal.y,
                                                                               direct.goal.yaw)
    assert goal_for(room_mapper, "bed", (2.5, 2.0), SETTINGS, standoff=1.2).goal.standoff == pytest.approx(1.2,
                                                                                                          abs=0.026)
    bad = goal_for(room_mapper, "sofa", (2.5, 2.0), SETTINGS)  # not a class of this probabilities map
    assert bad.reason == "bad_request" and "not classes" in bad.message


def test_masks_for_cover_the_objects_columns(room_mapper):
    masks = masks_for(room_mapper, ["bed"], ["table", "chair"], SETTINGS)
    vm = room_mapper.map
    ijk, vals = vm.voxel_indices().numpy(), vm.values().numpy()
    z = (ijk[:, 2] + 0.5) * vm.voxel_size
    band = (z >= -0.1) & (z <= 1.5)
    for kind, names, hot_value in (("keepout", ["bed"], 100), ("speed", ["table", "chair"], 30)):
        mask = masks[kind]
        cols = [ROOM_CLASSES.index(n) for n in names]
        hot = band & (vals[:, cols].max(axis=1) >= 0.5)
        u, v = mask.grid.cells(ijk[hot, :2])
        assert np.all(mask.data[v, u] == hot_value)
        assert mask.cells == len({(a, b) for a, b in zip(u.tolist(), v.tolist(), strict=True)})
        assert mask.grid == ColumnGrid.around(ijk[:, :2], vm.voxel_size)  # the map's columns, aligned
    assert masks_for(room_mapper, [], [], SETTINGS) == {}


def test_empty_mapper_gives_empty_masks_and_refuses_goals(encoder):
    m = mapper(encoder)
    masks = masks_for(m, ["bed"], ["table"], SETTINGS)
    assert all(mk.data.shape == (0, 0) for mk in masks.values()) and set(masks) == {"keepout", "speed"}
    assert goal_for(m, "bed", (0.0, 0.0), SETTINGS).reason == "empty_map"
