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
