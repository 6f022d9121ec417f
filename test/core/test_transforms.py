"""TransformBuffer against hand-composed 4x4 matrices and the tf2 BufferCore rules it claims."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radseg_core.transforms import (
    ConnectivityError,
    ExtrapolationError,
    InvalidArgumentError,
    TransformBuffer,
    TransformError,
    camera_pose,
    extrinsic,
)
from radseg_core.transforms import seconds_to_ns as ns


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def q_z(a: float) -> list[float]:
    return [0.0, 0.0, math.sin(a / 2), math.cos(a / 2)]


def q_x(a: float) -> list[float]:
    return [math.sin(a / 2), 0.0, 0.0, math.cos(a / 2)]


def T(R: np.ndarray, t) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = R
    M[:3, 3] = t
    return M


def robot_tree(buf: TransformBuffer) -> dict[str, np.ndarray]:
    """map -> odom (static) -> base_link (dynamic at t=1) -> cam (static), + a sibling laser under base."""
    mats = {
        "odom": T(rot_z(0.3), [1.0, 2.0, 0.0]),
        "base_link": T(rot_z(-0.7), [0.5, -0.2, 0.0]),
        "cam": T(rot_x(-1.2), [0.3, 0.0, 0.9]),
        "laser": T(rot_z(math.pi), [-0.1, 0.05, 0.4]),
    }
    buf.set_transform("map", "odom", ns(0.0), mats["odom"][:3, 3], q_z(0.3), static=True)
    buf.set_transform("odom", "base_link", ns(1.0), mats["base_link"][:3, 3], q_z(-0.7))
    buf.set_transform("base_link", "cam", ns(0.0), mats["cam"][:3, 3], q_x(-1.2), static=True)
    buf.set_transform("base_link", "laser", ns(0.0), mats["laser"][:3, 3], q_z(math.pi), static=True)
    return mats


def test_chain_inverse_and_siblings_match_hand_composition():
    buf = TransformBuffer()
    m = robot_tree(buf)
    map_cam = m["odom"] @ m["base_link"] @ m["cam"]
    np.testing.assert_allclose(buf.lookup("map", "cam", ns(1.0)), map_cam, atol=1e-12)
    np.testing.assert_allclose(buf.lookup("cam", "map", ns(1.0)), np.linalg.inv(map_cam), atol=1e-12)
    # siblings: common parent base_link, not the root
    np.testing.assert_allclose(buf.lookup("laser", "cam", ns(1.0)), np.linalg.inv(m["laser"]) @ m["cam"], atol=1e-12)
    np.testing.assert_allclose(buf.lookup("cam", "cam", ns(1.0)), np.eye(4))
    p_cam = np.array([0.1, -0.2, 2.0, 1.0])
    assert np.allclose(buf.lookup("map", "cam", ns(1.0)) @ p_cam, m["odom"] @ (m["base_link"] @ (m["cam"] @ p_cam)))
    assert buf.frames() == {"map", "odom", "base_link", "cam", "laser"}


def test_interpolation_lerp_translation_slerp_rotation():
    buf = TransformBuffer()
    buf.set_transform("odom", "base", ns(10.0), [0.0, 0.0, 0.0], q_z(0.2))
    buf.set_transform("odom", "base", ns(11.0), [2.0, -1.0, 0.5], q_z(1.0))
    got = buf.lookup("odom", "base", ns(10.25))
    np.testing.assert_allclose(got, T(rot_z(0.2 + 0.25 * 0.8), [0.5, -0.25, 0.125]), atol=1e-12)
    # exact sample stamps need no neighbour
    np.testing.assert_allclose(buf.lookup("odom", "base", ns(11.0)), T(rot_z(1.0), [2.0, -1.0, 0.5]), atol=1e-12)


def test_slerp_takes_the_short_arc_for_sign_flipped_quaternions():
    buf = TransformBuffer()
    buf.set_transform("a", "b", ns(0.0), [0, 0, 0], q_z(0.1))
    buf.set_transform("a", "b", ns(1.0), [0, 0, 0], [-v for v in q_z(0.3)])  # same rotation, other sign
    np.testing.assert_allclose(buf.lookup("a", "b", ns(0.5))[:3, :3], rot_z(0.2), atol=1e-12)


def test_extrapolation_future_and_past_are_flagged():
    buf = TransformBuffer()
    buf.set_transform("odom", "base", ns(5.0), [0, 0, 0], q_z(0))
    buf.set_transform("odom", "base", ns(6.0), [1, 0, 0], q_z(0))
    with pytest.raises(ExtrapolationError, match="future") as e:
        buf.lookup("odom", "base", ns(6.001))
    assert e.value.future
    with pytest.raises(ExtrapolationError, match="past") as e:
        buf.lookup("base", "odom", ns(4.9))
    assert not e.value.future
    assert isinstance(e.value, TransformError) and isinstance(e.value, LookupError)
    assert not buf.can_transform("odom", "base", ns(7.0)) and buf.can_transform("odom", "base", ns(5.5))


def test_single_sample_only_at_its_own_stamp():
    buf = TransformBuffer()
    buf.set_transform("odom", "base", ns(3.0), [1, 2, 3], q_z(0))
    assert buf.can_transform("odom", "base", ns(3.0))
    assert not buf.can_transform("odom", "base", ns(3.0000001))


def test_static_links_hold_at_any_time_and_zero_is_latest_common_time():
    buf = TransformBuffer()
    m = robot_tree(buf)
    np.testing.assert_allclose(buf.lookup("base_link", "cam", ns(12345.0)), m["cam"])
    buf.set_transform("odom", "base_link", ns(2.0), [1.5, -0.2, 0.0], q_z(-0.7))
    # latest common time of map->cam is the newest base_link sample (odom link is static)
    assert buf.latest_common_time("map", "cam") == ns(2.0)
    np.testing.assert_allclose(buf.lookup("map", "cam", ns(0.0)), buf.lookup("map", "cam", ns(2.0)))
    assert buf.latest_common_time("base_link", "cam") == 0  # all static


def test_latest_message_decides_static_or_dynamic_like_tf2():
    buf = TransformBuffer()
    buf.set_transform("map", "odom", ns(0.0), [1, 0, 0], q_z(0), static=True)
    buf.set_transform("map", "odom", ns(2.0), [2, 0, 0], q_z(0))  # now dynamic: only valid at its stamp
    assert not buf.can_transform("map", "odom", ns(1.0))
    assert buf.lookup("map", "odom", ns(2.0))[0, 3] == 2.0
    buf.set_transform("map", "odom", ns(0.0), [3, 0, 0], q_z(0), static=True)
    assert buf.lookup("map", "odom", ns(99.0))[0, 3] == 3.0


def test_latest_common_time_is_the_oldest_newest_sample_of_the_chain():
    buf = TransformBuffer()
    buf.set_transform("map", "odom", ns(1.0), [0, 0, 0], q_z(0))
    buf.set_transform("map", "odom", ns(2.0), [1, 0, 0], q_z(0))
    buf.set_transform("odom", "base", ns(1.0), [0, 0, 0], q_z(0))
    buf.set_transform("odom", "base", ns(3.0), [0, 4, 0], q_z(0))
    assert buf.latest_common_time("map", "base") == ns(2.0)
    np.testing.assert_allclose(buf.lookup("map", "base", ns(0.0))[:3, 3], [1.0, 2.0, 0.0], atol=1e-12)


def test_history_is_bounded_by_cache_time_and_old_data_ignored():
    """Lazy like tf2's TimeCache::insertData: inserting 5.0 s prunes against the previous newest (4.5 s)."""
    buf = TransformBuffer(cache_time=2.0)
    for k in range(11):  # 0 .. 5 s at 2 Hz
        assert buf.set_transform("odom", "base", ns(0.5 * k), [float(k), 0, 0], q_z(0))
    with pytest.raises(ExtrapolationError) as e:
        buf.lookup("odom", "base", ns(2.0))  # pruned: older than 4.5 - 2
    assert not e.value.future
    assert buf.can_transform("odom", "base", ns(2.5))  # kept until the next insertion
    assert buf.set_transform("odom", "base", ns(1.0), [9, 9, 9], q_z(0)) is False  # TF_OLD_DATA
    assert not buf.can_transform("odom", "base", ns(1.0))


def test_clear_drops_dynamic_history_keeps_static():
    buf = TransformBuffer()
    m = robot_tree(buf)
    buf.clear()
    np.testing.assert_allclose(buf.lookup("base_link", "cam", ns(0.0)), m["cam"])
    with pytest.raises(ExtrapolationError) as e:
        buf.lookup("map", "cam", ns(1.0))
    assert e.value.future  # data may arrive again
    buf.set_transform("odom", "base_link", ns(0.5), m["base_link"][:3, 3], q_z(-0.7))  # earlier than before clear
    np.testing.assert_allclose(buf.lookup("map", "cam", ns(0.5)), m["odom"] @ m["base_link"] @ m["cam"], atol=1e-12)


def test_unknown_and_disconnected_frames_and_bad_input():
    buf = TransformBuffer()
    robot_tree(buf)
    buf.set_transform("world", "other", ns(1.0), [0, 0, 0], q_z(0))
    with pytest.raises(ConnectivityError, match="does not exist"):
        buf.lookup("map", "nope", ns(1.0))
    with pytest.raises(ConnectivityError, match="same tree"):
        buf.lookup("map", "other", ns(1.0))
    with pytest.raises(InvalidArgumentError, match="empty"):
        buf.lookup("", "cam", ns(1.0))
    with pytest.raises(ValueError, match="itself"):
        buf.set_transform("a", "a", ns(0.0), [0, 0, 0], q_z(0))
    with pytest.raises(ValueError, match="DENORMALIZED"):
        buf.set_transform("a", "b", ns(0.0), [0, 0, 0], [0, 0, 0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        buf.set_transform("a", "b", ns(0.0), [0, float("nan"), 0], q_z(0))
    with pytest.raises(ValueError, match="frame ids"):
        buf.set_transform("", "b", ns(0.0), [0, 0, 0], q_z(0))


def test_leading_slash_is_stripped_on_insert_refused_in_lookups_like_tf2():
    buf = TransformBuffer()
    buf.set_transform("/odom", "/base", ns(1.0), [1, 0, 0], q_z(0))
    assert buf.lookup("odom", "base", ns(1.0))[0, 3] == 1.0
    with pytest.raises(InvalidArgumentError, match="cannot start with a '/'"):
        buf.lookup("/odom", "base", ns(1.0))


def test_camera_pose_odometry_with_extrinsic_from_tf_or_parameter():
    buf = TransformBuffer()
    m = robot_tree(buf)
    T_odom_base = T(rot_z(0.4), [2.0, 1.0, 0.0])  # an Odometry message of base_link in odom
    want = m["odom"] @ T_odom_base @ m["cam"]
    got = camera_pose(T_odom_base, parent_frame="odom", body_frame="base_link", camera_frame="cam",
                      map_frame="map", stamp_ns=ns(1.0), buffer=buf)
    np.testing.assert_allclose(got, want, atol=1e-12)
    # no TF at all: pose already in map, extrinsic from a parameter
    ext = extrinsic(m["cam"][:3, 3], q_x(-1.2))
    got = camera_pose(T_odom_base, parent_frame="map", body_frame="base_link", camera_frame="cam",
                      map_frame="map", stamp_ns=ns(1.0), extrinsic=ext)
    np.testing.assert_allclose(got, T_odom_base @ m["cam"], atol=1e-12)
    # never silently identity
    with pytest.raises(ConnectivityError, match="not the map frame"):
        camera_pose(T_odom_base, parent_frame="odom", body_frame="cam", camera_frame="cam", map_frame="map",
                    stamp_ns=ns(1.0))
    with pytest.raises(ConnectivityError, match="extrinsic"):
        camera_pose(T_odom_base, parent_frame="map", body_frame="base_link", camera_frame="cam",
                    map_frame="map", stamp_ns=ns(1.0))
    with pytest.raises(TransformError, match="empty"):
        camera_pose(T_odom_base, parent_frame="", body_frame="cam", camera_frame="cam", map_frame="map",
                    stamp_ns=ns(1.0))


def random_rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    from radseg_core.geometry import quaternion_to_rotation

    return quaternion_to_rotation(q), q


def test_random_trees_match_root_path_reference():
    """Random 12-frame trees, static and dynamic links, lookups at sample stamps: T = inv(root<-t) @ (root<-s)."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        buf = TransformBuffer()
        parent = {f"f{k}": f"f{int(rng.integers(0, k))}" for k in range(1, 12)}
        stamps = [1.0, 2.0, 3.0]
        mats: dict[tuple[str, float], np.ndarray] = {}
        for child, par in parent.items():
            static = rng.random() < 0.4
            for t in ([0.0] if static else stamps):
                R, q = random_rotation(rng)
                tr = rng.normal(size=3)
                buf.set_transform(par, child, ns(t), tr, q, static=static)
                for tt in (stamps if static else [t]):
                    mats[(child, tt)] = T(R, tr)

        for _ in range(10):
            a, b = (f"f{int(i)}" for i in rng.integers(0, 12, 2))
            t = float(rng.choice(stamps))
            want = np.linalg.inv(to_root(a, t, parent, mats)) @ to_root(b, t, parent, mats)
            np.testing.assert_allclose(buf.lookup(a, b, ns(t)), want, atol=1e-9)


def to_root(f: str, t: float, parent: dict, mats: dict) -> np.ndarray:
    """Plain reference: multiply the link matrices up the parent chain to the root."""
    M = np.eye(4)
    while f in parent:
        M = mats[(f, t)] @ M
        f = parent[f]
    return M


def rot_log(R: np.ndarray) -> np.ndarray:
    angle = math.acos(max(-1.0, min(1.0, (np.trace(R) - 1) / 2)))
    if angle < 1e-12:
        return np.zeros(3)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (2 * math.sin(angle))
    return angle * w


def rot_exp(v: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    k = v / angle
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * Kx + (1 - math.cos(angle)) * Kx @ Kx


def test_interpolation_between_samples_matches_geodesic_reference():
    """Between samples: translation lerp, rotation along the geodesic R0 exp(r log(R0^T R1)) (slerp's rotation)."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        buf = TransformBuffer()
        (R0, q0), (R1, q1) = random_rotation(rng), random_rotation(rng)
        t0, t1 = rng.normal(size=3), rng.normal(size=3)
        buf.set_transform("a", "b", ns(10.0), t0, q0)
        buf.set_transform("a", "b", ns(10.5), t1, q1)
        r = float(rng.uniform(0, 1))
        want = T(R0 @ rot_exp(r * rot_log(R0.T @ R1)), t0 + r * (t1 - t0))
        np.testing.assert_allclose(buf.lookup("a", "b", ns(10.0 + 0.5 * r)), want, atol=1e-7)
