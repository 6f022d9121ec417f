"""The node's plumbing in isolation: approximate-time sync, latest-frame-wins worker, map path confinement."""

from __future__ import annotations

import threading
import time

import pytest

from radseg_ros.map_paths import MapPathError, resolve_map_path
from radseg_ros.sync import ApproximateTimeSync
from radseg_ros.worker import LatestSlotWorker


def make_sync(slop=0.01, queue=5):
    out = []
    return ApproximateTimeSync(3, queue, slop, lambda *m: out.append(m)), out


def test_sync_matches_sets_within_slop_in_any_arrival_order():
    sync, out = make_sync()
    sync.add(1, 1.002, "d1")
    sync.add(0, 1.000, "c1")
    assert out == []
    sync.add(2, 0.999, "p1")
    assert out == [("c1", "d1", "p1")]
    sync.add(2, 2.0, "p2")
    sync.add(0, 2.004, "c2")
    sync.add(1, 1.996, "d2")
    assert out[-1] == ("c2", "d2", "p2") and sync.matched == 2


def test_sync_skips_unmatched_messages_and_uses_each_once():
    sync, out = make_sync()
    sync.add(0, 1.0, "c1")  # its depth never comes
    sync.add(0, 2.0, "c2")
    sync.add(1, 2.0, "d2")
    sync.add(2, 2.0, "p2")
    assert out == [("c2", "d2", "p2")]
    sync.add(1, 3.0, "d3")
    sync.add(2, 3.0, "p3")
    assert len(out) == 1  # c2 was used: no colour image for 3.0 yet


def test_sync_drops_stamps_older_than_the_last_set():
    sync, out = make_sync()
    for i, name in enumerate("cdp"):
        sync.add(i, 5.0, name)
    assert len(out) == 1
    sync.add(0, 4.0, "old")
    assert sync.dropped_out_of_order == 1
    for i in (1, 2):
        sync.add(i, 4.0, "old")
    assert len(out) == 1


def test_sync_queues_are_bounded():
    sync, out = make_sync(queue=3)
    for k in range(100):
        sync.add(0, float(k), k)
    assert max(len(q) for q in sync._queues) == 3 and out == []


def test_worker_processes_latest_and_counts_dropped():
    seen, gate = [], threading.Event()

    def process(x):
        gate.wait(5)
        seen.append(x)

    worker = LatestSlotWorker(process, on_error=lambda e: None)
    worker.offer(0)
    time.sleep(0.1)  # 0 is in process, blocked on the gate
    for k in range(1, 10):
        worker.offer(k)
    gate.set()
    end = time.monotonic() + 5
    while not worker.idle() and time.monotonic() < end:
        time.sleep(0.01)
    worker.stop()
    assert seen == [0, 9]
    assert worker.dropped == 8 and worker.processed == 2


def test_worker_survives_a_failing_item():
    errors, seen = [], []

    def process(x):
        if x == "bad":
            raise ValueError("boom")
        seen.append(x)

    worker = LatestSlotWorker(process, on_error=errors.append)
    worker.offer("bad")
    time.sleep(0.1)
    worker.offer("good")
    time.sleep(0.1)
    worker.stop()
    assert seen == ["good"] and isinstance(errors[0], ValueError)


def test_map_paths_are_confined(tmp_path):
    root = tmp_path / "maps"
    root.mkdir()
    assert resolve_map_path(root, "a.rsmap") == root / "a.rsmap"
    assert resolve_map_path(root, "sub/b.rsmap") == root / "sub" / "b.rsmap"
    assert resolve_map_path(root, str(root / "c.rsmap")) == root / "c.rsmap"
    (root / "link").symlink_to(tmp_path)
    for bad in ["../x.rsmap", "/etc/passwd", "sub/../../x", "link/x.rsmap", "", "  ", ".", "a\x00b"]:
        with pytest.raises(MapPathError):
            resolve_map_path(root, bad)
