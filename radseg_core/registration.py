"""Depth registration: reproject a depth image from its own camera into the colour camera.

Why: a RealSense without ``align_depth`` publishes depth in ``camera_depth_optical_frame`` with its own
intrinsics and size; fusing it with the colour camera's ``K`` puts points centimetres off. Every valid
depth pixel is back-projected with the depth intrinsics, moved by ``T_rgb_depth`` and projected with the
colour intrinsics to its nearest colour pixel; where several land on one pixel the nearest surface wins
(a z-buffer), so a foreground object occludes the background it hides from the colour camera.
Colour pixels no depth pixel reaches stay 0 ("no measurement"), as depth_image_proc's register does
without hole filling. Pixel centres sit at integer coordinates (``radseg_core.geometry`` convention).
"""

from __future__ import annotations

import numpy as np

from radseg_core.geometry import scale_intrinsics, validate_rigid_transform


def register_depth(
    depth_m: np.ndarray,
    K_depth: np.ndarray,
    depth_hw: tuple[int, int],
    K_rgb: np.ndarray,
    rgb_hw: tuple[int, int],
    T_rgb_depth: np.ndarray | None = None,
) -> np.ndarray:
    """Depth in metres as seen by the colour camera, shape ``rgb_hw``; 0 where no depth reaches.

    ``K_depth`` belongs to a depth image of ``depth_hw`` (rows, cols) (rescaled when ``depth_m`` has
    another size); ``K_rgb`` to the colour image of ``rgb_hw``, which is the output size.
    ``T_rgb_depth`` maps depth-optical points into the colour optical frame (None: same origin).
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be a single-channel image, got shape {depth.shape}")
    K_d = np.asarray(K_depth, dtype=np.float64).reshape(3, 3)
    if tuple(depth.shape) != tuple(depth_hw):
        K_d = scale_intrinsics(K_d, tuple(depth_hw), depth.shape)
    K_c = np.asarray(K_rgb, dtype=np.float64).reshape(3, 3)
    T = np.eye(4) if T_rgb_depth is None else validate_rigid_transform(T_rgb_depth)
    H, W = int(rgb_hw[0]), int(rgb_hw[1])

    v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
    z = depth[v, u].astype(np.float64)
    pts = np.stack([(u - K_d[0, 2]) / K_d[0, 0] * z, (v - K_d[1, 2]) / K_d[1, 1] * z, z])
    pts = T[:3, :3] @ pts + T[:3, 3:4]
    zc = pts[2]
    front = zc > 1e-6
    pts, zc = pts[:, front], zc[front]
    uc = np.rint(K_c[0, 0] * pts[0] / zc + K_c[0, 2]).astype(np.int64)
    vc = np.rint(K_c[1, 1] * pts[1] / zc + K_c[1, 2]).astype(np.int64)
    inside = (uc >= 0) & (uc < W) & (vc >= 0) & (vc < H)
    idx, zc = vc[inside] * W + uc[inside], zc[inside]
    # z-buffer: the nearest depth per colour pixel (ufunc.at is unbuffered, so repeated pixels all count)
    zbuf = np.full(H * W, np.inf, dtype=np.float32)
    np.minimum.at(zbuf, idx, zc.astype(np.float32))
    zbuf[np.isinf(zbuf)] = 0.0
    return zbuf.reshape(H, W)
