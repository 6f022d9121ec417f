"""Message ↔ numpy conversions: what cv_bridge and sensor_msgs_py do, for installs that lack them.

Every function raises :class:`ConversionError` with a message a user can act on; the node logs it
(throttled) and drops the one message instead of dying.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Pose
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")

_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "16UC1": 1, "mono16": 1, "32FC1": 1}
_DTYPES = {"16UC1": np.uint16, "mono16": np.uint16, "32FC1": np.float32}


class ConversionError(ValueError):
    """A message that cannot be turned into data (bad encoding, size, calibration or pose)."""


try:  # the real cv_bridge where the ROS install has it; the PyPI package of that name is ROS 1 and broken
    from cv_bridge import CvBridge  # type: ignore[import-not-found]

    _BRIDGE = CvBridge()
except Exception:  # noqa: BLE001 - ImportError, or a broken install failing in its own import
    _BRIDGE = None


def _via_bridge(msg: Image, encoding: str) -> np.ndarray | None:
    """cv_bridge's conversion after our own checks; None (use ours) when it is missing or refuses."""
    if _BRIDGE is None:
        return None
    try:
        return np.array(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding=encoding))
    except Exception:  # noqa: BLE001 - fall back to the conversion below, which the tests cover
        return None


def _image_array(msg: Image, dtype: type, channels: int) -> np.ndarray:
    """View ``msg.data`` as (H, W[, C]), honouring row padding (``step``) and byte order."""
    itemsize = np.dtype(dtype).itemsize
    row_bytes = msg.width * channels * itemsize
    if msg.height == 0 or msg.width == 0:
        raise ConversionError(f"image is empty ({msg.width}x{msg.height})")
    if msg.step < row_bytes or len(msg.data) < msg.step * msg.height:
        raise ConversionError(
            f"image data too short for {msg.width}x{msg.height} {msg.encoding}: "
            f"step={msg.step}, {len(msg.data)} bytes, need {row_bytes} bytes per row"
        )
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8, count=msg.step * msg.height)
    rows = raw.reshape(msg.height, msg.step)[:, :row_bytes]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    # a writable copy in native byte order: the message buffer must not be aliased by later stages
    arr = np.ascontiguousarray(rows).view(dt).astype(np.dtype(dtype).newbyteorder("="), copy=True)
    return arr.reshape(msg.height, msg.width, channels) if channels > 1 else arr.reshape(msg.height, msg.width)


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) → (H, W, 3) uint8 RGB."""
    enc = msg.encoding
    if enc not in COLOR_ENCODINGS:
        raise ConversionError(f"unsupported colour encoding '{enc}'; expected one of {', '.join(COLOR_ENCODINGS)}")
    arr = _image_array(msg, np.uint8, _CHANNELS[enc])  # validates size and step even when cv_bridge converts
    bridged = _via_bridge(msg, "rgb8")
    if bridged is not None and bridged.shape == (msg.height, msg.width, 3):
        return bridged
    if enc == "mono8":
        return np.repeat(arr[:, :, None], 3, axis=2)
    if enc.startswith("bgr"):
        arr = arr[:, :, 2::-1]
    return np.ascontiguousarray(arr[:, :, :3]) if enc != "rgb8" else arr


def image_to_depth(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (16UC1 / mono16 integer units, or 32FC1 metres) → raw (H, W) array.

    Units are not converted here: :func:`radseg_core.geometry.depth_to_metres` applies the scale.
    """
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ConversionError(
            f"unsupported depth encoding '{msg.encoding}'; expected 16UC1 (millimetres, see depth_scale) "
            "or 32FC1 (metres)"
        )
    return _image_array(msg, _DTYPES[msg.encoding], 1)


def rgb_to_image(rgb: np.ndarray, header: Header) -> Image:
    """(H, W, 3) uint8 → rgb8 Image."""
    msg = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0)
    msg.step = rgb.shape[1] * 3
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg


def labels_to_image(labels: np.ndarray, header: Header) -> Image:
    """(H, W) integer class ids → 16UC1 Image (0 = ignore / unknown)."""
    lab = np.ascontiguousarray(labels.astype(np.uint16))
    msg = Image(header=header, height=lab.shape[0], width=lab.shape[1], encoding="16UC1", is_bigendian=0)
    msg.step = lab.shape[1] * 2
    msg.data = lab.tobytes()
    return msg


def camera_info_to_k(msg: CameraInfo) -> tuple[np.ndarray, tuple[int, int]]:
    """CameraInfo → (3x3 K, (width, height)). Rejects uncalibrated (all-zero) or non-finite K."""
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ConversionError(f"camera_info has no valid calibration (fx={k[0, 0]}, fy={k[1, 1]})")
    if msg.width == 0 or msg.height == 0:
        raise ConversionError("camera_info has zero width or height")
    return k, (int(msg.width), int(msg.height))


def pose_to_arrays(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """geometry_msgs/Pose → (translation (3,), quaternion (x, y, z, w)); validation happens in the core."""
    p, q = pose.position, pose.orientation
    return np.array([p.x, p.y, p.z], dtype=np.float64), np.array([q.x, q.y, q.z, q.w], dtype=np.float64)


def stamp_to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


_FLOAT32 = PointField.FLOAT32
_UINT32 = PointField.UINT32


def make_cloud(header: Header, xyz: np.ndarray, fields: dict[str, np.ndarray]) -> PointCloud2:
    """Pack points and named per-point columns into an unorganised PointCloud2.

    ``fields`` values are (N,) arrays; float types become FLOAT32, integers UINT32, and a key named
    ``rgb`` with (N, 3) uint8 is packed as rviz's float-reinterpreted 0x00RRGGBB.
    """
    n = int(xyz.shape[0])
    names = ["x", "y", "z", *fields.keys()]
    dtypes = [np.float32] * 3
    columns: list[np.ndarray] = [xyz[:, 0], xyz[:, 1], xyz[:, 2]]
    datatypes = [_FLOAT32] * 3
    for name, col in fields.items():
        col = np.asarray(col)
        if name == "rgb":
            c = col.astype(np.uint32)
            packed = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
            columns.append(packed.view(np.float32))
            dtypes.append(np.float32)
            datatypes.append(_FLOAT32)
        elif np.issubdtype(col.dtype, np.integer):
            columns.append(col)
            dtypes.append(np.uint32)
            datatypes.append(_UINT32)
        else:
            columns.append(col)
            dtypes.append(np.float32)
            datatypes.append(_FLOAT32)
    record = np.empty(n, dtype=np.dtype({"names": names, "formats": dtypes}))
    for name, col in zip(names, columns, strict=True):
        record[name] = col
    msg = PointCloud2(header=header, height=1, width=n, is_bigendian=False, is_dense=True)
    msg.fields = [
        PointField(name=name, offset=4 * i, datatype=dt, count=1)
        for i, (name, dt) in enumerate(zip(names, datatypes, strict=True))
    ]
    msg.point_step = 4 * len(names)
    msg.row_step = msg.point_step * n
    msg.data = record.tobytes()
    return msg


def read_cloud(msg: PointCloud2) -> dict[str, np.ndarray]:
    """Unpack a cloud made by :func:`make_cloud` (or any cloud of 4-byte fields) into columns."""
    formats = {_FLOAT32: np.float32, _UINT32: np.uint32, PointField.INT32: np.int32}
    dtype = np.dtype(
        {
            "names": [f.name for f in msg.fields],
            "formats": [formats[f.datatype] for f in msg.fields],
            "offsets": [f.offset for f in msg.fields],
            "itemsize": msg.point_step,
        }
    )
    data = np.frombuffer(bytes(msg.data), dtype=dtype, count=msg.width * msg.height)
    return {name: data[name].copy() for name in dtype.names}
