"""Replay a rosbag2 (sqlite3 or mcap) into ROS topics without `ros2 bag` (read with rosbags).

Messages are published as the recorded CDR bytes, so no per-type conversion is needed. Two pacing
modes: ``rate`` (recorded timing scaled, like ``ros2 bag play -r``) and ``lockstep`` (the next set of
messages goes out only after ``wait_for`` returns, used to drive a slow node without dropping frames).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy


def message_class(ros_type: str) -> type:
    """'sensor_msgs/msg/Image' → the rclpy message class."""
    pkg, kind, name = ros_type.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def read_bag(path: str | Path, topics: list[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
    """Yield (topic, type, receive time ns, raw CDR bytes) in recorded order."""
    from rosbags.rosbag2 import Reader

    with Reader(Path(path)) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        if not conns:
            raise ValueError(f"{path}: none of the topics {topics} are in the bag")
        for conn, timestamp, raw in reader.messages(connections=conns):
            yield conn.topic, conn.msgtype, timestamp, bytes(raw)


def group_by_time(messages: Iterator[tuple[str, str, int, bytes]], window_ns: int):
    """Group consecutive messages whose receive times lie within ``window_ns`` of the group's first."""
    group: list[tuple[str, str, int, bytes]] = []
    for msg in messages:
        if group and msg[2] - group[0][2] > window_ns:
            yield group
            group = []
        group.append(msg)
    if group:
        yield group


class BagReplayer:
    """Publishes a bag's messages from ``node``; one publisher per topic, reliable QoS."""

    def __init__(self, node: Node, bag: str | Path, topics: list[str] | None = None, remap: dict | None = None):
        self.node = node
        self.bag = Path(bag)
        self.topics = topics
        self.remap = remap or {}
        self._pubs: dict[str, object] = {}

    def prepare(self) -> None:
        """Create every publisher now, so subscribers can match before the first message is sent.

        A volatile publisher created at its first publish would lose that message: nobody is matched yet.
        """
        from rosbags.rosbag2 import Reader

        with Reader(self.bag) as reader:
            for conn in reader.connections:
                if self.topics is None or conn.topic in self.topics:
                    self._publisher(conn.topic, conn.msgtype)

    def matched(self) -> bool:
        """Every publisher has at least one subscription."""
        return bool(self._pubs) and all(p.get_subscription_count() > 0 for p in self._pubs.values())

    def _publisher(self, topic: str, ros_type: str):
        if topic not in self._pubs:
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            self._pubs[topic] = self.node.create_publisher(message_class(ros_type), self.remap.get(topic, topic), qos)
        return self._pubs[topic]

    def play(
        self,
        *,
        rate: float = 1.0,
        lockstep_window_s: float | None = None,
        wait_for: Callable[[list[tuple[str, str, int, bytes]]], None] | None = None,
        spin: Callable[[float], None] | None = None,
    ) -> int:
        """Publish everything; returns the number of messages sent.

        With ``lockstep_window_s``, messages recorded within that window form one set; after each set
        ``wait_for(set)`` is called (it should block until the consumer is done with it).
        """
        spin = spin or time.sleep
        sent = 0
        messages = read_bag(self.bag, self.topics)
        if lockstep_window_s is not None:
            for group in group_by_time(messages, int(lockstep_window_s * 1e9)):
                for topic, ros_type, _, raw in group:
                    self._publisher(topic, ros_type).publish(raw)
                    sent += 1
                if wait_for is not None:
                    wait_for(group)
            return sent
        start_wall, start_bag = time.monotonic(), None
        for topic, ros_type, stamp, raw in messages:
            start_bag = stamp if start_bag is None else start_bag
            delay = (stamp - start_bag) * 1e-9 / max(rate, 1e-6) - (time.monotonic() - start_wall)
            if delay > 0:
                spin(delay)
            self._publisher(topic, ros_type).publish(raw)
            sent += 1
        return sent
