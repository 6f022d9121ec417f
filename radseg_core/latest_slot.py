"""A one-slot "latest frame wins" hand-off to a single worker thread.

Inference can be slower than the camera. Queuing frames would grow memory and latency without bound,
so the callback side overwrites a single slot and the worker always takes the newest frame; every
overwritten frame is counted as dropped. The node's frame worker and the browser view's logger use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlotWorker(Generic[T]):
    """Runs ``process(item)`` on a daemon thread for the most recent item offered.

    With ``idle_period`` the thread also calls ``on_idle()`` after each item and whenever that many
    seconds pass without one (periodic work that must go on when no items come, e.g. after the last).
    """

    def __init__(self, process: Callable[[T], None], on_error: Callable[[BaseException], None], *,
                 idle_period: float | None = None, on_idle: Callable[[], None] | None = None,
                 name: str = "radseg-worker") -> None:
        if (idle_period is None) != (on_idle is None):
            raise ValueError("idle_period and on_idle go together")
        self._process = process
        self._on_error = on_error
        self._idle_period = idle_period
        self._on_idle = on_idle
        self._item: T | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self.offered = 0
        self.dropped = 0
        self.processed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def offer(self, item: T) -> None:
        with self._cond:
            self.offered += 1
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return self._item is None and not self._busy

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._item is None and not self._stop:
                    self._cond.wait(self._idle_period)
                    if self._item is None and not self._stop:  # no item within idle_period (or spurious)
                        if self._on_idle is None:
                            continue
                        self._busy = True
                if self._stop:
                    return
                item, self._item = self._item, None
                self._busy = True
            try:
                if item is not None:
                    self._process(item)
                    self.processed += 1
                if self._on_idle is not None:
                    self._on_idle()
            except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad frame
                self._on_error(exc)
            finally:
                with self._cond:
                    self._busy = False

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)
