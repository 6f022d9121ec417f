"""Go to X: goals on the synthetic room mapped from its true labels, refusals, standing evidence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from radseg_core.navigation import Body, plan_goal, standing_space
from radseg_core.navigation.grid import voxel_center_z
from radseg_core.navigation.scenes import (
    ROOM_CLASSES,
    VOXEL,
    empty_room_map,
    integrate_labelled,
    room,
    room_map,
    walled_in_furniture,
)
from radseg_core.navigation.standing import clearance_kernel
from radseg_core.query import candidate_groups

BODY = Body(floor_z=0.0, step_height=0.1, height=1.5, radius=0.3)
STANDOFF = 0.8
ROBOT = (2.5, 2.0)  # the middle of the room, where the camera loop is


@pytest.fixture(scope="module")
def scene():
    sc = room()
    return sc, room_map(sc)


def scores_of(vm, name: str) -> np.ndarray:
    return vm.values()[:, ROOM_CLASSES.index(name)].numpy()


def goal(vm, name: str, robot=ROBOT, standoff=STANDOFF, body=BODY):
    return plan_goal(vm.voxel_indices(), scores_of(vm, name), voxel_size=VOXEL, threshold=0.5, robot_xy=robot,
                     standoff=standoff, body=body, text=name)


def square_distance(x: float, y: float, ij: np.ndarray) -> np.ndarray:
    """Distance from (x, y) to the xy squares of voxel columns ij (N, 2), from the geometry alone."""
    lo = ij * VOXEL
    dx = np.maximum(np.maximum(lo[:, 0] - x, x - (lo[:, 0] + VOXEL)), 0.0)
    dy = np.maximum(np.maximum(lo[:, 1] - y, y - (lo[:, 1] + VOXEL)), 0.0)
    return np.hypot(dx, dy)


@pytest.mark.parametrize("name", ["bed", "table", "cabinet", "door", "chair"])
def test_goal_stands_on_seen_floor_at_the_standoff_clear_of_every_occupied_voxel_facing_the_object(scene, name):
    sc, vm = scene
    ans = goal(vm, name)
    assert ans.goal is not None, ans.message
    g = ans.goal
    ijk = vm.voxel_indices().numpy()
    z = voxel_center_z(ijk[:, 2], VOXEL, 0.0)
    groups = candidate_groups(torch.from_numpy(ijk), torch.from_numpy(scores_of(vm, name)), threshold=0.5,
                              voxel_size=VOXEL)
    members = next(m for c, m in groups if np.allclose(c.centroid, g.candidate.centroid))
    # the standoff: horizontal distance to the chosen object's nearest voxel centre, within half a cell
    d_obj = np.hypot(*(((ijk[members.numpy(), :2] + 0.5) * VOXEL) - np.array([g.x, g.y])).T).min()
    assert abs(d_obj - STANDOFF) <= VOXEL / 2 + 1e-6 and abs(d_obj - g.standoff) < 1e-4
    # outside every occupied voxel: no voxel of the body band has its square within the robot radius
    occupied = ijk[(z > BODY.body_band[0]) & (z <= BODY.body_band[1]), :2]
    assert square_distance(g.x, g.y, occupied).min() >= BODY.radius - 1e-9
    # on floor the map has seen: the goal's column holds a floor voxel; the pose is at floor height
    col = np.all(np.floor(np.array([g.x, g.y]) / VOXEL).astype(int) == ijk[:, :2], axis=1)
    assert np.any(col & (np.abs(z) <= BODY.step_height))
    assert g.z == BODY.floor_z
    # facing the object's centroid
    want = math.atan2(g.candidate.centroid[1] - g.y, g.candidate.centroid[0] - g.x)
    assert abs(math.remainder(g.yaw - want, 2 * math.pi)) < 1e-9
    # and in the true room: inside its walls, outside every piece of furniture's footprint
    assert 0 < g.x < sc.size[0] and 0 < g.y < sc.size[1]
    for b in sc.boxes:
        inside = b.lo[0] <= g.x <= b.hi[0] and b.lo[1] <= g.y <= b.hi[1]
        assert not inside, (name, b)
    assert np.isclose(g.distance, math.hypot(g.x - ROBOT[0], g.y - ROBOT[1]))


def test_the_object_nearest_the_robot_wins():
    """Two identical boxes on a seen floor: the goal goes to the one nearer the robot."""
    vm = empty_room_map()
    xs, ys = np.meshgrid(np.arange(0.025, 6.0, VOXEL), np.arange(0.025, 3.0, VOXEL))
    floor = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 0.025)], axis=1)
    cube = np.stack(np.meshgrid(*[np.arange(0.025, 0.4, VOXEL)] * 3), axis=-1).reshape(-1, 3) + [0, 1.3, 0.1]
    pts = np.concatenate([floor, cube + [1.0, 0, 0], cube + [4.6, 0, 0]])
    lab = np.r_[np.full(len(floor), ROOM_CLASSES.index("floor")), np.full(2 * len(cube), ROOM_CLASSES.index("bed"))]
    vm.integrate_points(torch.from_numpy(pts), torch.from_numpy(np.eye(vm.dim, dtype=np.float32)[lab]))
    left, right = goal(vm, "bed", robot=(0.3, 1.5)), goal(vm, "bed", robot=(5.7, 1.5))
    assert left.goal.candidate.centroid[0] < 2 and left.goal.x < 1.0
    assert right.goal.candidate.centroid[0] > 4 and right.goal.x > 5.0
    assert "2 matches" in left.message
    # a robot far off the map (300 m east): reached through unseen space, the grid stays the map's size
    far = goal(vm, "bed", robot=(300.0, 1.5))
    assert far.goal.candidate.centroid[0] > 4 and far.goal.x > 5.0
    assert far.goal.distance == pytest.approx(math.hypot(300.0 - far.goal.x, 1.5 - far.goal.y))


def test_walled_in_object_is_refused():
    """The cabinet fenced in by 1 m walls: floor around it is seen over the fence, but no goal is reachable."""
    sc = room(boxes=walled_in_furniture())
    vm = room_map(sc)
    ans = goal(vm, "cabinet")
    assert ans.goal is None and ans.reason == "no_free_space", ans.message
    assert "1 of them with no occupied voxel" in ans.message and "0 reachable" in ans.message, ans.message
    assert goal(vm, "table").goal is not None  # the rest of the room still works


def test_refusals_say_why(scene):
    _, vm = scene
    empty = plan_goal(np.zeros((0, 3)), np.zeros(0), voxel_size=VOXEL, threshold=0.5, robot_xy=ROBOT,
                      standoff=STANDOFF, body=BODY)
    assert (empty.goal, empty.reason) == (None, "empty_map")
    missing = goal(vm, "ceiling")  # the camera loop looks down: the ceiling is never seen
    assert missing.reason == "no_match" and "best 0.000" in missing.message, missing.message
    no_pose = goal(vm, "bed", robot=None)
    assert no_pose.reason == "no_robot_pose"
    assert goal(vm, "bed", standoff=0.0).reason == "bad_request"
    # a standoff inside the robot's own clearance: the ring lies within robot_radius of the object
    close = goal(vm, "cabinet", standoff=0.1)
    assert close.reason == "no_free_space" and "0 of them with no occupied voxel" in close.message, close.message


def test_standing_cells_are_clear_of_the_true_furniture_and_walls(scene):
    """Standing evidence against the room's geometry: no standable cell lies within the robot radius of a
    box (or wall) that reaches into the body band. (Recall is not 1: the floor the camera loop never saw,
    e.g. under the camera itself, is not standable.)"""
    sc, vm = scene
    space = standing_space(vm.voxel_indices().numpy(), VOXEL, 0.0, BODY, pad=2)
    vv, uu = np.nonzero(space.standable)
    x, y = space.grid.center(uu, vv)
    clearance = np.minimum.reduce([x, sc.size[0] - x, y, sc.size[1] - y])
    for b in sc.boxes:
        if b.hi[2] > BODY.body_band[0] and b.lo[2] <= BODY.body_band[1]:
            dx = np.maximum(np.maximum(b.lo[0] - x, x - b.hi[0]), 0)
            dy = np.maximum(np.maximum(b.lo[1] - y, y - b.hi[1]), 0)
            clearance = np.minimum(clearance, np.hypot(dx, dy))
    assert len(x) > 500 and clearance.min() >= BODY.radius


@pytest.mark.parametrize("radius", [0.0, 0.05, 0.12, 0.3])
def test_clearance_kernel_is_the_exact_square_distance(radius):
    k = clearance_kernel(radius, VOXEL)
    r = k.shape[0] // 2
    for dv in range(-r - 2, r + 3):
        for du in range(-r - 2, r + 3):
            gap = VOXEL * math.hypot(max(abs(du) - 0.5, 0), max(abs(dv) - 0.5, 0))
            want = gap < radius or (du, dv) == (0, 0)
            got = bool(k[dv + r, du + r]) if abs(du) <= r and abs(dv) <= r else False
            assert got == want, (du, dv)


def test_robot_enclosed_by_obstacles_gets_no_goal():
    """A robot boxed in (obstacles all round, closer than its radius on no side): nothing is reachable."""
    sc = room()
    vm = integrate_labelled(empty_room_map(), sc, range(len(sc)))
    ring = [(x, y) for x in np.arange(0.0, 1.0, VOXEL) for y in (0.0, 0.95)] + \
           [(x, y) for y in np.arange(0.0, 1.0, VOXEL) for x in (0.0, 0.95)]
    pts = np.array([(2.0 + x, 1.5 + y, z) for x, y in ring for z in np.arange(0.2, 1.2, VOXEL)])
    lab = np.full(len(pts), ROOM_CLASSES.index("wall"))
    vm.integrate_points(torch.from_numpy(pts), torch.from_numpy(np.eye(vm.dim, dtype=np.float32)[lab]))
    ans = goal(vm, "bed", robot=(2.5, 2.0))
    assert ans.reason == "no_free_space" and "0 reachable" in ans.message, ans.message
