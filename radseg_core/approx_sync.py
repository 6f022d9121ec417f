"""message_filters' ``ApproximateTimeSynchronizer`` (Python, ROS 2) re-implemented without ROS.

Why our own: PyPI installs have no ``message_filters``, bag processing has no subscribers, and the node
must reset the queues on a jump back in time and count what is dropped, which the upstream class does
not expose. The algorithm follows ros2/message_filters ``src/message_filters/__init__.py`` (commit
361e42c) step by step; ``test/core/test_approx_sync.py`` checks it against a second, literal
formulation on random streams:

* every input has a queue keyed by stamp (integer nanoseconds); a message with a stamp already in its
  queue replaces the queued one; out-of-order arrival within an input is fine;
* after insertion, while a queue holds more than ``queue_size`` messages its *oldest stamp* is deleted
  (this can be the message that just arrived);
* only the arriving message can complete a set: for every other input, candidates are its queued
  stamps within ``slop`` of the arrival (``|dt| <= slop``), ordered by ``|dt|`` (ties: queue insertion
  order); combinations are tried in ``itertools.product`` order (first input varies slowest) and the
  first whose spread ``max - min`` is strictly below ``slop`` and whose messages are all still queued is
  emitted; its messages leave the queues, nothing else does;
* at most one set per arrival.

Deliberate differences, none affecting which sets are emitted: the callback runs after the lock is
released (upstream calls it under the lock), the inputs are indexes instead of subscribers, evictions
are counted (``dropped``) and :meth:`reset` empties the queues (used on a jump back in time, where the
upstream queues would keep stale stamps and evict every new message once full).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any


class ApproximateTimeSync:
    """Match one message per input whose stamps spread less than ``slop``; thread-safe, bounded."""

    def __init__(self, n: int, queue_size: int, slop: float, callback: Callable[..., None]) -> None:
        if n < 2:
            raise ValueError("need at least two inputs to synchronise")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if not slop > 0.0:  # the spread must be strictly below slop: 0 would silently never match
            raise ValueError(f"slop must be a positive number of seconds, got {slop}")
        self._queues: list[dict[int, Any]] = [{} for _ in range(n)]
        self._queue_size = int(queue_size)
        self._slop_ns = int(slop * 1e9)  # as rclpy Duration(seconds=slop)
        self._callback = callback
        self._lock = threading.Lock()
        self.matched = 0  # sets emitted
        self.dropped = 0  # messages evicted by queue_size without being emitted
        self.replaced = 0  # messages overwritten by a later one with the same stamp on the same input

    def add(self, index: int, stamp_ns: int, msg: Any) -> None:
        """Offer one message of input ``index``; calls the callback (outside the lock) if it completes a set."""
        stamp_ns = int(stamp_ns)
        with self._lock:
            emitted = self._add_locked(index, stamp_ns, msg)
        if emitted is not None:
            self._callback(*emitted)

    def _add_locked(self, index: int, stamp: int, msg: Any) -> list[Any] | None:
        queue = self._queues[index]
        if stamp in queue:
            self.replaced += 1
        queue[stamp] = msg
        while len(queue) > self._queue_size:
            del queue[min(queue)]
            self.dropped += 1
        candidates: list[list[int]] = []
        for i, other in enumerate(self._queues):
            if i == index:
                continue
            near = [(abs(s - stamp), s) for s in other if abs(s - stamp) <= self._slop_ns]
            if not near:
                return None
            near.sort(key=lambda d_s: d_s[0])  # stable: ties keep queue order, as upstream's sorted()
            candidates.append([s for _, s in near])
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, stamp)
            if max(stamps) - min(stamps) < self._slop_ns and all(
                s in q for q, s in zip(self._queues, stamps, strict=True)
            ):
                self.matched += 1
                return [q.pop(s) for q, s in zip(self._queues, stamps, strict=True)]
        return None

    def reset(self, newer_than_ns: int | None = None) -> int:
        """Empty the queues (e.g. after a jump back in time); returns how many messages were discarded.

        With ``newer_than_ns`` only messages stamped after it go: those of the run before the jump,
        while partners of the new run that arrived just before the jump was noticed stay.
        """
        with self._lock:
            return discard_queued(self._queues, newer_than_ns)

    def queued(self) -> list[int]:
        """Messages waiting per input."""
        with self._lock:
            return [len(q) for q in self._queues]


def discard_queued(queues: list[dict[int, Any]], newer_than_ns: int | None = None) -> int:
    """Delete queued messages (all, or those stamped after ``newer_than_ns``) from stamp-keyed queues,
    as both this synchroniser and message_filters' keep them; returns how many went. Caller holds the lock."""
    n = 0
    for q in queues:
        stale = [s for s in q if newer_than_ns is None or s > newer_than_ns]
        for s in stale:
            del q[s]
        n += len(stale)
    return n
