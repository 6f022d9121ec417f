"""Hashed sparse semantic voxel map: incremental, hit-weighted, memory-bounded (RADSeg appendix A3).

Each voxel keeps a hit count, a mean colour and the hit-weighted mean of what fell into it: raw
RADIO features (``mode="features"``, aligned to language only at query time) or class probabilities
(``mode="probabilities"``). Averages are exactly those of voxelizing every point of every frame at
once; integration never revisits voxels a frame did not touch (free-space clearing, when on, does:
it projects the voxels in the frame's frustum box, found in the key index: 12x cheaper than projecting
all 1M voxels of a 100 m map; see ``free_space``).

Layout, chosen so that integrating a frame costs what the frame costs, not what the map costs:

* Voxel integer coordinates are packed into one int64 key (21 bits per axis, ±52 km at 5 cm) relative
  to ``origin_voxel``; world points are formed in float64, so a map anchored 1,000 km away (UTM) is
  the same map as one at the origin, shifted. Points beyond the key range are counted
  (``out_of_range``) and warned about once, never dropped silently.
* Per-voxel data lives in *slots*, stored in equal-size chunks (``slot_store.SlotStore``): growing
  appends a chunk instead of copying the map, and unused rows stay below one chunk (<= n/128). New
  voxels are appended, removed ones replaced by the last slots. A frame only reads and writes the rows
  of its own voxels. 768-d fp16: <= 1,587 bytes per voxel all included from 32k voxels on (see
  ``memory_stats``).
* Sorted key arrays + matching int32 slot arrays ("runs", O(log n) of them, each less than half the one
  before) are the hash and the only copy of the keys: lookup is one ``searchsorted`` per run. A
  frame's new keys form a new run; runs merge when the smaller reaches half the larger, so each key is
  copied O(log n) times over the map's life and a frame does not copy the whole index.

Eviction (``max_voxels``): when an update leaves more than ``max_voxels`` voxels, the voxels seen
least recently are dropped (ties: fewest hits first), down to ``(1 - evict_fraction) * max_voxels``
so the O(map) compaction is amortised over many frames instead of paid every frame. Dropping the
least recently seen (rather than least hit) voxels keeps a moving robot's map current; a fixed camera
never loses anything.

Numerics (fp16 storage without drift): the stored mean is rounded to the storage dtype after each
update; alone, updates smaller than half a storage ulp would be lost (a static voxel drifts, a changed
scene is never caught up). Voxels of the *working set* (the ``residual_rows`` most recently updated)
also keep the rounding residual ``exact - stored`` in the storage dtype (compensated two-term
storage): the update runs in fp32 on ``stored + residual``, so while a voxel stays in the working set
its stored mean is the fp32 running mean rounded once (<= 0.5 ulp). A voxel leaving the working set
keeps its rounded mean (error <= 0.5 ulp, shrinking as hits grow). The set grows with the map:
``min(residual_rows, max(256, n / 160))`` rows of ``(dim + 3) x 2 + 16`` bytes (<= 9.7 B per voxel at
768-d; 12.8 MB at 8192 rows); residuals are saved with the map. Hit counts are exact int32.

Hit cap (``max_hits`` = M): without it a voxel seen a million times is frozen. With it the map keeps
the *recency-weighted mean*: an update bringing ``c`` points to a voxel with ``h`` hits gives the new
points total weight ``w_new = c`` if ``h + c <= M``, else ``min(c, max(M - h, ceil(M / 2)))`` (shared
equally among them), and the old mean weight ``w_old = min(h, M - w_new)``; stored hits become
``w_old + w_new <= M``. So each new point of a small update weighs at least ``1 / M`` and one update,
however many points it brings, never takes more than half of a saturated voxel's history.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from radseg_core.free_space import free_voxels, frustum_voxel_box
from radseg_core.geometry import (
    backproject_depth,
    bilinear_taps,
    random_subsample,
    scale_intrinsics,
    transform_points,
    validate_rigid_transform,
)
from radseg_core.slot_store import SlotStore
from radseg_core.types import Frame

MODES = ("features", "probabilities")
GRIDS = ("floor", "round")
_BITS = 21
_OFFSET = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1
_GENERATIONS = itertools.count()
_DENSE_PAIR_LIMIT = 1 << 25  # above this many (voxel, patch) cells, aggregate pairs with unique()
_HITS_MAX = (1 << 31) - 1  # int32 hit counts saturate here (2.1e9 points in one voxel)
_RESIDUAL_PER_VOXEL = 160  # the compensation working set grows by one row per this many voxels ...
_RESIDUAL_MIN_ROWS = 256  # ... from this many rows, up to ``residual_rows``, in steps of:
_RESIDUAL_STEP = 64


def recency_weights(
    hits: torch.Tensor, counts: torch.Tensor, max_hits: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer weights (old mean, new points) of one update; see "Hit cap" in the module docstring."""
    if max_hits is None:
        return hits, counts
    M = int(max_hits)
    fits = hits + counts <= M
    w_new = torch.where(fits, counts, torch.minimum(counts, (M - hits).clamp_min((M + 1) // 2)))
    w_old = torch.minimum(hits, M - w_new)
    return w_old, w_new


def pack_keys(ijk: torch.Tensor) -> torch.Tensor:
    """Pack (N, 3) integer voxel coordinates into (N,) int64 keys; order is lexicographic x, y, z."""
    u = ijk.long() + _OFFSET
    return (u[:, 0] << (2 * _BITS)) | (u[:, 1] << _BITS) | u[:, 2]


def unpack_keys(keys: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_keys`: (N,) int64 → (N, 3) int64 voxel coordinates."""
    return (
        torch.stack([(keys >> (2 * _BITS)) & _MASK, (keys >> _BITS) & _MASK, keys & _MASK], dim=1) - _OFFSET
    )


class VoxelMap:
    """Sparse voxel map of hit-weighted mean features or class probabilities (see module docstring)."""

    def __init__(
        self,
        voxel_size: float = 0.05,
        mode: str = "features",
        dim: int = 768,
        dtype: torch.dtype = torch.float16,
        device: str | torch.device = "cpu",
        max_voxels: int | None = None,
        max_hits: float | None = None,
        evict_fraction: float = 0.05,
        residual_rows: int = 8192,
        free_space_decay: float = 0.0,
        grid: str = "floor",
    ) -> None:
        if grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
        if not (voxel_size > 0 and math.isfinite(voxel_size)):
            raise ValueError(f"voxel_size must be positive, got {voxel_size}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise ValueError(f"storage dtype must be float16, bfloat16 or float32, got {dtype}")
        if max_voxels is not None and max_voxels < 1:
            raise ValueError(f"max_voxels must be >= 1 or None, got {max_voxels}")
        if max_hits is not None and not max_hits >= 1:
            raise ValueError(f"max_hits must be >= 1 or None, got {max_hits}")
        if not 0.0 <= free_space_decay <= 1.0:
            raise ValueError(f"free_space_decay must be in [0, 1], got {free_space_decay}")
        if residual_rows < 0:
            raise ValueError(f"residual_rows must be >= 0, got {residual_rows}")
        if not 0.0 <= evict_fraction < 1.0:
            raise ValueError(f"evict_fraction must be in [0, 1), got {evict_fraction}")
        self.voxel_size = float(voxel_size)
        # Cell lattice: "floor" bins p into floor(p/s) (centres at (k + 1/2)s); "round" bins into
        # round(p/s) (centres at ks), the lattice of RayFronts' maps that its 3D evaluation assumes.
        self.grid = grid
        self._grid_shift = 0.5 if grid == "round" else 0.0
        self.mode = mode
        self.dim = int(dim)
        self.dtype = dtype
        self.device = torch.device(device)
        self.max_voxels = max_voxels
        self.max_hits = None if max_hits is None else float(max_hits)
        self.evict_fraction = float(evict_fraction)
        # fp32 storage needs no compensation: its running mean is already exact to ~1e-7.
        self.residual_rows = 0 if dtype == torch.float32 else int(residual_rows)
        # Residuals are stored times this scale: an fp16 residual of a value below ~0.06 would otherwise be
        # subnormal and lose its bits (|residual| <= 2^-11 |value|, so 2^10 cannot overflow fp16).
        self._res_scale = 1024.0 if dtype == torch.float16 else 1.0
        # Free-space clearing (radseg_core.free_space): each frame that sees through a voxel keeps
        # floor(hits * (1 - decay)) of its hits; at 0 hits the voxel is removed. 0 disables clearing.
        self.free_space_decay = float(free_space_decay)
        self.cleared = 0  # voxels removed by free-space clearing (all frames)
        self.last_clearing_candidates = 0  # voxels in the last clearing's frustum box (those projected)
        self.out_of_range = 0  # points dropped because they fall outside the key range (all frames)
        self.last_out_of_range = 0  # the same, last update only
        # Free-form, JSON-serialisable, saved with the map. The configuration entries are informational
        # copies (the attributes above are what the map uses); model / classes / frame_id are the caller's.
        self.metadata: dict[str, Any] = {
            "voxel_size": self.voxel_size,
            "mode": mode,
            "dim": self.dim,
            "dtype": str(dtype).removeprefix("torch."),
            "model": None,
            "classes": None,
            "frame_id": "map",
        }
        self.frames_integrated = 0  # also the "last seen" clock of voxels
        # Keys are relative to this voxel (int64): 0 unless the first points lie far from the map frame's
        # origin (UTM-anchored frames), then a local origin near them (multiple of 2^16 voxels).
        self.origin_voxel = torch.zeros(3, dtype=torch.int64)
        # Changes whenever slots are removed or reordered; unique across maps, so a cache keyed on it
        # can never confuse two maps (even one allocated where a collected one lived).
        self.generation = next(_GENERATIONS)
        # Changes only when the contents are replaced wholesale (reset, restore from a file). A generation
        # change within one lineage means voxels were removed (clearing, eviction): survivors keep their data.
        self.lineage = self.generation
        self._alloc()

    # ------------------------------------------------------------------ storage
    def _alloc(self) -> None:
        dev = self.device
        # Per-voxel data in chunks (radseg_core.slot_store): growth appends, never copies the map.
        self._store = SlotStore(
            {
                "values": ((self.dim,), self.dtype),
                "colors": ((3,), self.dtype),
                "hits": ((), torch.int32),
                "last_seen": ((), torch.int32),
                # frames that hit the voxel, minus one (a new slot's 0 is its first frame), saturating at
                # 127: free-space clearing's evidence that it is there (see _decay_seen_through)
                "hit_frames": ((), torch.int8),
            },
            dev,
        )
        # Sorted (keys, int32 slots) runs, largest first; a run is merged into the one before it once it is
        # at least half its size, so there are O(log n) runs and each key is copied O(log n) times in all.
        # The runs are also the only copy of the keys: slot-order keys are derived when asked for.
        self._runs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._res = torch.zeros(0, self.dim, dtype=self.dtype, device=dev)
        self._res_col = torch.zeros(0, 3, dtype=self.dtype, device=dev)
        self._row_slot = torch.zeros(0, dtype=torch.int64, device=dev)  # slot owning each residual row, -1 free
        self._row_used = torch.zeros(0, dtype=torch.int64, device=dev)  # update clock of last use, -1 free

    @property
    def _size(self) -> int:
        return self._store.size

    def _residual_capacity(self) -> None:
        """Grow the working set with the map: ``min(residual_rows, max(256, n / 160))`` rows (<= 9.7 B/voxel
        at 768-d), in steps of 64 rows (a copy of the small buffer every 10k new voxels, <= 12.8 MB)."""
        want = max(_RESIDUAL_MIN_ROWS, -(-self._size // _RESIDUAL_PER_VOXEL))
        want = min(self.residual_rows, -(-want // _RESIDUAL_STEP) * _RESIDUAL_STEP)
        R = self._row_slot.numel()
        if want <= R:
            return
        grow = want - R
        dev = self.device
        self._res = torch.cat([self._res, torch.zeros(grow, self.dim, dtype=self.dtype, device=dev)])
        self._res_col = torch.cat([self._res_col, torch.zeros(grow, 3, dtype=self.dtype, device=dev)])
        self._row_slot = torch.cat([self._row_slot, torch.full((grow,), -1, dtype=torch.int64, device=dev)])
        self._row_used = torch.cat([self._row_used, torch.full((grow,), -1, dtype=torch.int64, device=dev)])

    def shrink_to_fit(self) -> None:
        """Release chunks no slot uses any more (after many removals); growth slack is < one chunk anyway."""
        self._store.release_unused()

    def nbytes(self) -> int:
        """Bytes held by the map's tensors: slot chunks (unused rows included), key index, working set."""
        tensors = (
            *(t for run in self._runs for t in run),
            self._res,
            self._res_col,
            self._row_slot,
            self._row_used,
        )
        return self._store.nbytes() + sum(t.numel() * t.element_size() for t in tensors)

    def memory_stats(self) -> dict[str, float]:
        """What the map holds and what it uses (diagnostics, benchmarks); bytes."""
        n = self._size
        index = sum(k.numel() * k.element_size() + s.numel() * s.element_size() for k, s in self._runs)
        used = n * self._store.row_bytes + index + self._res.numel() * self._res.element_size()
        allocated = self.nbytes()
        return {
            "voxels": n,
            "bytes_allocated": allocated,
            "bytes_used": used,
            "bytes_per_voxel": allocated / n if n else 0.0,
            "allocated_over_used": allocated / used if used else 0.0,
            "chunk_rows": self._store.rows,
            "chunks": len(self._store.chunks),
            "residual_rows": int(self._row_slot.numel()),
        }

    # ------------------------------------------------------------------ accessors
    def __len__(self) -> int:
        return self._size

    def keys(self) -> torch.Tensor:
        """(N,) packed int64 voxel keys in slot order (the order of every other accessor); O(N), a copy."""
        out = torch.empty(self._size, dtype=torch.int64, device=self.device)
        for run_k, run_s in self._runs:
            out[run_s.long()] = run_k
        return out

    def voxel_indices(self) -> torch.Tensor:
        """(N, 3) integer voxel coordinates: voxel (i, j, k) spans [i, i+1) * voxel_size along x, etc."""
        return self._indices_of(self.keys())

    def centers(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(N, 3) voxel centres in the map frame (metres); ask float64 far (> ~100 km) from the origin."""
        return self._centers_of(self.keys(), dtype)

    def _indices_of(self, keys: torch.Tensor) -> torch.Tensor:
        return unpack_keys(keys) + self.origin_voxel.to(self.device)

    def _centers_of(self, keys: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Centres of the voxels with these packed keys (computed in float64)."""
        return (self._indices_of(keys).to(torch.float64) + (0.5 - self._grid_shift)).mul(self.voxel_size).to(dtype)

    def colors(self) -> torch.Tensor:
        """(N, 3) uint8 mean colour."""
        return self._store.cat("colors").float().round().clamp(0, 255).to(torch.uint8)

    def color_means(self) -> torch.Tensor:
        """(N, 3) mean colour in the storage dtype, unrounded (what is saved and averaged)."""
        return self._store.cat("colors")

    def hits(self) -> torch.Tensor:
        """(N,) int32 hit counts (points averaged into each voxel, capped by ``max_hits``)."""
        return self._store.cat("hits")

    def last_seen(self) -> torch.Tensor:
        """(N,) int32 value of ``frames_integrated`` when each voxel was last updated."""
        return self._store.cat("last_seen")

    def values(self) -> torch.Tensor:
        """(N, D) hit-weighted means in the storage dtype: a copy of the whole map (see value_blocks)."""
        return self._store.cat("values")

    def value_blocks(self, start: int = 0) -> list[torch.Tensor]:
        """Views of ``values()[start:]`` chunk by chunk (read only): whole-map passes without a copy."""
        return list(self._store.blocks("values", start))

    def gather_values(self, slots: torch.Tensor) -> torch.Tensor:
        """``values()[slots]`` without copying the map."""
        return self._store.gather("values", self._store.locate(slots))

    def labels(self) -> torch.Tensor:
        """(N,) int64 argmax class per voxel (probabilities mode; class 0 may mean 'ignore')."""
        if self.mode != "probabilities":
            raise ValueError(
                "labels() needs mode='probabilities'; in features mode score text queries instead"
            )
        parts = [b.float().argmax(dim=1) for b in self.value_blocks()]
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64, device=self.device)

    # ------------------------------------------------------------------ integration
    def _point_keys(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys of (N, 3) points and a mask of those that are finite and inside the key range."""
        ijk = torch.floor(points.to(torch.float64) / self.voxel_size + self._grid_shift)
        if self._size == 0 and not self.origin_voxel.any():
            finite = ijk[torch.isfinite(ijk).all(dim=1)]
            if finite.numel() and bool((finite[0].abs() >= _OFFSET // 2).any()):
                self.origin_voxel = (torch.round(finite[0] / 65536) * 65536).long().cpu()
        ijk = ijk - self.origin_voxel.to(ijk.device, torch.float64)
        ok = torch.isfinite(ijk).all(dim=1) & (ijk >= -_OFFSET).all(dim=1) & (ijk < _OFFSET).all(dim=1)
        ijk = torch.where(ok[:, None], ijk, torch.zeros_like(ijk))
        return pack_keys(ijk.long()), ok

    @torch.no_grad()
    def integrate_points(
        self, points_world: torch.Tensor, values: torch.Tensor, colors: torch.Tensor | None = None
    ) -> None:
        """Average (N, D) ``values`` of (N, 3) map-frame points into their voxels, one hit per point.

        Points or values with NaN/inf are dropped. Without ``colors`` voxel colours are left unchanged
        (new voxels are black).
        """
        points_world = torch.as_tensor(points_world, device=self.device)
        values = torch.as_tensor(values, device=self.device)
        if points_world.ndim != 2 or points_world.shape[1] != 3:
            raise ValueError(f"points must be (N, 3), got {tuple(points_world.shape)}")
        if values.shape != (points_world.shape[0], self.dim):
            raise ValueError(
                f"values must be ({points_world.shape[0]}, {self.dim}), got {tuple(values.shape)}"
            )
        keys, ok = self._point_keys(points_world)
        self._count_out_of_range(points_world, ok)
        vals = values.float()
        ok &= torch.isfinite(vals).all(dim=1)
        cols = None
        if colors is not None:
            cols = torch.as_tensor(colors, device=self.device)
            if cols.shape != (points_world.shape[0], 3):
                raise ValueError(f"colors must be ({points_world.shape[0]}, 3), got {tuple(cols.shape)}")
            cols = cols[ok].float()
        keys, vals = keys[ok], vals[ok]
        if keys.numel() == 0:
            self.frames_integrated += 1
            return
        ukeys, inv = torch.unique(keys, return_inverse=True)
        counts = torch.bincount(inv, minlength=ukeys.numel())
        sums = torch.zeros(ukeys.numel(), self.dim, dtype=torch.float32, device=self.device).index_add_(
            0, inv, vals
        )
        csum = (
            None
            if cols is None
            else torch.zeros(ukeys.numel(), 3, device=self.device).index_add_(0, inv, cols)
        )
        self._accumulate(ukeys, counts, sums, csum)

    @torch.no_grad()
    def integrate_frame(
        self,
        frame: Frame,
        feature_map: torch.Tensor,
        *,
        min_depth: float = 0.0,
        max_depth: float = math.inf,
        subsample: int = 1,
        max_points: int | None = None,
        generator: torch.Generator | None = None,
        method: str = "sparse",
    ) -> int:
        """Back-project a frame and average its (D, h, w) feature / probability map into the map.

        The map may have any resolution (the 1/16 RADIO grid, or full size); per-pixel values are its
        bilinear resize (``align_corners=False``) to the depth image. ``method="sparse"`` (default)
        never builds per-pixel D-vectors: it sums interpolation weights per (voxel, grid cell) and does
        one sparse × dense product with the grid. ``method="dense"`` upsamples first (the plain, costly
        formulation, kept as a reference). Both give the same means. ``subsample`` keeps every n-th
        pixel row/column, ``max_points`` a random subset. Returns the number of points integrated.
        """
        if method not in ("sparse", "dense"):
            raise ValueError(f"method must be 'sparse' or 'dense', got {method!r}")
        fm = torch.as_tensor(feature_map)
        if fm.ndim != 3 or fm.shape[0] != self.dim:
            raise ValueError(f"feature_map must be ({self.dim}, h, w), got {tuple(fm.shape)}")
        if not bool(torch.isfinite(fm).all()):  # checked on the small map, not on per-voxel sums
            raise ValueError("feature_map contains NaN or inf; refusing to average it into the map")
        T = validate_rigid_transform(frame.T_world_cam)
        if not np.issubdtype(np.asarray(frame.depth).dtype, np.floating):
            raise ValueError("Frame.depth must be float metres; decode 16UC1 with geometry.depth_to_metres first")
        depth = torch.as_tensor(np.asarray(frame.depth, dtype=np.float32), device=self.device)
        rgb = torch.as_tensor(np.asarray(frame.rgb), device=self.device)
        if depth.ndim != 2 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(
                f"expected depth (Hd, Wd) and rgb (H, W, 3), got {tuple(depth.shape)}, {tuple(rgb.shape)}"
            )
        (H, W), (Hd, Wd) = rgb.shape[:2], depth.shape
        K = (
            scale_intrinsics(frame.K, (H, W), (Hd, Wd))
            if (Hd, Wd) != (H, W)
            else np.asarray(frame.K, np.float64)
        )
        pts, rows, cols = backproject_depth(
            depth, K, min_depth=min_depth, max_depth=max_depth, stride=subsample
        )
        pick = random_subsample(pts.shape[0], max_points, generator)
        if pick is not None:
            pick = pick.to(self.device)
            pts, rows, cols = pts[pick], rows[pick], cols[pick]
        world = transform_points(T, pts.to(torch.float64))  # float64: any map origin (UTM) is exact
        keys, ok = self._point_keys(world)
        self._count_out_of_range(world, ok)
        keys, rows, cols = keys[ok], rows[ok], cols[ok]
        n_pts = int(keys.numel())
        ukeys, inv = torch.unique(keys, return_inverse=True)
        if self.free_space_decay > 0 and self._size:
            self._clear_free_space(depth, K, T, ukeys, min_depth, max_depth)
        if n_pts == 0:
            self.frames_integrated += 1
            return 0
        n_u = ukeys.numel()
        counts = torch.bincount(inv, minlength=n_u)
        # Colours: nearest rgb pixel to each depth pixel centre.
        r_rgb = ((rows.double() + 0.5) * (H / Hd)).long().clamp_max(H - 1)
        c_rgb = ((cols.double() + 0.5) * (W / Wd)).long().clamp_max(W - 1)
        csum = torch.zeros(n_u, 3, device=self.device).index_add_(0, inv, rgb[r_rgb, c_rgb].float())
        fm = fm.to(self.device, torch.float32)
        h, w = fm.shape[1:]
        if method == "dense":
            per_pixel = F.interpolate(fm[None], size=(Hd, Wd), mode="bilinear", align_corners=False)[0]
            vals = per_pixel[:, rows, cols].T
            sums = torch.zeros(n_u, self.dim, device=self.device).index_add_(0, inv, vals)
        else:
            sums = self._sparse_sums(inv, n_u, rows, cols, (Hd, Wd), fm)
        self._accumulate(ukeys, counts, sums, csum)
        return n_pts

    def _clear_free_space(
        self, depth: torch.Tensor, K: np.ndarray, T: np.ndarray, hit_keys: torch.Tensor, min_depth: float,
        max_depth: float,
    ) -> None:
        """Count a frame for the voxels this depth image hits (sorted ``hit_keys``); decay those it sees
        through (``free_space.free_voxels``) and drop emptied ones.

        Only voxels in the frustum's box can be hit or seen through, so only they are looked at (found in
        the key index): the result is that of testing every voxel, at a cost set by what is near the camera.
        """
        lo, hi = frustum_voxel_box(
            depth, K, T, self.voxel_size, self._grid_shift, min_depth=min_depth, max_depth=max_depth
        )
        keys, slots = self._slots_in_box(lo, hi)
        self.last_clearing_candidates = int(keys.numel())
        hit = torch.zeros_like(keys, dtype=torch.bool)
        if hit_keys.numel():
            hit = hit_keys[torch.searchsorted(hit_keys, keys).clamp_max(hit_keys.numel() - 1)] == keys
        at = self._store.locate(slots[hit].long())
        frames = (self._store.gather("hit_frames", at).int() + 1).clamp_max(127)  # int8 would wrap at 127
        self._store.scatter("hit_frames", at, frames.to(torch.int8))
        rest = ~hit
        free = free_voxels(
            self._centers_of(keys[rest]), depth, K, T, self.voxel_size, min_depth=min_depth, max_depth=max_depth
        )
        self._decay_seen_through(slots[rest][free].long())

    def _decay_seen_through(self, idx: torch.Tensor) -> None:
        """The slots ``idx`` keep floor(n * (1 - decay)) of the n frames that hit them, and as much of their
        hits; those left with no frame (or no hit) are removed (counted).

        Counting frames, not points: a voxel hit by one frame at 1 m holds ~700 points, one hit by twenty
        frames at 4 m ~300; either is gone after as many frames that see through it as it needs to lose
        the frames that saw it (decay 0.5: 1 for 1 frame, 5 for 16-31, at most 8), however close the
        camera was and whatever ``max_hits`` is.
        """
        if idx.numel() == 0:
            return
        at = self._store.locate(idx)
        keep = 1.0 - self.free_space_decay
        h = torch.floor(self._store.gather("hits", at).double() * keep).to(torch.int32)
        f = torch.floor((self._store.gather("hit_frames", at).double() + 1.0) * keep).to(torch.int8)
        self._store.scatter("hits", at, h)
        self._store.scatter("hit_frames", at, f - 1)
        remove = torch.zeros(self._size, dtype=torch.bool, device=self.device)
        remove[idx[(h <= 0) | (f <= 0)]] = True
        self.cleared += self._remove(remove)

    def _slots_in_box(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(keys, slots) of the voxels with indices in [lo, hi] (inclusive, ``voxel_indices`` coordinates).

        Keys order x first, so per run the box lies in the one key range [key(lo), key(hi)] (the x-slab,
        trimmed at its two ends): two ``searchsorted``, then y and z are filtered there. Cost O(log n +
        voxels in the x-slab) instead of O(map).
        """
        lo = (torch.as_tensor(lo, dtype=torch.int64) - self.origin_voxel).clamp_min(-_OFFSET)
        hi = (torch.as_tensor(hi, dtype=torch.int64) - self.origin_voxel).clamp_max(_OFFSET - 1)
        found: list[tuple[torch.Tensor, torch.Tensor]] = []
        if bool((lo <= hi).all()):
            bounds = pack_keys(torch.stack([lo, hi]).to(self.device))
            (ly, lz), (hy, hz) = (lo[1:] + _OFFSET).tolist(), (hi[1:] + _OFFSET).tolist()  # packed y, z
            for run_k, run_s in self._runs:
                a = int(torch.searchsorted(run_k, bounds[:1]))
                b = int(torch.searchsorted(run_k, bounds[1:], right=True))
                k = run_k[a:b]
                y, z = (k >> _BITS) & _MASK, k & _MASK
                at = torch.nonzero((y >= ly) & (y <= hy) & (z >= lz) & (z <= hz), as_tuple=True)[0] + a
                found.append((run_k[at], run_s[at]))
        if len(found) == 1:
            return found[0]
        if not found:
            empty = torch.empty(0, dtype=torch.int64, device=self.device)
            return empty, empty
        return torch.cat([k for k, _ in found]), torch.cat([sl for _, sl in found])

    def _count_out_of_range(self, points: torch.Tensor, ok: torch.Tensor) -> None:
        """Count finite points beyond the key range and warn once per map (never a silent drop)."""
        beyond = int((torch.isfinite(points).all(dim=1) & ~ok).sum())
        self.last_out_of_range = beyond
        if beyond == 0:
            return
        if self.out_of_range == 0:
            span = _OFFSET * self.voxel_size
            origin = (self.origin_voxel.double() * self.voxel_size).tolist()
            warnings.warn(
                f"{beyond} points lie beyond the voxel map's key range (+-{span:.0f} m around {origin} at "
                f"voxel_size {self.voxel_size} m) and are dropped; use a map frame closer to the robot "
                "(e.g. a local ENU origin instead of UTM) or a larger voxel_size",
                RuntimeWarning,
                stacklevel=3,
            )
        self.out_of_range += beyond

    def _sparse_sums(
        self,
        inv: torch.Tensor,
        n_u: int,
        rows: torch.Tensor,
        cols: torch.Tensor,
        image_hw: tuple[int, int],
        grid: torch.Tensor,
    ) -> torch.Tensor:
        """Per-voxel sums of bilinearly interpolated grid values via (voxel, cell) weights: S @ grid."""
        D, h, w = grid.shape
        hw = h * w
        idx, wts = bilinear_taps(rows, cols, image_hw, (h, w))
        pair = (inv[:, None] * hw + idx).reshape(-1)
        wts = wts.reshape(-1)
        if n_u * hw <= _DENSE_PAIR_LIMIT:
            acc = torch.bincount(pair, weights=wts, minlength=n_u * hw)
            nz = torch.nonzero(acc, as_tuple=True)[0]
            weights = acc[nz]
        else:
            nz, pinv = torch.unique(pair, return_inverse=True)
            weights = torch.zeros(nz.numel(), dtype=wts.dtype, device=wts.device).index_add_(0, pinv, wts)
        # nz is sorted and unique, so the COO matrix is coalesced by construction.
        S = torch.sparse_coo_tensor(
            torch.stack([nz // hw, nz % hw]),
            weights.float(),
            size=(n_u, hw),
            is_coalesced=True,
            check_invariants=False,
        )
        return torch.sparse.mm(S, grid.reshape(D, hw).T.contiguous())

    def _accumulate(
        self, ukeys: torch.Tensor, counts: torch.Tensor, sums: torch.Tensor, csum: torch.Tensor | None
    ) -> None:
        """Merge per-voxel sums of one update (sorted unique keys) into the map."""
        self.frames_integrated += 1
        slots = torch.full_like(ukeys, -1)
        for run_k, run_s in self._runs:
            pos = torch.searchsorted(run_k, ukeys).clamp_max(run_k.numel() - 1)
            hit = run_k[pos] == ukeys
            slots[hit] = run_s[pos[hit]].long()
        new = slots < 0
        n_new = int(new.sum())
        store = self._store
        if n_new:
            store.reserve(self._size + n_new)
            new_slots = torch.arange(self._size, self._size + n_new, device=self.device)
            slots[new] = new_slots
            fresh = store.locate(new_slots)
            for name in store.fields:
                store.scatter(name, fresh, 0)
            self._runs.append((ukeys[new], new_slots.int()))  # ukeys is sorted, so the new run is too
            self._merge_runs()
            store.size += n_new
        at_slots = store.locate(slots)
        w_old, w_new = recency_weights(store.gather("hits", at_slots).long(), counts.long(), self.max_hits)
        h_new = w_old + w_new
        # mean' = (w_old * mean + (w_new / c) * sum) / h_new, computed in fp32 on stored + residual
        a = (w_old.double() / h_new)[:, None].float()
        b = (w_new.double() / (counts.double() * h_new))[:, None].float()
        rows = self._residual_rows_for(slots)
        at = torch.nonzero(rows >= 0, as_tuple=True)[0]  # update positions that own a residual row
        r = rows[at]
        old = store.gather("values", at_slots)
        store.scatter("values", at_slots, self._update_rows(old, self._res, at, r, a, sums.mul_(b)))
        if csum is not None:
            old = store.gather("colors", at_slots)
            store.scatter("colors", at_slots, self._update_rows(old, self._res_col, at, r, a, csum.float().mul_(b)))
        store.scatter("hits", at_slots, h_new.clamp_max(_HITS_MAX).to(torch.int32))
        store.scatter("last_seen", at_slots, self.frames_integrated)
        if self.max_voxels is not None and self._size > self.max_voxels:
            self._evict()

    def _update_rows(
        self, stored: torch.Tensor, res: torch.Tensor, at: torch.Tensor, r: torch.Tensor, a: torch.Tensor,
        add: torch.Tensor,
    ) -> torch.Tensor:
        """New stored means ``(stored + residual)·a + add`` in fp32, rounded; residual rows ``r`` rewritten."""
        v = stored.float()
        if r.numel():
            v.index_add_(0, at, res[r].float(), alpha=1.0 / self._res_scale)
        v.mul_(a).add_(add)
        out = v.to(self.dtype)
        if r.numel():
            exact = v.index_select(0, at)
            res[r] = exact.sub_(out.index_select(0, at).float()).mul_(self._res_scale).to(self.dtype)
        return out

    def _merge_runs(self) -> None:
        """Restore the run invariant (each run < half the one before) by merging the smallest runs."""
        runs = self._runs
        while len(runs) >= 2 and 2 * runs[-1][0].numel() >= runs[-2][0].numel():
            (ka, sa), (kb, sb) = runs[-2], runs.pop()
            k = torch.cat([ka, kb])
            k, order = torch.sort(k, stable=True)
            runs[-1] = (k, torch.cat([sa, sb])[order])

    def _merge_runs_all(self) -> None:
        """After removals runs may violate the invariant anywhere: rebuild it from the smallest end."""
        runs = sorted(self._runs, key=lambda r: -r[0].numel())
        self._runs = []
        for run in runs:
            self._runs.append(run)
            self._merge_runs()

    def _residual_rows_for(self, slots: torch.Tensor) -> torch.Tensor:
        """Residual rows of ``slots`` (-1 where none), giving least recently used rows to newcomers."""
        if self.residual_rows == 0:
            return torch.full_like(slots, -1)
        self._residual_capacity()
        clock = self.frames_integrated
        rows = self._rows_of(slots)
        miss = rows < 0
        self._row_used[rows[~miss]] = clock
        n_miss = int(miss.sum())
        if n_miss:
            order = torch.argsort(self._row_used)  # free rows (-1) first, then least recently used
            avail = order[self._row_used[order] < clock][:n_miss]
            # Evicted owners keep their rounded mean (<= 0.5 ulp).
            take = torch.nonzero(miss, as_tuple=True)[0][: avail.numel()]
            self._row_slot[avail] = slots[take]
            self._row_used[avail] = clock
            self._res[avail] = 0
            self._res_col[avail] = 0
            rows[take] = avail
        return rows

    def _rows_of(self, slots: torch.Tensor) -> torch.Tensor:
        """Residual row of each slot, -1 where none (lookup in the small working set, not per voxel)."""
        live = torch.nonzero(self._row_slot >= 0, as_tuple=True)[0]
        rows = torch.full_like(slots, -1)
        if live.numel() == 0 or slots.numel() == 0:
            return rows
        owners, order = torch.sort(self._row_slot[live])
        pos = torch.searchsorted(owners, slots).clamp_max(owners.numel() - 1)
        found = owners[pos] == slots
        rows[found] = live[order[pos[found]]]
        return rows

    # ------------------------------------------------------------------ removal
    def _evict(self) -> None:
        target = max(1, min(self.max_voxels, int(self.max_voxels * (1.0 - self.evict_fraction))))
        n_evict = self._size - max(target, 0)
        order = torch.argsort(self.hits(), stable=True)
        order = order[torch.argsort(self.last_seen()[order], stable=True)]
        remove = torch.zeros(self._size, dtype=torch.bool, device=self.device)
        remove[order[:n_evict]] = True
        self._remove(remove)

    def _remove(self, remove: torch.Tensor) -> int:
        """Drop the slots flagged in ``remove`` (N,) and compact storage; returns how many went.

        Holes are filled with the last kept slots (slot order is not preserved), so a removal moves
        O(removed) feature rows instead of O(map): free-space clearing removes a few voxels most frames.
        """
        n_rm = int(remove.sum())
        if n_rm == 0:
            return 0
        keep = ~remove
        n = self._size
        m = n - n_rm
        holes = torch.nonzero(remove[:m], as_tuple=True)[0]  # removed slots inside the kept range ...
        movers = m + torch.nonzero(keep[m:n], as_tuple=True)[0]  # ... filled by the kept slots beyond it
        self._store.move(holes, movers)
        new_index = torch.arange(n, device=remove.device)
        new_index[movers] = holes
        new_index[remove] = -1
        live = self._row_slot >= 0
        gone = live.clone()
        gone[live] = remove[self._row_slot[live]]
        self._row_slot[live] = new_index[self._row_slot[live]]
        self._row_slot[gone], self._row_used[gone] = -1, -1
        runs = []
        for run_k, run_s in self._runs:
            kept = keep[run_s.long()]
            if bool(kept.any()):
                runs.append((run_k[kept], new_index[run_s[kept].long()].int()))
        self._runs = runs
        self._merge_runs_all()
        self._store.size = m
        self._store.release_unused()
        self.generation = next(_GENERATIONS)
        return n_rm

    def clear_region(self, min_xyz, max_xyz) -> int:
        """Remove voxels whose centres lie in the axis-aligned box [min_xyz, max_xyz]; returns the count."""
        lo = torch.as_tensor(min_xyz, dtype=torch.float32, device=self.device).reshape(3)
        hi = torch.as_tensor(max_xyz, dtype=torch.float32, device=self.device).reshape(3)
        c = self.centers()
        return self._remove(((c >= lo) & (c <= hi)).all(dim=1))

    def reset(self) -> None:
        """Forget every voxel (configuration and metadata stay)."""
        self._alloc()
        self.frames_integrated = 0
        self.origin_voxel = torch.zeros(3, dtype=torch.int64)
        self.generation = next(_GENERATIONS)
        self.lineage = self.generation

    # ------------------------------------------------------------------ restore (used by map_io)
    def residuals(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Working-set compensation: (slots (R',), value and colour residuals (R', D), (R', 3)), stored
        scaled by 1024 in fp16 (so small values keep their residual bits), unscaled otherwise."""
        live = torch.nonzero(self._row_slot >= 0, as_tuple=True)[0]
        live = live[torch.argsort(self._row_used[live], stable=True)]  # least recently used first
        return self._row_slot[live], self._res[live], self._res_col[live]

    def _restore(
        self,
        keys: torch.Tensor,
        values: torch.Tensor,
        colors: torch.Tensor,
        hits: torch.Tensor,
        last_seen: torch.Tensor,
        frames_integrated: int,
        residuals: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        origin_voxel: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        """Replace the contents with saved per-voxel arrays (slot order); keys must be unique."""
        n = keys.numel()
        self._alloc()
        dev = self.device
        store = self._store
        store.reserve(n)
        store.size = n
        for name, data, dt in (
            ("values", values, self.dtype), ("colors", colors, self.dtype), ("hits", hits, torch.int32),
            ("last_seen", last_seen, torch.int32),
            ("hit_frames", hits.clamp(1, 128) - 1, torch.int8),  # not saved: a voxel counts as its hits' frames
        ):
            for lo in range(0, n, store.rows):  # chunk by chunk: no second full-size copy
                store.write_range(name, lo, data[lo : lo + store.rows].to(dev, dt))
        sorted_keys, order = torch.sort(keys.to(dev, torch.int64))
        self._runs = [(sorted_keys, order.int())] if n else []
        self.frames_integrated = int(frames_integrated)
        self.origin_voxel = torch.tensor(origin_voxel, dtype=torch.int64)
        self.generation = next(_GENERATIONS)
        self.lineage = self.generation
        if residuals is not None and self.residual_rows:
            self._residual_capacity()
            R = self._row_slot.numel()
            slots, res, res_col = (t[-R:].to(dev) for t in residuals)  # the most recently used kept
            rows = torch.arange(slots.numel(), device=dev)
            self._row_slot[rows], self._row_used[rows] = slots.long(), 0
            self._res[rows], self._res_col[rows] = res.to(self.dtype), res_col.to(self.dtype)
