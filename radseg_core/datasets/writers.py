"""Write any sequence of :class:`Frame` to disk: a TUM-style folder or a rosbag2 (mcap / sqlite3) bag.

The folder layout is TUM RGB-D's (``rgb/ depth/ rgb.txt depth.txt groundtruth.txt``) plus a
``camera.json`` with ``K`` and the depth scale, so :class:`~radseg_core.datasets.tum.TUMDataset` (and
``open_dataset``) reads it back without options. Depth is 16-bit millimetres, like most RGB-D drivers.
The bag uses the topics and encodings a RealSense-style driver publishes, so it exercises the ROS node
exactly as a real recording would.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from radseg_core.types import Frame

DEFAULT_TOPICS = {
    "rgb": "/camera/color/image_raw",
    "depth": "/camera/depth/image_raw",
    "camera_info": "/camera/color/camera_info",
    "pose": "/camera/pose",
}


def depth_to_mm16(depth: np.ndarray) -> np.ndarray:
    """float metres -> uint16 millimetres; invalid (NaN/inf/<=0) and beyond 65.535 m become 0."""
    d = np.nan_to_num(depth.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    mm = np.round(d * 1000.0)
    mm[(mm <= 0) | (mm > 65535)] = 0
    return mm.astype(np.uint16)


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(x, y, z, w) unit quaternion of a rotation matrix (Shepperd's method: stable for every angle)."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def write_folder(frames: Iterable[Frame], out_dir: str | Path, *, name: str | None = None,
                 classes: list[str] | None = None, labels: Iterable[np.ndarray] | None = None) -> Path:
    """Write frames as a TUM-style folder (readable by ``open_dataset``); returns ``out_dir``.

    All frames must share one ``K``; ``labels`` (one (H, W) int image per frame, 0 = ignore) go to
    ``labels/`` as 16-bit PNGs with ``classes`` recorded in camera.json.
    """
    out = Path(out_dir)
    (out / "rgb").mkdir(parents=True, exist_ok=True)
    (out / "depth").mkdir(exist_ok=True)
    label_iter = iter(labels) if labels is not None else None
    if label_iter is not None:
        (out / "labels").mkdir(exist_ok=True)
    rgb_lines, depth_lines, gt_lines = ["# timestamp filename"], ["# timestamp filename"], [
        "# timestamp tx ty tz qx qy qz qw (camera optical frame in world)"]
    K0, frame_id, n = None, "camera_optical_frame", 0
    for i, f in enumerate(frames):
        if K0 is None:
            K0, frame_id = np.asarray(f.K, dtype=np.float64), f.frame_id
        elif not np.allclose(K0, f.K):
            raise ValueError(f"frame {i} has different intrinsics; a folder holds one camera")
        fname = f"{i:06d}.png"
        cv2.imwrite(str(out / "rgb" / fname), cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / "depth" / fname), depth_to_mm16(f.depth))
        if label_iter is not None:
            cv2.imwrite(str(out / "labels" / fname), np.asarray(next(label_iter)).astype(np.uint16))
        ts = f"{f.stamp:.6f}"
        rgb_lines.append(f"{ts} rgb/{fname}")
        depth_lines.append(f"{ts} depth/{fname}")
        T = np.asarray(f.T_world_cam, dtype=np.float64)
        vals = [*T[:3, 3], *rotation_to_quaternion(T[:3, :3])]
        gt_lines.append(ts + " " + " ".join(f"{v:.9f}" for v in vals))
        n += 1
    if n == 0:
        raise ValueError("no frames to write")
    for fname, lines in (("rgb.txt", rgb_lines), ("depth.txt", depth_lines), ("groundtruth.txt", gt_lines)):
        (out / fname).write_text("\n".join(lines) + "\n")
    meta = {"name": name or out.name, "K": K0.tolist(), "depth_scale": 0.001, "frame_id": frame_id,
            "classes": classes, "frames": n}
    (out / "camera.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def write_rosbag(frames: Iterable[Frame], path: str | Path, *, storage: str = "mcap",
                 topics: dict[str, str] | None = None, map_frame: str = "map") -> Path:
    """Write frames to a rosbag2 directory ``path`` (must not exist) with ``storage`` mcap or sqlite3.

    Topics (``DEFAULT_TOPICS`` overridable per key): rgb8 Image, 16UC1 millimetre depth Image,
    CameraInfo (plumb_bob, zero distortion), PoseStamped of the optical frame in ``map_frame``. Messages
    are serialised with the ROS 2 Humble typestore (the definitions are the same in every distribution
    since), so any ROS 2 install can play the bag.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"storage must be one of {sorted(plugins)}, got {storage!r}")
    tp = {**DEFAULT_TOPICS, **(topics or {})}
    ts = get_typestore(Stores.ROS2_HUMBLE)
    Image, CameraInfo = ts.types["sensor_msgs/msg/Image"], ts.types["sensor_msgs/msg/CameraInfo"]
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    PoseStamped, Pose = ts.types["geometry_msgs/msg/PoseStamped"], ts.types["geometry_msgs/msg/Pose"]
    Point, Quaternion = ts.types["geometry_msgs/msg/Point"], ts.types["geometry_msgs/msg/Quaternion"]
    RoI = ts.types["sensor_msgs/msg/RegionOfInterest"]

    path = Path(path)
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugins[storage]) as w:
        conns = {
            "rgb": w.add_connection(tp["rgb"], Image.__msgtype__, typestore=ts),
            "depth": w.add_connection(tp["depth"], Image.__msgtype__, typestore=ts),
            "camera_info": w.add_connection(tp["camera_info"], CameraInfo.__msgtype__, typestore=ts),
            "pose": w.add_connection(tp["pose"], PoseStamped.__msgtype__, typestore=ts),
        }
        n = 0
        for f in frames:
            sec = int(np.floor(f.stamp))
            nsec = min(int(round((f.stamp - sec) * 1e9)), 999_999_999)
            t_ns = sec * 1_000_000_000 + nsec
            hdr = Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=f.frame_id)
            H, W = f.rgb.shape[:2]
            rgb = Image(header=hdr, height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3,
                        data=np.ascontiguousarray(f.rgb, dtype=np.uint8).reshape(-1))
            d16 = depth_to_mm16(f.depth)
            Hd, Wd = d16.shape
            depth = Image(header=hdr, height=Hd, width=Wd, encoding="16UC1", is_bigendian=0, step=Wd * 2,
                          data=d16.reshape(-1).view(np.uint8))
            K = np.asarray(f.K, dtype=np.float64)
            P = np.zeros((3, 4))
            P[:3, :3] = K
            info = CameraInfo(header=hdr, height=H, width=W, distortion_model="plumb_bob", d=np.zeros(5),
                              k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0,
                              binning_y=0, roi=RoI(x_offset=0, y_offset=0, height=0, width=0,
                                                   do_rectify=False))
            T = np.asarray(f.T_world_cam, dtype=np.float64)
            q = rotation_to_quaternion(T[:3, :3])
            pose = PoseStamped(header=Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=map_frame),
                               pose=Pose(position=Point(x=T[0, 3], y=T[1, 3], z=T[2, 3]),
                                         orientation=Quaternion(x=q[0], y=q[1], z=q[2], w=q[3])))
            for key, msg in (("rgb", rgb), ("depth", depth), ("camera_info", info), ("pose", pose)):
                w.write(conns[key], t_ns, ts.serialize_cdr(msg, msg.__msgtype__))
            n += 1
    if n == 0:
        raise ValueError("no frames to write")
    return path


# ------------------------------------------------------------------------------------- a robot's bag
# A RealSense-on-a-robot recording with known geometry, for tests and docs: base_link drives in odom
# (Odometry + /tf at 50 Hz, moving and turning), map -> odom is a static offset, the camera is mounted
# ahead of and above base_link, pitched down (/tf_static), and looks at a wall (map x = ROBOT_WALL_X)
# standing on the floor (map z = 0). Colour and depth optical frames are 5 cm apart and slightly rotated.
ROBOT_WALL_X = 3.0
ROBOT_HW = {"color": (48, 64), "depth": (36, 48)}
ROBOT_K = {"color": np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]]),
           "depth": np.array([[40.0, 0, 23.5], [0, 40.0, 17.5], [0, 0, 1]])}
ROBOT_TOPICS = {
    "color": "/camera/camera/color/image_raw",
    "color_info": "/camera/camera/color/camera_info",
    "depth": "/camera/camera/depth/image_rect_raw",
    "depth_info": "/camera/camera/depth/camera_info",
    "aligned": "/camera/camera/aligned_depth_to_color/image_raw",
    "aligned_info": "/camera/camera/aligned_depth_to_color/camera_info",
    "odom": "/odom",
    "pose": "/camera_pose",
}


def _rt(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


_R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
ROBOT_STATIC = {  # parent, child, T_parent_child
    "odom": ("map", "odom", _rt(_rz(0.3), [1.0, 0.5, 0.0])),
    "camera_link": ("base_link", "camera_link", _rt(_ry(0.25), [0.25, 0.05, 0.9])),  # pitched down
    "camera_color_optical_frame": ("camera_link", "camera_color_optical_frame",
                                   _rt(_rz(0.03) @ _R_BODY_OPTICAL, [0.0, -0.05, 0.0])),
    "camera_depth_optical_frame": ("camera_link", "camera_depth_optical_frame", _rt(_R_BODY_OPTICAL, [0, 0, 0])),
}


def robot_T_odom_base(t: float) -> np.ndarray:
    """base_link in odom at ``t`` s after the start: drives 0.3 m/s along its heading while turning 0.2 rad/s."""
    yaw = -0.3 + 0.2 * t
    return _rt(_rz(yaw), [0.3 * t, 0.05 * t, 0.0])


def robot_T_map(frame: str, t: float) -> np.ndarray:
    """``T_map_<frame>`` of base_link or a camera optical frame at ``t`` (ground truth)."""
    T = ROBOT_STATIC["odom"][2] @ robot_T_odom_base(t)
    if frame == "base_link":
        return T
    T = T @ ROBOT_STATIC["camera_link"][2]
    return T @ ROBOT_STATIC[frame][2] if frame != "camera_link" else T


def _render_planes(T_map_cam: np.ndarray, K: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Optical-axis depth of the wall (x = ROBOT_WALL_X) and floor (z = 0) seen by a camera; 0 = none."""
    v, u = np.mgrid[0:hw[0], 0:hw[1]].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)  # z = 1
    d = rays @ T_map_cam[:3, :3].T  # per unit of optical depth, in map
    o = T_map_cam[:3, 3]
    depth = np.full(hw, np.inf)
    for axis, level in ((0, ROBOT_WALL_X), (2, 0.0)):
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (level - o[axis]) / d[..., axis]
        depth = np.where((z > 0) & (z < depth), z, depth)
    depth[~np.isfinite(depth) | (depth > 8.0)] = 0.0
    return depth.astype(np.float32)


def write_robot_bag(path: str | Path, *, n_images: int = 8, rate: float = 5.0, t0: float = 100.0,
                    compressed_copies: bool = True, omit: tuple[str, ...] = (),
                    depth_frame_id: str = "camera_depth_optical_frame", tf_extra: tuple = (),
                    zero_quaternion_odom: tuple[int, ...] = ()) -> Path:
    """A RealSense + odometry + TF bag (mcap) of the scene above; image ``k`` is stamped ``t0 + k / rate``.

    Topics: colour (rgb8) and its ``/compressed`` JPEG copy, aligned depth (colour frame and size), the
    depth camera's own depth (its frame, size and intrinsics) and its ``compressedDepth`` PNG copy, three
    camera_infos, ``/odom`` (Odometry of base_link in odom, 50 Hz, starting 0.25 s after the first image
    and offset 7 ms from the images), ``/tf`` (odom -> base_link, same samples), ``/tf_static`` and
    ``/camera_pose`` (PoseStamped of the colour optical frame in map, 50 Hz). ``omit`` leaves topics out
    by key (``ROBOT_TOPICS`` keys, ``tf``, ``tf_static``) and ``depth_frame_id`` mislabels the depth
    camera's images, to make broken recordings; ``tf_extra`` adds ``(parent, child, xyz, xyzw)`` transforms
    to ``/tf`` at the first image's stamp, written as given (even invalid ones).
    """
    import struct

    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    M = ts.types
    Image, Compressed, Info = M["sensor_msgs/msg/Image"], M["sensor_msgs/msg/CompressedImage"], \
        M["sensor_msgs/msg/CameraInfo"]
    Header, Time = M["std_msgs/msg/Header"], M["builtin_interfaces/msg/Time"]
    Odom, PoseStamped = M["nav_msgs/msg/Odometry"], M["geometry_msgs/msg/PoseStamped"]
    Pose, PwC, TwC, Twist = M["geometry_msgs/msg/Pose"], M["geometry_msgs/msg/PoseWithCovariance"], \
        M["geometry_msgs/msg/TwistWithCovariance"], M["geometry_msgs/msg/Twist"]
    Point, Quat, Vec = M["geometry_msgs/msg/Point"], M["geometry_msgs/msg/Quaternion"], M["geometry_msgs/msg/Vector3"]
    TFMessage, TStamped, Transform = M["tf2_msgs/msg/TFMessage"], M["geometry_msgs/msg/TransformStamped"], \
        M["geometry_msgs/msg/Transform"]
    RoI = M["sensor_msgs/msg/RegionOfInterest"]

    def hdr(t: float, fid: str):
        sec = int(np.floor(t))
        return Header(stamp=Time(sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999)), frame_id=fid)

    def quat(R):
        q = rotation_to_quaternion(R)
        return Quat(x=q[0], y=q[1], z=q[2], w=q[3])

    def tstamped(t, parent, child, T):
        return TStamped(header=hdr(t, parent), child_frame_id=child,
                        transform=Transform(translation=Vec(x=T[0, 3], y=T[1, 3], z=T[2, 3]), rotation=quat(T[:3, :3])))

    def info(t, fid, K, hw):
        P = np.zeros((3, 4))
        P[:3, :3] = K
        return Info(header=hdr(t, fid), height=hw[0], width=hw[1], distortion_model="plumb_bob", d=np.zeros(5),
                    k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0,
                    roi=RoI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))

    def depth_msg(t, fid, d):
        d16 = depth_to_mm16(d)
        return Image(header=hdr(t, fid), height=d16.shape[0], width=d16.shape[1], encoding="16UC1",
                     is_bigendian=0, step=d16.shape[1] * 2, data=d16.reshape(-1).view(np.uint8))

    C, D = "camera_color_optical_frame", "camera_depth_optical_frame"
    path = Path(path)
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as w:
        conn = {k: w.add_connection(ROBOT_TOPICS[k], typ, typestore=ts) for k, typ in (
            ("color", Image.__msgtype__), ("color_info", Info.__msgtype__), ("depth", Image.__msgtype__),
            ("depth_info", Info.__msgtype__), ("aligned", Image.__msgtype__), ("aligned_info", Info.__msgtype__),
            ("odom", Odom.__msgtype__), ("pose", PoseStamped.__msgtype__))}
        conn["tf"] = w.add_connection("/tf", TFMessage.__msgtype__, typestore=ts)
        conn["tf_static"] = w.add_connection("/tf_static", TFMessage.__msgtype__, typestore=ts)
        if compressed_copies:
            conn["color_c"] = w.add_connection(ROBOT_TOPICS["color"] + "/compressed", Compressed.__msgtype__,
                                               typestore=ts)
            conn["depth_c"] = w.add_connection(ROBOT_TOPICS["depth"] + "/compressedDepth", Compressed.__msgtype__,
                                               typestore=ts)
        msgs = []  # (t, key, msg), written in time order
        msgs.append((t0 - 0.5, "tf_static", TFMessage(transforms=[tstamped(t0 - 0.5, p, c, T)
                                                                   for p, c, T in ROBOT_STATIC.values()])))
        for k in range(int(round((n_images / rate + 0.5) * 50))):
            t = t0 + 0.25 + 0.007 + k / 50.0  # odometry starts late: the first images have no pose
            T = robot_T_odom_base(t - t0)
            pose = Pose(position=Point(x=T[0, 3], y=T[1, 3], z=T[2, 3]), orientation=quat(T[:3, :3]))
            if k in zero_quaternion_odom:  # an uninitialised odometry publisher's message
                pose = Pose(position=pose.position, orientation=Quat(x=0.0, y=0.0, z=0.0, w=0.0))
            msgs.append((t, "odom", Odom(header=hdr(t, "odom"), child_frame_id="base_link",
                                         pose=PwC(pose=pose, covariance=np.zeros(36)),
                                         twist=TwC(twist=Twist(linear=Vec(x=0, y=0, z=0), angular=Vec(x=0, y=0, z=0)),
                                                   covariance=np.zeros(36)))))
            msgs.append((t, "tf", TFMessage(transforms=[tstamped(t, "odom", "base_link", T)])))
            Tc = robot_T_map(C, t - t0)
            msgs.append((t, "pose", PoseStamped(header=hdr(t, "map"), pose=Pose(
                position=Point(x=Tc[0, 3], y=Tc[1, 3], z=Tc[2, 3]), orientation=quat(Tc[:3, :3])))))
        for parent, child, xyz, q in tf_extra:
            tr = Transform(translation=Vec(x=xyz[0], y=xyz[1], z=xyz[2]), rotation=Quat(x=q[0], y=q[1], z=q[2], w=q[3]))
            msgs.append((t0, "tf", TFMessage(transforms=[TStamped(header=hdr(t0, parent), child_frame_id=child,
                                                                  transform=tr)])))
        for k in range(n_images):
            t = t0 + k / rate
            T_c, T_d = robot_T_map(C, t - t0), robot_T_map(D, t - t0)
            d_color = _render_planes(T_c, ROBOT_K["color"], ROBOT_HW["color"])
            d_depth = _render_planes(T_d, ROBOT_K["depth"], ROBOT_HW["depth"])
            shade = np.clip(d_color / 4.0 * 255, 0, 255).astype(np.uint8)
            rgb = np.stack([shade, 255 - shade, np.full_like(shade, 90)], axis=-1)
            H, W = ROBOT_HW["color"]
            msgs.append((t, "color", Image(header=hdr(t, C), height=H, width=W, encoding="rgb8", is_bigendian=0,
                                           step=W * 3, data=rgb.reshape(-1))))
            msgs.append((t, "color_info", info(t, C, ROBOT_K["color"], ROBOT_HW["color"])))
            msgs.append((t, "aligned", depth_msg(t, C, d_color)))
            msgs.append((t, "aligned_info", info(t, C, ROBOT_K["color"], ROBOT_HW["color"])))
            msgs.append((t, "depth", depth_msg(t, depth_frame_id, d_depth)))
            msgs.append((t, "depth_info", info(t, D, ROBOT_K["depth"], ROBOT_HW["depth"])))
            if compressed_copies:
                ok, jpg = cv2.imencode(".jpg", rgb[..., ::-1])
                msgs.append((t, "color_c", Compressed(header=hdr(t, C), format="rgb8; jpeg compressed bgr8",
                                                      data=jpg.reshape(-1))))
                ok, png = cv2.imencode(".png", depth_to_mm16(d_depth))
                payload = np.frombuffer(struct.pack("<iff", 0, 0.0, 0.0) + png.tobytes(), np.uint8)
                msgs.append((t, "depth_c", Compressed(header=hdr(t, D), format="16UC1; compressedDepth png",
                                                      data=payload)))
        msgs.sort(key=lambda m: m[0])
        for t, key, msg in msgs:
            if key in omit:
                continue
            w.write(conn[key], int(round(t * 1e9)), ts.serialize_cdr(msg, msg.__msgtype__))
    return path
