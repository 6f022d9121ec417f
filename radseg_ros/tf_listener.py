"""Feeds /tf and /tf_static into the ROS-free ``radseg_core.transforms.TransformBuffer``.

Why not tf2_ros: it has no PyPI wheel, so pip-only installs would lose ``pose_source:=tf``; one buffer
with tested tf2 ``BufferCore`` semantics serves the node and the bag reader alike, and the node can
``clear()`` it on a jump back in time. The topics and QoS are tf2_ros ``TransformListener``'s: /tf
reliable keep-last 100, /tf_static reliable + transient local (latched), so a static
transform published before the node started still arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from radseg_core.transforms import TransformBuffer

try:  # tf2_msgs ships with every ROS install; PyPI has no wheel of it
    from tf2_msgs.msg import TFMessage  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the install
    TFMessage = None

TF_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def tf_available() -> bool:
    return TFMessage is not None


class TfListener:
    """Subscribes /tf and /tf_static; every stored transform calls ``on_update`` (to retry waiting frames)."""

    def __init__(self, node: Any, buffer: TransformBuffer, on_update: Callable[[], None] | None = None,
                 on_error: Callable[[str], None] | None = None, jump_threshold: float = 1.0,
                 on_jump: Callable[[float], None] | None = None) -> None:
        if TFMessage is None:
            raise RuntimeError(
                "TF needs the tf2_msgs message package, which this install lacks (PyPI has no wheel): "
                "install ROS' tf2_msgs (apt: ros-$ROS_DISTRO-tf2-msgs), or use pose_source pose/odometry "
                "with a camera_extrinsic parameter")
        self.buffer = buffer
        self._on_update = on_update
        self._on_error = on_error
        self.received = 0
        self.refused = 0
        self._jump_ns = int(jump_threshold * 1e9)
        self._on_jump = on_jump
        self._newest_ns = 0
        self._subs = [
            node.create_subscription(TFMessage, "/tf", lambda m: self._store(m, False), TF_QOS),
            node.create_subscription(TFMessage, "/tf_static", lambda m: self._store(m, True), TF_STATIC_QOS),
        ]

    def _store(self, msg: Any, static: bool) -> None:
        for ts in msg.transforms:
            t, q = ts.transform.translation, ts.transform.rotation
            stamp = ts.header.stamp.sec + ts.header.stamp.nanosec * 1e-9
            if not static:
                self._check_jump(ts.header.stamp.sec * 1_000_000_000 + ts.header.stamp.nanosec)
            try:
                self.buffer.set_transform(ts.header.frame_id, ts.child_frame_id, stamp, (t.x, t.y, t.z),
                                          (q.x, q.y, q.z, q.w), static=static)
                self.received += 1
            except (ValueError, LookupError) as exc:  # bad quaternion, empty frame, loop: refuse this one
                self.refused += 1
                if self._on_error is not None:
                    self._on_error(f"transform {ts.header.frame_id} -> {ts.child_frame_id} refused: {exc}")
        if self._on_update is not None:
            self._on_update()

    def _check_jump(self, stamp_ns: int) -> None:
        """Dynamic TF far older than the newest seen (bag loop, simulator reset): drop the old history
        first, or the new samples would be pruned as too old / interpolated with the previous run."""
        if self._newest_ns and stamp_ns < self._newest_ns - self._jump_ns:
            back = (self._newest_ns - stamp_ns) / 1e9
            self.buffer.clear()
            self._newest_ns = stamp_ns
            if self._on_jump is not None:
                self._on_jump(back)
            return
        self._newest_ns = max(self._newest_ns, stamp_ns)

    def reset(self) -> None:
        self._newest_ns = 0
