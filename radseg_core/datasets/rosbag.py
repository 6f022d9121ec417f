"""rosbag2 (sqlite3 or mcap) recordings of an RGB-D camera with a pose stream, read with ``rosbags``.

``rosbags`` is pure Python, so this reader needs no ROS install. An index pass reads only header stamps
(the first field of every message we use, read straight from the CDR bytes instead of decoding whole
images), pairs each rgb image with the nearest depth image within ``slop`` seconds, attaches the camera
info and the pose at its stamp (interpolated when pose samples bracket it within ``max_pose_gap``, else
the nearest within ``slop``), and drops frames that lack any of them. Frames are decoded on access.

Topics default to auto-detection by message type (an Image topic with "depth" in its name is depth, the
other Image/CompressedImage topic is rgb); pass them explicitly when a bag has several cameras.
Depth may be ``16UC1`` (units x ``depth_scale`` metres, default millimetres) or ``32FC1`` (metres).
Poses come from PoseStamped, PoseWithCovarianceStamped or Odometry and describe the optical frame unless
``pose_is_optical=False`` (then the fixed REP-103 body->optical rotation is applied), as in the node.
Not read: ``/tf`` trees, compressedDepth images, ROS 1 bags (their header layout differs).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from radseg_core.datasets._base import FrameDataset
from radseg_core.datasets.tum import associate, interpolate_pose
from radseg_core.geometry import depth_to_metres, optical_from_body_pose, pose_to_matrix, scale_intrinsics
from radseg_core.types import Frame

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POSE_TYPES = (
    "geometry_msgs/msg/PoseStamped",
    "geometry_msgs/msg/PoseWithCovarianceStamped",
    "nav_msgs/msg/Odometry",
)


def is_rosbag(path: Path) -> bool:
    if path.is_file():
        return path.suffix in (".mcap", ".db3")
    return (path / "metadata.yaml").is_file()


def header_stamp(raw: bytes | memoryview) -> float:
    """``header.stamp`` in seconds from CDR bytes of a message whose first field is a std_msgs/Header.

    CDR starts with a 4-byte encapsulation id (byte 1 = 1: little endian), then ``int32 sec, uint32 nsec``.
    """
    endian = "<" if raw[1] == 1 else ">"
    sec, nsec = struct.unpack_from(endian + "iI", raw, 4)
    return sec + nsec * 1e-9


def _pick(conns: list, role: str, prefer: tuple[str, ...] = (), avoid: tuple[str, ...] = ()):
    """Single connection for ``role`` from candidates, by name hints; ValueError when ambiguous."""
    cands = [c for c in conns if not any(a in c.topic for a in avoid)] or conns
    if len(cands) > 1 and prefer:
        hinted = [c for c in cands if any(p in c.topic for p in prefer)]
        cands = hinted or cands
    topics = sorted({c.topic for c in cands})
    if len(topics) != 1:
        found = topics or "none"
        raise ValueError(f"cannot auto-detect the {role} topic (candidates: {found}); pass it explicitly")
    return [c for c in cands if c.topic == topics[0]]


class RosbagDataset(FrameDataset):
    """Frames from a rosbag2 directory, or a single ``.mcap`` / ``.db3`` file."""

    def __init__(self, path: str | Path, *, rgb_topic: str | None = None, depth_topic: str | None = None,
                 camera_info_topic: str | None = None, pose_topic: str | None = None,
                 depth_scale: float = 0.001, slop: float = 0.05, max_pose_gap: float = 0.2,
                 pose_is_optical: bool = True, frame_id: str | None = None, **kw):
        super().__init__(**kw)
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bag {self.path} does not exist")
        self.name = f"rosbag/{self.path.stem if self.path.is_file() else self.path.name}"
        self.depth_scale, self.pose_is_optical, self._frame_id = depth_scale, pose_is_optical, frame_id
        self._reader = AnyReader([self.path], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
        self._reader.open()
        conns = self._reader.connections

        def by_topic(topic: str | None, types: tuple[str, ...], role: str, **hints):
            if topic is not None:
                sel = [c for c in conns if c.topic == topic]
                if not sel:
                    have = sorted({c.topic for c in conns})
                    raise ValueError(f"{role} topic {topic!r} not in bag (topics: {have})")
                if sel[0].msgtype not in types:
                    raise ValueError(f"{role} topic {topic!r} has type {sel[0].msgtype}, expected {types}")
                return sel
            return _pick([c for c in conns if c.msgtype in types], role, **hints)

        images = [c for c in conns if c.msgtype in IMAGE_TYPES]
        if depth_topic is not None:
            self._depth_c = by_topic(depth_topic, IMAGE_TYPES[:1], "depth")
        else:
            self._depth_c = _pick([c for c in images if "depth" in c.topic and c.msgtype == IMAGE_TYPES[0]],
                                  "depth", prefer=("aligned", "registered"), avoid=("compressed",))
        depth_name = self._depth_c[0].topic
        if rgb_topic is not None:
            self._rgb_c = by_topic(rgb_topic, IMAGE_TYPES, "rgb")
        else:
            self._rgb_c = _pick([c for c in images if "depth" not in c.topic], "rgb", prefer=("color", "rgb"))
        self._info_c = by_topic(camera_info_topic, (INFO_TYPE,), "camera_info",
                                prefer=(self._rgb_c[0].topic.rsplit("/", 1)[0] + "/",), avoid=("depth",))
        if pose_topic is None and not any(c.msgtype in POSE_TYPES for c in conns):
            raise ValueError(f"{self.path}: no PoseStamped / PoseWithCovarianceStamped / Odometry topic "
                             "(poses from /tf are not read); record the camera pose as one of those")
        self._pose_c = by_topic(pose_topic, POSE_TYPES, "pose")
        self.topics = {"rgb": self._rgb_c[0].topic, "depth": depth_name, "camera_info": self._info_c[0].topic,
                       "pose": self._pose_c[0].topic}
        self._build_index(slop, max_pose_gap)

    def _build_index(self, slop: float, max_pose_gap: float) -> None:
        rgb, depth, infos, poses = [], [], [], []
        ids = {id(c): k for k, cs in (("rgb", self._rgb_c), ("depth", self._depth_c),
                                      ("info", self._info_c), ("pose", self._pose_c)) for c in cs}
        wanted = self._rgb_c + self._depth_c + self._info_c + self._pose_c
        for conn, t_log, raw in self._reader.messages(connections=wanted):
            kind = ids[id(conn)]
            if kind in ("rgb", "depth"):
                (rgb if kind == "rgb" else depth).append((header_stamp(raw), t_log, conn))
                continue
            msg = self._reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            if kind == "info":
                K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
                infos.append((stamp, K, (msg.height, msg.width)))
            else:
                pose = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
                p, q = pose.position, pose.orientation
                poses.append((stamp, [p.x, p.y, p.z, q.x, q.y, q.z, q.w]))
        if not infos:
            raise ValueError(f"{self.path}: no messages on {self.topics['camera_info']}")
        poses.sort(key=lambda r: r[0])
        p_t = np.array([r[0] for r in poses])
        p_v = np.array([r[1] for r in poses], dtype=np.float64).reshape(-1, 7)
        info_t = np.array([r[0] for r in infos])
        rgb_t = np.array([r[0] for r in rgb])
        pairs = associate(rgb_t, np.array([r[0] for r in depth]), slop)
        self._items = []
        for i, j in pairs:
            t = rgb_t[i]
            T = interpolate_pose(p_t, p_v, t, max_pose_gap) if len(p_t) else None
            if T is None and len(p_t):
                k = int(np.argmin(np.abs(p_t - t)))
                if abs(p_t[k] - t) <= slop:
                    T = pose_to_matrix(p_v[k, :3], p_v[k, 3:] / np.linalg.norm(p_v[k, 3:]))
            if T is None:
                continue
            if not self.pose_is_optical:
                T = optical_from_body_pose(T)
            info = infos[int(np.argmin(np.abs(info_t - t)))]
            self._items.append((t, rgb[i], depth[j], T, info))
        self._items.sort(key=lambda it: it[0])
        self.dropped = len(rgb) - len(self._items)  # rgb images without depth or pose in time
        if not self._items:
            raise ValueError(
                f"{self.path}: none of {len(rgb)} rgb images has a depth image within slop={slop} s and a "
                f"pose ({len(depth)} depth images, {len(poses)} poses); check topics, slop and clocks")
        self._n_raw = len(self._items)

    def _fetch(self, rec: tuple[float, int, object]):
        stamp, t_log, conn = rec
        for c, _, raw in self._reader.messages(connections=[conn], start=t_log, stop=t_log + 1):
            if c is conn and abs(header_stamp(raw) - stamp) < 1e-9:
                return self._reader.deserialize(raw, conn.msgtype)
        raise KeyError(f"message at {t_log} on {conn.topic} vanished from {self.path}")

    def _load(self, raw_index: int) -> Frame:
        from rosbags.image import message_to_cvimage

        t, rgb_rec, depth_rec, T, (_, K, info_hw) = self._items[raw_index]
        rgb_msg, depth_msg = self._fetch(rgb_rec), self._fetch(depth_rec)
        rgb = np.ascontiguousarray(message_to_cvimage(rgb_msg, "rgb8"))
        raw_depth = np.asarray(message_to_cvimage(depth_msg))
        depth = depth_to_metres(raw_depth, depth_msg.encoding, self.depth_scale)
        if tuple(info_hw) != rgb.shape[:2] and all(info_hw):
            K = scale_intrinsics(K, tuple(info_hw), rgb.shape[:2])
        frame_id = self._frame_id or rgb_msg.header.frame_id or "camera_optical_frame"
        return Frame(rgb=rgb, depth=depth, K=K.copy(), T_world_cam=T.copy(), stamp=float(t),
                     frame_id=frame_id)

    def close(self) -> None:
        if getattr(self._reader, "stack", None):
            self._reader.close()
