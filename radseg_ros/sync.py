"""Approximate-time synchronisation of the camera topics.

On a ROS install with ``message_filters`` the node uses its ``ApproximateTimeSynchronizer``. Where it is
missing (PyPI wheels), :class:`ApproximateTimeSync` gives the same contract: a callback receives one
message per input whose stamps lie within ``slop`` seconds of each other, each message is used at most
once, every queue is bounded, and messages older than the last emitted set are dropped.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

try:  # the real one where ROS provides it
    import message_filters  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the install
    message_filters = None


class ApproximateTimeSync:
    """Match messages from ``n`` inputs by stamp (seconds), bounded memory, thread-safe."""

    def __init__(self, n: int, queue_size: int, slop: float, callback: Callable[..., None]) -> None:
        if n < 2:
            raise ValueError("need at least two inputs to synchronise")
        self._queues: list[deque[tuple[float, Any]]] = [deque(maxlen=max(1, queue_size)) for _ in range(n)]
        self._slop = float(slop)
        self._callback = callback
        self._last_emitted = -float("inf")
        self._lock = threading.Lock()
        self.dropped_out_of_order = 0
        self.matched = 0

    def add(self, index: int, stamp: float, msg: Any) -> None:
        """Offer one message; calls the callback (outside the lock) for every completed set."""
        ready: list[list[Any]] = []
        with self._lock:
            if stamp <= self._last_emitted:
                self.dropped_out_of_order += 1
                return
            self._queues[index].append((stamp, msg))
            while all(self._queues):
                match = self._match_once()
                if match is not None:
                    ready.append(match)
        for msgs in ready:
            self._callback(*msgs)

    def _match_once(self) -> list[Any] | None:
        """One step: emit the set around the newest queue head, or drop a head that cannot match."""
        pivot = max(q[0][0] for q in self._queues)
        picks = [min(q, key=lambda item: abs(item[0] - pivot)) for q in self._queues]
        stamps = [t for t, _ in picks]
        if max(stamps) - min(stamps) <= self._slop:
            for q, (t, _) in zip(self._queues, picks, strict=True):
                while q and q[0][0] <= t:
                    q.popleft()
            self._last_emitted = max(self._last_emitted, min(stamps))
            self.matched += 1
            return [m for _, m in picks]
        oldest = min(range(len(self._queues)), key=lambda i: self._queues[i][0][0])
        self._queues[oldest].popleft()
        return None


def subscribe_synchronized(
    node: Any,
    topics: Sequence[tuple[type, str]],
    qos: Any,
    queue_size: int,
    slop: float,
    callback: Callable[..., None],
    stamp_of: Callable[[Any], float],
) -> tuple[list[Any], Any]:
    """Subscribe to ``topics`` and call ``callback`` with matched messages.

    Returns the subscriptions (keep them alive) and the synchroniser (for statistics).
    """
    if message_filters is not None:
        subs = [message_filters.Subscriber(node, msg_type, topic, qos_profile=qos) for msg_type, topic in topics]
        sync = message_filters.ApproximateTimeSynchronizer(subs, queue_size, slop)
        sync.registerCallback(callback)
        return subs, sync
    sync = ApproximateTimeSync(len(topics), queue_size, slop, callback)
    subs = []
    for i, (msg_type, topic) in enumerate(topics):
        subs.append(
            node.create_subscription(
                msg_type, topic, lambda msg, i=i: sync.add(i, stamp_of(msg), msg), qos
            )
        )
    return subs, sync
