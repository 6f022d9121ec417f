"""The camera's optical pose for one synchronised set, from the pose message or TF (REP-105).

Message fields are read here; every transform is composed by ``radseg_core.transforms``. A frame is
never placed with a silently assumed transform: a pose in another frame than the map, a body frame
other than the camera, or depth from another camera each need TF (or ``camera_extrinsic``), otherwise
``TransformError`` says what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry

from radseg_core.geometry import optical_from_body_pose, pose_to_matrix
from radseg_core.transforms import (
    ConnectivityError,
    InvalidArgumentError,
    TransformBuffer,
    TransformError,
    camera_pose,
    extrinsic,
    stamp_to_ns,
)


def parse_extrinsic(text: str) -> np.ndarray | None:
    """``camera_extrinsic`` 'x y z qx qy qz qw' (body -> camera optical frame) -> 4x4, '' -> None."""
    if not text.strip():
        return None
    try:
        v = [float(x) for x in text.replace(",", " ").split()]
    except ValueError as exc:
        raise ValueError(f"camera_extrinsic must be 7 numbers 'x y z qx qy qz qw', got {text!r}") from exc
    if len(v) != 7:
        raise ValueError(f"camera_extrinsic must be 7 numbers 'x y z qx qy qz qw', got {len(v)}")
    return extrinsic(v[:3], v[3:])


@dataclass
class PoseInputs:
    map_frame: str
    camera_frame: str  # '' = the image header's frame_id
    pose_is_optical: bool
    camera_extrinsic: np.ndarray | None  # T_body_optical, or None: from TF


def stamp_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds, the only stamps TF lookups take."""
    return stamp_to_ns(stamp.sec, stamp.nanosec)


def optical_pose(rgb: Any, pose_msg: Any, cfg: PoseInputs, buffer: TransformBuffer | None) -> np.ndarray:
    """``T_map_camera_optical`` at the image stamp; ``TransformError`` with a user-facing reason."""
    cam = cfg.camera_frame or rgb.header.frame_id
    if not cam:
        raise InvalidArgumentError("the rgb image has an empty header.frame_id: set it in the driver or set the "
                                   "camera_frame parameter")
    stamp = stamp_ns(rgb.header.stamp)
    if pose_msg is None:  # pose_source tf
        if buffer is None:
            raise ConnectivityError("pose_source tf but no TF listener is running")
        T = buffer.lookup(cfg.map_frame, cam, stamp)
        return T if cfg.pose_is_optical else optical_from_body_pose(T)
    if isinstance(pose_msg, Odometry):
        pose, body = pose_msg.pose.pose, pose_msg.child_frame_id
    elif isinstance(pose_msg, PoseStamped):
        pose, body = pose_msg.pose, ""
    else:  # pragma: no cover - the node subscribes only these types
        raise TypeError(f"unexpected pose message {type(pose_msg).__name__}")
    p, q = pose.position, pose.orientation
    try:
        T = pose_to_matrix((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
    except ValueError as exc:
        raise TransformError(f"pose message: {exc}") from exc
    body = body or cam  # no child frame: the message is the camera's own pose
    extr = cfg.camera_extrinsic
    if body == cam and not cfg.pose_is_optical:
        T = optical_from_body_pose(T)  # the camera's body (x forward) pose
    parent = pose_msg.header.frame_id
    try:
        return camera_pose(T, parent_frame=parent, body_frame=body, camera_frame=cam, map_frame=cfg.map_frame,
                           stamp_ns=stamp, buffer=buffer, extrinsic=extr)
    except ConnectivityError as exc:  # say which chain was needed, not only which lookup failed
        raise ConnectivityError(f"pose of [{body}] in [{parent}], camera [{cam}], map [{cfg.map_frame}]: {exc}") \
            from exc


def depth_extrinsic(rgb: Any, depth: Any, camera_frame: str, buffer: TransformBuffer | None) -> np.ndarray | None:
    """``T_rgb_depth`` when depth comes from another frame than rgb (not aligned), else None."""
    cam = camera_frame or rgb.header.frame_id
    dframe = depth.header.frame_id
    if not dframe:
        raise InvalidArgumentError("the depth image has an empty header.frame_id: set it in the driver")
    if dframe in (cam, rgb.header.frame_id):
        return None
    if buffer is None:
        raise ConnectivityError(
            f"depth is in frame [{dframe}] but rgb in [{cam}] (depth not aligned) and no TF relates them: "
            "enable the driver's align_depth, or provide TF")
    try:
        return buffer.lookup(cam, dframe, stamp_ns(depth.header.stamp))
    except ConnectivityError as exc:
        raise ConnectivityError(
            f"depth is in frame [{dframe}] but rgb in [{cam}] (depth not aligned) and TF does not relate them "
            f"({exc}): enable the driver's align_depth, or publish the camera's TF") from exc
