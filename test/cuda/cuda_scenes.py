"""A ray-cast corridor at camera size for the cuda tests and the device suite (no data files needed)."""

from __future__ import annotations

import math

import numpy as np

from radseg_core.geometry import optical_from_body_pose
from radseg_core.types import Frame

K640 = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])


def room_frame(i: int, h: int = 480, w: int = 640, far_wall: float = 6.0, seed: int = 0) -> Frame:
    """View i of a 4 m wide, 3 m high corridor ending in a wall at x = ``far_wall`` (ray-cast depth)."""
    yaw = 0.3 * math.sin(i / 3.0)
    c, s = math.cos(yaw), math.sin(yaw)
    T_body = np.eye(4)
    T_body[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    T_body[:3, 3] = [0.2 * i, 0.3 * math.sin(i / 4.0), 1.4]
    T = optical_from_body_pose(T_body)
    K = K640 * np.array([[w / 640], [h / 480], [1.0]])
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ T[:3, :3].T
    o = T[:3, 3]
    depth = np.full((h, w), np.inf)
    for axis, plane in ((1, -2.0), (1, 2.0), (2, 0.0), (2, 3.0), (0, far_wall)):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (plane - o[axis]) / rays[..., axis]
        depth = np.where((t > 0) & (t < depth), t, depth)  # rays' z component is 1: t is the depth
    rgb = np.random.default_rng(seed + i).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Frame(rgb=rgb, depth=depth.astype(np.float32), K=K, T_world_cam=T, stamp=float(i))
