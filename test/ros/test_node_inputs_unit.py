"""Pieces of the node's input handling without DDS: diagnostics counters, camera_extrinsic, pose chain."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from radseg_core.geometry import R_BODY_OPTICAL, pose_to_matrix
from radseg_core.transforms import ConnectivityError, InvalidArgumentError, TransformBuffer, TransformError
from radseg_ros import poses
from radseg_ros.diagnostics import Counters
from radseg_ros.params import validate


class FakeClock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_counters_status_returns_to_ok_after_a_good_frame_and_keep_the_error_with_its_age():
    clock = FakeClock()
    c = Counters(clock)
    assert not c.failing() and c.last_error() == ("", None)
    c.add("received_rgb_image")
    c.add("received_depth_image", 2)
    clock.t = 1.0
    c.reject("tf_future", "no transform")
    c.reject("tf_future", "still none")
    snap = c.snapshot()
    assert snap["received"] == 3 and snap["rejected"] == 2 and snap["rejected_tf_future"] == 2
    assert c.failing()
    clock.t = 3.0
    c.good()
    assert not c.failing()
    assert c.last_error() == ("still none", 2.0)


def test_camera_extrinsic_parameter():
    assert validate("camera_extrinsic", "") is None
    assert validate("camera_extrinsic", "0.1 0 0.5 -0.5 0.5 -0.5 0.5") is None
    assert "7 numbers" in validate("camera_extrinsic", "0.1 0 0.5")
    assert "7 numbers" in validate("camera_extrinsic", "a b c d e f g")
    assert poses.parse_extrinsic("") is None
    T = poses.parse_extrinsic("0.1, 0, 0.5, -0.5, 0.5, -0.5, 0.5")
    assert np.allclose(T[:3, 3], [0.1, 0, 0.5]) and np.allclose(T[:3, :3], R_BODY_OPTICAL)
    with pytest.raises(ValueError):
        poses.parse_extrinsic("0 0 0 0 0 0 2")  # not a unit quaternion


def image(frame: str, t: float = 10.0) -> Image:
    return Image(header=Header(stamp=Time(sec=int(t), nanosec=int(round(t % 1 * 1e9))), frame_id=frame))


def cfg(**kw) -> poses.PoseInputs:
    base = dict(map_frame="map", camera_frame="", pose_is_optical=True, camera_extrinsic=None)
    return poses.PoseInputs(**(base | kw))


def odom(frame: str, child: str, p=(1.0, 2.0, 0.0), q=(0.0, 0.0, 0.0, 1.0), t: float = 10.0) -> Odometry:
    m = Odometry(header=Header(stamp=image("", t).header.stamp, frame_id=frame), child_frame_id=child)
    m.pose.pose.position.x, m.pose.pose.position.y, m.pose.pose.position.z = p
    o = m.pose.pose.orientation
    o.x, o.y, o.z, o.w = q
    return m


def test_odometry_chain_map_odom_base_camera():
    buf = TransformBuffer()
    buf.set_transform("map", "odom", 0, (10.0, 0, 0), (0, 0, 0, 1), static=True)
    buf.set_transform("base_link", "cam", 0, (0.3, 0, 0.5), (-0.5, 0.5, -0.5, 0.5), static=True)
    T = poses.optical_pose(image("cam"), odom("odom", "base_link"), cfg(), buf)
    expected = (pose_to_matrix((10, 0, 0), (0, 0, 0, 1)) @ pose_to_matrix((1, 2, 0), (0, 0, 0, 1))
                @ pose_to_matrix((0.3, 0, 0.5), (-0.5, 0.5, -0.5, 0.5)))
    assert np.allclose(T, expected)


def test_pose_refusals_name_the_missing_piece():
    with pytest.raises(ConnectivityError, match="odom"):  # pose in odom, no TF at all
        poses.optical_pose(image("cam"), odom("odom", ""), cfg(), None)
    with pytest.raises(ConnectivityError, match="base_link"):  # body frame, no extrinsic
        poses.optical_pose(image("cam"), odom("map", "base_link"), cfg(), None)
    with pytest.raises(TransformError, match="empty"):  # PoseStamped without frame_id
        poses.optical_pose(image("cam"), PoseStamped(header=Header(stamp=Time(sec=10))), cfg(), None)
    with pytest.raises(InvalidArgumentError, match="frame_id"):  # tf2: an empty id is an invalid argument
        poses.optical_pose(image(""), odom("map", ""), cfg(), None)


def test_camera_own_body_pose_gets_the_optical_rotation():
    T = poses.optical_pose(image("cam"), odom("map", ""), cfg(pose_is_optical=False), None)
    assert np.allclose(T[:3, :3], R_BODY_OPTICAL) and np.allclose(T[:3, 3], [1, 2, 0])
    T = poses.optical_pose(image("cam"), odom("map", "base"), cfg(camera_extrinsic=np.eye(4)), None)
    assert np.allclose(T, pose_to_matrix((1, 2, 0), (0, 0, 0, 1)))


def test_depth_frame_needs_tf():
    rgb, depth = image("color"), image("depth")
    assert poses.depth_extrinsic(rgb, image("color"), "", None) is None
    with pytest.raises(ConnectivityError, match="align_depth"):
        poses.depth_extrinsic(rgb, depth, "", None)
    buf = TransformBuffer()
    buf.set_transform("color", "depth", 0, (0.05, 0, 0), (0, 0, 0, 1), static=True)
    assert np.allclose(poses.depth_extrinsic(rgb, depth, "", buf)[:3, 3], [0.05, 0, 0])
    with pytest.raises(ConnectivityError, match="align_depth"):
        poses.depth_extrinsic(rgb, image("other_depth"), "", buf)


def test_input_sizing_and_sam_prompt_frame_reach_the_mapper_config():
    """Issue #23: the node offers RADSeg's official input sizing and RADSeg+'s exact prompt frame."""
    from radseg_ros.node import mapper_config
    from radseg_ros.params import SPECS, NodeParams

    defaults = {k: s.default for k, s in SPECS.items()}
    assert (defaults["input_sizing"], defaults["sam_prompt_frame"]) == ("snap16", "official")
    cfg = mapper_config(NodeParams(**{**defaults, "input_sizing": "official", "sam_prompt_frame": "exact"}))
    assert (cfg.input_sizing, cfg.sam_prompt_frame) == ("official", "exact")
    assert validate("input_sizing", "stride") is not None and validate("sam_prompt_frame", "sam") is not None
