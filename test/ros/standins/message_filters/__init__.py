"""Test stand-in for ``message_filters`` (Python, ROS 2); see ../README.md.

API as upstream: ``SimpleFilter`` (``registerCallback(cb, *args)``, ``signalMessage(*msg)``),
``Subscriber(node, msg_type, topic, qos_profile=...)``, ``ApproximateTimeSynchronizer(fs, queue_size,
slop)`` with its per-input ``queues`` (dicts keyed by stamp nanoseconds) and ``lock``. The synchroniser
follows upstream's ``add``: insert (same stamp replaces), evict the oldest stamp beyond queue_size, take
for every other input the stamps within slop (``<=``) of the arrival sorted by distance, try
``itertools.product`` combinations in order, emit the first whose spread is ``< slop`` and whose stamps
are all still queued (callback under the lock), and remove exactly those messages.
"""

from __future__ import annotations

import itertools
import threading

from rclpy.duration import Duration
from rclpy.time import Time


class SimpleFilter:
    def __init__(self) -> None:
        self.callbacks: dict[int, tuple] = {}

    def registerCallback(self, cb, *args):  # noqa: N802 - upstream name
        conn = len(self.callbacks)
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msg):  # noqa: N802 - upstream name
        for cb, args in self.callbacks.values():
            cb(*(msg + args))


class Subscriber(SimpleFilter):
    def __init__(self, *args, **kwargs) -> None:
        SimpleFilter.__init__(self)
        self.node, self.topic = args[0], args[2]
        kwargs.setdefault("qos_profile", 10)
        self.sub = self.node.create_subscription(*args[1:], self.callback, **kwargs)

    def callback(self, msg) -> None:
        self.signalMessage(msg)


class ApproximateTimeSynchronizer(SimpleFilter):
    def __init__(self, fs, queue_size, slop, allow_headerless=False) -> None:
        SimpleFilter.__init__(self)
        self.queue_size = queue_size
        self.lock = threading.Lock()
        self.slop = Duration(seconds=slop)
        self.queues = [{} for _ in fs]
        self.input_connections = [f.registerCallback(self.add, q, i)
                                  for i, (f, q) in enumerate(zip(fs, self.queues, strict=True))]

    def add(self, msg, my_queue, my_queue_index=None) -> None:
        stamp = Time.from_msg(msg.header.stamp).nanoseconds
        slop = self.slop.nanoseconds
        with self.lock:
            my_queue[stamp] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
            others = [q for i, q in enumerate(self.queues) if i != my_queue_index]
            candidates = []
            for q in others:
                near = sorted(((abs(s - stamp), s) for s in q if abs(s - stamp) <= slop), key=lambda d: d[0])
                if not near:
                    return
                candidates.append([s for _, s in near])
            for combo in itertools.product(*candidates):
                stamps = list(combo)
                stamps.insert(my_queue_index, stamp)
                pairs = list(zip(self.queues, stamps, strict=True))
                if max(stamps) - min(stamps) < slop and all(s in q for q, s in pairs):
                    self.signalMessage(*[q[s] for q, s in pairs])
                    for q, s in pairs:
                        del q[s]
                    break
