"""From answer to action: navigation goals, Nav2 costmap filter masks and an object list from the map.

ROS-free like the rest of radseg_core; the node (``radseg_ros.navigation``) only turns these into
messages. Modules: ``grid`` (2D cells = voxel columns), ``masks`` (keepout / speed masks as Nav2 reads
them), ``standing`` (where a robot may stand), ``goals`` (go to X), ``objects`` (what is here, stable
ids), ``ops`` (the same on a SemanticMapper), ``pictures`` (top-down images for the docs).
"""

from radseg_core.navigation.goals import REASONS, Goal, GoalAnswer, plan_goal
from radseg_core.navigation.grid import ColumnGrid, grid_shift
from radseg_core.navigation.masks import KEEPOUT_FILTER, SPEED_FILTER_PERCENT, FilterMask, keepout_mask, speed_mask
from radseg_core.navigation.objects import MapObject, find_objects
from radseg_core.navigation.ops import NavSettings, goal_for, masks_for, objects_for
from radseg_core.navigation.standing import Body, StandingSpace, standing_space

__all__ = [
    "KEEPOUT_FILTER",
    "REASONS",
    "SPEED_FILTER_PERCENT",
    "Body",
    "ColumnGrid",
    "FilterMask",
    "Goal",
    "GoalAnswer",
    "MapObject",
    "NavSettings",
    "StandingSpace",
    "find_objects",
    "goal_for",
    "grid_shift",
    "keepout_mask",
    "masks_for",
    "objects_for",
    "plan_goal",
    "speed_mask",
    "standing_space",
]
