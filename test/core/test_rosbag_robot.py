"""A RealSense + odometry + TF robot bag (radseg_core.datasets.writers.write_robot_bag) read and mapped.

Ground truth is the scene's own geometry: camera poses from the written kinematics, a wall at map
x = ROBOT_WALL_X and the floor at z = 0. The map must land on them within one voxel for every pose source.
"""

from __future__ import annotations

import json
import shlex
import struct
from pathlib import Path

import numpy as np
import pytest

from radseg_core.datasets.rosbag import RosbagDataset, decode_compressed_depth
from radseg_core.datasets.writers import (
    ROBOT_HW,
    ROBOT_K,
    ROBOT_STATIC,
    ROBOT_TOPICS,
    ROBOT_WALL_X,
    _render_planes,
    robot_T_map,
    write_robot_bag,
)

T0 = 100.0
COLOR = "camera_color_optical_frame"
DOC = Path(__file__).resolve().parents[2] / "docs" / "real_robot.md"
# The commands docs/real_robot.md gives (checked below to appear there verbatim), run offline here.
DOC_COMMANDS = {
    "odometry": "radseg-map robot_bag --pose-source odometry --map-frame map -o out/robot",
    "tf": "radseg-map robot_bag --pose-source tf --depth-topic /camera/camera/depth/image_rect_raw -o out/robot_tf",
    "pose": "radseg-map robot_bag --pose-source pose --pose-topic /camera_pose -o out/robot_pose",
}
OFFLINE = ["--model", "random-tiny", "--device", "cpu", "--no-progress", "--no-segmentation", "--voxel-size", "0.05"]


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    return write_robot_bag(tmp_path_factory.mktemp("robot") / "robot_bag", n_images=8)


def truth(stamp: float) -> np.ndarray:
    return robot_T_map(COLOR, stamp - T0)


@pytest.mark.parametrize("kw", [
    {"pose_source": "odometry", "map_frame": "map"},
    {"pose_source": "tf"},
    {"pose_source": "pose"},
])
def test_every_pose_source_gives_the_optical_pose_in_map(bag, kw):
    ds = RosbagDataset(bag, **kw)
    assert ds.map_frame == "map" and ds.camera_frame == COLOR
    # raw preferred over /compressed, aligned depth over the depth camera's own
    assert ds.topics["rgb"] == ROBOT_TOPICS["color"] and ds.topics["depth"] == ROBOT_TOPICS["aligned"]
    # odometry (and /tf) start 0.25 s after the first image: two images have no pose, and say so
    assert len(ds) == 6 and sum(ds.skipped.values()) == 2
    for f in ds:
        np.testing.assert_allclose(f.T_world_cam, truth(f.stamp), atol=2e-6)
        gt = _render_planes(truth(f.stamp), ROBOT_K["color"], ROBOT_HW["color"])
        np.testing.assert_allclose(f.depth, gt, atol=6e-4)  # 16UC1 millimetres


def test_odometry_frame_is_related_to_map_through_tf_and_defaults_to_its_own(bag):
    ds = RosbagDataset(bag, pose_source="odometry")  # map frame = the odometry's header frame
    assert ds.map_frame == "odom"
    f = ds[0]
    np.testing.assert_allclose(f.T_world_cam, np.linalg.inv(ROBOT_STATIC["odom"][2]) @ truth(f.stamp), atol=2e-6)


@pytest.mark.parametrize("depth_topic", [ROBOT_TOPICS["depth"], ROBOT_TOPICS["depth"] + "/compressedDepth"])
def test_unaligned_depth_is_registered_into_the_colour_camera(bag, depth_topic):
    ds = RosbagDataset(bag, pose_source="tf", depth_topic=depth_topic)
    assert ds.registered_depth and ds.topics["depth_camera_info"] == ROBOT_TOPICS["depth_info"]
    if "compressed" not in depth_topic:  # sizes read from the CDR bytes without decoding
        assert ds._items[0][2][4] == ROBOT_HW["depth"] and ds._items[0][1][4] == ROBOT_HW["color"]
    f = ds[2]
    assert f.depth.shape == ROBOT_HW["color"]
    gt = _render_planes(truth(f.stamp), ROBOT_K["color"], ROBOT_HW["color"])
    m = (f.depth > 0) & (gt > 0)
    assert m.mean() > 0.5  # a lower-resolution depth camera leaves holes, never wrong values
    err = np.abs(f.depth - gt)[m]
    # nearest-pixel splatting: at most half a colour pixel of slant on the floor (a few cm at 3 m, f = 50)
    assert np.median(err) < 0.005 and err.max() < 0.05
    # the same pixels read as if aligned (depth camera's image resized to the colour size) are far off
    import cv2

    naive = cv2.resize(_render_planes(robot_T_map("camera_depth_optical_frame", f.stamp - T0), ROBOT_K["depth"],
                                      ROBOT_HW["depth"]), ROBOT_HW["color"][::-1], interpolation=cv2.INTER_NEAREST)
    n = (naive > 0) & (gt > 0)
    assert np.median(np.abs(naive - gt)[n]) > 3 * np.median(err)


def test_compressed_depth_decoding_and_refusals():
    import cv2

    d = np.array([[0, 1000], [2500, 65535]], np.uint16)
    png = cv2.imencode(".png", d)[1].tobytes()
    got, enc = decode_compressed_depth("16UC1; compressedDepth png", struct.pack("<iff", 0, 0, 0) + png)
    assert enc == "16UC1" and np.array_equal(got, d)
    # 32FC1: quantised inverse depth v = A / d + B (image_transport's encoder), 0 = no measurement
    A, B = 100.0 * 101.0, 1.0 - 100.0 * 101.0 / 10.0
    depth = np.array([[0.0, 0.5], [1.0, 4.0]], np.float32)
    v = np.where(depth > 0, np.rint(A / np.where(depth > 0, depth, 1) + B), 0).astype(np.uint16)
    got, enc = decode_compressed_depth("32FC1; compressedDepth png",
                                       struct.pack("<iff", 0, A, B) + cv2.imencode(".png", v)[1].tobytes())
    assert enc == "32FC1" and got[0, 0] == 0
    np.testing.assert_allclose(got[depth > 0], depth[depth > 0], rtol=2e-3)
    with pytest.raises(ValueError, match="RVL"):
        decode_compressed_depth("16UC1; compressedDepth rvl", b"\0" * 20)
    with pytest.raises(ValueError, match="compressedDepth"):
        decode_compressed_depth("jpeg", b"\0" * 20)
    with pytest.raises(ValueError, match="16-bit"):
        decode_compressed_depth("16UC1; compressedDepth png", struct.pack("<iff", 0, 0, 0) + b"notapng")


def test_refusals_name_what_is_missing(bag, tmp_path):
    no_info = write_robot_bag(tmp_path / "no_depth_info", n_images=3, compressed_copies=False,
                              omit=("depth_info",))
    with pytest.raises(ValueError, match="not aligned.*no depth camera_info"):
        RosbagDataset(no_info, pose_source="tf", depth_topic=ROBOT_TOPICS["depth"])
    no_static = write_robot_bag(tmp_path / "no_tf_static", n_images=3, compressed_copies=False,
                                omit=("tf_static",))
    with pytest.raises(ValueError, match=r"pose is of frame \[base_link\].*does not relate them"):
        RosbagDataset(no_static, pose_source="odometry")
    with pytest.raises(ValueError, match="does not relate the two"):
        RosbagDataset(no_static, pose_source="pose", depth_topic=ROBOT_TOPICS["depth"])
    # the depth camera's images labelled with the colour frame: sizes disagree, refused rather than fused
    mislabelled = write_robot_bag(tmp_path / "mislabelled", n_images=3, compressed_copies=False,
                                  depth_frame_id=COLOR)
    with pytest.raises(ValueError, match="claims the colour frame .* other intrinsics"):
        RosbagDataset(mislabelled, pose_source="tf", depth_topic=ROBOT_TOPICS["depth"])
    # a map frame TF does not know: every image skipped, the reason given
    with pytest.raises(ValueError, match="none of 8 rgb images.*does not exist"):
        RosbagDataset(bag, pose_source="tf", map_frame="world")


@pytest.mark.parametrize("source", ["odometry", "tf", "pose"])
def test_documented_command_maps_onto_the_walls(bag, tmp_path, monkeypatch, capsys, source):
    from radseg_core.cli import map as map_cli
    from radseg_core.map_io import load_map

    assert DOC_COMMANDS[source] in DOC.read_text(), "docs/real_robot.md must show the command this test runs"
    monkeypatch.chdir(bag.parent)
    argv = shlex.split(DOC_COMMANDS[source])[1:] + OFFLINE
    assert map_cli.main(argv) == 0
    out = bag.parent / argv[argv.index("-o") + 1]
    err = capsys.readouterr().err
    assert "skipped 2 rgb image(s)" in err and f"pose source {source}, map frame map" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["frames_skipped"] == 2 and summary["map_frame"] == "map"
    assert summary["pose_source"] == source and len(summary["skipped"]) == 1
    vmap = load_map(out / "map.rsmap")
    assert vmap.metadata["frame_id"] == "map"
    c = vmap.centers().numpy().astype(np.float64)
    assert len(c) > 200
    # every voxel centre within one voxel of the wall or the floor
    off = np.minimum(np.abs(c[:, 0] - ROBOT_WALL_X), np.abs(c[:, 2]))
    assert off.max() <= vmap.voxel_size, off.max()
    # and both surfaces are there
    assert (np.abs(c[:, 0] - ROBOT_WALL_X) < vmap.voxel_size).sum() > 50
    assert (np.abs(c[:, 2]) < vmap.voxel_size).sum() > 50


def test_bag_options_on_other_inputs_and_bad_topics_exit_2(bag, tmp_path, capsys):
    from radseg_core.cli import map as map_cli

    assert map_cli.main(["synthetic-room", "--pose-source", "tf", "-o", str(tmp_path / "x"), *OFFLINE]) == 2
    assert "--pose-source apply to rosbag2 inputs only" in capsys.readouterr().err
    assert map_cli.main([str(bag), "--pose-source", "odometry", "--pose-topic", "/camera_pose",
                         "-o", str(tmp_path / "y"), *OFFLINE]) == 2
    assert "has type geometry_msgs/msg/PoseStamped" in capsys.readouterr().err


def test_depth_of_another_shape_in_the_colour_frame_is_refused(tmp_path):
    from radseg_core.datasets.writers import write_rosbag
    from radseg_core.types import Frame

    frames = [Frame(rgb=np.zeros((48, 64, 3), np.uint8), depth=np.full((30, 50), 2.0, np.float32),
                    K=ROBOT_K["color"], T_world_cam=np.eye(4), stamp=1.0 + 0.1 * k, frame_id=COLOR)
              for k in range(2)]
    bag = write_rosbag(frames, tmp_path / "odd_depth")
    with pytest.raises(ValueError, match="depth 50x30 in frame .* is not a rescaled colour image"):
        RosbagDataset(bag)


def test_invalid_tf_in_a_bag_is_ignored_counted_and_reported(tmp_path, capsys):
    from radseg_core.cli import map as map_cli

    bag = write_robot_bag(tmp_path / "bad_tf", n_images=3, compressed_copies=False,
                          tf_extra=(("odom", "wheel", (0, 0, 0), (0, 0, 0, 2.0)),
                                    ("odom", "odom", (0, 0, 0), (0, 0, 0, 1.0)),
                                    ("odom", "lidar", (float("nan"), 0, 0), (0, 0, 0, 1.0))))
    assert RosbagDataset(bag, pose_source="tf").tf_rejected == 3
    assert map_cli.main([str(bag), "-o", str(tmp_path / "out"), "--pose-source", "tf", *OFFLINE]) == 0
    assert "ignored 3 invalid TF transform(s)" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["tf_transforms_rejected"] == 3


def test_an_invalid_odometry_message_skips_its_frames_not_the_bag(tmp_path):
    """One Odometry with a zero quaternion (an uninitialised publisher) costs the images it is needed for;
    the rest of the bag still maps."""
    good = RosbagDataset(write_robot_bag(tmp_path / "good", n_images=6, compressed_copies=False),
                         pose_source="odometry", map_frame="map")
    # odometry samples 17, 18 (t0 + 0.597, 0.617 s) bracket image 3 (t0 + 0.6 s at 5 Hz)
    bad = RosbagDataset(write_robot_bag(tmp_path / "bad", n_images=6, compressed_copies=False,
                                        zero_quaternion_odom=(17, 18)), pose_source="odometry", map_frame="map")
    reason = "invalid pose (non-finite values or a zero quaternion)"
    assert bad.skipped.get(reason, 0) >= 1 and len(bad) == len(good) - bad.skipped[reason]
    for f in bad:
        np.testing.assert_allclose(f.T_world_cam, truth(f.stamp), atol=2e-6)
