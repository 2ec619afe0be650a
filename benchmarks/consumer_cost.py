"""The gateway's CPU per OCPP message from the socket's read to the answer's write, in process.

What ``router_cost.py`` leaves out, without sockets or the database: the asyncio reactor's read
callback (Twisted's ``callWithLogger`` and ``_readOrWrite`` around a fake socket's ``doRead``),
daphne's server as its command line runs it and its WebSocket protocol (the frame read and written
plainly, on a fake transport), daphne's input queue and reply path,
Channels' routing, the consumer's receive loop, the router, the commit group's crossing to its
thread and back (a real thread; the batch itself is a stub that answers every unit at once: a
start opens transaction 42, every tag is Accepted), the message log, heartbeat and last-seen
buffers (their writes stubbed the same way) and the answers' metrics. ``--chargers`` connections
per OCPP version send one message each at a time, every charger of the row at once, as
``message_cost.py`` and the fleet's closed loop do. Prints the process's CPU µs per message
(every thread: the commit thread's stub is part of it) of each row, the best of ``--passes``
passes of ``--rounds`` rounds.

    .venv/bin/python benchmarks/consumer_cost.py --chargers 100 --rounds 20
"""

from __future__ import annotations

import os

os.environ["REDIS_URL"] = ""  # the in-memory channel layer: no Redis, no presence loops
# the frame budget still taken per frame, never refused (as harness.UNTHROTTLED)
os.environ.update(CSMS_MAX_FRAMES_PER_SECOND="100000", CSMS_FRAME_BURST="100000")
os.environ.setdefault("CSMS_METRICS_DIR", f"/tmp/consumer_cost-{os.getpid()}")

import daphne.server  # noqa: F401, I001  (installs the asyncio reactor, as daphne's command line does)

import argparse
import asyncio
import json
import shutil
import time
from types import SimpleNamespace
from typing import Any

import harness  # noqa: F401  (Django)
from router_cost import AUTHORIZED, ROWS
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from websockets.speedups import apply_mask

from chargepoints.selectors import STRICT_PROFILE
from chargepoints.services.attachment import Attachment
from csms.asgi import application
from ocpp_gateway import consumers, group_commit, id_tags
from ocpp_gateway.heartbeats import heartbeats
from ocpp_gateway.message_log import message_log
from ocpp_gateway.sightings import sightings

MASK = b"\x11\x22\x33\x44"


def _outcome(unit: Any) -> tuple[bool, Any]:
    """A stub unit's result (what router_cost.py's stubbed commit group answers)."""
    name = getattr(unit.func, "__name__", "")
    if name in ("transaction_start", "transaction_stop"):
        return True, SimpleNamespace(transaction=SimpleNamespace(pk=42), id_tag_info=AUTHORIZED)
    if name == "_transaction_event":
        payload = unit.kwargs["payload"]
        authorized = payload.get("idToken") or payload.get("id_token")
        return True, {"idTokenInfo": {"status": "Accepted"}} if authorized else {}
    return True, None


def _batch_answered(batch: list[Any], loop: Any, **options: Any) -> list[tuple[bool, Any]]:
    return [_outcome(unit) for unit in batch]


async def _attached(**kwargs: Any) -> Attachment:
    return Attachment(replaced_channel="", heartbeat_interval=3600, commissioned=True, profile=STRICT_PROFILE)


async def _announced(**kwargs: Any) -> None:
    return None


async def _authorized(*, id_tag: str, charge_point_id: str = "", token_type: str = "") -> Any:
    return AUTHORIZED


def stubs_install() -> None:
    group_commit.batch_committed = _batch_answered  # type: ignore[assignment]
    consumers.handshake_attach = _attached  # type: ignore[assignment]
    consumers.gateway_process_announced = _announced  # type: ignore[assignment]
    id_tags.id_tag_authorize = _authorized


class Transport(StringTransport):
    """Counts the frames written to it; wakes ``until`` once ``wanted`` were."""

    writes = 0
    wanted = -1
    done: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        Transport.writes += 1
        if Transport.writes == Transport.wanted and Transport.done is not None:
            Transport.done.set_result(None)

    def unregisterProducer(self) -> None:  # noqa: N802 (Twisted's name)
        pass


def server_built() -> Any:
    """daphne's server as ``csms.asgi`` installs it and daphne's command line runs it (verbosity 1),
    listening on a loopback port nobody connects to; its reactor is not run (the benchmark runs
    the loop)."""
    from daphne.cli import CommandLineInterface
    from twisted.internet import reactor

    server = CommandLineInterface.server_class(  # no auto-ping: the fake sockets never answer one
        application=application, endpoints=["tcp:0:interface=127.0.0.1"], signal_handlers=False, ping_interval=86400
    )
    run = reactor.run
    reactor.run = lambda **kwargs: None  # type: ignore[method-assign]
    try:
        server.run()
    finally:
        reactor.run = run  # type: ignore[method-assign]
    return server


class Socket:
    """What the asyncio reactor reads from for a connection: Twisted's TCP connection's ``doRead``
    handing the protocol what the socket held (``data``)."""

    def __init__(self, protocol: Any, n: int) -> None:
        self.protocol, self.data = protocol, b""
        self.logstr = f"WebSocketProtocol,{n},127.0.0.1"

    def fileno(self) -> int:
        return 1000

    def logPrefix(self) -> str:  # noqa: N802 (Twisted's name)
        return self.logstr

    def doRead(self) -> None:  # noqa: N802 (Twisted's name)
        data, self.data = self.data, b""
        self.protocol.dataReceived(data)


def read(socket: Socket, data: bytes) -> None:
    """``data`` read as the asyncio reactor reads a socket: its reader callback (Twisted's
    ``callWithLogger`` around ``_readOrWrite``, as ``addReader`` registers it, looked up now)."""
    from twisted.internet import asyncioreactor, reactor

    socket.data = data
    asyncioreactor.callWithLogger(socket, reactor._readOrWrite, socket, True)  # type: ignore[attr-defined]


def masked(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 0x10000
    header = (
        bytes((0x81, 0x80 | len(payload)))
        if len(payload) < 126
        else bytes((0x81, 0xFE)) + len(payload).to_bytes(2, "big")
    )
    return header + MASK + apply_mask(payload, MASK)


async def connected(server: Any, ocpp_version: str, n: int) -> Socket:
    """The socket of a daphne WebSocket protocol of charger ``BENCH-CC-<version>-<n>``, its
    handshake accepted."""
    protocol = server.ws_factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000 + n))
    transport = Transport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000 + n))
    protocol._raw_query_string = b""  # what daphne's HTTP channel hands it
    protocol.makeConnection(transport)
    request = (
        f"GET /ocpp/{ocpp_version}/BENCH-CC-{ocpp_version}-{n} HTTP/1.1\r\nHost: localhost\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp{ocpp_version}\r\n\r\n"
    ).encode()
    protocol.dataReceived(request)
    for _ in range(200):
        if protocol.state == protocol.STATE_OPEN:
            return Socket(protocol, n)
        await asyncio.sleep(0.005)
    raise RuntimeError(f"handshake of {ocpp_version}/{n} not accepted")


async def round_trips(sockets: list[Socket], frames: list[list[bytes]]) -> None:
    """Each round: every socket reads its frame; wait until every answer was written."""
    loop = asyncio.get_running_loop()
    for round_frames in frames:
        Transport.done = loop.create_future()
        Transport.wanted = Transport.writes + len(sockets)
        for socket, frame in zip(sockets, round_frames, strict=True):
            read(socket, frame)
        await asyncio.wait_for(Transport.done, 30)


async def us_per_message(
    sockets: list[Socket], action: str, payload: dict[str, Any], rounds: int, passes: int
) -> float:
    def frames(start: int) -> list[list[bytes]]:
        return [
            [
                masked(json.dumps([2, f"{start + r}-{i}", action, payload], separators=(",", ":")))
                for i in range(len(sockets))
            ]
            for r in range(rounds)
        ]

    await round_trips(sockets, frames(0)[:3])  # warm up
    best = float("inf")
    for n in range(passes):
        prepared = frames((n + 1) * rounds)
        started = time.process_time()
        await round_trips(sockets, prepared)
        best = min(best, (time.process_time() - started) / (rounds * len(sockets)) * 1e6)
    return best


async def main(chargers: int, rounds: int, passes: int, only: str) -> None:
    stubs_install()
    server = server_built()
    sockets = {version: [await connected(server, version, n) for n in range(chargers)] for version in ("1.6", "2.0.1")}
    await asyncio.sleep(0.5)  # the handshakes' buffered writes done
    for ocpp_version, action, payload in ROWS:
        name = f"{action} {payload.get('eventType', '')}".strip()
        if only and action not in only.split(","):
            continue
        cost = await us_per_message(sockets[ocpp_version], action, payload, rounds, passes)
        print(f"{name + f' ({ocpp_version})':40} {cost:6.1f} µs", flush=True)
    for buffer in (message_log, heartbeats, sightings):
        buffer._pending.clear()  # nothing written at exit


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=100, help="connections per OCPP version")
    parser.add_argument("--rounds", type=int, default=20, help="messages per charger per pass, per row")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--only", default="", help="these actions only (comma-separated)")
    args = parser.parse_args()
    from twisted.internet import reactor

    try:
        reactor._asyncioEventloop.run_until_complete(main(args.chargers, args.rounds, args.passes, args.only))  # type: ignore[attr-defined]
    finally:
        shutil.rmtree(os.environ["CSMS_METRICS_DIR"], ignore_errors=True)
