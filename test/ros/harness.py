"""Run the installed radseg_node in its own process and talk to it over DDS from the test process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import rclpy
import yaml
from rclpy.node import Node

NODE_NAME = "radseg"


def node_executable() -> Path:
    """The executable `ros2 run radseg_ros radseg_node` would start (found through the ament index)."""
    from ament_index_python.packages import get_package_prefix

    os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    return Path(get_package_prefix("radseg_ros")) / "lib" / "radseg_ros" / "radseg_node"


class NodeProcess:
    """The node under test, started with a parameters file and stopped with SIGINT like ros2 run."""

    def __init__(self, params: dict[str, Any], workdir: Path, namespace: str = "",
                 extra_args: list[str] | None = None) -> None:
        self.workdir = workdir
        self.log_path = workdir / "node.log"
        params_file = workdir / "params.yaml"
        key = f"/{namespace.strip('/')}/{NODE_NAME}" if namespace else NODE_NAME  # ROS matches the full name
        params_file.write_text(yaml.safe_dump({key: {"ros__parameters": params}}))
        cmd = [str(node_executable()), "--ros-args", "--params-file", str(params_file)]
        if namespace:
            cmd += ["-r", f"__ns:={namespace}"]
        cmd += extra_args or []  # more --ros-args (e.g. -r remappings, as ros2 launch passes them)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=workdir)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class Client:
    """A plain rclpy node in the test process: service calls and topic captures with timeouts."""

    def __init__(self, name: str = "radseg_test_client") -> None:
        if not rclpy.ok():
            rclpy.init()
        self.node = Node(name)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.05)

    def call(
        self, srv_type: type, name: str, request: Any, timeout: float = 60.0, proc: NodeProcess | None = None
    ) -> Any:
        """Call a service; with ``proc``, fail at once (with its log) if that process has died."""
        cli = self.node.create_client(srv_type, name)
        try:
            end = time.monotonic() + timeout
            while not cli.wait_for_service(timeout_sec=0.5):
                if proc is not None and not proc.alive():
                    raise RuntimeError(f"node exited with {proc.proc.returncode}:\n{proc.log()}")
                if time.monotonic() > end:
                    raise TimeoutError(f"service {name} did not appear within {timeout} s")
            future = cli.call_async(request)
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
            if not future.done():
                raise TimeoutError(f"service {name} did not answer within {timeout} s")
            return future.result()
        finally:
            self.node.destroy_client(cli)

    def close(self) -> None:
        self.node.destroy_node()


def synthetic_frame(i: int, width: int = 160, height: int = 120) -> dict[str, Any]:
    """A camera 2 m in front of a wall with a red and a blue patch, sliding sideways by 2 cm per frame.

    Returns rgb (H, W, 3) uint8, depth in millimetres (uint16), K, position and quaternion (x, y, z, w)
    of the optical frame in the map (identity rotation: looking along map +z).
    """
    import numpy as np

    rgb = np.full((height, width, 3), 200, np.uint8)
    rgb[height // 4 : height // 2, width // 8 : width // 3] = (220, 30, 30)
    rgb[height // 2 :, width // 2 : 7 * width // 8] = (30, 30, 220)
    depth_mm = np.full((height, width), 2000, np.uint16)
    f = 0.8 * width
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]], dtype=np.float64)
    return {"rgb": rgb, "depth_mm": depth_mm, "K": K, "position": (0.02 * i, 0.0, 0.0),
            "quaternion": (0.0, 0.0, 0.0, 1.0)}


class FramePublisher:
    """Publishes rgb / depth / camera_info / pose with one stamp, like a camera driver + odometry."""

    def __init__(self, client: Client, namespace: str = "") -> None:
        from geometry_msgs.msg import PoseStamped
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import CameraInfo, Image

        ns = namespace.rstrip("/")
        qos = QoSProfile(depth=10)
        node = client.node
        self.client = client
        self.rgb = node.create_publisher(Image, f"{ns}/rgb/image", qos)
        self.depth = node.create_publisher(Image, f"{ns}/depth/image", qos)
        self.info = node.create_publisher(CameraInfo, f"{ns}/rgb/camera_info", qos)
        self.pose = node.create_publisher(PoseStamped, f"{ns}/pose", qos)

    def wait_for_node(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        pubs = (self.rgb, self.depth, self.info, self.pose)
        while any(p.get_subscription_count() == 0 for p in pubs):
            self.client.spin_for(0.1)
            if time.monotonic() > end:
                raise TimeoutError("the node did not subscribe to the camera topics")
        # The writer sees the match before the reader does; best-effort readers drop what arrives earlier.
        self.client.spin_for(1.0)

    def publish(
        self,
        stamp_s: float,
        rgb,
        depth,
        K,
        position,
        quaternion,
        *,
        rgb_encoding: str = "rgb8",
        depth_encoding: str = "16UC1",
        send_info: bool = True,
        info_size: tuple[int, int] | None = None,
    ) -> None:
        import numpy as np
        from builtin_interfaces.msg import Time
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import Header

        stamp = Time(sec=int(stamp_s), nanosec=int(round((stamp_s % 1) * 1e9)))
        header = Header(stamp=stamp, frame_id="camera_optical_frame")
        rgb = np.ascontiguousarray(rgb)
        if send_info:  # first, as drivers do: the node needs it before the synchronised set completes
            w, h = info_size or (rgb.shape[1], rgb.shape[0])
            self.info.publish(CameraInfo(header=header, width=w, height=h, k=np.asarray(K).ravel().tolist()))
        channels = 1 if rgb.ndim == 2 else rgb.shape[2]
        self.rgb.publish(Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding=rgb_encoding,
                               step=rgb.shape[1] * channels * rgb.itemsize, data=rgb.tobytes()))
        depth = np.ascontiguousarray(depth)
        self.depth.publish(Image(header=header, height=depth.shape[0], width=depth.shape[1],
                                 encoding=depth_encoding, step=depth.shape[1] * depth.itemsize,
                                 data=depth.tobytes()))
        pose = PoseStamped(header=Header(stamp=stamp, frame_id="map"))
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = map(float, position)
        q = pose.pose.orientation
        q.x, q.y, q.z, q.w = map(float, quaternion)
        self.pose.publish(pose)

    def publish_synthetic(self, i: int, stamp_s: float | None = None, **overrides) -> None:
        f = synthetic_frame(i)
        f.update(overrides)
        self.publish(1000.0 + i * 0.1 if stamp_s is None else stamp_s, f["rgb"], f["depth_mm"], f["K"],
                     f["position"], f["quaternion"])


class TopicCapture:
    """Collects messages of one topic in the test process."""

    def __init__(self, client: Client, msg_type: type, topic: str) -> None:
        from rclpy.qos import QoSProfile

        self.messages: list[Any] = []
        self.sub = client.node.create_subscription(msg_type, topic, self.messages.append, QoSProfile(depth=50))
        self.client = client
        end = time.monotonic() + 30.0
        while self.sub.get_publisher_count() == 0:  # matched, so nothing published from now on is missed
            client.spin_for(0.05)
            if time.monotonic() > end:
                raise TimeoutError(f"no publisher on {topic}")

    def wait(self, count: int = 1, timeout: float = 30.0) -> list[Any]:
        end = time.monotonic() + timeout
        while len(self.messages) < count:
            self.client.spin_for(0.05)
            if time.monotonic() > end:
                raise TimeoutError(f"got {len(self.messages)} of {count} messages on {self.sub.topic_name}")
        return self.messages
