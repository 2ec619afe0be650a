"""The consumer writes a frame's text at once where daphne's server offers it (``TEXT_AT_ONCE``)."""

from __future__ import annotations

from typing import Any

from channels.exceptions import StopConsumer

from kernel.daphne_server import TEXT_AT_ONCE
from ocpp_gateway.consumers import OcppConsumer


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
