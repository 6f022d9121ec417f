"""Counters behind /diagnostics: what came in, what was used, what was refused and why.

Thread-safe (ROS callbacks and the worker both count). The status is WARN while the most recent event is
an error, and back to OK as soon as a good frame is integrated after it; ``last_error`` stays visible with
its age so a past problem is not forgotten.
"""

from __future__ import annotations

import threading
import time


class Counters:
    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {"received": 0, "synchronised": 0, "integrated": 0, "rejected": 0,
                                        "time_jumps_back": 0, "time_jumps_forward": 0,
                                        "out_of_range_points": 0, "zero_point_frames": 0}
        self._last_error = ""
        self._error_time: float | None = None
        self._good_time: float | None = None

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n
            if name.startswith("received_"):
                self._counts["received"] += n

    def reject(self, reason: str, message: str) -> None:
        """One refused input: total, per-reason counter ``rejected_<reason>``, and the last error."""
        with self._lock:
            self._counts["rejected"] += 1
            key = f"rejected_{reason}"
            self._counts[key] = self._counts.get(key, 0) + 1
            self._set_error(message)

    def error(self, message: str) -> None:
        with self._lock:
            self._set_error(message)

    def _set_error(self, message: str) -> None:
        self._last_error = message
        self._error_time = self._clock()

    def good(self) -> None:
        with self._lock:
            self._good_time = self._clock()

    def failing(self) -> bool:
        with self._lock:
            return self._error_time is not None and (self._good_time is None or self._error_time > self._good_time)

    def last_error(self) -> tuple[str, float | None]:
        """(message, seconds since it happened) or ('', None)."""
        with self._lock:
            if self._error_time is None:
                return "", None
            return self._last_error, self._clock() - self._error_time

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
