"""fp16 means without drift: the exact fp32 mean kept for the voxels the camera is looking at.

Rounding a stored mean back to fp16 after every update loses any change smaller than half an fp16
step: a static voxel drifts and a changed scene is never caught up. The *working set* keeps, for the
voxels updated most recently, their running mean in fp32; an update multiplies and adds on that row and
writes it back, and the map stores it rounded once (<= 0.5 ulp). Keeping the fp32 mean rather than an
fp16 residual ``exact - stored`` (the design before, same bound) makes an update one fp32 pass and one
conversion instead of four mixed fp16/fp32 passes: fp16<->fp32 conversion dominates on CPUs (issue #17:
1.40x the uncompensated cost with residual rows, docs/benchmarks.md). A voxel losing its row keeps its
rounded mean (<= 0.5 ulp, shrinking as ``h_then / h_now`` with later hits).

Size: from what frames touch, not from the map. The working set holds ``2 x`` the most voxels one
update touched among the last ``window`` updates (at least 256 rows, in steps of 1024), up to
``max_rows``. A camera that keeps seeing a voxel updates it every frame, and least-recently-used
replacement never takes a row from a voxel of the current update, so with room for two views every
voxel in view keeps its row, at any map size. Beyond ``max_rows`` (a memory cap) the voxels of an update
that find no free row round as before; they are counted (``uncompensated_last``,
``uncompensated_total``). The set only grows during a run (growing copies the set, never the map);
``shrink`` trims it to the current target. The map saves each row as its fp32 residual
``mean - stored`` (exact in fp32), so a loaded map continues bit for bit.

A row costs ``(dim + 3) x 4 + 16`` bytes: 3,100 B at 768-d, 73 MiB for the 24,576 rows of a parked
640x480 view to 5 m, ~210 MiB for the ~70k rows of a walking corridor view to 8 m (docs/voxel_map.md).
"""

from __future__ import annotations

from collections import deque

import torch

MIN_ROWS = 256
STEP_ROWS = 1024
HEADROOM = 2  # rows per voxel of the largest recent update


class WorkingSet:
    """fp32 mean rows ``mean``/``mean_col`` owned by map slots ``row_slot`` (-1 free), LRU by ``row_used``;
    a row given to a newcomer is NaN until its first update fills it from the stored mean."""

    def __init__(self, dim: int, dtype: torch.dtype, device: torch.device, max_rows: int, window: int = 64) -> None:
        if max_rows < 0:
            raise ValueError(f"residual_rows must be >= 0, got {max_rows}")
        self.dim, self.dtype, self.device = dim, dtype, device
        # fp32 storage needs no compensation: its running mean is already exact to ~1e-7.
        self.max_rows = 0 if dtype == torch.float32 else int(max_rows)
        self._recent: deque[int] = deque(maxlen=window)
        self.uncompensated_last = 0  # voxels of the last update that had no row (beyond max_rows)
        self.uncompensated_total = 0  # the same, summed over all updates
        self.clear()

    def clear(self) -> None:
        dev = self.device
        self.mean = torch.zeros(0, self.dim, dtype=torch.float32, device=dev)
        self.mean_col = torch.zeros(0, 3, dtype=torch.float32, device=dev)
        self.row_slot = torch.zeros(0, dtype=torch.int64, device=dev)
        self.row_used = torch.zeros(0, dtype=torch.int64, device=dev)

    # ------------------------------------------------------------------ size
    @property
    def rows(self) -> int:
        return self.row_slot.numel()

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.mean, self.mean_col, self.row_slot, self.row_used))

    def target_rows(self) -> int:
        """Rows wanted now: room for two of the largest recent updates, within [256, max_rows]."""
        want = max(MIN_ROWS, HEADROOM * max(self._recent, default=0))
        return min(self.max_rows, -(-want // STEP_ROWS) * STEP_ROWS if want > MIN_ROWS else MIN_ROWS)

    def _resize(self, rows: int) -> None:
        R = self.rows
        if rows > R:
            grow, dev = rows - R, self.device
            self.mean = torch.cat([self.mean, torch.zeros(grow, self.dim, dtype=torch.float32, device=dev)])
            self.mean_col = torch.cat([self.mean_col, torch.zeros(grow, 3, dtype=torch.float32, device=dev)])
            self.row_slot = torch.cat([self.row_slot, torch.full((grow,), -1, dtype=torch.int64, device=dev)])
            self.row_used = torch.cat([self.row_used, torch.full((grow,), -1, dtype=torch.int64, device=dev)])
        elif rows < R:  # keep the most recently used rows
            keep = torch.sort(torch.argsort(self.row_used, descending=True, stable=True)[:rows]).values
            self.mean, self.mean_col = self.mean[keep].clone(), self.mean_col[keep].clone()
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
            self.mean[avail] = float("nan")  # filled from the stored mean by the next update
            self.mean_col[avail] = float("nan")
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
        """New means ``mean·a + add`` in fp32, rounded to the storage dtype, where ``mean`` is the fp32 row
        ``r`` of update positions ``at`` (rows rewritten) and the ``stored`` mean elsewhere."""
        rows = self.mean_col if colors else self.mean
        if r.numel() == stored.shape[0]:  # the usual case: every voxel owns a row (``at`` is 0..n-1)
            v = rows.index_select(0, r)
            fresh = torch.nonzero(torch.isnan(v[:, 0]), as_tuple=True)[0]
            if fresh.numel():
                v[fresh] = stored[fresh].float()
            v.mul_(a).add_(add)
            rows.index_copy_(0, r, v)
            return v.to(self.dtype)
        v = stored.float()
        if r.numel():
            m = rows.index_select(0, r)
            keep = ~torch.isnan(m[:, 0])
            v.index_copy_(0, at[keep], m[keep])
        v.mul_(a).add_(add)
        if r.numel():
            rows.index_copy_(0, r, v.index_select(0, at))
        return v.to(self.dtype)

    # ------------------------------------------------------------------ map changes
    def remap(self, remove: torch.Tensor, new_index: torch.Tensor) -> None:
        """Slots flagged in ``remove`` lose their rows; the others are renumbered by ``new_index``."""
        live = self.row_slot >= 0
        gone = live.clone()
        gone[live] = remove[self.row_slot[live]]
        self.row_slot[live] = new_index[self.row_slot[live]]
        self.row_slot[gone], self.row_used[gone] = -1, -1

    def means(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(slots, fp32 value and colour means) of the owned rows, least recently used first."""
        live = torch.nonzero(self.row_slot >= 0, as_tuple=True)[0]
        live = live[torch.argsort(self.row_used[live], stable=True)]
        return self.row_slot[live], self.mean[live], self.mean_col[live]

    def restore(self, slots: torch.Tensor, mean: torch.Tensor, mean_col: torch.Tensor) -> None:
        """Take saved rows (least recently used first); the most recent ones are kept if they do not fit."""
        self.clear()
        if self.max_rows == 0:
            return
        keep = min(slots.numel(), self.max_rows)
        self._resize(max(self.target_rows(), keep))
        dev = self.device
        slots, mean, mean_col = (t[t.shape[0] - keep :].to(dev) for t in (slots, mean, mean_col))
        rows = torch.arange(keep, device=dev)
        self.row_slot[rows], self.row_used[rows] = slots.long(), 0
        self.mean[rows], self.mean_col[rows] = mean.float(), mean_col.float()
