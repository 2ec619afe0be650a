"""OCPP framing, validation and routing on top of the ``ocpp`` package's ChargePoint.

The package does schema validation and dispatch to ``@on`` handlers. This layer adds what a
CSMS needs around it: a CALLERROR for frames the package would only log, the OCPP 1.6 spelling
of error codes, the message log of every frame in and out, and the charger model's profile:
its quirks, and whether harmless schema violations are accepted (and recorded) instead of refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from django.conf import settings
from django.utils import timezone
from ocpp.charge_point import ChargePoint
from ocpp.exceptions import FormatViolationError, GenericError, OCPPError, SecurityError
from ocpp.messages import Call, CallError, MessageType, unpack

from chargepoints import selectors
from chargepoints.models import MessageDirection
from chargepoints.selectors import STRICT_PROFILE, ChargerProfile
from chargepoints.services import LoggedFrame
from chargepoints.services.profiles import schema_violations_record
from ocpp_gateway import leniency, quirks
from ocpp_gateway.db import database_sync_to_async
from ocpp_gateway.frames import outgoing_frame
from ocpp_gateway.message_log import message_log

logger = logging.getLogger(__name__)

# OCPP 1.6 spells two error codes differently from 2.0.1 (and from the ocpp package).

_LEADING_CALL_ID = re.compile(r'\s*\[\s*2\s*,\s*"([^"\\]{1,64})"')


# What a charger that is not (yet) commissioned may send: OCPP's Pending state.
_SERVED_WHILE_PENDING = {"BootNotification", "Heartbeat", "StatusNotification"}


def _size_in_bytes(raw: str) -> int:
    return len(raw) if len(raw) * 4 <= settings.CSMS_MAX_FRAME_BYTES else len(raw.encode())


class TokenBucket:
    """At most ``rate`` takes per second on average, ``burst`` at once."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class Connection(Protocol):
    async def send(self, text_data: str) -> None: ...


def _readable_unique_id(raw: str) -> str | None:
    """The unique id of a frame that failed to unpack, if one can be read at all."""
    try:
        frame = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str) and frame[1]:
        return frame[1]
    return None


class OcppRouter(ChargePoint):
    """Routes one charger's frames; subclasses add the version's ``@on`` handlers."""

    def __init__(self, charge_point_id: str, connection: Connection) -> None:
        super().__init__(charge_point_id, connection, logger=logger)
        self._inbound_actions: dict[str, str] = {}
        # The one outstanding outbound CALL (OCPP allows one at a time): (unique id, action, answer).
        self._outstanding: tuple[str, str, asyncio.Future[Any]] | None = None
        self._frame_budget = TokenBucket(rate=settings.CSMS_MAX_FRAMES_PER_SECOND, burst=settings.CSMS_FRAME_BURST)
        self._is_commissioned = False
        self._profile: ChargerProfile | None = None  # loaded with the handshake (state_loaded), again at each boot

    def state_loaded(self, *, commissioned: bool, profile: ChargerProfile) -> None:
        """What the handshake loaded (services.attachment): the first message looks nothing up."""
        self._is_commissioned, self._profile = commissioned, profile

    async def route_message(self, raw_msg: str) -> None:
        received_at = timezone.now()
        if _size_in_bytes(raw_msg) > settings.CSMS_MAX_FRAME_BYTES:
            await self._refuse_oversized(raw_msg)
            return
        if not self._frame_budget.take():
            await self._refuse_over_budget(raw_msg)
            return
        try:
            msg = unpack(raw_msg)
        except OCPPError as error:
            self._log(MessageDirection.INBOUND, raw_msg, received_at)
            await self._answer_unparseable(raw_msg, error)
            return
        except RecursionError:  # nesting deeper than the JSON decoder goes
            self._log(MessageDirection.INBOUND, raw_msg, received_at)
            logger.warning("%s: dropped a frame nested too deeply to decode: %.200r", self.id, raw_msg)
            return
        action = getattr(msg, "action", None) or self._outstanding_action(msg.unique_id)
        self._log(MessageDirection.INBOUND, raw_msg, received_at, msg.message_type_id, msg.unique_id, action)
        if msg.message_type_id != MessageType.Call:
            self._response_received(msg)
            return
        self._inbound_actions[str(msg.unique_id)] = msg.action
        try:
            if msg.action not in _SERVED_WHILE_PENDING and not await self._commissioned():
                raise SecurityError(
                    description="The charge point is not commissioned; only BootNotification is served."
                )
            await self._handle_inbound_call(msg, received_at)
        except OCPPError as error:
            await self._send(msg.create_call_error(error).to_json())
        except Exception as error:  # a frame must never take the connection down
            logger.exception("%s: failed to handle %r", self.id, raw_msg[:200])
            await self._send(msg.create_call_error(error).to_json())
        finally:
            self._inbound_actions.pop(str(msg.unique_id), None)

    async def _handle_inbound_call(self, msg: Call, received_at: datetime) -> None:
        """The profile's quirks, then validation and dispatch by the package. A lenient profile's
        message whose violations are all harmless is recorded, then handled unvalidated."""
        profile = await self._current_profile(msg)
        msg.payload = quirks.payload_fixed(msg.payload, quirks=profile.quirks, id_tag_suffix=profile.id_tag_suffix)
        violations = (
            leniency.tolerated_violations(ocpp_version=self._ocpp_version, action=msg.action, payload=msg.payload)
            if profile.lenient and msg.action in self.route_map
            else []
        )
        if not violations:
            await self._handle_call(msg)
            return
        logger.info("%s: accepted %s with %d schema violations (lenient)", self.id, msg.action, len(violations))
        await database_sync_to_async(schema_violations_record)(
            charge_point_id=self.id, action=msg.action, violations=violations, received_at=received_at
        )
        msg.payload = leniency.truncated(msg.payload, ocpp_version=self._ocpp_version, action=msg.action)
        await self._handle_call_unvalidated(msg)

    async def _handle_call_unvalidated(self, msg: Call) -> None:
        """The package validates unless an action's handlers opt out: this one message opts out
        (route maps are per connection, and a connection's CALLs are handled one at a time)."""
        handlers = self.route_map[msg.action]
        skipped = handlers.get("_skip_schema_validation", False)
        handlers["_skip_schema_validation"] = True
        try:
            await self._handle_call(msg)
        finally:
            handlers["_skip_schema_validation"] = skipped

    async def _current_profile(self, msg: Call | None = None) -> ChargerProfile:
        """The charger model's profile: looked up once per connection, and again from every
        BootNotification, which names the model (so a lenient model's first boot is lenient too).

        When the lookup fails (the database is away) the connection is strict until its next boot.
        """
        if msg is not None and msg.action == "BootNotification":
            vendor, model, firmware = leniency.boot_identity(ocpp_version=self._ocpp_version, payload=msg.payload)
            lookup = partial(selectors.charger_profile_for, vendor=vendor, model=model, firmware_version=firmware)
        elif self._profile is None:
            lookup = partial(selectors.charge_point_profile, charge_point_id=self.id)
        else:
            return self._profile
        try:
            self._profile = await database_sync_to_async(lookup)()
        except Exception:
            logger.exception("%s: could not look up the charger model's profile; strict until the next boot", self.id)
            self._profile = STRICT_PROFILE
        return self._profile

    async def _refuse_over_budget(self, raw_msg: str) -> None:
        """Not stored, not parsed: a CALL gets a GenericError, anything else is dropped."""
        logger.warning("%s: over %s frames/s, refused %.80r", self.id, settings.CSMS_MAX_FRAMES_PER_SECOND, raw_msg)
        match = _LEADING_CALL_ID.match(raw_msg[:100])
        if match:
            error = GenericError(description="Rate limit exceeded; slow down.")
            await self._send(Call(match.group(1), "", {}).create_call_error(error).to_json())

    async def _commissioned(self) -> bool:
        """Whether the charger may use the network; read until it is, then kept for the connection.

        Auto-registered chargers are pending: a stranger must not authorize or start sessions.
        """
        if not self._is_commissioned:
            self._is_commissioned = await database_sync_to_async(selectors.charge_point_is_commissioned)(
                charge_point_id=self.id
            )
        return self._is_commissioned

    async def _refuse_oversized(self, raw_msg: str) -> None:
        """Not stored, not parsed: a FormatViolation for the id at its start, if one is there."""
        limit = settings.CSMS_MAX_FRAME_BYTES
        logger.warning("%s: refused a frame of %d bytes (limit %d)", self.id, len(raw_msg), limit)
        match = _LEADING_CALL_ID.match(raw_msg[:100])
        if match:
            error = FormatViolationError(description=f"Frame of {len(raw_msg)} bytes is over the {limit} byte limit.")
            await self._send(Call(match.group(1), "", {}).create_call_error(error).to_json())

    async def _answer_unparseable(self, raw_msg: str, error: OCPPError) -> None:
        unique_id = _readable_unique_id(raw_msg)
        if unique_id is None:
            logger.warning("%s: dropped unreadable frame (%s): %.200r", self.id, error.code, raw_msg)
            return
        await self._send(Call(unique_id, "", {}).create_call_error(error).to_json())

    def _outstanding_action(self, unique_id: Any) -> str:
        if self._outstanding and self._outstanding[0] == unique_id:
            return self._outstanding[1]
        return ""

    def _response_received(self, msg: Any) -> None:
        """A CALLRESULT or CALLERROR: the answer to the outstanding CALL, or late and dropped."""
        if self._outstanding and self._outstanding[0] == msg.unique_id and not self._outstanding[2].done():
            self._outstanding[2].set_result(msg)
            return
        logger.warning("%s: dropped a response to %r, which no CALL awaits (late or unknown)", self.id, msg.unique_id)

    async def send_call(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one CALL and wait up to ``timeout`` seconds for its answer.

        Callers serialise their calls (the consumer's outbound queue); the answer comes back as
        a dict ready for the channel layer: ``{"outcome": ..., "payload"| "error_*": ...}``.
        """
        unique_id = str(uuid.uuid4())
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._outstanding = (unique_id, action, answer)
        try:
            await self._send(Call(unique_id, action, payload).to_json())
            response = await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            return {"outcome": "timeout"}
        finally:
            self._outstanding = None
        if response.message_type_id == MessageType.CallError:
            error_code = str(response.error_code)
            if quirks.FORMATION_VIOLATION_SPELLING in (await self._current_profile()).quirks:
                error_code = quirks.error_code_spelled(error_code, ocpp_version=self._ocpp_version)
            return {
                "outcome": "call_error",
                "error_code": error_code,
                "error_description": str(response.error_description or ""),
                "error_details": response.error_details if isinstance(response.error_details, dict) else {},
            }
        return {"outcome": "result", "payload": response.payload if isinstance(response.payload, dict) else {}}

    async def _send(self, message: str) -> None:
        message_type, unique_id, frame = outgoing_frame(message)
        if frame is not None and message_type == MessageType.CallError:
            code = quirks.error_code_spelled(frame[2], ocpp_version=self._ocpp_version)
            if code != frame[2]:
                message = CallError(frame[1], code, frame[3], frame[4]).to_json()
        is_call = frame is not None and message_type == MessageType.Call
        action = frame[2] if is_call else self._inbound_actions.get(unique_id, "")
        self._log(MessageDirection.OUTBOUND, message, timezone.now(), message_type, unique_id, action)
        await self._connection.send(message)

    def _log(
        self,
        direction: str,
        frame: str,
        at: Any,
        message_type: int | None = None,
        unique_id: Any = "",
        action: str = "",
    ) -> None:
        message_log.add(
            LoggedFrame(
                charge_point_id=self.id,
                direction=direction,
                frame=frame,
                created_at=at,
                message_type=message_type if isinstance(message_type, int) else None,
                unique_id=str(unique_id),
                action=action if isinstance(action, str) else "",
            )
        )
