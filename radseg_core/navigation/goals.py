"""Go to X: a pose near the object a query names, where the robot can stand, facing the object.

The candidates are the query's connected groups of voxels scoring at least ``threshold`` (the same
groups ``~/query`` returns). For each, the goal cells are the standable cells (``standing``) at
``standoff`` metres, horizontally, from the object's nearest voxel centre (a ring one cell wide), in the
robot's region; the one nearest the robot (straight line) is that object's goal. The object whose goal
lies nearest the robot wins. The pose stands at ``floor_z`` and faces the object's centroid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from radseg_core.navigation.grid import ColumnGrid
from radseg_core.navigation.standing import Body, StandingSpace, distance_from, standing_space
from radseg_core.query import candidate_groups
from radseg_core.types import Candidate

# Why no goal came back (the service's ``reason``); '' means a goal.
EMPTY_MAP = "empty_map"
NO_MATCH = "no_match"
NO_FREE_SPACE = "no_free_space"
NO_ROBOT_POSE = "no_robot_pose"
BAD_REQUEST = "bad_request"
REASONS = (EMPTY_MAP, NO_MATCH, NO_FREE_SPACE, NO_ROBOT_POSE, BAD_REQUEST)


@dataclass
class Goal:
    """A pose in the map frame (yaw about +z) and the object it leads to."""

    x: float
    y: float
    z: float
    yaw: float
    candidate: Candidate
    distance: float  # straight line from the robot
    standoff: float  # horizontal distance to the object's nearest voxel centre


@dataclass
class GoalAnswer:
    goal: Goal | None
    reason: str = ""  # one of REASONS when goal is None
    message: str = ""


def refusal(reason: str, message: str) -> GoalAnswer:
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    return GoalAnswer(None, reason, message)


@dataclass
class _Tally:
    """How far the candidates got, for a refusal that says why."""

    floor: int = 0  # had seen floor at the standoff
    clear: int = 0  # ... of it clear of occupied voxels
    reachable: int = 0


def _ring_goal(space: StandingSpace, members_ij: np.ndarray, standoff: float, region: int,
               robot_xy: tuple[float, float], tally: _Tally) -> tuple[float, float, float, float] | None:
    """Best goal cell for one object: (x, y, distance to robot, standoff); None if there is none."""
    g: ColumnGrid = space.grid
    s = g.voxel_size
    u, v = g.cells(members_ij)
    reach = int(math.ceil(standoff / s)) + 1
    lo_u, hi_u = max(int(u.min()) - reach, 0), min(int(u.max()) + reach + 1, g.width)
    lo_v, hi_v = max(int(v.min()) - reach, 0), min(int(v.max()) + reach + 1, g.height)
    footprint = np.zeros((hi_v - lo_v, hi_u - lo_u), dtype=bool)
    footprint[v - lo_v, u - lo_u] = True
    dist = distance_from(footprint).astype(np.float64) * s
    ring = np.abs(dist - standoff) <= s / 2
    window = (slice(lo_v, hi_v), slice(lo_u, hi_u))
    floor = ring & space.floor[window]
    clear = floor & ~space.blocked[window]
    ok = clear & (space.regions[window] == region) if region else np.zeros_like(clear)
    tally.floor += bool(floor.any())
    tally.clear += bool(clear.any())
    tally.reachable += bool(ok.any())
    if not ok.any():
        return None
    vv, uu = np.nonzero(ok)
    x, y = g.center(uu + lo_u, vv + lo_v)
    d = np.hypot(x - robot_xy[0], y - robot_xy[1])
    k = int(np.argmin(d))  # row-major first among equals: deterministic
    return float(x[k]), float(y[k]), float(d[k]), float(dist[vv[k], uu[k]])


def plan_goal(ijk: np.ndarray | torch.Tensor, scores: np.ndarray | torch.Tensor, *, voxel_size: float,
              shift: float = 0.0, threshold: float, robot_xy: tuple[float, float] | None, standoff: float,
              body: Body, text: str = "the query") -> GoalAnswer:
    """The goal for one query's per-voxel ``scores`` (N,) over voxels ``ijk`` (N, 3), or why there is none."""
    ijk_t = torch.as_tensor(ijk, dtype=torch.int64).reshape(-1, 3).cpu()
    scores_t = torch.as_tensor(scores, dtype=torch.float32).reshape(-1).cpu()
    if ijk_t.shape[0] == 0:
        return refusal(EMPTY_MAP, "the map is empty: no frames integrated yet")
    if not (standoff > 0 and math.isfinite(standoff)):
        return refusal(BAD_REQUEST, f"standoff must be a positive distance in metres, got {standoff}")
    if robot_xy is None:
        return refusal(NO_ROBOT_POSE, "no robot pose")
    groups = candidate_groups(ijk_t, scores_t, threshold=threshold, voxel_size=voxel_size, grid_shift=shift)
    if not groups:
        return refusal(NO_MATCH, f"no voxel scores {threshold:.2f} or more for '{text}' "
                                 f"(best {float(scores_t.max()):.3f})")
    ijk_np = ijk_t.numpy()
    pad = int(math.ceil((standoff + body.radius) / voxel_size)) + 2
    space = standing_space(ijk_np, voxel_size, shift, body, pad=pad)
    ru, rv = space.grid.cell_of(*robot_xy)
    if space.grid.inside(np.array(ru), np.array(rv)):
        region = space.region_at(ru, rv, search=int(math.ceil(body.radius / voxel_size)) + 1)
    else:  # off the map: the unseen space all round it, which the padding ring (never blocked) joins up
        region = int(space.regions[0, 0])
    tally, best = _Tally(), None
    for cand, members in groups:
        found = _ring_goal(space, ijk_np[members.numpy(), :2], standoff, region, robot_xy, tally)
        if found is not None and (best is None or found[2] < best[0][2]):
            best = (found, cand)
    if best is None:
        where = "" if region else "; the robot's own position is enclosed by occupied voxels"
        return refusal(NO_FREE_SPACE, (
            f"no free standing space {standoff:.2f} m from any of the {len(groups)} matches for '{text}': "
            f"{tally.floor} with floor seen at that distance, {tally.clear} of them with no occupied voxel "
            f"within robot_radius {body.radius:.2f} m, {tally.reachable} reachable from the robot{where}"))
    (x, y, dist, off), cand = best
    yaw = math.atan2(float(cand.centroid[1]) - y, float(cand.centroid[0]) - x)
    return GoalAnswer(Goal(x, y, body.floor_z, yaw, cand, dist, off), "",
                      f"goal {dist:.2f} m from the robot, {off:.2f} m from '{text}' "
                      f"(score {cand.score:.2f}, {cand.voxels} voxels; {len(groups)} matches)")
