"""fp16 means without drift: rounding residuals kept for the voxels the camera is looking at.

Rounding a stored mean back to fp16 after every update loses any change smaller than half an fp16
step: a static voxel drifts and a changed scene is never caught up. The *working set* keeps, for the
voxels updated most recently, the rounding residual ``exact - stored`` in the storage dtype
(compensated two-term storage); the update runs in fp32 on ``stored + residual``, so a voxel that keeps
its row holds its fp32 running mean rounded once (<= 0.5 ulp). A voxel losing its row keeps its
rounded mean (<= 0.5 ulp, shrinking as ``h_then / h_now`` with later hits).

Size: from what frames touch, not from the map. The working set holds ``2 x`` the most voxels one
update touched among the last ``window`` updates (at least 256 rows, in steps of 1024), up to
``max_rows``. A camera that keeps seeing a voxel updates it every frame, and least-recently-used
replacement never takes a row from a voxel of the current update, so with room for two views every
voxel in view keeps its row, at any map size. Beyond ``max_rows`` (a memory cap) the voxels of an update
that find no free row round as before; they are counted (``uncompensated_last``,
``uncompensated_total``). The set only grows during a run (growing copies the set, never the map);
``shrink`` trims it to the current target. Residuals are saved with the map.

A row costs ``(dim + 3) x 2 + 16`` bytes (fp16): 1,558 B at 768-d, 106 MB for the 68k rows of a
640x480 corridor view at 5 cm (docs/voxel_map.md).
"""

from __future__ import annotations

from collections import deque

import torch

MIN_ROWS = 256
STEP_ROWS = 1024
HEADROOM = 2  # rows per voxel of the largest recent update


class WorkingSet:
    """Residual rows ``res``/``res_col`` owned by map slots ``row_slot`` (-1 free), LRU by ``row_used``."""

    def __init__(self, dim: int, dtype: torch.dtype, device: torch.device, max_rows: int, window: int = 64) -> None:
        if max_rows < 0:
            raise ValueError(f"residual_rows must be >= 0, got {max_rows}")
        self.dim, self.dtype, self.device = dim, dtype, device
        # fp32 storage needs no compensation: its running mean is already exact to ~1e-7.
        self.max_rows = 0 if dtype == torch.float32 else int(max_rows)
        # Residuals are stored times this scale: an fp16 residual of a value below ~0.06 would otherwise be
        # subnormal and lose its bits (|residual| <= 2^-11 |value|, so 2^10 cannot overflow fp16).
        self.scale = 1024.0 if dtype == torch.float16 else 1.0
        self._recent: deque[int] = deque(maxlen=window)
        self.uncompensated_last = 0  # voxels of the last update that had no row (beyond max_rows)
        self.uncompensated_total = 0  # the same, summed over all updates
        self.clear()

    def clear(self) -> None:
        dev = self.device
        self.res = torch.zeros(0, self.dim, dtype=self.dtype, device=dev)
        self.res_col = torch.zeros(0, 3, dtype=self.dtype, device=dev)
        self.row_slot = torch.zeros(0, dtype=torch.int64, device=dev)
        self.row_used = torch.zeros(0, dtype=torch.int64, device=dev)

    # ------------------------------------------------------------------ size
    @property
    def rows(self) -> int:
        return self.row_slot.numel()

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.res, self.res_col, self.row_slot, self.row_used))

    def target_rows(self) -> int:
        """Rows wanted now: room for two of the largest recent updates, within [256, max_rows]."""
        want = max(MIN_ROWS, HEADROOM * max(self._recent, default=0))
        return min(self.max_rows, -(-want // STEP_ROWS) * STEP_ROWS if want > MIN_ROWS else MIN_ROWS)

    def _resize(self, rows: int) -> None:
        R = self.rows
        if rows > R:
            grow, dev = rows - R, self.device
            self.res = torch.cat([self.res, torch.zeros(grow, self.dim, dtype=self.dtype, device=dev)])
            self.res_col = torch.cat([self.res_col, torch.zeros(grow, 3, dtype=self.dtype, device=dev)])
            self.row_slot = torch.cat([self.row_slot, torch.full((grow,), -1, dtype=torch.int64, device=dev)])
            self.row_used = torch.cat([self.row_used, torch.full((grow,), -1, dtype=torch.int64, device=dev)])
        elif rows < R:  # keep the most recently used rows
            keep = torch.sort(torch.argsort(self.row_used, descending=True, stable=True)[:rows]).values
            self.res, self.res_col = self.res[keep].clone(), self.res_col[keep].clone()
            self.row_slot, self.row_used = self.row_slot[keep].clone(), self.row_used[keep].clone()

    def shrink(self) -> None:
        """Trim the set to the current target (a run that once saw a larger view keeps its rows otherwise)."""
        if self.rows > self.target_rows():
            self._resize(self.target_rows())

    # ------------------------------------------------------------------ rows of an update
    def rows_for(self, slots: torch.Tensor, clock: int) -> torch.Tensor:
        """Residual rows of one update's ``slots`` (-1 where none), newcomers taking the least recently
        used rows of earlier updates; grows the set first if this update needs it."""
        n = slots.numel()
        if self.max_rows == 0:
            self.uncompensated_last = n
            self.uncompensated_total += n
            return torch.full_like(slots, -1)
        self._recent.append(n)
        if self.target_rows() > self.rows:
            self._resize(self.target_rows())
        rows = self.rows_of(slots)
        miss = rows < 0
        self.row_used[rows[~miss]] = clock
        n_miss, taken = int(miss.sum()), 0
        if n_miss:
            order = torch.argsort(self.row_used)  # free rows (-1) first, then least recently used
            avail = order[self.row_used[order] < clock][:n_miss]
            take = torch.nonzero(miss, as_tuple=True)[0][: avail.numel()]
            self.row_slot[avail] = slots[take]  # evicted owners keep their rounded mean (<= 0.5 ulp)
            self.row_used[avail] = clock
            self.res[avail] = 0
            self.res_col[avail] = 0
            rows[take] = avail
            taken = int(take.numel())
        self.uncompensated_last = n_miss - taken
        self.uncompensated_total += self.uncompensated_last
        return rows

    def rows_of(self, slots: torch.Tensor) -> torch.Tensor:
        """Row of each slot, -1 where none (a sort of the set's owners, not a per-voxel pointer)."""
        live = torch.nonzero(self.row_slot >= 0, as_tuple=True)[0]
        rows = torch.full_like(slots, -1)
        if live.numel() == 0 or slots.numel() == 0:
            return rows
        owners, order = torch.sort(self.row_slot[live])
        pos = torch.searchsorted(owners, slots).clamp_max(owners.numel() - 1)
        found = owners[pos] == slots
        rows[found] = live[order[pos[found]]]
        return rows

    def update(
        self, stored: torch.Tensor, colors: bool, at: torch.Tensor, r: torch.Tensor, a: torch.Tensor,
        add: torch.Tensor,
    ) -> torch.Tensor:
        """New stored means ``(stored + residual)·a + add`` in fp32, rounded to the storage dtype; the
        residual rows ``r`` (of update positions ``at``) are rewritten with the new rounding residual."""
        res = self.res_col if colors else self.res
        v = stored.float()
        # Usually every voxel of the update owns a row (``at`` is then 0..n-1): work on whole tensors, no
        # gathers of (n, D) fp32 copies. Same fp32 arithmetic either way (1/scale is a power of two).
        whole = r.numel() == v.shape[0]
        if whole:
            v.add_(res.index_select(0, r), alpha=1.0 / self.scale)  # index_select: faster than res[r] on CPU
        elif r.numel():
            v.index_add_(0, at, res[r].float(), alpha=1.0 / self.scale)
        v.mul_(a).add_(add)
        out = v.to(self.dtype)
        if whole:
            res[r] = v.sub_(out).mul_(self.scale).to(self.dtype)  # v is spent: the residual in place
        elif r.numel():
            exact = v.index_select(0, at)
            res[r] = exact.sub_(out.index_select(0, at).float()).mul_(self.scale).to(self.dtype)
        return out

    # ------------------------------------------------------------------ map changes
    def remap(self, remove: torch.Tensor, new_index: torch.Tensor) -> None:
        """Slots flagged in ``remove`` lose their rows; the others are renumbered by ``new_index``."""
        live = self.row_slot >= 0
        gone = live.clone()
        gone[live] = remove[self.row_slot[live]]
        self.row_slot[live] = new_index[self.row_slot[live]]
        self.row_slot[gone], self.row_used[gone] = -1, -1

    def residuals(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(slots, value residuals, colour residuals) of the owned rows, least recently used first; stored
        scaled by 1024 in fp16 (so small values keep their residual bits), unscaled otherwise."""
        live = torch.nonzero(self.row_slot >= 0, as_tuple=True)[0]
        live = live[torch.argsort(self.row_used[live], stable=True)]
        return self.row_slot[live], self.res[live], self.res_col[live]

    def restore(self, slots: torch.Tensor, res: torch.Tensor, res_col: torch.Tensor) -> None:
        """Take saved rows (least recently used first); the most recent ones are kept if they do not fit."""
        self.clear()
        if self.max_rows == 0:
            return
        keep = min(slots.numel(), self.max_rows)
        self._resize(max(self.target_rows(), keep))
        dev = self.device
        slots, res, res_col = (t[t.shape[0] - keep :].to(dev) for t in (slots, res, res_col))
        rows = torch.arange(keep, device=dev)
        self.row_slot[rows], self.row_used[rows] = slots.long(), 0
        self.res[rows], self.res_col[rows] = res.to(self.dtype), res_col.to(self.dtype)
