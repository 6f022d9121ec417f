"""Bad input never stops the node and never damages the map: each case is refused with a reason.

One node serves the module. Every test ends by checking the node is alive and the map still has the
voxels it had before the bad input (through the real save_map service).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from harness import TopicCapture, synthetic_frame
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from sensor_msgs.msg import Image, PointCloud2

from radseg_ros.conversions import read_cloud
from radseg_ros.srv import MapFile, TextQuery


def voxels(client, node) -> int:
    res = client.call(MapFile, "/radseg/save_map", MapFile.Request(path="probe.rsmap"), proc=node)
    assert res.success, res.message
    return res.voxels


@pytest.fixture(scope="module")
def labels(client, mapping_node):
    return TopicCapture(client, Image, "/radseg/labels")


@pytest.fixture(scope="module")
def seeded(client, mapping_node, frames, labels):
    """Map a few good frames first so there is something to lose."""
    stamp = 100.0
    for i in range(3):
        n = len(labels.messages)
        frames.publish_synthetic(i, stamp_s=stamp + i)
        labels.wait(n + 1)
    return voxels(client, mapping_node)


class Stamps:
    """Increasing stamps across the module (a stamp far older than the newest is a jump back in time)."""

    t = 200.0

    @classmethod
    def next(cls) -> float:
        cls.t += 1.0
        return cls.t


def publish_and_settle(client, frames, **kw) -> None:
    f = synthetic_frame(0)
    args = {"rgb": f["rgb"], "depth": f["depth_mm"], "K": f["K"], "position": f["position"],
            "quaternion": f["quaternion"]}
    args.update(kw)
    frames.publish(Stamps.next(), **args)
    client.spin_for(1.5)


def assert_intact(client, node, expected: int) -> None:
    assert node.alive(), node.log()
    assert voxels(client, node) == expected


def good_frame_still_works(client, frames, labels) -> None:
    n = len(labels.messages)
    f = synthetic_frame(0)
    frames.publish(Stamps.next(), f["rgb"], f["depth_mm"], f["K"], f["position"], f["quaternion"])
    labels.wait(n + 1)


@pytest.mark.parametrize(
    "kw",
    [
        pytest.param({"rgb_encoding": "yuv422"}, id="unsupported-colour-encoding"),
        pytest.param({"depth_encoding": "rgb8"}, id="colour-on-depth-topic"),
        pytest.param({"depth": np.full((100, 100), 2000, np.uint16)}, id="depth-size-not-registered"),
        pytest.param({"rgb": np.zeros((120, 160), np.uint16), "rgb_encoding": "rgb8"}, id="data-too-short"),
        pytest.param({"quaternion": (0.0, 0.0, 0.0, 2.0)}, id="non-unit-quaternion"),
        pytest.param({"quaternion": (float("nan"), 0.0, 0.0, 1.0)}, id="nan-quaternion"),
        pytest.param({"position": (float("inf"), 0.0, 0.0)}, id="inf-position"),
        pytest.param({"info_size": (320, 100)}, id="camera-info-other-aspect"),
    ],
)
def test_bad_frame_is_refused(client, mapping_node, frames, labels, seeded, kw):
    before = voxels(client, mapping_node)
    n = len(labels.messages)
    publish_and_settle(client, frames, **kw)
    assert len(labels.messages) == n, "a bad frame was processed"
    assert "input rejected" in mapping_node.log()
    assert_intact(client, mapping_node, before)
    good_frame_still_works(client, frames, labels)


def test_accepts_lower_resolution_depth_and_slightly_non_unit_quaternion(client, mapping_node, frames, labels,
                                                                          seeded):
    n = len(labels.messages)
    f = synthetic_frame(0)
    half = f["depth_mm"][::2, ::2].copy()
    frames.publish(Stamps.next(), f["rgb"], half, f["K"], f["position"], (0.0, 0.0, 0.0, 1.0004))
    labels.wait(n + 1)
    assert mapping_node.alive()


def test_nan_and_zero_depth_are_ignored(client, mapping_node, frames, labels, seeded):
    f = synthetic_frame(0)
    depth = np.full(f["depth_mm"].shape, 2.0, np.float32)
    depth[:40] = np.nan
    depth[40:60] = 0.0
    depth[60:70] = np.inf
    n = len(labels.messages)
    frames.publish(Stamps.next(), f["rgb"], depth, f["K"], (0.0, 0.0, 0.0), f["quaternion"],
                   depth_encoding="32FC1")
    labels.wait(n + 1)
    cloud = TopicCapture(client, PointCloud2, "/radseg/semantic_cloud").wait(1, timeout=10)[-1]
    cols = read_cloud(cloud)
    xyz = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)
    assert np.isfinite(xyz).all()
    assert np.all(np.abs(cols["z"] - 2.0) < 0.05)  # nothing at depth 0 or infinity


def test_frame_with_zero_points_is_warned_and_counted(client, mapping_node, frames, labels, seeded):
    diag = TopicCapture(client, DiagnosticArray, "/diagnostics")
    before = voxels(client, mapping_node)
    f = synthetic_frame(0)
    n = len(labels.messages)
    frames.publish(Stamps.next(), f["rgb"], np.zeros_like(f["depth_mm"]), f["K"], f["position"], f["quaternion"])
    labels.wait(n + 1)  # segmented, nothing to integrate
    end = time.monotonic() + 10
    while True:
        client.spin_for(0.3)
        status = diag.messages[-1].status[0] if diag.messages else None
        values = {kv.key: kv.value for kv in status.values} if status else {}
        if int(values.get("zero_point_frames", 0)) >= 1 or time.monotonic() > end:
            break
    assert int(values["zero_point_frames"]) >= 1 and status.level == DiagnosticStatus.WARN
    assert "integrated zero points" in values["last_error"] and "integrated zero points" in mapping_node.log()
    assert_intact(client, mapping_node, before)
    good_frame_still_works(client, frames, labels)
    client.spin_for(1.5)
    assert diag.messages[-1].status[0].level == DiagnosticStatus.OK  # good frames bring it back


def test_camera_info_changing_size_is_warned_counted_and_rescaled(client, mapping_node, frames, labels, seeded):
    diag = TopicCapture(client, DiagnosticArray, "/diagnostics")
    f = synthetic_frame(0)
    n = len(labels.messages)
    # the driver switches to 320x240 calibration while images stay 160x120: same aspect, K is rescaled
    frames.publish(Stamps.next(), f["rgb"], f["depth_mm"], f["K"] * np.array([[2], [2], [1]]), f["position"],
                   f["quaternion"], info_size=(320, 240))
    labels.wait(n + 1)
    end = time.monotonic() + 10
    values = {}
    while int(values.get("camera_info_size_changes", 0)) < 1 and time.monotonic() < end:
        client.spin_for(0.3)
        values = {kv.key: kv.value for kv in diag.messages[-1].status[0].values} if diag.messages else {}
    assert int(values["camera_info_size_changes"]) >= 1
    assert "camera_info size changed from (160, 120) to (320, 240)" in mapping_node.log()
    good_frame_still_works(client, frames, labels)


def test_jump_back_in_time_resets_sync_and_keeps_mapping(client, mapping_node, frames, labels, seeded):
    good_frame_still_works(client, frames, labels)
    after_good = voxels(client, mapping_node)
    n = len(labels.messages)
    f = synthetic_frame(0)
    frames.publish(Stamps.t - 50.0, f["rgb"], f["depth_mm"], f["K"], f["position"], f["quaternion"])
    labels.wait(n + 1)  # mapped at once, not after stamps pass the old maximum
    assert "time jumped back 50.000 s" in mapping_node.log() and "map kept" in mapping_node.log()
    assert_intact(client, mapping_node, after_good)  # the same view: no voxel lost, none added
    good_frame_still_works(client, frames, labels)  # and forward again


@pytest.mark.parametrize(
    ("queries", "reason"),
    [
        ([], "no queries"),
        (["chair"] * 10_000, "exceed max_queries"),
        (["   "], "empty"),
        (["x" * 100_000], "characters"),
    ],
    ids=["empty-list", "huge-list", "blank-text", "huge-text"],
)
def test_bad_queries_are_refused(client, mapping_node, seeded, queries, reason):
    before = voxels(client, mapping_node)
    res = client.call(TextQuery, "/radseg/query", TextQuery.Request(queries=queries, top_k=3))
    assert not res.success
    assert reason in res.message
    assert_intact(client, mapping_node, before)


def test_unicode_queries_are_answered(client, mapping_node, seeded):
    res = client.call(TextQuery, "/radseg/query", TextQuery.Request(queries=["椅子", "chaise rouge ✓"], top_k=1))
    assert res.success, res.message
    assert set(res.query_index) == {0, 1}


@pytest.mark.parametrize("path", ["../outside.rsmap", "/etc/passwd", "a/../../b.rsmap", ""])
def test_paths_outside_map_directory_are_refused(client, mapping_node, seeded, path):
    before = voxels(client, mapping_node)
    for service in ("/radseg/save_map", "/radseg/load_map"):
        res = client.call(MapFile, service, MapFile.Request(path=path))
        assert not res.success
    assert_intact(client, mapping_node, before)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_corrupt_map_files_leave_the_map_intact(client, mapping_node, seeded, kind):
    before = voxels(client, mapping_node)
    maps = mapping_node.workdir / "maps"
    good = (maps / "probe.rsmap").read_bytes()
    content = {"garbage": b"not a map at all" * 100, "truncated": good[: len(good) // 2], "empty": b""}[kind]
    (maps / f"{kind}.rsmap").write_bytes(content)
    res = client.call(MapFile, "/radseg/load_map", MapFile.Request(path=f"{kind}.rsmap"))
    assert not res.success
    assert "map unchanged" in res.message
    assert res.voxels == before
    assert_intact(client, mapping_node, before)


def _set(client, name: str, value: ParameterValue):
    req = SetParameters.Request(parameters=[Parameter(name=name, value=value)])
    return client.call(SetParameters, "/radseg/set_parameters", req).results[0]


def test_invalid_parameter_changes_are_rejected_with_a_reason(client, mapping_node, seeded):
    res = _set(client, "voxel_size", ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.1))
    assert not res.successful and "start-up" in res.reason
    res = _set(client, "classes", ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=[]))
    assert not res.successful and "classes" in res.reason
    res = _set(client, "prediction_threshold",
               ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=2.0))
    assert not res.successful
    res = _set(client, "min_depth", ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=50.0))
    assert not res.successful and "max_depth" in res.reason
    # a valid live change is accepted
    res = _set(client, "classes",
               ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["wall", "door"]))
    assert res.successful, res.reason
    assert mapping_node.alive()


def test_uncalibrated_camera_info_is_refused_and_last_calibration_kept(client, mapping_node, frames, labels,
                                                                       seeded):
    before = voxels(client, mapping_node)
    n = len(labels.messages)
    publish_and_settle(client, frames, K=np.zeros((3, 3)))
    assert "camera_info has no valid calibration" in mapping_node.log()
    # the frame itself is fine and is mapped with the last valid calibration: same pose, same voxels
    assert len(labels.messages) == n + 1
    assert_intact(client, mapping_node, before)
