"""TF for the node: ROS' own ``tf2_ros`` where installed, else the project's ``TransformBuffer``.

``tf_backend`` chooses (auto: tf2_ros when importable). Both sit behind the interface the node and
``radseg_ros.poses`` use from ``radseg_core.transforms.TransformBuffer`` (``lookup`` -> 4x4 float64
``T_target_source``, ``can_transform``, ``latest_common_time``, ``clear``; stamps are integer
nanoseconds; failures raise ``ExtrapolationError(future=...)`` / ``ConnectivityError`` /
``InvalidArgumentError`` / ``TransformError``).

Internal backend: tf2_ros has no PyPI wheel, so pip-only installs would lose ``pose_source:=tf``;
``TfListener`` feeds /tf and /tf_static into ``TransformBuffer`` (tested tf2 ``BufferCore``
semantics, also used by the bag reader). The topics and QoS are tf2_ros ``TransformListener``'s: /tf
reliable keep-last 100, /tf_static reliable + transient local (latched), so a static transform
published before the node started still arrives.

tf2_ros backend: ``tf2_ros.Buffer`` + ``tf2_ros.TransformListener`` store the transforms;
``Tf2RosBuffer`` adapts them. A ``TfListener`` with ``store=False`` stays subscribed as the retry
and time-jump signal (see ``Tf2RosBuffer``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time

from radseg_core.geometry import pose_to_matrix
from radseg_core.transforms import (
    ConnectivityError,
    ExtrapolationError,
    InvalidArgumentError,
    TransformBuffer,
    TransformError,
    require_ns,
    stamp_to_ns,
)

try:  # tf2_msgs ships with every ROS install; PyPI has no wheel of it
    from tf2_msgs.msg import TFMessage  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the install
    TFMessage = None

TF_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def tf_available() -> bool:
    return TFMessage is not None or tf2_ros_available()


def tf2_ros_available() -> bool:
    """Whether ``import tf2_ros`` works (looked up each call: tests install stand-ins)."""
    try:
        importlib.import_module("tf2_ros")
    except ImportError:
        return False
    return True


def select_tf_backend(choice: str) -> str:
    """``tf_backend`` parameter -> 'tf2_ros' or 'internal'; a forced tf2_ros that is missing is an error."""
    if choice == "internal":
        return "internal"
    if choice == "tf2_ros":
        if not tf2_ros_available():
            raise RuntimeError("tf_backend tf2_ros but tf2_ros is not importable (apt: ros-$ROS_DISTRO-tf2-ros; "
                               "source the ROS setup), or set tf_backend auto/internal")
        return "tf2_ros"
    if choice == "auto":
        return "tf2_ros" if tf2_ros_available() else "internal"
    raise ValueError(f"tf_backend must be auto, tf2_ros or internal, got {choice!r}")


_EXTRAPOLATION_AT = re.compile(r"at time ([0-9.eE+-]+), but only time ([0-9.eE+-]+)")


class Tf2RosBuffer:
    """``TransformBuffer``'s lookup interface over ``tf2_ros.Buffer`` (+ its ``TransformListener``).

    Frame ids and integer-nanosecond stamps go to tf2 unchanged, so tf2's own rules decide (a lookup
    from a frame to itself is the identity before anything reaches tf2, as ``lookupTransform`` does).
    tf2 exceptions map to ours: ``LookupException`` (unknown frame, loop) and ``ConnectivityException``
    (disconnected trees) -> ``ConnectivityError`` (the transform may still arrive, the node waits);
    ``ExtrapolationException`` -> ``ExtrapolationError`` with ``future`` read from tf2's text ("into
    the future" / "into the past" / "at time X, but only time Y"), else from ``get_latest_common_time``;
    ``InvalidArgumentException`` -> ``InvalidArgumentError``; a bare ``TransformException`` (what tf2_py's
    ``get_latest_common_time`` raises for every walk error) by its text, else ``TransformError``. A
    returned rotation is normalised; one that cannot be (zero, non-finite) is a ``TransformError``.

    Retry signal: tf2_ros offers no public per-transform callback (``Buffer._new_data_callbacks`` is
    private), so the node keeps a light /tf subscription (``TfListener(store=False)``) instead of a
    polling timer: waiting frames are retried as soon as a transform arrives, like the internal backend,
    and dynamic stamps jumping back (bag loop without sim time) clear this buffer, which tf2 would
    otherwise fill only after ``cache_time`` (it ignores data older than its newest minus the cache as
    ``TF_OLD_DATA``). tf2_ros itself clears on a ROS-clock jump back (sim time). Cost: /tf is
    deserialised twice.
    """

    backend = "tf2_ros"

    def __init__(self, node: Any, cache_time: float = 10.0) -> None:
        self._tf2 = importlib.import_module("tf2_ros")
        self.cache_time = float(cache_time)
        self.core = self._tf2.Buffer(cache_time=Duration(seconds=cache_time), node=node)
        self.listener = self._tf2.TransformListener(self.core, node)

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """``T_target_source`` (4x4 float64) at ``stamp_ns`` (integer ns); 0 = latest common time."""
        t = Time(nanoseconds=require_ns(stamp_ns))
        if target == source:
            return np.eye(4)
        try:
            ts = self.core.lookup_transform_core(target, source, t)
        except Exception as exc:  # noqa: BLE001 - tf2's exception classes live in the tf2 module
            raise self._map(exc, target, source, t) from exc
        tr, q = ts.transform.translation, ts.transform.rotation
        quat = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
        norm = float(np.linalg.norm(quat))
        try:
            if not (np.isfinite(norm) and norm > 0):
                raise ValueError(f"rotation {quat.tolist()} cannot be normalised")
            return pose_to_matrix((tr.x, tr.y, tr.z), quat / norm)
        except ValueError as exc:  # e.g. a NaN translation: a TF failure of this lookup, not a crash
            raise TransformError(f"tf2 returned an unusable transform {target} <- {source}: {exc}") from exc

    can_transform = TransformBuffer.can_transform  # the same rule, over this class's lookup

    def latest_common_time(self, target: str, source: str) -> int:
        """Newest common stamp in integer ns (tf2_py ``get_latest_common_time``)."""
        try:
            return self.core.get_latest_common_time(target, source).nanoseconds
        except Exception as exc:  # noqa: BLE001
            raise self._map(exc, target, source, Time()) from exc

    def clear(self) -> None:
        """Drop dynamic history (tf2 keeps static transforms)."""
        self.core.clear()

    def _map(self, exc: Exception, target: str, source: str, t: Time) -> Exception:
        tf2 = self._tf2
        text = str(exc)
        if isinstance(exc, tf2.ExtrapolationException):
            return ExtrapolationError(text, future=self._future(text, target, source, t))
        if isinstance(exc, (tf2.LookupException, tf2.ConnectivityException)):
            return ConnectivityError(text)
        if isinstance(exc, tf2.InvalidArgumentException):
            return InvalidArgumentError(text)
        if isinstance(exc, tf2.TransformException):  # Timeout, or the bare class tf2_py raises for walk errors
            connected = not any(k in text for k in ("Could not find a connection", "contains a loop"))
            return TransformError(text) if connected else ConnectivityError(text)
        return exc  # not a tf2 error: a bug, let it surface

    def _future(self, text: str, target: str, source: str, t: Time) -> bool:
        if "into the future" in text:
            return True
        if "into the past" in text:
            return False
        m = _EXTRAPOLATION_AT.search(text)  # a link with one sample: compare the two times
        if m:
            return float(m.group(1)) > float(m.group(2))
        try:
            return t.nanoseconds > self.core.get_latest_common_time(target, source).nanoseconds
        except Exception:  # noqa: BLE001 - no common time at all: data may still come
            return True


def make_tf_buffer(node: Any, backend: str, cache_time: float) -> TransformBuffer | Tf2RosBuffer:
    """The buffer for a ``select_tf_backend`` result."""
    if backend == "tf2_ros":
        return Tf2RosBuffer(node, cache_time)
    return TransformBuffer(cache_time=cache_time)


class TfListener:
    """Subscribes /tf and /tf_static; every message calls ``on_update`` (to retry waiting frames).

    ``store=False`` (tf2_ros backend, whose own listener stores): only the retry and jump signals.
    """

    def __init__(self, node: Any, buffer: TransformBuffer | Tf2RosBuffer,
                 on_update: Callable[[], None] | None = None,
                 on_error: Callable[[str], None] | None = None, jump_threshold: float = 1.0,
                 on_jump: Callable[[float], None] | None = None, store: bool = True) -> None:
        if TFMessage is None:
            raise RuntimeError(
                "TF needs the tf2_msgs message package, which this install lacks (PyPI has no wheel): "
                "install ROS' tf2_msgs (apt: ros-$ROS_DISTRO-tf2-msgs), or use pose_source pose/odometry "
                "with a camera_extrinsic parameter")
        self.buffer = buffer
        self._store_transforms = store
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
            stamp = stamp_to_ns(ts.header.stamp.sec, ts.header.stamp.nanosec)
            if not static:
                self._check_jump(stamp)
            if not self._store_transforms:
                self.received += 1
                continue
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
