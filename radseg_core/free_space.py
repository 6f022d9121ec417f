"""Free-space clearing: voxels that a depth image sees *through* lose weight, so removed objects vanish.

A map voxel whose centre projects into the image at camera depth ``z`` lies in free space when the
measured depth there is well beyond it: ``z < d - margin``. Two things keep static surfaces safe,
grazing ones included:

* ``d`` is the *minimum* depth over a window around the projected pixel, at least twice the voxel's
  projected footprint (``2 * f * 0.87 * voxel_size / z`` pixels, capped at 32). A surface voxel has
  surface points inside its cube, and they appear within its footprint at depths <= z + one voxel
  diagonal, so the minimum can never exceed that. Missing depth (0, NaN) inside the window blocks
  clearing (unknown is not free).
* ``margin = 2 * voxel_size + 0.02 * z`` (depth noise), and voxels hit by the same frame are spared.

Only voxels inside the frustum's bounding box can be flagged (:func:`frustum_voxel_box`): the map
looks them up in its sorted key index, so a frame costs O(voxels near the camera) (one 3x3 transform
and a gather each) plus a min-pool pyramid of the depth image, not O(map); no ray marching. Measured
(docs/benchmarks.md, 640x480, CPU): 1M voxels over 100 m x 100 m, 9.0 ms vs 109.8 ms projecting every
voxel (12x); all 1M voxels in view, 100.9 vs 112.8 ms (the pre-filter costs nothing noticeable).
"""

from __future__ import annotations

import numpy as np
import torch

_RADII = (0, 1, 2, 4, 8, 16, 32)  # min-pool window half sizes (pixels); each level doubles the last


def min_pool_pyramid(depth: torch.Tensor, max_depth: float) -> torch.Tensor:
    """(L, H, W) minimum of ``depth`` over (2r+1)^2 windows for r in _RADII; unknown depth counts as 0.

    Depth beyond ``max_depth`` becomes ``max_depth`` (the ray is known to pass at least that far).
    """
    d = torch.where(torch.isfinite(depth) & (depth > 0), depth.clamp_max(max_depth), torch.zeros_like(depth))
    levels = [d]
    prev, prev_r = d, 0
    for r in _RADII[1:]:
        step = r - prev_r  # a (2 prev_r + 1) window shifted by +-step covers radius prev_r + step = r
        cur = prev
        for dim in (0, 1):
            cur = torch.minimum(cur, torch.minimum(_shift(cur, step, dim), _shift(cur, -step, dim)))
        levels.append(cur)
        prev, prev_r = cur, r
    return torch.stack(levels)


def _shift(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """``x`` moved by ``k`` along ``dim``, +inf where nothing moves in (neutral for a minimum)."""
    out = torch.full_like(x, float("inf"))
    n = x.shape[dim]
    if k >= n or -k >= n:
        return out
    if k > 0:
        out.narrow(dim, k, n - k).copy_(x.narrow(dim, 0, n - k))
    else:
        out.narrow(dim, 0, n + k).copy_(x.narrow(dim, -k, n + k))
    return out


def frustum_voxel_box(
    depth: torch.Tensor,
    K: np.ndarray,
    T_world_cam: np.ndarray,
    voxel_size: float,
    grid_shift: float = 0.0,
    *,
    min_depth: float = 0.0,
    max_depth: float = float("inf"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive int64 (3,) bounds ``lo, hi`` of voxel indices (``VoxelMap.voxel_indices`` coordinates,
    cell i centred at ``(i + 0.5 - grid_shift) * voxel_size``) holding every voxel :func:`free_voxels`
    can flag for this frame; ``lo > hi`` somewhere when none.

    A flagged voxel has camera depth ``z < d_min - margin`` <= the largest valid depth (clamped to
    ``max_depth``), ``z > min_depth`` and a pixel inside the image, so it lies in the frustum of the
    image (widened by half a pixel) between those depths: the box of its 8 corners, in float64 (far
    origins), padded by one voxel so float32 rounding in :func:`free_voxels` cannot escape it.
    """
    empty = (torch.zeros(3, dtype=torch.int64), torch.full((3,), -1, dtype=torch.int64))
    far = min(float(torch.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0).amax()), max_depth)  # no mask copy
    near = max(min_depth, 0.0)
    if not far > near:  # also no valid (finite, positive) depth at all
        return empty
    H, W = depth.shape
    fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    u = (np.array([-1.0, W]) - cx) / fx  # pixels round to [0, W-1], i.e. u in [-0.5, W - 0.5): widened
    v = (np.array([-1.0, H]) - cy) / fy
    rays = np.array([[a, b, 1.0] for a in u for b in v])
    corners = np.concatenate([rays * near, rays * far])  # camera frame; near = 0 gives the apex
    T = np.asarray(T_world_cam, np.float64)
    world = corners @ T[:3, :3].T + T[:3, 3]
    s = grid_shift - 0.5  # centre of cell i is (i - s) * voxel_size
    lo = np.floor(world.min(axis=0) / voxel_size + s) - 1
    hi = np.ceil(world.max(axis=0) / voxel_size + s) + 1
    lim = float(1 << 40)  # a huge depth must not overflow int64; keys span far less
    return torch.from_numpy(np.clip(lo, -lim, lim).astype(np.int64)), torch.from_numpy(
        np.clip(hi, -lim, lim).astype(np.int64)
    )


def free_voxels(
    centers_world: torch.Tensor,
    depth: torch.Tensor,
    K: np.ndarray,
    T_world_cam: np.ndarray,
    voxel_size: float,
    *,
    min_depth: float = 0.0,
    max_depth: float = float("inf"),
) -> torch.Tensor:
    """(N,) bool: voxels (centres in the world frame, float64 for far origins) seen through by ``depth``."""
    n = centers_world.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.bool, device=depth.device)
    H, W = depth.shape
    T = torch.as_tensor(np.linalg.inv(T_world_cam), dtype=torch.float64, device=depth.device)
    pc = (centers_world.to(torch.float64) @ T[:3, :3].T + T[:3, 3]).float()
    z = pc[:, 2]
    fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    front = z > max(min_depth, 1e-3)
    zs = torch.where(front, z, torch.ones_like(z))
    u = torch.round(pc[:, 0] / zs * fx + cx).long()
    v = torch.round(pc[:, 1] / zs * fy + cy).long()
    inside = front & (u >= 0) & (u < W) & (v >= 0) & (v < H) & (z < max_depth)
    idx = torch.nonzero(inside, as_tuple=True)[0]
    out = torch.zeros(n, dtype=torch.bool, device=depth.device)
    if idx.numel() == 0:
        return out
    zi = z[idx]
    footprint = 2.0 * max(fx, fy) * 0.87 * voxel_size / zi
    radii = torch.tensor(_RADII, dtype=footprint.dtype, device=depth.device)
    level = torch.searchsorted(radii, footprint.contiguous()).clamp_max(len(_RADII) - 1)
    d_min = min_pool_pyramid(depth.float(), max_depth)[level, v[idx], u[idx]]
    margin = 2.0 * voxel_size + 0.02 * zi
    out[idx] = zi < d_min - margin
    return out
