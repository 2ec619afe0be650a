"""THROWAWAY probe (round 20 tail): where an answered CALL's time goes. On with TAIL_PROBE=<file>."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time
from typing import Any

PATH = os.environ.get("TAIL_PROBE", "")
ON = bool(PATH)
ONCE = os.environ.get("TAIL_ONCE", "0") == "1"
ASIDE = os.environ.get("TAIL_ASIDE", "1") == "1"
_lines: list[str] = []
_lock = threading.RLock()
_units: dict[Any, list[tuple[Any, ...]]] = {}
_started = False
_batch_no = 0


def _out(record: dict[str, Any]) -> None:
    with _lock:
        _lines.append(json.dumps(record))


def _flusher() -> None:
    while True:
        time.sleep(1)
        with _lock:
            lines, _lines[:] = list(_lines), []
        if lines:
            with open(PATH, "a") as f:
                f.write("\n".join(lines) + "\n")


_gc_at: dict[int, tuple[float, float]] = {}


def _gc(phase: str, info: dict[str, Any]) -> None:
    ident = threading.get_ident()
    if phase == "start":
        _gc_at[ident] = (time.perf_counter(), time.thread_time())
    else:
        t0, c0 = _gc_at.get(ident, (0.0, 0.0))
        now, cpu = time.perf_counter(), time.thread_time()
        _out({"k": "gc", "t0": t0, "t": now, "gen": info["generation"], "cpu_ms": (cpu - c0) * 1000,
              "n": info["collected"], "thread": threading.current_thread().name})


def start(loop: asyncio.AbstractEventLoop) -> None:
    global _started
    if _started:
        return
    _started = True
    _out({"k": "clock", "wall": time.time(), "t": time.perf_counter(), "pid": os.getpid()})
    threading.Thread(target=_flusher, daemon=True).start()
    gc.callbacks.append(_gc)

    def tick(due: float) -> None:
        now = time.perf_counter()
        late = now - due
        if late > 0.001:
            _out({"k": "lag", "t": now, "ms": late * 1000})
        loop.call_later(0.002, tick, now + 0.002)

    loop.call_later(0.002, tick, time.perf_counter() + 0.002)


def batch_no() -> int:
    global _batch_no
    _batch_no += 1
    return _batch_no


def unit_done(record: tuple[Any, ...]) -> None:
    task = asyncio.current_task()
    _units.setdefault(task, []).append(record)


def answered(action: str, received: float) -> None:
    now = time.perf_counter()
    units = _units.pop(asyncio.current_task(), [])
    _out({"k": "ans", "a": action, "r": received, "t": now, "u": units})


def batch(record: dict[str, Any]) -> None:
    _out({"k": "batch", **record})
