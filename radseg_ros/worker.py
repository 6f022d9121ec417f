"""The node's frame hand-off: :class:`radseg_core.latest_slot.LatestSlotWorker` (ROS-free, shared)."""

from radseg_core.latest_slot import LatestSlotWorker

__all__ = ["LatestSlotWorker"]
