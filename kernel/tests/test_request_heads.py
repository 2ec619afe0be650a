"""A request's head read within ``CSMS_REQUEST_HEAD_TIMEOUT`` (``kernel.request_heads``), through a
real daphne: a connection that sends its request line and headers a byte at a time (slow-loris), or
nothing at all (a charger's handshake lost on a cellular link), is answered 408 and closed, instead
of holding its socket for Twisted's idle timeout (12 hours, restarted by every byte)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from chargepoints.models import ChargePoint
from conftest import raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

HEAD_TIMEOUT = 1  # s: the test server's CSMS_REQUEST_HEAD_TIMEOUT
DRIPS = 40  # header lines sent a quarter second apart: ten times the deadline
UPGRADE_HEAD = (
    b"GET /ocpp/1.6/CP-1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: ocpp1.6\r\n"
)


@pytest.fixture(scope="module")
def head_timed_daphne(daphne_factory):
    return daphne_factory(CSMS_REQUEST_HEAD_TIMEOUT=str(HEAD_TIMEOUT))


def _received(client: socket.socket) -> bytes:
    """What the server sent until it closed the connection (b"" if it sent nothing)."""
    answer = b""
    while data := client.recv(4096):
        answer += data
    return answer


def _dripped(client: socket.socket, line: bytes) -> bytes | None:
    """Send ``line`` DRIPS times a quarter second apart, as long as the server keeps the connection:
    what it answered and closed with, or None if it was still open after the last."""
    client.settimeout(0.25)
    for number in range(DRIPS):
        try:
            client.sendall(line % number if b"%d" in line else line)
        except OSError:  # closed under the write: what came before the close is in the socket
            client.settimeout(5)
            return _received(client)
        try:
            data = client.recv(4096)
        except TimeoutError:
            continue
        client.settimeout(5)
        return data + _received(client) if data else data
    return None


def _answer(data: bytes) -> tuple[bytes, dict]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], json.loads(body)


def test_a_handshake_whose_head_is_dripped_a_header_at_a_time_is_answered_408_and_closed(head_timed_daphne):
    with socket.create_connection(("127.0.0.1", head_timed_daphne.port), timeout=5) as client:
        client.sendall(UPGRADE_HEAD)
        answer = _dripped(client, b"X-Pad-%d: a\r\n")
    assert answer is not None, "the connection was kept while its head never ended"
    status, body = _answer(answer)
    assert status.startswith(b"HTTP/1.1 408 ")
    assert body["error"] == "RequestTimeout"


def test_a_request_line_dripped_a_byte_at_a_time_is_answered_408_and_closed(head_timed_daphne):
    with socket.create_connection(("127.0.0.1", head_timed_daphne.port), timeout=5) as client:
        client.sendall(b"GET /healthz?q=")
        answer = _dripped(client, b"q")
    assert answer is not None, "the connection was kept while its request line never ended"
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_sends_nothing_is_answered_408_and_closed(head_timed_daphne):
    with socket.create_connection(("127.0.0.1", head_timed_daphne.port), timeout=20) as client:
        try:
            answer = _received(client)
        except TimeoutError:
            answer = None
    assert answer is not None, "a silent connection was kept"
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_the_next_request_s_head_on_a_kept_alive_connection_has_the_deadline_too(head_timed_daphne):
    with socket.create_connection(("127.0.0.1", head_timed_daphne.port), timeout=5) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = client.recv(4096)
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answer = _dripped(client, b"X-Pad-%d: a\r\n")
    assert first.startswith(b"HTTP/1.1 200 ")
    assert answer is not None and answer.startswith(b"HTTP/1.1 408 ")


def test_a_kept_alive_connection_idle_between_requests_past_the_deadline_is_kept(head_timed_daphne):
    """An idle connection of a proxy's pool (Caddy's) is no slow request: it is left to Twisted's
    idle timeout, as before."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", head_timed_daphne.port), timeout=5) as client:
        client.sendall(request)
        first = client.recv(4096)
        time.sleep(3 * HEAD_TIMEOUT)
        client.sendall(request)
        second = client.recv(4096)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 200 ")


def test_a_body_slower_than_the_deadline_is_not_cut(head_timed_daphne):
    """Only the head is timed: a charger's diagnostics upload over a slow link takes minutes."""
    body = json.dumps({"charge_point_id": "CP-SLOW"}).encode()
    head = (
        b"POST /api/v1/chargepoints HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", head_timed_daphne.port), timeout=5) as client:
        client.sendall(head)
        for part in (body[:5], body[5:10], body[10:]):
            time.sleep(HEAD_TIMEOUT)
            client.sendall(part)
        answer = client.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:100]  # no API key: the request was read whole


async def test_a_charger_s_socket_outlives_the_deadline(head_timed_daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-1", heartbeat_interval=60)
    async with raw_socket(head_timed_daphne, "1.6", "CP-1") as ws:
        await asyncio.sleep(3 * HEAD_TIMEOUT)  # the deadline passes while the socket is open
        await ws.send(json.dumps([2, "hb", "Heartbeat", {}]))
        assert json.loads(await ws.recv())[:2] == [3, "hb"]
