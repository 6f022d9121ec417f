"""Every camera preset of launch/radseg.launch.py against the topics its driver really publishes.

The launch file runs on the stand-ins of test_launch_config.py; the node is then built with the
remappings it produced, passed as ``--ros-args -r from:=to`` as launch_ros passes them, and its own
subscriptions (resolved names and types) are listed per preset and pose source. Each one must be a
topic the driver documents, with the same type, or an input the preset explains leaving alone
(``launch_config.CAMERA_UNREMAPPED``), or /tf and /tf_static. The per-preset table in
docs/real_robot.md is this listing. One preset also runs as its own process, checked over the ROS graph.

Driver topic names, with where they are documented or defined:

* realsense2_camera 4.x (IntelRealSense/realsense-ros, ros2-development 1cbd81b, 2024-09), README
  "Published Topics" with the defaults ``camera_namespace:=camera camera_name:=camera``:
  /camera/camera/color/image_raw, /camera/camera/color/camera_info,
  /camera/camera/aligned_depth_to_color/image_raw, /camera/camera/aligned_depth_to_color/camera_info
  (published with ``align_depth.enable:=true``), /tf_static. No pose or odometry topic (D400).
* zed-ros2-wrapper (stereolabs) 5.1 and later: CHANGELOG 2025-10-13 ("From ~/rgb/image_rect_color to
  ~/rgb/color/rect/image"); zed_components/src/zed_camera/src/zed_camera_component_video_depth.cpp
  (initVideoDepthPublishers: ~/rgb/color/rect/image, ~/depth/depth_registered, camera_info beside each
  image by image_transport::getCameraInfoTopic); zed_camera_component_main.cpp (initPublishers: ~/pose
  PoseStamped, ~/odom Odometry); zed_wrapper/launch/zed_camera.launch.py (camera_name zed, node_name
  zed_node: prefix /zed/zed_node/).
* zed-ros2-wrapper 4.x and 5.0 (tag humble-v4.2.5, zed_camera_component.cpp): ~/rgb/image_rect_color and
  ~/depth/depth_registered through image_transport::create_camera_publisher (camera_info beside them:
  ~/rgb/camera_info, ~/depth/camera_info), ~/pose, ~/odom.
* depthai_ros_driver (luxonis/depthai-ros, humble 9132443, 2024-10; docs.luxonis.com/software/ros/
  depthai-ros/driver): launch/camera.launch.py name "oak"; src/dai_nodes/sensors/rgb.cpp and
  stereo.cpp publish "~/" + name + "/image_raw" (include/depthai_ros_driver/utils.hpp topicSuffix) with
  camera_info beside it (img_pub.cpp); stereo depth is aligned to the rgb socket by default
  (param_handlers/stereo_param_handler.cpp i_align_depth true). No pose topic.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter
from test_launch_config import load_launch_file

from radseg_ros import launch_config as lc

REPO = Path(__file__).resolve().parents[2]
IMAGE, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
POSE, ODOM, TF = "geometry_msgs/msg/PoseStamped", "nav_msgs/msg/Odometry", "tf2_msgs/msg/TFMessage"
TF_TOPICS = {"/tf": TF, "/tf_static": TF}

DRIVER_TOPICS: dict[str, dict[str, str]] = {
    "realsense": {"/camera/camera/color/image_raw": IMAGE, "/camera/camera/color/camera_info": INFO,
                  "/camera/camera/aligned_depth_to_color/image_raw": IMAGE,
                  "/camera/camera/aligned_depth_to_color/camera_info": INFO},
    "zed": {"/zed/zed_node/rgb/color/rect/image": IMAGE, "/zed/zed_node/rgb/color/rect/camera_info": INFO,
            "/zed/zed_node/depth/depth_registered": IMAGE, "/zed/zed_node/depth/camera_info": INFO,
            "/zed/zed_node/pose": POSE, "/zed/zed_node/odom": ODOM},
    "zed_legacy": {"/zed/zed_node/rgb/image_rect_color": IMAGE, "/zed/zed_node/rgb/camera_info": INFO,
                   "/zed/zed_node/depth/depth_registered": IMAGE, "/zed/zed_node/depth/camera_info": INFO,
                   "/zed/zed_node/pose": POSE, "/zed/zed_node/odom": ODOM},
    "oakd": {"/oak/rgb/image_raw": IMAGE, "/oak/rgb/camera_info": INFO, "/oak/stereo/image_raw": IMAGE,
             "/oak/stereo/camera_info": INFO},
}
INPUTS = ("rgb/image", "rgb/camera_info", "depth/image", "depth/camera_info", "pose", "odom")
POSE_INPUT = {"pose": "pose", "odometry": "odom", "tf": None}


def ros_args(remappings: list[tuple[str, str]]) -> list[str]:
    """What launch_ros' Node action puts on the node's command line for ``remappings``."""
    return ["--ros-args", *(a for src, dst in remappings for a in ("-r", f"{src}:={dst}"))]


def subscriptions(remappings: list[tuple[str, str]], pose_source: str) -> dict[str, str]:
    """Resolved topic -> type of every subscription the node makes, built with these remappings."""
    from radseg_ros.node import RadsegNode

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        node = RadsegNode(context=ctx, cli_args=ros_args(remappings), parameter_overrides=[
            Parameter("model", value="random-tiny"), Parameter("device", value="cpu"),
            Parameter("pose_source", value=pose_source)])
        subs = {s.topic_name: f"{s.msg_type.__module__.split('.')[0]}/msg/{s.msg_type.__name__}"
                for s in node.subscriptions}
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
    return subs


def node_input_of(topic: str, remappings: dict[str, str]) -> str | None:
    """The node input a resolved topic came from (relative names resolve to /name at the root)."""
    for name in INPUTS:
        if remappings.get(name, "/" + name) == topic:
            return name
    return None


def preset_table(listing: dict[str, dict[str, dict[str, str]]]) -> str:
    """Markdown: one row per preset, the resolved topic of each input (pose/odom under their pose source)."""
    head = ("| `camera:=` | rgb/image | rgb/camera_info | depth/image | depth/camera_info | pose "
            "(`pose_source: pose`) | odom (`pose_source: odometry`) |")
    rows = [head, "|" + "---|" * 7]
    for camera in lc.CAMERA_REMAPPINGS:
        remap = lc.CAMERA_REMAPPINGS[camera]
        cells = []
        for name in INPUTS:
            source = {"pose": "pose", "odom": "odometry"}.get(name, "tf")
            topic = next(t for t in listing[camera][source] if node_input_of(t, remap) == name)
            cells.append(f"`{topic}`" + ("" if name in remap else " (not remapped)"))
        rows.append(f"| {camera} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


@pytest.fixture(scope="module")
def launch_file_module():
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield load_launch_file(monkeypatch)


@pytest.fixture(scope="module")
def listing(launch_file_module):
    """camera -> pose_source -> {topic: type}, through the launch file."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for camera in lc.CAMERA_REMAPPINGS:
        _, radseg = launch_file_module([f"camera:={camera}"])
        out[camera] = {ps: subscriptions(radseg.kwargs["remappings"], ps) for ps in POSE_INPUT}
    return out


def test_every_subscription_of_every_preset_is_a_driver_topic_or_explained(listing, capsys):
    for camera, by_source in listing.items():
        remap = lc.CAMERA_REMAPPINGS[camera]
        for pose_source, subs in by_source.items():
            inputs = {node_input_of(t, remap) for t in subs} - {None}
            want_inputs = {"rgb/image", "rgb/camera_info", "depth/image", "depth/camera_info"}
            assert inputs == want_inputs | ({POSE_INPUT[pose_source]} - {None}), (camera, pose_source)
            for topic, msg_type in subs.items():
                if topic in TF_TOPICS:
                    assert msg_type == TF_TOPICS[topic]
                    continue
                name = node_input_of(topic, remap)
                if name in remap:
                    assert DRIVER_TOPICS[camera].get(topic) == msg_type, (camera, pose_source, topic, msg_type)
                else:
                    assert lc.CAMERA_UNREMAPPED[camera][name], (camera, name)  # a reason, in the docs too
    with capsys.disabled():
        print("\n" + preset_table(listing))


def test_realsense_preset_remaps_the_aligned_depth_camera_info(listing):
    """Issue #18: the realsense preset left depth/camera_info at /depth/camera_info."""
    subs = listing["realsense"]["tf"]
    assert "/camera/camera/aligned_depth_to_color/camera_info" in subs and "/depth/camera_info" not in subs


def test_presets_and_explanations_cover_every_node_input():
    for camera, remap in lc.CAMERA_REMAPPINGS.items():
        assert set(remap) | set(lc.CAMERA_UNREMAPPED[camera]) == set(INPUTS), camera
        assert not set(remap) & set(lc.CAMERA_UNREMAPPED[camera]), camera


def test_pose_topic_replaces_the_pose_of_a_preset_without_one(launch_file_module):
    _, radseg = launch_file_module(["camera:=realsense", "pose_topic:=/odometry/filtered"])
    assert subscriptions(radseg.kwargs["remappings"], "odometry")["/odometry/filtered"] == ODOM


def test_docs_show_the_listing(listing):
    text = (REPO / "docs" / "real_robot.md").read_text()
    start, end = "<!-- preset-subscriptions: test/ros/test_launch_presets.py -->", "<!-- /preset-subscriptions -->"
    assert start in text and end in text
    assert text.split(start)[1].split(end)[0].strip() == preset_table(listing)
    words = " ".join(text.split())
    for camera, reasons in lc.CAMERA_UNREMAPPED.items():
        if camera != "none" and reasons:  # the reason the preset gives is the one the docs give
            assert "driver publishes no camera pose" in words and camera in {"realsense", "oakd"}


def test_realsense_preset_in_its_own_process_over_the_ros_graph(launch_file_module, client, tmp_path):
    """The installed executable with the preset's --ros-args, as ros2 launch starts it; the ROS graph
    (what `ros2 node info /radseg` shows) lists its subscriptions."""
    from harness import NodeProcess

    _, radseg = launch_file_module(["camera:=realsense"])
    proc = NodeProcess({"model": "random-tiny", "device": "cpu", "pose_source": "tf",
                        "map_directory": str(tmp_path / "maps")}, tmp_path,
                       extra_args=ros_args(radseg.kwargs["remappings"])[1:])
    try:
        want = {"/camera/camera/color/image_raw", "/camera/camera/color/camera_info",
                "/camera/camera/aligned_depth_to_color/image_raw",
                "/camera/camera/aligned_depth_to_color/camera_info", "/tf", "/tf_static"}
        got: set[str] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and got != want:
            assert proc.alive(), proc.log()
            client.spin_for(0.2)
            try:
                got = {t for t, _ in client.node.get_subscriber_names_and_types_by_node("radseg", "/")}
            except Exception:  # noqa: BLE001 - the node is not discovered yet
                got = set()
        assert got == want, (got, proc.log())
    finally:
        proc.stop()
