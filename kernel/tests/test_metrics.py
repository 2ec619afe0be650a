"""Answered CALLs are tallied per process and written to the shared metric files in one go
(kernel.metrics): a scrape sees exactly what ``observe`` per answer would have written."""

from __future__ import annotations

import asyncio
import glob
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from conftest import eventually
from kernel import metrics

ROOT = Path(__file__).resolve().parents[2]

# Seconds chosen on, between and beyond the handler buckets' bounds (0.001 ... 5.0).
SECONDS = [0.0005, 0.001, 0.003, 0.003, 0.2, 7.0]


def _samples(action: str, *, scraped: bool = True) -> dict[str, float]:
    """This test action's csms_ocpp_* samples in a scrape of this process (``scraped``), or as
    another process reads the metric files, keyed by name and ``le``."""
    if scraped:
        exposition = metrics.exposition()
        assert exposition is not None
        text = exposition[0]
    else:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=settings.CSMS_METRICS_DIR)
        text = generate_latest(registry)
    found = {}
    for line in text.decode().splitlines():
        match = re.fullmatch(r"(csms_ocpp_\w+)\{(.*)\} (\S+)", line)
        if match and f'action="{action}"' in match.group(2):
            le = re.search(r'le="([^"]*)"', match.group(2))
            found[match.group(1) + (f"[{le.group(1)}]" if le else "")] = float(match.group(3))
    return found


def _answered() -> str:
    """A new action's answers, one per SECONDS; returns the action (files of past runs add up)."""
    action = f"Test{uuid.uuid4().hex[:8]}"
    for seconds in SECONDS:
        metrics.ocpp_call_answered(ocpp_version="1.6", action=action, outcome="result", seconds=seconds)
    return action


EXPECTED = {
    "csms_ocpp_messages_total": 6.0,
    "csms_ocpp_handler_seconds_count": 6.0,
    "csms_ocpp_handler_seconds_sum": sum(SECONDS),
    "csms_ocpp_handler_seconds_bucket[0.001]": 2.0,
    "csms_ocpp_handler_seconds_bucket[0.0025]": 2.0,
    "csms_ocpp_handler_seconds_bucket[0.005]": 4.0,
    "csms_ocpp_handler_seconds_bucket[0.25]": 5.0,
    "csms_ocpp_handler_seconds_bucket[5.0]": 5.0,
    "csms_ocpp_handler_seconds_bucket[+Inf]": 6.0,
}


def _checked(samples: dict[str, float]) -> dict[str, float | None]:
    return {name: samples.get(name) for name in EXPECTED}


def test_answers_outside_an_event_loop_are_written_at_once():
    assert _checked(_samples(_answered(), scraped=False)) == EXPECTED


async def test_answers_in_an_event_loop_are_written_together_or_before_a_scrape():
    tallied = _answered()
    assert _checked(_samples(tallied, scraped=False))["csms_ocpp_messages_total"] is None  # not yet written
    assert _checked(_samples(tallied)) == EXPECTED  # a scrape of this process writes them first

    later = _answered()
    await eventually(lambda: _checked(_samples(later, scraped=False)) == EXPECTED)


def test_answers_are_still_written_after_an_event_loop_stopped_before_its_write():
    async def answered_then_stopped() -> str:
        return _answered()  # its write is scheduled in this loop, which stops before it runs

    async def answered_and_waited() -> str:
        action = _answered()
        await eventually(lambda: _checked(_samples(action, scraped=False)) == EXPECTED)
        return action

    first = asyncio.run(answered_then_stopped())
    asyncio.run(answered_and_waited())  # a write scheduled again, in the running loop
    assert _checked(_samples(first, scraped=False)) == EXPECTED


def _batch_samples() -> dict[str, float]:
    """The group commit's samples of this process as a scrape reads its metric files, keyed by name
    and ``le`` (another process writing to the same directory does not move them)."""
    files = glob.glob(os.path.join(settings.CSMS_METRICS_DIR, f"*_{os.getpid()}.db"))
    found = {}
    for family in multiprocess.MultiProcessCollector.merge(files, accumulate=True):
        for sample in family.samples:
            if sample.name.startswith("csms_group_commit_batch_"):
                found[sample.name + (f"[{sample.labels['le']}]" if "le" in sample.labels else "")] = sample.value
    return found


def test_a_group_commit_batch_is_counted_by_its_units_and_its_thread_s_cpu():
    metrics.answers_write()  # what an earlier test tallied
    before = _batch_samples()
    metrics.group_commit_batch(units=3, cpu_seconds=0.25)
    metrics.group_commit_batch(units=64, cpu_seconds=0.5)
    assert _batch_samples() == before  # tallied: written with the answers
    metrics.answers_write()
    after = _batch_samples()
    grew = {name: after[name] - before.get(name, 0.0) for name in after}
    assert grew["csms_group_commit_batch_units_count"] == 2
    assert grew["csms_group_commit_batch_units_sum"] == 67
    assert (grew["csms_group_commit_batch_units_bucket[2.0]"], grew["csms_group_commit_batch_units_bucket[4.0]"]) == (
        0,
        1,
    )
    assert grew["csms_group_commit_batch_units_bucket[64.0]"] == 2
    assert grew["csms_group_commit_batch_cpu_seconds_total"] == pytest.approx(0.75)


FIRST_RECORDS_AT_ONCE = """
import sys, threading, django
django.setup()
from kernel import metrics
sys.setswitchinterval(1e-6)  # hand the GIL over as often as possible: the threads interleave
start, failed = threading.Barrier(8), []
def record(i):
    start.wait()
    try:
        if i % 2:
            metrics.charger_connected(ocpp_version="1.6")
        else:
            metrics.group_commit_batch(units=1, cpu_seconds=0.001)
    except Exception as error:
        failed.append(repr(error))
threads = [threading.Thread(target=record, args=(i,)) for i in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(len(failed), failed[:1])
"""


def test_a_process_first_records_from_several_threads_at_once(tmp_path):
    """A worker's first connect (the event loop) and its first batch (a group-commit thread) may
    record at once: the metrics are built once, and neither recording raises (a second
    registration raised DuplicateTimeseries, which failed a charger's handshake with a 403)."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "csms.settings", "CSMS_VAR_DIR": str(tmp_path)}
    environment.pop("CSMS_METRICS_DIR", None)
    done = subprocess.run(  # a fresh process: its first use is the one raced
        [sys.executable, "-c", FIRST_RECORDS_AT_ONCE], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(maxsplit=1)[0] == "0", done.stdout  # on the old code 7 of the 8 raised


@pytest.mark.django_db(transaction=True)
async def test_a_group_commit_batch_is_written_by_the_event_loop_soon_after():
    from ocpp_gateway.group_commit import CommitGroup

    metrics.answers_write()
    before = _batch_samples().get("csms_group_commit_batch_units_count", 0.0)
    await CommitGroup(max_units=64).run(lambda: None)
    await eventually(lambda: _batch_samples().get("csms_group_commit_batch_units_count", 0.0) == before + 1)


def test_a_process_that_records_nothing_leaves_no_metric_files(tmp_path):
    """Every process that loads the application wrote a counter and a histogram file at exit (the
    unlabelled group-commit series, built to write an empty tally): each ``manage.py`` command run,
    the beat, ``make serve``'s supervisor added 128 KB to the host's metrics directory, read by
    every scrape, for ever."""
    directory = tmp_path / "metrics"
    environment = {**os.environ, "CSMS_VAR_DIR": str(tmp_path), "CSMS_METRICS_DIR": str(directory)}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in directory.iterdir()) == []


# A gateway worker that counts chargers and dies without closing them (a SIGKILL, the OOM killer).
CRASHED_WITH_CHARGERS = """
import os, django
django.setup()
from kernel import metrics
for _ in range(5):
    metrics.charger_connected(ocpp_version="1.6")
print(os.getpid(), flush=True)
os._exit(0)
"""
# A worker started again with the dead one's pid (in a container started again, pids repeat).
STARTED_WITH_ITS_PID = """
import os, sys, django
django.setup()
from django.conf import settings
directory = settings.CSMS_METRICS_DIR
os.rename(f"{directory}/gauge_liveall_{sys.argv[1]}.db", f"{directory}/gauge_liveall_{os.getpid()}.db")
from kernel import metrics
metrics.charger_connected(ocpp_version="1.6")
print(metrics.exposition()[0].decode())
"""


def test_a_worker_given_a_dead_worker_s_pid_counts_only_its_own_chargers(tmp_path):
    """docker-compose's gateway container started again (``restart: unless-stopped``, the same
    writable layer and metrics directory) forks its workers with the same pids as before: a worker
    read the dead one's live gauge file as its own and reported its chargers on top of its own, for
    as long as it lived (each scrape thought that process alive)."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "csms.settings", "CSMS_VAR_DIR": str(tmp_path)}
    environment["CSMS_METRICS_DIR"] = str(tmp_path / "metrics")
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHED_WITH_CHARGERS], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert crashed.returncode == 0, crashed.stderr
    again = subprocess.run(
        [sys.executable, "-c", STARTED_WITH_ITS_PID, crashed.stdout.strip()],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    [connected] = re.findall(r'^csms_chargers_connected\{ocpp_version="1.6",pid="\d+"\} (\S+)$', again.stdout, re.M)
    assert float(connected) == 1
