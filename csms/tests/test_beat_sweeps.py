"""Beat sweeps do not pile up: a tick that finds its sweep still running returns at once, and a tick
not started by the time the next is due is dropped."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import beat, current_app
from celery.signals import before_task_publish
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.db import connection, connections, transaction

from chargepoints.models import ChargePoint
from conftest import LOCK_WAIT_SECONDS, _waits_for_a_lock
from kernel import single_flight
from maintenance import tasks as maintenance_tasks
from maintenance.models import Campaign
from maintenance.services import firmware
from webhooks.tasks import WakeUp

current_app.loader.import_default_modules()  # the apps' tasks (the worker's autodiscovery)

# Every beat entry but the webhook worker's wake-ups, which only wake its engine (one at most waits).
SWEEPS = {
    name: entry
    for name, entry in django_settings.CELERY_BEAT_SCHEDULE.items()
    if not isinstance(current_app.tasks[entry["task"]], WakeUp)
}


@pytest.fixture(autouse=True)
def files(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }


def _in_a_thread(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """``call()`` on a thread of its own (a worker's slot), on its own database connection; the
    outcome's ``pid`` is that connection's backend, ``result`` the call's."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                outcome["pid"] = cursor.fetchone()[0]
            outcome["result"] = call()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _until(condition: Any, message: str) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.01)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="two workers' sweeps on one PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_firmware_sweep_still_running_makes_the_next_tick_return_at_once():
    """A campaigns' sweep held up (here behind the campaign's row, as behind a wave's unanswered
    UpdateFirmware) had each later tick, every 30 s, start the same sweep beside it and wait there too,
    until they held every slot of the worker. The next tick returns at once while it runs; the tick
    after it has ended sweeps again."""
    ChargePoint.objects.create(charge_point_id="SF-1", heartbeat_interval=60, ocpp_version="1.6")
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(b"img", name="fw.bin"))
    campaign = firmware.campaign_create(name="c", firmware=image, concurrency=1, charge_point_ids=["SF-1"])

    with transaction.atomic():
        Campaign.objects.select_for_update().get(pk=campaign.pk)  # held, as by a slow wave
        first, first_outcome = _in_a_thread(maintenance_tasks.advance_firmware_campaigns)
        _until(lambda: "pid" in first_outcome and _waits_for_a_lock(first_outcome["pid"]), "the sweep never waited")

        second, second_outcome = _in_a_thread(maintenance_tasks.advance_firmware_campaigns)
        _until(
            lambda: not second.is_alive() or ("pid" in second_outcome and _waits_for_a_lock(second_outcome["pid"])),
            "the second tick neither returned nor waited",
        )
        assert not second.is_alive(), "the second tick waited behind the running sweep"
        assert second_outcome["result"] is None  # skipped
        assert first.is_alive()
    first.join(LOCK_WAIT_SECONDS)
    assert not first.is_alive() and first_outcome["result"] == 1

    assert Campaign.objects.get(pk=campaign.pk).finished_at  # its one charger not connected: failed
    assert maintenance_tasks.advance_firmware_campaigns() == 0  # the sweep ended: the next tick sweeps (none left)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_beat_sweep_returns_at_once_while_another_run_of_it_holds_its_lock(name, caplog):
    """Each sweep of the beat is guarded, by its task's name, on the lock a running one holds."""
    task = current_app.tasks[SWEEPS[name]["task"]]
    with single_flight.single_flight(task.name) as held:
        assert held
        caplog.set_level("INFO", logger="kernel.single_flight")
        assert task() is None
    assert f"{task.name}: the previous run is still running; this one is skipped" in caplog.text
    with single_flight.single_flight(task.name) as held:
        assert held  # released by the run that skipped, as by the one that held it


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the lock's connection in pg_stat_activity")
@pytest.mark.django_db(transaction=True)
def test_a_running_sweep_s_lock_is_found_by_its_task_s_whole_name():
    """A sweep that hangs holds its later ticks back; its lock's connection is found by name (to be
    ended with ``pg_terminate_backend``), each task's whole name, not cut at PostgreSQL's 63 bytes."""
    longest = max((entry["task"] for entry in SWEEPS.values()), key=len)
    with single_flight.single_flight(longest) as held, connection.cursor() as cursor:
        assert held
        cursor.execute("SELECT state FROM pg_stat_activity WHERE application_name = %s", [f"csms sweep {longest}"])
        assert cursor.fetchall() == [("idle in transaction",)]


@pytest.mark.django_db(transaction=True)
def test_a_lock_is_released_when_its_sweep_raises():
    with pytest.raises(RuntimeError), single_flight.single_flight("raises") as held:
        assert held
        raise RuntimeError("the sweep failed")
    with single_flight.single_flight("raises") as held:
        assert held


def test_the_file_lock_without_postgresql_is_one_holder_at_a_time(settings, tmp_path):
    """``make run`` (SQLite): a worker with two threads, or two processes on the host."""
    settings.VAR_DIR = tmp_path
    with (
        single_flight._file_lock("sweep") as first,
        single_flight._file_lock("sweep") as second,
        single_flight._file_lock("other") as other,
    ):
        assert (first, second, other) == (True, False, True)
    with single_flight._file_lock("sweep") as again:
        assert again


def test_each_beat_sweep_tick_expires_when_the_next_one_is_due():
    """With the worker down (or its slots busy) beat queued a tick of every sweep on every interval,
    and the worker back ran them all, one after the other: a day's offline sweeps, 2,880, and
    17,280 presence sweeps, while the sweeps due now waited behind them. A tick carries an expiry
    of its interval: one the worker gets to after the next tick was sent is dropped."""
    scheduler = beat.Scheduler(current_app, lazy=True)
    published: dict[str, Any] = {}

    def record(sender: str, headers: dict[str, Any], **_: Any) -> None:
        published[sender] = headers.get("expires")

    before_task_publish.connect(record)
    try:
        for name, entry in SWEEPS.items():
            before = datetime.now(UTC)
            scheduler.apply_async(beat.ScheduleEntry(name=name, app=current_app, **entry))
            after = datetime.now(UTC)
            expires = published.get(entry["task"])
            assert expires is not None, f"{name}: its ticks never expire"
            expires = datetime.fromisoformat(expires)
            interval = timedelta(seconds=entry["schedule"])
            assert before + interval <= expires <= after + interval, name
    finally:
        before_task_publish.disconnect(record)
        with current_app.connection_for_write() as broker:
            broker.default_channel.queue_purge("celery")
