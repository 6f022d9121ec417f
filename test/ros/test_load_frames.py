"""load_map with a file saved in another frame, over real DDS: placed by TF, refused with both ways out
when TF cannot place it (map intact), or adopted on request (the node then maps and publishes in it)."""

from __future__ import annotations

import math
import time

import pytest
import torch
from builtin_interfaces.msg import Time
from geometry_msgs.msg import TransformStamped
from harness import FramePublisher, TopicCapture
from rcl_interfaces.srv import GetParameters
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from radseg_core.map_io import load_map, save_map
from radseg_ros.srv import MapFile

tf2_msgs = pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is built by scripts/setup_env.sh")

# map -> odom: 1 m, -2 m, 0.5 m (whole 5 cm voxels) and a quarter turn about z: an exact placement
SHIFT = (20, -40, 10)


def write_map(maps, template: str, name: str, frame: str, seed: int) -> set[tuple[int, int, int]]:
    """A map file for the running node (its own empty save as template) in ``frame``; its voxel indices."""
    vm = load_map(maps / template)
    g = torch.Generator().manual_seed(seed)
    vm.integrate_points(torch.rand(300, 3, generator=g, dtype=torch.float64) * 0.6,
                        torch.rand(300, vm.dim, generator=g), torch.randint(0, 256, (300, 3), generator=g))
    vm.metadata["frame_id"] = frame
    save_map(vm, maps / name)
    return {tuple(v) for v in vm.voxel_indices().tolist()}


def saved_indices(client, node, name: str) -> tuple[set[tuple[int, int, int]], str]:
    res = client.call(MapFile, "/radseg/save_map", MapFile.Request(path=name), proc=node)
    assert res.success, res.message
    vm = load_map(node.workdir / "maps" / name)
    return {tuple(v) for v in vm.voxel_indices().tolist()}, vm.metadata["frame_id"]


def load(client, node, path: str, adopt_frame: bool = False):
    return client.call(MapFile, "/radseg/load_map", MapFile.Request(path=path, adopt_frame=adopt_frame), proc=node)


def test_load_places_refuses_or_adopts_a_map_from_another_frame(client, start_node, tmp_path):
    node = start_node(cloud_publish_rate=5.0)
    maps = tmp_path / "maps"
    assert client.call(MapFile, "/radseg/save_map", MapFile.Request(path="template.rsmap"), proc=node).success
    in_map = write_map(maps, "template.rsmap", "here.rsmap", "map", seed=1)
    in_odom = write_map(maps, "template.rsmap", "odom.rsmap", "odom", seed=2)
    write_map(maps, "template.rsmap", "site.rsmap", "site", seed=3)
    res = load(client, node, "here.rsmap")
    assert res.success and "placed" not in res.message, res.message

    # no TF between map and odom yet: refused, both frames and both ways out named, map intact
    res = load(client, node, "odom.rsmap")
    assert not res.success and "map unchanged" in res.message
    assert "'odom'" in res.message and "'map'" in res.message, res.message
    assert "adopt_frame" in res.message and "TF" in res.message, res.message
    assert res.voxels == len(in_map) and saved_indices(client, node, "after_refusal.rsmap") == (in_map, "map")

    # a static map -> odom transform places the file: every voxel lands where TF says, none merged
    tf = client.node.create_publisher(tf2_msgs.TFMessage, "/tf_static",
                                      QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    ts = TransformStamped(header=Header(stamp=Time(sec=0), frame_id="map"), child_frame_id="odom")
    ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = 1.0, -2.0, 0.5
    ts.transform.rotation.z, ts.transform.rotation.w = math.sin(math.pi / 4), math.cos(math.pi / 4)
    tf.publish(tf2_msgs.TFMessage(transforms=[ts]))
    deadline = time.monotonic() + 30.0
    while not (res := load(client, node, "odom.rsmap")).success and time.monotonic() < deadline:
        client.spin_for(0.5)  # the latched transform reaches the node's listener
    assert res.success, res.message
    assert "from frame 'odom' into 'map'" in res.message and "[1.000, -2.000, 0.500]" in res.message, res.message
    assert "exact" in res.message and res.voxels == len(in_odom), res.message
    # a quarter turn takes the centre of cell (i, j, k) to that of (-j - 1, i, k) on the floor grid
    expected = {(-j - 1 + SHIFT[0], i + SHIFT[1], k + SHIFT[2]) for i, j, k in in_odom}
    assert saved_indices(client, node, "placed.rsmap") == (expected, "map")

    # adopt_frame: the node takes the file's frame for its map, parameter and published clouds
    res = load(client, node, "site.rsmap", adopt_frame=True)
    assert res.success and "adopted its frame 'site'" in res.message, res.message
    params = client.call(GetParameters, "/radseg/get_parameters", GetParameters.Request(names=["map_frame"]))
    assert params.values[0].string_value == "site"
    clouds = TopicCapture(client, PointCloud2, "/radseg/semantic_cloud")
    assert clouds.wait(1)[-1].header.frame_id == "site"
    adopted, frame = saved_indices(client, node, "adopted.rsmap")
    assert frame == "site"

    # and keeps mapping into it: a camera posed in 'map' is placed in 'site' through TF (site -> map: +10 m x)
    up = TransformStamped(header=Header(stamp=Time(sec=0), frame_id="site"), child_frame_id="map")
    up.transform.translation.x, up.transform.rotation.w = 10.0, 1.0
    tf.publish(tf2_msgs.TFMessage(transforms=[ts, up]))
    frames = FramePublisher(client)
    frames.wait_for_node()
    before, now, i = adopted, adopted, 0
    deadline = time.monotonic() + 60.0
    while now == before and time.monotonic() < deadline:
        frames.publish_synthetic(0, stamp_s=1000.0 + 0.1 * i)
        i += 1
        client.spin_for(1.0)
        now, _ = saved_indices(client, node, "mapping.rsmap")
    new = now - before
    assert new, node.log()
    # the synthetic wall (2.5 m wide, 2 m ahead of a camera at the 'map' origin) spans x = 8.75..11.25 m in 'site'
    assert all(174 <= i <= 225 and 39 <= k <= 40 for i, _, k in new), sorted(new)[:5]
    assert node.alive(), node.log()


def test_loading_a_probabilities_map_makes_its_classes_the_nodes_and_keeps_it(client, start_node, tmp_path):
    """A probabilities map brings its classes: the ``classes`` parameter follows, so a later live parameter
    change neither fails nor carries the old classes back (which swapped in an empty map before)."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    node = start_node(mode="probabilities", classes=["wall", "red patch", "blue patch"])
    maps = tmp_path / "maps"
    assert client.call(MapFile, "/radseg/save_map", MapFile.Request(path="template.rsmap"), proc=node).success
    vm = load_map(maps / "template.rsmap")
    g = torch.Generator().manual_seed(4)
    vm.integrate_points(torch.rand(200, 3, generator=g, dtype=torch.float64),
                        torch.softmax(torch.rand(200, vm.dim, generator=g), dim=1))
    vm.metadata["classes"] = ["floor", "sofa", "lamp"]
    save_map(vm, maps / "sofa.rsmap")
    res = load(client, node, "sofa.rsmap")
    assert res.success and "['floor', 'sofa', 'lamp']" in res.message, res.message

    def classes():
        req = GetParameters.Request(names=["classes"])
        return list(client.call(GetParameters, "/radseg/get_parameters", req).values[0].string_array_value)

    def set_param(name, value):
        req = SetParameters.Request(parameters=[Parameter(name=name, value=value)])
        return client.call(SetParameters, "/radseg/set_parameters", req).results[0]

    assert classes() == ["floor", "sofa", "lamp"]
    res = set_param("max_hits", ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=100.0))
    assert res.successful, res.reason
    other = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["a", "b", "c"])
    res = set_param("classes", other)  # other classes for a map with voxels: refused with the reason
    assert not res.successful and "reset first" in res.reason, res.reason
    assert classes() == ["floor", "sofa", "lamp"] and node.alive(), node.log()
    saved = client.call(MapFile, "/radseg/save_map", MapFile.Request(path="after.rsmap"), proc=node)
    assert saved.success and saved.voxels == len(vm)
    after = load_map(maps / "after.rsmap")
    assert after.metadata["classes"] == ["floor", "sofa", "lamp"]
    assert torch.equal(after.values(), vm.values())
