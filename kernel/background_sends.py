"""Calls to a broker made from one daemon thread per process, never from the thread that asks.

The thread that commits an event or a charger's report (in the gateway, the group commit's batch
thread answering chargers) must not wait on the Celery broker: down, a publish costs about 0.6 s of
kombu's connection retries. ``BackgroundSends.send`` queues the call and returns; the process's
sender thread (started at the first send after any fork) makes the queued calls in order. A call
queued under a key that is already waiting is not queued again: the waiting one stands for both
(wake-ups coalesce). A failed call is logged as one line; what it would have started, the beat's
periodic tasks start anyway.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable

logger = logging.getLogger(__name__)


class BackgroundSends:
    """Queue of broker calls made by a daemon thread named ``name`` (see the module)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a child has none of its parent's threads

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a call queued, or the sender idle again
        self._calls: dict[Hashable, tuple[Callable[[], object], str]] = {}
        self._sending = False
        self._thread: threading.Thread | None = None

    def send(self, key: Hashable, call: Callable[[], object], *, failed: str) -> None:
        """Make ``call()`` on the sender thread unless a call under ``key`` is waiting already;
        ``failed`` is logged (with the error) if it raises."""
        with self._lock:
            self._calls.setdefault(key, (call, failed))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def idle(self, timeout: float) -> bool:
        """Wait until no call is queued or being made (at most ``timeout`` s); whether it is so."""
        with self._lock:
            return self._changed.wait_for(lambda: not self._calls and not self._sending, timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._sending = False
                self._changed.notify_all()
                while not self._calls:
                    self._changed.wait()
                calls, self._calls = self._calls, {}
                self._sending = True
            for call, failed in calls.values():
                try:
                    call()
                except Exception as error:
                    logger.warning("%s: %s: %s", failed, type(error).__name__, error)


broker_sends = BackgroundSends("broker-sends")
