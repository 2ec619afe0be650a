"""The command RPC, the caller's side: send an OCPP CALL to a charger from any process and await its answer.

The gateway serves it (``ocpp_gateway.consumers``, ``ocpp_gateway.rpc``); it lives below the
gateway so that ``commands`` sends without importing it (the layers, pyproject.toml).

1. Presence (``ChargePoint.connection_channel``) names the consumer holding the socket.
2. The request goes to that consumer over the channel layer with a private reply channel.
3. The consumer queues the CALL behind any outstanding one, sends it, and replies with the
   CALLRESULT, the CALLERROR, or a timeout. A CALL still unanswered after ``ACK_DELAY`` is
   acknowledged then (so a dead process is noticed in ``ACK_TIMEOUT`` seconds, not after the full
   call timeout); a faster answer is its own acknowledgement, one channel-layer message less.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard, runtime_checkable

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from chargepoints.models import ChargePoint
from chargepoints.services import charge_point_disconnect
from kernel import metrics
from kernel.charger_connections import MessageNotSent

logger = logging.getLogger(__name__)

# The offline event's reason when a command finds the process holding the charger's socket silent
# (stalled or dead), as the dead-process sweep gives it.
PROCESS_LOST = "gateway_lost"
ACK_TIMEOUT = 3.0  # seconds the caller waits for the answer or the acknowledgement (> ocpp_gateway.rpc.ACK_DELAY)
REPLY_MARGIN = 2.0
# Seconds without an answer after which send_call_sync's ``when_slow`` runs (in the caller's thread).
SLOW_AFTER = 0.2  # < ocpp_gateway.rpc.ACK_DELAY, or an early acknowledgement skips when_slow


# The gateway's reply to a CALL in flight when the charger's socket closed (``Outcome.TIMEOUT``): it
# was sent, the charger may have acted on it, its answer will not come. The one timeout description
# the API passes on (others may hold a channel layer's error, for the record only).
ANSWER_LOST_ON_CLOSE = "The connection closed after the CALL was sent, before the charge point answered."
# The same for an answer that came, or was awaited, but that the gateway failed to process after the
# CALL was sent (the charger may have acted on it): passed on by the API too.
ANSWER_UNPROCESSED = "The CALL was sent, but the CSMS failed to process the charge point's answer."
# The gateway's reply to a command that waited behind the charger's earlier CALLs until too little of
# its timeout was left to send it (``Outcome.TIMEOUT``, as its caller is told): it was never sent, so
# a retry under its Idempotency-Key sends it, as one ``not_connected``.
NOT_SENT_IN_TIME = "The command waited behind earlier commands to the charge point until its timeout; it was not sent."
# How the description of an outcome the channel layer caused begins: with ``Outcome.NOT_CONNECTED``,
# the CALL could not be handed to the process holding the charger's socket (Redis unreachable, that
# process's channel full): nothing was sent, and the charger may well be connected (its presence says so).
CHANNEL_LAYER_FAILED = "channel layer: "
# How the description of ``Outcome.NOT_CONNECTED`` begins when the connection that got the CALL speaks
# another OCPP version than the command's (the charger reconnected in it since the command was
# recorded: a firmware update to 2.0.1, or back): nothing was sent, the payload is not of its version.
OTHER_VERSION = "The charge point is now connected speaking OCPP "


class Outcome:
    RESULT = "result"
    INVALID_RESPONSE = "invalid_response"  # a CALLRESULT that breaks the response schema (strict charger)
    CALL_ERROR = "call_error"
    TIMEOUT = "timeout"
    NOT_CONNECTED = "not_connected"


@dataclass(frozen=True)
class CallOutcome:
    """What became of a CALL. ``payload`` is the CALLRESULT payload (camelCase, as sent);
    ``violations`` how it breaks the response schema (snake_case field path -> messages)."""

    outcome: str
    payload: dict[str, Any] = field(default_factory=dict)
    error_code: str = ""
    error_description: str = ""
    error_details: dict[str, Any] = field(default_factory=dict)
    violations: dict[str, list[str]] = field(default_factory=dict)
    latency_ms: float = 0.0


_IN_MEMORY_ELSEWHERE = (
    "The charger's socket is held by another process, which the in-memory channel layer cannot reach: "
    "set REDIS_URL to send commands from every process."
)


async def send_call(
    charge_point_id: str,
    action: str,
    payload: dict[str, Any],
    timeout: float | None = None,
    channel_name: str | None = None,
    when_slow: Callable[[], Awaitable[Any]] | None = None,
    ocpp_version: str | None = None,
) -> CallOutcome:
    """Send ``action`` with a camelCase ``payload`` to the charger; never raises for charger trouble.

    ``channel_name``: the charger's presence (``ChargePoint.connection_channel``, "" when not
    connected) if the caller has just read it; None reads it here. ``when_slow``: awaited once
    if neither the answer nor the acknowledgement came within ``SLOW_AFTER`` seconds.
    ``ocpp_version``: the version ``action`` and ``payload`` are of; a connection speaking another
    does not send it (``NOT_CONNECTED``, ``OTHER_VERSION``). None: any.
    """
    return await _call(
        _LoopTransport(get_channel_layer(), when_slow),
        charge_point_id,
        action,
        payload,
        timeout,
        channel_name,
        ocpp_version,
    )


_Reply = dict[str, Any] | None  # a reply on the CALL's reply channel, None if none came in time


@runtime_checkable
class BlockingChannelLayer(Protocol):
    """A channel layer a thread can send through and receive replies from without the event loop
    (``ocpp_gateway.channel_layer.BlockingPoolRedisChannelLayer``)."""

    blocking_waiters: threading.BoundedSemaphore

    def blocking_calls(self) -> bool: ...
    def blocking_reply_channel(self) -> str: ...
    def send_receive_blocking(
        self, channel: str, message: dict[str, Any], reply_channel: str, timeout: float
    ) -> _Reply:
        """Raises ``MessageNotSent`` when ``message`` was not sent; anything else it raises came after the send."""

    def receive_blocking(self, channel: str, timeout: float) -> _Reply: ...


_BLOCKING_LAYER_TYPES: dict[type, bool] = {}


def _is_blocking_layer(layer: Any) -> TypeGuard[BlockingChannelLayer]:
    """``isinstance(layer, BlockingChannelLayer)``, asked once per layer type (every instance of a
    type has the protocol's members or none has): a runtime protocol's ``isinstance`` walks its
    members at each call, about 20 µs of every command (issue 15)."""
    offers = _BLOCKING_LAYER_TYPES.get(type(layer))
    if offers is None:
        offers = _BLOCKING_LAYER_TYPES[type(layer)] = isinstance(layer, BlockingChannelLayer)
    return offers


def send_call_sync(
    charge_point_id: str,
    action: str,
    payload: dict[str, Any],
    timeout: float | None = None,
    channel_name: str | None = None,
    when_slow: Callable[[], None] | None = None,
    ocpp_version: str | None = None,
) -> CallOutcome:
    """``send_call`` from a synchronous caller; ``when_slow`` (if given) then runs in the caller's
    thread if the charger has not answered within SLOW_AFTER seconds (e.g. to give back its database
    connection while it waits longer).

    On a layer that offers blocking calls (Redis), the caller's thread sends and waits for the
    reply itself, on a reply channel of its own: no crossing to the event loop and back (issue 15).
    Each such wait holds a Redis connection: beyond the layer's ``blocking_waiters`` at once, a
    command waits through the event loop as before.
    """
    layer = get_channel_layer()
    blocking = _is_blocking_layer(layer) and layer.blocking_calls()
    if not blocking or not layer.blocking_waiters.acquire(blocking=False):
        slow = sync_to_async(when_slow) if when_slow is not None else None
        return async_to_sync(send_call)(charge_point_id, action, payload, timeout, channel_name, slow, ocpp_version)
    try:
        transport = _ThreadTransport(layer, when_slow)
        call = _call(transport, charge_point_id, action, payload, timeout, channel_name, ocpp_version)
        return _finished_at_once(call)
    finally:
        layer.blocking_waiters.release()


async def _call(
    transport: _Transport,
    charge_point_id: str,
    action: str,
    payload: dict[str, Any],
    timeout: float | None,
    channel_name: str | None,
    ocpp_version: str | None = None,
) -> CallOutcome:
    """One CALL's rules, whichever way it travels: the request, the acknowledgement and each outcome;
    its round trip counted in ``metrics.command_round_trip``."""
    started = time.monotonic()
    timeout = timeout or settings.CSMS_OCPP_CALL_TIMEOUT
    outcome = await _round_trip(
        transport, charge_point_id, action, payload, timeout, channel_name, started, ocpp_version=ocpp_version
    )
    metrics.command_round_trip(action=action, outcome=outcome.outcome, seconds=time.monotonic() - started)
    return outcome


async def _round_trip(
    transport: _Transport,
    charge_point_id: str,
    action: str,
    payload: dict[str, Any],
    timeout: float,
    channel_name: str | None,
    started: float,
    *,
    again: bool = True,
    ocpp_version: str | None = None,
) -> CallOutcome:
    """``_call``'s round trip to ``channel_name``; when it does not acknowledge the CALL and
    ``again``, to the charger's newer connection (``_sent_to_newer``), once."""
    if channel_name is None:
        channel_name = await transport.presence(charge_point_id)
    if not channel_name:
        return CallOutcome(Outcome.NOT_CONNECTED)
    reply_to = await transport.reply_channel()
    request = {
        "type": "ocpp.call",
        "action": action,
        "payload": payload,
        "reply_to": reply_to,
        "deadline": time.time() + timeout,
        # When this caller stops waiting for the acknowledgement (and reports the charger not
        # connected): a process that gets to the CALL only after, stalled meanwhile, drops it unsent.
        "ack_by": time.time() + ACK_TIMEOUT,
    }
    if ocpp_version is not None:  # a connection speaking another version does not send it (consumers)
        request["ocpp_version"] = ocpp_version
    try:
        ack = await transport.send_then_first_reply(channel_name, request, reply_to)
    except MessageNotSent as not_sent:  # channel full, or the channel layer (Redis) unreachable
        error = not_sent.error
        logger.warning("%s: could not reach the connection's process: %r", charge_point_id, error)
        return CallOutcome(Outcome.NOT_CONNECTED, error_description=f"{CHANNEL_LAYER_FAILED}{error!r}")
    except Exception as error:  # the CALL went out: the charger may have it, its answer is lost
        return _answer_lost(charge_point_id, error)
    if ack is None:
        if transport.reaches_this_process_only:
            # The embedded default reaches this process only: the socket may well be held by another
            # one (the gateway, when this is the Celery worker), so silence proves no dead process.
            return CallOutcome(Outcome.NOT_CONNECTED, error_description=_IN_MEMORY_ELSEWHERE)
        logger.warning("%s: presence %s did not answer; clearing it", charge_point_id, channel_name)
        await transport.clear_presence(charge_point_id, channel_name)
        if not again:
            return CallOutcome(Outcome.NOT_CONNECTED)
        return await _sent_to_newer(
            transport, charge_point_id, action, payload, timeout, channel_name, started, ocpp_version
        )
    reply = ack
    if ack["type"] == "ocpp.call.accepted":
        try:
            reply = await transport.reply(reply_to, timeout + REPLY_MARGIN) or {"outcome": Outcome.TIMEOUT}
        except Exception as error:
            return _answer_lost(charge_point_id, error)
    return call_outcome(reply, started=started)


async def _sent_to_newer(
    transport: _Transport,
    charge_point_id: str,
    action: str,
    payload: dict[str, Any],
    timeout: float,
    silent: str,
    started: float,
    ocpp_version: str | None = None,
) -> CallOutcome:
    """``NOT_CONNECTED`` after ``silent`` (the presence read) did not acknowledge the CALL, unless
    another connection holds the charger now: the presence was read just before the charger
    reconnected (to any process), and the older connection ended without reading the CALL, which
    was therefore never sent (``ack_by``: not even later). The CALL goes to the newer connection
    once, within what is left of ``timeout``."""
    newer = await transport.presence(charge_point_id)
    left = timeout - (time.monotonic() - started)
    if not newer or newer == silent or left < 1.0:
        return CallOutcome(Outcome.NOT_CONNECTED)
    logger.info("%s: reconnected meanwhile; the command goes to its newer connection", charge_point_id)
    started_again = time.monotonic()
    return await _round_trip(
        transport, charge_point_id, action, payload, left, newer, started_again, again=False, ocpp_version=ocpp_version
    )


def _answer_lost(charge_point_id: str, error: Exception) -> CallOutcome:
    """A CALL sent whose answer could not be had (a reply that cannot be read, the layer failing
    past its own retries): as for a charger that did not answer in time (a ``Timeout``, HTTP 504),
    not ``NOT_CONNECTED``, for the charger may have received it and acted."""
    logger.exception("%s: a command was sent but its answer could not be received", charge_point_id)
    return CallOutcome(Outcome.TIMEOUT, error_description=f"{CHANNEL_LAYER_FAILED}{error!r}")


def call_outcome(reply: dict[str, Any], *, started: float) -> CallOutcome:
    """The outcome of a consumer's reply (``{"outcome": ..., "payload" | "error_*": ...}``, as the
    gateway's router gives it); ``started`` is the ``time.monotonic()`` the CALL was asked at."""
    return CallOutcome(
        outcome=reply["outcome"],
        payload=reply.get("payload") or {},
        error_code=reply.get("error_code", ""),
        error_description=reply.get("error_description", ""),
        error_details=reply.get("error_details") or {},
        violations=reply.get("violations") or {},
        latency_ms=round((time.monotonic() - started) * 1000, 2),
    )


class _Transport(Protocol):
    """How a CALL reaches the consumer holding the socket and hears back (``_call``'s input and
    output, no rules): through the event loop, or blocking in the caller's thread."""

    reaches_this_process_only: bool  # silence then proves no dead process (the in-memory layer)

    async def presence(self, charge_point_id: str) -> str: ...
    async def reply_channel(self) -> str: ...
    async def send_then_first_reply(self, channel: str, request: dict[str, Any], reply_to: str) -> _Reply:
        """``request`` sent to ``channel`` (else ``MessageNotSent``), then the answer or the acknowledgement
        on ``reply_to`` within ACK_TIMEOUT seconds (None if neither came), the caller's ``when_slow``
        run meanwhile if neither came within SLOW_AFTER."""

    async def reply(self, reply_to: str, timeout: float) -> _Reply: ...
    async def clear_presence(self, charge_point_id: str, channel_name: str) -> None: ...


class _LoopTransport:
    """The event loop's way: any channel layer."""

    def __init__(self, layer: Any, when_slow: Callable[[], Awaitable[Any]] | None) -> None:
        self.layer = layer
        self.when_slow = when_slow
        self.reaches_this_process_only = isinstance(layer, InMemoryChannelLayer)

    async def presence(self, charge_point_id: str) -> str:
        channel = (
            await ChargePoint.objects.filter(charge_point_id=charge_point_id)
            .values_list("connection_channel", flat=True)
            .afirst()
        )
        return channel or ""

    async def reply_channel(self) -> str:
        return str(await self.layer.new_channel())

    async def send_then_first_reply(self, channel: str, request: dict[str, Any], reply_to: str) -> _Reply:
        try:
            await self.layer.send(channel, request)
        except Exception as error:
            raise MessageNotSent(error) from error
        return await self._first_reply(reply_to)

    async def _first_reply(self, reply_to: str) -> _Reply:
        waiting_since = time.monotonic()
        reply_wait = asyncio.ensure_future(self.layer.receive(reply_to))
        try:
            if self.when_slow is not None:
                done, _ = await asyncio.wait({reply_wait}, timeout=SLOW_AFTER)
                if not done:
                    try:
                        await self.when_slow()
                    except Exception:  # the CALL is out: its answer still counts
                        logger.exception("a command's slow-answer hook failed")
            remaining = max(0.0, ACK_TIMEOUT - (time.monotonic() - waiting_since))
            ack: dict[str, Any] = await asyncio.wait_for(reply_wait, remaining)
        except TimeoutError:
            return None
        else:
            return ack
        finally:
            reply_wait.cancel()  # a no-op once it is done

    async def reply(self, reply_to: str, timeout: float) -> _Reply:
        try:
            reply: dict[str, Any] = await asyncio.wait_for(self.layer.receive(reply_to), timeout)
        except TimeoutError:
            return None
        return reply

    async def clear_presence(self, charge_point_id: str, channel_name: str) -> None:
        await sync_to_async(charge_point_disconnect)(
            charge_point_id=charge_point_id, channel_name=channel_name, reason=PROCESS_LOST
        )


class _ThreadTransport:
    """The caller's thread's way (``BlockingChannelLayer``): each step blocks and none suspends, so
    ``_finished_at_once`` runs ``_call`` on it without an event loop. A step must never await
    anything that needs a loop (``sync_to_async``, ``asyncio.wait_for``, a sleep): it would fail
    with no running loop, perhaps after the CALL was sent."""

    reaches_this_process_only = False

    def __init__(self, layer: BlockingChannelLayer, when_slow: Callable[[], None] | None) -> None:
        self.layer = layer
        self.when_slow = when_slow

    async def presence(self, charge_point_id: str) -> str:
        channel = (
            ChargePoint.objects.filter(charge_point_id=charge_point_id)
            .values_list("connection_channel", flat=True)
            .first()
        )
        return channel or ""

    async def reply_channel(self) -> str:
        return self.layer.blocking_reply_channel()

    async def send_then_first_reply(self, channel: str, request: dict[str, Any], reply_to: str) -> _Reply:
        """The send and the first wait in one round trip to Redis (``send_receive_blocking``)."""
        waiting_since = time.monotonic()
        first_wait = SLOW_AFTER if self.when_slow is not None else ACK_TIMEOUT
        reply = self.layer.send_receive_blocking(channel, request, reply_to, first_wait)
        if reply is not None or self.when_slow is None:
            return reply
        try:
            self.when_slow()
        except Exception:  # the CALL is out: its answer still counts
            logger.exception("a command's slow-answer hook failed")
        return self.layer.receive_blocking(reply_to, max(0.0, ACK_TIMEOUT - (time.monotonic() - waiting_since)))

    async def reply(self, reply_to: str, timeout: float) -> _Reply:
        return self.layer.receive_blocking(reply_to, timeout)

    async def clear_presence(self, charge_point_id: str, channel_name: str) -> None:
        charge_point_disconnect(charge_point_id=charge_point_id, channel_name=channel_name, reason=PROCESS_LOST)


def _finished_at_once(call: Coroutine[Any, Any, CallOutcome]) -> CallOutcome:
    """The outcome of ``call``, a coroutine that never suspends (``_ThreadTransport``'s steps),
    run to its end in this thread without an event loop."""
    try:
        call.send(None)
    except StopIteration as finished:
        outcome: CallOutcome = finished.value
        return outcome
    call.close()
    raise RuntimeError("a CALL on the caller's thread suspended")
