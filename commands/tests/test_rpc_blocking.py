"""``send_call_sync`` on the Redis channel layer: the caller's thread sends the CALL and waits for
the answer itself (no event loop), with the same acknowledgement, slow-answer hook and outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from chargepoints.models import ChargePoint
from commands.rpc import SLOW_AFTER, BlockingChannelLayer, Outcome, send_call_sync
from conftest import raw_socket

pytestmark = pytest.mark.django_db(transaction=True)


def sent_from_a_thread(charge_point_id: str) -> tuple[asyncio.Future[Any], dict[str, int]]:
    """``send_call_sync`` of a Soft Reset in a thread of its own; what ran in which thread."""
    threads: dict[str, int] = {}

    def hook() -> None:
        threads["when_slow"] = threading.get_ident()

    def send() -> Any:
        threads["caller"] = threading.get_ident()
        try:
            return send_call_sync(charge_point_id, "Reset", {"type": "Soft"}, when_slow=hook)
        finally:
            connection.close()  # the thread's pooled connection back (no request_finished here)

    return asyncio.ensure_future(asyncio.to_thread(send)), threads


async def test_the_redis_layer_offers_blocking_calls():
    layer = get_channel_layer()
    assert isinstance(layer, BlockingChannelLayer) and layer.blocking_calls()


async def test_a_quick_answer_comes_back_to_the_calling_thread_without_the_slow_hook(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-QUICK", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-QUICK") as websocket:
        sending, threads = sent_from_a_thread("CP-QUICK")
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        assert call[2:] == ["Reset", {"type": "Soft"}]
        await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        outcome = await asyncio.wait_for(sending, 10)
    assert (outcome.outcome, outcome.payload) == (Outcome.RESULT, {"status": "Accepted"})
    assert "when_slow" not in threads or threads["when_slow"] == threads["caller"]


async def test_a_quick_answer_costs_the_calling_thread_one_write_to_redis(daphne, monkeypatch):
    """The CALL's send and the wait for its answer go to Redis together (issue 15: one round trip less)."""
    from redis.connection import AbstractConnection

    await ChargePoint.objects.acreate(charge_point_id="CP-ONE-TRIP", heartbeat_interval=60)
    sends: list[tuple[int, bytes]] = []  # (thread, what one write carried) for each write holding a send
    write = AbstractConnection.send_packed_command

    def counted(connection: AbstractConnection, command: Any, check_health: bool = True) -> None:
        packed = command if isinstance(command, bytes | str) else b"".join(map(bytes, command))
        packed = packed.encode() if isinstance(packed, str) else packed
        if b"EVAL" in packed:  # EVALSHA, or EVAL after a script was lost
            sends.append((threading.get_ident(), packed))
        write(connection, command, check_health)

    async with raw_socket(daphne, "1.6", "CP-ONE-TRIP") as websocket:
        await asyncio.to_thread(lambda: get_channel_layer().send_blocking("warm-up", {"type": "ping"}))
        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
        sending, threads = sent_from_a_thread("CP-ONE-TRIP")
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        outcome = await asyncio.wait_for(sending, 10)
    assert outcome.outcome == Outcome.RESULT
    # Counted by what the caller's writes carry, not how many there are: a slow answer (a loaded
    # machine) adds a second wait, an idle connection a health check.
    callers = [packed for thread, packed in sends if thread == threads["caller"]]
    assert len(callers) == 1 and b"BZPOPMIN" in callers[0]
    await get_channel_layer().receive("warm-up")


async def test_a_slow_answer_runs_the_slow_hook_in_the_calling_thread_and_still_counts(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-SLOW", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-SLOW") as websocket:
        sending, threads = sent_from_a_thread("CP-SLOW")
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        await asyncio.sleep(SLOW_AFTER * 3)  # the charger takes its time: the hook runs meanwhile
        await websocket.send(json.dumps([3, call[1], {"status": "Rejected"}]))
        outcome = await asyncio.wait_for(sending, 10)
    assert (outcome.outcome, outcome.payload) == (Outcome.RESULT, {"status": "Rejected"})
    assert threads["when_slow"] == threads["caller"]


async def test_a_charger_that_is_not_connected_is_not_connected_at_once(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-AWAY", heartbeat_interval=60)
    sending, threads = sent_from_a_thread("CP-AWAY")
    outcome = await asyncio.wait_for(sending, 10)
    assert outcome.outcome == Outcome.NOT_CONNECTED and "when_slow" not in threads


def reset(charge_point_id: str) -> Any:
    try:
        return send_call_sync(charge_point_id, "Reset", {"type": "Soft"})
    finally:
        connection.close()  # the thread's pooled connection back (no request_finished here)


async def test_commands_beyond_the_blocking_waiters_wait_through_the_event_loop_and_all_arrive(daphne, settings):
    """Each thread waiting on a reply holds a connection of the layer's synchronous pool: with a
    pool of 4, two threads wait that way and the others through the event loop; none runs out."""
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["hosts"][0].update(max_connections=4, timeout=1)
    settings.CHANNEL_LAYERS = layers
    assert get_channel_layer().blocking_waiters._value == 2
    ids = [f"CP-MANY-{n}" for n in range(6)]
    for charge_point_id in ids:
        await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(raw_socket(daphne, "1.6", cp)) for cp in ids]
        # Threads of this loop's, as a request's are the server's: the event loop's way back is this loop.
        sending = [asyncio.ensure_future(sync_to_async(reset, thread_sensitive=False)(cp)) for cp in ids]
        calls = [json.loads(await asyncio.wait_for(websocket.recv(), 5)) for websocket in sockets]
        await asyncio.sleep(1.5)  # longer than the pool's wait for a free connection
        for websocket, call in zip(sockets, calls, strict=True):
            await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        outcomes = await asyncio.wait_for(asyncio.gather(*sending), 15)
    assert [outcome.outcome for outcome in outcomes] == [Outcome.RESULT] * len(ids)


def named_channel_with_a_reply_waiting(monkeypatch, reply: bytes | None) -> tuple[Any, str]:
    """The layer, a named channel standing for a consumer's, and ``reply`` (raw) already waiting on
    the reply channel the next CALL will use."""
    layer = get_channel_layer()
    reply_to = layer.blocking_reply_channel()
    monkeypatch.setattr(layer, "blocking_reply_channel", lambda: reply_to)
    if reply is not None:
        layer._blocking_client().zadd(layer.prefix + reply_to, {reply: 1})
    return layer, f"ocpp-test-consumer-{uuid.uuid4().hex}"


def test_a_reply_that_cannot_be_read_after_the_call_was_sent_is_a_timeout_not_not_connected(monkeypatch):
    """The CALL went out (the charger may have acted on it): its lost answer is no "not connected"."""
    layer, consumer_channel = named_channel_with_a_reply_waiting(monkeypatch, b"x" * 12 + b"\xc1")  # not msgpack
    outcome = send_call_sync("CP-UNREADABLE", "Reset", {"type": "Soft"}, channel_name=consumer_channel)
    assert outcome.outcome == Outcome.TIMEOUT and outcome.error_description.startswith("channel layer: ")
    request = layer.receive_blocking(consumer_channel, 5)
    assert (request["action"], request["payload"]) == ("Reset", {"type": "Soft"})


def test_an_answer_that_cannot_be_read_after_the_charger_s_acknowledgement_is_a_timeout(monkeypatch):
    """The consumer acknowledged the CALL (it is on the charger's socket), then its answer cannot be
    read: a ``Timeout`` (504), not a 500 leaving the command pending, nor "not connected"."""
    layer, consumer_channel = named_channel_with_a_reply_waiting(monkeypatch, None)
    accepted, unreadable = layer.serialize({"type": "ocpp.call.accepted"}), b"x" * 12 + b"\xc1"
    layer._blocking_client().zadd(layer.prefix + layer.blocking_reply_channel(), {accepted: 1, unreadable: 2})
    outcome = send_call_sync("CP-UNREADABLE-ANSWER", "Reset", {"type": "Soft"}, channel_name=consumer_channel)
    assert outcome.outcome == Outcome.TIMEOUT and outcome.error_description.startswith("channel layer: ")
    assert layer.receive_blocking(consumer_channel, 5)["action"] == "Reset"


def test_a_call_to_a_full_channel_is_not_sent_and_not_connected(monkeypatch):
    layer, consumer_channel = named_channel_with_a_reply_waiting(monkeypatch, None)
    capacity = layer.get_capacity(consumer_channel)
    for n in range(capacity):
        layer.send_blocking(consumer_channel, {"type": "ping", "n": n})
    outcome = send_call_sync("CP-FULL", "Reset", {"type": "Soft"}, channel_name=consumer_channel)
    assert outcome.outcome == Outcome.NOT_CONNECTED and "ChannelFull" in outcome.error_description
    held = [layer.receive_blocking(consumer_channel, 1) for _ in range(capacity + 1)]
    assert [message["type"] for message in held[:capacity]] == ["ping"] * capacity and held[capacity] is None
