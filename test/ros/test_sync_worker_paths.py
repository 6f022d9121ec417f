"""The node's plumbing in isolation: latest-frame-wins worker, map path confinement (sync: test/core)."""

from __future__ import annotations

import threading
import time

import pytest

from radseg_ros.map_paths import MapPathError, resolve_map_path
from radseg_ros.worker import LatestSlotWorker


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
