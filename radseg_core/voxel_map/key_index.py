"""The hash of the voxel map: sorted key runs with matching int32 slots, and the only copy of the keys.

A frame's voxels are looked up with one ``searchsorted`` per run. A frame's new keys form a new sorted
run; a run is merged into the one before it once it reaches half its size, so there are O(log n) runs
and each key is copied O(log n) times over the map's life, instead of the whole index being copied
(or ``torch.unique`` run over the whole map) on every frame that adds voxels. Keys order x first, so an
axis-aligned box of voxels is one key range per run (:meth:`KeyIndex.in_box`).
"""

from __future__ import annotations

import torch

from radseg_core.voxel_map.keys import BITS, MASK, OFFSET, pack_keys

Run = tuple[torch.Tensor, torch.Tensor]  # sorted int64 keys, int32 slots


class KeyIndex:
    """Packed key → slot, as O(log n) sorted runs, largest first (each < half the one before)."""

    def __init__(self) -> None:
        self.runs: list[Run] = []

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + s.numel() * s.element_size() for k, s in self.runs)

    def lookup(self, ukeys: torch.Tensor) -> torch.Tensor:
        """int64 slots of sorted unique ``ukeys``, -1 where a key is not in the map."""
        slots = torch.full_like(ukeys, -1)
        for run_k, run_s in self.runs:
            pos = torch.searchsorted(run_k, ukeys).clamp_max(run_k.numel() - 1)
            hit = run_k[pos] == ukeys
            slots[hit] = run_s[pos[hit]].long()
        return slots

    def insert(self, sorted_keys: torch.Tensor, slots: torch.Tensor) -> None:
        """Add new keys (sorted, unique, not yet present) pointing at ``slots``."""
        self.runs.append((sorted_keys, slots.int()))
        self._merge_tail()

    def keys_in_slot_order(self, n: int, device: torch.device) -> torch.Tensor:
        out = torch.empty(n, dtype=torch.int64, device=device)
        for run_k, run_s in self.runs:
            out[run_s.long()] = run_k
        return out

    def remap(self, keep: torch.Tensor, new_index: torch.Tensor) -> None:
        """Drop slots where ``keep`` is False and renumber the others with ``new_index`` (slot → slot)."""
        runs = []
        for run_k, run_s in self.runs:
            kept = keep[run_s.long()]
            if bool(kept.any()):
                runs.append((run_k[kept], new_index[run_s[kept].long()].int()))
        # After removals runs may violate the invariant anywhere: rebuild it from the smallest end.
        self.runs = []
        for run in sorted(runs, key=lambda r: -r[0].numel()):
            self.runs.append(run)
            self._merge_tail()

    def restore(self, keys_in_slot_order: torch.Tensor) -> None:
        """One run holding these keys (unique), slot i for ``keys_in_slot_order[i]``."""
        sorted_keys, order = torch.sort(keys_in_slot_order)
        self.runs = [(sorted_keys, order.int())] if keys_in_slot_order.numel() else []

    def in_box(self, lo: torch.Tensor, hi: torch.Tensor, device: torch.device) -> Run:
        """(keys, slots) of voxels whose key-relative indices lie in [lo, hi] (inclusive, int64 (3,)).

        Per run the box lies in the one key range [key(lo), key(hi)] (the x-slab, trimmed at its two
        ends): two ``searchsorted``, then y and z are filtered there. O(log n + voxels in the x-slab).
        """
        lo, hi = lo.clamp_min(-OFFSET), hi.clamp_max(OFFSET - 1)
        found: list[Run] = []
        if bool((lo <= hi).all()):
            bounds = pack_keys(torch.stack([lo, hi]).to(device))
            (ly, lz), (hy, hz) = (lo[1:] + OFFSET).tolist(), (hi[1:] + OFFSET).tolist()  # packed y, z
            for run_k, run_s in self.runs:
                a = int(torch.searchsorted(run_k, bounds[:1]))
                b = int(torch.searchsorted(run_k, bounds[1:], right=True))
                k = run_k[a:b]
                y, z = (k >> BITS) & MASK, k & MASK
                at = torch.nonzero((y >= ly) & (y <= hy) & (z >= lz) & (z <= hz), as_tuple=True)[0] + a
                found.append((run_k[at], run_s[at]))
        if len(found) == 1:
            return found[0]
        if not found:
            empty = torch.empty(0, dtype=torch.int64, device=device)
            return empty, empty
        return torch.cat([k for k, _ in found]), torch.cat([sl for _, sl in found])

    def _merge_tail(self) -> None:
        """Restore the run invariant (each run < half the one before) by merging the smallest runs."""
        runs = self.runs
        while len(runs) >= 2 and 2 * runs[-1][0].numel() >= runs[-2][0].numel():
            (ka, sa), (kb, sb) = runs[-2], runs.pop()
            k, order = torch.sort(torch.cat([ka, kb]), stable=True)
            runs[-1] = (k, torch.cat([sa, sb])[order])
