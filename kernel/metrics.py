"""Prometheus metrics, shared by every process of one host (prometheus-client multiprocess mode).

Each process (daphne, Celery) writes its samples to memory-mapped files in ``CSMS_METRICS_DIR``;
a scrape of ``/metrics`` on any process adds them all up, so it does not matter which of several
gateway processes behind one port answers. Charger gauges keep one series per process (label
``pid``); a dead process's series are dropped at the next scrape. Figures read from the database at
scrape time come from the collectors ``/metrics`` passes in (webhooks.metrics).

Recording is a few microseconds and never touches the database; answered CALLs and group-commit
batches are tallied per process and written every half second (``ocpp_call_answered``,
``group_commit_batch``). With ``CSMS_METRICS_ENABLED=0``
every recording function returns at once and ``/metrics`` is a 404.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import functools
import glob
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

# Handler latency buckets, seconds: an OCPP handler takes milliseconds; a command waits for the charger.
_HANDLER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Units per group-commit batch (at most CSMS_GROUP_COMMIT_MAX_UNITS).
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_COMMAND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


@dataclass(frozen=True)
class _Metrics:
    chargers_connected: Any
    ocpp_messages: Any
    ocpp_handler_seconds: Any
    command_seconds: Any
    batch_units: Any
    batch_cpu_seconds: Any


_built_lock = threading.Lock()


@functools.cache
def _metrics() -> _Metrics | None:
    """The process's metric objects, built at first use; None when metrics are off.

    Built once under a lock: the event loop and a batch thread may ask first at the same moment,
    and a second build registers the same names again (prometheus-client's ``ValueError:
    Duplicated timeseries``, a charger's handshake failed with it)."""
    with _built_lock:
        return _metrics_built()


@functools.cache
def _metrics_built() -> _Metrics | None:
    """``_metrics``' objects, made by the first caller.

    prometheus-client picks multiprocess mode from PROMETHEUS_MULTIPROC_DIR when it is first
    imported, so settings set that variable and the import waits until here.
    """
    if not settings.CSMS_METRICS_ENABLED:
        return None
    from prometheus_client import Counter, Gauge, Histogram, multiprocess

    # A live gauge file of this pid is a dead process's (pids repeat: a container started again forks
    # its workers with the same ones), which the gauge would go on from as if its chargers were ours.
    multiprocess.mark_process_dead(os.getpid(), settings.CSMS_METRICS_DIR)
    return _Metrics(
        chargers_connected=Gauge(
            "csms_chargers_connected",
            "Chargers with an open WebSocket, per OCPP version and gateway process (pid).",
            ["ocpp_version"],
            multiprocess_mode="liveall",
        ),
        ocpp_messages=Counter(
            "csms_ocpp_messages",
            "CALLs from chargers, by action and outcome: result, or the CALLERROR code sent back"
            " (2.0.1 spelling). Actions this version does not know are counted as other.",
            ["ocpp_version", "action", "outcome"],
        ),
        ocpp_handler_seconds=Histogram(
            "csms_ocpp_handler_seconds",
            "Time from receiving a charger's CALL to sending its answer, seconds.",
            ["ocpp_version", "action"],
            buckets=_HANDLER_BUCKETS,
        ),
        command_seconds=Histogram(
            "csms_command_round_trip_seconds",
            "Commands sent to chargers (API, admin): time to the charger's answer, by outcome"
            " (result, call_error, timeout, not_connected), seconds.",
            ["action", "outcome"],
            buckets=_COMMAND_BUCKETS,
        ),
        batch_units=Histogram(
            "csms_group_commit_batch_units",
            "Units of work (a message's writes, a write-behind flush) per group-commit batch, one"
            " transaction each: few mean each pays the batch's fixed statements alone.",
            buckets=_BATCH_BUCKETS,
        ),
        batch_cpu_seconds=Counter(
            "csms_group_commit_batch_cpu_seconds",
            "CPU seconds of the group commit's batch threads (one a lane) writing its batches (theirs, not the"
            " process's).",
        ),
    )


def charger_connected(*, ocpp_version: str) -> None:
    if metrics := _metrics():
        metrics.chargers_connected.labels(ocpp_version).inc()


def charger_disconnected(*, ocpp_version: str) -> None:
    if metrics := _metrics():
        metrics.chargers_connected.labels(ocpp_version).dec()


@dataclass
class _Tally:
    """Answers of one kind counted in this process and not yet written: how many, their seconds
    summed, and how many fell in each bucket (``_HANDLER_BUCKETS``, then +Inf)."""

    count: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(_HANDLER_BUCKETS) + 1))


# Every write to a multiprocess value takes a lock, checks the pid and packs into the file: three
# per answered CALL were ~4 us, a fifth of the router's time per frame. Answers are tallied here
# and written at most every _WRITE_EVERY s (at once outside an event loop, and before a scrape of
# this process): another process's scrape sees them that much later, a killed process loses the last.
_WRITE_EVERY = 0.5
_tallies: dict[tuple[str, str, str], _Tally] = {}
_tallies_lock = threading.Lock()
_write_scheduled: asyncio.AbstractEventLoop | None = None  # the loop in which the next write is due


def ocpp_call_answered(*, ocpp_version: str, action: str, outcome: str, seconds: float) -> None:
    """A charger's CALL was answered; ``action`` must be a known one (label cardinality)."""
    if _metrics() is None:
        return
    with _tallies_lock:
        tally = _tallies.get((ocpp_version, action, outcome))
        if tally is None:
            tally = _tallies[(ocpp_version, action, outcome)] = _Tally()
        tally.count += 1
        tally.seconds += seconds
        tally.buckets[bisect.bisect_left(_HANDLER_BUCKETS, seconds)] += 1
    _write_soon()


def _write_soon() -> None:
    global _write_scheduled
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        answers_write()
        return
    if _write_scheduled is loop:
        return  # due soon in this loop (one due in a loop that has stopped since is scheduled again here)
    _write_scheduled = loop
    loop.call_later(_WRITE_EVERY, answers_write)


def answers_write() -> None:
    """Write the answers and group-commit batches tallied in this process to its metric files
    (what ``observe`` does, once per kind of answer: the histogram's sum and buckets, which
    prometheus-client 0.26 keeps as ``_sum`` and ``_buckets``)."""
    global _tallies, _write_scheduled, _batches
    with _tallies_lock:
        tallies, _tallies, _write_scheduled = _tallies, {}, None
        batches, _batches = _batches, _BatchTally()
    for key, tally in tallies.items():
        series = _answered_series(*key)
        if series is None:
            continue
        counted, timed = series
        counted.inc(tally.count)
        timed._sum.inc(tally.seconds)
        for bucket, count in enumerate(tally.buckets):
            if count:
                timed._buckets[bucket].inc(count)
    _batches_written(batches)


def _batches_written(batches: _BatchTally) -> None:
    if not any(batches.buckets):  # before ``_metrics``: a process that recorded nothing makes no files
        return
    metrics = _metrics()
    if metrics is None:
        return
    metrics.batch_units._sum.inc(batches.units)
    for bucket, count in enumerate(batches.buckets):
        if count:
            metrics.batch_units._buckets[bucket].inc(count)
    metrics.batch_cpu_seconds.inc(batches.cpu_seconds)


# A process that stops (SIGTERM, the end of a command) keeps its last answers; one that recorded
# nothing (a manage.py command, the beat, make serve's supervisor) leaves no files behind: the
# directory would gain a counter and a histogram file (64 KB each) per command run, read by every
# scrape, for ever.
atexit.register(answers_write)


@functools.cache
def _answered_series(ocpp_version: str, action: str, outcome: str) -> tuple[Any, Any] | None:
    """The labelled counter and histogram of one kind of answer, looked up once (every answered CALL
    records both: ``labels()`` validates and locks at each call); None when metrics are off."""
    if metrics := _metrics():
        return metrics.ocpp_messages.labels(ocpp_version, action, outcome), metrics.ocpp_handler_seconds.labels(
            ocpp_version, action
        )
    return None


def command_round_trip(*, action: str, outcome: str, seconds: float) -> None:
    if metrics := _metrics():
        metrics.command_seconds.labels(action, outcome).observe(seconds)


@dataclass
class _BatchTally:
    """Group-commit batches counted in this process and not yet written: their units summed, how
    many fell in each bucket (``_BATCH_BUCKETS``, then +Inf), and their threads' CPU seconds."""

    units: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(_BATCH_BUCKETS) + 1))
    cpu_seconds: float = 0.0


_batches = _BatchTally()


def group_commit_batch(*, units: int, cpu_seconds: float) -> None:
    """A group-commit batch of ``units`` was written (committed or not), in ``cpu_seconds`` of its
    thread. Tallied, and written with the answers (``answers_write``: by the event loop within
    ``_WRITE_EVERY`` of the next answer or batch it hands back (``batches_write_soon``), before a
    scrape of this process, at exit): two writes to the metric files were about 25 µs of the batch
    thread's CPU a batch, a twelfth of a one-statement batch's (issue 15)."""
    if _metrics() is None:
        return
    with _tallies_lock:
        _batches.units += units
        _batches.buckets[bisect.bisect_left(_BATCH_BUCKETS, units)] += 1
        _batches.cpu_seconds += cpu_seconds


def batches_write_soon() -> None:
    """Called by the event loop after a batch: the batches tallied are written within ``_WRITE_EVERY``."""
    if _metrics() is not None:
        _write_soon()


def _forget_dead_processes(directory: str) -> None:
    """Drop the live-gauge files of processes that are gone (a crash leaves them behind)."""
    from prometheus_client import multiprocess

    for path in glob.glob(os.path.join(directory, "gauge_live*.db")):
        match = _LIVE_GAUGE_FILE.search(path)
        if match and not _process_alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), directory)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exposition(*collectors: Any) -> tuple[bytes, str] | None:
    """The text of a scrape, with what ``collectors`` read at scrape time, and its content type;
    None when metrics are off."""
    if _metrics() is None:
        return None
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    answers_write()
    _forget_dead_processes(settings.CSMS_METRICS_DIR)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=settings.CSMS_METRICS_DIR)
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
