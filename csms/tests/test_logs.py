"""Logs an operator can read, from real daphne processes: why a handshake was refused, a
charger's refusal is no server error, expected 403s carry no traceback, identifiers cannot forge
lines, and CSMS_LOG_FORMAT=json gives one structured line per record with the charger's context."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import time
import urllib.error
import urllib.request

import psycopg
import pytest
import redis
from celery.app import trace
from django.contrib.auth.models import User
from django.db import InterfaceError, OperationalError
from django.test import Client
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call_result as result16
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from chargepoints.models import ChargePoint, ChargerModelProfile, LifecycleState, Strictness
from chargepoints.services import charge_point_register
from commands.tests.conftest import answering_charger
from conftest import ahttp, eventually, ocpp_charger, raw_socket
from kernel.log_format import QuietFrequentTicks

pytestmark = pytest.mark.django_db(transaction=True)


async def refused(server, path: str, subprotocols: list[str], headers: dict[str, str] | None = None) -> None:
    with pytest.raises(InvalidStatus):
        async with connect(
            f"ws://127.0.0.1:{server.port}{path}",
            subprotocols=[Subprotocol(name) for name in subprotocols],
            additional_headers=headers or {},
        ):
            pass


async def closed_at_once(server, path: str, subprotocols: list[str]) -> None:
    """A handshake not offering the path's subprotocol completes without one and is closed (OCPP-J §3.1.2)."""
    async with connect(
        f"ws://127.0.0.1:{server.port}{path}", subprotocols=[Subprotocol(name) for name in subprotocols]
    ) as websocket:
        assert websocket.subprotocol is None
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(websocket.recv(), timeout=5)


def log_lines(server, needle: str) -> list[str]:
    return [line for line in server.log().splitlines() if needle in line]


async def test_a_refused_handshake_says_why(daphne):
    await asyncio.to_thread(
        charge_point_register,
        charge_point_id="LOG-OLD",
        heartbeat_interval=60,
        lifecycle_state=LifecycleState.DECOMMISSIONED,
    )
    await asyncio.to_thread(
        charge_point_register, charge_point_id="LOG-PW", heartbeat_interval=60, password="correct-horse"
    )
    await refused(daphne, "/ocpp/1.6/LOG-NOBODY", ["ocpp1.6"])
    await refused(daphne, "/ocpp/1.6/LOG-OLD", ["ocpp1.6"])
    await refused(daphne, "/ocpp/1.6/LOG-PW", ["ocpp1.6"])
    await refused(daphne, "/ocpp/1.6/LOG-PW", ["ocpp1.6"], {"Authorization": "Basic TE9HLVBXOndyb25n"})  # LOG-PW:wrong
    await closed_at_once(daphne, "/ocpp/2.0.1/LOG-PW", ["ocpp1.6"])

    async def logged() -> bool:
        return len(log_lines(daphne, ": refused, ")) >= 5 and bool(log_lines(daphne, "LOG-PW: refused, subprotocol"))

    await eventually(logged)
    assert log_lines(daphne, "LOG-NOBODY: refused, unknown")
    assert log_lines(daphne, "LOG-OLD: refused, decommissioned")
    assert log_lines(daphne, "LOG-PW: refused, no password presented")
    assert log_lines(daphne, "LOG-PW: refused, wrong password")
    assert log_lines(daphne, "LOG-PW: refused, subprotocol ocpp2.0.1 not offered (offered: ocpp1.6)")


async def test_an_identifier_in_the_url_cannot_forge_a_log_line(daphne):
    await refused(daphne, "/ocpp/1.6/LOG%0A2026-01-01%2000:00:00,000%20CRITICAL%20forged", ["ocpp1.6"])
    await eventually(lambda: log_lines(daphne, "LOG\\n2026-01-01 00:00:00,000 CRITICAL forged: refused, no OCPP route"))
    assert not [line for line in daphne.log().splitlines() if line.startswith("2026-01-01 00:00:00,000 CRITICAL")]


RefusingCharger = answering_charger(V16Client, {"Reset": result16.Reset(status="Rejected")})


async def test_a_chargers_refusal_or_error_is_no_server_error(daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="LOG-REFUSER", heartbeat_interval=60)
    async with ocpp_charger(daphne, "1.6", "LOG-REFUSER", client_class=RefusingCharger):
        reset = await ahttp(
            f"{daphne.http_url}/api/v1/ocpp16/LOG-REFUSER/reset", method="POST", api_key=api_key, body={"type": "Soft"}
        )
        unlock = await ahttp(
            f"{daphne.http_url}/api/v1/ocpp16/LOG-REFUSER/unlock_connector",
            method="POST",
            api_key=api_key,
            body={"connector_id": 1},
        )
    assert (reset[0], unlock[0]) == (409, 501)
    await eventually(lambda: len(log_lines(daphne, "LOG-REFUSER: ")) >= 2)
    assert log_lines(daphne, "INFO commands.views: LOG-REFUSER: Reset answered Rejected")
    assert log_lines(daphne, "INFO commands.views: LOG-REFUSER: UnlockConnector answered NotImplemented")
    assert not [line for line in log_lines(daphne, "django.request") if "LOG-REFUSER" in line]


def test_an_expected_403_is_logged_without_a_traceback(daphne, settings):
    settings.SECRET_KEY = "tests-only-secret-key"  # the daphne process's, which checks the session
    user = User.objects.create_user("no-permissions", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    request = urllib.request.Request(f"{daphne.http_url}/admin/chargepoints/chargepoint/add/")
    request.add_header("Cookie", f"sessionid={client.cookies['sessionid'].value}")
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 403
    lines = daphne.log().splitlines()
    forbidden = [n for n, line in enumerate(lines) if "Forbidden (Permission denied): /admin/chargepoints/" in line]
    assert forbidden
    assert not lines[forbidden[-1] + 1 :] or not lines[forbidden[-1] + 1].startswith("Traceback")


async def test_json_logs_carry_the_charger_action_and_unique_id(daphne_factory):
    server = daphne_factory(CSMS_LOG_FORMAT="json")
    await ChargerModelProfile.objects.acreate(vendor="acme", model="loose", strictness=Strictness.LENIENT)
    await ChargePoint.objects.acreate(charge_point_id="LOG-JSON", heartbeat_interval=60)
    async with raw_socket(server, "1.6", "LOG-JSON") as websocket:
        boot = {"chargePointVendor": "Acme", "chargePointModel": "Loose", "chargePointSerialNumber": "S" * 60}
        await websocket.send(json.dumps([2, "boot-1", "BootNotification", boot]))
        await websocket.recv()
        await websocket.send(json.dumps([3, "late-1", {}]))
    # The server (alive for the whole session) writes the closed connection's rows and presence
    # in one batch: wait for it, or the test database's flush at teardown races with it.
    offline = ChargePoint.objects.filter(charge_point_id="LOG-JSON", connected=False)
    await eventually(offline.aexists, timeout=15)
    await refused(server, "/ocpp/1.6/LOG%0AJSON", ["ocpp1.6"])

    def records() -> list[dict]:
        return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]

    await eventually(
        lambda: (
            any(r.get("unique_id") == "late-1" for r in records())
            and any("refused, no OCPP route" in r["message"] for r in records())
        )
    )
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), [line for line in lines if not line.startswith("{")]
    by_message = {r["message"]: r for r in records()}
    lenient = next(r for m, r in by_message.items() if "with 1 schema violations" in m)
    assert (lenient["charge_point_id"], lenient["action"], lenient["unique_id"]) == (
        "LOG-JSON",
        "BootNotification",
        "boot-1",
    )
    late = next(r for r in records() if r.get("unique_id") == "late-1")
    assert (late["level"], late["logger"], late["charge_point_id"]) == ("WARNING", "ocpp_gateway.router", "LOG-JSON")
    forged = next(r for r in records() if "refused, no OCPP route" in r["message"])
    assert forged["message"].startswith("/ocpp/1.6/LOG\nJSON: refused")
    assert {"time", "level", "logger", "message"} <= set(late)
    assert any(r["logger"].startswith("daphne") for r in records())


async def test_celery_logs_in_the_same_format(celery_worker, tmp_path):
    """Celery leaves the root logger to Django's configuration: its records are JSON lines too."""
    worker = celery_worker(CSMS_LOG_FORMAT="json")
    log = tmp_path / "celery-0.log"

    def records() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]

    await eventually(lambda: any(r["logger"].startswith("celery.worker") for r in records()), timeout=30)
    assert worker.poll() is None
    assert not [line for line in log.read_text().splitlines() if "INFO/MainProcess]" in line]


def celery_line(
    name: str, message: str, args: tuple[object, ...] | dict[str, object], level: int = logging.INFO
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 0, message, args, None)


def test_the_beat_s_frequent_ticks_are_logged_once_and_every_other_task_each_time():
    quiet = QuietFrequentTicks()
    webhooks, prune = "webhooks.tasks.deliver_due_webhooks", "chargepoints.tasks.prune_heartbeats"
    due = [
        celery_line("celery.beat", "Scheduler: Sending due task %s (%s)", ("deliver-due-webhooks", webhooks))
        for _ in range(3)
    ]
    received = [
        celery_line("celery.worker.strategy", trace.LOG_RECEIVED, {"name": webhooks, "id": "1"}) for _ in range(3)
    ]
    succeeded = [
        celery_line(
            "celery.app.trace", trace.LOG_SUCCESS, {"name": webhooks, "id": "1", "runtime": 0.1, "return_value": None}
        )
        for _ in range(3)
    ]
    assert [quiet.filter(record) for record in due + received + succeeded] == [True, False, False] * 3
    failed = celery_line(
        "celery.app.trace",
        trace.LOG_FAILURE,
        {"name": webhooks, "id": "2", "description": "raised", "exc": "Boom"},
        level=logging.ERROR,
    )
    assert quiet.filter(failed)
    hourly = celery_line("celery.beat", "Scheduler: Sending due task %s (%s)", ("prune-heartbeats", prune))
    assert [quiet.filter(hourly) for _ in range(3)] == [True] * 3


def test_the_frequent_ticks_a_worker_back_from_an_outage_drops_as_expired_are_logged_once():
    """Each tick queued while the worker was down expired waiting; the presence sweep's, every 5 s,
    made a "Discarding revoked task" line each (720 for an hour away)."""
    quiet = QuietFrequentTicks()
    presence, prune = "ocpp_gateway.tasks.release_dead_gateway_presence", "chargepoints.tasks.prune_heartbeats"
    discarded = [
        celery_line("celery.worker.request", "Discarding revoked task: %s[%s]", (presence, str(n))) for n in range(3)
    ]
    assert [quiet.filter(record) for record in discarded] == [True, False, False]
    hourly = celery_line("celery.worker.request", "Discarding revoked task: %s[%s]", (prune, "1"))
    assert [quiet.filter(hourly) for _ in range(2)] == [True] * 2


def test_a_celery_beat_logs_its_per_second_webhook_wake_up_once(celery_worker, tmp_path):
    celery_worker()
    log = tmp_path / "celery-0.log"
    due = "Sending due task deliver-due-webhooks"
    deadline = time.monotonic() + 60
    while due not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(4)  # four more wake-ups are sent meanwhile (CSMS_WEBHOOK_SWEEP_INTERVAL is 1 s)
    other_tick = "Sending due task release-dead-gateway-presence"  # every 5 s: may come later under load
    while other_tick not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.2)
    text = log.read_text(errors="replace")
    assert text.count(due) == 1, text
    assert text.count("Task webhooks.tasks.deliver_due_webhooks[") <= 2  # received, succeeded: once each
    assert other_tick in text  # the other ticks are still shown


def _logged(error: BaseException) -> str:
    """What the console handler writes for ``logger.exception("could not store rows")`` raising ``error``."""
    handler = logging.getLogger().handlers[0]
    try:
        raise error
    except BaseException:
        record = logging.getLogger("ocpp_gateway.buffers").makeRecord(
            "ocpp_gateway.buffers", logging.ERROR, __file__, 0, "could not store %d rows", (3,), sys.exc_info()
        )
    assert handler.filter(record)
    return handler.format(record)


def test_an_outage_is_logged_in_one_line_and_a_bug_with_its_traceback():
    """PostgreSQL or Redis away: each charger, task and loop that meets it logs it, and each
    traceback was some 40 lines (a storm under a fleet); the error's one line says what happened."""
    for outage in (
        OperationalError("couldn't get a connection after 10.00 sec"),
        InterfaceError("connection already closed"),
        redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    ):
        line = _logged(outage)
        assert "Traceback" not in line and line.count("\n") == 0, line
        assert line.endswith(f"could not store 3 rows: {type(outage).__name__}: {outage}")
    assert "Traceback" in _logged(ValueError("a bug"))
    deadlock = OperationalError("deadlock detected")  # as Django wraps psycopg's: a locking-order bug
    deadlock.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
    assert "Traceback" in _logged(deadlock)
    terminated = OperationalError("terminating connection due to administrator command")
    terminated.__cause__ = psycopg.errors.AdminShutdown("terminating connection")
    assert "Traceback" not in _logged(terminated)


async def test_a_handshake_refused_for_credentials_it_could_not_use_says_what_it_presented(daphne):
    """A charger presenting HTTP Basic credentials for another user (its id in another case, a
    serial number) or another scheme was logged "no password presented", as if it sent none: the
    line now says what came instead, never the credentials."""
    await asyncio.to_thread(
        charge_point_register, charge_point_id="LOG-USER", heartbeat_interval=60, password="correct-horse-battery"
    )
    other_user = base64.b64encode(b"log-user:correct-horse-battery").decode()
    await refused(daphne, "/ocpp/1.6/LOG-USER", ["ocpp1.6"], {"Authorization": f"Basic {other_user}"})
    await refused(daphne, "/ocpp/1.6/LOG-USER", ["ocpp1.6"], {"Authorization": "Bearer correct-horse-battery"})
    await refused(daphne, "/ocpp/1.6/LOG-USER", ["ocpp1.6"], {"Authorization": "Basic not*base64"})
    await eventually(lambda: len(log_lines(daphne, "LOG-USER: refused, ")) >= 3)
    said = "LOG-USER: refused, no password presented (presented "
    assert log_lines(daphne, said + "HTTP Basic credentials whose user is not the charge point id)")
    assert log_lines(daphne, said + "the Authorization header is not HTTP Basic)")
    assert log_lines(daphne, said + "HTTP Basic credentials that are not base64 of UTF-8 text)")
    assert not log_lines(daphne, "correct-horse")


def test_an_error_raised_from_an_outage_is_logged_in_one_line_naming_the_outage():
    """The write-behind buffers raise their own error from a lock wait timed out (an admin's long
    transaction on a charger's row, a migration's lock): it was logged with three chained tracebacks
    (some 50 lines) per refused row, while the same lock timeout met directly is one line."""
    lock_timeout = OperationalError("canceling statement due to lock timeout")
    lock_timeout.__cause__ = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
    try:
        raise lock_timeout
    except OperationalError as error:
        refused = RuntimeError("1")
        refused.__cause__ = error
    line = _logged(refused)
    assert "Traceback" not in line and line.count("\n") == 0, line
    assert line.endswith("could not store 3 rows: OperationalError: canceling statement due to lock timeout")
    bug = RuntimeError("a bug")
    bug.__cause__ = ValueError("not an outage")
    assert "Traceback" in _logged(bug)


def test_a_wrong_host_is_one_warning_line_without_a_traceback(daphne):
    """A scanner naming another host (DisallowedHost, 400) was logged at ERROR with a traceback by
    django.security.DisallowedHost: an operator's alert for every scan."""
    request = urllib.request.Request(f"{daphne.http_url}/api/v1/chargepoints", headers={"Host": "scanner.example"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 400
    lines = daphne.log().splitlines()
    disallowed = [n for n, line in enumerate(lines) if "Invalid HTTP_HOST header: 'scanner.example'" in line]
    assert disallowed
    assert " WARNING django.security.DisallowedHost: " in lines[disallowed[-1]], lines[disallowed[-1]]
    assert not lines[disallowed[-1] + 1 :] or not lines[disallowed[-1] + 1].startswith("Traceback")
