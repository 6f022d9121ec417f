"""Approximate-time synchronisation of the camera topics.

``sync_backend`` chooses (auto: message_filters when importable):

* ``message_filters``: ROS' own ``Subscriber`` + ``ApproximateTimeSynchronizer``. The node's ``admit``
  check (zero stamps, empty frame ids, time jumps) runs in a small filter between each ``Subscriber``
  and the synchroniser, so refused messages never reach its queues. A jump back in time empties the
  synchroniser's per-input queues (``queues``, under its ``lock``, as upstream names them). Upstream
  does not count evictions: diagnostics report drop counts as not available.
* ``internal``: ``radseg_core.approx_sync.ApproximateTimeSync``, which emits the same sets as
  message_filters' ``ApproximateTimeSynchronizer`` (tested against its algorithm, see that module) and
  counts dropped / replaced messages; the only choice in pip-only installs (no message_filters wheel).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from radseg_core.approx_sync import ApproximateTimeSync, discard_queued

__all__ = ["ApproximateTimeSync", "MessageFiltersSync", "message_filters_available", "select_sync_backend",
           "subscribe_synchronized"]

NOT_AVAILABLE = "not available (message_filters)"


def message_filters_available() -> bool:
    """Whether ``import message_filters`` works (looked up each call: tests install stand-ins)."""
    try:
        importlib.import_module("message_filters")
    except ImportError:
        return False
    return True


def select_sync_backend(choice: str) -> str:
    """``sync_backend`` parameter -> 'message_filters' or 'internal'; a forced one that is missing is an error."""
    if choice == "internal":
        return "internal"
    if choice == "message_filters":
        if not message_filters_available():
            raise RuntimeError("sync_backend message_filters but message_filters is not importable "
                               "(apt: ros-$ROS_DISTRO-message-filters), or set sync_backend auto/internal")
        return "message_filters"
    if choice == "auto":
        return "message_filters" if message_filters_available() else "internal"
    raise ValueError(f"sync_backend must be auto, message_filters or internal, got {choice!r}")


class MessageFiltersSync:
    """message_filters' ``ApproximateTimeSynchronizer`` behind the internal synchroniser's interface."""

    backend = "message_filters"
    dropped = NOT_AVAILABLE  # upstream evicts silently
    replaced = NOT_AVAILABLE

    def __init__(self, node: Any, topics: Sequence[tuple[type, str]], qos: Any, queue_size: int, slop: float,
                 callback: Callable[..., None], admit: Callable[[int, Any], int | None]) -> None:
        mf = importlib.import_module("message_filters")
        self.subscribers = [mf.Subscriber(node, msg_type, topic, qos_profile=qos) for msg_type, topic in topics]
        self.filters = [self._admit_filter(mf, sub, i, admit) for i, sub in enumerate(self.subscribers)]
        self.synchronizer = mf.ApproximateTimeSynchronizer(self.filters, queue_size, slop)
        self.synchronizer.registerCallback(callback)

    @staticmethod
    def _admit_filter(mf: Any, source: Any, index: int, admit: Callable[[int, Any], int | None]) -> Any:
        """Passes on only the messages ``admit`` accepts."""
        out = mf.SimpleFilter()

        def on_msg(msg: Any) -> None:
            if admit(index, msg) is not None:
                out.signalMessage(msg)

        source.registerCallback(on_msg)
        return out

    def reset(self, newer_than_ns: int | None = None) -> int:
        """Empty the queues (all, or messages stamped after ``newer_than_ns``); returns how many went."""
        s = self.synchronizer
        with s.lock:
            return discard_queued(s.queues, newer_than_ns)

    def queued(self) -> list[int]:
        with self.synchronizer.lock:
            return [len(q) for q in self.synchronizer.queues]


def subscribe_synchronized(
    node: Any,
    topics: Sequence[tuple[type, str]],
    qos: Any,
    queue_size: int,
    slop: float,
    callback: Callable[..., None],
    admit: Callable[[int, Any], int | None],
    backend: str = "internal",
) -> tuple[list[Any], ApproximateTimeSync | MessageFiltersSync]:
    """Subscribe to ``topics`` and call ``callback`` with one message per topic, matched by stamp.

    ``admit(index, msg)`` returns the message's stamp in nanoseconds, or None to refuse it (bad stamp,
    handled by the caller). Returns the subscriptions (keep them alive) and the synchroniser.
    """
    if backend == "message_filters":
        sync = MessageFiltersSync(node, topics, qos, queue_size, slop, callback, admit)
        return sync.subscribers, sync
    internal = ApproximateTimeSync(len(topics), queue_size, slop, callback)

    def on_msg(msg: Any, i: int) -> None:
        stamp = admit(i, msg)
        if stamp is not None:
            internal.add(i, stamp, msg)

    subs = [node.create_subscription(msg_type, topic, lambda msg, i=i: on_msg(msg, i), qos)
            for i, (msg_type, topic) in enumerate(topics)]
    return subs, internal
