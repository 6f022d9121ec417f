"""Navigation over real DDS: an external client asks ~/query_goal and ~/objects and receives the Nav2 masks.

The node runs in probabilities mode with the synthetic room's classes and loads the room mapped from its
true labels (one-hot probabilities: what a perfect encoder would give; random weights are not semantic).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from radseg_core.map_io import load_map, save_map
from radseg_core.navigation.scenes import ROOM_CLASSES, room, room_map, walled_in_furniture
from radseg_ros.srv import ListObjects, MapFile, QueryGoal

tf2_msgs = pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is built by scripts/setup_env.sh")
nav2_msgs = pytest.importorskip("nav2_msgs.msg", reason="nav2_msgs is built by scripts/setup_env.sh")

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
ROBOT = (2.5, 2.0)
BAND = (-0.1, 1.5)  # floor_z - step_height .. floor_z + robot_height
S = 0.05


class Latest:
    """The newest message of a latched topic, as Nav2's filters subscribe to it."""

    def __init__(self, client, msg_type, topic: str) -> None:
        self.msgs: list = []
        self.client = client
        self.sub = client.node.create_subscription(msg_type, topic, self.msgs.append, LATCHED)

    def wait(self, ok=lambda m: True, timeout: float = 60.0):
        end = time.monotonic() + timeout
        while True:
            hits = [m for m in self.msgs if ok(m)]
            if hits:
                return hits[-1]
            if time.monotonic() > end:
                raise TimeoutError(f"no matching message on {self.sub.topic_name} ({len(self.msgs)} others)")
            self.client.spin_for(0.1)


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nav_maps")
    vm = room_map()
    save_map(vm, folder / "room.rsmap")
    save_map(room_map(room(boxes=walled_in_furniture())), folder / "walled.rsmap")
    return folder


@pytest.fixture(scope="module")
def nav(tmp_path_factory, client, maps):
    from harness import NodeProcess

    workdir = tmp_path_factory.mktemp("nav_node")
    (workdir / "maps").mkdir()
    for f in maps.iterdir():
        (workdir / "maps" / f.name).write_bytes(f.read_bytes())
    proc = NodeProcess({"model": "random-tiny", "device": "cpu", "mode": "probabilities",
                        "classes": list(ROOM_CLASSES), "map_directory": str(workdir / "maps"),
                        "text_cache_dir": str(workdir / "text_cache"), "cloud_publish_rate": 0.0,
                        "keepout_queries": ["bed"], "speed_queries": ["table", "chair"], "speed_limit_percent": 40,
                        "mask_publish_rate": 5.0, "save_on_shutdown": False}, workdir)
    subs = {k: Latest(client, t, f"/radseg/{k}") for k, t in (
        ("keepout_mask", OccupancyGrid), ("speed_mask", OccupancyGrid), ("object_markers", MarkerArray),
        ("keepout_filter_info", nav2_msgs.CostmapFilterInfo), ("speed_filter_info", nav2_msgs.CostmapFilterInfo))}
    yield proc, subs
    print(f"--- node log (exit {proc.stop()}) ---\n{proc.log()}")


def call(client, proc, srv, name, req):
    return client.call(srv, f"/radseg/{name}", req, proc=proc)


def goal(client, proc, text, base_frame="", standoff=0.0):
    return call(client, proc, QueryGoal, "query_goal", QueryGoal.Request(text=text, base_frame=base_frame,
                                                                          standoff=standoff))


def expected_cells(vm, names, value, other):
    """Plain reference: per voxel column, the mask value from the voxels whose centre z is in the band."""
    ijk, vals = vm.voxel_indices().numpy(), vm.values().numpy()
    cols = [ROOM_CLASSES.index(n) for n in names]
    lo = ijk[:, :2].min(axis=0)
    w, h = ijk[:, :2].max(axis=0) - lo + 1
    ref = np.full((h, w), other, np.int8)
    for (i, j, k), p in zip(ijk.tolist(), vals[:, cols].max(axis=1).tolist(), strict=True):
        if BAND[0] <= (k + 0.5) * S <= BAND[1] and p >= 0.5:
            ref[j - lo[1], i - lo[0]] = value
    return ref, lo


def check_mask(msg, vm, names, value, other):
    ref, lo = expected_cells(vm, names, value, other)
    assert msg.header.frame_id == "map"
    assert (msg.info.width, msg.info.height) == (ref.shape[1], ref.shape[0])
    assert msg.info.resolution == pytest.approx(S)
    # aligned: the origin is the outer corner of the lowest voxel column, so cell (u, v) is column lo + (u, v)
    assert (msg.info.origin.position.x, msg.info.origin.position.y) == pytest.approx((lo[0] * S, lo[1] * S))
    got = np.asarray(msg.data, dtype=np.int8).reshape(msg.info.height, msg.info.width)
    assert np.array_equal(got, ref)
    assert (got == value).sum() > 20


def test_masks_goal_and_objects_over_dds(client, nav, maps):
    proc, subs = nav
    vm = load_map(maps / "room.rsmap")
    # empty map first: the masks exist and cover nothing (0 x 0)
    empty = subs["keepout_mask"].wait()
    assert (empty.info.width, empty.info.height) == (0, 0) and len(empty.data) == 0
    res = call(client, proc, MapFile, "load_map", MapFile.Request(path="room.rsmap"))
    assert res.success, res.message

    keepout = subs["keepout_mask"].wait(lambda m: m.info.width > 0)
    check_mask(keepout, vm, ["bed"], 100, -1)
    speed = subs["speed_mask"].wait(lambda m: m.info.width > 0)
    check_mask(speed, vm, ["table", "chair"], 40, 0)
    for kind, ftype in (("keepout", 0), ("speed", 1)):
        info = subs[f"{kind}_filter_info"].wait()
        assert (info.type, info.filter_mask_topic, info.base, info.multiplier) == (ftype, f"/radseg/{kind}_mask",
                                                                                   0.0, 1.0)
        assert info.header.frame_id == "map"

    # no TF for the robot yet: refused with the reason
    res = goal(client, proc, "bed")
    assert not res.success and res.reason == "no_robot_pose" and "base_link" in res.message, res.message
    tf = client.node.create_publisher(tf2_msgs.TFMessage, "/tf_static", LATCHED)
    ts = TransformStamped(header=Header(stamp=Time(sec=0), frame_id="map"), child_frame_id="base_link")
    ts.transform.translation.x, ts.transform.translation.y = ROBOT
    ts.transform.rotation.w = 1.0
    tf.publish(tf2_msgs.TFMessage(transforms=[ts]))
    deadline = time.monotonic() + 30.0
    while (res := goal(client, proc, "bed")).reason == "no_robot_pose" and time.monotonic() < deadline:
        client.spin_for(0.5)
    assert res.success, res.message
    g = res.goal
    assert g.header.frame_id == "map"
    x, y = g.pose.position.x, g.pose.position.y
    yaw = 2 * math.atan2(g.pose.orientation.z, g.pose.orientation.w)
    assert abs(math.remainder(yaw - math.atan2(res.centroid.y - y, res.centroid.x - x), 2 * math.pi)) < 1e-5
    ijk, vals = vm.voxel_indices().numpy(), vm.values().numpy()
    z = (ijk[:, 2] + 0.5) * S
    bed = ijk[vals[:, ROOM_CLASSES.index("bed")] >= 0.5]
    assert abs(np.hypot(*((bed[:, :2] + 0.5) * S - [x, y]).T).min() - 0.8) <= S / 2 + 1e-4
    occupied = ijk[(z > 0.1) & (z <= 1.5), :2] * S
    gap = np.hypot(np.maximum(np.maximum(occupied[:, 0] - x, x - occupied[:, 0] - S), 0),
                   np.maximum(np.maximum(occupied[:, 1] - y, y - occupied[:, 1] - S), 0))
    assert gap.min() >= 0.3 - 1e-6
    assert res.distance == pytest.approx(math.hypot(x - ROBOT[0], y - ROBOT[1]), abs=1e-4)
    assert res.voxels > 100 and res.score == pytest.approx(1.0, abs=1e-3)
    assert goal(client, proc, "bed", standoff=1.2).success

    # refusals
    assert goal(client, proc, "bed", base_frame="no_such_frame").reason == "no_robot_pose"
    assert goal(client, proc, "ceiling").reason == "no_match"  # never seen by the camera loop
    assert goal(client, proc, "sofa").reason == "bad_request"  # not a class of this map
    assert goal(client, proc, "bed", standoff=-1.0).reason == "bad_request"

    # objects: stable ids across calls and across save/load, shown as markers
    first = call(client, proc, ListObjects, "objects", ListObjects.Request())
    assert first.success and len(first.ids) >= 6 and {"bed", "table", "cabinet"} <= set(first.labels), first.message
    markers = subs["object_markers"].wait(lambda m: len(m.markers) == 1 + 2 * len(first.ids))
    assert {m.id for m in markers.markers if m.ns == "objects"} == set(first.ids)
    again = call(client, proc, ListObjects, "objects", ListObjects.Request())
    assert list(again.ids) == list(first.ids) and list(again.voxels) == list(first.voxels)
    assert call(client, proc, MapFile, "save_map", MapFile.Request(path="with_objects.rsmap")).success
    assert call(client, proc, Trigger, "reset_map", Trigger.Request()).success
    assert call(client, proc, MapFile, "load_map", MapFile.Request(path="with_objects.rsmap")).success
    loaded = call(client, proc, ListObjects, "objects", ListObjects.Request())
    assert (list(loaded.ids), list(loaded.labels), list(loaded.voxels)) == (list(first.ids), list(first.labels),
                                                                            list(first.voxels))
    beds = call(client, proc, ListObjects, "objects", ListObjects.Request(vocabulary=["bed"]))
    assert beds.success and list(beds.labels) == ["bed"]


def test_changed_query_list_applies_live(client, nav, maps):
    proc, subs = nav
    vm = load_map(maps / "room.rsmap")
    value = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["cabinet", "door"])
    res = call(client, proc, SetParameters, "set_parameters",
               SetParameters.Request(parameters=[Parameter(name="keepout_queries", value=value)]))
    assert res.results[0].successful, res.results[0].reason
    ref, _ = expected_cells(vm, ["cabinet", "door"], 100, -1)

    def is_new(m):
        return m.info.width == ref.shape[1] and np.array_equal(
            np.asarray(m.data, np.int8).reshape(m.info.height, m.info.width), ref)

    check_mask(subs["keepout_mask"].wait(is_new), vm, ["cabinet", "door"], 100, -1)
    bad = ParameterValue(type=ParameterType.PARAMETER_INTEGER_ARRAY, integer_array_value=[3])
    res = call(client, proc, SetParameters, "set_parameters",
               SetParameters.Request(parameters=[Parameter(name="keepout_queries", value=bad)]))
    assert not res.results[0].successful and "non-empty texts" in res.results[0].reason
    # off: an empty keepout mask replaces the old one, so Nav2 lets go of it
    off = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=[])
    subs["keepout_mask"].msgs.clear()  # before the change: the mask timer may publish while the call spins
    res = call(client, proc, SetParameters, "set_parameters",
               SetParameters.Request(parameters=[Parameter(name="keepout_queries", value=off)]))
    assert res.results[0].successful, res.results[0].reason
    assert subs["keepout_mask"].wait(lambda m: m.info.width == 0).info.height == 0
    assert proc.alive(), proc.log()


def test_walled_in_and_empty_maps_are_refused(client, nav):
    proc, subs = nav
    assert call(client, proc, MapFile, "load_map", MapFile.Request(path="walled.rsmap")).success
    res = goal(client, proc, "cabinet")
    assert not res.success and res.reason == "no_free_space" and "0 reachable" in res.message, res.message
    assert goal(client, proc, "table").success
    subs["speed_mask"].msgs.clear()  # before the reset: the empty mask may arrive while the next calls spin
    assert call(client, proc, Trigger, "reset_map", Trigger.Request()).success
    res = goal(client, proc, "cabinet")
    assert not res.success and res.reason == "empty_map", res.message
    assert subs["speed_mask"].wait(lambda m: m.info.width == 0).info.height == 0  # the map emptied: so did the mask
    objs = call(client, proc, ListObjects, "objects", ListObjects.Request())
    assert objs.success and list(objs.ids) == []
    assert proc.alive(), proc.log()


def test_costmap_filter_info_has_nav2s_type_hash():
    """Our CostmapFilterInfo is Nav2's type on the wire: the type hash rosidl computed for interfaces/nav2_msgs
    equals the one of navigation2's own nav2_msgs/msg/CostmapFilterInfo.msg (computed from that file with
    the same generator; comments do not enter the hash)."""
    import json

    from ament_index_python.packages import get_package_share_directory

    desc = Path(get_package_share_directory("nav2_msgs")) / "msg" / "CostmapFilterInfo.json"
    if not desc.is_file():
        pytest.skip("this ROS distribution installs no type descriptions (before Iron)")
    hashes = {h["type_name"]: h["hash_string"] for h in json.loads(desc.read_text())["type_hashes"]}
    assert hashes["nav2_msgs/msg/CostmapFilterInfo"] == (
        "RIHS01_61ce391bf7690f76a331c01c9d5ce8ca71e6c99273b9fb75e48380f05c6dfdc8")
