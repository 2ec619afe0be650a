"""An Idempotency-Key replays the same request and refuses another one (422, docs/architecture.md)."""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from ocpp.v16 import call as call16
from rest_framework.test import APIClient

from chargepoints.models import ChargePoint
from charging.models import IdTag
from commands.models import Command
from commands.rpc import ANSWER_UNPROCESSED, NOT_SENT_IN_TIME, CallOutcome, Outcome
from commands.services import request_fingerprint
from commands.tests.conftest import V16Charger
from conftest import eventually, ocpp_charger, raw_socket
from kernel.api_keys import api_key_create
from ocpp_gateway.rpc import ACK_DELAY


def post(url: str, body: dict, *, api_key: str, key: str) -> tuple[int, dict, str]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}", "Idempotency-Key": key},
    )
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            return response.status, json.loads(response.read()), response.headers["X-Command-Id"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers.get("X-Command-Id", "")


@pytest.mark.django_db(transaction=True)
async def test_a_key_used_for_a_remote_start_on_a_refuses_a_hard_reset_of_b(daphne, api_key):
    for charge_point_id in ("CP-A", "CP-B"):
        await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="RFID-1")  # a remote start for an unknown tag would carry a warning
    start = {"connector_id": 1, "id_tag": "RFID-1"}
    async with (
        ocpp_charger(daphne, "1.6", "CP-A", client_class=V16Charger) as charger_a,
        ocpp_charger(daphne, "1.6", "CP-B", client_class=V16Charger) as charger_b,
    ):
        api = f"{daphne.http_url}/api/v1/ocpp16"
        status, first, first_id = await asyncio.to_thread(
            post, f"{api}/CP-A/remote_start_transaction", start, api_key=api_key, key="order-4711"
        )
        assert (status, first) == (200, {"status": "Accepted", "transaction_id": None})

        status, reset, _ = await asyncio.to_thread(
            post, f"{api}/CP-B/reset", {"type": "Hard"}, api_key=api_key, key="order-4711"
        )
        assert status == 422
        assert reset["error"] == "IdempotencyKeyReused"
        assert reset["charge_point_id"] == "CP-B"
        assert reset["details"] == {"command_id": first_id}
        assert "remote_start_transaction to CP-A" in reset["message"]

        status, replay, replay_id = await asyncio.to_thread(
            post,
            f"{api}/remote_start_transaction",
            {"charge_point_id": "CP-A", **start},
            api_key=api_key,
            key="order-4711",
        )
        assert (status, replay, replay_id) == (200, first, first_id)
        assert charger_a.received == [("RemoteStartTransaction", start)]
        assert charger_b.received == []
    assert await Command.objects.acount() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/ocpp16/CP-1/reset", {"type": "Hard"}),
        ("/api/v1/ocpp16/CP-2/reset", {"type": "Soft"}),
        ("/api/v1/ocpp16/CP-1/clear_cache", {}),
        ("/api/v1/ocpp201/CP-1/reset", {"type": "Immediate"}),
    ],
    ids=["other-body", "other-charger", "other-command", "other-version"],
)
def test_the_same_key_with_another_request_is_a_422(api_client, register_charge_point, path, body):
    register_charge_point("CP-1", ocpp_version="")
    register_charge_point("CP-2", ocpp_version="")
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-1"}
    first = api_client.post("/api/v1/ocpp16/CP-1/reset", {"type": "Soft"}, format="json", **headers)
    assert first.status_code == 503
    second = api_client.post(path, body, format="json", **headers)
    assert second.status_code == 422
    assert second.json()["error"] == "IdempotencyKeyReused"
    assert Command.objects.count() == 1


@pytest.mark.django_db
def test_the_same_request_in_another_form_replays(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-2"}
    body = {"connector_id": 1, "id_tag": "RFID-1"}
    first = api_client.post("/api/v1/ocpp16/CP-1/remote_start_transaction", body, format="json", **headers)
    reordered = api_client.post(
        "/api/v1/ocpp16/remote_start_transaction/",
        {"id_tag": "RFID-1", "charge_point_id": "CP-1", "connector_id": 1},
        format="json",
        **headers,
    )
    assert first.status_code == reordered.status_code == 503
    assert first["X-Command-Id"] == reordered["X-Command-Id"]


@pytest.mark.django_db
def test_keys_are_per_api_key(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='other')[1]}")
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-3"}
    api_client.post("/api/v1/ocpp16/CP-1/reset", {"type": "Soft"}, format="json", **headers)
    assert other.post("/api/v1/ocpp16/CP-1/clear_cache", {}, format="json", **headers).status_code == 503
    assert Command.objects.count() == 2


def test_the_fingerprint_ignores_key_order_and_names_every_part():
    base = {"charge_point_id": "CP-1", "ocpp_version": "1.6", "command": "reset", "body": {"a": 1, "b": 2}}
    fingerprint = request_fingerprint(**base)
    assert len(fingerprint) == 64
    assert request_fingerprint(**{**base, "body": {"b": 2, "a": 1}}) == fingerprint
    for part, other in [
        ("charge_point_id", "CP-2"),
        ("ocpp_version", "2.0.1"),
        ("command", "clear_cache"),
        ("body", {"a": 1, "b": 3}),
    ]:
        assert request_fingerprint(**{**base, part: other}) != fingerprint


@pytest.mark.django_db(transaction=True)
async def test_a_retry_of_a_command_never_sent_sends_it_under_the_same_key(daphne, api_key):
    """The first POST finds the charger not connected (or Redis away: 503 with Retry-After): nothing
    was sent. A client retries with the same Idempotency-Key once it is back; that retry got the
    stored 503 again, for ever. Now it sends the command (the same one: id and key) and answers the
    charger's reply; a retry after that replays it."""
    await ChargePoint.objects.acreate(charge_point_id="CP-LATE", heartbeat_interval=60)
    url, change = (
        f"{daphne.http_url}/api/v1/ocpp16/CP-LATE/change_availability",
        {"connector_id": 0, "type": "Inoperative"},
    )
    status, body, first_id = await asyncio.to_thread(post, url, change, api_key=api_key, key="retry-1")
    assert (status, body["error"]) == (503, "NotConnected")
    async with ocpp_charger(daphne, "1.6", "CP-LATE", client_class=V16Charger) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))
        status, body, retry_id = await asyncio.to_thread(post, url, change, api_key=api_key, key="retry-1")
        assert (status, body, retry_id) == (200, {"status": "Scheduled"}, first_id)
        status, body, replay_id = await asyncio.to_thread(post, url, change, api_key=api_key, key="retry-1")
        assert (status, body, replay_id) == (200, {"status": "Scheduled"}, first_id)
        assert [action for action, _ in charger.received] == ["ChangeAvailability"]
    command = await Command.objects.aget()
    assert (command.state, command.idempotency_key) == ("accepted", "retry-1")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("daphne")  # after the test, waits for the charger's disconnect to be recorded
async def test_a_command_sent_whose_answer_failed_is_not_sent_again_under_its_key(daphne_factory, api_key):
    """The gateway fails after the Reset's frame was written (here: on the charger's answer, a
    fault injected in that daphne). That failure was answered ``not_connected``, "never sent", and
    a retry under the same Idempotency-Key sent the Reset a second time to a charger that had
    received the first. Now it is a 504 Timeout saying the CALL was sent (as for a socket closed
    before the answer), which the retry replays: the charger receives one Reset."""
    daphne = await asyncio.to_thread(daphne_factory, application="commands.tests.answer_unprocessed_app:application")
    await ChargePoint.objects.acreate(charge_point_id="CP-RESET", heartbeat_interval=60)
    url, reset = f"{daphne.http_url}/api/v1/ocpp16/CP-RESET/reset", {"type": "Hard"}
    async with ocpp_charger(daphne, "1.6", "CP-RESET", client_class=V16Charger) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))
        status, body, first_id = await asyncio.to_thread(post, url, reset, api_key=api_key, key="reset-1")
        assert (status, body["error"], body["message"]) == (504, "Timeout", ANSWER_UNPROCESSED)
        status, body, retry_id = await asyncio.to_thread(post, url, reset, api_key=api_key, key="reset-1")
        assert (status, body["error"], retry_id) == (504, "Timeout", first_id)
        assert charger.received == [("Reset", {"type": "Hard"})]
    command = await Command.objects.aget()
    assert (command.state, command.error_description) == ("timeout", ANSWER_UNPROCESSED)
    assert "Reset sent, its answer could not be processed" in daphne.log()
    assert "RuntimeError: injected" in daphne.log()  # a bug's traceback


@pytest.mark.django_db(transaction=True)
async def test_a_command_that_timed_out_unsent_behind_another_is_sent_by_a_retry_under_its_key(daphne, api_key):
    """Queued behind a CALL the charger never answers, a command's timeout passes before its turn: it
    is answered 504 and not sent. It was recorded as any timeout, which a retry under its
    Idempotency-Key replayed for ever (a remote start an integrator retried never went out). Now its
    504 says it was not sent, and the retry sends it (the same command), as for a 503 NotConnected."""
    await ChargePoint.objects.acreate(charge_point_id="CP-SLOW", heartbeat_interval=60)
    url = f"{daphne.http_url}/api/v1/ocpp16/CP-SLOW/data_transfer"
    async with raw_socket(daphne, "1.6", "CP-SLOW") as websocket:
        first = asyncio.create_task(asyncio.to_thread(post, url, {"vendor_id": "first"}, api_key=api_key, key="k-1"))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[3]["vendorId"] == "first"
        second = {"vendor_id": "second"}
        status, body, second_id = await asyncio.to_thread(post, url, second, api_key=api_key, key="k-2")
        assert (status, body["error"], body["message"]) == (504, "Timeout", NOT_SENT_IN_TIME)
        assert (await first)[0] == 504

        retry = asyncio.create_task(asyncio.to_thread(post, url, second, api_key=api_key, key="k-2"))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        assert call[2:] == ["DataTransfer", {"vendorId": "second"}]
        await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        assert await retry == (200, {"status": "Accepted"}, second_id)
    assert await Command.objects.filter(state="accepted").acount() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("daphne")  # after the test, waits for the charger's disconnect to be recorded
async def test_a_command_acknowledged_after_its_caller_gave_up_is_not_sent_and_a_retry_sends_it_once(
    daphne, daphne_factory, api_key
):
    """The charger's process queued a DataTransfer behind an unanswered CALL, then stalled (paused,
    starved of CPU) past the 3 s its caller waits for the acknowledgement: the caller cleared the
    presence and answered 503 NotConnected, never sent. The acknowledgement's timer, firing late,
    still acknowledged the command, which was then sent once its turn came; a retry under its
    Idempotency-Key sent it a second time. Now a late acknowledgement is not sent and the command
    is dropped unsent (as one that reaches a stalled process late): the retry sends it, once."""
    stalling = await asyncio.to_thread(
        daphne_factory, application="commands.tests.stalled_after_queueing_app:application"
    )
    await ChargePoint.objects.acreate(charge_point_id="CP-STALLED", heartbeat_interval=3600)
    url = f"{daphne.http_url}/api/v1/ocpp16/CP-STALLED/data_transfer"
    async with raw_socket(stalling, "1.6", "CP-STALLED") as websocket:
        first = asyncio.create_task(asyncio.to_thread(post, url, {"vendor_id": "first"}, api_key=api_key, key="d-1"))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        await asyncio.sleep(2 * ACK_DELAY)  # the first acknowledged: its caller waits for the answer
        status, body, stalled_id = await asyncio.to_thread(
            post, url, {"vendor_id": "stall"}, api_key=api_key, key="d-2"
        )
        assert (status, body["error"]) == (503, "NotConnected")
        await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        assert (await first)[0] == 200
        with pytest.raises(TimeoutError):
            frame = await asyncio.wait_for(websocket.recv(), 1)
            pytest.fail(f"the CSMS sent {frame} after its caller was told NotConnected")

        async def connected_again() -> bool:
            return bool((await ChargePoint.objects.aget(charge_point_id="CP-STALLED")).connection_channel)

        await eventually(connected_again, timeout=10)  # its presence claimed back once the process runs again
        retry = asyncio.create_task(asyncio.to_thread(post, url, {"vendor_id": "stall"}, api_key=api_key, key="d-2"))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        assert call[2:] == ["DataTransfer", {"vendorId": "stall"}]
        await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        assert await retry == (200, {"status": "Accepted"}, stalled_id)
        with pytest.raises(TimeoutError):
            frame = await asyncio.wait_for(websocket.recv(), 1)
            pytest.fail(f"the CSMS sent {frame}")
    assert "DataTransfer dropped unsent: its caller stopped waiting" in stalling.log()


def post_with_headers(url: str, body: dict, headers: list[tuple[str, str]]) -> tuple[int, dict, str]:
    """POST ``body`` with ``headers`` as given, a name repeated as often as it comes (urllib cannot)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=40)
    try:
        data = json.dumps(body).encode()
        connection.putrequest("POST", parts.path)
        for name, value in [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers]:
            connection.putheader(name, value)
        connection.endheaders(data)
        response = connection.getresponse()
        return response.status, json.loads(response.read()), response.headers.get("X-Command-Id", "")
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
async def test_two_idempotency_keys_on_one_request_are_a_400_naming_the_header(daphne, api_key):
    """Two Idempotency-Key headers were joined by Django into one key, ``k-1,k-2``: the command was
    recorded under a key the caller never sent, and a retry with either key sent it again. Now the
    request is refused, nothing recorded; one key (a comma in it included) still goes."""
    await ChargePoint.objects.acreate(charge_point_id="CP-TWO", heartbeat_interval=60)
    url, reset = f"{daphne.http_url}/api/v1/ocpp16/CP-TWO/reset", {"type": "Soft"}
    auth = ("Authorization", f"Bearer {api_key}")
    status, body, command_id = await asyncio.to_thread(
        post_with_headers, url, reset, [auth, ("Idempotency-Key", "k-1"), ("Idempotency-Key", "k-2")]
    )
    assert (status, body["error"], command_id) == (400, "ValidationError", "")
    assert list(body["details"]) == ["Idempotency-Key"]
    assert body["charge_point_id"] == "CP-TWO"
    assert not await Command.objects.aexists()

    status, body, command_id = await asyncio.to_thread(
        post_with_headers, url, reset, [auth, ("Idempotency-Key", "k-1,k-2")]
    )
    assert (status, body["error"]) == (503, "NotConnected")
    assert (await Command.objects.aget()).idempotency_key == "k-1,k-2"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"lifecycle_state": "pending"}, 409, "ChargePointPending"),
        ({"ocpp_version": "2.0.1"}, 400, "UnsupportedVersion"),
    ],
    ids=["now-pending", "now-2.0.1"],
)
def test_a_retry_of_a_command_never_sent_is_refused_as_a_new_one_would_be(
    api_client, register_charge_point, monkeypatch, change, status, error
):
    """A retry under its key of a command that was never sent sends it now, but skipped the checks
    a new request gets: a remote start to a charger answered Pending since (OCPP 1.6 §4.2 forbids
    it), or a 1.6 command to a charger that came back speaking 2.0.1, went out all the same."""
    from commands import services

    sent: list[str] = []

    def send_call_sync(charge_point_id, action, *args, **kwargs):
        sent.append(action)
        return CallOutcome(Outcome.RESULT, payload={"status": "Accepted"})

    register_charge_point("CP-1", ocpp_version="1.6")
    headers = {"HTTP_IDEMPOTENCY_KEY": "start-1"}
    body = {"connector_id": 1, "id_tag": "RFID-1"}
    first = api_client.post("/api/v1/ocpp16/CP-1/remote_start_transaction", body, format="json", **headers)
    assert first.json()["error"] == "NotConnected"
    monkeypatch.setattr(services, "send_call_sync", send_call_sync)  # the charger, connected now
    ChargePoint.objects.filter(charge_point_id="CP-1").update(
        connected=True, connection_channel="specific.x!y", **change
    )

    retry = api_client.post("/api/v1/ocpp16/CP-1/remote_start_transaction", body, format="json", **headers)

    assert (retry.status_code, retry.json()["error"]) == (status, error)
    assert sent == []
    assert Command.objects.get().state == "not_connected"  # still never sent: a retry may send it once allowed
