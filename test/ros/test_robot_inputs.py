"""A robot as REP-105 describes it, over real DDS: odom -> base_link at 50 Hz with motion, a static
base_link -> camera optical transform (translation + rotation), a camera whose TF arrives after its
images. The map must land where the geometry says (within one voxel) for pose_source tf, odometry +
extrinsic (TF or parameter) and PoseStamped; bad inputs are refused with a reason and counted, the node
keeps running and the map stays intact."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, TransformStamped
from harness import TopicCapture, synthetic_frame
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from radseg_core.geometry import pose_to_matrix
from radseg_ros.conversions import read_cloud

tf2_msgs = pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is built by scripts/setup_env.sh")

VOXEL = 0.05
CAM = "camera_color_optical_frame"
# base_link -> optical: 0.3 m ahead, 0.1 m left, 0.5 m up; optical axes (z forward, x right, y down)
STATIC_T, STATIC_Q = (0.3, 0.1, 0.5), (-0.5, 0.5, -0.5, 0.5)
T0 = 1000.0


def stamp_msg(t: float) -> Time:
    return Time(sec=int(t), nanosec=int(round((t % 1) * 1e9)))


def base_pose(t: float) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """odom -> base_link: driving along x at 0.5 m/s while yawing at 0.3 rad/s."""
    dt = t - T0
    yaw = 0.3 * dt
    return (0.5 * dt, 0.2, 0.0), (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def expected_T(t: float) -> np.ndarray:
    p, q = base_pose(t)
    return pose_to_matrix(p, q) @ pose_to_matrix(STATIC_T, STATIC_Q)


def transform(parent: str, child: str, t: float, p, q) -> TransformStamped:
    ts = TransformStamped(header=Header(stamp=stamp_msg(t), frame_id=parent), child_frame_id=child)
    ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = map(float, p)
    r = ts.transform.rotation
    r.x, r.y, r.z, r.w = map(float, q)
    return ts


class Robot:
    """Camera driver + odometry + TF broadcasters in the test process."""

    def __init__(self, client) -> None:
        node = client.node
        self.client = client
        qos = QoSProfile(depth=20)
        self.rgb = node.create_publisher(Image, "/rgb/image", qos)
        self.depth = node.create_publisher(Image, "/depth/image", qos)
        self.info = node.create_publisher(CameraInfo, "/rgb/camera_info", qos)
        self.depth_info = node.create_publisher(CameraInfo, "/depth/camera_info", qos)
        self.odom = node.create_publisher(Odometry, "/odom", qos)
        self.pose = node.create_publisher(PoseStamped, "/pose", qos)
        self.tf = node.create_publisher(tf2_msgs.TFMessage, "/tf", QoSProfile(depth=100))
        self.tf_static = node.create_publisher(
            tf2_msgs.TFMessage, "/tf_static", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.frame = synthetic_frame(0)

    def wait_for(self, *pubs, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while any(p.get_subscription_count() == 0 for p in pubs):
            self.client.spin_for(0.1)
            if time.monotonic() > end:
                raise TimeoutError("the node did not subscribe")
        self.client.spin_for(1.0)

    def static(self, parent="base_link", child=CAM, p=STATIC_T, q=STATIC_Q) -> None:
        self.tf_static.publish(tf2_msgs.TFMessage(transforms=[transform(parent, child, 0.0, p, q)]))

    def odom_tf(self, t0: float, t1: float, rate: float = 50.0, parent="odom", child="base_link") -> None:
        """odom -> base_link samples from t0 to t1 (inclusive) at ``rate`` Hz, as a robot's base driver.

        Paced (2 ms apart, not at ``rate``, to keep tests short): an unpaced burst of 150 samples overran the
        keep-last-100 TF queues on a loaded machine and lost its oldest samples, which a robot publishing
        in real time never does."""
        n = int(round((t1 - t0) * rate))
        for k in range(n + 1):
            t = t0 + k / rate
            self.tf.publish(tf2_msgs.TFMessage(transforms=[transform(parent, child, t, *base_pose(t))]))
            time.sleep(0.002)

    def camera(self, t: float, *, frame: str = CAM, depth_frame: str | None = None, info_size=None,
               stamp: Time | None = None) -> None:
        f = self.frame
        st = stamp if stamp is not None else stamp_msg(t)
        h, w = f["rgb"].shape[:2]
        iw, ih = info_size or (w, h)
        self.info.publish(CameraInfo(header=Header(stamp=st, frame_id=frame), width=iw, height=ih,
                                     k=f["K"].ravel().tolist()))
        self.rgb.publish(Image(header=Header(stamp=st, frame_id=frame), height=h, width=w, encoding="rgb8",
                               step=w * 3, data=f["rgb"].tobytes()))
        d = f["depth_mm"]
        if depth_frame is not None:
            self.depth_info.publish(CameraInfo(header=Header(stamp=st, frame_id=depth_frame), width=w, height=h,
                                               k=f["K"].ravel().tolist()))
        self.depth.publish(Image(header=Header(stamp=st, frame_id=depth_frame if depth_frame is not None
                                                 else frame),
                                 height=h, width=w, encoding="16UC1", step=w * 2, data=d.tobytes()))

    def odometry(self, t: float, frame="odom", child="base_link") -> None:
        msg = Odometry(header=Header(stamp=stamp_msg(t), frame_id=frame), child_frame_id=child)
        p, q = base_pose(t)
        msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = p
        o = msg.pose.pose.orientation
        o.x, o.y, o.z, o.w = q
        self.odom.publish(msg)


def expected_wall(t: float, T_cam_depth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """World points of the synthetic wall (2 m in front of the camera) seen at time t: (points, normal).

    With ``T_cam_depth`` the depth comes from a second camera at that pose; only the points the colour
    camera also sees count (what registration into the colour image keeps)."""
    f = synthetic_frame(0)
    h, w = f["depth_mm"].shape
    v, u = np.mgrid[0:h, 0:w]
    K = f["K"]
    z = f["depth_mm"].astype(np.float64) / 1000.0
    pts = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z, np.ones_like(z)], -1)
    pts = pts.reshape(-1, 4)
    if T_cam_depth is not None:
        pts = pts @ T_cam_depth.T
        u_rgb = K[0, 0] * pts[:, 0] / pts[:, 2] + K[0, 2]
        v_rgb = K[1, 1] * pts[:, 1] / pts[:, 2] + K[1, 2]
        pts = pts[(u_rgb > -0.5) & (u_rgb < w - 0.5) & (v_rgb > -0.5) & (v_rgb < h - 0.5)]
    T = expected_T(t)
    world = (pts @ T.T)[:, :3]
    return world, T[:3, 2]


def assert_map_is_the_wall(cloud: PointCloud2, t: float, T_cam_depth: np.ndarray | None = None) -> None:
    cols = read_cloud(cloud)
    xyz = np.stack([cols["x"], cols["y"], cols["z"]], axis=1).astype(np.float64)
    world, normal = expected_wall(t, T_cam_depth)
    assert len(xyz) > 50
    plane = float(normal @ world[0])
    assert np.abs(xyz @ normal - plane).max() <= VOXEL  # every voxel on the wall's plane
    assert np.linalg.norm(xyz.mean(0) - world.mean(0)) <= VOXEL  # and where the wall is on it
    assert np.all(xyz.min(0) >= world.min(0) - VOXEL) and np.all(xyz.max(0) <= world.max(0) + VOXEL)


def diagnostics(capture: TopicCapture, client, **at_least) -> dict[str, str]:
    """The newest /diagnostics values once every counter in ``at_least`` reached its value."""
    end = time.monotonic() + 20.0
    while True:
        client.spin_for(0.2)
        if capture.messages:
            d = {kv.key: kv.value for kv in capture.messages[-1].status[0].values}
            if all(int(d.get(k, 0)) >= v for k, v in at_least.items()):
                return d
        if time.monotonic() > end:
            raise TimeoutError(f"counters {at_least} not reached: {d if capture.messages else 'no diagnostics'}")


def fresh_cloud(client, node, capture: TopicCapture, labels: TopicCapture, n_labels: int) -> PointCloud2:
    labels.wait(n_labels + 1)
    k = len(capture.messages)
    return capture.wait(k + 2, timeout=20)[-1]  # a cloud published after the frame was integrated


def reset(client, node) -> None:
    assert client.call(Trigger, "/radseg/reset_map", Trigger.Request(), proc=node).success


NODE = dict(crop=112, stride=96, max_depth=10.0, cloud_publish_rate=10.0, diagnostics_period=0.2,
            classes=["wall", "red patch"], tf_wait_timeout=1.0)


@pytest.fixture(scope="module")
def robot(client):
    return Robot(client)


def map_with_late_tf(client, node, robot, labels, clouds, diag) -> dict[str, str]:
    """An image stamped beyond the newest TF, whose transform arrives 0.3 s later: the frame waits for it
    and lands on the wall. Returns the diagnostics values after it was integrated."""
    robot.odom_tf(T0, T0 + 1.0)
    t = T0 + 1.237  # between two 50 Hz samples, and beyond the newest one: TF arrives after the image
    robot.camera(t)
    client.spin_for(0.3)
    robot.odom_tf(T0 + 1.02, T0 + 1.4)
    assert_map_is_the_wall(fresh_cloud(client, node, clouds, labels, 0), t)
    d = diagnostics(diag, client, integrated=1)
    assert int(d["waiting_for_tf"]) >= 1 and d["rejected"] == "0"
    return d


def test_pose_source_tf_waits_for_late_tf_and_maps_the_geometry(client, start_node, robot):
    node = start_node(pose_source="tf", map_frame="odom", time_jump_threshold=100.0, **NODE)
    robot.wait_for(robot.rgb, robot.depth, robot.info, robot.tf, robot.tf_static)
    robot.static()
    labels = TopicCapture(client, Image, "/radseg/labels")
    clouds = TopicCapture(client, PointCloud2, "/radseg/semantic_cloud")
    diag = TopicCapture(client, DiagnosticArray, "/diagnostics")
    d = map_with_late_tf(client, node, robot, labels, clouds, diag)
    status = diag.messages[-1].status[0]
    assert status.name == "/radseg: mapper" and status.level == DiagnosticStatus.OK

    # only in the past of the TF data (TF history starts later than the image): rejected at once
    n = len(labels.messages)
    robot.camera(T0 - 5.0)
    diagnostics(diag, client, rejected_tf_past=1)
    assert diag.messages[-1].status[0].level == DiagnosticStatus.WARN  # WARN until a good frame
    # transform never arrives (stamp far beyond the TF data, nothing more published): rejected, explained
    robot.camera(T0 + 30.0)
    d = diagnostics(diag, client, rejected_tf_future=1)
    assert "no transform within tf_wait_timeout" in d["last_error"]
    # disconnected tree: the camera frame hangs off another root
    robot.static(parent="other_robot", child="lonely_camera")
    robot.camera(T0 + 1.3, frame="lonely_camera")
    d = diagnostics(diag, client, rejected_tf_unavailable=1)
    assert "lonely_camera" in d["last_error"]
    # empty frame id and zero stamp: refused on arrival
    robot.camera(T0 + 1.31, frame="")
    robot.camera(0.0, stamp=Time(sec=0, nanosec=0))
    d = diagnostics(diag, client, rejected_empty_frame_id=2, rejected_zero_stamp=2)
    client.spin_for(0.5)
    assert len(labels.messages) == n and node.alive()
    # a good frame brings the status back to OK, last_error kept with its age
    t2 = T0 + 1.35
    robot.camera(t2)
    labels.wait(n + 1)
    d = diagnostics(diag, client, integrated=2)
    status = diag.messages[-1].status[0]
    assert status.level == DiagnosticStatus.OK and d["last_error"] and float(d["last_error_age_s"]) >= 0


def test_time_jump_back_resets_tf_and_keeps_mapping(client, start_node, robot):
    """A bag played with --loop: stamps restart, TF history restarts; mapping continues at once."""
    # the first frame after the restart may wait for the new run's TF burst (151 messages through one
    # executor): a generous timeout keeps a loaded CI machine from turning that wait into a rejection
    node = start_node(pose_source="tf", map_frame="odom", **{**NODE, "tf_wait_timeout": 5.0})
    robot.wait_for(robot.rgb, robot.depth, robot.info, robot.tf, robot.tf_static)
    robot.static()
    labels = TopicCapture(client, Image, "/radseg/labels")
    clouds = TopicCapture(client, PointCloud2, "/radseg/semantic_cloud")
    diag = TopicCapture(client, DiagnosticArray, "/diagnostics")
    for _ in range(2):
        robot.odom_tf(T0, T0 + 3.0)
        for t in (T0 + 0.2, T0 + 2.8):  # a 3 s bag: stamps go back 2.6 s when it restarts
            n = len(labels.messages)
            robot.camera(t)
            labels.wait(n + 1)
    d = diagnostics(diag, client, integrated=4, time_jumps_back=1, tf_time_jumps_back=1, time_jumps_forward=1)
    assert d["rejected"] == "0" and "time jumped back" in node.log() and "map kept" in node.log()
    reset(client, node)
    n = len(labels.messages)
    robot.camera(T0 + 0.2)
    assert_map_is_the_wall(fresh_cloud(client, node, clouds, labels, n), T0 + 0.2)


def test_odometry_with_extrinsic_from_tf_or_parameter(client, start_node, robot):
    node = start_node(pose_source="odometry", map_frame="odom", **NODE)
    robot.wait_for(robot.rgb, robot.depth, robot.info, robot.odom)
    robot.static()
    labels = TopicCapture(client, Image, "/radseg/labels")
    clouds = TopicCapture(client, PointCloud2, "/radseg/semantic_cloud")
    diag = TopicCapture(client, DiagnosticArray, "/diagnostics")
    t = T0 + 0.8
    robot.odometry(t)
    robot.camera(t)
    assert_map_is_the_wall(fresh_cloud(client, node, clouds, labels, 0), t)
    # the pose in another frame than the map with no TF between them: refused, map intact
    n = len(labels.messages)
    robot.odometry(t + 0.1, frame="gps_origin")
    robot.camera(t + 0.1)
    d = diagnostics(diag, client, rejected_tf_unavailable=1)
    assert "gps_origin" in d["last_error"] and len(labels.messages) == n
    # depth from another camera frame that TF does not relate: refused, never fused with the rgb K
    robot.odometry(t + 0.2)
    robot.camera(t + 0.2, depth_frame="camera_depth_optical_frame")
    d = diagnostics(diag, client, rejected_tf_unavailable=2)
    assert "camera_depth_optical_frame" in d["last_error"] and len(labels.messages) == n
    assert node.alive()


def test_odometry_with_camera_extrinsic_parameter(client, start_node, robot):
    extr = " ".join(str(v) for v in (*STATIC_T, *STATIC_Q))
    node = start_node(pose_source="odometry", map_frame="odom", camera_extrinsic=extr, **NODE)
    robot.wait_for(robot.rgb, robot.depth, robot.info, robot.odom)
    labels = TopicCapture(client, Image, "/radseg/labels")
    clouds = TopicCapture(client, PointCloud2, "/radseg/semantic_cloud")
    t = T0 + 2.1
    robot.odometry(t, child="base_footprint")  # not in TF at all: the parameter is the mounting
    robot.camera(t)
    assert_map_is_the_wall(fresh_cloud(client, node, clouds, labels, 0), t)


def test_pose_stamped_of_the_optical_frame(client, start_node, robot):
    node = start_node(pose_source="pose", map_frame="odom", **NODE)
    robot.wait_for(robot.rgb, robot.depth, robot.info, robot.pose)
    labels = TopicCapture(client, Image, "/radseg/labels")
    clouds = TopicCapture(client, PointCloud2, "/radseg/semantic_cloud")
    diag = TopicCapture(client, DiagnosticArray, "/diagnostics")
    t = T0 + 1.7
    T = expected_T(t)
    from radseg_core.transforms import TransformBuffer, seconds_to_ns  # T through our own buffer's input

    msg = PoseStamped(header=Header(stamp=stamp_msg(t), frame_id="odom"))
    p, q = base_pose(t)
    buf = TransformBuffer()
    buf.set_transform("odom", "base_link", seconds_to_ns(t), p, q)
    buf.set_transform("base_link", CAM, 0, STATIC_T, STATIC_Q, static=True)
    assert np.allclose(buf.lookup("odom", CAM, seconds_to_ns(t)), T)
    # quaternion of T's rotation (Shepperd), written out here so the test does not rely on node code
    R = T[:3, :3]
    w = math.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = math.copysign(math.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = math.copysign(math.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = math.copysign(math.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    assert np.allclose(pose_to_matrix(T[:3, 3], (x, y, z, w)), T)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = map(float, T[:3, 3])
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = x, y, z, w
    robot.pose.publish(msg)
    robot.camera(t)
    assert_map_is_the_wall(fresh_cloud(client, node, clouds, labels, 0), t)
    # the same pose labelled in frame 'map' (not the map frame 'odom', no TF): refused
    msg.header.frame_id = "map"
    msg.header.stamp = stamp_msg(t + 0.1)
    robot.pose.publish(msg)
    robot.camera(t + 0.1)
    d = diagnostics(diag, client, rejected_tf_unavailable=1)
    assert "[map]" in d["last_error"] and "odom" in d["last_error"] and node.alive()
    # a pose without frame_id: refused at once (nothing to wait for), with the reason
    msg.header.frame_id = ""
    msg.header.stamp = stamp_msg(t + 0.2)
    robot.pose.publish(msg)
    robot.camera(t + 0.2)
    d = diagnostics(diag, client, rejected_tf_invalid_frame_id=1)
    assert "frame_id is empty" in d["last_error"] and node.alive()


def test_unaligned_depth_is_registered_with_its_own_camera_info_and_tf(client, start_node, robot):
    """RealSense without align_depth: depth in its own optical frame beside the colour camera."""
    node = start_node(pose_source="odometry", map_frame="odom", **NODE)
    robot.wait_for(robot.rgb, robot.depth, robot.info, robot.odom, robot.depth_info)
    robot.static()
    # depth camera 40 cm to the colour camera's right (+x optical), same orientation: registered, the
    # colour image's left part has no depth and the map's centroid moves by ~20 cm (4 voxels)
    offset = (0.4, 0.0, 0.0)
    robot.tf_static.publish(tf2_msgs.TFMessage(transforms=[
        transform("base_link", CAM, 0.0, STATIC_T, STATIC_Q),
        transform(CAM, "camera_depth_optical_frame", 0.0, offset, (0.0, 0.0, 0.0, 1.0))]))
    labels = TopicCapture(client, Image, "/radseg/labels")
    clouds = TopicCapture(client, PointCloud2, "/radseg/semantic_cloud")
    t = T0 + 0.4
    robot.odometry(t)
    robot.camera(t, depth_frame="camera_depth_optical_frame")
    assert_map_is_the_wall(fresh_cloud(client, node, clouds, labels, 0), t, pose_to_matrix(offset, (0, 0, 0, 1)))
    assert node.alive()


def test_status_name_is_the_nodes_fully_qualified_name(client, start_node):
    start_node(namespace="/robot1", diagnostics_period=0.2, crop=112, stride=96)
    diag = TopicCapture(client, DiagnosticArray, "/diagnostics")
    diag.wait(1)
    assert diag.messages[-1].status[0].name == "/robot1/radseg: mapper"
