"""``VoxelMap``: the hashed sparse semantic voxel map (RADSeg appendix A3), tying the rooms together.

Each voxel keeps a hit count, a mean colour and the hit-weighted mean of what fell into it: raw RADIO
features (``mode="features"``, aligned to language only at query time) or class probabilities
(``mode="probabilities"``). Averages are exactly those of voxelizing every point of every frame at
once. Integrating a frame costs what the frame costs, not what the map costs: the frame's points are
grouped by key (``torch.unique`` over the frame only), its voxels looked up in the key index
(``key_index``), and only their rows of the chunked storage (``slot_store``) are read and written.
New voxels are appended; removed ones are replaced by the last slots. Storage is fp16 by default,
kept exact by the working set (``working_set``); ``max_hits`` makes it follow change (``recency``),
``max_voxels`` bounds it (``eviction``), free-space clearing removes what the camera sees through
(``clearing``), and keys handle far origins (``keys``).
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from radseg_core.geometry import (
    backproject_depth,
    random_subsample,
    scale_intrinsics,
    transform_points,
    validate_rigid_transform,
)
from radseg_core.types import Frame
from radseg_core.voxel_map import clearing
from radseg_core.voxel_map.eviction import eviction_mask
from radseg_core.voxel_map.interpolation import sparse_sums
from radseg_core.voxel_map.key_index import KeyIndex
from radseg_core.voxel_map.keys import (
    OFFSET,
    cell_indices,
    centers_of,
    far_origin,
    grid_shift,
    relative_keys,
    unpack_keys,
)
from radseg_core.voxel_map.recency import HITS_MAX, recency_weights
from radseg_core.voxel_map.slot_store import SlotStore
from radseg_core.voxel_map.working_set import WorkingSet

MODES = ("features", "probabilities")
_GENERATIONS = itertools.count()


class VoxelMap:
    """Sparse voxel map of hit-weighted mean features or class probabilities (see the package docs)."""

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
        residual_rows: int = 131072,
        free_space_decay: float = 0.0,
        grid: str = "floor",
    ) -> None:
        self._grid_shift = grid_shift(grid)
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
        self.grid = grid
        self.mode = mode
        self.dim = int(dim)
        self.dtype = dtype
        self.device = torch.device(device)
        self.max_voxels = max_voxels
        self.max_hits = None if max_hits is None else float(max_hits)
        self.evict_fraction = float(evict_fraction)
        # Cap on the drift-compensation working set (rows); its size follows what updates touch.
        self.residual_rows = 0 if dtype == torch.float32 else int(residual_rows)
        # Free-space clearing: each frame that sees through a voxel keeps floor(hits * (1 - decay)) of
        # its hits; at 0 hits the voxel is removed. 0 disables clearing.
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
        # Keys are relative to this voxel (int64), see radseg_core.voxel_map.keys.
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
        # Per-voxel data in chunks (slot_store): growth appends, never copies the map.
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
            self.device,
        )
        self._index = KeyIndex()
        self._working = WorkingSet(self.dim, self.dtype, self.device, self.residual_rows)

    @property
    def _size(self) -> int:
        return self._store.size

    def shrink_to_fit(self) -> None:
        """Release chunks no slot uses any more (after many removals; growth slack is < one chunk anyway)
        and trim the working set to what recent updates need."""
        self._store.release_unused()
        self._working.shrink()

    def nbytes(self) -> int:
        """Bytes held by the map's tensors: slot chunks (unused rows included), key index, working set."""
        return self._store.nbytes() + self._index.nbytes() + self._working.nbytes()

    def memory_stats(self) -> dict[str, float]:
        """What the map holds and uses, in bytes. Two figures to plan with: ``bytes_per_voxel`` (chunks,
        slack and index: everything that grows with the map) and ``working_set_bytes`` (the drift
        compensation rows, sized by the view and capped by ``residual_rows``; not per voxel)."""
        n = self._size
        working = self._working.nbytes()
        per_map = self._store.nbytes() + self._index.nbytes()
        used = n * self._store.row_bytes + self._index.nbytes()
        return {
            "voxels": n,
            "bytes_allocated": per_map + working,
            "bytes_used": used + working,
            "bytes_per_voxel": per_map / n if n else 0.0,
            "allocated_over_used": per_map / used if used else 0.0,
            "chunk_rows": self._store.rows,
            "chunks": len(self._store.chunks),
            "working_set_rows": self._working.rows,
            "working_set_bytes": working,
            "working_set_mb": round(working / 2**20, 2),
            "uncompensated_last": self._working.uncompensated_last,
            "uncompensated_total": self._working.uncompensated_total,
        }

    # ------------------------------------------------------------------ accessors
    def __len__(self) -> int:
        return self._size

    def keys(self) -> torch.Tensor:
        """(N,) packed int64 voxel keys in slot order (the order of every other accessor); O(N), a copy."""
        return self._index.keys_in_slot_order(self._size, self.device)

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
        return centers_of(keys, self.origin_voxel, self.voxel_size, self._grid_shift, dtype)

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
        ijk = cell_indices(points, self.voxel_size, self._grid_shift)
        if self._size == 0 and not self.origin_voxel.any():
            origin = far_origin(ijk)
            if origin is not None:
                self.origin_voxel = origin
        return relative_keys(ijk, self.origin_voxel)

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
        never builds per-pixel D-vectors (``interpolation``); ``method="dense"`` upsamples first (the
        plain, costly formulation, kept as a reference). Both give the same means. ``subsample`` keeps
        every n-th pixel row/column, ``max_points`` a random subset. Returns the number of points
        integrated.
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
        if method == "dense":
            per_pixel = F.interpolate(fm[None], size=(Hd, Wd), mode="bilinear", align_corners=False)[0]
            vals = per_pixel[:, rows, cols].T
            sums = torch.zeros(n_u, self.dim, device=self.device).index_add_(0, inv, vals)
        else:
            sums = sparse_sums(inv, n_u, rows, cols, (Hd, Wd), fm)
        self._accumulate(ukeys, counts, sums, csum)
        return n_pts

    def _clear_free_space(
        self, depth: torch.Tensor, K: np.ndarray, T: np.ndarray, hit_keys: torch.Tensor, min_depth: float,
        max_depth: float,
    ) -> None:
        """Count a frame for the mapped voxels this depth image hits (sorted ``hit_keys``); decay those it
        sees through and drop emptied ones (``clearing``: only voxels in the frustum's box are looked at)."""
        hit, through, self.last_clearing_candidates = clearing.hit_and_seen_through(
            self._index, self.origin_voxel, self.voxel_size, self._grid_shift, depth, K, T, hit_keys,
            min_depth, max_depth,
        )
        at = self._store.locate(hit)
        self._store.scatter("hit_frames", at, clearing.counted_frame(self._store.gather("hit_frames", at)))
        self._decay_seen_through(through)

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
        h, f = clearing.decayed(self._store.gather("hits", at), self._store.gather("hit_frames", at),
                                self.free_space_decay)
        self._store.scatter("hits", at, h)
        self._store.scatter("hit_frames", at, (f - 1).clamp_min(0).to(torch.int8))
        remove = torch.zeros(self._size, dtype=torch.bool, device=self.device)
        remove[idx[(h <= 0) | (f <= 0)]] = True
        self.cleared += self._remove(remove)

    def _slots_in_box(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(keys, slots) of the voxels with indices in [lo, hi] (inclusive, ``voxel_indices`` coordinates)."""
        lo = torch.as_tensor(lo, dtype=torch.int64) - self.origin_voxel
        hi = torch.as_tensor(hi, dtype=torch.int64) - self.origin_voxel
        return self._index.in_box(lo, hi, self.device)

    def _count_out_of_range(self, points: torch.Tensor, ok: torch.Tensor) -> None:
        """Count finite points beyond the key range and warn once per map (never a silent drop)."""
        beyond = int((torch.isfinite(points).all(dim=1) & ~ok).sum())
        self.last_out_of_range = beyond
        if beyond == 0:
            return
        if self.out_of_range == 0:
            span = OFFSET * self.voxel_size
            origin = (self.origin_voxel.double() * self.voxel_size).tolist()
            warnings.warn(
                f"{beyond} points lie beyond the voxel map's key range (+-{span:.0f} m around {origin} at "
                f"voxel_size {self.voxel_size} m) and are dropped; use a map frame closer to the robot "
                "(e.g. a local ENU origin instead of UTM) or a larger voxel_size",
                RuntimeWarning,
                stacklevel=3,
            )
        self.out_of_range += beyond

    def _accumulate(
        self, ukeys: torch.Tensor, counts: torch.Tensor, sums: torch.Tensor, csum: torch.Tensor | None
    ) -> None:
        """Merge per-voxel sums of one update (sorted unique keys) into the map."""
        self.frames_integrated += 1
        slots = self._index.lookup(ukeys)
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
            self._index.insert(ukeys[new], new_slots)  # ukeys is sorted, so the new run is too
            store.size += n_new
        at_slots = store.locate(slots)
        w_old, w_new = recency_weights(store.gather("hits", at_slots).long(), counts.long(), self.max_hits)
        h_new = w_old + w_new
        # mean' = (w_old * mean + (w_new / c) * sum) / h_new, computed in fp32 on stored + residual
        a = (w_old.double() / h_new)[:, None].float()
        b = (w_new.double() / (counts.double() * h_new))[:, None].float()
        rows = self._working.rows_for(slots, self.frames_integrated)
        at = torch.nonzero(rows >= 0, as_tuple=True)[0]  # update positions that own a working-set row
        r = rows[at]
        old = store.gather("values", at_slots)
        store.scatter("values", at_slots, self._working.update(old, False, at, r, a, sums.mul_(b)))
        if csum is not None:
            old = store.gather("colors", at_slots)
            store.scatter("colors", at_slots, self._working.update(old, True, at, r, a, csum.float().mul_(b)))
        store.scatter("hits", at_slots, h_new.clamp_max(HITS_MAX).to(torch.int32))
        store.scatter("last_seen", at_slots, self.frames_integrated)
        if self.max_voxels is not None and self._size > self.max_voxels:
            self._remove(eviction_mask(self.hits(), self.last_seen(), self.max_voxels, self.evict_fraction))

    # ------------------------------------------------------------------ removal
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
        self._working.remap(remove, new_index)
        self._index.remap(keep, new_index)
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
        """Working-set compensation: (slots (R',), value and colour residuals (R', D), (R', 3)) in float32,
        least recently used first: ``exact fp32 mean - stored``, which fp32 holds exactly (saved with maps)."""
        slots, mean, mean_col = self._working.means()
        at = self._store.locate(slots)
        out = []
        for name, m in (("values", mean), ("colors", mean_col)):
            r = m - self._store.gather(name, at).float()
            out.append(torch.nan_to_num(r, nan=0.0))  # a row not yet filled: the stored mean is its mean
        return slots, out[0], out[1]

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
        self._index.restore(keys.to(dev, torch.int64))
        self.frames_integrated = int(frames_integrated)
        self.origin_voxel = torch.tensor(origin_voxel, dtype=torch.int64)
        self.generation = next(_GENERATIONS)
        self.lineage = self.generation
        if residuals is not None:
            slots, res, res_col = residuals
            slots = slots.to(dev).long()
            # float32: exact residuals (maps since #17); storage dtype: fp16 residuals scaled by 1024 (before)
            scale = 1024.0 if res.dtype == torch.float16 and self.dtype == torch.float16 else 1.0
            at = store.locate(slots)
            self._working.restore(
                slots,
                store.gather("values", at).float() + res.to(dev).float() / scale,
                store.gather("colors", at).float() + res_col.to(dev).float() / scale,
            )
