"""Message ↔ numpy conversions against hand-made messages (padding, byte order, channel order)."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import Pose
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from radseg_ros import conversions as conv


def image(arr: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False) -> Image:
    arr = np.ascontiguousarray(arr)
    if big_endian:
        arr = arr.astype(arr.dtype.newbyteorder(">"))
    rows = arr.reshape(arr.shape[0], -1).view(np.uint8)
    padded = np.zeros((rows.shape[0], rows.shape[1] + pad), np.uint8)
    padded[:, : rows.shape[1]] = rows
    return Image(height=arr.shape[0], width=arr.shape[1], encoding=encoding, is_bigendian=int(big_endian),
                 step=padded.shape[1], data=padded.tobytes())


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize("pad", [0, 3])
def test_colour_encodings_become_rgb(rgb, pad):
    assert np.array_equal(conv.image_to_rgb(image(rgb, "rgb8", pad)), rgb)
    assert np.array_equal(conv.image_to_rgb(image(rgb[:, :, ::-1], "bgr8", pad)), rgb)
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 9, np.uint8)], axis=2)
    assert np.array_equal(conv.image_to_rgb(image(rgba, "rgba8", pad)), rgb)
    bgra = np.concatenate([rgb[:, :, ::-1], np.full((5, 7, 1), 9, np.uint8)], axis=2)
    assert np.array_equal(conv.image_to_rgb(image(bgra, "bgra8", pad)), rgb)
    gray = rgb[:, :, 0]
    assert np.array_equal(conv.image_to_rgb(image(gray, "mono8", pad)), np.repeat(gray[:, :, None], 3, 2))


def test_converted_images_are_writable_copies(rgb):
    msg = image(rgb, "rgb8")
    out = conv.image_to_rgb(msg)
    assert out.flags.writeable
    out[:] = 0
    assert np.array_equal(conv.image_to_rgb(msg), rgb)


@pytest.mark.parametrize("big_endian", [False, True])
def test_depth_encodings_keep_values_and_byte_order(big_endian):
    mm = np.arange(35, dtype=np.uint16).reshape(5, 7) * 100
    assert np.array_equal(conv.image_to_depth(image(mm, "16UC1", 2, big_endian)), mm)
    m = (mm / 1000).astype(np.float32)
    out = conv.image_to_depth(image(m, "32FC1", 4, big_endian))
    assert out.dtype == np.float32 and np.array_equal(out, m)


@pytest.mark.parametrize(
    ("msg", "fragment"),
    [
        (Image(height=2, width=2, encoding="yuv422", step=4, data=bytes(8)), "unsupported colour encoding"),
        (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(5)), "too short"),
        (Image(height=2, width=2, encoding="rgb8", step=2, data=bytes(12)), "too short"),
        (Image(height=0, width=2, encoding="rgb8", step=6, data=b""), "empty"),
    ],
)
def test_bad_colour_images_raise_clear_errors(msg, fragment):
    with pytest.raises(conv.ConversionError, match=fragment):
        conv.image_to_rgb(msg)


def test_bad_depth_encoding_names_the_accepted_ones():
    with pytest.raises(conv.ConversionError, match="16UC1.*32FC1"):
        conv.image_to_depth(Image(height=1, width=1, encoding="rgb8", step=3, data=bytes(3)))


def test_camera_info_validation():
    info = CameraInfo(width=640, height=480, k=[500.0, 0, 320, 0, 500, 240, 0, 0, 1])
    K, size = conv.camera_info_to_k(info)
    assert size == (640, 480) and K[0, 0] == 500 and K[1, 2] == 240
    with pytest.raises(conv.ConversionError, match="calibration"):
        conv.camera_info_to_k(CameraInfo(width=640, height=480))
    with pytest.raises(conv.ConversionError, match="zero width"):
        conv.camera_info_to_k(CameraInfo(width=0, height=480, k=info.k))


def test_cloud_round_trip_and_rgb_packing():
    xyz = np.array([[0, 1, 2], [3, 4, 5]], np.float32)
    rgb = np.array([[255, 0, 1], [1, 2, 3]], np.uint8)
    msg = conv.make_cloud(Header(frame_id="map"), xyz,
                          {"rgb": rgb, "label": np.array([1, 7]), "score": np.array([0.5, 0.25])})
    assert msg.width == 2 and msg.point_step == 24 and [f.name for f in msg.fields][:3] == ["x", "y", "z"]
    cols = conv.read_cloud(msg)
    assert np.array_equal(np.stack([cols["x"], cols["y"], cols["z"]], 1), xyz)
    packed = cols["rgb"].view(np.uint32)
    assert packed[0] == 0xFF0001 and packed[1] == 0x010203
    assert cols["label"].tolist() == [1, 7] and cols["score"].tolist() == [0.5, 0.25]


def test_labels_and_pose():
    lab = np.array([[0, 1], [2, 65535]])
    msg = conv.labels_to_image(lab, Header())
    assert msg.encoding == "16UC1" and np.array_equal(conv.image_to_depth(msg), lab.astype(np.uint16))
    pose = Pose()
    pose.position.x, pose.orientation.w = 1.5, 1.0
    t, q = conv.pose_to_arrays(pose)
    assert t.tolist() == [1.5, 0, 0] and q.tolist() == [0, 0, 0, 1]
