"""The consumer writes a frame's text at once where daphne's server offers it (``TEXT_AT_ONCE``); an
answer to a charger that left while it was on the way is dropped with a line (``SocketClosed``), not logged."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from channels.exceptions import StopConsumer
from ocpp.messages import Call

from chargepoints.models import MessageDirection
from chargepoints.selectors import STRICT_PROFILE
from kernel.daphne_server import TEXT_AT_ONCE, SocketClosed
from ocpp_gateway.configuration_refresh import configuration_reads
from ocpp_gateway.consumers import OcppConsumer
from ocpp_gateway.heartbeats import heartbeats
from ocpp_gateway.message_log import message_log
from ocpp_gateway.v16.router import V16Router


async def test_the_consumer_takes_the_server_s_text_at_once_from_its_scope() -> None:
    offered = lambda text: True  # noqa: E731

    async def receive() -> dict[str, Any]:
        raise StopConsumer  # the loop ends at once (as after a close)

    async def send(event: dict[str, Any]) -> None: ...

    consumer = OcppConsumer()
    consumer.channel_layer_alias = "no such layer"  # no channel layer: the socket alone
    scope = {"type": "websocket", "path": "/ocpp/1.6/CP-1", "extensions": {TEXT_AT_ONCE: {"send": offered}}}
    await consumer._consume(scope, receive, send)
    assert consumer._text_at_once is offered


async def test_a_frame_is_written_at_once_and_left_to_send_where_the_server_does_not_write_it() -> None:
    written: list[str] = []
    sent: list[dict[str, Any]] = []

    async def base_send(event: dict[str, Any]) -> None:
        sent.append(event)

    consumer = OcppConsumer()
    consumer.base_send = base_send

    def write(text: str) -> bool:
        written.append(text)
        return True

    consumer._text_at_once = write
    await consumer.send("[3]")
    assert written == ["[3]"] and sent == []
    consumer._text_at_once = lambda text: False  # e.g. a closing connection: daphne's own path
    await consumer.send("[4]")
    assert sent == [{"type": "websocket.send", "text": "[4]"}]
    consumer._text_at_once = None  # no server offering it (Channels' test communicator, uvicorn)
    await consumer.send("[5]")
    assert sent[-1] == {"type": "websocket.send", "text": "[5]"}


class _LeftSocket:
    """A socket whose charger left while a frame was on the way: daphne raises ``SocketClosed``."""

    async def send(self, text: str) -> None:
        raise SocketClosed("Attempt to send on a closed protocol")


@pytest.fixture
def _nothing_buffered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The frames and the heartbeat not buffered for a database these tests do not have."""
    monkeypatch.setattr(message_log, "add", lambda row: None)
    monkeypatch.setattr(heartbeats, "add", lambda row: None)


@pytest.mark.usefixtures("_nothing_buffered")
async def test_an_answer_to_a_charger_that_left_meanwhile_is_dropped_with_a_line_not_an_error(caplog) -> None:
    router = V16Router("CP-LEFT", connection=_LeftSocket())
    router.state_loaded(commissioned=True, profile=STRICT_PROFILE)
    with caplog.at_level(logging.INFO, logger="ocpp_gateway"):
        await router.route_message('[2, "hb-1", "Heartbeat", {}]')
    assert [record.levelno for record in caplog.records] == [logging.INFO]
    assert "closed before the answer to 'hb-1'" in caplog.records[0].getMessage()


class _SentSocket:
    """A socket that takes every frame."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


async def test_an_answer_is_in_the_message_log_once_it_left_and_not_when_the_socket_refused_it(monkeypatch) -> None:
    logged: list[Any] = []
    monkeypatch.setattr(message_log, "add", logged.append)
    monkeypatch.setattr(heartbeats, "add", lambda row: None)
    for socket, answers_logged in ((_SentSocket(), 1), (_LeftSocket(), 0)):
        logged.clear()
        router = V16Router("CP-LOG", connection=socket)
        router.state_loaded(commissioned=True, profile=STRICT_PROFILE)
        await router.route_message('[2, "hb-1", "Heartbeat", {}]')
        rows = [(row.direction, row.unique_id, row.action) for row in logged]
        answer = (MessageDirection.OUTBOUND, "hb-1", "Heartbeat")
        assert rows == [(MessageDirection.INBOUND, "hb-1", "Heartbeat")] + [answer] * answers_logged


@pytest.mark.usefixtures("_nothing_buffered")
async def test_a_call_to_a_charger_that_left_raises_for_its_caller() -> None:
    router = V16Router("CP-LEFT", connection=_LeftSocket())
    with pytest.raises(SocketClosed):
        await router._send_message(Call("c-1", "Reset", {"type": "Soft"}))


@pytest.mark.usefixtures("_nothing_buffered")
async def test_a_connection_told_its_charger_s_read_is_owed_queues_it_after_the_next_message(monkeypatch) -> None:
    """An older connection's close marked the read owed after this one's handshake
    (``ocpp.configuration_read_owed``): the next CALL answered queues it, once; a boot's hook
    queues its own."""
    queued: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        configuration_reads,
        "queue",
        lambda charge_point_id, connection, *, owed=False: queued.append((charge_point_id, owed)),
    )
    consumer = OcppConsumer()
    consumer.router = router = V16Router("CP-TOLD", connection=_SentSocket())
    router.state_loaded(commissioned=True, profile=STRICT_PROFILE)
    await router.route_message('[2, "hb-1", "Heartbeat", {}]')
    assert queued == []
    await consumer.ocpp_configuration_read_owed({"type": "ocpp.configuration_read_owed"})
    await router.route_message('[2, "hb-2", "Heartbeat", {}]')
    await router.route_message('[2, "hb-3", "Heartbeat", {}]')
    assert queued == [("CP-TOLD", True)]
