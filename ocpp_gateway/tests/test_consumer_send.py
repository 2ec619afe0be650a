"""The consumer writes a frame's text at once where daphne's server offers it (``TEXT_AT_ONCE``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.exceptions import StopConsumer

from chargepoints.selectors import STRICT_PROFILE
from kernel.daphne_server import TEXT_AT_ONCE
from ocpp_gateway.consumers import OcppConsumer
from ocpp_gateway.heartbeats import heartbeats
from ocpp_gateway.message_log import message_log
from ocpp_gateway.versions import ROUTERS


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


class _Connection:
    """A connection with the consumer's synchronous write (``sent_at_once``), writing or refusing."""

    def __init__(self, *, writes: bool) -> None:
        self.writes = writes
        self.at_once: list[str] = []
        self.sent: list[str] = []

    def sent_at_once(self, text: str) -> bool:
        if self.writes:
            self.at_once.append(text)
        return self.writes

    async def send(self, text_data: str) -> None:
        self.sent.append(text_data)


@pytest.mark.parametrize("ocpp_version", ["1.6", "2.0.1"])
async def test_the_router_writes_its_answer_at_once_where_its_connection_can(ocpp_version, monkeypatch) -> None:
    monkeypatch.setattr(message_log, "add", lambda item: None)
    monkeypatch.setattr(heartbeats, "add", lambda item: None)
    at_once, refused = _Connection(writes=True), _Connection(writes=False)
    sent_only: list[str] = []

    class SendOnly:  # no sent_at_once (a test's or another server's connection)
        async def send(self, text_data: str) -> None:
            sent_only.append(text_data)

    for connection in (at_once, refused, SendOnly()):
        router = ROUTERS[ocpp_version]("CP-1", connection)
        router.state_loaded(commissioned=True, profile=STRICT_PROFILE)
        await router.route_message('[2,"7","Heartbeat",{}]')
    assert len(at_once.at_once) == 1 and not at_once.sent
    assert not refused.at_once and len(refused.sent) == 1
    assert len(sent_only) == 1
    answer = json.loads(at_once.at_once[0])
    assert answer[:2] == [3, "7"] and "currentTime" in answer[2]
    assert json.loads(refused.sent[0])[:2] == json.loads(sent_only[0])[:2] == [3, "7"]


async def test_the_consumer_s_write_at_once_is_the_server_s() -> None:
    consumer = OcppConsumer()
    assert consumer.sent_at_once("[3]") is False  # no server offering it
    written: list[str] = []

    def write(text: str) -> bool:
        written.append(text)
        return True

    consumer._text_at_once = write
    assert consumer.sent_at_once("[3]") is True and written == ["[3]"]
    consumer._text_at_once = lambda text: False
    assert consumer.sent_at_once("[4]") is False
