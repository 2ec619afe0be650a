"""The WebSocket edge: handshake, presence, framing. OCPP semantics live in the routers."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from chargepoints import services
from chargepoints.services.liveness import Sighting
from charging.services.open_sessions import open_sessions_bind
from commands.rpc import ANSWER_LOST_ON_CLOSE, ANSWER_UNPROCESSED, NOT_SENT_IN_TIME, OTHER_VERSION
from kernel import cache_changes, metrics
from kernel.charger_connections import connection_close
from kernel.consumer_loop import dispatched_from
from kernel.daphne_server import ADDRESS_BUSY_REASON, GOING_AWAY_CODE, TEXT_AT_ONCE, TRY_AGAIN_LATER_CODE
from kernel.log_format import charge_point_id_var
from kernel.timestamps import utc_now
from ocpp_gateway.configuration_refresh import configuration_reads
from ocpp_gateway.gateway_processes import connection_ended, connection_held, gateway_process_announced
from ocpp_gateway.group_commit import UnitAbandoned, in_commit_group
from ocpp_gateway.handshake_auth import BEING_CHECKED, THROTTLED, handshake_attach
from ocpp_gateway.heartbeats import heartbeats
from ocpp_gateway.message_log import message_log
from ocpp_gateway.router import CallNotSent, OcppRouter
from ocpp_gateway.rpc import ACK_DELAY, ACK_MARGIN
from ocpp_gateway.sightings import sightings
from ocpp_gateway.versions import ROUTERS

logger = logging.getLogger(__name__)

# Handshakes this process is working on, per client address (CSMS_MAX_HANDSHAKES_PER_IP).
_handshakes_in_progress: Counter[str] = Counter()
SUBPROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}


def basic_auth_password(headers: list[tuple[bytes, bytes]], charge_point_id: str) -> str | None:
    """The password from an HTTP Basic header whose user is the charge point id.

    The identity may itself contain ``:`` (OCPP identifierString), so the credentials are
    ``<charge point id>:<password>`` read from the front, not split at the first colon.
    """
    return basic_auth_read(headers, charge_point_id)[0]


def basic_auth_read(headers: list[tuple[bytes, bytes]], charge_point_id: str) -> tuple[str | None, str]:
    """``basic_auth_password``, and why an ``Authorization`` header gave none ("" when there is no
    such header, or it gave the password): for the log of a refused handshake, which otherwise
    says "no password presented" of a charger that presented one for another user (OCPP 1.6
    security whitepaper and 2.0.1 part 2 A00, security profiles 1 and 2: the user is the charge
    point's identity, case and all). No part of the credentials is told: where the user ends
    cannot be told (an identity may hold ``:``), so it could be the password."""
    for name, value in headers:
        if name.lower() != b"authorization":
            continue
        scheme, _, encoded = value.decode("latin-1").partition(" ")
        if scheme.lower() != "basic":
            return None, "the Authorization header is not HTTP Basic"
        encoded = encoded.strip()
        try:  # padding is optional here: some firmware leaves out RFC 4648's trailing "=" (round 46)
            credentials = base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
        except ValueError:  # not base64 (binascii.Error; non-ASCII text), not UTF-8 (UnicodeDecodeError)
            return None, "HTTP Basic credentials that are not base64 of UTF-8 text"
        user_prefix = f"{charge_point_id}:"
        if not credentials.startswith(user_prefix):
            return None, "HTTP Basic credentials whose user is not the charge point id"
        return credentials[len(user_prefix) :], ""
    return None, ""


class OcppConsumer(AsyncWebsocketConsumer):
    """One charger's socket: ``/ocpp/{1.6|2.0.1}/{charge_point_id}``."""

    router: OcppRouter | None = None
    _accepted = False
    _ended = False
    _going_away = False  # the process is stopping: frames read after its close are not handled
    _ended_at: datetime | None = None  # when the connection ended (``_connection_end``)
    # Commands wait in _outbound for the _outbound_worker task; both exist only while there are
    # commands to send (_queue_call), so an idle connection holds no queue and no waiting task.
    _outbound: collections.deque[dict[str, Any]] | None = None
    _outbound_worker: asyncio.Task[None] | None = None
    _current_call: dict[str, Any] | None = None
    _replying = False  # the worker is delivering a reply (its CALL answered, or never to be sent)
    _replaced_by = ""  # the channel of the connection that replaced this one (``ocpp_close``)
    _text_at_once: Callable[[str], bool] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # However the consumer ends (a close, a crash, daphne cancelling it), presence is cleared now,
        # not when the offline sweep notices: commands then answer not_connected at once.
        try:
            await self._consume(scope, receive, send)
        finally:
            await self._connection_end()

    async def _consume(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' ``AsyncConsumer.__call__`` (channels 4.3.2) with a cheaper receive loop
        (``kernel.consumer_loop``): the socket's and the channel layer's messages to ``dispatch``."""
        self.scope = scope
        self._socket_receive = receive
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        sources = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
            sources.append(self.channel_receive)
        self.base_send = send
        # daphne's server (kernel.daphne_server) writes a text frame at once, without the reply hop.
        self._text_at_once = (scope.get("extensions") or {}).get(TEXT_AT_ONCE, {}).get("send")
        with contextlib.suppress(StopConsumer):
            await dispatched_from(sources, self.dispatch)

    # Channels' consumer loop also awaits the channel layer's receive, and would end with the socket
    # still open if it raised: the Redis layer's receive of a consumer's channel waits while Redis is
    # away instead (ocpp_gateway.channel_layer), so the charger goes on being served meanwhile.

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale DB connections through a thread hop before every message;
        # all DB work here already runs in the commit group's batches, which do that themselves.
        if message["type"] == "websocket.receive" and (text := message.get("text")) is not None:
            await self._text_received(text)  # what websocket_receive and receive do with it, without their layers
            return
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None and message["type"].startswith("ocpp."):
            await self._other_release_message(message)
            return
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def _other_release_message(self, message: dict[str, Any]) -> None:
        """An ``ocpp.*`` channel message this release has no handler for: sent by a process of
        another release (a rolling deploy). Logged and ignored, the connection lives on; one that
        asks for a reply (``reply_to``) is answered at once, ``call_error`` NotSupported, so that its
        caller neither waits out its timeout nor takes the silence for a dead process (which would
        clear this live connection's presence)."""
        kind = message["type"]
        logger.warning("%s: ignored a channel message of another release: %s", self.charge_point_id, kind)
        if "reply_to" in message:
            description = f"The connection is held by a process of another release: {kind} unknown."
            await self._reply(
                message, {"outcome": "call_error", "error_code": "NotSupported", "error_description": description}
            )

    async def connect(self) -> None:
        # Refused before any database work: in a reconnect storm, handshakes that queue up behind the
        # database outlive daphne's connect timeout and are all wasted; refused ones retry later.
        started_at = timezone.now()  # the charger's newest handshake holds it (charge_point_connect)
        client = (self.scope.get("client") or ["?"])[0]
        in_flight = _handshakes_in_progress.total()
        address_busy = _handshakes_in_progress[client] >= settings.CSMS_MAX_HANDSHAKES_PER_IP
        if in_flight >= settings.CSMS_MAX_HANDSHAKES_IN_FLIGHT or address_busy:
            logger.warning(
                "%s: refused (503), %d handshakes in progress (%d from %s)",
                self.scope["path"],
                in_flight,
                _handshakes_in_progress[client],
                client,
            )
            # Retry later (503 with a Retry-After), never 403: every charger behind one address (a
            # site's NAT, a VPN concentrator, the proxy) past the limit in a storm read a 403 as
            # refused credentials, and some back off for long or stop.
            await self.close(code=TRY_AGAIN_LATER_CODE, reason=ADDRESS_BUSY_REASON if address_busy else None)
            return
        _handshakes_in_progress[client] += 1
        # Before it is accepted, the socket's only event is its end (daphne's connect timeout, or
        # the charger gave up): the handshake is then abandoned, and not attached unless its
        # batch had started. The event is dispatched once the handshake is over.
        gone = asyncio.ensure_future(self._socket_receive())
        try:
            await self._handshake(started_at=started_at, abandoned=gone.done)
        except UnitAbandoned:
            logger.info("%s: abandoned (the socket closed) before its attach was written", self.scope["path"])
        except Exception:  # the server's failure (the database away): 503 with a Retry-After, never a 403 or 500
            logger.exception("%s: handshake failed", self.scope["path"])
            await self.close(code=TRY_AGAIN_LATER_CODE)
        finally:
            _handshakes_in_progress[client] -= 1
            if not _handshakes_in_progress[client]:
                del _handshakes_in_progress[client]
            if not gone.done():
                gone.cancel()
        if gone.done() and not gone.cancelled():
            await self.dispatch(gone.result())

    async def _handshake(self, *, started_at: datetime, abandoned: Callable[[], bool]) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        self.ocpp_version: str = kwargs["version"]
        self.charge_point_id: str = kwargs["charge_point_id"]
        charge_point_id_var.set(self.charge_point_id)  # every log line of this connection names it
        open_sessions_bind()  # the sessions its messages keep open (issue 15)
        subprotocol = SUBPROTOCOLS[self.ocpp_version]
        if subprotocol not in self.scope.get("subprotocols", []):
            offered = ", ".join(self.scope.get("subprotocols", [])) or "none"
            logger.info(
                "%s: refused, subprotocol %s not offered (offered: %.200s)", self.charge_point_id, subprotocol, offered
            )
            # OCPP-J 1.6 and 2.0.1 part 4, §3.1.2: the handshake completes without a subprotocol,
            # then the socket is closed at once (not an HTTP refusal).
            await self.accept()
            await self.close()  # 1000: autobahn sends no other code below 3000 for the application
            return
        password, unread = basic_auth_read(self.scope.get("headers", []), self.charge_point_id)
        address = (self.scope.get("client") or ["?"])[0]
        await gateway_process_announced(channel_name=self.channel_name)  # before this process holds presence
        cache_changes.listener_started()  # the process's caches keep rows once subscribed to their changes
        connection = await handshake_attach(
            charge_point_id=self.charge_point_id,
            password=password,
            address=address,
            ocpp_version=self.ocpp_version,
            channel_name=self.channel_name,
            started_at=started_at,
            abandoned=abandoned,
        )
        if isinstance(connection, str):
            presented = f" (presented {unread})" if unread else ""
            logger.info("%s: refused, %s%s", self.charge_point_id, connection, presented)
            # Its password is being checked for another handshake (the charger's own, given up as
            # slow), or not checked past the failure throttle (another charger's guesses from its
            # address: a site's NAT): told to retry (503), not that it is refused (403), which reads
            # as a wrong password.
            await self.close(code=TRY_AGAIN_LATER_CODE if connection in (BEING_CHECKED, THROTTLED) else None)
            return
        if connection.replaced_channel:
            try:
                await connection_close(
                    channel_name=connection.replaced_channel,
                    reason="replaced by a newer connection",
                    replaced_by=self.channel_name,
                )
            except Exception as error:  # the channel layer is away: the older socket is most likely gone too
                logger.warning("%s: could not close the replaced connection: %r", self.charge_point_id, error)
        self.router = ROUTERS[self.ocpp_version](self.charge_point_id, connection=self)
        # daphne's input queue (kernel.daphne_server.InputQueue) tells whether the charger's frames wait
        self.router.frames_queued = getattr(getattr(self._socket_receive, "__self__", None), "holds_events", None)
        metrics.charger_connected(ocpp_version=self.ocpp_version)  # disconnect() takes it back once router is set
        self.router.state_loaded(
            commissioned=connection.commissioned,
            profile=connection.profile,
            boot_identity=connection.boot_identity,
            configuration_read_owed=connection.configuration_read_owed,
            heartbeat_interval=connection.heartbeat_interval,
            heartbeat_interval_owed=connection.heartbeat_interval_owed,
            boot_owed=connection.boot_owed,
        )
        self._last_seen_written = time.monotonic()
        await self.accept(subprotocol)
        self._accepted = True
        connection_held(channel_name=self.channel_name, reclaim=self._presence_reclaimed)
        self.router.boot_asked()  # a charger commissioned while it took itself as Pending

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            if self.router is not None:  # OCPP-J frames are text; a binary frame cannot carry a readable unique id.
                await self.router.binary_frame_ignored(len(bytes_data or b""))
            return
        await self._text_received(text_data)

    async def _text_received(self, text: str) -> None:
        if self.router is None or self._going_away:
            return
        if self._seen_after_silence(self.router.heartbeat_interval):
            await self._seen_written()
        try:
            await self.router.route_message(text)
        except Exception:  # nothing a frame contains may end the connection
            logger.exception("%s: dropped a frame that could not be handled: %.200r", self.charge_point_id, text)

    def _seen_after_silence(self, heartbeat_interval: int) -> bool:
        """Refresh last_seen, at most every CSMS_LAST_SEEN_WRITE_SECONDS (or half the interval).

        Written with the process's batch; True once last_seen was last refreshed
        ``MAY_BE_SWEPT_AFTER`` heartbeat intervals ago, when the offline sweep (2 intervals) may have
        marked the charger offline: then its message must bring it back online (``_seen_written``)
        before it is answered. A charger heartbeating on time (each Heartbeat an interval after the
        last) is never that late. ``heartbeat_interval`` is the one the charger heartbeats at now
        (the router's: a boot's answer or a push it accepted changes it): never coarser than half of
        it, or the offline sweep could fire while messages come.
        """
        now = time.monotonic()
        unrefreshed_for = now - self._last_seen_written
        if unrefreshed_for < min(settings.CSMS_LAST_SEEN_WRITE_SECONDS, heartbeat_interval / 2):
            return False
        self._last_seen_written = now
        if unrefreshed_for >= MAY_BE_SWEPT_AFTER * heartbeat_interval:
            return True
        sightings.add(Sighting(charge_point_id=self.charge_point_id, channel_name=self.channel_name, at=utc_now()))
        return False

    async def _seen_written(self) -> None:
        try:
            await in_commit_group(services.charge_point_seen)(
                charge_point_id=self.charge_point_id, channel_name=self.channel_name
            )
        except Exception:
            logger.exception("%s: could not record last_seen", self.charge_point_id)

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        """Channels' ``send``; a frame's text goes to the server without Channels' two layers,
        and is written at once where the server offers it (``TEXT_AT_ONCE``)."""
        if text_data is not None and not close:
            if self._text_at_once is None or not self._text_at_once(text_data):
                await self.base_send({"type": "websocket.send", "text": text_data})
            return
        await super().send(text_data, bytes_data, close)

    def accepts_calls(self) -> bool:
        """Whether a CALL can be queued to the charger: its socket is accepted and not ended."""
        return self.router is not None and self._accepted and not self._ended

    async def ocpp_call(self, message: dict[str, Any]) -> None:
        """A command for this charger from the RPC (any process): queue it (acknowledged if slow).
        One whose caller gave up waiting for its acknowledgement is dropped (``_still_awaited``)."""
        if not self.accepts_calls():
            await self._reply(message, {"outcome": "not_connected"})
            return
        if message.get("ocpp_version", self.ocpp_version) != self.ocpp_version:
            # The charger reconnected speaking another version since the command was recorded (a
            # command forwarded from its older connection, or sent to its newer one): not its payload.
            asked = message["ocpp_version"]
            description = f"{OTHER_VERSION}{self.ocpp_version}; the OCPP {asked} command was not sent."
            await self._reply(message, {"outcome": "not_connected", "error_description": description})
            return
        if not await self._still_awaited(message):
            return
        if not message.get("acknowledged"):  # a timer, not a task: most answers come first and cancel it (_reply)
            message["ack"] = asyncio.get_running_loop().call_later(ACK_DELAY, self._acknowledge_later, message)
        self._queue_call(message)

    async def _still_awaited(self, request: dict[str, Any]) -> bool:
        """Whether a command's caller still waits for it. The caller waits for the answer or the
        acknowledgement until ``ack_by`` (``commands.rpc``'s, ``ACK_TIMEOUT`` after it asked), then
        reports the charger not connected: a command not acknowledged by then (this process stalled
        meanwhile: paused, its CPU starved) must not be sent after all, and is dropped (logged); one
        its acknowledgement timer would reach too late is acknowledged at once. Processes' clocks
        are taken to agree within ``ACK_MARGIN`` (NTP), as the CALL's deadline takes them to."""
        if request.get("acknowledged") or "ack_by" not in request:
            return True
        left = request["ack_by"] - time.time()
        if left > ACK_DELAY + ACK_MARGIN:
            return True  # its timer acknowledges it in time
        if left > ACK_MARGIN:
            acknowledgement = request.pop("ack", None)
            if isinstance(acknowledgement, asyncio.TimerHandle):
                acknowledgement.cancel()
                await self._acknowledge(request)
            elif acknowledgement is not None:
                await acknowledgement  # already being sent
            else:
                await self._acknowledge(request)
            if request.get("acknowledged"):
                return True
        logger.warning(
            "%s: %s dropped unsent: its caller stopped waiting before it was acknowledged",
            self.charge_point_id,
            request["action"],
        )
        self._presence_reclaimed_after(request["ack_by"])
        return False

    def _presence_reclaimed_after(self, ack_by: float) -> None:
        """A command's caller stopped waiting at ``ack_by`` (this process stalled) and took the
        silence for a dead process: it cleared this connection's presence, the charger offline
        (``gateway_lost``, ``commands.rpc``). The socket is open and served again: once that clear is
        written, the connection claims its presence back (``charge_point_presence_reclaimed``, only if
        still free), the charger online (``gateway_back``) and reachable by commands at once, not only
        after its next message (a heartbeat interval away, 5 minutes by default)."""
        delay = max(0.0, ack_by - time.time()) + PRESENCE_RECLAIM_DELAY

        def reclaim() -> None:
            if not self._ended:
                task = asyncio.get_running_loop().create_task(self._presence_reclaimed())
                _presence_reclaims.add(task)
                task.add_done_callback(_presence_reclaims.discard)

        asyncio.get_running_loop().call_later(delay, reclaim)

    async def _presence_reclaimed(self) -> None:
        """Claims its charger's presence back if free (``charge_point_presence_reclaimed``): after a
        command's caller cleared it (``_presence_reclaimed_after``), or after this process's
        announcement lapsed (``gateway_processes``). Not once the socket ended (its disconnect
        follows), nor once a newer connection replaced it (``ocpp_close``: the charger left it)."""
        if self._ended or self._replaced_by:
            return
        try:
            await in_commit_group(services.charge_point_presence_reclaimed)(
                charge_point_id=self.charge_point_id, channel_name=self.channel_name
            )
        except Exception:
            logger.exception("%s: could not claim its presence back", self.charge_point_id)

    def _acknowledge_later(self, message: dict[str, Any]) -> None:
        """Acknowledge a command still unanswered after ACK_DELAY; a faster answer acknowledges it."""
        message["ack"] = asyncio.create_task(self._acknowledge(message))

    async def _acknowledge(self, message: dict[str, Any]) -> None:
        """Tell a command's caller its CALL is queued or sent, unless the caller has stopped waiting
        (``ack_by``, less ``ACK_MARGIN``): a timer that fires late, the process stalled meanwhile
        (paused, starved of CPU), must not acknowledge a command its caller already reported not
        connected (never sent, so sent again by a retry under its Idempotency-Key); left
        unacknowledged, it is dropped unsent when its turn comes (``_still_awaited``). One already
        written to the socket (``sent``) is acknowledged however late: the charger has it."""
        if "ack_by" in message and not message.get("sent") and message["ack_by"] - time.time() <= ACK_MARGIN:
            return
        try:
            await self.channel_layer.send(message["reply_to"], {"type": "ocpp.call.accepted"})
        except Exception:  # e.g. Redis away: the caller times out on the ack; the socket stays up
            logger.exception("%s: could not acknowledge %s", self.charge_point_id, message.get("action"))
            return
        message["acknowledged"] = True

    async def call_locally(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """A CALL this process sends of its own accord (the configuration read after a boot), queued
        like a command but answered here, without the channel layer: the reply as ``ocpp_call``
        sends it (``{"outcome": ..., ...}``), ``not_connected`` once the socket is gone."""
        if not self.accepts_calls():
            return {"outcome": "not_connected"}
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._queue_call({"action": action, "payload": payload, "deadline": time.time() + timeout, "answer": answer})
        return await answer

    def _queue_call(self, message: dict[str, Any]) -> None:
        """Queue a command for the worker, starting it unless it is already at work."""
        if self._outbound is None:
            self._outbound = collections.deque()
        self._outbound.append(message)
        if self._outbound_worker is None:
            self._outbound_worker = asyncio.create_task(self._send_outbound_calls())

    async def _send_outbound_calls(self) -> None:
        """One outstanding CALL at a time, in arrival order, each within its own deadline; once a
        newer connection replaced this one (``ocpp_close``), or the socket refused a CALL, the
        commands left are handed to it (``_forwarded``) instead.

        Ends once no command is left, and takes the queue with it (the next command starts a new
        worker): an idle connection holds neither. Once the socket ended, it ends after the reply
        it is delivering (``_replying``), the queue left to ``_abandon_outbound_calls``.
        """
        assert self.router is not None and self._outbound is not None
        queued = False  # whether the request waited behind a CALL (the first did not)
        while self._outbound and not self._ended:
            request = self._outbound.popleft()
            self._current_call = request
            remaining = request["deadline"] - time.time()
            if not await self._still_awaited(request):
                if acknowledgement := request.pop("ack", None):
                    acknowledgement.cancel()
                self._current_call = None
                continue
            if self._replaced_by and await self._forwarded(request):  # closing: the newer socket sends it
                self._current_call = None
                continue
            if remaining <= 0 or (queued and remaining < MIN_CALL_SECONDS):  # its caller is answered first
                reply = dict(_NOT_SENT_IN_TIME)
            else:
                try:
                    request["sent"] = True  # its late acknowledgement is not dropped (``_acknowledge``)
                    reply = await self.router.send_call(request["action"], request["payload"], remaining)
                except CallNotSent as error:  # e.g. the socket closed under us: nothing went out
                    logger.warning("%s: could not send %s: %s", self.charge_point_id, request["action"], error)
                    if await self._forwarded(request):  # a newer connection holds the charger: it sends it
                        self._current_call = None
                        continue
                    reply = {"outcome": "not_connected"}
                except Exception:  # after the CALL went out: the charger may have acted on it
                    action = request["action"]
                    logger.exception("%s: %s sent, its answer could not be processed", self.charge_point_id, action)
                    reply = dict(_ANSWER_UNPROCESSED)
                queued = True
            self._current_call = None
            self._replying = True
            try:
                await self._reply(request, reply)
            finally:
                self._replying = False
        if not self._ended:
            self._outbound = self._outbound_worker = None  # no await since the check: nothing was queued meanwhile

    async def _reply(self, request: dict[str, Any], reply: dict[str, Any]) -> None:
        if ack := request.pop("ack", None):
            ack.cancel()
        if answer := request.get("answer"):  # call_locally's
            if not answer.done():
                answer.set_result(reply)
            return
        try:
            await self.channel_layer.send(request["reply_to"], {"type": "ocpp.call.reply", **reply})
        except Exception:
            logger.exception(
                "%s: could not deliver the answer to %s",
                self.charge_point_id,
                request.get("action", request.get("type")),
            )

    async def _abandon_outbound_calls(self) -> None:
        pending: list[dict[str, Any]] = []
        if self._outbound_worker is not None and not self._replying:
            # Not while it delivers a reply (the charger's answer, had before the socket ended: a
            # Reset answered, the socket closed at once as the charger reboots): cancelled, that
            # answer was lost, and with it the acknowledgement its timer no longer sends, so that
            # its caller took the silence for a dead process: NotConnected, never sent, for a
            # command the charger carried out. The worker stops after that reply (``_ended``).
            self._outbound_worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outbound_worker
            if self._current_call:  # sent (or on its way): the charger may have acted on it
                await self._reply(self._current_call, _ANSWER_LOST)
        elif self._outbound_worker is not None:  # held until its reply is delivered
            _replies_delivered.add(self._outbound_worker)
            self._outbound_worker.add_done_callback(_replies_delivered.discard)
        pending += self._outbound or []
        self._outbound = self._outbound_worker = None
        for request in pending:
            if not await self._forwarded(request):
                await self._reply(request, {"outcome": "not_connected"})

    async def _forwarded(self, request: dict[str, Any]) -> bool:
        """A command queued here and not sent, handed to the charger's newer connection (a charger
        that reconnected, to this process or another, while commands waited behind a CALL): its
        caller waits on the same reply channel, and is answered by the charger, not told it is not
        connected. True when the channel layer took it; the CSMS's own CALLs stay here."""
        if not self._replaced_by or "answer" in request or "reply_to" not in request:
            return False
        if ack := request.pop("ack", None):  # the newer connection acknowledges it if slow
            ack.cancel()
        try:
            await self.channel_layer.send(self._replaced_by, {**request, "type": "ocpp.call"})
        except Exception as error:
            logger.warning(
                "%s: could not hand %s to the newer connection: %r", self.charge_point_id, request["action"], error
            )
            return False
        return True

    async def ocpp_close(self, message: dict[str, Any]) -> None:
        """Another part of the system wants this socket gone (newer connection, decommissioning).
        Replaced, the commands not yet sent go to the newer connection from now, not only once
        the socket's end is processed (``_send_outbound_calls``): one sent meanwhile on a socket
        closing would be lost (its caller told the charger is not connected, or that it may
        have acted)."""
        logger.info("%s: closing, %s", self.charge_point_id, message.get("reason", ""))
        self._replaced_by = message.get("replaced_by", "")
        await self.close(code=1000)

    async def csms_going_away(self, message: dict[str, Any]) -> None:
        """The process is stopping (``kernel.daphne_server.GOING_AWAY``, after the frames read before
        it, each answered once committed): close with 1001 Going Away (RFC 6455 7.4.1, "a server going
        down"), a close the charger reconnects after, not a dropped connection; frames after it are
        not handled (neither stored nor answered: the charger sends them again). The close's
        disconnect clears presence as any close does."""
        self._going_away = True
        logger.debug("%s: closing, the process is stopping", self.charge_point_id)
        await self.close(code=GOING_AWAY_CODE)

    async def ocpp_configuration_read_owed(self, message: dict[str, Any]) -> None:
        """The charger's configuration read was left unanswered on an older connection that closed
        after this one's handshake (``configuration.changes.configuration_read_owed_set``): read it
        after the next message."""
        if self.router is not None and not self._ended:
            self.router.configuration_read_owed = True

    async def disconnect(self, code: int) -> None:
        await self._connection_end()

    async def _connection_end(self) -> None:
        if self.router is None or self._ended:
            return
        self._ended = True
        self._ended_at = timezone.now()  # the charger's offline_since, however late the write
        connection_ended(channel_name=self.channel_name)
        # In a task of its own, which daphne cannot cancel: it cancels a consumer still running
        # ``application_close_timeout`` (10 s) after its socket closed, and with PostgreSQL away each
        # write below waits up to the pool's timeout (CSMS_DB_POOL_TIMEOUT, 10 s). Cancelled, the
        # disconnect was neither written nor tried again, and the charger stayed online until the
        # offline sweep (a heartbeat interval or more).
        task = asyncio.get_running_loop().create_task(self._connection_ended())
        _connection_ends.add(task)
        task.add_done_callback(_connection_ends.discard)
        await asyncio.shield(task)

    async def _connection_ended(self) -> None:
        """What a connection's end writes (its buffered rows, then its presence cleared), or, when the
        database refuses the latter, tries again in the background (``_disconnect_retried``)."""
        configuration_reads.connection_closed(self.charge_point_id, self)
        metrics.charger_disconnected(ocpp_version=self.ocpp_version)
        await self._abandon_outbound_calls()
        # Before presence is cleared: a heartbeat written after it would bring the charger back online.
        await heartbeats.flush()
        await sightings.flush()
        await message_log.flush()
        try:
            await self._disconnect_recorded()
        except Exception:
            logger.exception("%s: could not record disconnect; trying again in the background", self.charge_point_id)
            task = asyncio.get_running_loop().create_task(self._disconnect_retried())
            _disconnect_retries.add(task)
            task.add_done_callback(_disconnect_retries.discard)

    async def _disconnect_recorded(self) -> None:
        """Presence cleared (``charge_point_disconnect``); raises what the database raised (a lock
        held past the batch's lock timeout, PostgreSQL restarting)."""
        await in_commit_group(services.charge_point_disconnect)(
            charge_point_id=self.charge_point_id, channel_name=self.channel_name, at=self._ended_at
        )

    async def _disconnect_retried(self) -> None:
        """The disconnect written again after ``DISCONNECT_RETRY_DELAYS`` (about 30 s in all), each
        jittered (a database back after an outage is not met by every closed socket at once), in the
        background: the charger must not stay online until the offline sweep notices (a heartbeat
        interval or more). A process stopped meanwhile leaves it to the dead-process sweep."""
        for delay in DISCONNECT_RETRY_DELAYS:
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # spread, not all at once
            try:
                await self._disconnect_recorded()
            except Exception as error:
                logger.debug("%s: disconnect not recorded yet: %s", self.charge_point_id, error)
            else:
                return
        logger.error("%s: disconnect not recorded; the offline sweep will mark it offline", self.charge_point_id)


# Heartbeat intervals after last_seen was last refreshed from which the offline sweep (which waits 2)
# may have marked a charger offline: half an interval left for the clocks of the gateway's and the
# sweep's hosts, and for a refresh still waiting in the process's batch. A message then writes
# last_seen before it is answered; a Heartbeat on time (one interval after the last) does not.
MAY_BE_SWEPT_AFTER = 1.5

# A CALL that waited behind another with less time left than this is not sent, but answered as
# timed out: the charger would act on a command its caller was told had failed (and hold two CALLs
# from the CSMS at once). The first of a queue is sent whatever is left (CSMS_OCPP_CALL_TIMEOUT=1).
MIN_CALL_SECONDS = 1.0

# Seconds after a dropped command's ``ack_by`` before the connection claims back the presence its
# caller cleared then (``_presence_reclaimed_after``): the caller clears it once it stops waiting.
PRESENCE_RECLAIM_DELAY = 2.0
_presence_reclaims: set[asyncio.Task[None]] = set()  # their tasks (strong references)

# Seconds between the attempts to record a disconnect the database refused (``_disconnect_retried``).
DISCONNECT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
_disconnect_retries: set[asyncio.Task[None]] = set()
_connection_ends: set[asyncio.Task[None]] = set()  # ``_connection_ended``'s tasks (strong references)
# Outbound workers of ended connections, each delivering its last reply (strong references).
_replies_delivered: set[asyncio.Task[None]] = set()

# The reply to the CALL in flight when the socket closed: not "not connected" (it was sent, and a
# Reset or a remote start may have been done), but an answer that never came (the API's 504).
_ANSWER_LOST = {"outcome": "timeout", "error_description": ANSWER_LOST_ON_CLOSE}
# The reply to a CALL sent whose answer this process failed to process (a bug, or a failure past
# the frame's write): as for one lost on close, never "not connected", which a retry sends again.
_ANSWER_UNPROCESSED = {"outcome": "timeout", "error_description": ANSWER_UNPROCESSED}
# The reply to a command whose deadline came while it waited behind other CALLs: a timeout for its
# caller, never sent (a retry under its Idempotency-Key sends it).
_NOT_SENT_IN_TIME = {"outcome": "timeout", "error_description": NOT_SENT_IN_TIME}


class RefusingConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: refused at the handshake."""

    async def connect(self) -> None:
        logger.info("%s: refused, no OCPP route (/ocpp/{1.6|2.0.1}/{identity})", self.scope.get("path"))
        await self.close()
