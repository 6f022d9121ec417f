"""TransformBuffer against tf2's rules, each test written from the tf2 source it names.

Sources: ros2/geometry2 (Humble, Jazzy and Rolling agree on these) ``tf2/src/buffer_core.cpp``,
``tf2/src/cache.cpp``, ``tf2/src/static_cache.cpp``, ``tf2_py/src/tf2_py.cpp``, and the cases of
``tf2/test/cache_unittest.cpp``, ``tf2/test/simple_tf2_core.cpp``, ``test_tf2/test/buffer_core_test.cpp``.
Random re-parenting trees are compared with ``Tf2Reference``, a plain restatement of tf2's semantics
written for this test (no code shared with ``radseg_core.transforms``).
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest

from radseg_core.transforms import (
    NS_PER_S,
    ConnectivityError,
    ExtrapolationError,
    InvalidArgumentError,
    TransformBuffer,
    TransformError,
    seconds_to_ns,
    stamp_to_ns,
)

S = NS_PER_S
B = 1_700_000_000 * S  # a robot's clock: float seconds resolve ~0.24 us here
ID = (0.0, 0.0, 0.0, 1.0)


def at(seconds: float) -> int:
    """B + seconds, in ns (the offsets used here are exact in binary)."""
    return B + seconds_to_ns(seconds)


def q_z(a: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(a / 2), math.cos(a / 2))


def xyz(T: np.ndarray) -> list[float]:
    return [round(float(v), 9) for v in T[:3, 3]]


# ------------------------------------------------------------------ frames that change parent
def reparented() -> TransformBuffer:
    """Issue #18's case: base under odom_a up to 5 s (x = t), under odom_b from 6 s (y = t)."""
    buf = TransformBuffer(cache_time=100.0)
    buf.set_transform("map", "odom_a", 0, (100.0, 0, 0), ID, static=True)
    buf.set_transform("map", "odom_b", 0, (0, 100.0, 0), ID, static=True)
    for k in range(0, 6):
        buf.set_transform("odom_a", "base", at(k), (float(k), 0, 0), ID)
    for k in range(6, 11):
        buf.set_transform("odom_b", "base", at(k), (0, float(k), 0), ID)
    return buf


def test_reparenting_before_at_and_after_the_switch():
    """buffer_core.cpp walkToTopParent + cache.cpp TimeCache::getData: the parent is the one valid at
    the lookup time (the sample's frame_id_), not the newest."""
    buf = reparented()
    assert xyz(buf.lookup("map", "base", at(3))) == [103, 0, 0]  # before: via odom_a (old code: [3, 100, 0])
    assert xyz(buf.lookup("map", "base", at(2.5))) == [102.5, 0, 0]  # interpolated under one parent
    assert xyz(buf.lookup("map", "base", at(5))) == [105, 0, 0]  # last sample under odom_a
    assert xyz(buf.lookup("map", "base", at(6))) == [0, 106, 0]  # at the switch: the new parent's sample
    assert xyz(buf.lookup("map", "base", at(8.5))) == [0, 108.5, 0]  # after
    assert xyz(buf.lookup("map", "base", 0)) == [0, 110, 0]  # latest common time: newest parent
    assert xyz(buf.lookup("odom_a", "base", at(4))) == [4, 0, 0]
    assert xyz(buf.lookup("odom_b", "base", at(4))) == [104, -100, 0]  # through map, with odom_a's sample


def test_between_two_parents_the_older_sample_is_used_never_interpolated():
    """cache.cpp TimeCache::getData: samples with different frame_id_ -> data_out = the older one
    (tf2/test/cache_unittest.cpp ReparentingInterpolationProtection)."""
    buf = reparented()
    for t in (5.0, 5.25, 5.5, 5.999999999):
        assert xyz(buf.lookup("map", "base", at(t))) == [105, 0, 0], t
    assert xyz(buf.lookup("map", "base", at(6) - 1)) == [105, 0, 0]  # 1 ns before the switch


def test_object_handed_to_a_gripper():
    """walkToTopParent across trees that meet at map: the cup is on the table, then in the gripper."""
    buf = TransformBuffer()
    buf.set_transform("map", "table", 0, (5.0, 0, 0), ID, static=True)
    buf.set_transform("map", "base", at(0), (0, 0, 0), ID)
    buf.set_transform("map", "base", at(4), (4.0, 0, 0), ID)
    buf.set_transform("base", "gripper", 0, (0.5, 0, 1.0), ID, static=True)
    buf.set_transform("table", "cup", at(0), (0.1, 0, 0.8), ID)
    buf.set_transform("table", "cup", at(2), (0.1, 0, 0.8), ID)
    buf.set_transform("gripper", "cup", at(3), (0, 0, 0.1), ID)
    buf.set_transform("gripper", "cup", at(4), (0, 0, 0.1), ID)
    assert xyz(buf.lookup("map", "cup", at(1))) == [5.1, 0, 0.8]
    assert xyz(buf.lookup("map", "cup", at(2.5))) == [5.1, 0, 0.8]  # table sample held, not blended
    assert xyz(buf.lookup("map", "cup", at(3.5))) == [4.0, 0, 1.1]  # base at 3.5 + gripper + cup
    assert xyz(buf.lookup("base", "cup", at(3))) == [0.5, 0, 1.1]


# ------------------------------------------------------------------ a plain reference of tf2's semantics
def qmul(a, b):
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz])


def qpow_between(q0, q1, r):
    """q0 * (q0^-1 q1)^r along the shorter arc, by axis and angle (not tf2's slerp formula)."""
    d = qmul(np.array([-q0[0], -q0[1], -q0[2], q0[3]]), q1)
    if d[3] < 0:
        d = -d
    v = d[:3]
    sv = float(np.linalg.norm(v))
    if sv < 1e-15:
        return np.asarray(q0, dtype=float)
    angle = 2 * math.atan2(sv, d[3])
    axis = v / sv
    step = np.array([*(axis * math.sin(r * angle / 2)), math.cos(r * angle / 2)])
    return qmul(q0, step)


def matrix(t, q) -> np.ndarray:
    x, y, z, w = np.asarray(q, dtype=float) / np.linalg.norm(q)
    T = np.eye(4)
    T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    T[:3, 3] = t
    return T


class Tf2Reference:
    """tf2's lookup semantics, stated plainly: the link of a frame at time t is its sample at t, or the
    two samples around t interpolated when they share a parent, else the older one; each frame's chain
    goes up through the parents valid at t until a root or a link without data at t; the answer joins
    the two chains at their lowest common frame. Time 0: each link's newest sample, along the newest
    parents, minimum over the links below the common frame (static links ignored)."""

    def __init__(self) -> None:
        self.static: dict[str, tuple[str, tuple, tuple]] = {}
        self.dynamic: dict[str, list[tuple[int, str, tuple, tuple]]] = {}

    def add(self, parent, child, stamp, t, q, static=False):
        if static:
            self.static[child] = (parent, t, q)
        else:
            self.dynamic.setdefault(child, []).append((stamp, parent, t, q))
            self.dynamic[child].sort(key=lambda s: s[0])

    def link(self, child: str, t: int):
        """(parent, 4x4) or raises ExtrapolationError; None for a root."""
        if child in self.static:
            p, tr, q = self.static[child]
            return p, matrix(tr, q)
        samples = self.dynamic.get(child)
        if samples is None:
            return None
        stamps = [s[0] for s in samples]
        if t in stamps:
            s = samples[stamps.index(t)]
            return s[1], matrix(s[2], s[3])
        if t > stamps[-1] or t < stamps[0]:
            raise ExtrapolationError("outside", future=t > stamps[-1])
        i = bisect.bisect_left(stamps, t)
        a, b = samples[i - 1], samples[i]
        if a[1] != b[1]:
            return a[1], matrix(a[2], a[3])
        r = (t - a[0]) / (b[0] - a[0])
        tr = np.asarray(a[2]) + r * (np.asarray(b[2]) - np.asarray(a[2]))
        return a[1], matrix(tr, qpow_between(np.asarray(a[3]) / np.linalg.norm(a[3]),
                                             np.asarray(b[3]) / np.linalg.norm(b[3]), r))

    def chain(self, frame: str, t: int):
        """[(frame, T_frame_start)] upwards, and the error that stopped it early (or None)."""
        out, T = [(frame, np.eye(4))], np.eye(4)
        while True:
            try:
                link = self.link(frame, t)
            except ExtrapolationError as exc:
                return out, exc
            if link is None:
                return out, None
            frame, T = link[0], link[1] @ T
            out.append((frame, T))

    def newest_chain(self, frame: str):
        """[(frame, newest stamp of the link below it)] up the newest parents."""
        out = [(frame, None)]
        while True:
            if frame in self.static:
                frame, stamp = self.static[frame][0], 0
            elif frame in self.dynamic:
                frame, stamp = self.dynamic[frame][-1][1], self.dynamic[frame][-1][0]
            else:
                return out
            out.append((frame, stamp))

    def common_time(self, target: str, source: str) -> int:
        up_s, up_t = self.newest_chain(source), self.newest_chain(target)
        names_s = [f for f, _ in up_s]
        for j, (f, _) in enumerate(up_t):
            if f in names_s:
                i = names_s.index(f)
                stamps = [s for _, s in up_s[1:i + 1] + up_t[1:j + 1] if s]
                return min(stamps, default=0)
        raise ConnectivityError("not connected")

    def known(self) -> set[str]:
        links = [(c, p) for c, (p, _, _) in self.static.items()]
        links += [(c, s[1]) for c, samples in self.dynamic.items() for s in samples]
        return {f for link in links for f in link}

    def lookup(self, target: str, source: str, t: int) -> np.ndarray:
        if target == source:
            return np.eye(4)
        if not {target, source} <= self.known():
            raise ConnectivityError("a frame that never appeared")
        if t == 0:
            t = self.common_time(target, source)
        up_s, err_s = self.chain(source, t)
        up_t, err_t = self.chain(target, t)
        names_s = [f for f, _ in up_s]
        for f, T_f_target in up_t:
            if f in names_s:
                return np.linalg.inv(T_f_target) @ up_s[names_s.index(f)][1]
        if err_t or err_s:
            raise err_t or err_s
        raise ConnectivityError("not connected")


def outcome(fn):
    try:
        return fn()
    except ExtrapolationError as exc:
        return ("extrapolation", exc.future)
    except ConnectivityError:
        return ("connectivity",)


def random_quaternion(rng) -> tuple:
    q = rng.normal(size=4)
    return tuple(q / np.linalg.norm(q))


def test_random_reparenting_trees_match_the_reference():
    """buffer_core.cpp walkToTopParent / getLatestCommonTime, cache.cpp getData on random trees whose
    dynamic frames change parent between samples (always to a lower-numbered frame: no loops)."""
    rng = np.random.default_rng(18)
    checked = {"matrix": 0, "extrapolation": 0, "connectivity": 0}
    for _ in range(60):
        buf, ref = TransformBuffer(cache_time=1000.0), Tf2Reference()
        n = int(rng.integers(4, 10))
        roots = 1 + int(rng.random() < 0.3)  # sometimes two trees
        stamps: list[int] = []
        for k in range(roots, n):
            child = f"f{k}"
            if rng.random() < 0.3:
                parent = f"f{int(rng.integers(0, k))}"
                t, q = tuple(rng.normal(size=3)), random_quaternion(rng)
                buf.set_transform(parent, child, 0, t, q, static=True)
                ref.add(parent, child, 0, t, q, static=True)
                continue
            parents = [f"f{int(rng.integers(0, k))}" for _ in range(int(rng.integers(1, 4)))]
            times = sorted(set(int(x) for x in rng.integers(0, 20, size=int(rng.integers(1, 7)))))
            for j, tt in enumerate(times):
                stamp = B + tt * S // 2
                parent = parents[min(j * len(parents) // len(times), len(parents) - 1)]
                t, q = tuple(rng.normal(size=3)), random_quaternion(rng)
                buf.set_transform(parent, child, stamp, t, q)
                ref.add(parent, child, stamp, t, q)
                stamps.append(stamp)
        frames = [f"f{k}" for k in range(n)]
        queries = [0] + stamps + [s + 1 for s in stamps] + [s - 1 for s in stamps] + [
            B + int(x) for x in rng.integers(-S, 11 * S, size=10)]
        for t in queries:
            a, b = (frames[int(i)] for i in rng.integers(0, n, 2))
            want = outcome(lambda a=a, b=b, t=t, ref=ref: ref.lookup(a, b, t))
            got = outcome(lambda a=a, b=b, t=t, buf=buf: buf.lookup(a, b, t))
            if isinstance(want, np.ndarray):
                assert isinstance(got, np.ndarray), (a, b, t, got)
                np.testing.assert_allclose(got, want, atol=1e-9, err_msg=f"{a} <- {b} at {t}")
                checked["matrix"] += 1
            else:
                assert got == want, (a, b, t)
                checked[want[0]] += 1
            assert buf.can_transform(a, b, t) == isinstance(want, np.ndarray)
    assert min(checked.values()) > 20, checked  # every kind of answer was compared


# ------------------------------------------------------------------ quaternions
def test_hand_typed_quaternion_accepted_and_normalised():
    """buffer_core.cpp setTransformImpl: | |q|^2 - 1 | < QUATERNION_NORMALIZATION_TOLERANCE (10e-3);
    `static_transform_publisher --qz 0.71 --qw 0.71` publishes |q|^2 = 1.0082."""
    buf = TransformBuffer()
    assert buf.set_transform("base_link", "camera_link", 0, (0.1, 0, 0.2), (0, 0, 0.71, 0.71), static=True)
    R = buf.lookup("base_link", "camera_link", 0)[:3, :3]
    np.testing.assert_allclose(R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)  # 90 deg yaw, orthonormal
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    for q in ((0, 0, 0, 1.0049), (0, 0, 0, 0.995), (0, 0, 0.71, 0.71)):
        assert buf.set_transform("a", "b", 0, (0, 0, 0), q, static=True), q


@pytest.mark.parametrize("q", [(0, 0, 0, 0), (0, 0, 0, 1.0051), (0, 0, 0, 0.9949), (0, 0, 0.8, 0.8),
                               (0, 0, 0, float("nan")), (0, 0, 0, float("inf"))])
def test_quaternions_tf2_ignores_are_refused(q):
    """setTransformImpl: TF_NAN_INPUT and TF_DENORMALIZED_QUATERNION (simple_tf2_core.cpp
    setTransformInvalidQuaternion: w = 0); the frame does not appear."""
    buf = TransformBuffer()
    with pytest.raises(ValueError, match="TF_DENORMALIZED_QUATERNION|TF_NAN_INPUT"):
        buf.set_transform("a", "b", at(1), (0, 0, 0), q)
    assert buf.frames() == set()
    with pytest.raises(ConnectivityError, match="does not exist"):
        buf.lookup("a", "b", at(1))


def test_other_inputs_tf2_ignores_are_refused():
    """setTransformImpl: TF_SELF_TRANSFORM, TF_NO_CHILD_FRAME_ID, TF_NO_FRAME_ID, TF_NAN_INPUT
    (test_tf2 buffer_core_test.cpp NoInsertOnSelfTransform / NoInsertWithNan / NoInsertWithNoFrameID /
    NoInsertWithNoParentID); a leading '/' is stripped on insert (stripSlash)."""
    buf = TransformBuffer()
    for parent, child in (("a", "a"), ("/a", "a"), ("a", ""), ("", "b"), ("/", "b")):
        with pytest.raises(ValueError, match="TF_SELF_TRANSFORM|TF_NO_FRAME_ID"):
            buf.set_transform(parent, child, at(1), (0, 0, 0), ID)
    with pytest.raises(ValueError, match="TF_NAN_INPUT"):
        buf.set_transform("a", "b", at(1), (0, float("nan"), 0), ID)
    assert buf.set_transform("/a", "/b", at(1), (1, 0, 0), ID) and buf.frames() == {"a", "b"}


def test_infinite_translation_is_refused_a_deliberate_difference():
    """tf2 setTransformImpl tests the translation with std::isnan only, so it stores +-inf (and every
    lookup through it is non-finite); we refuse it like NaN (docs/real_robot.md)."""
    buf = TransformBuffer()
    with pytest.raises(ValueError, match="finite"):
        buf.set_transform("a", "b", at(1), (float("inf"), 0, 0), ID)
    assert buf.frames() == set()


# ------------------------------------------------------------------ integer-nanosecond stamps
def test_cache_boundary_one_nanosecond_either_side_at_1_7e9_s():
    """cache.cpp TimeCache::insertData: refused when stamp < newest - max_storage_time (strictly), kept
    at exactly the boundary; stamps are TimePoint nanoseconds (buffer_core.cpp setTransform)."""
    buf = TransformBuffer(cache_time=10.0)
    newest = at(20)
    assert buf.set_transform("odom", "base", newest, (20.0, 0, 0), ID)
    assert buf.set_transform("odom", "base", newest - 10 * S - 1, (9.0, 0, 0), ID) is False  # TF_OLD_DATA
    assert buf.set_transform("odom", "base", newest - 10 * S, (10.0, 0, 0), ID) is True
    assert buf.set_transform("odom", "base", newest - 10 * S + 1, (11.0, 0, 0), ID) is True
    assert xyz(buf.lookup("odom", "base", newest - 10 * S)) == [10, 0, 0]
    assert xyz(buf.lookup("odom", "base", newest - 10 * S + 1)) == [11, 0, 0]  # two samples 1 ns apart
    with pytest.raises(ExtrapolationError) as e:
        buf.lookup("odom", "base", newest - 10 * S - 1)
    assert not e.value.future
    # the same stamps as float seconds cannot be told apart, which is why floats are refused
    assert float(newest - 10 * S) / S == float(newest - 10 * S + 1) / S
    for bad in (float(newest) / S, 1.7e9):
        with pytest.raises(TypeError, match="integer nanoseconds"):
            buf.lookup("odom", "base", bad)
        with pytest.raises(TypeError, match="integer nanoseconds"):
            buf.set_transform("odom", "base", bad, (0, 0, 0), ID)
    assert buf.can_transform("odom", "base", np.int64(newest))
    assert stamp_to_ns(1_700_000_010, 1) == at(10) + 1


# ------------------------------------------------------------------ frame ids, identity, latest common time
@pytest.mark.parametrize("target,source,which", [("", "a", "target_frame"), ("b", "", "source_frame"),
                                                 ("/b", "a", "target_frame"), ("b", "/a", "source_frame"),
                                                 ("", "nowhere", "target_frame"), ("/a", "/a/", "target_frame")])
def test_invalid_frame_ids_are_invalid_arguments(target, source, which):
    """buffer_core.cpp validateFrameId (target first, then source); test_tf2 buffer_core_test.cpp
    BufferCore_lookupTransform.invalid_arguments and BufferCore_canTransform.invalid_arguments."""
    buf = TransformBuffer()
    buf.set_transform("b", "a", at(1), (1, 0, 0), ID)
    assert xyz(buf.lookup("b", "a", 0)) == [1, 0, 0]
    with pytest.raises(InvalidArgumentError, match=which) as e:
        buf.lookup(target, source, at(1))
    assert isinstance(e.value, TransformError) and not isinstance(e.value, ConnectivityError)
    assert not buf.can_transform(target, source, at(1))
    with pytest.raises(InvalidArgumentError):  # tf2_py get_latest_common_time validates too
        buf.latest_common_time(target, source)


def test_unknown_frame_after_a_valid_one_is_a_lookup_error():
    """validateFrameId: an id that does not exist -> LookupException (ours: ConnectivityError)."""
    buf = TransformBuffer()
    buf.set_transform("b", "a", at(1), (1, 0, 0), ID)
    with pytest.raises(ConnectivityError, match='"nowhere" passed to lookupTransform argument source_frame'):
        buf.lookup("b", "nowhere", at(1))


def test_same_frame_is_identity_even_for_unknown_frames():
    """buffer_core.cpp lookupTransformImpl / canTransform: target_frame == source_frame -> identity
    before any validation ("Identity case does not need to be validated")."""
    buf = TransformBuffer()
    for frame in ("never_seen", "", "/slashed"):
        np.testing.assert_array_equal(buf.lookup(frame, frame, at(3)), np.eye(4))
        assert buf.can_transform(frame, frame, 0)


def test_latest_common_time_of_a_frame_with_itself():
    """buffer_core.cpp getLatestCommonTime (source_id == target_id: the frame's newest stamp, 0 without
    a cache); tf2_py getLatestCommonTime validates the ids first."""
    buf = TransformBuffer()
    buf.set_transform("odom", "base", at(1), (0, 0, 0), ID)
    buf.set_transform("odom", "base", at(2) + 7, (0, 0, 0), ID)
    buf.set_transform("base", "cam", 0, (0, 0, 0), ID, static=True)
    assert buf.latest_common_time("base", "base") == at(2) + 7
    assert buf.latest_common_time("cam", "cam") == 0  # static
    assert buf.latest_common_time("odom", "odom") == 0  # a root has no cache
    with pytest.raises(ConnectivityError, match="does not exist"):
        buf.latest_common_time("ghost", "ghost")
    buf.clear()
    assert buf.latest_common_time("base", "base") == 0


def test_latest_common_time_cases_of_buffer_core_test():
    """test_tf2 buffer_core_test.cpp tf.getLatestCommonTime, in nanoseconds."""
    buf = TransformBuffer()
    buf.set_transform("parent", "a", 1000, (0, 0, 0), ID)
    buf.set_transform("parent's parent", "parent", 2000, (0, 0, 0), ID)
    assert buf.latest_common_time("a", "parent's parent") == 1000
    buf.set_transform("parent", "a", 3000, (0, 0, 0), ID)
    assert buf.latest_common_time("a", "parent's parent") == 2000
    buf.set_transform("parent", "b", 4000, (0, 0, 0), ID)
    buf.set_transform("b", "c", 3000, (0, 0, 0), ID)
    buf.set_transform("c", "d", 9000, (0, 0, 0), ID)
    buf.set_transform("f", "e", 5000, (0, 0, 0), ID)
    for a, b, want in (("a", "b", 3000), ("a", "c", 3000), ("c", "a", 3000), ("a", "d", 3000),
                       ("d", "a", 3000), ("e", "f", 5000), ("f", "e", 5000)):
        assert buf.latest_common_time(a, b) == want, (a, b)
    with pytest.raises(ConnectivityError, match="not part of the same tree"):
        buf.latest_common_time("a", "e")


# ------------------------------------------------------------------ cleared links
def test_time_zero_lookup_through_a_cleared_link_is_a_connectivity_error():
    """BufferCore::clear empties TimeCaches (StaticCache::clearList is a no-op); getLatestCommonTime
    stops at an empty cache (getLatestTimeAndParent -> parent 0), so no common parent: CONNECTIVITY_ERROR.
    A stamped lookup fails in getData instead: extrapolation, "no data" (waiting may help)."""
    buf = TransformBuffer()
    buf.set_transform("map", "odom", 0, (1, 0, 0), ID, static=True)
    buf.set_transform("odom", "base", at(1), (0, 2, 0), ID)
    buf.set_transform("base", "cam", 0, (0, 0, 3), ID, static=True)
    assert xyz(buf.lookup("map", "cam", 0)) == [1, 2, 3]
    buf.clear()
    for target, source in (("map", "cam"), ("cam", "map"), ("odom", "base")):
        with pytest.raises(ConnectivityError, match="not part of the same tree"):
            buf.lookup(target, source, 0)
        with pytest.raises(ExtrapolationError, match="no transform data") as e:
            buf.lookup(target, source, at(1))
        assert e.value.future
    assert xyz(buf.lookup("base", "cam", 0)) == [0, 0, 3]  # static links survive clear
    assert buf.frames() == {"map", "odom", "base", "cam"}  # frame names too


def test_a_cleared_link_above_the_common_frame_does_not_matter():
    """getLatestCommonTime / walkToTopParent stop at the first link without data but only need the links
    below the common parent ("there may still be a path from source -> target")."""
    buf = TransformBuffer()
    buf.set_transform("map", "odom", at(1), (9, 0, 0), ID)
    buf.set_transform("odom", "base", at(1), (1, 0, 0), ID)
    buf.set_transform("odom", "laser", at(1), (0, 1, 0), ID)
    buf.set_transform("odom", "base", at(2), (2, 0, 0), ID)
    buf.set_transform("odom", "laser", at(2), (0, 2, 0), ID)
    buf.set_transform("map", "odom", at(0.5), (8, 0, 0), ID)
    assert xyz(buf.lookup("laser", "base", at(1.5))) == [1.5, -1.5, 0]  # map->odom has no data at 1.5 s
    assert buf.latest_common_time("laser", "base") == at(2)


# ------------------------------------------------------------------ history
def test_pruning_is_lazy_and_measured_against_the_previous_newest_sample():
    """cache.cpp TimeCache::insertData: latest_time is read before pruneList(), the sample is then
    inserted without pruning again; the TF_OLD_DATA test also uses the previous newest."""
    buf = TransformBuffer(cache_time=1.0)
    for k in (0.0, 0.5, 1.0):
        buf.set_transform("odom", "base", at(k), (k, 0, 0), ID)
    assert buf.set_transform("odom", "base", at(2.0), (2.0, 0, 0), ID)
    assert xyz(buf.lookup("odom", "base", at(0.25))) == [0.25, 0, 0]  # 2 s behind the newest, still there
    assert buf.set_transform("odom", "base", at(2.1), (2.1, 0, 0), ID)  # prunes < 2.0 - 1 s
    for gone in (0.0, 0.25, 0.5):
        assert not buf.can_transform("odom", "base", at(gone))
    assert xyz(buf.lookup("odom", "base", at(1.0))) == [1.0, 0, 0]
    assert buf.set_transform("odom", "base", at(1.05), (0, 0, 0), ID) is False  # < 2.1 - 1
    assert buf.set_transform("odom", "base", at(1.1), (1.1, 0, 0), ID) is True  # exactly 2.1 - 1


def test_repeated_and_same_stamp_samples_in_tf2_order():
    """cache.cpp insertData steps (2)-(4): an exact repeat is not stored twice (cache_unittest.cpp
    DuplicateEntries / RepeatedElements); another value at the same stamp goes in front of the older
    one, so findClosest picks it at that stamp and at later times, the first one from earlier times."""
    buf = TransformBuffer()
    buf.set_transform("p", "c", at(4), (0, 0, 0), ID)
    buf.set_transform("p", "c", at(5), (1, 0, 0), ID)
    buf.set_transform("p", "c", at(5), (1, 0, 0), ID)  # exact repeat
    buf.set_transform("p", "c", at(5), (2, 0, 0), ID)  # same stamp, other value
    assert xyz(buf.lookup("p", "c", at(5))) == [2, 0, 0]  # newest of the stamp
    buf.set_transform("p", "c", at(6), (10, 0, 0), ID)
    assert xyz(buf.lookup("p", "c", at(5))) == [2, 0, 0]
    assert xyz(buf.lookup("p", "c", at(5.5))) == [6, 0, 0]  # between (5: 2) and (6: 10)
    assert xyz(buf.lookup("p", "c", at(4.5))) == [0.5, 0, 0]  # between (4: 0) and the first (5: 1)


def test_one_sample_only_at_its_stamp_and_parents_without_data_at_t():
    """cache.cpp findClosest with one value (test_tf2 buffer_core_test.cpp ExtrapolationFromOneValue);
    siblings need no data above their common parent (NoExtrapolationExceptionFromParent)."""
    buf = TransformBuffer()
    buf.set_transform("parent", "a", 1000, (0, 0, 0), ID)
    buf.set_transform("parent's parent", "parent", 1000, (0, 0, 0), ID)
    for t, future in ((10, False), (100000, True)):
        with pytest.raises(ExtrapolationError, match="but only time") as e:
            buf.lookup("parent", "a", t)
        assert e.value.future is future
        with pytest.raises(ExtrapolationError):
            buf.lookup("parent's parent", "a", t)
    buf.set_transform("parent", "a", 20000, (0, 0, 0), ID)
    assert buf.can_transform("parent", "a", 10000)
    buf.set_transform("parent", "b", 1000, (0, 1, 0), ID)
    buf.set_transform("parent", "b", 20000, (0, 1, 0), ID)
    assert xyz(buf.lookup("b", "a", 5000)) == [0, -1, 0]  # parent -> parent's parent has no data at 5000


def test_a_loop_at_the_lookup_time_is_reported_not_followed_forever():
    """walkToTopParent: depth > MAX_GRAPH_DEPTH -> "The tf tree is invalid because it contains a loop."."""
    buf = TransformBuffer()
    buf.set_transform("a", "b", at(1), (0, 0, 0), ID)
    buf.set_transform("b", "a", at(1), (0, 0, 0), ID)
    buf.set_transform("b", "c", at(1), (0, 0, 0), ID)
    buf.set_transform("x", "y", at(1), (0, 0, 0), ID)
    with pytest.raises(ConnectivityError, match="loop"):
        buf.lookup("y", "c", at(1))
    with pytest.raises(ConnectivityError, match="loop"):
        buf.lookup("y", "c", 0)
