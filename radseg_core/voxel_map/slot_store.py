"""Per-voxel arrays in equal-size chunks: a map that grows never copies itself.

A single tensor per field must be reallocated to grow, and while it grows the old and the new copy
coexist (x2.125 at +12.5 % growth), and the growth slack stays allocated afterwards. Here every field
(``values``, ``colors``, ``hits``...) lives in chunks of ``rows`` slots; growing appends a chunk. Once
:attr:`SlotStore.max_chunks` chunks exist, ``rows`` doubles and neighbouring chunks are merged pairwise
(a transient of one merged chunk, not of the map). So at any moment the unused rows are fewer than one
chunk, i.e. at most ``max(min_rows, size / (max_chunks / 2))`` rows: <= 0.8 % of the map at
``max_chunks=256``, and whole-map passes iterate over at most ``max_chunks`` blocks.

Slot ``s`` lives in chunk ``s >> log2(rows)`` at row ``s & (rows - 1)``; gathers and scatters of a
frame's slots group them by chunk once (:meth:`SlotStore.locate`) and reuse the grouping for every field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

FieldSpec = tuple[tuple[int, ...], torch.dtype]  # per-slot shape, dtype


@dataclass
class Located:
    """Slots grouped by chunk: request positions sorted by chunk (``order``, None when already so), the
    rows in that order, and one ``(chunk, start, stop)`` span of them per chunk."""

    n: int
    order: torch.Tensor | None
    rows: torch.Tensor
    groups: list[tuple[int, int, int]]


class SlotStore:
    """Fields of ``size`` slots stored in chunks of ``rows`` rows (``rows`` a power of two)."""

    def __init__(
        self, fields: dict[str, FieldSpec], device: torch.device, *, min_rows: int = 256, max_chunks: int = 256
    ) -> None:
        if min_rows < 1 or min_rows & (min_rows - 1):
            raise ValueError(f"min_rows must be a power of two, got {min_rows}")
        if max_chunks < 2 or max_chunks % 2:
            raise ValueError(f"max_chunks must be an even number >= 2, got {max_chunks}")
        self.fields = dict(fields)
        self.device = torch.device(device)
        self.max_chunks = int(max_chunks)
        self.rows = int(min_rows)
        self.size = 0
        self.chunks: list[dict[str, torch.Tensor]] = []

    # ------------------------------------------------------------------ capacity
    @property
    def capacity(self) -> int:
        return len(self.chunks) * self.rows

    @property
    def row_bytes(self) -> int:
        """Bytes of one slot over all fields."""
        return sum(
            torch.Size(shape).numel() * torch.empty(0, dtype=dt).element_size() for shape, dt in self.fields.values()
        )

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for c in self.chunks for t in c.values())

    def _new_chunk(self, rows: int) -> dict[str, torch.Tensor]:
        return {
            name: torch.empty((rows, *shape), dtype=dt, device=self.device) for name, (shape, dt) in self.fields.items()
        }

    def reserve(self, needed: int) -> None:
        """Make room for ``needed`` slots in all (chunks appended; never a copy of the whole store)."""
        while needed > self.capacity:
            if len(self.chunks) >= self.max_chunks:
                self._double_rows()
            self.chunks.append(self._new_chunk(self.rows))

    def _double_rows(self) -> None:
        """Merge chunks pairwise into chunks of twice the rows (only full chunks exist at this point)."""
        merged = []
        for i in range(0, len(self.chunks), 2):
            pair = self.chunks[i : i + 2]
            new = self._new_chunk(2 * self.rows)
            for name, t in new.items():
                for j, old in enumerate(pair):
                    t[j * self.rows : (j + 1) * self.rows] = old[name]
            self.chunks[i : i + 2] = [{}, {}][: len(pair)]  # release the halves before the next merge
            merged.append(new)
        self.chunks = merged
        self.rows *= 2

    def release_unused(self) -> None:
        """Free chunks beyond the last used slot (after removals)."""
        keep = -(-self.size // self.rows)
        del self.chunks[keep:]

    # ------------------------------------------------------------------ addressing
    def locate(self, slots: torch.Tensor) -> Located:
        """Group ``slots`` (any order, each < capacity) by chunk, for :meth:`gather` / :meth:`scatter`."""
        slots = slots.to(self.device, torch.int64)
        n = slots.numel()
        if n == 0:
            return Located(0, None, slots, [])
        shift = self.rows.bit_length() - 1
        chunk = slots >> shift
        lo, hi = int(chunk.min()), int(chunk.max())
        if lo == hi:
            return Located(n, None, slots & (self.rows - 1), [(lo, 0, n)])
        chunk, order = torch.sort(chunk, stable=True)
        ids, counts = torch.unique_consecutive(chunk, return_counts=True)
        ends = counts.cumsum(0).tolist()
        groups = [(c, e - k, e) for c, k, e in zip(ids.tolist(), counts.tolist(), ends, strict=True)]
        return Located(n, order, slots.index_select(0, order) & (self.rows - 1), groups)

    def gather(self, name: str, where: Located) -> torch.Tensor:
        """``field[slots]`` in request order (a new tensor)."""
        if where.n == 0:
            shape, dt = self.fields[name]
            return torch.empty((0, *shape), dtype=dt, device=self.device)
        parts = [self.chunks[c][name].index_select(0, where.rows[a:b]) for c, a, b in where.groups]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        if where.order is None:
            return out
        return torch.empty_like(out).index_copy_(0, where.order, out)

    def scatter(self, name: str, where: Located, values: torch.Tensor | float) -> None:
        """``field[slots] = values`` (a tensor in request order, or a scalar)."""
        if isinstance(values, torch.Tensor) and where.order is not None:
            values = values.index_select(0, where.order)
        for c, a, b in where.groups:
            self.chunks[c][name][where.rows[a:b]] = values[a:b] if isinstance(values, torch.Tensor) else values

    def move(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        """Copy every field of slots ``src`` to slots ``dst`` (disjoint; O(len) rows moved)."""
        if dst.numel() == 0:
            return
        at_src, at_dst = self.locate(src), self.locate(dst)
        for name in self.fields:
            self.scatter(name, at_dst, self.gather(name, at_src))

    # ------------------------------------------------------------------ whole-field access
    def blocks(self, name: str, start: int = 0) -> Iterator[torch.Tensor]:
        """Views of ``field[start:size]``, one per chunk (no copy)."""
        for c in range(start // self.rows, -(-self.size // self.rows)):
            lo = max(start - c * self.rows, 0)
            hi = min(self.size - c * self.rows, self.rows)
            yield self.chunks[c][name][lo:hi]

    def cat(self, name: str, start: int = 0) -> torch.Tensor:
        """``field[start:size]`` as one tensor (a copy)."""
        parts = list(self.blocks(name, start))
        if not parts:
            shape, dt = self.fields[name]
            return torch.empty((0, *shape), dtype=dt, device=self.device)
        return parts[0].clone() if len(parts) == 1 else torch.cat(parts)

    def write_range(self, name: str, start: int, values: torch.Tensor) -> None:
        """``field[start:start + len(values)] = values`` (slots must be reserved)."""
        done = 0
        while done < values.shape[0]:
            s = start + done
            c, r = divmod(s, self.rows)
            take = min(self.rows - r, values.shape[0] - done)
            self.chunks[c][name][r : r + take] = values[done : done + take]
            done += take
