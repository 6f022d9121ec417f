"""rosbag2 (sqlite3 or mcap) recordings of a robot's RGB-D camera, read with ``rosbags`` (no ROS install).

An index pass reads header stamps and frame ids straight from the CDR bytes of images (no decoding), all
of ``/tf`` and ``/tf_static`` into a :class:`~radseg_core.transforms.TransformBuffer`, camera infos and
the pose stream; it pairs each rgb image with the nearest depth image within ``slop`` seconds and gives
it a camera pose ``T_map_camera_optical`` from one ``pose_source``:

* ``tf``: the TF tree, ``map_frame`` -> the image's frame, interpolated at the image stamp;
* ``odometry``: ``nav_msgs/Odometry`` of its ``child_frame_id`` (e.g. ``base_link``) in its header frame,
  times the body -> camera extrinsic from the bag's TF (``/tf_static``); the header frame is related to
  ``map_frame`` through TF when they differ;
* ``pose``: ``PoseStamped`` / ``PoseWithCovarianceStamped`` of the camera's optical frame (body frame with
  ``pose_is_optical=False``) in its header frame.

Pose messages are interpolated at the image stamp when samples bracket it within ``max_pose_gap`` (else the
nearest within ``slop``). An Odometry whose body is not related to the camera by TF is refused unless
``pose_is_optical`` says the pose is the camera's own (True: optical, False: REP-103 body frame).
Depth in the colour camera's frame (e.g. RealSense ``align_depth``) is used as is; depth in its own frame
is registered into the colour camera (``radseg_core.registration``) with its camera_info and the TF
between the two optical frames, or refused when either is missing; depth that claims the colour frame
but has another shape, or a camera_info with other intrinsics, is refused too. Depth may be ``16UC1`` (x
``depth_scale`` metres), ``32FC1`` (metres) or their ``compressedDepth`` PNG transport; ``rvl`` is refused.
Auto-detection prefers raw images over their ``/compressed`` copies. Every rgb image not turned into a
frame is counted under a reason in ``skipped`` (with one full example message in ``skipped_examples``).
Not read: ROS 1 bags (their header layout differs).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from radseg_core.datasets._base import FrameDataset
from radseg_core.datasets.tum import associate, interpolate_pose
from radseg_core.geometry import R_BODY_OPTICAL, depth_to_metres, pose_to_matrix, scale_intrinsics
from radseg_core.registration import register_depth
from radseg_core.transforms import (
    NS_PER_S,
    ConnectivityError,
    ExtrapolationError,
    TransformBuffer,
    TransformError,
    camera_pose,
    stamp_to_ns,
)
from radseg_core.types import Frame

IMAGE, COMPRESSED = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
TF_TYPE = "tf2_msgs/msg/TFMessage"
STAMPED_POSE_TYPES = ("geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/PoseWithCovarianceStamped")
ODOM_TYPE = "nav_msgs/msg/Odometry"
POSE_TYPES = (*STAMPED_POSE_TYPES, ODOM_TYPE)
POSE_SOURCES = ("auto", "pose", "odometry", "tf")


def is_rosbag(path: Path) -> bool:
    if path.is_file():
        return path.suffix in (".mcap", ".db3")
    return (path / "metadata.yaml").is_file()


def header_stamp_ns(raw: bytes | memoryview) -> int:
    """``header.stamp`` in integer nanoseconds from CDR bytes of a message whose first field is a
    std_msgs/Header (exact: TF lookups and message identity use it).

    CDR starts with a 4-byte encapsulation id (byte 1 = 1: little endian), then ``int32 sec, uint32 nsec``.
    """
    endian = "<" if raw[1] == 1 else ">"
    sec, nsec = struct.unpack_from(endian + "iI", raw, 4)
    return stamp_to_ns(sec, nsec)


def header_stamp(raw: bytes | memoryview) -> float:
    """``header.stamp`` in seconds (for pairing images within a slop; never for TF)."""
    return header_stamp_ns(raw) / NS_PER_S


def header_frame_id(raw: bytes | memoryview) -> str:
    """``header.frame_id`` from the same CDR bytes: after the stamp, ``uint32 length`` then the characters + NUL."""
    endian = "<" if raw[1] == 1 else ">"
    (n,) = struct.unpack_from(endian + "I", raw, 12)
    return bytes(raw[16:16 + max(n - 1, 0)]).decode("utf-8", "replace")


def image_size(raw: bytes | memoryview) -> tuple[int, int]:
    """``(height, width)`` of a sensor_msgs/Image from its CDR bytes: two uint32 after the header, 4-aligned."""
    endian = "<" if raw[1] == 1 else ">"
    (n,) = struct.unpack_from(endian + "I", raw, 12)
    off = 16 + n
    off += (-(off - 4)) % 4  # CDR aligns relative to the end of the 4-byte encapsulation header
    return struct.unpack_from(endian + "II", raw, off)


def decode_compressed_depth(fmt: str, data) -> tuple[np.ndarray, str]:
    """Raw depth and its encoding from image_transport's ``compressedDepth`` format.

    The payload is a 12-byte ConfigHeader (``int32 format, float32 depthQuantA, depthQuantB``) then a
    16-bit PNG: ``16UC1`` depth units as is, ``32FC1`` quantised inverse depth, ``d = A / (v - B)``,
    ``v = 0`` meaning no measurement. The ``rvl`` codec is refused with a ValueError.
    """
    import cv2

    low = fmt.lower()
    if "compresseddepth" not in low:
        raise ValueError(f"depth CompressedImage has format {fmt!r}: only 'compressedDepth' carries depth")
    if "rvl" in low:
        raise ValueError(f"compressedDepth format {fmt!r} uses the RVL codec, which is not supported: record "
                         "raw depth or set the publisher's format parameter to png")
    enc = fmt.split(";")[0].strip()
    buf = bytes(data)
    if len(buf) <= 12:
        raise ValueError(f"compressedDepth message of {len(buf)} bytes has no image after its 12-byte header")
    _, quant_a, quant_b = struct.unpack_from("<iff", buf, 0)
    img = cv2.imdecode(np.frombuffer(buf, np.uint8, offset=12), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16 or img.ndim != 2:
        raise ValueError(f"compressedDepth ({fmt!r}) payload is not a 16-bit single-channel PNG")
    if enc in ("16UC1", "mono16"):
        return img, "16UC1"
    if enc == "32FC1":
        depth = np.zeros(img.shape, np.float32)
        nz = img != 0
        depth[nz] = quant_a / (img[nz].astype(np.float32) - quant_b)
        return depth, "32FC1"
    raise ValueError(f"compressedDepth of encoding {enc!r} is not supported (16UC1 or 32FC1)")


def _namespace(topic: str) -> str:
    """``/camera/color/image_raw/compressed`` -> ``/camera/color/``: where the camera_info lives."""
    for suffix in ("/compressedDepth", "/compressed"):
        topic = topic.removesuffix(suffix)
    return topic.rsplit("/", 1)[0] + "/"


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


def _reason(what: str, exc: TransformError) -> str:
    """A countable reason (no stamps in it) for a failed transform."""
    if isinstance(exc, ExtrapolationError):
        kind = "extrapolation into the future" if exc.future else "extrapolation into the past"
        if "no transform data" in str(exc):
            kind = "no data"
    elif isinstance(exc, ConnectivityError):
        kind = "frames not connected"
    else:
        kind = type(exc).__name__
    return f"{what}: {kind}"


def _related(buf: TransformBuffer, a: str, b: str) -> bool:
    """True when TF has a path between the two frames (whatever the time)."""
    if not a or not b:
        return False
    try:
        buf.lookup(a, b, 0)
    except ConnectivityError:
        return False
    except TransformError:
        return True
    return True


class RosbagDataset(FrameDataset):
    """Frames from a rosbag2 directory, or a single ``.mcap`` / ``.db3`` file (see the module docstring)."""

    def __init__(self, path: str | Path, *, rgb_topic: str | None = None, depth_topic: str | None = None,
                 camera_info_topic: str | None = None, depth_camera_info_topic: str | None = None,
                 pose_topic: str | None = None, pose_source: str = "auto", map_frame: str | None = None,
                 camera_frame: str | None = None, depth_scale: float = 0.001, slop: float = 0.05,
                 max_pose_gap: float = 0.2, pose_is_optical: bool | None = None, frame_id: str | None = None,
                 **kw):
        super().__init__(**kw)
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        if pose_source not in POSE_SOURCES:
            raise ValueError(f"pose_source must be one of {POSE_SOURCES}, got {pose_source!r}")
        if not (slop > 0 and depth_scale > 0):
            raise ValueError(f"slop and depth_scale must be > 0, got {slop} and {depth_scale}")
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bag {self.path} does not exist")
        self.name = f"rosbag/{self.path.stem if self.path.is_file() else self.path.name}"
        self.depth_scale, self.pose_is_optical = depth_scale, pose_is_optical
        self._frame_id = frame_id or camera_frame
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
            self._depth_c = by_topic(depth_topic, IMAGE_TYPES, "depth")
        else:  # raw before compressedDepth, aligned before the depth camera's own
            self._depth_c = _pick([c for c in images if "depth" in c.topic], "depth",
                                  prefer=("aligned", "registered"), avoid=("compressed",))
        if rgb_topic is not None:
            self._rgb_c = by_topic(rgb_topic, IMAGE_TYPES, "rgb")
        else:
            self._rgb_c = _pick([c for c in images if "depth" not in c.topic], "rgb", prefer=("color", "rgb"),
                                avoid=("compressed",))
        self._info_c = by_topic(camera_info_topic, (INFO_TYPE,), "camera_info",
                                prefer=(_namespace(self._rgb_c[0].topic),), avoid=("depth",))
        infos = [c for c in conns if c.msgtype == INFO_TYPE]
        if depth_camera_info_topic is not None:
            self._dinfo_c = by_topic(depth_camera_info_topic, (INFO_TYPE,), "depth camera_info")
        else:
            ns = _namespace(self._depth_c[0].topic)
            cands = [c for c in infos if c.topic.startswith(ns) and c.topic != self._info_c[0].topic]
            self._dinfo_c = _pick(cands, "depth camera_info") if cands else []
        self._tf_c = [c for c in conns if c.msgtype == TF_TYPE]

        if pose_source == "auto":
            if pose_topic is not None:
                pt = next((c.msgtype for c in conns if c.topic == pose_topic), None)
                pose_source = "odometry" if pt == ODOM_TYPE else "pose"
            elif any(c.msgtype in POSE_TYPES for c in conns):
                pose_source = "odometry" if all(c.msgtype == ODOM_TYPE for c in conns
                                                if c.msgtype in POSE_TYPES) else "pose"
            elif self._tf_c:
                pose_source = "tf"
            else:
                raise ValueError(f"{self.path}: no pose source: no PoseStamped / PoseWithCovarianceStamped / "
                                 "Odometry topic and no /tf; record the camera pose or the TF tree")
        self.pose_source = pose_source
        if pose_source == "tf":
            if not self._tf_c:
                raise ValueError(f"{self.path}: pose_source 'tf' but the bag has no /tf or /tf_static topic")
            self._pose_c = []
        else:
            types = (ODOM_TYPE,) if pose_source == "odometry" else STAMPED_POSE_TYPES
            self._pose_c = by_topic(pose_topic, types, "pose" if pose_source == "pose" else "odometry")
        self.topics = {"rgb": self._rgb_c[0].topic, "depth": self._depth_c[0].topic,
                       "camera_info": self._info_c[0].topic,
                       "pose": self._pose_c[0].topic if self._pose_c else "/tf"}
        self._build_index(slop, max_pose_gap, map_frame, camera_frame)

    def _read(self, slop: float):
        """One pass over the topics we use: image records, infos, poses, and the TF buffer."""
        span = (self._reader.end_time - self._reader.start_time) * 1e-9 if self._reader.message_count else 0
        self.tf = TransformBuffer(cache_time=max(10.0, span + 10.0))  # offline: keep the whole bag
        rec: dict[str, list] = {"rgb": [], "depth": [], "info": [], "dinfo": [], "pose": []}
        kinds = {id(c): k for k, cs in (("rgb", self._rgb_c), ("depth", self._depth_c), ("info", self._info_c),
                                       ("dinfo", self._dinfo_c), ("pose", self._pose_c), ("tf", self._tf_c))
                 for c in cs}
        self.tf_rejected = 0
        wanted = self._rgb_c + self._depth_c + self._info_c + self._dinfo_c + self._pose_c + self._tf_c
        for conn, t_log, raw in self._reader.messages(connections=wanted):
            kind = kinds[id(conn)]
            if kind in ("rgb", "depth"):
                hw = image_size(raw) if conn.msgtype == IMAGE else None
                ns = header_stamp_ns(raw)
                rec[kind].append((ns / NS_PER_S, t_log, conn, header_frame_id(raw), hw, ns))
                continue
            msg = self._reader.deserialize(raw, conn.msgtype)
            if kind == "tf":
                static = conn.topic.endswith("tf_static")
                for tr in msg.transforms:
                    s, t, q = tr.header.stamp, tr.transform.translation, tr.transform.rotation
                    try:
                        self.tf.set_transform(tr.header.frame_id, tr.child_frame_id, stamp_to_ns(s.sec, s.nanosec),
                                              [t.x, t.y, t.z], [q.x, q.y, q.z, q.w], static=static)
                    except ValueError:
                        self.tf_rejected += 1
                continue
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            if kind in ("info", "dinfo"):
                rec[kind].append((stamp, np.asarray(msg.k, dtype=np.float64).reshape(3, 3),
                                  (msg.height, msg.width)))
            else:
                pose = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
                p, q = pose.position, pose.orientation
                rec["pose"].append((stamp, [p.x, p.y, p.z, q.x, q.y, q.z, q.w], msg.header.frame_id,
                                    getattr(msg, "child_frame_id", "")))
        return rec

    def _build_index(self, slop: float, max_pose_gap: float, map_frame: str | None,
                     camera_frame: str | None) -> None:
        rec = self._read(slop)
        rgb, depth, infos, poses = rec["rgb"], rec["depth"], rec["info"], rec["pose"]
        if not infos:
            raise ValueError(f"{self.path}: no messages on {self.topics['camera_info']}")
        if not rgb or not depth:
            raise ValueError(f"{self.path}: {len(rgb)} rgb and {len(depth)} depth images: nothing to map")
        cam = camera_frame or rgb[0][3]
        depth_frame = depth[0][3]
        poses.sort(key=lambda r: r[0])
        if self.pose_source == "tf":
            if map_frame is None:
                map_frame = next((f for f in ("map", "odom") if f in self.tf.frames()), None)
                if map_frame is None:
                    raise ValueError(f"{self.path}: TF has no 'map' or 'odom' frame; pass map_frame (frames: "
                                     f"{sorted(self.tf.frames())})")
            if not cam:
                raise ValueError(f"{self.path}: the rgb images have no header.frame_id; pass camera_frame")
            body = parent = None
        else:
            if not poses:
                raise ValueError(f"{self.path}: no messages on {self.topics['pose']}")
            parent, body = poses[0][2], poses[0][3]
            map_frame = map_frame or parent
            if not body:  # PoseStamped (or Odometry without child_frame_id): the camera's own pose
                body = cam or "camera"
                if self.pose_is_optical is None:
                    self.pose_is_optical = True
        self.map_frame, self.camera_frame, self.depth_frame = map_frame, cam, depth_frame
        extrinsic = None
        if self.pose_source != "tf" and body != cam and not _related(self.tf, body, cam):
            if self.pose_is_optical is None:
                raise ValueError(
                    f"{self.path}: the pose is of frame [{body}] but the images are in [{cam}] and the bag's "
                    "TF does not relate them: record /tf_static with the camera mounting, or say the pose is "
                    "the camera's own (pose_is_optical True / False)")
            extrinsic = np.eye(4)
        if extrinsic is not None and self.pose_is_optical is False:
            extrinsic[:3, :3] = R_BODY_OPTICAL
        if body == cam and self.pose_is_optical is False:
            body, extrinsic = f"{cam} (body)", np.eye(4)
            extrinsic[:3, :3] = R_BODY_OPTICAL

        # depth in the rgb camera, or registered from its own camera
        self.registered_depth = False
        if depth_frame and cam and depth_frame != cam:
            if not rec["dinfo"]:
                raise ValueError(
                    f"{self.path}: depth is in frame [{depth_frame}], rgb in [{cam}] (depth not aligned) and "
                    f"there is no depth camera_info next to {self.topics['depth']} to register it: record aligned "
                    "depth (RealSense align_depth.enable:=true) or the depth camera_info (depth_camera_info_topic)")
            if not _related(self.tf, cam, depth_frame):
                raise ValueError(
                    f"{self.path}: depth is in frame [{depth_frame}], rgb in [{cam}] (depth not aligned) and the "
                    "bag's TF does not relate the two: record /tf_static, or aligned depth")
            self.registered_depth = True
            self.topics["depth_camera_info"] = self._dinfo_c[0].topic
        else:
            d_hw, c_hw = depth[0][4], infos[0][2]
            if d_hw and all(c_hw) and abs(d_hw[1] / c_hw[1] - d_hw[0] / c_hw[0]) > 0.02:
                raise ValueError(
                    f"{self.path}: depth {d_hw[1]}x{d_hw[0]} in frame [{depth_frame}] is not a rescaled colour "
                    f"image ({c_hw[1]}x{c_hw[0]}, frame [{cam}]): it is not aligned, yet claims the colour frame; "
                    "record aligned depth, or depth with its own frame_id, camera_info and TF")
            if rec["dinfo"] and all(c_hw) and all(rec["dinfo"][0][2]):
                K_d, hw_d = rec["dinfo"][0][1], rec["dinfo"][0][2]
                K_c = scale_intrinsics(infos[0][1], c_hw, hw_d)
                if np.abs(K_d - K_c).max() > 1.0:  # pixels: another camera, not a resampled colour one
                    raise ValueError(
                        f"{self.path}: depth claims the colour frame [{cam}] but its camera_info "
                        f"({self._dinfo_c[0].topic}) has other intrinsics than the colour camera's: it is not "
                        "aligned; record aligned depth, or depth with its own frame_id and TF")

        p_t = np.array([r[0] for r in poses])
        p_v = np.array([r[1] for r in poses], dtype=np.float64).reshape(-1, 7)
        info_t = np.array([r[0] for r in infos])
        dinfo_t = np.array([r[0] for r in rec["dinfo"]])
        rgb_t = np.array([r[0] for r in rgb])
        pairs = dict(associate(rgb_t, np.array([r[0] for r in depth]), slop))
        self.skipped: dict[str, int] = {}
        self.skipped_examples: dict[str, str] = {}

        def skip(reason: str, example: str = "") -> None:
            self.skipped[reason] = self.skipped.get(reason, 0) + 1
            self.skipped_examples.setdefault(reason, example or reason)

        self._items = []
        for i in range(len(rgb)):
            t = rgb_t[i]
            if i not in pairs:
                skip(f"no depth image within slop ({slop} s)")
                continue
            j = pairs[i]
            try:
                if self.pose_source == "tf":
                    T = self.tf.lookup(map_frame, cam, rgb[i][5])
                else:
                    T = interpolate_pose(p_t, p_v, t, max_pose_gap)
                    if T is None:
                        k = int(np.argmin(np.abs(p_t - t)))
                        if abs(p_t[k] - t) > slop:
                            skip(f"no pose within max_pose_gap ({max_pose_gap} s) or slop ({slop} s)")
                            continue
                        T = pose_to_matrix(p_v[k, :3], p_v[k, 3:] / np.linalg.norm(p_v[k, 3:]))
                    T = camera_pose(T, parent_frame=parent, body_frame=body, camera_frame=cam,
                                    map_frame=map_frame, stamp_ns=rgb[i][5], buffer=self.tf, extrinsic=extrinsic)
            except TransformError as e:
                skip(_reason(f"pose ({map_frame} <- {cam})", e), str(e))
                continue
            except ValueError as e:  # a zero/non-finite quaternion in one pose message: skip, not the bag
                skip("invalid pose (non-finite values or a zero quaternion)", str(e))
                continue
            reg = None
            if self.registered_depth:
                try:
                    T_rgb_depth = self.tf.lookup(cam, depth_frame, depth[j][5])
                except TransformError as e:
                    skip(_reason(f"depth extrinsic ({cam} <- {depth_frame})", e), str(e))
                    continue
                d = rec["dinfo"][int(np.argmin(np.abs(dinfo_t - depth[j][0])))]
                reg = (d[1], d[2], T_rgb_depth)
            info = infos[int(np.argmin(np.abs(info_t - t)))]
            self._items.append((t, rgb[i], depth[j], T, info, reg))
        self._items.sort(key=lambda it: it[0])
        self.dropped = len(rgb) - len(self._items)
        if not self._items:
            why = "; ".join(f"{n} x {self.skipped_examples[r]}" for r, n in self.skipped.items())
            raise ValueError(
                f"{self.path}: none of {len(rgb)} rgb images has a depth image within slop={slop} s and a "
                f"pose ({len(depth)} depth images, {len(poses)} poses, source {self.pose_source}): {why}")
        self._n_raw = len(self._items)

    def _fetch(self, rec):
        _, t_log, conn, _, _, stamp_ns = rec
        for c, _, raw in self._reader.messages(connections=[conn], start=t_log, stop=t_log + 1):
            if c is conn and header_stamp_ns(raw) == stamp_ns:
                return self._reader.deserialize(raw, conn.msgtype)
        raise KeyError(f"message at {t_log} on {conn.topic} vanished from {self.path}")

    def _load(self, raw_index: int) -> Frame:
        from rosbags.image import message_to_cvimage

        t, rgb_rec, depth_rec, T, (_, K, info_hw), reg = self._items[raw_index]
        rgb_msg, depth_msg = self._fetch(rgb_rec), self._fetch(depth_rec)
        rgb = np.require(message_to_cvimage(rgb_msg, "rgb8"), requirements=["C", "W"])  # writable for torch
        if depth_msg.__msgtype__ == COMPRESSED:
            raw_depth, enc = decode_compressed_depth(depth_msg.format, depth_msg.data)
        else:
            raw_depth, enc = np.asarray(message_to_cvimage(depth_msg)), depth_msg.encoding
        depth = depth_to_metres(raw_depth, enc, self.depth_scale)
        if tuple(info_hw) != rgb.shape[:2] and all(info_hw):
            K = scale_intrinsics(K, tuple(info_hw), rgb.shape[:2])
        if reg is not None:
            K_d, hw_d, T_rgb_depth = reg
            depth = register_depth(depth, K_d, hw_d if all(hw_d) else depth.shape, K, rgb.shape[:2], T_rgb_depth)
        frame_id = self._frame_id or rgb_msg.header.frame_id or "camera_optical_frame"
        return Frame(rgb=rgb, depth=depth, K=K.copy(), T_world_cam=T.copy(), stamp=float(t), frame_id=frame_id)

    def close(self) -> None:
        if getattr(self._reader, "stack", None):
            self._reader.close()
