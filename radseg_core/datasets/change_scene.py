"""Exact scenes that change: a room whose boxes come and go, ray-cast from poses the caller chooses.

Free-space clearing (``radseg_core.free_space``) is judged on geometry known exactly: what a removed
object leaves behind, and what a static room loses, must not depend on sensor noise or a renderer's
quirks. :class:`~radseg_core.datasets.synthetic_room.SyntheticRoom` already ray-casts axis-aligned boxes
with exact depth and labels; this module adds what a change needs: poses aimed at a point (:func:`look_at`,
:func:`arc_poses`), one room per phase (:func:`room`) and labels as one-hot class probabilities
(:func:`one_hot`), the input of a ``mode="probabilities"`` map.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from radseg_core.datasets.synthetic_room import ROOM_CLASSES, Box, SyntheticRoom
from radseg_core.types import Frame

VGA = (480, 640)
VGA_FOV_DEG = 2.0 * math.degrees(math.atan(320.0 / 525.0))  # f = 525 px at 640 x 480 (Kinect / RealSense)


def look_at(eye, target) -> np.ndarray:
    """Optical-frame pose (x right, y down, z forward) at ``eye`` looking at ``target`` (world z up)."""
    eye, target = np.asarray(eye, np.float64), np.asarray(target, np.float64)
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("look_at cannot aim straight up or down (the image's x axis is undefined)")
    right /= np.linalg.norm(right)
    T = np.eye(4)
    T[:3, :3] = np.stack([right, np.cross(fwd, right), fwd], axis=1)
    T[:3, 3] = eye
    return T


def arc_poses(target, distance: float, height: float, n: int, *, azimuth_deg: float = 180.0,
              spread_deg: float = 30.0) -> list[np.ndarray]:
    """``n`` cameras at ``height`` on an arc of ``spread_deg`` around ``target`` (horizontal ``distance``,
    centred on ``azimuth_deg``, measured from +x), each looking at ``target``."""
    target = np.asarray(target, np.float64)
    poses = []
    for i in range(n):
        a = math.radians(azimuth_deg + spread_deg * ((i / (n - 1) - 0.5) if n > 1 else 0.0))
        eye = [target[0] + distance * math.cos(a), target[1] + distance * math.sin(a), height]
        poses.append(look_at(eye, target))
    return poses


def room(boxes: list[Box], *, size=(6.0, 6.0, 3.0), hw: tuple[int, int] = VGA,
         fov_deg: float = VGA_FOV_DEG) -> SyntheticRoom:
    """The inside of a ``size`` box (floor z = 0, walls, ceiling) with ``boxes`` in it; no furniture."""
    return SyntheticRoom(n_frames=1, hw=hw, fov_deg=fov_deg, size=size, boxes=list(boxes))


def view(scene: SyntheticRoom, T_world_cam: np.ndarray) -> tuple[Frame, np.ndarray]:
    """One exact RGB-D frame of ``scene`` from ``T_world_cam`` and its label image (k + 1 = classes[k])."""
    rgb, depth, labels = scene.render(T_world_cam)
    return Frame(rgb=rgb, depth=depth, K=scene.K.copy(), T_world_cam=np.asarray(T_world_cam, np.float64)), labels


def one_hot(labels: np.ndarray, n_classes: int = len(ROOM_CLASSES)) -> torch.Tensor:
    """(n_classes, H, W) float one-hot class probabilities of a label image (0 = ignore: all zero)."""
    lab = torch.as_tensor(np.asarray(labels, np.int64))
    out = torch.zeros(n_classes + 1, *lab.shape)
    out.scatter_(0, lab[None].clamp(0, n_classes), 1.0)
    return out[1:]


__all__ = ["VGA", "VGA_FOV_DEG", "arc_poses", "look_at", "one_hot", "room", "view"]
