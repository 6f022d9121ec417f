"""Test stand-in for ``tf2_ros`` (+ the ``tf2_py`` names it re-exports); see ../README.md.

API as upstream: ``Buffer(cache_time=None, node=None)`` with ``set_transform`` /
``set_transform_static(TransformStamped, authority)``, ``lookup_transform_core(target_frame,
source_frame, time)`` -> ``TransformStamped``, ``can_transform_core`` -> ``(bool, str)``,
``get_latest_common_time(target, source)`` -> rclpy ``Time``, ``clear()``; ``TransformListener(buffer,
node, *, spin_thread, qos, static_qos, tf_topic, tf_static_topic)``; the exception classes of ``tf2_py``.

Semantics are tf2's own, restated from ros2/geometry2 (not from radseg_core), structure kept:
``buffer_core.cpp`` (setTransformImpl checks and stripSlash, validateFrameId, walkToTopParent with the
parent valid at the lookup time, getLatestCommonTime, lookupTransformImpl's identity short cut),
``cache.cpp`` (TimeCache as a newest-first list: findClosest, getData without interpolation across a
parent change, insertData pruning first against the previous newest, TF_OLD_DATA, exact repeats
dropped), ``static_cache.cpp``, and ``tf2_py.cpp`` (get_latest_common_time validates, then raises the bare
TransformException). Error texts are tf2's. Quaternion test: ``Buffer.quaternion_check`` is "message"
(``| |q|^2 - 1 | < 0.01`` on the message, as Rolling since ros2/geometry2#741) or "round_trip" (Humble and
Jazzy: the test runs after a Quaternion -> Matrix3x3 -> Quaternion round trip, so every finite non-zero
quaternion passes); either way the stored rotation is the normalised one.
"""

from __future__ import annotations

import math

from geometry_msgs.msg import TransformStamped
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile
from rclpy.time import Time
from tf2_msgs.msg import TFMessage

MAX_GRAPH_DEPTH = 1000


class TransformException(Exception):
    pass


class ConnectivityException(TransformException):
    pass


class LookupException(TransformException):
    pass


class ExtrapolationException(TransformException):
    pass


class InvalidArgumentException(TransformException):
    pass


class TimeoutException(TransformException):
    pass


# -- quaternion algebra on (x, y, z, w) tuples, as tf2::Quaternion ---------------------------------------
def _qmul(a, b):
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz)


def _qinv(q):
    return (-q[0], -q[1], -q[2], q[3])


def _rot(q, v):  # tf2 quatRotate
    x, y, z, _ = _qmul(_qmul(q, (v[0], v[1], v[2], 0.0)), _qinv(q))
    return (x, y, z)


def _add(a, b):
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _slerp(a, b, r):  # tf2 Quaternion::slerp
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a) * sum(x * x for x in b))
    theta = math.acos(max(-1.0, min(1.0, abs(dot) / norm)))
    if theta == 0.0:
        return a
    d = 1.0 / math.sin(theta)
    s0, s1 = math.sin((1.0 - r) * theta), math.sin(r * theta)
    sign = -1.0 if dot < 0 else 1.0
    return tuple((x * s0 + sign * y * s1) * d for x, y in zip(a, b, strict=True))


def _show(ns: int) -> str:
    return f"{ns / 1e9:.6f}"


# -- caches ----------------------------------------------------------------------------------------------
class _Storage:
    """tf2 TransformStorage."""

    def __init__(self, stamp: int, parent: str, translation: tuple, rotation: tuple) -> None:
        self.stamp, self.parent, self.translation, self.rotation = stamp, parent, translation, rotation

    def __eq__(self, other) -> bool:
        return (self.stamp, self.parent, self.translation, self.rotation) == \
            (other.stamp, other.parent, other.translation, other.rotation)


class _TimeCache:
    def __init__(self, max_storage_ns: int) -> None:
        self.max_storage_ns = max_storage_ns
        self.storage: list[_Storage] = []  # newest first, as tf2's std::list

    def latest(self) -> int:
        return self.storage[0].stamp if self.storage else 0

    def latest_time_and_parent(self) -> tuple[int, str | None]:
        return (self.storage[0].stamp, self.storage[0].parent) if self.storage else (0, None)

    def insert(self, new: _Storage) -> bool:
        latest = self.latest()
        while self.storage and self.storage[-1].stamp + self.max_storage_ns < latest:  # pruneList
            self.storage.pop()
        if self.storage and new.stamp < latest - self.max_storage_ns:
            return False
        pos = next((i for i, s in enumerate(self.storage) if s.stamp <= new.stamp), len(self.storage))
        same = pos
        while same < len(self.storage) and self.storage[same].stamp == new.stamp:
            if self.storage[same] == new:
                return True
            same += 1
        self.storage.insert(pos, new)
        return True

    def clear(self) -> None:
        self.storage.clear()

    def get_data(self, t: int) -> tuple[_Storage | None, str]:
        """findClosest + getData: (data, "") or (None, error text)."""
        st = self.storage
        if not st:
            return None, (f"Lookup would require extrapolation at time {_show(t)}, but only time 0.000000 is in "
                          "the buffer")
        if t == 0:
            return st[0], ""
        if len(st) == 1:
            if st[0].stamp == t:
                return st[0], ""
            return None, (f"Lookup would require extrapolation at time {_show(t)}, but only time "
                          f"{_show(st[0].stamp)} is in the buffer")
        latest, earliest = st[0].stamp, st[-1].stamp
        if t == latest:
            return st[0], ""
        if t == earliest:
            return st[-1], ""
        if t > latest:
            return None, (f"Lookup would require extrapolation into the future.  Requested time {_show(t)} but "
                          f"the latest data is at time {_show(latest)}")
        if t < earliest:
            return None, (f"Lookup would require extrapolation into the past.  Requested time {_show(t)} but "
                          f"the earliest data is at time {_show(earliest)}")
        i = next(i for i, s in enumerate(st) if s.stamp <= t)
        one, two = st[i], st[i - 1]  # older, newer
        if one.parent != two.parent:
            return one, ""
        r = (t - one.stamp) / (two.stamp - one.stamp)
        tr = tuple(a + r * (b - a) for a, b in zip(one.translation, two.translation, strict=True))
        return _Storage(one.stamp, one.parent, tr, _slerp(one.rotation, two.rotation, r)), ""


class _StaticCache:
    def __init__(self, data: _Storage) -> None:
        self.data = data

    def latest(self) -> int:
        return 0

    def latest_time_and_parent(self) -> tuple[int, str]:
        return 0, self.data.parent

    def get_data(self, t: int) -> tuple[_Storage, str]:
        return self.data, ""

    def clear(self) -> None:
        pass


# -- the buffer ------------------------------------------------------------------------------------------
class Buffer:
    quaternion_check = "message"

    def __init__(self, cache_time: Duration | None = None, node=None) -> None:
        self.cache_ns = (cache_time or Duration(seconds=10.0)).nanoseconds
        self.node = node
        self.frames: dict[str, _TimeCache | _StaticCache | None] = {}
        self.cleared = 0
        self.ignored: list[str] = []  # what tf2 would log as an error

    def set_transform(self, transform: TransformStamped, authority: str) -> bool:
        return self._set(transform, authority, False)

    def set_transform_static(self, transform: TransformStamped, authority: str) -> bool:
        return self._set(transform, authority, True)

    def _set(self, ts: TransformStamped, authority: str, is_static: bool) -> bool:
        tr, q = ts.transform.translation, ts.transform.rotation
        translation, rotation = (tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w)
        stamp = Time.from_msg(ts.header.stamp).nanoseconds
        parent, child = ts.header.frame_id, ts.child_frame_id
        parent, child = parent[1:] if parent.startswith("/") else parent, child[1:] if child.startswith("/") else child
        errors = []
        if child == parent:
            errors.append("TF_SELF_TRANSFORM")
        if not child:
            errors.append("TF_NO_CHILD_FRAME_ID")
        if not parent:
            errors.append("TF_NO_FRAME_ID")
        n2 = sum(x * x for x in rotation)
        if any(math.isnan(x) for x in translation) or not math.isfinite(n2):
            errors.append("TF_NAN_INPUT")
        elif self.quaternion_check == "message" and not abs(n2 - 1.0) < 10e-3 or n2 == 0.0:
            errors.append("TF_DENORMALIZED_QUATERNION")
        if errors:
            self.ignored.append(f"{child}: {', '.join(errors)} (authority {authority})")
            return False
        n = math.sqrt(n2)
        data = _Storage(stamp, parent, translation, tuple(x / n for x in rotation))
        cache = self.frames.get(child)
        if cache is None or isinstance(cache, _TimeCache) == is_static:
            cache = self.frames[child] = _StaticCache(data) if is_static else _TimeCache(self.cache_ns)
        self.frames.setdefault(parent, None)
        if is_static:
            cache.data = data
            return True
        if not cache.insert(data):
            self.ignored.append(f"{child}: TF_OLD_DATA (authority {authority})")
            return False
        return True

    def clear(self) -> None:
        self.cleared += 1
        for cache in self.frames.values():
            if cache is not None:
                cache.clear()

    def _validate(self, function: str, frame_id: str) -> None:
        if not frame_id:
            raise InvalidArgumentException(
                f'Invalid argument "{frame_id}" passed to {function} - in tf2 frame_ids cannot be empty')
        if frame_id.startswith("/"):
            raise InvalidArgumentException(
                f'Invalid argument "{frame_id}" passed to {function} - in tf2 frame_ids cannot start with a \'/\'')
        if frame_id not in self.frames:
            raise LookupException(f'"{frame_id}" passed to {function} does not exist. ')

    def _connectivity(self, source: str, target: str) -> str:
        return (f"Could not find a connection between '{target}' and '{source}' because they are not part of the "
                "same tree.Tf has two or more unconnected trees.")

    def _newest(self, frame: str) -> tuple[int, str] | None:
        """getLatestTimeAndParent of the frame's cache; None for a root or an empty cache (the walk stops)."""
        cache = self.frames.get(frame)
        stamp, parent = cache.latest_time_and_parent() if cache is not None else (0, None)
        return None if parent is None else (stamp, parent)

    def _latest_common_time(self, target: str, source: str) -> tuple[int | None, str, type]:
        """getLatestCommonTime: (time, "", None) or (None, error text, error class)."""
        if source == target:
            cache = self.frames.get(source)
            return (cache.latest() if cache is not None else 0), "", None
        lct: list[tuple[int, str]] = []
        frame, depth, common_time = source, 0, None
        while (newest := self._newest(frame)) is not None:
            stamp, parent = newest
            if stamp:
                common_time = stamp if common_time is None else min(common_time, stamp)
            lct.append((stamp, parent))
            frame = parent
            if frame == target:
                return common_time or 0, "", None
            depth += 1
            if depth > MAX_GRAPH_DEPTH:
                return None, "The tf tree is invalid because it contains a loop.", LookupException
        frame, depth, common_time, common_parent = target, 0, None, None
        while (newest := self._newest(frame)) is not None:
            stamp, parent = newest
            if stamp:
                common_time = stamp if common_time is None else min(common_time, stamp)
            if any(p == parent for _, p in lct):
                common_parent = parent
                break
            frame = parent
            if frame == source:
                return common_time or 0, "", None
            depth += 1
            if depth > MAX_GRAPH_DEPTH:
                return None, "The tf tree is invalid because it contains a loop.", LookupException
        if common_parent is None:
            return None, self._connectivity(source, target), ConnectivityException
        for stamp, p in lct:
            if stamp:
                common_time = stamp if common_time is None else min(common_time, stamp)
            if p == common_parent:
                break
        return common_time or 0, "", None

    def _walk(self, target: str, source: str, t: int):
        """walkToTopParent + TransformAccum: ((translation, rotation), time) or raises."""
        if t == 0:
            t, error, kind = self._latest_common_time(target, source)
            if error:
                raise kind(error)
        where = f", when looking up transform from frame [{source}] to frame [{target}]"
        src_vec, src_quat = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)
        frame, top, extrapolation, depth = source, source, "", 0
        while True:
            cache = self.frames.get(frame)
            if cache is None:
                top = frame
                break
            st, error = cache.get_data(t)
            if st is None:
                top, extrapolation = frame, error
                break
            if frame == target:
                return (src_vec, src_quat), t
            src_vec, src_quat = _add(_rot(st.rotation, src_vec), st.translation), _qmul(st.rotation, src_quat)
            top, frame = frame, st.parent
            depth += 1
            if depth > MAX_GRAPH_DEPTH:
                raise LookupException("The tf tree is invalid because it contains a loop.")
        tgt_vec, tgt_quat = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)
        frame, depth = target, 0
        while frame != top:
            cache = self.frames.get(frame)
            if cache is None:
                break
            st, error = cache.get_data(t)
            if st is None:
                raise ExtrapolationException(error + where)
            if frame == source:
                inv_q = _qinv(tgt_quat)
                return (_rot(inv_q, tuple(-v for v in tgt_vec)), inv_q), t
            tgt_vec, tgt_quat = _add(_rot(st.rotation, tgt_vec), st.translation), _qmul(st.rotation, tgt_quat)
            frame = st.parent
            depth += 1
            if depth > MAX_GRAPH_DEPTH:
                raise LookupException("The tf tree is invalid because it contains a loop.")
        if frame != top:
            if extrapolation:
                raise ExtrapolationException(extrapolation + where)
            raise ConnectivityException(self._connectivity(source, target))
        inv_q = _qinv(tgt_quat)
        inv_vec = _rot(inv_q, tuple(-v for v in tgt_vec))
        return (_add(_rot(inv_q, src_vec), inv_vec), _qmul(inv_q, src_quat)), t

    def lookup_transform_core(self, target_frame: str, source_frame: str, time: Time) -> TransformStamped:
        t = time.nanoseconds
        if target_frame == source_frame:  # lookupTransformImpl: "Identity case does not need to be validated"
            cache = self.frames.get(target_frame)
            (vec, quat), t_out = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)), (cache.latest() if t == 0 and cache else t)
        else:
            self._validate("lookupTransform argument target_frame", target_frame)
            self._validate("lookupTransform argument source_frame", source_frame)
            (vec, quat), t_out = self._walk(target_frame, source_frame, t)
        n = math.sqrt(sum(x * x for x in quat))  # tf2 returns the rotation of a tf2::Transform: unit
        out = TransformStamped()
        out.header.frame_id, out.child_frame_id = target_frame, source_frame
        out.header.stamp = Time(nanoseconds=t_out).to_msg()
        out.transform.translation.x, out.transform.translation.y, out.transform.translation.z = vec
        r = out.transform.rotation
        r.x, r.y, r.z, r.w = (x / n for x in quat)
        return out

    def can_transform_core(self, target_frame: str, source_frame: str, time: Time) -> tuple[bool, str]:
        if target_frame == source_frame:
            return True, ""
        try:
            self.lookup_transform_core(target_frame, source_frame, time)
        except TransformException as exc:
            return False, str(exc)
        return True, ""

    def get_latest_common_time(self, target_frame: str, source_frame: str) -> Time:
        self._validate("get_latest_common_time", target_frame)
        self._validate("get_latest_common_time", source_frame)
        t, error, _ = self._latest_common_time(target_frame, source_frame)
        if error:
            raise TransformException(error)  # tf2_py: PyErr_SetString(tf2_exception, ...) for any error
        return Time(nanoseconds=t)


class TransformListener:
    def __init__(self, buffer: Buffer, node, *, spin_thread: bool = False, qos=None, static_qos=None,
                 tf_topic: str = "/tf", tf_static_topic: str = "/tf_static") -> None:
        qos = qos or QoSProfile(depth=100, durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
        static_qos = static_qos or QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                              history=HistoryPolicy.KEEP_LAST)
        self.buffer, self.node = buffer, node
        self.tf_sub = node.create_subscription(TFMessage, tf_topic, self.callback, qos)
        self.tf_static_sub = node.create_subscription(TFMessage, tf_static_topic, self.static_callback, static_qos)

    def callback(self, data: TFMessage) -> None:
        for transform in data.transforms:
            self.buffer.set_transform(transform, "default_authority")

    def static_callback(self, data: TFMessage) -> None:
        for transform in data.transforms:
            self.buffer.set_transform_static(transform, "default_authority")
