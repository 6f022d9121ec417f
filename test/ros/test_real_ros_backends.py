"""The tf2_ros / message_filters code paths, run with the stand-ins in test/ros/standins (no wheels here).

The stand-ins follow the upstream Python APIs; these tests check radseg_ros' adapters on top of them:
same matrices and errors as the internal TransformBuffer, same sets as the internal synchroniser,
backend selection, admit filtering and resets. They say nothing about the real libraries beyond that API.
"""

from __future__ import annotations

import contextlib
import importlib.util
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import TransformStamped
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from radseg_core.transforms import (
    ConnectivityError,
    ExtrapolationError,
    InvalidArgumentError,
    TransformBuffer,
    TransformError,
    stamp_to_ns,
)
from radseg_ros import sync as sync_mod
from radseg_ros import tf_listener
from radseg_ros.params import SPECS

STANDINS = Path(__file__).parent / "standins"
MS = 1_000_000


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, STANDINS / name / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tf2_ros(monkeypatch):
    module = _load("tf2_ros")
    monkeypatch.setitem(sys.modules, "tf2_ros", module)
    return module


@pytest.fixture
def message_filters(monkeypatch):
    module = _load("message_filters")
    monkeypatch.setitem(sys.modules, "message_filters", module)
    return module


class FakeNode:
    """What the adapters call on an rclpy node; subscriptions are kept so tests can deliver messages."""

    def __init__(self) -> None:
        self.subs: dict[str, list] = {}

    def create_subscription(self, msg_type, topic, callback, qos_profile=None, **kwargs):
        self.subs.setdefault(topic, []).append(callback)
        return (topic, callback)

    def deliver(self, topic: str, msg) -> None:
        for cb in self.subs[topic]:
            cb(msg)


# -- TF --------------------------------------------------------------------------------------------------

def ts(parent: str, child: str, stamp_ns: int, t, q, *, normalise: bool = True) -> TransformStamped:
    m = TransformStamped()
    m.header.frame_id, m.child_frame_id = parent, child
    m.header.stamp = TimeMsg(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    m.transform.translation.x, m.transform.translation.y, m.transform.translation.z = (float(v) for v in t)
    n = np.linalg.norm(q) if normalise else 1.0
    m.transform.rotation.x, m.transform.rotation.y, m.transform.rotation.z, m.transform.rotation.w = \
        (float(v / n) for v in q)
    return m


S = 10**9
# REP-105 chain: map -> odom (dynamic), odom -> base_link (dynamic), base_link -> camera (static, rotated)
STATIC = [ts("base_link", "camera_optical", 0, (0.2, 0.0, 0.5), (-0.5, 0.5, -0.5, 0.5))]
DYNAMIC = [
    ts("map", "odom", 10 * S, (1.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)),
    ts("map", "odom", 11 * S, (1.0, 0.5, 0.0), (0.0, 0.0, 0.1, 1.0)),
    ts("odom", "base_link", 10 * S, (0.0, 2.0, 0.0), (0.0, 0.0, 0.3826834, 0.9238795)),
    ts("odom", "base_link", 11 * S, (0.3, 2.0, 0.1), (0.05, 0.0, 0.5, 0.8660254)),
]


def feed(node: FakeNode, internal: TransformBuffer, messages: list[TransformStamped], static: bool = False) -> None:
    """The same messages to the adapter (through the stand-in's TransformListener) and to TransformBuffer
    (as the node's TfListener gives them: integer ns; what it refuses is counted, not stored)."""
    from tf2_msgs.msg import TFMessage
    node.deliver("/tf_static" if static else "/tf", TFMessage(transforms=messages))
    for m in messages:
        t, q = m.transform.translation, m.transform.rotation
        with contextlib.suppress(ValueError):
            internal.set_transform(m.header.frame_id, m.child_frame_id,
                                   stamp_to_ns(m.header.stamp.sec, m.header.stamp.nanosec), (t.x, t.y, t.z),
                                   (q.x, q.y, q.z, q.w), static=static)


def both_buffers(tf2_ros, cache_time: float = 10.0):
    node = FakeNode()
    adapter = tf_listener.Tf2RosBuffer(node, cache_time=cache_time)
    internal = TransformBuffer(cache_time=cache_time)
    feed(node, internal, STATIC, static=True)
    feed(node, internal, DYNAMIC)
    return node, adapter, internal


def outcome(buffer, target: str, source: str, stamp_ns: int):
    """A matrix, or the error's class (and future/past for extrapolations)."""
    try:
        return buffer.lookup(target, source, stamp_ns)
    except ExtrapolationError as exc:
        return (ExtrapolationError, exc.future)
    except TransformError as exc:
        return (type(exc),)


def assert_same(adapter, internal, target: str, source: str, stamp_ns: int):
    a, b = outcome(adapter, target, source, stamp_ns), outcome(internal, target, source, stamp_ns)
    if isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray), (target, source, stamp_ns, a)
        np.testing.assert_allclose(a, b, atol=1e-9, err_msg=f"{target} <- {source} at {stamp_ns}")
    else:
        assert a == b, (target, source, stamp_ns, a, b)
    assert adapter.can_transform(target, source, stamp_ns) == internal.can_transform(target, source, stamp_ns)
    return b


@pytest.mark.parametrize("target,source", [("map", "camera_optical"), ("camera_optical", "map"),
                                           ("odom", "camera_optical"), ("map", "map")])
@pytest.mark.parametrize("stamp", [10 * S, 10_370_000_000, 11 * S, 0])
def test_tf2_adapter_matrices_equal_transform_buffer(tf2_ros, target, source, stamp):
    _, adapter, internal = both_buffers(tf2_ros)
    got = adapter.lookup(target, source, stamp)
    assert got.dtype == np.float64 and got.shape == (4, 4)
    assert isinstance(assert_same(adapter, internal, target, source, stamp), np.ndarray)


def test_tf2_adapter_latest_common_time_and_clear_keep_static(tf2_ros):
    _, adapter, internal = both_buffers(tf2_ros)
    assert adapter.latest_common_time("map", "camera_optical") == internal.latest_common_time("map", "camera_optical")
    assert adapter.latest_common_time("map", "camera_optical") == 11 * S  # integer ns, exact
    adapter.clear()
    internal.clear()
    assert_same(adapter, internal, "base_link", "camera_optical", 12 * S)
    for buffer in (adapter, internal):  # tf2_py: bare TransformException "Could not find a connection"
        with pytest.raises(ConnectivityError):
            buffer.latest_common_time("map", "camera_optical")


@pytest.mark.parametrize("case,error,future", [
    (("map", "nowhere", 10 * S), ConnectivityError, None),  # tf2 LookupException
    (("map", "island", 10 * S), ConnectivityError, None),  # ConnectivityException: two trees
    (("map", "camera_optical", 12 * S), ExtrapolationError, True),  # "into the future"
    (("map", "camera_optical", 9 * S), ExtrapolationError, False),  # "into the past"
    (("map", "lonely", 13 * S), ExtrapolationError, True),  # one sample: "at time X, but only time Y"
    (("map", "lonely", 11 * S), ExtrapolationError, False),
    (("", "camera_optical", 10 * S), InvalidArgumentError, None),  # tf2 InvalidArgumentException
    (("/map", "camera_optical", 10 * S), InvalidArgumentError, None),  # no slash stripped in a lookup
    (("map", "/camera_optical", 0), InvalidArgumentError, None),
])
def test_tf2_exceptions_map_like_transform_buffer(tf2_ros, case, error, future):
    node, adapter, internal = both_buffers(tf2_ros)
    feed(node, internal, [ts("sea", "island", 10 * S, (0, 0, 0), (0, 0, 0, 1)),
                          ts("map", "lonely", 12 * S, (0, 0, 1), (0, 0, 0, 1))])
    for buffer in (adapter, internal):
        with pytest.raises(error) as info:
            buffer.lookup(*case)
        if future is not None:
            assert info.value.future is future, (buffer, str(info.value))
    assert_same(adapter, internal, *case)


def test_tf2_invalid_argument_and_unworded_extrapolation(tf2_ros, monkeypatch):
    _, adapter, _ = both_buffers(tf2_ros)

    def raise_(exc):
        def f(*args, **kwargs):
            raise exc
        return f

    monkeypatch.setattr(adapter.core, "lookup_transform_core", raise_(tf2_ros.TimeoutException("late")))
    with pytest.raises(TransformError) as info:
        adapter.lookup("map", "camera_optical", 10 * S)
    assert not isinstance(info.value, (ConnectivityError, ExtrapolationError))  # waiting cannot help
    # an extrapolation text without direction: decided from get_latest_common_time (11 s)
    monkeypatch.setattr(adapter.core, "lookup_transform_core", raise_(tf2_ros.ExtrapolationException("?")))
    for stamp, future in ((11_500_000_000, True), (10_500_000_000, False)):
        with pytest.raises(ExtrapolationError) as info:
            adapter.lookup("map", "camera_optical", stamp)
        assert info.value.future is future
    monkeypatch.setattr(adapter.core, "lookup_transform_core", raise_(KeyError("a bug")))
    with pytest.raises(KeyError):  # not a tf2 error: not disguised as a transform failure
        adapter.lookup("map", "camera_optical", 10 * S)
    with pytest.raises(TypeError, match="integer nanoseconds"):
        adapter.lookup("map", "camera_optical", 10.0)


def test_tf2_adapter_turns_an_unusable_returned_rotation_into_a_transform_error(tf2_ros, monkeypatch):
    """Whatever tf2 returns is normalised; a zero or non-finite result is a TransformError, never ValueError."""
    _, adapter, _ = both_buffers(tf2_ros)
    for q, t, ok in (((0, 0, 0.71, 0.71), (1, 2, 3), True), ((0, 0, 0, 0), (0, 0, 0), False),
                     ((0, 0, 0, 1), (float("inf"), 0, 0), False)):
        reply = ts("map", "x", 10 * S, t, q, normalise=False)
        monkeypatch.setattr(adapter.core, "lookup_transform_core", lambda *a, reply=reply, **k: reply)
        if ok:
            T = adapter.lookup("map", "x", 10 * S)
            np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
            np.testing.assert_allclose(T[:3, 3], [1, 2, 3])
        else:
            with pytest.raises(TransformError, match="unusable") as info:
                adapter.lookup("map", "x", 10 * S)
            assert not isinstance(info.value, ValueError)


# -- tf2's rules, the same on both backends (issue #18) -----------------------------------------------------

def test_both_backends_reparenting_at_before_and_after_the_switch(tf2_ros):
    """buffer_core.cpp walkToTopParent + cache.cpp getData: the parent valid at the lookup time."""
    node, adapter, internal = both_buffers(tf2_ros, cache_time=100.0)
    feed(node, internal, [ts("map", "odom_a", 0, (100, 0, 0), (0, 0, 0, 1)),
                          ts("map", "odom_b", 0, (0, 100, 0), (0, 0, 0, 1))], static=True)
    feed(node, internal, [ts("odom_a", "base", k * S, (k, 0, 0), (0, 0, 0, 1)) for k in range(6)]
         + [ts("odom_b", "base", k * S, (0, k, 0), (0, 0, 0, 1)) for k in range(6, 11)])
    for t, want in ((3 * S, [103, 0, 0]), (5_500_000_000, [105, 0, 0]), (6 * S - 1, [105, 0, 0]),
                    (6 * S, [0, 106, 0]), (8_500_000_000, [0, 108.5, 0]), (0, [0, 110, 0])):
        T = assert_same(adapter, internal, "map", "base", t)
        np.testing.assert_allclose(T[:3, 3], want, atol=1e-9, err_msg=str(t))


def test_both_backends_on_random_reparenting_trees(tf2_ros):
    """Random trees with parent changes, lookups at, around and between samples and at 0: same answers."""
    rng = np.random.default_rng(7)
    compared = 0
    for _ in range(15):
        node, adapter, internal = both_buffers(tf2_ros, cache_time=1000.0)
        msgs, stamps = [], []
        for k in range(1, 7):
            for j, tt in enumerate(sorted(set(int(x) for x in rng.integers(0, 12, size=3)))):
                parent = f"r{int(rng.integers(0, k))}" if j == 0 or rng.random() < 0.5 else msgs[-1].header.frame_id
                stamp = 1_700_000_000 * S + tt * S // 2
                msgs.append(ts(parent, f"r{k}", stamp, rng.normal(size=3), rng.normal(size=4)))
                stamps.append(stamp)
        feed(node, internal, msgs)
        for t in [0, *stamps, *(s + 1 for s in stamps), *(s - S // 4 for s in stamps)]:
            a, b = (f"r{int(i)}" for i in rng.integers(0, 7, 2))
            assert_same(adapter, internal, a, b, t)
            compared += 1
    assert compared > 500


@pytest.mark.parametrize("variant", ["message", "round_trip"])
def test_both_backends_take_a_hand_typed_quaternion_and_normalise_it(tf2_ros, monkeypatch, variant):
    """setTransformImpl: (0, 0, 0.71, 0.71), |q|^2 = 1.0082, is used, normalised (both tf2 variants)."""
    monkeypatch.setattr(tf2_ros.Buffer, "quaternion_check", variant)
    node, adapter, internal = both_buffers(tf2_ros)
    feed(node, internal, [ts("base_link", "camera_link", 0, (0.1, 0, 0.2), (0, 0, 0.71, 0.71), normalise=False)],
         static=True)
    T = assert_same(adapter, internal, "base_link", "camera_link", 10 * S)
    np.testing.assert_allclose(T[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)


def test_both_backends_ignore_a_zero_quaternion_the_frame_never_appears(tf2_ros):
    """setTransformImpl refuses it; the lookup is then a wait-able ConnectivityError, not a ValueError."""
    node, adapter, internal = both_buffers(tf2_ros)
    feed(node, internal, [ts("base_link", "bad", 10 * S, (0, 0, 0), (0, 0, 0, 0), normalise=False)])
    assert adapter.core.ignored and "bad" not in internal.frames()
    assert assert_same(adapter, internal, "map", "bad", 10 * S) == (ConnectivityError,)


def test_quaternion_far_from_unit_is_the_documented_difference_with_humble_and_jazzy(tf2_ros, monkeypatch):
    """Humble/Jazzy tf2 tests |q|^2 after a matrix round trip, so (0, 0, 0, 2) passes there; we refuse it
    (as the tf2 source states the rule and Rolling applies it). docs/real_robot.md says so."""
    monkeypatch.setattr(tf2_ros.Buffer, "quaternion_check", "round_trip")
    node, adapter, internal = both_buffers(tf2_ros)
    feed(node, internal, [ts("base_link", "cam2", 10 * S, (0, 0, 0), (0, 0, 0, 2), normalise=False)])
    np.testing.assert_allclose(adapter.lookup("base_link", "cam2", 10 * S), np.eye(4))
    with pytest.raises(ConnectivityError):
        internal.lookup("base_link", "cam2", 10 * S)


def test_infinite_translation_differs_only_in_the_kind_of_refusal(tf2_ros):
    """tf2 stores an infinite translation (TF_NAN_INPUT tests isnan): the adapter turns each lookup
    through it into a TransformError; TransformBuffer never stores it (ConnectivityError). Both refuse
    the frame, neither returns a non-finite pose (docs/real_robot.md)."""
    node, adapter, internal = both_buffers(tf2_ros)
    feed(node, internal, [ts("base_link", "far", 10 * S, (float("inf"), 0, 0), (0, 0, 0, 1))])
    assert outcome(adapter, "base_link", "far", 10 * S) == (TransformError,)
    assert outcome(internal, "base_link", "far", 10 * S) == (ConnectivityError,)


def test_both_backends_cache_boundary_one_nanosecond_at_1_7e9_s(tf2_ros):
    """cache.cpp insertData: TF_OLD_DATA below newest - cache_time, kept at exactly the boundary."""
    node, adapter, internal = both_buffers(tf2_ros)
    newest = 1_700_000_020 * S
    feed(node, internal, [ts("chassis", "wheel", newest, (20, 0, 0), (0, 0, 0, 1)),
                          ts("chassis", "wheel", newest - 10 * S - 1, (9, 0, 0), (0, 0, 0, 1)),
                          ts("chassis", "wheel", newest - 10 * S, (10, 0, 0), (0, 0, 0, 1)),
                          ts("chassis", "wheel", newest - 10 * S + 1, (11, 0, 0), (0, 0, 0, 1))])
    for t, want in ((newest - 10 * S, 10), (newest - 10 * S + 1, 11)):
        assert assert_same(adapter, internal, "chassis", "wheel", t)[0, 3] == pytest.approx(want)
    assert assert_same(adapter, internal, "chassis", "wheel", newest - 10 * S - 1) == (ExtrapolationError, False)


def test_both_backends_identity_latest_common_time_cleared_links_and_lazy_pruning(tf2_ros):
    """lookupTransformImpl identity; getLatestCommonTime(x, x); clear + time 0; insertData pruning."""
    node, adapter, internal = both_buffers(tf2_ros, cache_time=1.0)
    assert np.array_equal(adapter.lookup("ghost", "ghost", 0), np.eye(4))
    assert np.array_equal(internal.lookup("ghost", "ghost", 0), np.eye(4))
    assert adapter.latest_common_time("odom", "odom") == internal.latest_common_time("odom", "odom") == 11 * S
    assert adapter.latest_common_time("camera_optical", "camera_optical") == 0
    for k in (0.0, 0.5, 1.0, 2.0):  # pruning: only at the next insertion, against the previous newest
        feed(node, internal, [ts("map", "tag", 20 * S + int(k * S), (k, 0, 0), (0, 0, 0, 1))])
    assert_same(adapter, internal, "map", "tag", 20 * S + S // 4)
    feed(node, internal, [ts("map", "tag", 22 * S, (2, 0, 0), (0, 0, 0, 1))])
    assert assert_same(adapter, internal, "map", "tag", 20 * S + S // 4) == (ExtrapolationError, False)
    adapter.clear()
    internal.clear()
    assert assert_same(adapter, internal, "map", "camera_optical", 0) == (ConnectivityError,)
    assert assert_same(adapter, internal, "map", "camera_optical", 10 * S) == (ExtrapolationError, True)


def test_signal_listener_retries_and_clears_tf2_on_a_jump_back(tf2_ros):
    """With tf2_ros our TfListener only signals: every /tf message retries, stamps jumping back clear."""
    node, adapter, _ = both_buffers(tf2_ros)
    updates, jumps = [], []
    listener = tf_listener.TfListener(node, adapter, on_update=lambda: updates.append(1),
                                      jump_threshold=1.0, on_jump=jumps.append, store=False)
    from tf2_msgs.msg import TFMessage
    node.deliver("/tf", TFMessage(transforms=[ts("map", "odom", 12 * 10**9, (1, 1, 0), (0, 0, 0, 1))]))
    assert updates and listener.received == 1 and adapter.core.cleared == 0
    # bag loop: stamps back at 1 s; the first message reaches tf2 before the clear and is ignored as old
    loop = [ts("map", "odom", 1 * 10**9, (5, 0, 0), (0, 0, 0, 1)),
            ts("odom", "base_link", 1 * 10**9, (0, 0, 0), (0, 0, 0, 1))]
    node.deliver("/tf", TFMessage(transforms=loop))
    assert jumps and jumps[0] == pytest.approx(11.0) and adapter.core.cleared == 1
    node.deliver("/tf", TFMessage(transforms=loop))  # the next one is stored
    np.testing.assert_allclose(adapter.lookup("map", "base_link", 1 * S)[:3, 3], [5, 0, 0])


def test_tf_backend_selection_by_parameter_and_importability(tf2_ros, monkeypatch):
    assert SPECS["tf_backend"].default == "auto"
    assert tf_listener.select_tf_backend("auto") == "tf2_ros"
    assert tf_listener.select_tf_backend("tf2_ros") == "tf2_ros"
    assert tf_listener.select_tf_backend("internal") == "internal"
    assert isinstance(tf_listener.make_tf_buffer(FakeNode(), "tf2_ros", 5.0), tf_listener.Tf2RosBuffer)
    assert isinstance(tf_listener.make_tf_buffer(FakeNode(), "internal", 5.0), TransformBuffer)
    monkeypatch.setitem(sys.modules, "tf2_ros", None)  # import now raises ImportError
    assert tf_listener.select_tf_backend("auto") == "internal"
    with pytest.raises(RuntimeError, match="tf2_ros is not importable"):
        tf_listener.select_tf_backend("tf2_ros")
    with pytest.raises(ValueError):
        tf_listener.select_tf_backend("tf3")


# -- synchronisation -------------------------------------------------------------------------------------

def img(stamp_ns: int, frame: str = "cam") -> Image:
    return Image(header=Header(stamp=TimeMsg(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame))


TOPICS = [(Image, "a"), (Image, "b"), (Image, "c")]


def run_backend(backend: str, arrivals, slop=0.020, queue=10, n=3, admit=None):
    """Deliver (input index, stamp ns) arrivals; returns the emitted sets as stamp tuples, and the sync."""
    node, out = FakeNode(), []

    def default_admit(i, msg):
        return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec

    _, sync = sync_mod.subscribe_synchronized(
        node, TOPICS[:n], None, queue, slop, lambda *m: out.append(tuple(x.header.stamp.nanosec for x in m)),
        admit or default_admit, backend=backend)
    for i, stamp in arrivals:
        node.deliver(TOPICS[i][1], img(stamp))
    return out, sync


ISSUE_CASES = [  # test/core/test_approx_sync.py; stamps below 1 s, so nanosec is the whole stamp
    ([(0, 0), (2, 14_050_000), (2, 20_490_000), (1, 19_160_000)], [(0, 19_160_000, 14_050_000)]),
    ([(2, 0), (0, 11_190_000), (2, 18_040_000), (1, 2_830_000)], [(11_190_000, 2_830_000, 0)]),
]


@pytest.mark.parametrize("arrivals,expected", ISSUE_CASES)
def test_message_filters_path_emits_the_issue_sets(message_filters, arrivals, expected):
    got, sync = run_backend("message_filters", arrivals)
    assert isinstance(sync, sync_mod.MessageFiltersSync)
    assert got == expected == run_backend("internal", arrivals)[0]


def test_message_filters_path_matches_internal_on_random_streams(message_filters):
    rng = random.Random(7)
    for _ in range(40):
        n, queue, slop = rng.choice([2, 3]), rng.choice([1, 3, 10]), rng.choice([5, 20]) * MS
        arrivals = [(rng.randrange(n), rng.randrange(0, 200) * MS // 2) for _ in range(rng.randrange(5, 40))]
        mf, _ = run_backend("message_filters", arrivals, slop / 1e9, queue, n)
        own, _ = run_backend("internal", arrivals, slop / 1e9, queue, n)
        assert mf == own


def test_admit_refuses_before_message_filters_sees_the_message(message_filters):
    refused = []

    def admit(i, msg):
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        if stamp == 0:
            refused.append(i)
            return None
        return stamp

    got, sync = run_backend("message_filters", [(0, 0), (1, 0), (0, 5 * MS)], admit=admit, n=2)
    assert refused == [0, 1] and got == [] and sync.queued() == [1, 0]
    assert sync.dropped == sync.replaced == sync_mod.NOT_AVAILABLE


def test_message_filters_reset_clears_queues_like_internal(message_filters):
    arrivals = [(0, 900 * MS), (1, 500 * MS), (0, 100 * MS), (1, 950 * MS + 30 * MS)]
    _, mf = run_backend("message_filters", arrivals, n=2)
    _, own = run_backend("internal", arrivals, n=2)
    assert mf.queued() == own.queued() == [2, 2]
    assert mf.reset(newer_than_ns=600 * MS) == own.reset(newer_than_ns=600 * MS) == 2  # the old run's
    assert mf.queued() == own.queued() == [1, 1]
    assert mf.reset() == 2 and mf.queued() == [0, 0]


def test_sync_backend_selection_by_parameter_and_importability(message_filters, monkeypatch):
    assert SPECS["sync_backend"].default == "auto"
    assert sync_mod.select_sync_backend("auto") == "message_filters"
    assert sync_mod.select_sync_backend("internal") == "internal"
    monkeypatch.setitem(sys.modules, "message_filters", None)
    assert sync_mod.select_sync_backend("auto") == "internal"
    with pytest.raises(RuntimeError, match="message_filters is not importable"):
        sync_mod.select_sync_backend("message_filters")


# -- the real node with both stand-ins on its PYTHONPATH (tf_backend / sync_backend auto), over DDS --------

@pytest.fixture
def standin_node(client, start_node, monkeypatch):
    """Start the node with the stand-ins importable (PYTHONPATH); returns (node, robot, captures)."""
    import os

    from diagnostic_msgs.msg import DiagnosticArray
    from harness import TopicCapture
    from sensor_msgs.msg import PointCloud2
    from test_robot_inputs import NODE, Robot

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(STANDINS), os.environ.get("PYTHONPATH")])))

    def start(**params):
        node = start_node(pose_source="tf", map_frame="odom", **(NODE | params))
        robot = Robot(client)
        robot.wait_for(robot.rgb, robot.depth, robot.info, robot.tf, robot.tf_static)
        robot.static()
        captures = (TopicCapture(client, Image, "/radseg/labels"), TopicCapture(client, PointCloud2,
                    "/radseg/semantic_cloud"), TopicCapture(client, DiagnosticArray, "/diagnostics"))
        return node, robot, captures

    return start


def test_node_with_tf2_ros_and_message_filters_waits_for_late_tf_and_maps_the_geometry(client, standin_node):
    """pose_source tf through tf2_ros + message_filters: the TF arriving after the image is waited for."""
    from test_robot_inputs import map_with_late_tf

    node, robot, (labels, clouds, diag) = standin_node(time_jump_threshold=100.0)
    d = map_with_late_tf(client, node, robot, labels, clouds, diag)
    assert d["tf_backend"] == "tf2_ros" and d["sync_backend"] == "message_filters"
    assert d["dropped_sync_queue"] == sync_mod.NOT_AVAILABLE


def test_node_with_tf2_ros_and_message_filters_keeps_mapping_through_a_bag_loop(client, standin_node):
    """test_robot_inputs' bag loop with the real-library paths: tf2's buffer and the synchroniser's
    queues are cleared on the jump back, mapping continues at once."""
    from test_robot_inputs import T0, diagnostics

    node, robot, (labels, _, diag) = standin_node()
    for _ in range(2):
        robot.odom_tf(T0, T0 + 3.0)
        for t in (T0 + 0.2, T0 + 2.8):  # a 3 s bag: stamps go back 2.6 s when it restarts
            n = len(labels.messages)
            robot.camera(t)
            labels.wait(n + 1)
    d = diagnostics(diag, client, integrated=4, time_jumps_back=1, tf_time_jumps_back=1)
    assert d["tf_backend"] == "tf2_ros" and d["sync_backend"] == "message_filters" and d["rejected"] == "0"
    assert "time jumped back" in node.log() and "TF time jumped back" in node.log()
