"""Approximate-time synchronisation of the camera topics.

The node always uses ``radseg_core.approx_sync.ApproximateTimeSync``, which emits the same sets as
message_filters' ``ApproximateTimeSynchronizer`` (tested against its algorithm, see that module), also
where message_filters is installed: one code path on every install, queues that can be emptied on a
jump back in time, and eviction counts for diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from radseg_core.approx_sync import ApproximateTimeSync

__all__ = ["ApproximateTimeSync", "subscribe_synchronized"]


def subscribe_synchronized(
    node: Any,
    topics: Sequence[tuple[type, str]],
    qos: Any,
    queue_size: int,
    slop: float,
    callback: Callable[..., None],
    admit: Callable[[int, Any], int | None],
) -> tuple[list[Any], ApproximateTimeSync]:
    """Subscribe to ``topics`` and call ``callback`` with one message per topic, matched by stamp.

    ``admit(index, msg)`` returns the message's stamp in nanoseconds, or None to refuse it (bad stamp,
    handled by the caller). Returns the subscriptions (keep them alive) and the synchroniser.
    """
    sync = ApproximateTimeSync(len(topics), queue_size, slop, callback)

    def on_msg(msg: Any, i: int) -> None:
        stamp = admit(i, msg)
        if stamp is not None:
            sync.add(i, stamp, msg)

    subs = [node.create_subscription(msg_type, topic, lambda msg, i=i: on_msg(msg, i), qos)
            for i, (msg_type, topic) in enumerate(topics)]
    return subs, sync
