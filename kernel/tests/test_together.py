"""``each_at_once``: calls made together on threads, within a quarter of the pool, or in turn."""

from __future__ import annotations

import threading

from kernel.together import each_at_once


def _threads_used(count: int) -> list[str]:
    return each_at_once(lambda _: threading.current_thread().name, list(range(count)), name="together-test")


def test_calls_run_on_threads_within_a_quarter_of_the_pool(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/9"
    names = _threads_used(12)
    assert all(name.startswith("together-test") for name in names)
    pool_max = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
    assert len(set(names)) <= max(1, pool_max // 4)  # the gateway's lanes answer chargers from the same pool


def test_without_redis_the_calls_run_in_turn_in_the_callers_thread(settings):
    """The in-memory channel layer's queues belong to the gateway's event loop: a plain thread's call
    (asgiref's loop of its own) could not wake it, so a site's profiles timed out (review, round 43)."""
    settings.REDIS_URL = ""
    assert set(_threads_used(3)) == {threading.current_thread().name}
