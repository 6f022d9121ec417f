"""A ROS-free transform buffer that follows tf2's ``BufferCore`` rule for rule, plus camera-pose helpers.

Why our own: pip-only installs (and bag processing) have no ``tf2_ros``, yet robots publish poses as
TF trees (REP-105: map -> odom -> base_link -> camera_link -> camera_color_optical_frame). The rules
are those of ros2/geometry2 (Humble to Rolling) ``tf2/src/buffer_core.cpp``, ``cache.cpp`` and
``static_cache.cpp``; each is tested against tf2's semantics in ``test/core/test_transforms_tf2.py``:

* **Stamps** are integer nanoseconds, as ``builtin_interfaces/Time`` gives them (``stamp_to_ns``); a
  float stamp is refused with a ``TypeError`` (float seconds near 1.7e9 s cannot tell samples 1 ns apart).
  ``seconds_to_ns`` converts on purpose where only seconds exist.
* **Walk** (``walkToTopParent``): from the source up to its root, then from the target until it meets
  that walk, each link taken with the parent its sample has *at the lookup time*: a frame may change
  parent over time (localisation switching odom frames, an object handed to a gripper) and a lookup is
  never interpolated across a parent change (the older sample is used as is).
* **Interpolation** (``TimeCache::getData``): linear translation and tf2's slerp between the samples that
  bracket the stamp; an exact sample stamp needs no neighbour; outside the samples an extrapolation error
  (future: after the newest sample, the data may still come; past: never). A link with no samples is "no
  data" (waiting may help).
* **Time 0** means the latest common time (``getLatestCommonTime``: each link's newest sample, static
  links ignored); a link that was cleared breaks that walk, which makes a time-0 lookup through it a
  connectivity error, as in tf2.
* **History** (``TimeCache::insertData``): before inserting, samples older than ``cache_time`` behind the
  *previous* newest sample are pruned; a sample older than that window is refused (tf2's ``TF_OLD_DATA``,
  ``set_transform`` returns False). Pruning is therefore lazy: a sample only goes at the next insertion.
  An exact duplicate (same stamp, parent and values) is not stored twice; a same-stamp sample with other
  values is kept beside the first, in tf2's order.
* **Static** links (``/tf_static``) hold at all times; the latest message decides whether a child is
  static or dynamic (switching starts a fresh cache); ``clear()`` empties dynamic caches only.
* **Frame ids**: in a lookup an empty id, or one starting with '/', is an ``InvalidArgumentError``; a
  lookup from a frame to itself is the identity before any check, even for a frame never seen. On insert
  tf2 strips one leading '/'.
* **Quaternions**: accepted when ``|q|^2`` is within 0.01 of 1 (tf2's ``QUATERNION_NORMALIZATION_TOLERANCE``),
  then normalised. Deliberate differences (docs/real_robot.md): Humble/Jazzy tf2 applies that test after
  a matrix round trip that normalises any non-zero quaternion first, and stores a non-finite translation
  other than NaN; we refuse both.

``T_a_b`` maps points in frame ``b`` into frame ``a`` (see ``radseg_core.geometry``).
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass

import numpy as np

from radseg_core.geometry import pose_to_matrix, quaternion_to_rotation

NS_PER_S = 1_000_000_000
QUATERNION_NORMALIZATION_TOLERANCE = 10e-3  # on |q|^2 - 1, tf2 buffer_core.cpp
MAX_GRAPH_DEPTH = 1000  # tf2 buffer_core.h: a longer walk means the tree has a loop


class TransformError(LookupError):
    """A transform is not available; ``str(exc)`` is a reason fit for a log line or a summary."""


class ExtrapolationError(TransformError):
    """The stamp lies outside a link's data: ``future`` True when after the newest sample (may still arrive)."""

    def __init__(self, message: str, *, future: bool) -> None:
        super().__init__(message)
        self.future = future


class ConnectivityError(TransformError):
    """A frame is unknown, the two frames are not in one tree, or the tree has a loop."""


class InvalidArgumentError(TransformError):
    """An empty frame id, or one starting with '/', passed to a lookup (tf2 ``InvalidArgumentException``)."""


def stamp_to_ns(sec: int, nanosec: int) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds (exact, as tf2's ``TimePoint``)."""
    return int(sec) * NS_PER_S + int(nanosec)


def seconds_to_ns(seconds: float) -> int:
    """Float seconds -> nearest integer nanoseconds, for callers that only have seconds (datasets, tests).

    Near 1.7e9 s a float resolves about 0.24 us: stamps that differ by less arrive merged. Use
    ``stamp_to_ns`` for anything read from a message.
    """
    return int(round(float(seconds) * NS_PER_S))


def require_ns(stamp: object) -> int:
    """``stamp`` as an int, refusing floats: TF stamps are integer nanoseconds everywhere."""
    if isinstance(stamp, (bool, np.bool_)) or not isinstance(stamp, (int, np.integer)):
        raise TypeError(
            f"TF stamps are integer nanoseconds (builtin_interfaces/Time: sec * 10**9 + nanosec), got "
            f"{type(stamp).__name__} {stamp!r}: use stamp_to_ns() or seconds_to_ns()")
    return int(stamp)


def _show(ns: int) -> str:
    return f"{ns // NS_PER_S}.{ns % NS_PER_S:09d}"


def _slerp(q0: np.ndarray, q1: np.ndarray, r: float) -> np.ndarray:
    """tf2 ``Quaternion::slerp``: along the shorter arc; an angle of exactly 0 returns ``q0``."""
    dot = float(np.dot(q0, q1))
    s = math.sqrt(float(np.dot(q0, q0)) * float(np.dot(q1, q1)))
    theta = math.acos(max(-1.0, min(1.0, abs(dot) / s)))
    if theta == 0.0:
        return q0
    d = 1.0 / math.sin(theta)
    s0, s1 = math.sin((1.0 - r) * theta), math.sin(r * theta)
    return (q0 * s0 + (-q1 if dot < 0 else q1) * s1) * d


@dataclass(frozen=True, eq=False)
class _Sample:
    stamp: int  # ns
    parent: str
    translation: np.ndarray  # (3,)
    quaternion: np.ndarray  # (4,) xyzw, unit

    def same(self, other: _Sample) -> bool:
        """tf2 ``TransformStorage::operator==``: stamp, parent and values exactly equal."""
        return (self.stamp == other.stamp and self.parent == other.parent
                and np.array_equal(self.translation, other.translation)
                and np.array_equal(self.quaternion, other.quaternion))

    def matrix(self) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = quaternion_to_rotation(self.quaternion)
        T[:3, 3] = self.translation
        return T


class _TimeCache:
    """tf2 ``TimeCache``: the samples of one dynamic child frame, ascending by stamp (tf2 keeps them
    newest first; same-stamp samples sit in tf2's order: the later insertion counts as newer)."""

    static = False

    def __init__(self, max_storage_ns: int) -> None:
        self.max_ns = max_storage_ns
        self.stamps: list[int] = []
        self.samples: list[_Sample] = []

    def latest(self) -> int:
        return self.stamps[-1] if self.stamps else 0

    def latest_parent(self) -> str | None:
        return self.samples[-1].parent if self.samples else None

    def insert(self, s: _Sample) -> bool:
        latest = self.latest()
        cut = bisect.bisect_left(self.stamps, latest - self.max_ns)  # prune first, against the old newest
        if cut:
            del self.stamps[:cut], self.samples[:cut]
        if self.stamps and s.stamp < latest - self.max_ns:
            return False  # TF_OLD_DATA
        i = bisect.bisect_right(self.stamps, s.stamp)
        j = i
        while j > 0 and self.stamps[j - 1] == s.stamp:
            if self.samples[j - 1].same(s):
                return True  # exact repeat: stored once
            j -= 1
        self.stamps.insert(i, s.stamp)
        self.samples.insert(i, s)
        return True

    def clear(self) -> None:
        self.stamps.clear()
        self.samples.clear()

    def at(self, t: int) -> _Sample:
        """tf2 ``getData`` at ``t`` ns; ExtrapolationError (message without the frames) when there is none."""
        stamps = self.stamps
        if not stamps:
            raise ExtrapolationError(
                f"Lookup would require extrapolation at time {_show(t)}, but only time 0.000000000 is in "
                "the buffer: no transform data (yet) for this link", future=True)
        if t == 0:
            return self.samples[-1]
        if len(stamps) == 1:
            if stamps[0] == t:
                return self.samples[0]
            raise ExtrapolationError(
                f"Lookup would require extrapolation at time {_show(t)}, but only time {_show(stamps[0])} is "
                "in the buffer", future=t > stamps[0])
        if t == stamps[-1]:
            return self.samples[-1]
        if t == stamps[0]:
            return self.samples[0]
        if t > stamps[-1]:
            raise ExtrapolationError(
                f"Lookup would require extrapolation into the future.  Requested time {_show(t)} but the "
                f"latest data is at time {_show(stamps[-1])}", future=True)
        if t < stamps[0]:
            raise ExtrapolationError(
                f"Lookup would require extrapolation into the past.  Requested time {_show(t)} but the "
                f"earliest data is at time {_show(stamps[0])}", future=False)
        i = bisect.bisect_right(stamps, t)
        one, two = self.samples[i - 1], self.samples[i]  # older (stamp <= t), newer
        if one.parent != two.parent or one.stamp == t:
            return one  # never interpolated across a parent change
        r = (t - one.stamp) / (two.stamp - one.stamp)
        return _Sample(one.stamp, one.parent, one.translation + r * (two.translation - one.translation),
                       _slerp(one.quaternion, two.quaternion, r))


class _StaticCache:
    """tf2 ``StaticCache``: one sample, valid at every time; newest stamp 0; ``clear`` keeps it."""

    static = True

    def __init__(self, sample: _Sample) -> None:
        self.sample = sample

    def latest(self) -> int:
        return 0

    def latest_parent(self) -> str:
        return self.sample.parent

    def at(self, t: int) -> _Sample:
        return self.sample

    def clear(self) -> None:
        pass


def _strip_slash(name: str) -> str:
    return name[1:] if name.startswith("/") else name


def _check_finite_rotation(quaternion_xyzw) -> np.ndarray:
    """tf2 ``setTransformImpl``'s quaternion test: NaN refused, ``| |q|^2 - 1 |`` below 0.01, then normalised."""
    q = np.asarray(quaternion_xyzw, dtype=np.float64).reshape(-1)
    if q.shape != (4,):
        raise ValueError(f"quaternion must have 4 components (x, y, z, w), got {q.shape[0]}")
    if not np.all(np.isfinite(q)):
        raise ValueError(f"TF_NAN_INPUT: quaternion has non-finite components {q.tolist()}")
    n2 = float(np.dot(q, q))
    if not abs(n2 - 1.0) < QUATERNION_NORMALIZATION_TOLERANCE:
        raise ValueError(
            f"TF_DENORMALIZED_QUATERNION: quaternion (x, y, z, w) = {q.tolist()} has |q|^2 = {n2:.6g}; tf2 "
            f"accepts |q|^2 within {QUATERNION_NORMALIZATION_TOLERANCE} of 1")
    return q / math.sqrt(n2)


class TransformBuffer:
    """Static + dynamic transforms with history; thread-safe (ROS callbacks and the mapper share it)."""

    def __init__(self, cache_time: float = 10.0) -> None:
        if not cache_time > 0:
            raise ValueError(f"cache_time must be > 0 seconds, got {cache_time}")
        self.cache_time = float(cache_time)
        self._cache_ns = seconds_to_ns(cache_time)
        self._frames: dict[str, _TimeCache | _StaticCache | None] = {}  # None: known only as a parent
        self._lock = threading.Lock()

    def set_transform(self, parent: str, child: str, stamp_ns: int, translation, quaternion_xyzw,
                      *, static: bool = False) -> bool:
        """Add ``T_parent_child`` at ``stamp_ns``; False when ignored as older than ``cache_time`` (TF_OLD_DATA).

        ValueError where tf2 ignores the transform with an error log: a self transform, an empty frame
        id, a NaN (we also refuse an infinite) translation, a NaN or denormalised quaternion.
        """
        stamp = require_ns(stamp_ns)
        parent, child = _strip_slash(parent), _strip_slash(child)
        if child == parent:
            raise ValueError(f"TF_SELF_TRANSFORM: transform from frame [{child}] to itself")
        if not child or not parent:
            raise ValueError(f"TF_NO_FRAME_ID: transform needs both frame ids, got parent {parent!r}, "
                             f"child {child!r}")
        t = np.asarray(translation, dtype=np.float64).reshape(-1)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise ValueError(f"TF_NAN_INPUT: translation must be 3 finite numbers, got {t.tolist()}")
        sample = _Sample(stamp, parent, t, _check_finite_rotation(quaternion_xyzw))
        with self._lock:
            cache = self._frames.get(child)
            self._frames.setdefault(parent, None)
            if static:  # the latest message decides the kind; a static one replaces whatever was there
                self._frames[child] = _StaticCache(sample)
                return True
            if not isinstance(cache, _TimeCache):
                cache = self._frames[child] = _TimeCache(self._cache_ns)
            return cache.insert(sample)

    def clear(self) -> None:
        """Drop dynamic history (e.g. after a jump back in time); static transforms and frame names stay."""
        with self._lock:
            for cache in self._frames.values():
                if cache is not None:
                    cache.clear()

    def frames(self) -> set[str]:
        with self._lock:
            return set(self._frames)

    def can_transform(self, target: str, source: str, stamp_ns: int) -> bool:
        """tf2 ``canTransform``: whether ``lookup`` would succeed (invalid or unknown ids give False)."""
        try:
            self.lookup(target, source, stamp_ns)
        except TransformError:
            return False
        return True

    def latest_common_time(self, target: str, source: str) -> int:
        """Newest stamp (ns) at which every dynamic link between the frames has data; 0 if all static.

        As tf2_py's ``get_latest_common_time``: ids are checked first; for ``target == source`` it is that
        frame's newest sample (0 for a static or root frame).
        """
        with self._lock:
            self._validate(target, "target_frame", "get_latest_common_time")
            self._validate(source, "source_frame", "get_latest_common_time")
            return self._common_time(target, source)

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """``T_target_source`` (4x4 float64) at ``stamp_ns``; 0 = latest common time."""
        t = require_ns(stamp_ns)
        if target == source:
            return np.eye(4)  # before any check, as tf2 (frames need not exist)
        with self._lock:
            self._validate(target, "target_frame", "lookupTransform")
            self._validate(source, "source_frame", "lookupTransform")
            return self._walk(target, source, t)

    # -- internals (callers hold the lock) --

    def _validate(self, name: str, arg: str, function: str) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(
                f'Invalid argument "{name}" passed to {function} argument {arg} - in tf2 frame_ids cannot be '
                "empty")
        if name.startswith("/"):
            raise InvalidArgumentError(
                f'Invalid argument "{name}" passed to {function} argument {arg} - in tf2 frame_ids cannot '
                "start with a '/'")
        if name not in self._frames:
            raise ConnectivityError(
                f'"{name}" passed to {function} argument {arg} does not exist (known frames: '
                f"{', '.join(sorted(self._frames)) or 'none'})")

    @staticmethod
    def _loop(depth: int) -> None:
        if depth > MAX_GRAPH_DEPTH:
            raise ConnectivityError("The tf tree is invalid because it contains a loop.")

    def _link(self, frame: str, t: int) -> _Sample | None:
        """The sample of ``frame``'s link at ``t``; None for a root (no cache); ExtrapolationError."""
        cache = self._frames.get(frame)
        return None if cache is None else cache.at(t)

    def _walk(self, target: str, source: str, t: int) -> np.ndarray:
        """tf2 ``walkToTopParent`` with ``TransformAccum``: the parent of each link is the one at ``t``."""
        if t == 0:
            t = self._common_time(target, source)
        where = f", when looking up transform from frame [{source}] to frame [{target}]"
        frame, T_top_source, source_error, depth = source, np.eye(4), None, 0
        while True:  # source -> its root (or the first link without data at t)
            try:
                s = self._link(frame, t)
            except ExtrapolationError as exc:
                source_error = exc  # there may still be a path from source to target
                break
            if s is None:
                break
            if frame == target:
                return T_top_source  # target is a parent of source
            T_top_source = s.matrix() @ T_top_source
            frame = s.parent
            depth += 1
            self._loop(depth)
        top, frame, T_top_target, depth = frame, target, np.eye(4), 0
        while frame != top:  # target -> the top the source walk reached
            try:
                s = self._link(frame, t)
            except ExtrapolationError as exc:
                raise ExtrapolationError(f"{exc}{where}", future=exc.future) from None
            if s is None:
                break
            if frame == source:
                return np.linalg.inv(T_top_target)  # source is a parent of target
            T_top_target = s.matrix() @ T_top_target
            frame = s.parent
            depth += 1
            self._loop(depth)
        if frame != top:
            if source_error is not None:
                raise ExtrapolationError(f"{source_error}{where}", future=source_error.future)
            raise ConnectivityError(
                f"Could not find a connection between '{target}' and '{source}' because they are not part of "
                "the same tree. Tf has two or more unconnected trees.")
        return np.linalg.inv(T_top_target) @ T_top_source

    def _common_time(self, target: str, source: str) -> int:
        """tf2 ``getLatestCommonTime``: walks by each link's newest parent; static and 0 stamps ignored."""
        if target == source:
            cache = self._frames.get(source)
            return cache.latest() if cache is not None else 0
        lct: list[tuple[int, str]] = []  # (newest stamp, newest parent) up from the source
        frame, depth = source, 0
        while (cache := self._frames.get(frame)) is not None and (parent := cache.latest_parent()) is not None:
            lct.append((cache.latest(), parent))
            frame = parent
            if frame == target:
                return min((s for s, _ in lct if s), default=0)
            depth += 1
            self._loop(depth)
        up: list[int] = []
        frame, depth, common = target, 0, None
        while (cache := self._frames.get(frame)) is not None and (parent := cache.latest_parent()) is not None:
            up.append(cache.latest())
            if any(p == parent for _, p in lct):
                common = parent
                break
            frame = parent
            if frame == source:
                return min((s for s in up if s), default=0)
            depth += 1
            self._loop(depth)
        if common is None:
            raise ConnectivityError(
                f"Could not find a connection between '{target}' and '{source}' because they are not part of "
                "the same tree. Tf has two or more unconnected trees.")
        for s, p in lct:
            up.append(s)
            if p == common:
                break
        return min((s for s in up if s), default=0)


def camera_pose(
    T_parent_body: np.ndarray,
    *,
    parent_frame: str,
    body_frame: str,
    camera_frame: str,
    map_frame: str,
    stamp_ns: int,
    buffer: TransformBuffer | None = None,
    extrinsic: np.ndarray | None = None,
) -> np.ndarray:
    """``T_map_camera`` from a pose of ``body_frame`` in ``parent_frame`` (Odometry, PoseStamped, TF).

    Chains ``T_map_parent`` (TF; identity when parent is the map) @ ``T_parent_body`` (the message) @
    ``T_body_camera`` (identity when the body is the camera, else ``extrinsic`` when given, else TF at
    ``stamp_ns``). Frame ids are compared as tf2 does, exactly (a '/' prefix makes a lookup an
    ``InvalidArgumentError``). Missing links raise ``TransformError`` naming what is missing; never
    silently identity.
    """
    for name, what in ((parent_frame, "pose header"), (body_frame, "pose child/body"),
                       (camera_frame, "camera"), (map_frame, "map")):
        if not name:
            raise InvalidArgumentError(f"{what} frame_id is empty: set it in the message or the parameters")
    T = np.asarray(T_parent_body, dtype=np.float64)
    if parent_frame != map_frame:
        if buffer is None:
            raise ConnectivityError(
                f"pose is in frame [{parent_frame}], not the map frame [{map_frame}], and no TF is available "
                "to relate them")
        T = buffer.lookup(map_frame, parent_frame, stamp_ns) @ T
    if body_frame != camera_frame:
        if extrinsic is not None:
            T = T @ np.asarray(extrinsic, dtype=np.float64)
        elif buffer is None:
            raise ConnectivityError(
                f"pose is of frame [{body_frame}] but the camera is [{camera_frame}]: no TF and no "
                "camera extrinsic relate them")
        else:
            T = T @ buffer.lookup(body_frame, camera_frame, stamp_ns)
    return T


def tf_camera_pose(buffer: TransformBuffer, map_frame: str, camera_frame: str, stamp_ns: int) -> np.ndarray:
    """``T_map_camera`` straight from TF at ``stamp_ns`` (pose_source ``tf``)."""
    return buffer.lookup(map_frame, camera_frame, stamp_ns)


def extrinsic(translation, quaternion_xyzw) -> np.ndarray:
    """``T_body_camera`` from a fixed mounting (e.g. a ``camera_extrinsic`` parameter)."""
    return pose_to_matrix(translation, quaternion_xyzw)
