"""Liveness, readiness and metrics on real daphne processes."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from ocpp.v16 import call as call16

from chargepoints.models import ChargePoint
from commands.tests.conftest import V16Charger
from conftest import ahttp, eventually, free_port, http_request, ocpp_charger, raw_socket, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(server) -> str:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the one sample of ``name`` whose labels include ``labels``, or None."""
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)\{(.*)\} (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        if labels.items() <= found.items():
            return float(match.group(3))
    return None


def test_healthz_answers_without_touching_anything(daphne):
    assert http_request(f"{daphne.http_url}/healthz") == (200, {"status": "ok"})


def test_readyz_reports_each_dependency_reachable(daphne):
    status, body = http_request(f"{daphne.http_url}/readyz")
    assert status == 200, body
    assert body == {"status": "ready", "checks": {"database": "ok", "channel_layer": "ok", "broker": "ok"}}


def test_readyz_is_a_503_naming_what_is_unreachable(daphne_factory):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    server = daphne_factory(REDIS_URL=dead, CSMS_REDIS_POOL_TIMEOUT="1")
    status, body = http_request(f"{server.http_url}/readyz")
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["channel_layer"].startswith("unreachable: ")
    assert body["checks"]["broker"].startswith("unreachable: ")


def test_readyz_names_an_unreachable_database(daphne_factory):
    server = daphne_factory(DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/none", CSMS_DB_POOL_TIMEOUT="1")
    status, body = http_request(f"{server.http_url}/readyz")
    assert status == 503
    assert body["checks"]["database"].startswith("unreachable: ")
    assert body["checks"]["channel_layer"] == "ok"
    assert body["checks"]["broker"] == "ok"


def test_the_site_root_redirects_to_the_api_docs(daphne):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object) -> None:
            return None

    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.build_opener(NoRedirect).open(f"{daphne.http_url}/", timeout=10)
    assert answer.value.code == 302
    assert answer.value.headers["Location"] == "/api/v1/docs"


def test_metrics_are_a_404_when_disabled(daphne_factory):
    server = daphne_factory(CSMS_METRICS_ENABLED="0")
    assert http_request(f"{server.http_url}/metrics")[0] == 404


async def test_metrics_add_up_every_process_and_drop_a_dead_ones_chargers(daphne_factory, api_key, tmp_path):
    """Two gateway processes share one metrics directory, as processes behind one port do."""
    shared = {"CSMS_METRICS_DIR": str(tmp_path / "metrics"), "CSMS_OCPP_CALL_TIMEOUT": "5"}
    gateway, api = daphne_factory(**shared), daphne_factory(**shared)
    await ChargePoint.objects.acreate(charge_point_id="CP-M", heartbeat_interval=60)
    async with ocpp_charger(gateway, "1.6", "CP-M", client_class=V16Charger) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await charger.call(call16.Heartbeat())
        await charger.call(call16.Heartbeat())
        status, _ = await ahttp(
            f"{api.http_url}/api/v1/ocpp16/reset",
            method="POST",
            api_key=api_key,
            body={"charge_point_id": "CP-M", "type": "Soft"},
        )
        assert status == 200
        # The other process answers for both, once the gateway wrote what it tallied (kernel.metrics).
        text = await eventually(lambda: _answers_written(scrape(api)))

    assert sample(text, "csms_chargers_connected", ocpp_version="1.6", pid=str(gateway.process.pid)) == 1
    assert sample(text, "csms_ocpp_messages_total", ocpp_version="1.6", action="Heartbeat", outcome="result") == 2
    assert sample(text, "csms_ocpp_messages_total", action="BootNotification", outcome="result") == 1
    assert sample(text, "csms_ocpp_handler_seconds_count", ocpp_version="1.6", action="Heartbeat") == 2
    assert sample(text, "csms_command_round_trip_seconds_count", action="Reset", outcome="result") == 1
    assert (sample(text, "csms_group_commit_batch_units_bucket", le="+Inf") or 0) >= 1  # the boot's batch at least

    async with ocpp_charger(gateway, "1.6", "CP-M"):
        await eventually(lambda: sample(scrape(api), "csms_chargers_connected", pid=str(gateway.process.pid)) == 1)
        gateway.process.kill()
        gateway.process.wait()
    assert sample(scrape(api), "csms_chargers_connected", pid=str(gateway.process.pid)) is None
    stop_daphne(gateway)


def _answers_written(text: str) -> str | None:
    return text if sample(text, "csms_ocpp_messages_total", action="Heartbeat", outcome="result") == 2 else None


async def test_unknown_actions_are_counted_as_other(daphne_factory, tmp_path):
    server = daphne_factory(CSMS_METRICS_DIR=str(tmp_path / "metrics"))
    await ChargePoint.objects.acreate(charge_point_id="CP-X", heartbeat_interval=60)
    async with raw_socket(server, "1.6", "CP-X") as websocket:
        await websocket.send('[2,"u1","MadeUpAction",{}]')
        assert '"NotImplemented"' in await websocket.recv()
    text = scrape(server)
    assert sample(text, "csms_ocpp_messages_total", action="other", outcome="NotImplemented") == 1
    assert "MadeUpAction" not in text


async def test_calls_refused_before_they_are_read_are_counted_as_other(daphne_factory, tmp_path):
    """A CALL refused over the frame rate (GenericError), oversized or not JSON (FormatViolation) got its
    CALLERROR back and was counted nowhere: a charger flooding the CSMS moved no series."""
    server = daphne_factory(
        CSMS_METRICS_DIR=str(tmp_path / "metrics"), CSMS_MAX_FRAMES_PER_SECOND="1", CSMS_FRAME_BURST="3"
    )
    await ChargePoint.objects.acreate(charge_point_id="CP-R", heartbeat_interval=60)
    async with raw_socket(server, "1.6", "CP-R") as websocket:
        await websocket.send('[2,"big","DataTransfer",{"vendorId":"V","data":"' + "x" * 70000 + '"}]')
        assert '"FormationViolation"' in await websocket.recv()
        await websocket.send('[2,"bad","Heartbeat",{')
        assert '"FormationViolation"' in await websocket.recv()
        for number in range(4):  # sent without waiting: those queued behind the first are refused
            await websocket.send(f'[2,"h{number}","Heartbeat",{{}}]')
        answers = [await websocket.recv() for _ in range(4)]
    refused = sum('"GenericError"' in answer for answer in answers)
    assert refused >= 1, answers
    text = scrape(server)
    assert sample(text, "csms_ocpp_messages_total", action="other", outcome="FormatViolation") == 2
    assert sample(text, "csms_ocpp_messages_total", action="other", outcome="GenericError") == refused
    assert sample(text, "csms_ocpp_handler_seconds_count", action="other") == 2 + refused


def test_a_scrape_while_the_database_does_not_answer_keeps_every_other_series(daphne_factory, tmp_path):
    """The outbox's figures waited the pool's timeout (here a minute) while PostgreSQL was away: the
    scrape outlived Prometheus's own timeout (10 s, this one's too) and every series was lost."""
    server = daphne_factory(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/none",
        CSMS_DB_POOL_TIMEOUT="60",
        CSMS_METRICS_DIR=str(tmp_path / "metrics"),
    )
    text = scrape(server)
    assert re.search(r"^csms_group_commit_batch_units_count 0\.0$", text, re.M)
    assert "csms_webhook_deliveries_pending" not in text
    assert "webhook backlog not read, the database did not answer within 3 s" in server.log()


def test_webhook_backlog_is_scraped_from_the_outbox(daphne):
    text = scrape(daphne)
    assert re.search(r"^csms_webhook_deliveries_pending 0\.0$", text, re.M)
    assert re.search(r"^csms_webhook_deliveries_due 0\.0$", text, re.M)
    assert re.search(r"^csms_webhook_deliveries_failed 0\.0$", text, re.M)
    assert re.search(r"^csms_webhook_oldest_pending_seconds 0\.0$", text, re.M)
