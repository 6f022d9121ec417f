"""Test stand-in for ``tf2_ros`` (+ the ``tf2_py`` names it re-exports); see ../README.md.

API as upstream: ``Buffer(cache_time=None, node=None)`` with ``set_transform`` /
``set_transform_static(TransformStamped, authority)``, ``lookup_transform_core(target_frame,
source_frame, time)`` -> ``TransformStamped``, ``get_latest_common_time(target, source)`` -> rclpy
``Time``, ``clear()``; ``TransformListener(buffer, node, *, spin_thread, qos, static_qos, tf_topic,
tf_static_topic)``; the exception classes of ``tf2_py`` with ``buffer_core.cpp`` / ``time_cache.cpp`` texts.

Minimal semantics: a dynamic link is interpolated between the samples bracketing the stamp (linear
translation, slerp rotation, as tf2), static links hold at any time, time 0 =
latest common time, data older than the newest minus cache_time is ignored (TF_OLD_DATA), ``clear``
keeps static links. Composition uses plain quaternion algebra, independent of radseg_core.
"""

from __future__ import annotations

import math

from geometry_msgs.msg import TransformStamped
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile
from rclpy.time import Time
from tf2_msgs.msg import TFMessage


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


def _qmul(a, b):
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz)


def _qinv(q):
    return (-q[0], -q[1], -q[2], q[3])


def _rot(q, v):
    x, y, z, _ = _qmul(_qmul(q, (v[0], v[1], v[2], 0.0)), _qinv(q))
    return (x, y, z)


def _compose(a, b):  # (t, q) of T_a @ T_b
    r = _rot(a[1], b[0])
    return ((a[0][0] + r[0], a[0][1] + r[1], a[0][2] + r[2]), _qmul(a[1], b[1]))


def _inverse(a):
    qi = _qinv(a[1])
    t = _rot(qi, a[0])
    return ((-t[0], -t[1], -t[2]), qi)


def _slerp(a, b, r):
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    if dot < 0:  # shorter arc
        b, dot = tuple(-x for x in b), -dot
    if dot > 0.9995:
        q = tuple(x + r * (y - x) for x, y in zip(a, b, strict=True))
    else:
        theta = math.acos(dot)
        wa, wb = math.sin((1 - r) * theta) / math.sin(theta), math.sin(r * theta) / math.sin(theta)
        q = tuple(wa * x + wb * y for x, y in zip(a, b, strict=True))
    n = math.sqrt(sum(x * x for x in q))
    return tuple(x / n for x in q)


IDENTITY = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))


class Buffer:
    def __init__(self, cache_time: Duration | None = None, node=None) -> None:
        self.cache_ns = (cache_time or Duration(seconds=10.0)).nanoseconds
        self.node = node
        self._links: dict[str, tuple[str, bool, dict[int, tuple]]] = {}  # child -> (parent, static, samples)
        self.cleared = 0

    def set_transform(self, transform: TransformStamped, authority: str) -> bool:
        return self._set(transform, False)

    def set_transform_static(self, transform: TransformStamped, authority: str) -> bool:
        return self._set(transform, True)

    def _set(self, ts: TransformStamped, static: bool) -> bool:
        t, q = ts.transform.translation, ts.transform.rotation
        stamp = Time.from_msg(ts.header.stamp).nanoseconds
        child = ts.child_frame_id.lstrip("/")
        _, _, samples = self._links.get(child, ("", static, {}))
        if not static and samples and stamp < max(samples) - self.cache_ns:
            return False  # TF_OLD_DATA
        if static:
            samples = {}
        samples[stamp] = ((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
        self._links[child] = (ts.header.frame_id.lstrip("/"), static, samples)
        return True

    def clear(self) -> None:
        self.cleared += 1
        for _parent, static, samples in self._links.values():
            if not static:
                samples.clear()

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._links:
            chain.append(self._links[chain[-1]][0])
        return chain

    def _path(self, target: str, source: str) -> tuple[list[str], list[str]]:
        for name, arg in ((target, "target_frame"), (source, "source_frame")):
            if not name:
                raise InvalidArgumentException(
                    f"Invalid argument passed to lookupTransform argument {arg} in tf2 frame_ids cannot be empty")
            known = set(self._links) | {p for p, _, _ in self._links.values()}
            if name not in known:
                raise LookupException(f'"{name}" passed to lookupTransform argument {arg} does not exist. ')
        up_s, up_t = self._chain(source), self._chain(target)
        common = next((f for f in up_s if f in up_t), None)
        if common is None:
            raise ConnectivityException(
                f"Could not find a connection between '{target}' and '{source}' because they are not part of "
                "the same tree.Tf has two or more unconnected trees.")
        return up_s[: up_s.index(common)], up_t[: up_t.index(common)]

    def _latest(self, links: list[str]) -> int:
        dynamic = [self._links[c][2] for c in links if not self._links[c][1]]
        if any(not s for s in dynamic):
            raise LookupException("no data")
        return min((max(s) for s in dynamic), default=0)

    def get_latest_common_time(self, target_frame: str, source_frame: str) -> Time:
        up_s, up_t = self._path(target_frame.lstrip("/"), source_frame.lstrip("/"))
        return Time(nanoseconds=self._latest(up_s + up_t))

    def _sample(self, child: str, t: int, source: str, target: str) -> tuple:
        parent, static, samples = self._links[child]
        if static:
            return next(iter(samples.values()))
        if t in samples:
            return samples[t]
        where = f", when looking up transform from frame [{source}] to frame [{target}]"
        if len(samples) == 1:
            (only,) = samples
            raise ExtrapolationException(f"Lookup would require extrapolation at time {t / 1e9:.6f}, but only "
                                         f"time {only / 1e9:.6f} is in the buffer{where}")
        if t > max(samples):
            raise ExtrapolationException(f"Lookup would require extrapolation into the future.  Requested time "
                                         f"{t / 1e9:.6f} but the latest data is at time "
                                         f"{max(samples) / 1e9:.6f}{where}")
        if t < min(samples):
            raise ExtrapolationException(f"Lookup would require extrapolation into the past.  Requested time "
                                         f"{t / 1e9:.6f} but the earliest data is at time "
                                         f"{min(samples) / 1e9:.6f}{where}")
        before, after = max(x for x in samples if x < t), min(x for x in samples if x > t)
        r = (t - before) / (after - before)  # tf2: linear translation, slerp rotation
        (t0, q0), (t1, q1) = samples[before], samples[after]
        return tuple(a + r * (b - a) for a, b in zip(t0, t1, strict=True)), _slerp(q0, q1, r)

    def lookup_transform_core(self, target_frame: str, source_frame: str, time: Time) -> TransformStamped:
        target, source = target_frame.lstrip("/"), source_frame.lstrip("/")
        up_s, up_t = self._path(target, source)
        t = time.nanoseconds or self._latest(up_s + up_t)
        common_source = IDENTITY
        for child in up_s:
            common_source = _compose(self._sample(child, t, source, target), common_source)
        common_target = IDENTITY
        for child in up_t:
            common_target = _compose(self._sample(child, t, source, target), common_target)
        (x, y, z), (qx, qy, qz, qw) = _compose(_inverse(common_target), common_source)
        out = TransformStamped()
        out.header.frame_id, out.child_frame_id = target, source
        out.header.stamp = Time(nanoseconds=t).to_msg()
        out.transform.translation.x, out.transform.translation.y, out.transform.translation.z = x, y, z
        r = out.transform.rotation
        r.x, r.y, r.z, r.w = qx, qy, qz, qw
        return out


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
