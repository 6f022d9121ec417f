"""Navigation for the node: ~/query_goal, ~/objects, and Nav2 costmap filter masks on latched topics.

Thin wiring around ``radseg_core.navigation``: parameters in, messages out, the map lock around every
map access. Masks are recomputed at ``mask_publish_rate`` and published only when something they depend
on changed (the map, the query lists, the thresholds, the frame), so Nav2 is not made to reload an
identical mask every second. Topics are transient local + reliable, as Nav2's filters subscribe
(``nav2::qos::LatchedSubscriptionQoS``): a costmap started later still gets the current mask and info.
"""

from __future__ import annotations

import array
import math
from typing import TYPE_CHECKING

import numpy as np
from geometry_msgs.msg import Point, PoseStamped, Vector3
from nav_msgs.msg import OccupancyGrid
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from radseg_core.navigation import (
    KEEPOUT_FILTER,
    SPEED_FILTER_PERCENT,
    ColumnGrid,
    NavSettings,
    goal_for,
    masks_for,
    objects_for,
)
from radseg_core.navigation.goals import BAD_REQUEST, NO_ROBOT_POSE, GoalAnswer, refusal
from radseg_core.navigation.masks import FilterMask
from radseg_core.navigation.standing import Body
from radseg_core.transforms import TransformError
from radseg_ros.srv import ListObjects, QueryGoal
from radseg_ros.visualization import object_markers

try:  # nav2_msgs ships with Nav2; pip-only installs build interfaces/nav2_msgs (scripts/setup_env.sh)
    from nav2_msgs.msg import CostmapFilterInfo  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the install
    CostmapFilterInfo = None

if TYPE_CHECKING:
    from radseg_ros.node import RadsegNode
    from radseg_ros.params import NodeParams

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
MASK_KINDS = ("keepout", "speed")


def nav_settings(p: NodeParams) -> NavSettings:
    return NavSettings(body=Body(floor_z=p.floor_z, step_height=p.step_height, height=p.robot_height,
                                 radius=p.robot_radius),
                       standoff=p.goal_standoff, speed_limit_percent=p.speed_limit_percent,
                       objects_min_voxels=p.objects_min_voxels)


def occupancy_grid(mask: FilterMask, header: Header, floor_z: float) -> OccupancyGrid:
    """The mask as Nav2 reads it: cell (u, v) at data[v * width + u], origin the corner of cell (0, 0)."""
    msg = OccupancyGrid(header=header)
    g = mask.grid
    msg.info.map_load_time = header.stamp
    msg.info.resolution = float(g.voxel_size)
    msg.info.width, msg.info.height = int(g.width), int(g.height)
    msg.info.origin.position.x, msg.info.origin.position.y = (float(c) for c in g.origin)
    msg.info.origin.position.z = float(floor_z)
    msg.info.origin.orientation.w = 1.0
    data = array.array("b")
    data.frombytes(mask.data.astype("int8").tobytes())
    msg.data = data
    return msg


class Navigation:
    """Services and publishers of the navigation interface, owned by the node."""

    def __init__(self, node: RadsegNode) -> None:
        self.node = node
        self.pub_mask = {k: node.create_publisher(OccupancyGrid, f"~/{k}_mask", LATCHED) for k in MASK_KINDS}
        self.pub_info = ({k: node.create_publisher(CostmapFilterInfo, f"~/{k}_filter_info", LATCHED)
                          for k in MASK_KINDS} if CostmapFilterInfo is not None else {})
        self.pub_objects = node.create_publisher(MarkerArray, "~/object_markers", LATCHED)
        node.create_service(QueryGoal, "~/query_goal", self._on_goal)
        node.create_service(ListObjects, "~/objects", self._on_objects)
        self._state: tuple | None = None  # what the published masks were computed from
        self._active: set[str] = set()  # kinds with a non-empty mask out there
        self._info_sent: dict[str, tuple] = {}
        if node.p.mask_publish_rate > 0:
            node.create_timer(1.0 / node.p.mask_publish_rate, self.publish_masks)

    def _header(self) -> Header:
        return Header(stamp=self.node.get_clock().now().to_msg(), frame_id=self.node.p.map_frame)

    # ----------------------------------------------------------------- masks
    def publish_masks(self) -> None:
        """Recompute and publish the masks when anything they depend on changed."""
        node, p = self.node, self.node.p
        lists = {"keepout": list(p.keepout_queries), "speed": list(p.speed_queries)}
        settings = nav_settings(p)
        with node.map_lock:
            vmap = node.mapper.map
            state = (id(vmap), vmap.lineage, vmap.generation, vmap.frames_integrated, len(vmap), p.map_frame,
                     tuple(lists["keepout"]), tuple(lists["speed"]), settings, p.query_threshold)
            if state == self._state:
                return
            self._state = state
            if not (lists["keepout"] or lists["speed"] or self._active):
                return
            try:
                masks = masks_for(node.mapper, lists["keepout"], lists["speed"], settings)
            except ValueError as exc:  # e.g. texts that are not classes of a probabilities map
                node.get_logger().warning(f"costmap filter masks not published: {exc}", throttle_duration_sec=10.0)
                return
        header = self._header()
        for kind in MASK_KINDS:
            if kind in masks:
                self._publish_info(kind, masks[kind], header)
                self.pub_mask[kind].publish(occupancy_grid(masks[kind], header, p.floor_z))
                self._active.add(kind)
            elif kind in self._active:  # turned off: an empty mask makes Nav2's filter a no-op
                empty = FilterMask(ColumnGrid(node.mapper.map.voxel_size, 0.0, 0, 0, 0, 0), np.zeros((0, 0), np.int8),
                                   KEEPOUT_FILTER if kind == "keepout" else SPEED_FILTER_PERCENT)
                self.pub_mask[kind].publish(occupancy_grid(empty, header, p.floor_z))
                self._active.discard(kind)

    def _publish_info(self, kind: str, mask: FilterMask, header: Header) -> None:
        if not self.pub_info:
            self.node.get_logger().warning(
                "nav2_msgs is not installed: masks are published without their CostmapFilterInfo (install "
                "ros-$ROS_DISTRO-nav2-msgs, or run scripts/setup_env.sh for pip installs)", once=True)
            return
        topic = self.pub_mask[kind].topic_name
        key = (mask.filter_type, topic, mask.base, mask.multiplier, header.frame_id)
        if self._info_sent.get(kind) == key:  # a new info makes Nav2 re-subscribe to the mask: only on change
            return
        self.pub_info[kind].publish(CostmapFilterInfo(header=header, type=mask.filter_type, filter_mask_topic=topic,
                                                      base=float(mask.base), multiplier=float(mask.multiplier)))
        self._info_sent[kind] = key

    # ----------------------------------------------------------------- goals
    def _robot_xy(self, base_frame: str) -> tuple[float, float] | GoalAnswer:
        node = self.node
        map_frame = node.p.map_frame
        if node.tf_buffer is None:
            return refusal(NO_ROBOT_POSE, f"no TF listener runs (tf2_msgs missing), so the pose of '{base_frame}' "
                                          f"in '{map_frame}' is unknown")
        try:
            T = node.tf_buffer.lookup(map_frame, base_frame, 0)  # 0: the latest common time
        except TransformError as exc:
            return refusal(NO_ROBOT_POSE, f"no TF from '{map_frame}' to the robot's '{base_frame}': {exc}")
        return float(T[0, 3]), float(T[1, 3])

    def _on_goal(self, req: QueryGoal.Request, res: QueryGoal.Response) -> QueryGoal.Response:
        node, p = self.node, self.node.p
        text = req.text.strip()
        standoff = float(req.standoff) or p.goal_standoff
        if not text or len(text) > p.max_query_chars:
            ans = refusal(BAD_REQUEST, f"text must be 1..{p.max_query_chars} characters, got {len(text)}")
        elif not (standoff > 0 and math.isfinite(standoff)):
            ans = refusal(BAD_REQUEST, f"standoff must be a positive distance in metres (0 = goal_standoff), "
                                       f"got {req.standoff}")
        elif len(node.mapper) == 0:
            ans = goal_for(node.mapper, text, None, nav_settings(p), standoff)  # the empty-map refusal
        else:
            robot = self._robot_xy(req.base_frame.strip() or p.robot_base_frame)
            if isinstance(robot, GoalAnswer):
                ans = robot
            else:
                with node.map_lock:
                    ans = goal_for(node.mapper, text, robot, nav_settings(p), standoff)
        res.success, res.reason, res.message = ans.goal is not None, ans.reason, ans.message
        g = ans.goal
        if g is None:
            return res
        res.goal = PoseStamped(header=self._header())
        res.goal.pose.position = Point(x=g.x, y=g.y, z=g.z)
        res.goal.pose.orientation.z, res.goal.pose.orientation.w = math.sin(g.yaw / 2), math.cos(g.yaw / 2)
        c = g.candidate
        res.centroid = Point(x=float(c.centroid[0]), y=float(c.centroid[1]), z=float(c.centroid[2]))
        res.extent = Vector3(x=float(c.extent[0]), y=float(c.extent[1]), z=float(c.extent[2]))
        res.score, res.voxels, res.distance = float(c.score), int(c.voxels), float(g.distance)
        return res

    # ----------------------------------------------------------------- objects
    def _on_objects(self, req: ListObjects.Request, res: ListObjects.Response) -> ListObjects.Response:
        node, p = self.node, self.node.p
        vocabulary = [v.strip() for v in req.vocabulary]
        if len(vocabulary) > p.max_queries or any(not v or len(v) > p.max_query_chars for v in vocabulary):
            res.success = False
            res.message = (f"vocabulary must hold at most max_queries={p.max_queries} non-empty texts of at most "
                           f"max_query_chars={p.max_query_chars} characters")
            return res
        try:
            with node.map_lock:
                objects = objects_for(node.mapper, vocabulary or None, nav_settings(p))
        except ValueError as exc:
            res.success, res.message = False, str(exc)
            return res
        for o in objects:
            res.ids.append(o.id)
            res.labels.append(o.label)
            res.scores.append(o.score)
            res.centroids.append(Point(x=float(o.centroid[0]), y=float(o.centroid[1]), z=float(o.centroid[2])))
            res.extents.append(Vector3(x=float(o.extent[0]), y=float(o.extent[1]), z=float(o.extent[2])))
            res.voxels.append(o.voxels)
        names = vocabulary or list(p.classes)
        res.success, res.message = True, f"{len(objects)} objects of {len(names)} names"
        self.pub_objects.publish(object_markers(objects, names, self._header()))
        return res
