"""Free-space clearing: voxels that a depth image sees *through* lose evidence, so removed objects vanish.

A voxel is seen through when every pixel ray that meets its cube passes it and lands well beyond it:

* The rays are those of the pixels of the cube's projected rectangle, clipped to the image (a strided
  grid of at most ``max_rays`` per side for cubes very close to the camera); each meets the
  (world-axis-aligned) cube over an exact optical-depth interval ``[t_in, t_out]`` (slab test). Rays that
  miss it say nothing; the ray of the cube's centre pixel must meet it.
* A ray vouches for free space up to its measured depth ``d`` (clamped to ``max_depth``) less ``noise * d``
  and less a clearance *perpendicular to the surface it lands on*, ``max(clearance * voxel_size / 2, pixels
  pixel footprints at d)``, so divided by the sine of the incidence angle along the ray (normals from the
  depth image itself, :func:`incidence_sine`); and no further than its 8 neighbours do (a surface that the
  ray just misses, such as the other wall of a corner, is seen by a neighbour).
* The cube is seen through when every ray meeting it is vouched for beyond ``t_out``. So a cube that a
  surface crosses or touches never passes (some ray lands inside it, in front of it, or within the
  clearance behind it, however grazing the view), while a cube a voxel above a floor passes from any
  height: the rule looks along each ray. The rule before issue #22 took the minimum depth over a window
  twice the voxel's footprint; near a floor seen at a low angle that minimum is the floor just below, so a
  removed object's bottom 10-20 cm never cleared.
* Unknown depth (0, NaN, inf), a pixel without a known neighbour (no normal), the centre pixel outside the
  image, a corner in front of ``min_depth``: not seen through (unknown is not free).

Cost: only voxels in the frustum's box are tested (:func:`frustum_voxel_box`, found in the map's key
index), so a frame costs O(voxels near the camera) plus passes over the image (normals, vouched depth).
Per voxel, the centre ray decides most cases (landing in, before or just behind the cube keeps it); a
min-pool pyramid of the vouched depth, built where it pays, clears voxels far in front of everything at
once; only the rest, near surfaces, cast all their rays.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_RADII = (0, 1, 2, 4, 8, 16, 32)  # min-pool window half sizes (pixels); each level doubles the last
_CORNERS = torch.tensor([[a, b, c] for a in (-1.0, 1.0) for b in (-1.0, 1.0) for c in (-1.0, 1.0)])


def min_pool_pyramid(image: torch.Tensor) -> torch.Tensor:
    """(L, H, W) minimum of ``image`` over (2r+1)^2 windows for r in _RADII (the image's outside is neutral)."""
    levels = [image]
    prev, prev_r = image, 0
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


def _rays(K: np.ndarray, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(..., 3) optical-frame rays of pixels (u, v) scaled to unit optical depth (z = 1)."""
    fx, fy, cx, cy, skew = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), float(K[0, 1]))
    y = (v - cy) / fy
    return torch.stack([(u - cx - skew * y) / fx, y, torch.ones_like(y)], dim=-1)


def _slope(depth: torch.Tensor, K: np.ndarray) -> torch.Tensor:
    """(H, W) ``|n|`` of the surface normal ``n = (-gx, -gy, 1 + gx rx + gy ry)`` scaled so that ``n . r = 1``
    (see :func:`incidence_sine`): the along-ray length, in optical depth, per unit of distance from the
    surface. +inf where the depth or both neighbours along an axis are unknown."""
    H, W = depth.shape
    fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    d = torch.where(torch.isfinite(depth) & (depth > 0), depth.float(), torch.zeros((), dtype=torch.float32))
    inf = float("inf")
    g, known = [], d > 0
    for axis, f in ((1, fx), (0, fy)):  # image x, then image y (axes of the (H, W) maps)
        n = d.shape[axis]
        hi, lo = d.narrow(axis, 1, n - 1), d.narrow(axis, 0, n - 1)
        step = hi - lo  # d[i + 1] - d[i]
        jump = torch.where((hi > 0) & (lo > 0), step.abs(), torch.full_like(step, inf))
        after, before = ([0, 1], [1, 0]) if axis == 1 else ([0, 0, 0, 1], [0, 0, 1, 0])  # F.pad: last dim first
        fwd_jump, bwd_jump = F.pad(jump, after, value=inf), F.pad(jump, before, value=inf)
        fwd = F.pad(f * step / hi.clamp_min(1e-12), after)  # towards i + 1: the neighbour's depth is d[i + 1]
        bwd = F.pad(f * step / lo.clamp_min(1e-12), before)  # towards i - 1: it is d[i - 1]
        g.append(torch.where(fwd_jump <= bwd_jump, fwd, bwd))
        known &= torch.minimum(fwd_jump, bwd_jump) < inf
    gx, gy = g
    rx = ((torch.arange(W, dtype=torch.float32) - cx) / fx)[None, :]
    ry = ((torch.arange(H, dtype=torch.float32) - cy) / fy)[:, None]
    nz = 1.0 + gx * rx + gy * ry
    norm = (gx * gx + gy * gy + nz * nz).sqrt()
    return torch.where(known, norm, torch.full_like(norm, inf))


def incidence_sine(depth: torch.Tensor, K: np.ndarray) -> torch.Tensor:
    """(H, W) |sin| of the angle between each pixel's ray and the surface it hit; 0 where unknown.

    The surface's tangents are the differences of back-projected neighbours, one along image x and one
    along y, each taken towards the neighbour of closer depth (so a ray landing beside a depth edge gets
    its own surface's normal, and the image border uses the side it has). With ``r`` the pixel's ray
    (z = 1) and ``Δ``, ``d'`` the depth step to that neighbour and its depth, the tangents are
    ``Δx r + d'x e_x / fx`` and ``Δy r + d'y e_y / fy``, whose cross product is parallel to
    ``n = (-gx, -gy, 1 + gx rx + gy ry)``, ``g = f Δ / d'``, with ``n . r = 1``: so ``sin = 1 / (|n| |r|)``,
    a few operations per pixel (skew is ignored here). A pixel with unknown depth, or with no known
    neighbour along an axis, gets 0: nothing in front of it can be vouched for.
    """
    H, W = depth.shape
    ray = _rays(K, torch.arange(W, dtype=torch.float32)[None, :].expand(H, W),
                torch.arange(H, dtype=torch.float32)[:, None].expand(H, W))
    return 1.0 / (_slope(depth, K) * ray.norm(dim=-1))


def vouched_depth(
    depth: torch.Tensor, K: np.ndarray, voxel_size: float, *, clearance: float, noise: float, pixels: float,
    max_depth: float = float("inf"),
) -> torch.Tensor:
    """(H, W) optical depth up to which each pixel's ray vouches for free space (-inf: for none).

    ``d (1 - noise) - c / sin(incidence) / |ray|`` with ``d`` clamped to ``max_depth`` (the ray passes at
    least that far). ``c``, the clearance perpendicular to the surface, is ``clearance * voxel_size / 2``,
    or ``pixels`` pixel footprints at that range where those are wider (far away a thin band of rays
    landing close behind a cube may fall between pixels). ``/ |ray|`` turns the along-ray length into
    optical depth, and ``1 / (sin |ray|)`` is the normal's norm of :func:`incidence_sine`.
    """
    H, W = depth.shape
    fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    d = depth.float().clamp_max(max_depth)
    rx = ((torch.arange(W, dtype=torch.float32) - cx) / fx)[None, :]
    ry = ((torch.arange(H, dtype=torch.float32) - cy) / fy)[:, None]
    footprint = d * (1.0 + rx * rx + ry * ry).sqrt() / min(fx, fy)
    c = (pixels * footprint).clamp_min(clearance * voxel_size / 2)
    slope = _slope(depth, K)
    return torch.where(slope < float("inf"), d * (1.0 - noise) - c * slope, torch.full_like(d, -float("inf")))


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

    A flagged voxel has its cube in front of the largest valid depth (clamped to ``max_depth``), beyond
    ``min_depth`` and inside the image, so it lies in the frustum of the image (widened by half a pixel)
    between those depths: the box of its 8 corners, in float64 (far origins), padded by one voxel so
    float32 rounding in :func:`free_voxels` cannot escape it.
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


def _slab(rel: torch.Tensor, ray_w: torch.Tensor, half: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Optical-depth interval ``[t_in, t_out]`` where rays ``t * ray_w`` from the camera meet the cubes
    ``rel +- half`` (world axes; ``rel`` broadcast against ``ray_w``); ``t_in > t_out`` when they miss."""
    inv = 1.0 / torch.where(ray_w.abs() < 1e-12, torch.full_like(ray_w, 1e-12), ray_w)
    t1, t2 = (rel - half) * inv, (rel + half) * inv
    return torch.minimum(t1, t2).amax(-1), torch.maximum(t1, t2).amin(-1)


def free_voxels(
    centers_world: torch.Tensor,
    depth: torch.Tensor,
    K: np.ndarray,
    T_world_cam: np.ndarray,
    voxel_size: float,
    *,
    min_depth: float = 0.0,
    max_depth: float = float("inf"),
    clearance: float = 0.5,
    noise: float = 0.01,
    pixels: float = 1.0,
    max_rays: int = 32,
    shortcut: bool | None = None,
    chunk: int = 1 << 15,
    pair_chunk: int = 1 << 21,
) -> torch.Tensor:
    """(N,) bool: voxels (centres in the world frame, float64 for far origins) ``depth`` sees through.

    See the module docstring. ``clearance`` is in half voxels and ``pixels`` in pixel footprints, both
    perpendicular to the surface a ray lands on; ``noise`` a fraction of the measured depth (the defaults
    are those measured in benchmarks/free_space_designs.py); the ray grid is every pixel of the rectangle,
    with a stride where it is wider or taller than ``max_rays`` pixels (cubes closer than
    ``f * voxel_size / max_rays``: 0.8 m at f = 525 px). ``shortcut`` forces the min-pool window test on or
    off (None: where it pays); the result is the same.
    """
    n = centers_world.shape[0]
    out = torch.zeros(n, dtype=torch.bool, device=depth.device)
    if n == 0:
        return out
    dev = depth.device
    H, W = depth.shape
    T = np.asarray(T_world_cam, np.float64)
    R = torch.as_tensor(T[:3, :3], dtype=torch.float32, device=dev)  # camera -> world rotation
    half = voxel_size / 2
    vouched = vouched_depth(depth, K, voxel_size, clearance=clearance, noise=noise, pixels=pixels,
                            max_depth=max_depth)
    for dim in (0, 1):  # a ray vouches no further than its 8 neighbours
        vouched = torch.minimum(vouched, torch.minimum(_shift(vouched, 1, dim), _shift(vouched, -1, dim)))
    pyramid = None  # built on first need (below)
    radii = torch.tensor(_RADII, dtype=torch.float32, device=dev)
    corners = (_CORNERS.to(dev) * half) @ R  # the cube's corner offsets in the camera frame
    fx, fy, cx, cy, skew = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), float(K[0, 1]))
    near = max(min_depth, 1e-3)
    origin = torch.as_tensor(T[:3, 3], dtype=torch.float64, device=dev)
    for start in range(0, n, chunk):
        rel = (centers_world[start : start + chunk].to(dev, torch.float64) - origin).float()  # world offsets
        pc = rel @ R  # camera-frame centres
        zc = torch.where(pc[:, 2] > near, pc[:, 2], torch.ones_like(pc[:, 2]))
        uc = torch.round(pc[:, 0] / zc * fx + skew * pc[:, 1] / zc + cx)
        vc = torch.round(pc[:, 1] / zc * fy + cy)
        idx = torch.nonzero((pc[:, 2] > near) & (uc >= 0) & (uc <= W - 1) & (vc >= 0) & (vc <= H - 1), as_tuple=True)[0]
        # 1. The centre pixel's ray: landing in, before or just behind the cube keeps the voxel.
        rel, pc, uc, vc = rel[idx], pc[idx], uc[idx], vc[idx]
        ui, vi = uc.long(), vc.long()
        t_in, t_out = _slab(rel, _rays(K, uc, vc) @ R.T, half)
        passes = (t_in <= t_out) & (vouched[vi, ui] > t_out)
        idx, rel, pc, uc, vc, ui, vi = (t[passes] for t in (idx, rel, pc, uc, vc, ui, vi))
        # The cube's projected rectangle (clipped to the image: rays outside it say nothing).
        pk = pc[:, None, :] + corners  # (m, 8, 3)
        z = pk[..., 2]
        zs = torch.where(z > near, z, torch.ones_like(z))
        v_k = pk[..., 1] / zs * fy + cy
        u_k = pk[..., 0] / zs * fx + skew * pk[..., 1] / zs + cx
        u0, u1 = u_k.amin(1).clamp(-0.5, W - 0.5), u_k.amax(1).clamp(-0.5, W - 0.5)
        v0, v1 = v_k.amin(1).clamp(-0.5, H - 0.5), v_k.amax(1).clamp(-0.5, H - 0.5)
        ahead = (z > near).all(1)
        # 2. Every ray of a window holding the whole rectangle vouches beyond the cube's far corner: free. A
        # shortcut (step 3 would say the same), worth its min-pool pyramid only where the rays to cast would
        # cost more than it (about two dozen passes over the image).
        free = torch.zeros_like(ahead)
        rays = ((u1 - u0 + 2).clamp_max(max_rays) * (v1 - v0 + 2).clamp_max(max_rays)).sum()
        if shortcut if shortcut is not None else (pyramid is not None or float(rays) > H * W / 2):
            pyramid = min_pool_pyramid(vouched) if pyramid is None else pyramid
            reach = torch.stack([uc - u0, u1 - uc, vc - v0, v1 - vc], 1).amax(1).ceil()
            level = torch.searchsorted(radii, reach.contiguous()).clamp_max(len(_RADII) - 1)
            free = ahead & (reach <= _RADII[-1]) & (pyramid[level, vi, ui] > z.amax(1))
        # 3. The rest: every pixel ray of the rectangle must see through the cube (or miss it).
        rest = torch.nonzero(ahead & ~free, as_tuple=True)[0]
        if rest.numel():
            free[rest] = _all_rays_through(rel[rest], u0[rest], u1[rest], v0[rest], v1[rest], vouched, K, R, half,
                                           max_rays, pair_chunk)
        out[start + idx] = free
    return out


def _all_rays_through(
    rel: torch.Tensor, u0: torch.Tensor, u1: torch.Tensor, v0: torch.Tensor, v1: torch.Tensor,
    vouched: torch.Tensor, K: np.ndarray, R: torch.Tensor, half: float, max_rays: int, pair_chunk: int,
) -> torch.Tensor:
    """(m,) bool: each pixel ray of each cube's rectangle (``rel``: centres minus the camera, world axes)
    that meets the cube is vouched for beyond where it leaves it. Cubes cast different numbers of rays,
    so (cube, pixel) pairs are laid out flat, ``pair_chunk`` at a time."""
    H, W = vouched.shape
    first_u, first_v = u0.floor(), v0.floor()
    nu, nv = (u1.ceil() - first_u + 1), (v1.ceil() - first_v + 1)
    su, sv = (nu / max_rays).ceil(), (nv / max_rays).ceil()  # pixel strides of the ray grid
    cu, cv = (nu / su).ceil().long(), (nv / sv).ceil().long()
    count = cu * cv
    ends = count.cumsum(0)
    out = torch.ones(rel.shape[0], dtype=torch.bool, device=rel.device)
    lo = 0
    while lo < rel.shape[0]:
        base = int(ends[lo - 1]) if lo else 0
        hi = max(lo + 1, int(torch.searchsorted(ends, torch.tensor(base + pair_chunk, device=ends.device))))
        hi = min(hi, rel.shape[0])
        owner = torch.repeat_interleave(torch.arange(lo, hi, device=rel.device), count[lo:hi])
        k = torch.arange(owner.numel(), device=rel.device) - (ends[owner] - count[owner] - base)  # index in cube
        u = (first_u[owner] + (k % cu[owner]) * su[owner]).clamp(0, W - 1)
        v = (first_v[owner] + (k // cu[owner]) * sv[owner]).clamp(0, H - 1)
        t_in, t_out = _slab(rel[owner], _rays(K, u, v) @ R.T, half)
        blocked = (t_in <= t_out) & ~(vouched[v.long(), u.long()] > t_out)
        n_blocked = torch.zeros(hi - lo, dtype=torch.int64, device=rel.device).index_add_(
            0, owner - lo, blocked.long()
        )
        out[lo:hi] = n_blocked == 0
        lo = hi
    return out
