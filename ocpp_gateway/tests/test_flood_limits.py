"""Flood limits: oversized frames, CALL floods and handshake storms are answered, not obeyed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from chargepoints.models import ChargePoint, OcppMessage
from chargepoints.services import charge_point_update
from conftest import charger_row_held, eventually, raw_socket
from ocpp_gateway.db import database_sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)


async def exchange(websocket, frame: str) -> list:
    await websocket.send(frame)
    return json.loads(await asyncio.wait_for(websocket.recv(), 10))


async def test_an_oversized_frame_is_refused_unstored_and_the_socket_lives(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-BIG", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-BIG") as websocket:
        huge = json.dumps([2, "big-1", "DataTransfer", {"vendorId": "x", "data": "x" * 70_000}])
        answer = await exchange(websocket, huge)
        assert answer[:3] == [4, "big-1", "FormationViolation"]
        assert "over the 65536 byte limit" in answer[3]
        assert (await exchange(websocket, '[2,"hb","Heartbeat",{}]'))[:2] == [3, "hb"]
    await asyncio.sleep(0.3)  # the message log is written in batches
    assert not await OcppMessage.objects.filter(unique_id="big-1", direction="in").aexists()


async def test_frames_sent_while_the_charger_s_frames_wait_pause_the_socket_s_reads_and_all_are_answered(daphne):
    """A charger sending without waiting while its frames wait (its row locked: a batch waits on it)
    had the process keep every frame it sent meanwhile: 300 frames of 60 KB, 17 MB, and as much more
    as it sent. Past about 1 MB waiting, the socket's reads pause (TCP holds the rest on the charger's
    side) until the frames are handled; none is refused or lost."""
    await ChargePoint.objects.acreate(charge_point_id="CP-PIPE", heartbeat_interval=60)
    frames = [json.dumps([2, f"dt-{n}", "DataTransfer", {"vendorId": "x", "data": "x" * 60_000}]) for n in range(40)]
    async with raw_socket(daphne, "1.6", "CP-PIPE") as websocket:
        async with charger_row_held("CP-PIPE") as release:
            await websocket.send(json.dumps([2, "status", "StatusNotification", STATUS]))
            sending = asyncio.create_task(asyncio.wait_for(_sent(websocket, frames), 20))
            await eventually(lambda: "/ocpp/1.6/CP-PIPE: reads paused" in daphne.log(), timeout=4)
            release.set()
            await sending
        ids = {json.loads(await asyncio.wait_for(websocket.recv(), 10))[1] for _ in range(41)}
    assert ids == {"status"} | {f"dt-{n}" for n in range(40)}


STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


async def _sent(websocket, frames: list[str]) -> None:
    for frame in frames:
        await websocket.send(frame)


async def test_an_oversized_frame_is_told_its_size_in_bytes_not_characters(daphne):
    """The limit counts UTF-8 bytes; the CALLERROR and the log line told the characters (17,050 of 68,050 bytes)."""
    await ChargePoint.objects.acreate(charge_point_id="CP-BIG", heartbeat_interval=60)
    async with raw_socket(daphne, "2.0.1", "CP-BIG") as websocket:
        huge = json.dumps(
            [2, "big-2", "DataTransfer", {"vendorId": "x", "data": "\U0001f600" * 17_000}], ensure_ascii=False
        )
        answer = await exchange(websocket, huge)
        size = len(huge.encode())
        assert answer[:4] == [4, "big-2", "FormatViolation", f"Frame of {size} bytes is over the 65536 byte limit."]
    assert f"CP-BIG: refused a frame of {size} bytes (limit 65536)" in daphne.log()


@pytest.fixture(scope="module")
def strict_daphne(daphne_factory):
    return daphne_factory(CSMS_MAX_FRAMES_PER_SECOND="2", CSMS_FRAME_BURST="5", CSMS_MAX_HANDSHAKES_PER_IP="1")


async def test_calls_sent_without_waiting_beyond_the_rate_limit_get_a_callerror_and_the_socket_lives(
    daphne, strict_daphne
):
    await ChargePoint.objects.acreate(charge_point_id="CP-FLOOD", heartbeat_interval=60)
    async with raw_socket(strict_daphne, "1.6", "CP-FLOOD") as websocket:
        for n in range(12):  # sent at once, not waiting for the answers
            await websocket.send(f'[2,"hb-{n}","Heartbeat",{{}}]')
        answers = [json.loads(await asyncio.wait_for(websocket.recv(), 10)) for _ in range(12)]
        assert [a[0] for a in answers[:5]] == [3] * 5
        refused = [a for a in answers if a[0] == 4]
        assert refused and all(a[2] == "GenericError" and "Rate limit" in a[3] for a in refused)
        await asyncio.sleep(1.1)  # the budget refills
        assert (await exchange(websocket, '[2,"later","Heartbeat",{}]'))[:2] == [3, "later"]
    # One line a second at most, counting the frames refused since the last (round 41's probe: a line per frame).
    lines = [line for line in strict_daphne.log().splitlines() if "CP-FLOOD: over 2 frames/s" in line]
    assert len(lines) < len(refused) and "frames refused since the last such line: 1," in lines[0]


async def test_16_calls_with_integer_ids_beyond_the_rate_limit_get_their_callerror_with_that_id(strict_daphne):
    """1.6 echoes an integer id; a CALL with one refused over the rate went unanswered."""
    await ChargePoint.objects.acreate(charge_point_id="CP-FLOOD-INT", heartbeat_interval=60)
    async with raw_socket(strict_daphne, "1.6", "CP-FLOOD-INT") as websocket:
        for n in range(12):  # sent at once, not waiting for the answers
            await websocket.send(f'[2,{n},"Heartbeat",{{}}]')
        answers = [json.loads(await asyncio.wait_for(websocket.recv(), 10)) for _ in range(12)]
    assert sorted(answer[1] for answer in answers) == list(range(12))
    refused = [answer for answer in answers if answer[0] == 4]
    assert refused and all(answer[2] == "GenericError" and "Rate limit" in answer[3] for answer in refused)


async def test_a_charger_waiting_for_each_answer_is_held_to_the_rate_not_refused(daphne, strict_daphne):
    """A compliant 1.6 charger catching up its offline queue sends each MeterValues once the last is
    answered, as fast as the CSMS answers: past the burst, the rate refused 213 of 300 with a
    GenericError (a charger drops a transaction message after its retries). Such a charger is now
    held to the rate (2 a second here) and every frame answered."""
    await ChargePoint.objects.acreate(charge_point_id="CP-CATCHUP", heartbeat_interval=60)
    async with raw_socket(strict_daphne, "1.6", "CP-CATCHUP") as websocket:
        started = asyncio.get_running_loop().time()
        answers = [await exchange(websocket, f'[2,"hb-{n}","Heartbeat",{{}}]') for n in range(9)]
        took = asyncio.get_running_loop().time() - started
    assert [a[:2] for a in answers] == [[3, f"hb-{n}"] for n in range(9)]
    assert took >= 1.5  # the burst's 5, then the rate's 2 a second for the 4 others
    assert "CP-CATCHUP: over 2 frames/s" not in strict_daphne.log()


async def test_oversized_frames_count_against_the_rate_limit(daphne, strict_daphne):
    """Were refused before the rate was counted: any number of them, each answered and logged at once
    (300 frames of 70 KB in 0.1 s: 300 CALLERRORs, 300 warning lines)."""
    await ChargePoint.objects.acreate(charge_point_id="CP-BIGFLOOD", heartbeat_interval=60)
    huge = json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "x" * 70_000}])
    async with raw_socket(strict_daphne, "1.6", "CP-BIGFLOOD") as websocket:
        answers = [await exchange(websocket, huge) for _ in range(12)]
    # The burst's 5, and one more per 0.5 s the exchanges took (a loaded machine): the rest refused for the rate.
    told = [a[2] for a in answers]
    assert told[:5] == ["FormationViolation"] * 5 and "GenericError" in told
    assert set(told) == {"FormationViolation", "GenericError"}
    lines = [line for line in strict_daphne.log().splitlines() if "CP-BIGFLOOD: refused a frame of" in line]
    assert len(lines) == told.count("FormationViolation")


async def test_binary_frames_count_against_the_rate_limit(daphne, strict_daphne):
    """Each was ignored with a warning line, however many: a log flood no rate limit held back."""
    await ChargePoint.objects.acreate(charge_point_id="CP-BINFLOOD", heartbeat_interval=60)
    async with raw_socket(strict_daphne, "1.6", "CP-BINFLOOD") as websocket:
        for _ in range(30):
            await websocket.send(b"\x00binary")
        await asyncio.sleep(3.1)  # the budget refills (2 a second) and the last second's line is due
        assert (await exchange(websocket, '[2,"hb","Heartbeat",{}]'))[:2] == [3, "hb"]
    lines = strict_daphne.log().splitlines()
    ignored = [line for line in lines if "CP-BINFLOOD: ignored a binary frame of 7 bytes" in line]
    assert 5 <= len(ignored) <= 10  # the burst's 5 (and a token per 0.5 s the sends took), not 30
    assert any("CP-BINFLOOD: over 2 frames/s" in line for line in lines)


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    [
        ("1.6", "DataTransfer", {"vendorId": "V", "data": "x" * 60_000}),
        (
            "2.0.1",
            "NotifyEvent",
            {
                "generatedAt": "2026-11-25T10:00:00Z",
                "seqNo": 0,
                "eventData": [
                    {
                        "eventId": n,
                        "timestamp": "2026-11-25T10:00:00Z",
                        "trigger": "Alerting",
                        "actualValue": "x" * 2500,
                        "eventNotificationType": "HardWiredNotification",
                        "component": {"name": "C"},
                        "variable": {"name": "V"},
                    }
                    for n in range(20)
                ],
            },
        ),
    ],
)
async def test_a_notifications_log_line_shows_its_start_not_the_whole_frame(daphne, version, action, payload):
    """Its whole payload was logged, a line of up to 64 KB per frame (the frame is in the message log)."""
    await ChargePoint.objects.acreate(charge_point_id="CP-LOGLINE", heartbeat_interval=60)
    async with raw_socket(daphne, version, "CP-LOGLINE") as websocket:
        assert (await exchange(websocket, json.dumps([2, "n1", action, payload])))[:2] == [3, "n1"]
    lines = [line for line in daphne.log().splitlines() if f"CP-LOGLINE: {action}" in line]
    assert lines and all(len(line) < 1000 for line in lines)


async def test_a_flood_far_past_the_rate_gets_a_bounded_number_of_refusals(daphne, strict_daphne):
    """Every refused CALL was answered: a charger sending without reading made the process buffer an
    answer per frame. Past 4 times the rate and burst (here 8/s and 20) a refused CALL goes unanswered."""
    await ChargePoint.objects.acreate(charge_point_id="CP-NOREAD", heartbeat_interval=60)
    async with raw_socket(strict_daphne, "1.6", "CP-NOREAD") as websocket:
        for n in range(200):
            await websocket.send(f'[2,"f-{n}","Heartbeat",{{}}]')
        answers = []
        with contextlib.suppress(TimeoutError):
            while True:
                answers.append(json.loads(await asyncio.wait_for(websocket.recv(), 1.5)))
        assert [a[0] for a in answers[:5]] == [3] * 5
        refused = [a for a in answers[5:] if a[0] == 4]
        assert all(a[2] == "GenericError" for a in refused) and 20 <= len(refused) < 40
        assert len(answers) - 5 - len(refused) <= 2  # held to the rate: the last (none queued behind it)
        await asyncio.sleep(1.1)
        assert (await exchange(websocket, '[2,"later","Heartbeat",{}]'))[:2] == [3, "later"]


def _frame(payload: bytes, *, opcode: int = 1, fin: bool = True) -> bytes:
    """A masked client frame of under 126 bytes."""
    mask = b"\x01\x02\x03\x04"
    header = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _written_back(server, charge_point_id: str, *sends: bytes) -> bytes:
    """What the server writes after the handshake while a socket sends each of ``sends`` in turn
    (0.2 s apart), until it closes the TCP connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"GET /ocpp/1.6/{charge_point_id} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n".encode()
        + b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    )
    received = b""
    try:
        async with asyncio.timeout(10):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            for data in sends:
                writer.write(data)
                await asyncio.sleep(0.2)
            while chunk := await reader.read(4096):
                received += chunk
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    return received


@pytest.mark.parametrize(
    "flood",
    [
        _frame(b"[2,", fin=False) + _frame(b"", opcode=0, fin=False) * 100,
        _frame(b"", opcode=9) * 100,
    ],
    ids=["a message begun and never ended, then empty fragments", "pings"],
)
async def test_a_flood_of_fragments_or_control_frames_is_closed_with_1008(daphne, strict_daphne, flood):
    """The frame rate counts whole messages and the size limit their bytes: a message begun and never
    ended, then empty continuation frames, or pings (each answered with a pong), cost the process
    without end (200,000 fragments: 1.6 s of its event loop). Fragments and control frames have a
    budget of 10 times the frame rate and burst (here 20/s and 50): within it a fragmented message
    and pings are answered; past it the socket is closed with 1008 (policy violation) and a line."""
    await ChargePoint.objects.acreate(charge_point_id="CP-FRAGS", heartbeat_interval=60)
    parts = [b'[2,"hb",', b'"Heartbeat",', b"{}]"]
    fragmented = b"".join(_frame(part, opcode=0 if n else 1, fin=n == 2) for n, part in enumerate(parts))
    received = await _written_back(strict_daphne, "CP-FRAGS", fragmented + _frame(b"ping", opcode=9), flood)
    assert b'\x81\x33[3,"hb",{"currentTime":' in received and b"\x8a\x04ping" in received  # answered, ponged
    close = received[received.rindex(b"\x88") :]
    assert close[2:4] == (1008).to_bytes(2, "big") and close[4:] == b"too many fragments or control frames"
    assert "/ocpp/1.6/CP-FRAGS: over 20 fragments and control frames a second (burst 50); closed with 1008" in (
        strict_daphne.log()
    )


@pytest.fixture(scope="module")
def few_handshakes_daphne(daphne_factory):
    return daphne_factory(CSMS_MAX_HANDSHAKES_IN_FLIGHT="1")


@pytest.mark.parametrize(
    ("server", "body"),
    [("strict_daphne", b"from your address"), ("few_handshakes_daphne", b"Too many WebSocket handshakes in progress")],
    ids=["per address: 503 with Retry-After", "per process: 503 with Retry-After"],
)
async def test_handshakes_beyond_the_limits_are_refused(daphne, server, body, request):
    """Per address (strict_daphne): the consumer refuses. Per process (few_handshakes_daphne):
    daphne refuses before any consumer runs. Both are 503 with a Retry-After
    (CSMS_HANDSHAKE_RETRY_AFTER, 10 s jittered over 5 to 15), a retry later: the per-address limit
    answered 403 Forbidden, which a charger reads as refused credentials (many back off for long,
    or stop), to every charger behind one address (a site's NAT, a VPN concentrator, the proxy)
    past the limit in a reconnect storm. Each handshake checks a password hash (slow on purpose),
    so simultaneous ones overlap."""
    strict_daphne = request.getfixturevalue(server)
    for n in range(6):
        charge_point = await ChargePoint.objects.acreate(charge_point_id=f"CP-STORM-{n}", heartbeat_interval=60)
        await database_sync_to_async(charge_point_update)(charge_point=charge_point, password="storm-password-123")

    async def handshake(n: int) -> tuple[int, str | None, bytes]:
        """101, or the refusal's status, Retry-After header and body."""
        token = base64.b64encode(f"CP-STORM-{n}:storm-password-123".encode()).decode()
        try:
            async with connect(
                strict_daphne.ws_url("1.6", f"CP-STORM-{n}"),
                subprotocols=[Subprotocol("ocpp1.6")],
                additional_headers={"Authorization": f"Basic {token}"},
            ):
                return 101, None, b""
        except InvalidStatus as refused:
            response = refused.response
            return response.status_code, response.headers.get("Retry-After"), bytes(response.body)

    answers = await asyncio.gather(*(handshake(n) for n in range(6)))
    statuses = {status for status, _, _ in answers}
    assert 101 in statuses and statuses - {101} == {503}
    refusals = [(retry_after, text) for status, retry_after, text in answers if status != 101]
    assert all(retry_after is not None and 5 <= int(retry_after) <= 15 for retry_after, _ in refusals)
    assert all(body in text for _, text in refusals)
    assert (await handshake(0))[0] == 101  # one at a time is always fine
