"""SlotStore (chunked per-voxel storage) against plain contiguous tensors doing the same operations."""

from __future__ import annotations

import pytest
import torch

from radseg_core.voxel_map.slot_store import SlotStore

FIELDS = {"values": ((5,), torch.float16), "hits": ((), torch.int32)}


def test_random_operations_equal_a_contiguous_reference():
    gen = torch.Generator().manual_seed(3)
    store = SlotStore(FIELDS, torch.device("cpu"), min_rows=4, max_chunks=4)
    ref = {"values": torch.zeros(0, 5, dtype=torch.float16), "hits": torch.zeros(0, dtype=torch.int32)}
    rows_seen = set()
    for step in range(60):
        grow = int(torch.randint(0, 9, (1,), generator=gen))
        n = store.size
        store.reserve(n + grow)
        new_v = torch.randn(grow, 5, generator=gen).half()
        new_h = torch.randint(0, 100, (grow,), generator=gen, dtype=torch.int32)
        store.write_range("values", n, new_v)
        at = store.locate(torch.arange(n, n + grow))
        store.scatter("hits", at, new_h)
        store.size = n + grow
        ref["values"] = torch.cat([ref["values"], new_v])
        ref["hits"] = torch.cat([ref["hits"], new_h])
        rows_seen.add(store.rows)
        if store.size:
            slots = torch.randint(0, store.size, (7,), generator=gen).unique()
            slots = slots[torch.randperm(slots.numel(), generator=gen)]  # any order
            at = store.locate(slots)
            assert torch.equal(store.gather("values", at), ref["values"][slots])
            upd = torch.randn(slots.numel(), 5, generator=gen).half()
            store.scatter("values", at, upd)
            ref["values"][slots] = upd
        if step % 7 == 6 and store.size > 4:  # remove two slots, fill from the tail (as VoxelMap does)
            m = store.size - 2
            holes, movers = torch.tensor([0, 1]), torch.tensor([m, m + 1])
            store.move(holes, movers)
            for name in ref:
                ref[name][holes] = ref[name][movers]
                ref[name] = ref[name][:m]
            store.size = m
            store.release_unused()
        for name in ref:
            assert torch.equal(store.cat(name), ref[name]), (step, name)
            assert torch.equal(torch.cat(list(store.blocks(name, 3)) or [ref[name][:0]]), ref[name][3:])
        assert store.capacity - store.size < store.rows  # never more than one chunk of slack
        assert len(store.chunks) <= store.max_chunks
    assert len(rows_seen) >= 3  # the chunk size doubled (pairwise merges) more than once


def test_nbytes_counts_every_chunk():
    store = SlotStore(FIELDS, torch.device("cpu"), min_rows=8, max_chunks=2)
    store.reserve(20)  # 8, 8 -> merge to 16, then a second 16-row chunk
    assert (store.rows, len(store.chunks)) == (16, 2)
    assert store.nbytes() == 2 * 16 * (5 * 2 + 4) == store.capacity * store.row_bytes


@pytest.mark.parametrize("kwargs", [{"min_rows": 3}, {"max_chunks": 3}, {"max_chunks": 0}])
def test_bad_configuration_refused(kwargs):
    with pytest.raises(ValueError):
        SlotStore(FIELDS, torch.device("cpu"), **kwargs)
