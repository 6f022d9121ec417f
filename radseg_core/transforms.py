"""A ROS-free transform buffer with tf2 ``BufferCore`` semantics, plus camera-pose helpers.

Why our own: pip-only installs (and bag processing) have no ``tf2_ros``, yet robots publish poses as
TF trees (REP-105: map -> odom -> base_link -> camera_link -> camera_color_optical_frame). The
semantics follow ros2/geometry2 ``buffer_core.cpp`` / ``time_cache.cpp``:

* every child frame has one parent at a time; a lookup walks both frames up to their common parent and
  composes ``T_target_source = inv(T_common_target) @ T_common_source``;
* a dynamic link is interpolated between the two samples that bracket the stamp (linear translation,
  spherical rotation); a stamp outside its samples is an extrapolation error (into the future, where
  the data may still arrive, or into the past); an exact sample stamp needs no neighbour;
* static links (``/tf_static``) are valid at all times;
* stamp ``0.0`` means "the latest time at which every dynamic link of the chain has data" (tf2's
  latest common time; all-static chains resolve at any time);
* each dynamic link keeps ``cache_time`` seconds of history behind its newest sample; older samples are
  pruned and data arriving older than that window is ignored (tf2's ``TF_OLD_DATA``);
* ``clear()`` drops dynamic history and keeps static transforms (tf2: ``StaticCache::clearList`` is a
  no-op), which is what a node does on a jump back in time.

Stamps are stored as integer nanoseconds, like ``builtin_interfaces/Time``, so equality is exact.
``T_a_b`` maps points in frame ``b`` into frame ``a`` (see ``radseg_core.geometry``).
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

import numpy as np

from radseg_core.geometry import pose_to_matrix, quaternion_to_rotation

NS = 1_000_000_000


class TransformError(LookupError):
    """A transform is not available; ``str(exc)`` is a reason fit for a log line or a summary."""


class ExtrapolationError(TransformError):
    """The stamp lies outside a link's data: ``future`` True when after the newest sample (may still arrive)."""

    def __init__(self, message: str, *, future: bool) -> None:
        super().__init__(message)
        self.future = future


class ConnectivityError(TransformError):
    """A frame is unknown, or the two frames are not in one tree."""


def _ns(stamp: float) -> int:
    return int(round(float(stamp) * NS))


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions along the shorter arc (as tf2::slerp)."""
    d = float(np.dot(q0, q1))
    if d < 0.0:
        q1, d = -q1, -d
    if d > 0.9995:  # nearly parallel: normalised lerp avoids dividing by sin(~0)
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(min(d, 1.0))
    s = np.sin(theta)
    return (np.sin((1.0 - t) * theta) * q0 + np.sin(t * theta) * q1) / s


@dataclass(frozen=True)
class _Sample:
    stamp: int  # ns
    parent: str
    translation: np.ndarray  # (3,)
    quaternion: np.ndarray  # (4,) xyzw, unit


class _LinkCache:
    """Samples of one child frame, sorted by stamp (tf2 TimeCache), or one static sample (StaticCache)."""

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.samples: list[_Sample] = []
        self.static: _Sample | None = None
        self.last_parent: str | None = None  # kept through clear(), so the tree stays known

    def parent(self) -> str | None:
        if self.static is not None:
            return self.static.parent
        return self.samples[-1].parent if self.samples else self.last_parent

    def latest(self) -> int:
        """Newest stamp (ns); 0 for a static link (valid at all times), as tf2's latest-time semantics."""
        if self.static is not None:
            return 0
        return self.stamps[-1] if self.stamps else 0

    def insert(self, s: _Sample, cache_ns: int) -> bool:
        if self.stamps and s.stamp + cache_ns < self.stamps[-1]:
            return False  # older than the history window: tf2 ignores it (TF_OLD_DATA)
        i = bisect.bisect_left(self.stamps, s.stamp)
        if i < len(self.stamps) and self.stamps[i] == s.stamp:
            self.samples[i] = s  # same stamp republished: the newer message wins
        else:
            self.stamps.insert(i, s.stamp)
            self.samples.insert(i, s)
        cut = bisect.bisect_left(self.stamps, self.stamps[-1] - cache_ns)
        if cut:
            del self.stamps[:cut], self.samples[:cut]
        return True

    def at(self, stamp: int, child: str) -> _Sample:
        """The sample at ``stamp`` (ns), interpolated between neighbours; ExtrapolationError outside."""
        if self.static is not None:
            return self.static
        if not self.stamps:
            raise ExtrapolationError(
                f"no transform data (yet) for frame [{child}]", future=True)
        lo, hi = self.stamps[0], self.stamps[-1]
        if stamp > hi or stamp < lo:
            future = stamp > hi
            raise ExtrapolationError(
                f"Lookup would require extrapolation into the {'future' if future else 'past'}. "
                f"Requested time {stamp / NS:.9f} but the {'latest' if future else 'earliest'} data is at "
                f"time {(hi if future else lo) / NS:.9f}, when looking up transform of frame [{child}]",
                future=future)
        i = bisect.bisect_left(self.stamps, stamp)
        if self.stamps[i] == stamp:
            return self.samples[i]
        a, b = self.samples[i - 1], self.samples[i]
        if a.parent != b.parent:  # parent changed between samples: tf2 does not interpolate across it
            return a
        r = (stamp - a.stamp) / (b.stamp - a.stamp)
        return _Sample(stamp, a.parent, a.translation + r * (b.translation - a.translation),
                       _slerp(a.quaternion, b.quaternion, r))


def _matrix(s: _Sample) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quaternion_to_rotation(s.quaternion)
    T[:3, 3] = s.translation
    return T


def _check_frame(name: str, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ConnectivityError(f"{what} frame id is empty")
    return name[1:] if name.startswith("/") else name  # tf2 strips a leading slash (with a warning)


class TransformBuffer:
    """Static + dynamic transforms with history; thread-safe (ROS callbacks and the mapper share it)."""

    def __init__(self, cache_time: float = 10.0) -> None:
        if not cache_time > 0:
            raise ValueError(f"cache_time must be > 0 seconds, got {cache_time}")
        self.cache_time = float(cache_time)
        self._cache_ns = _ns(cache_time)
        self._links: dict[str, _LinkCache] = {}
        self._parents_only: set[str] = set()
        self._lock = threading.Lock()

    def set_transform(self, parent: str, child: str, stamp: float, translation, quaternion_xyzw,
                      *, static: bool = False) -> bool:
        """Add ``T_parent_child`` at ``stamp`` seconds; False when ignored as older than ``cache_time``.

        ValueError for an empty or self-referencing frame id, a non-finite translation or a non-unit
        quaternion (tf2 rejects these too).
        """
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child:
            raise ValueError(f"transform needs both frame ids, got parent {parent!r}, child {child!r}")
        if parent == child:
            raise ValueError(f"transform from frame [{child}] to itself")
        t = np.asarray(translation, dtype=np.float64).reshape(-1)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise ValueError(f"translation must be 3 finite numbers, got {t.tolist()}")
        q = np.asarray(quaternion_xyzw, dtype=np.float64).reshape(-1)
        quaternion_to_rotation(q)  # raises on a non-unit / non-finite quaternion
        q = q / np.linalg.norm(q)
        sample = _Sample(_ns(stamp), parent, t, q)
        with self._lock:
            link = self._links.setdefault(child, _LinkCache())
            link.last_parent = parent
            self._parents_only.add(parent)
            # like tf2 (Humble+), the latest message decides whether a frame is static or dynamic;
            # switching kind starts a fresh cache
            if static:
                link.static = sample
                link.stamps.clear()
                link.samples.clear()
                return True
            link.static = None
            return link.insert(sample, self._cache_ns)

    def clear(self) -> None:
        """Drop dynamic history (e.g. after a jump back in time); static transforms stay."""
        with self._lock:
            for link in self._links.values():
                link.stamps.clear()
                link.samples.clear()

    def frames(self) -> set[str]:
        with self._lock:
            return set(self._links) | self._parents_only

    def can_transform(self, target: str, source: str, stamp: float) -> bool:
        try:
            self.lookup(target, source, stamp)
        except TransformError:
            return False
        return True

    def latest_common_time(self, target: str, source: str) -> float:
        """Newest stamp (s) at which every dynamic link between the frames has data; 0.0 if all static."""
        with self._lock:
            target, source = self._validate(target, source)
            return self._common_time(*self._path(target, source)) / NS

    def lookup(self, target: str, source: str, stamp: float) -> np.ndarray:
        """``T_target_source`` (4x4 float64) at ``stamp`` seconds; 0.0 = latest common time."""
        with self._lock:
            target, source = self._validate(target, source)
            if target == source:
                return np.eye(4)
            up_src, up_tgt = self._path(target, source)
            t = _ns(stamp)
            if t == 0:
                t = self._common_time(up_src, up_tgt)
            T_common_source = np.eye(4)
            for child in up_src:
                T_common_source = _matrix(self._links[child].at(t, child)) @ T_common_source
            T_common_target = np.eye(4)
            for child in up_tgt:
                T_common_target = _matrix(self._links[child].at(t, child)) @ T_common_target
            return np.linalg.inv(T_common_target) @ T_common_source

    # -- internals (callers hold the lock) --

    def _validate(self, target: str, source: str) -> tuple[str, str]:
        target, source = _check_frame(target, "target"), _check_frame(source, "source")
        known = set(self._links) | self._parents_only
        for name, what in ((target, "target"), (source, "source")):
            if name not in known:
                raise ConnectivityError(
                    f'"{name}" passed to lookup as {what} frame does not exist (known frames: '
                    f"{', '.join(sorted(known)) or 'none'})")
        return target, source

    def _ancestors(self, frame: str) -> list[str]:
        """``frame`` and its parents up to the root (by each link's current parent)."""
        chain = [frame]
        while (link := self._links.get(chain[-1])) is not None and (p := link.parent()) is not None:
            if p in chain:
                raise ConnectivityError(f"transform tree has a loop through frame [{p}]")
            chain.append(p)
        return chain

    def _path(self, target: str, source: str) -> tuple[list[str], list[str]]:
        """Child frames whose links lead from source (then target) up to their common parent."""
        a_src, a_tgt = self._ancestors(source), self._ancestors(target)
        common = next((f for f in a_src if f in set(a_tgt)), None)
        if common is None:
            raise ConnectivityError(
                f"Could not find a connection between '{target}' and '{source}' because they are not part "
                f"of the same tree (roots [{a_tgt[-1]}] and [{a_src[-1]}])")
        return a_src[: a_src.index(common)], a_tgt[: a_tgt.index(common)]

    def _common_time(self, up_src: list[str], up_tgt: list[str]) -> int:
        times = [self._links[c].latest() for c in up_src + up_tgt]
        for c in up_src + up_tgt:
            link = self._links[c]
            if link.static is None and not link.stamps:
                raise ExtrapolationError(f"no transform data (yet) for frame [{c}]", future=True)
        dynamic = [t for t in times if t != 0]
        return min(dynamic) if dynamic else 0


def camera_pose(
    T_parent_body: np.ndarray,
    *,
    parent_frame: str,
    body_frame: str,
    camera_frame: str,
    map_frame: str,
    stamp: float,
    buffer: TransformBuffer | None = None,
    extrinsic: np.ndarray | None = None,
) -> np.ndarray:
    """``T_map_camera`` from a pose of ``body_frame`` in ``parent_frame`` (Odometry, PoseStamped, TF).

    Chains ``T_map_parent`` (TF; identity when parent is the map) @ ``T_parent_body`` (the message) @
    ``T_body_camera`` (identity when the body is the camera, else ``extrinsic`` when given, else TF at
    ``stamp``). Missing links raise ``TransformError`` naming what is missing; never silently identity.
    """
    for name, what in ((parent_frame, "pose header"), (body_frame, "pose child/body"),
                       (camera_frame, "camera"), (map_frame, "map")):
        if not name:
            raise TransformError(f"{what} frame_id is empty: set it in the message or the parameters")
    T = np.asarray(T_parent_body, dtype=np.float64)
    if parent_frame.lstrip("/") != map_frame.lstrip("/"):
        if buffer is None:
            raise ConnectivityError(
                f"pose is in frame [{parent_frame}], not the map frame [{map_frame}], and no TF is available "
                "to relate them")
        T = buffer.lookup(map_frame, parent_frame, stamp) @ T
    if body_frame.lstrip("/") != camera_frame.lstrip("/"):
        if extrinsic is not None:
            T = T @ np.asarray(extrinsic, dtype=np.float64)
        elif buffer is None:
            raise ConnectivityError(
                f"pose is of frame [{body_frame}] but the camera is [{camera_frame}]: no TF and no "
                "camera extrinsic relate them")
        else:
            T = T @ buffer.lookup(body_frame, camera_frame, stamp)
    return T


def tf_camera_pose(buffer: TransformBuffer, map_frame: str, camera_frame: str, stamp: float) -> np.ndarray:
    """``T_map_camera`` straight from TF at ``stamp`` (pose_source ``tf``)."""
    return buffer.lookup(map_frame, camera_frame, stamp)


def extrinsic(translation, quaternion_xyzw) -> np.ndarray:
    """``T_body_camera`` from a fixed mounting (e.g. a ``camera_extrinsic`` parameter)."""
    return pose_to_matrix(translation, quaternion_xyzw)
