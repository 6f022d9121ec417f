"""Camera geometry: depth decoding, intrinsics, back-projection and poses (REP-103 conventions).

Conventions, stated once so every caller agrees:

* Camera *optical* frame (REP-103 ``*_optical_frame``): x right, y down, z forward. Depth images and
  ``K`` live here. The camera *body* frame (REP-103 ``*_link``): x forward, y left, z up.
* Pixel ``(row v, col u)`` has its centre at continuous coordinate ``(u, v)`` (ROS ``camera_info``):
  the image spans ``[-0.5, W - 0.5]``. Rescaling intrinsics keeps that convention exact.
* Quaternions are ``(x, y, z, w)`` as in ``geometry_msgs/Quaternion``.
* ``T_a_b`` maps points expressed in frame ``b`` into frame ``a`` (``p_a = T_a_b @ p_b``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Rotation taking optical-frame coordinates to body-frame coordinates: optical z (forward) is body x,
# optical x (right) is body -y, optical y (down) is body -z.
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

QUATERNION_NORM_TOLERANCE = 1e-3


def depth_to_metres(depth: np.ndarray, encoding: str, scale: float = 0.001) -> np.ndarray:
    """Decode a ROS depth image to float32 metres; 0 / NaN / inf stay "no measurement".

    ``16UC1`` (and its alias ``mono16``) holds integer units (millimetres by convention) multiplied by
    ``scale``; ``32FC1`` is already metres. Anything else is refused rather than guessed.
    """
    enc = encoding.upper()
    depth = np.asarray(depth)
    if enc in ("16UC1", "MONO16"):
        if depth.dtype != np.uint16:
            raise ValueError(f"depth encoding {encoding} needs uint16 data, got {depth.dtype}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"depth scale must be a positive finite number, got {scale}")
        return depth.astype(np.float32) * np.float32(scale)
    if enc == "32FC1":
        if depth.dtype != np.float32:
            raise ValueError(f"depth encoding 32FC1 needs float32 data, got {depth.dtype}")
        return depth.astype(np.float32, copy=True)
    raise ValueError(
        f"unsupported depth encoding {encoding!r}; expected 16UC1 (scaled units) or 32FC1 (metres)"
    )


def scale_intrinsics(K: np.ndarray, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> np.ndarray:
    """Intrinsics of the same camera resampled from ``from_hw`` to ``to_hw`` (H, W).

    Pixel centres sit at integer coordinates, so the principal point maps as ``(c + 0.5) * s - 0.5``
    (plain ``c * s`` is off by half a pixel at every downscale).
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be 3x3, got {K.shape}")
    sy, sx = to_hw[0] / from_hw[0], to_hw[1] / from_hw[1]
    out = K.copy()
    out[0, 0], out[0, 1] = K[0, 0] * sx, K[0, 1] * sx
    out[1, 1] = K[1, 1] * sy
    out[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    out[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return out


def backproject_depth(
    depth: torch.Tensor,
    K: np.ndarray | torch.Tensor,
    *,
    min_depth: float = 0.0,
    max_depth: float = math.inf,
    stride: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Optical-frame points of valid depth pixels.

    Returns ``points (N, 3)`` float32 and the pixel ``rows (N,)``, ``cols (N,)`` (long) they came from,
    so callers can look up colours and features. Non-finite, non-positive and out-of-range depths are
    dropped; ``stride`` keeps every stride-th row and column (cheap subsampling that keeps the grid).
    """
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {tuple(depth.shape)}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    K_t = torch.as_tensor(np.asarray(K, dtype=np.float64) if not torch.is_tensor(K) else K)
    fx, fy, cx, cy = (float(K_t[0, 0]), float(K_t[1, 1]), float(K_t[0, 2]), float(K_t[1, 2]))
    skew = float(K_t[0, 1])
    d = depth[::stride, ::stride].float()
    valid = torch.isfinite(d) & (d > 0) & (d >= min_depth) & (d <= max_depth)
    r, c = torch.nonzero(valid, as_tuple=True)
    z = d[r, c]
    rows, cols = r * stride, c * stride
    y = (rows.to(torch.float64) - cy) / fy
    x = (cols.to(torch.float64) - cx - skew * y) / fx
    pts = torch.stack([x.to(z.dtype) * z, y.to(z.dtype) * z, z], dim=1)
    return pts, rows, cols


def random_subsample(
    n: int, max_points: int | None, generator: torch.Generator | None = None
) -> torch.Tensor | None:
    """Indices of a uniform random subset of at most ``max_points`` of ``n`` items (None: keep all)."""
    if max_points is None or n <= max_points:
        return None
    return torch.randperm(n, generator=generator)[:max_points].sort().values


def quaternion_to_rotation(q, *, tol: float = QUATERNION_NORM_TOLERANCE) -> np.ndarray:
    """Rotation matrix of a unit quaternion ``(x, y, z, w)``.

    A slightly non-unit quaternion (float32 round trips, |‖q‖ − 1| ≤ tol) is normalised; anything
    further off, or non-finite, is a bug upstream and raises ``ValueError`` instead of silently
    producing a scaled, non-rigid "rotation".
    """
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if q.shape != (4,):
        raise ValueError(f"quaternion must have 4 components (x, y, z, w), got {q.shape[0]}")
    if not np.all(np.isfinite(q)):
        raise ValueError(f"quaternion has non-finite components: {q.tolist()}")
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > tol:
        raise ValueError(
            f"quaternion (x, y, z, w) = {q.tolist()} is not unit length (norm {norm:.6g}, tolerance {tol})"
        )
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def pose_to_matrix(position, quaternion_xyzw) -> np.ndarray:
    """4x4 rigid transform from a ROS pose (position + orientation quaternion)."""
    p = np.asarray(position, dtype=np.float64).reshape(-1)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise ValueError(f"position must be 3 finite numbers, got {p.tolist()}")
    T = np.eye(4)
    T[:3, :3] = quaternion_to_rotation(quaternion_xyzw)
    T[:3, 3] = p
    return T


def optical_from_body_pose(T_world_body: np.ndarray) -> np.ndarray:
    """Pose of the optical frame given the camera body (``*_link``) pose: right-multiply by R_BODY_OPTICAL."""
    T_body_optical = np.eye(4)
    T_body_optical[:3, :3] = R_BODY_OPTICAL
    return np.asarray(T_world_body, dtype=np.float64) @ T_body_optical


def validate_rigid_transform(T: np.ndarray, *, tol: float = 1e-3) -> np.ndarray:
    """Return ``T`` as float64 (4, 4) after checking it is finite and rigid; ValueError otherwise."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"transform must be 4x4, got {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ValueError("transform has non-finite entries")
    R = T[:3, :3]
    if np.abs(R.T @ R - np.eye(3)).max() > tol or abs(np.linalg.det(R) - 1.0) > tol:
        raise ValueError("transform rotation is not orthonormal with det +1")
    if np.abs(T[3] - np.array([0.0, 0.0, 0.0, 1.0])).max() > tol:
        raise ValueError("transform last row must be [0, 0, 0, 1]")
    return T


def transform_points(T: np.ndarray | torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply a 4x4 transform to (N, 3) points; the matrix is applied in float64 then cast back."""
    T_t = torch.as_tensor(T, dtype=torch.float64, device=points.device)
    out = points.to(torch.float64) @ T_t[:3, :3].T + T_t[:3, 3]
    return out.to(points.dtype)


def bilinear_taps(
    rows: torch.Tensor, cols: torch.Tensor, image_hw: tuple[int, int], grid_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where pixels of an ``image_hw`` image sample a coarser ``grid_hw`` map under bilinear resizing.

    Returns flat grid indices ``(N, 4)`` and weights ``(N, 4)`` (summing to 1) identical to
    ``F.interpolate(grid, size=image_hw, mode="bilinear", align_corners=False)`` at those pixels, so a
    per-pixel feature is ``sum_k w[:, k] * grid.flat[idx[:, k]]`` without materialising the full
    upsampled map.
    """
    H, W = image_hw
    h, w = grid_hw
    dev = rows.device

    def axis(pos: torch.Tensor, n_out: int, n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Same arithmetic as PyTorch's area_pixel_compute_source_index (float32, clamp at 0).
        scale = torch.tensor(n_in / n_out, dtype=torch.float32, device=dev)
        src = ((pos.to(torch.float32) + 0.5) * scale - 0.5).clamp_min(0.0)
        i0 = src.floor().long().clamp_max(n_in - 1)
        i1 = (i0 + 1).clamp_max(n_in - 1)
        lam = src - i0.to(torch.float32)
        return i0, i1, lam

    y0, y1, ly = axis(rows, H, h)
    x0, x1, lx = axis(cols, W, w)
    idx = torch.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1], dim=1)
    wts = torch.stack([(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx], dim=1)
    return idx, wts
