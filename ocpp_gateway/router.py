"""OCPP framing, validation and routing on top of the ``ocpp`` package's ChargePoint.

The package does schema validation and dispatch to ``@on`` handlers (through ocpp_package, the
one module that touches its internals). This layer adds what a
CSMS needs around it: a CALLERROR for frames the package would only log, the OCPP 1.6 spelling
of error codes, the message log of every frame received and every frame sent, and the charger model's profile:
its quirks, and whether harmless schema violations are accepted (and recorded) instead of refused.
"""

from __future__ import annotations

import asyncio
import json
import json.scanner
import logging
import math
import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from django.conf import settings
from django.utils import timezone
from ocpp.exceptions import (
    FormatViolationError,
    GenericError,
    NotImplementedError,
    NotSupportedError,
    OCPPError,
    PropertyConstraintViolationError,
    ProtocolError,
    SecurityError,
    TypeConstraintViolationError,
)
from ocpp.messages import Call, CallError, CallResult, MessageType, unpack
from ocpp.v16.enums import Action as V16Action
from ocpp.v201.enums import Action as V201Action

from chargepoints import selectors
from chargepoints.models import MessageDirection
from chargepoints.quirks import FORMATION_VIOLATION_SPELLING
from chargepoints.selectors import STRICT_PROFILE, ChargerProfile
from chargepoints.services import LoggedFrame
from chargepoints.services.profiles import schema_violations_record
from commands import charger_passwords, redaction
from commands import selectors as command_selectors
from commands.services import commissioned_charger_boot_ask, heartbeat_interval_owed_push
from kernel import metrics, schemas
from kernel.log_format import bind_message
from kernel.ocpp_package import RoutedChargePoint, frame_text
from kernel.parsers import MAX_JSON_DEPTH, json_depth
from kernel.schema_errors import json_text
from kernel.storable_text import (
    json_text_may_hold_unstorable_text,
    text_escaped,
    unstorable_numbers_replaced,
    unstorable_text_paths,
    unstorable_text_replaced,
)
from kernel.timestamps import utc_now
from ocpp_gateway import leniency, quirks, rpc_errors
from ocpp_gateway.configuration_refresh import refresh_owed
from ocpp_gateway.db import database_sync_to_async
from ocpp_gateway.frames import outgoing_frame
from ocpp_gateway.heartbeats import heartbeat_interval_accepted
from ocpp_gateway.message_log import message_log

logger = logging.getLogger(__name__)

# OCPP 1.6 spells two error codes differently from 2.0.1 (and from the ocpp package).

# An answer's (CALLRESULT, CALLERROR) id at its start: whether a frame refused unread (over the size
# or rate limit, not JSON) answers the CALL the CSMS awaits. A byte-order mark first too, as before
# a CALL's id (``rpc_errors.leading_call_id``): such an answer is no JSON, and fails its command at once.
_LEADING_ANSWER_ID = re.compile(r'\ufeff?\s*\[\s*[34]\s*,\s*"([^"\\]{1,64})"')


_ACTION_SHOWN = 50  # characters of an unknown action named in a CALLERROR's cause
# Every action each version defines. The package's exception classes are right, but its router
# raises them the other way round (OCPP-J 1.6 §4.2.3, OCPP 2.0.1 part 4 §4.2.3): an action the
# version does not define is NotImplemented, one it defines that the CSMS does not answer NotSupported.
_DEFINED_ACTIONS = {"1.6": {a.value for a in V16Action}, "2.0.1": {a.value for a in V201Action}}
# Messages that carry a session: unstorable text in them is replaced, never refused.
_TEXT_REPLACED_IN = {"StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent"}

# What a charger that is not (yet) commissioned (its Boot answered Pending) may send of its own
# accord. 1.6 §4.2 has it send nothing but BootNotification unless a TriggerMessage asks, yet mandates
# no refusal, and many 1.6 chargers heartbeat and report their connectors and uploads while Pending:
# those are served, and so are the security whitepaper's notifications (its firmware statuses, as the
# core ones; its security events, a tamper alarm refused being one lost). 2.0.1 B02.FR.09 (OCTT
# TC_B_30) mandates a SecurityError for any CALL but BootNotification that the CSMS did not ask for.
# Meter values and sessions are not taken unasked from a charger nobody commissioned.
_SERVED_WHILE_PENDING = {
    "1.6": frozenset(
        {
            "BootNotification",
            "Heartbeat",
            "StatusNotification",
            "FirmwareStatusNotification",
            "DiagnosticsStatusNotification",
            "LogStatusNotification",
            "SignedFirmwareStatusNotification",
            "SecurityEventNotification",
        }
    ),
    "2.0.1": frozenset({"BootNotification"}),
}
# And, in both versions, what the CSMS asked for on the connection (``OcppRouter._asked_noted``): the
# requestedMessage of a TriggerMessage (1.6 §4.2, 2.0.1 B02.FR.09; the Sign*Certificate triggers ask
# for SignCertificate, which the CSMS does not answer: NotSupported) or of a 1.6 ExtendedTriggerMessage
# (security whitepaper: its FirmwareStatusNotification asks for a SignedFirmwareStatusNotification, its
# SignChargePointCertificate for a SignCertificate), the NotifyReport of a
# GetBaseReport or GetReport (B02.FR.01, B02.FR.09), and the statuses of a firmware update or log
# upload the CSMS asked of the charger; 2.0.1 statuses naming (requestId) an UpdateFirmware or GetLog
# the station accepted on an earlier connection too (its update's reboot: ``_status_asked_earlier``).
_ASKED_BY = {
    "GetBaseReport": "NotifyReport",
    "GetReport": "NotifyReport",
    "UpdateFirmware": "FirmwareStatusNotification",
    "GetLog": "LogStatusNotification",
}
# The message a 1.6 ExtendedTriggerMessage's requestedMessage asks for, where it is not its name.
_EXTENDED_TRIGGERED = {
    "FirmwareStatusNotification": "SignedFirmwareStatusNotification",
    "SignChargePointCertificate": "SignCertificate",
}


class _Triggered:
    """What one accepted TriggerMessage (or 1.6 ExtendedTriggerMessage) asks of a pending charger: its
    ``requestedMessage`` once, or once per EVSE, connector or session it concerns (a StatusNotification
    per connector, a MeterValues per EVSE, a TransactionEvent per ongoing transaction), of the EVSE
    (2.0.1 ``evse``) or connector (1.6 ``connectorId``) it named, if it named one. A message it does not
    cover (another EVSE's, a second one of the same, a TransactionEvent not sent for the trigger) is no
    longer served: B02.FR.09 allows only the triggered messages, not every later one of their kind
    (a TransactionEvent Started of a station nobody commissioned). One of its EVSE or connector (any,
    if it named none) that it does not cover ends it (``ended_by``): the charger reports on its own now."""

    __slots__ = ("_connector_id", "_evse_id", "_sent", "_version", "action")

    def __init__(self, version: str, action: str, payload: dict[str, Any]) -> None:
        self._version, self.action = version, action
        evse = payload.get("evse") if version == "2.0.1" else None
        self._evse_id = _id_of(evse.get("id")) if isinstance(evse, dict) else None
        named = evse if isinstance(evse, dict) else payload if version == "1.6" else {}
        self._connector_id = _id_of(named.get("connectorId"))
        self._sent: set[Any] = set()

    def served(self, payload: Any) -> bool:
        """Whether ``payload`` is one of the messages asked for (and not sent yet); noted as sent."""
        key = self._key(payload if isinstance(payload, dict) else {})
        if key is _NOT_TRIGGERED or key in self._sent:
            return False
        self._sent.add(key)
        return True

    def ended_by(self, payload: Any) -> bool:
        """Whether ``payload``, which no trigger covered, ends this one: it is of the EVSE or connector
        this trigger named (of any, if it named none). Another EVSE's or connector's message ends
        only its own trigger: the statuses asked of EVSE 2 are still served after EVSE 3's, unasked."""
        payload = payload if isinstance(payload, dict) else {}
        action = self.action
        if self._version == "1.6" and action in ("StatusNotification", "MeterValues"):
            return self._connector_id in (None, _id_of(payload.get("connectorId")))
        if self._version != "2.0.1":
            return True
        if action in ("StatusNotification", "MeterValues"):
            evse_id = _id_of(payload.get("evseId"))
            named_connector = self._connector_id if action == "StatusNotification" else None
            connector_id = _id_of(payload.get("connectorId"))
            return self._evse_id in (None, evse_id) and named_connector in (None, connector_id)
        if action == "TransactionEvent":
            evse = payload.get("evse")
            evse_id = _id_of(evse.get("id")) if isinstance(evse, dict) else None
            return self._evse_id is None or evse_id in (None, self._evse_id)
        return True

    def _key(self, payload: dict[str, Any]) -> Any:
        """What the message is of (each is sent once per trigger), or ``_NOT_TRIGGERED``."""
        action = self.action
        if self._version == "1.6" and action in ("StatusNotification", "MeterValues"):
            connector_id = _id_of(payload.get("connectorId"))
            return connector_id if self._connector_id in (None, connector_id) else _NOT_TRIGGERED
        if self._version != "2.0.1":
            return None
        if action in ("StatusNotification", "MeterValues"):
            evse_id, connector_id = _id_of(payload.get("evseId")), _id_of(payload.get("connectorId"))
            # A MeterValues names its EVSE alone: the trigger's connector (EVSEType allows one) is within it
            named_connector = self._connector_id if action == "StatusNotification" else None
            if self._evse_id not in (None, evse_id) or named_connector not in (None, connector_id):
                return _NOT_TRIGGERED
            return (evse_id, connector_id)
        if action == "TransactionEvent":
            # F06: a triggered TransactionEvent reports an ongoing transaction (Updated, reason Trigger)
            if payload.get("eventType") != "Updated" or payload.get("triggerReason") != "Trigger":
                return _NOT_TRIGGERED
            evse = payload.get("evse")
            evse_id = _id_of(evse.get("id")) if isinstance(evse, dict) else None
            if self._evse_id is not None and evse_id not in (None, self._evse_id):
                return _NOT_TRIGGERED
            info = payload.get("transactionInfo")
            transaction_id = info.get("transactionId") if isinstance(info, dict) else None
            return transaction_id if isinstance(transaction_id, str) else _NOT_TRIGGERED
        return None


_NOT_TRIGGERED = object()


def _id_of(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_PENDING_REFUSAL = {
    "1.6": "The charge point is not commissioned; only {} and what the Central System asked for on this "
    "connection are served.".format(", ".join(sorted(_SERVED_WHILE_PENDING["1.6"]))),
    "2.0.1": "The station is Pending: only BootNotification, what the CSMS asked for on this connection "
    "(TriggerMessage, GetBaseReport, GetReport, UpdateFirmware, GetLog) and the statuses of an UpdateFirmware "
    "or GetLog it accepted earlier (by requestId) are served.",
}


def _asked_accepted(answered: dict[str, Any]) -> bool:
    """Whether ``send_call``'s answer accepts what the CSMS asked of a pending charger: a CALLRESULT
    whose ``status`` is Accepted (GetLog's and UpdateFirmware's AcceptedCanceled too), or that has
    none (1.6 UpdateFirmware.conf)."""
    if answered["outcome"] != "result":
        return False
    return answered["payload"].get("status", "Accepted") in ("Accepted", "AcceptedCanceled")


def _size_in_bytes(raw: str, limit: int) -> int:
    return len(raw) if len(raw) * 4 <= limit else len(raw.encode())


class TokenBucket:
    """At most ``rate`` takes per second on average, ``burst`` at once."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._at = float(burst), time.monotonic()

    def take(self) -> bool:
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def wait_for_one(self) -> float:
        """Seconds until a take succeeds (0: now)."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self.rate)

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now


# The longest a frame over the rate is held for the rate instead of refused (``OcppRouter._paced``), s.
PACED_WAIT_MAX = 1.0

# The longest a frame's work beyond its own waits for the frame rate (``OcppRouter.frame_budget_waited``), s.
FRAME_WORK_WAIT_MAX = 5.0
# Sampled values a message carries as the frame's own work; each as many more take a turn of the
# frame rate (``OcppRouter.readings_paced``). A three-phase charger's periodic reading is some 30.
SAMPLES_PER_TURN = 50
Item = TypeVar("Item")

# Refused CALLs answered with the rate limit's GenericError: at most this many times the frame rate
# and burst (a charger that waits for each answer, and slows down as it asks, never reaches it).
REFUSALS_ANSWERED = 4


class Connection(Protocol):
    async def send(self, text_data: str) -> None: ...


# json.loads' own scanner, called directly: a frame that starts with its list and ends with it.
_SCAN_ONCE: Any = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def message_unpacked(raw: str, *, ids_are_strings: bool = False) -> Call | CallResult | CallError:
    """``ocpp.messages.unpack(raw)``: a CALL, the bulk of what chargers send, is read at once (a
    frame ``[2, ...]`` of four elements, nothing around it); anything else goes to ``unpack``, which
    raises the package's errors for a frame it refuses. A CALL whose action is not a string raises
    FormatViolation, as does one whose payload is not an object; with ``ids_are_strings`` (2.0.1,
    part 4 §4.1: a string), a message whose id is not a non-empty string raises
    ``rpc_errors.RpcFrameworkError`` (answered for a CALL only); in 1.6 one whose id is neither a
    string nor an integer raises FormatViolation (unanswered: its id cannot be echoed, NaN is no JSON)."""
    try:
        frame, end = _SCAN_ONCE(raw, 0)
    except (StopIteration, ValueError):  # not JSON from its first character: the package says why
        return unpack(raw)
    if end == len(raw) and type(frame) is list and len(frame) == 4 and frame[0] == MessageType.Call:
        message: Call | CallResult | CallError = Call(frame[1], frame[2], frame[3])
    elif end == len(raw) and type(frame) is list and len(frame) > 4 and frame[0] == MessageType.Call:
        # the package's cause for it is "Message is missing elements."
        cause = f"A CALL has 4 elements (type, id, action, payload), this one {len(frame)}."
        raise ProtocolError(details={"cause": cause})
    else:
        message = unpack(raw)
    if isinstance(message, Call) and type(message.action) is not str:  # a list is no action (nor hashable)
        raise FormatViolationError(description="The action is not a string.")
    if isinstance(message, Call) and type(message.payload) is not dict:  # OCPP-J 1.6 §4.2.1: a JSON object
        raise FormatViolationError(description="The payload is not a JSON object.")
    if ids_are_strings and (type(message.unique_id) is not str or not message.unique_id):
        raise rpc_errors.RpcFrameworkError(details={"cause": "The message id could not be read."})
    if type(message.unique_id) not in (str, int):  # 1.6 echoes an integer id; no other (NaN is no JSON)
        raise FormatViolationError(description="The message id is not a string.")
    return message


def _readable_unique_id_of(frame: Any) -> str | None:
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str) and frame[1]:
        return frame[1]
    return None


def _frame_with_numbers_as_text(raw: str) -> Any:
    """The frame decoded with every number kept as its text, or None if it is not JSON."""
    try:
        return json.loads(raw, parse_int=str, parse_float=str)
    except (ValueError, RecursionError):
        return None


def _storable_payload(msg: Call) -> Any:
    """The CALL's payload if PostgreSQL can store its text; else session messages get U+FFFD in
    place of each NUL or lone surrogate (never refused, issue 13 B), any other CALL is refused.

    A string where a string belongs, holding a value no field may hold, is a
    PropertyConstraintViolation (OCPP-J 1.6 §4.2.3, OCPP 2.0.1 part 4 §4.3).
    """
    paths = unstorable_text_paths(msg.payload)
    if not paths:
        return msg.payload
    if msg.action in _TEXT_REPLACED_IN:
        return unstorable_text_replaced(msg.payload)
    fields = ", ".join(path or "(payload)" for path in paths)
    raise PropertyConstraintViolationError(description=f"NUL or unpaired surrogate in: {fields}"[:255])


_ANSWER_TOO_DEEP = {
    "outcome": "call_error",
    "error_code": "FormatViolation",
    "error_description": "The answer is nested deeper than any OCPP message.",
    "error_details": {},
}


# A CALLERROR whose errorCode is not a string (OCPP-J 1.6 §4.2.3, 2.0.1 part 4 §4.2.3): malformed, as
# one missing an element is; its number or list was passed on as the code (the API's ``"error": "123"``).
_ERROR_CODE_NOT_TEXT = {
    "outcome": "call_error",
    "error_code": "FormatViolation",
    "error_description": "The answer is a CALLERROR whose errorCode is not a string.",
    "error_details": {},
}


def _description_text(description: Any) -> str:
    """A CALLERROR's errorDescription as the command keeps it: a string as sent, none (null) as "",
    any other JSON value as its JSON text, not Python's (``['a']``, ``True``)."""
    if description is None:
        return ""
    if isinstance(description, str):
        return description
    return json.dumps(description, ensure_ascii=False)


def _answer_storable(value: Any) -> Any:
    """A charger's answer (payload, error details) as the command record stores it and the channel
    layer carries it back: unstorable text and numbers replaced (NaN, infinity, an integer beyond
    64 bits: as their text, which the response schema then names)."""
    return unstorable_numbers_replaced(unstorable_text_replaced(value))


class CallNotSent(Exception):
    """``send_call``'s CALL frame was not written (the socket closed under it): the charger cannot
    have it. Only this failure may be answered as not connected, a command a retry may send again."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class OcppRouter(RoutedChargePoint):
    """Routes one charger's frames; subclasses add the version's ``@on`` handlers."""

    # Frames refused over the rate since the last line said so, and when it did (``_refuse_over_budget``):
    # class defaults, so that a connection never refused holds neither.
    _over_budget_unlogged = 0
    _over_budget_logged_at = -math.inf
    _refusals: TokenBucket | None = None  # the refused CALLs answered (``_refusals_answered``), once refused
    _asked_while_pending: frozenset[str] = frozenset()  # actions the CSMS asked for while not commissioned
    _asked_earlier: frozenset[tuple[str, int]] = frozenset()  # statuses of requests made on an earlier connection
    _frame_received = 0.0  # perf_counter() when the frame being routed arrived (``route_message``)

    def __init__(self, charge_point_id: str, connection: Connection) -> None:
        super().__init__(charge_point_id, connection, logger=logger)
        self._inbound_actions: dict[str, str] = {}
        self._triggered: dict[str, list[_Triggered]] = {}  # what accepted triggers asked of it while not commissioned
        # The one outstanding outbound CALL (OCPP allows one at a time): (unique id, action, answer).
        self._outstanding: tuple[str, str, asyncio.Future[Any]] | None = None
        self._max_frame_bytes: int = settings.CSMS_MAX_FRAME_BYTES
        self._frame_budget = TokenBucket(rate=settings.CSMS_MAX_FRAMES_PER_SECOND, burst=settings.CSMS_FRAME_BURST)
        self._is_commissioned = False
        # Whether frames of the charger wait behind the one being handled (the consumer's, when its server
        # tells: daphne's input queue); None: unknown, taken as pipelined.
        self.frames_queued: Callable[[], bool] | None = None
        self._profile: ChargerProfile | None = None  # loaded with the handshake (state_loaded), again at each boot
        self._handshake_boot_identity: tuple[str, str, str] | None = None  # what _profile was loaded for, until a boot
        self._firmware_version_booted = ""  # of the charger's last boot (loaded with the handshake, then each boot)
        self.configuration_read_owed = False  # loaded with the handshake (state_loaded)
        # An interval the charger has not taken is stored (loaded with the handshake, state_loaded): pushed
        # once its first CALL is answered, unless that is a BootNotification (its answer carries it).
        self.heartbeat_interval_owed = False
        # Commissioned, its last boot answered Pending (loaded with the handshake, state_loaded): asked to
        # boot once the connection is accepted (``boot_asked``), unless it boots first.
        self.boot_owed = False
        self._pushes: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps weak ones)
        # The interval (s) the charger heartbeats at: loaded with the handshake (state_loaded), then
        # each BootNotification's answer and each push it accepts (``heartbeat_interval_accepted``).
        # The consumer refreshes ``last_seen`` at least every half of it (``_seen_after_silence``).
        self.heartbeat_interval: int = settings.CSMS_DEFAULT_HEARTBEAT_INTERVAL

    def state_loaded(
        self,
        *,
        commissioned: bool,
        profile: ChargerProfile,
        boot_identity: tuple[str, str, str] = ("", "", ""),
        configuration_read_owed: bool = False,
        heartbeat_interval: int | None = None,
        heartbeat_interval_owed: bool = False,
        boot_owed: bool = False,
    ) -> None:
        """What the handshake loaded (services.attachment): the first message looks nothing up, nor
        does the first BootNotification when it names the model the profile was loaded for.
        ``configuration_read_owed``: the read is queued once the next CALL is answered
        (``configuration_refresh``), by the boot's hook when it is a BootNotification."""
        self._is_commissioned, self._profile = commissioned, profile
        self._handshake_boot_identity = boot_identity if boot_identity[0] else None
        self._firmware_version_booted = boot_identity[2]
        self.configuration_read_owed = configuration_read_owed
        self.heartbeat_interval_owed = heartbeat_interval_owed
        self.boot_owed = boot_owed
        if heartbeat_interval is not None:
            self.heartbeat_interval = heartbeat_interval

    def firmware_version_changed(self, firmware_version: str) -> bool:
        """Whether a BootNotification reports a firmware version other than the one the charger last
        booted on (a first boot's, or one naming none, is no change): the rare boot that may follow a
        firmware update's install (``firmware.firmware_booted``). Remembers it for the next boot."""
        previous, self._firmware_version_booted = self._firmware_version_booted, firmware_version
        return bool(previous) and firmware_version not in ("", previous)

    async def route_message(self, raw_msg: str) -> None:
        received_at = utc_now()
        self._frame_received = time.perf_counter()  # a frame refused unread is counted from here (``_send_message``)
        # An oversized frame counts against the rate too: each one refused is an answer and a log line.
        if (
            not self._frame_budget.take()
            and not self._answers_the_outstanding_call(raw_msg)
            and not await self._paced(raw_msg)
        ):
            bind_message(action="", unique_id="")  # lines about it name no message (nor the one before)
            await self._refuse_over_budget(raw_msg)
            return
        if (size := _size_in_bytes(raw_msg, self._max_frame_bytes)) > self._max_frame_bytes:
            bind_message(action="", unique_id="")
            await self._refuse_oversized(raw_msg, size)
            return
        try:
            msg = message_unpacked(raw_msg, ids_are_strings=self._ocpp_version == "2.0.1")
        except (OCPPError, RecursionError) as error:  # RecursionError: nested deeper than the decoder goes
            bind_message(action="", unique_id="")
            await self._refuse_unreadable(raw_msg, received_at, error)
            return
        except ValueError as error:  # a number Python will not convert (over 4300 digits)
            bind_message(action="", unique_id="")
            await self._answer_undecodable_number(raw_msg, received_at, error)
            return
        # An answer's action is the awaited CALL's: a fourth element of a CALLRESULT (the package reads it
        # as ``action``, any JSON value) names nothing the CSMS sent.
        action = msg.action if isinstance(msg, Call) else self._outstanding_action(msg.unique_id)
        bind_message(action=action, unique_id=str(msg.unique_id))
        if action in charger_passwords.REDACTED_ACTIONS:  # a password the charger reports (write-only)
            raw_msg = charger_passwords.frame_redacted(self._ocpp_version, action, raw_msg)
        self._log(MessageDirection.INBOUND, raw_msg, received_at, msg.message_type_id, msg.unique_id, action)
        if msg.message_type_id != MessageType.Call:
            self._response_received(msg)
            return
        self._inbound_actions[str(msg.unique_id)] = msg.action
        self._call_received = time.perf_counter()
        if msg.action == "BootNotification":  # it boots of itself: its answer is Accepted, nothing to ask
            self.boot_owed = False
        try:
            if msg.action not in self.route_map:
                raise self._unanswered(msg.action)
            if (
                not self._is_commissioned
                and not self._served_while_pending(msg.action, msg.payload)
                and not await self._commissioned()
                and not await self._status_asked_earlier(msg.action, msg.payload)
            ):
                raise SecurityError(description=_PENDING_REFUSAL[self._ocpp_version])
            await self._handle_inbound_call(msg, received_at, raw_msg)
            if self.configuration_read_owed and msg.action != "BootNotification":  # a boot's hook asks its own
                self.configuration_read_owed = not refresh_owed(self.id, self._connection)
            if self.heartbeat_interval_owed:
                self.heartbeat_interval_owed = False
                if msg.action != "BootNotification":  # a boot's answer carries the interval
                    self._heartbeat_interval_pushed()
        except OCPPError as error:
            await self._send_message(msg.create_call_error(error))
        except Exception as error:  # a frame must never take the connection down
            logger.exception("%s: failed to handle %r", self.id, raw_msg[:200])
            await self._send_message(msg.create_call_error(error))
        finally:
            self._inbound_actions.pop(str(msg.unique_id), None)

    def boot_asked(self) -> None:
        """Once the connection is accepted: a commissioned charger whose last boot was answered Pending
        (``boot_owed``) is asked to boot again, in the background (``commissioned_charger_boot_ask``).
        A charger that takes itself as Pending sends no request of its own until its Pending interval
        runs out (1.6 §4.2; 2.0.1 B02: the CSMS may trigger its BootNotification meanwhile)."""
        if not self.boot_owed:
            return

        async def ask() -> None:
            if not self.boot_owed:  # it booted meanwhile
                return
            self.boot_owed = False
            try:
                await database_sync_to_async(commissioned_charger_boot_ask)(charge_point_id=self.id)
            except Exception:
                logger.exception("%s: could not ask the commissioned charger to boot", self.id)

        task = asyncio.get_running_loop().create_task(ask())
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    def _heartbeat_interval_pushed(self) -> None:
        """Push the interval the charger has not taken, in the background (``heartbeat_interval_owed``)."""

        async def push() -> None:
            try:
                await database_sync_to_async(heartbeat_interval_owed_push)(charge_point_id=self.id)
            except Exception:
                logger.exception("%s: could not push the heartbeat interval", self.id)

        task = asyncio.get_running_loop().create_task(push())
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    def _unanswered(self, action: str) -> OCPPError:
        if action in _DEFINED_ACTIONS[self._ocpp_version]:
            return NotSupportedError(
                description="Requested Action is recognized but not supported by the receiver",
                details={"cause": f"The CSMS does not answer {action}."},
            )
        return NotImplementedError(
            description="Requested Action is not known by receiver",
            # the name cut, as every cause is: errorDetails never give the frame back
            details={"cause": f"{json_text(action[:_ACTION_SHOWN])} is not an OCPP {self._ocpp_version} action."},
        )

    async def _handle_inbound_call(self, msg: Call, received_at: datetime, raw_msg: str) -> None:
        """The profile's quirks, then validation and dispatch by the package. When the package
        refuses the payload, a session message whose violations the CSMS can absorb (any profile),
        or a lenient profile's message whose violations are all harmless, is recorded with its
        frame, then handled as mended; anything else keeps the package's CALLERROR."""
        profile = self._profile
        if profile is None or msg.action == "BootNotification":  # else the one kept: no coroutine per frame
            profile = await self._current_profile(msg)
        msg.payload = quirks.payload_fixed(msg.payload, quirks=profile.quirks, id_tag_suffix=profile.id_tag_suffix)
        if json_text_may_hold_unstorable_text(raw_msg):
            msg.payload = _storable_payload(msg)
        try:
            await self.call_dispatched(msg)
            return
        except OCPPError:
            # The package refused the payload (its handler did not run) or, the payload being
            # valid, an answer or an action it does not route: ``accepted`` is None for those.
            accepted = leniency.accepted(
                ocpp_version=self._ocpp_version,
                action=msg.action,
                payload=msg.payload,
                lenient=profile.lenient,
                received_at=received_at,
            )
            if accepted is None:
                raise
        logger.info("%s: accepted %s with %d schema violations", self.id, msg.action, len(accepted.violations))
        await database_sync_to_async(schema_violations_record)(
            charge_point_id=self.id,
            action=msg.action,
            violations=accepted.violations,
            received_at=received_at,
            frame=raw_msg,
        )
        msg.payload = accepted.payload
        await self.call_dispatched(msg, validated=False)

    async def _current_profile(self, msg: Call | None = None) -> ChargerProfile:
        """The charger model's profile: looked up once per connection, and again from every
        BootNotification, which names the model (so a lenient model's first boot is lenient too).

        When the lookup fails (the database is away) the connection is strict until its next boot.
        """
        if msg is not None and msg.action == "BootNotification":
            identity = leniency.boot_identity(ocpp_version=self._ocpp_version, payload=msg.payload)
            loaded_for, self._handshake_boot_identity = self._handshake_boot_identity, None
            if identity == loaded_for and self._profile is not None:  # just read by the handshake
                return self._profile
            vendor, model, firmware = identity
            kept = selectors.charger_profile_kept(vendor=vendor, model=model, firmware_version=firmware)
            if kept is not None:  # the process keeps the profiles: no thread hop, no statement
                self._profile = kept
                return kept
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

    async def frame_budget_waited(self, count: int) -> int:
        """Take ``count`` of the frame rate's turns for work a frame asks beyond its own, each as
        much as a frame's (a NotifyEvent's connector statuses, each a StatusNotification's write; a
        ReportChargingProfiles' profiles, each a SetChargingProfile's), waiting for the rate as a
        compliant charger's frames are held (``_paced``), ``FRAME_WORK_WAIT_MAX`` s at most in all:
        how many were taken, the rest to be left undone. A station catching up its queue (the
        rate spent) still has its few connectors' statuses set; a frame of hundreds made up costs
        what as many frames at the rate would, or is cut."""
        taken, deadline = 0, time.monotonic() + FRAME_WORK_WAIT_MAX
        while taken < count:
            if self._frame_budget.take():
                taken += 1
                continue
            wait = self._frame_budget.wait_for_one()
            if time.monotonic() + wait > deadline:
                break
            await asyncio.sleep(wait)
        return taken

    async def readings_paced(self, meter_values: Any) -> None:
        """A message's readings (``meterValue``, 1.6 ``transactionData``: ``[{timestamp, sampledValue:
        [...]}]``) as a frame's work: its first ``SAMPLES_PER_TURN`` sampled values are the frame's
        own, each ``SAMPLES_PER_TURN`` more take a turn of the frame rate, waited for
        (``frame_budget_waited``), never cut: they are readings to bill. Each sampled value is a
        ledger row, and a frame carries thousands (3,400 within 64 KB: 84 ms of the process, so a
        charger at 20 frames a second asked for more than two cores); such a frame now costs what as
        many ordinary messages at the rate would, or waits ``FRAME_WORK_WAIT_MAX`` s."""
        count = sum(
            len(entry["sampledValue"])
            for entry in meter_values or ()
            if isinstance(entry, dict) and isinstance(entry.get("sampledValue"), list)
        )
        if count > SAMPLES_PER_TURN:
            await self.frame_budget_waited((count - 1) // SAMPLES_PER_TURN)

    async def frame_work_kept(self, items: list[Item], what: str) -> list[Item]:
        """``items``, a frame's work (``what``: "NotifyEvent's connector statuses"), as far as the
        frame rate lets it go: the first as the frame's own, each after it for a turn of the rate
        (``frame_budget_waited``); those past the wait cut, with a warning naming how many."""
        kept = 1 + await self.frame_budget_waited(len(items) - 1) if items else 0
        if kept < len(items):
            logger.warning(
                "%s: %s over the frame rate: %d of %d left undone", self.id, what, len(items) - kept, len(items)
            )
        return items[:kept]

    async def binary_frame_ignored(self, size: int) -> None:
        """A binary frame (OCPP-J frames are text; it carries no readable unique id): ignored with a
        log line, and counted against the frame rate as any frame is: past it, the rate's one line
        a second at most says so."""
        if not self._frame_budget.take():
            await self._refuse_over_budget(f"<a binary frame of {size} bytes>")
            return
        logger.warning("%s: ignored a binary frame of %d bytes", self.id, size)

    async def _paced(self, raw_msg: str) -> bool:
        """A frame over the rate from a charger that waits for each answer (none of its frames queued
        behind this one: OCPP-J sends one CALL at a time) is held until the rate allows it, at most
        ``PACED_WAIT_MAX`` s, instead of refused: a compliant charger catching up its offline queue
        (hundreds of MeterValues, each sent once the last is answered) lost what the rate refused,
        a charger dropping a transaction message after its retries. Frames sent without waiting
        (queued behind it), an oversized one or a longer wait are refused. Whether it was held."""
        if self.frames_queued is None or self.frames_queued() or len(raw_msg) > self._max_frame_bytes:
            return False
        wait = self._frame_budget.wait_for_one()
        if wait > PACED_WAIT_MAX:
            return False
        await asyncio.sleep(wait)
        return self._frame_budget.take()

    async def _refuse_over_budget(self, raw_msg: str) -> None:
        """Not stored, not parsed: a CALL gets a GenericError, anything else is dropped. One log line
        a second at most per connection, counting the frames refused since the last."""
        self._over_budget_unlogged += 1
        now = time.monotonic()
        if now - self._over_budget_logged_at >= 1:
            logger.warning(
                "%s: over %s frames/s, frames refused since the last such line: %d, the latest %.80r",
                self.id,
                settings.CSMS_MAX_FRAMES_PER_SECOND,
                self._over_budget_unlogged,
                raw_msg,
            )
            self._over_budget_unlogged, self._over_budget_logged_at = 0, now
        unique_id = rpc_errors.leading_call_id(raw_msg, ocpp_version=self._ocpp_version)
        if unique_id is not None and self._refusals_answered():
            error = GenericError(description="Rate limit exceeded; slow down.")
            await self._send_message(Call(unique_id, "", {}).create_call_error(error))

    def _refusals_answered(self) -> bool:
        """Whether a refused CALL still gets its GenericError: at most ``REFUSALS_ANSWERED`` times the
        frame rate and burst. A charger that sends far past the rate and never reads made the
        process buffer an answer for each frame (a flood of 480,000 small CALLs in 20 s: 115 MB);
        past this a refused CALL goes unanswered, as a frame over the rate that is no CALL does."""
        if self._refusals is None:
            rate, burst = settings.CSMS_MAX_FRAMES_PER_SECOND, settings.CSMS_FRAME_BURST
            self._refusals = TokenBucket(rate=REFUSALS_ANSWERED * rate, burst=REFUSALS_ANSWERED * burst)
        return self._refusals.take()

    def _served_while_pending(self, action: str, payload: Any) -> bool:
        """Whether a charger that is not commissioned is served ``action``: the version's
        ``_SERVED_WHILE_PENDING``, what the CSMS asked for on this connection, or one of the messages
        an accepted trigger asked for (``_Triggered``; each trigger's own: the admin's StatusNotification
        of a 2.0.1 station asks one per EVSE in a row). A message none of them covers is refused, and
        ends those of its EVSE or connector (``_Triggered.ended_by``), not the others'."""
        if action in _SERVED_WHILE_PENDING[self._ocpp_version] or action in self._asked_while_pending:
            return True
        triggers = self._triggered.get(action)
        if not triggers:
            return False
        if any(triggered.served(payload) for triggered in triggers):
            return True
        kept = [triggered for triggered in triggers if not triggered.ended_by(payload)]
        if kept:
            self._triggered[action] = kept
        else:
            del self._triggered[action]
        return False

    def _asked_noted(self, action: str, payload: dict[str, Any]) -> Callable[[], None] | None:
        """The CSMS sends ``action`` to a charger that is not commissioned: what it asks the charger to
        send is served on this connection from now on: a report's parts and a firmware update's or
        upload's statuses as many as come (over minutes), a trigger's messages as ``_Triggered`` says.
        Noted before the CALL goes, so that a charger sending the message before its answer is served;
        returns how to withdraw it (``send_call`` does unless the charger accepts: a refused,
        unanswered or failed request asked for nothing), None when nothing new is asked."""
        if action in ("TriggerMessage", "ExtendedTriggerMessage"):
            requested = payload.get("requestedMessage")
            if not isinstance(requested, str):
                return None
            if action == "ExtendedTriggerMessage":
                requested = _EXTENDED_TRIGGERED.get(requested, requested)
            triggered = _Triggered(self._ocpp_version, requested, payload)
            self._triggered.setdefault(requested, []).append(triggered)

            def trigger_withdrawn() -> None:
                triggers = self._triggered.get(requested, [])
                if triggered in triggers:
                    triggers.remove(triggered)

            return trigger_withdrawn
        asked = _ASKED_BY.get(action)
        if asked is None or asked in self._asked_while_pending:
            return None
        self._asked_while_pending = self._asked_while_pending | {asked}

        def withdrawn() -> None:
            self._asked_while_pending = self._asked_while_pending - {asked}

        return withdrawn

    async def _status_asked_earlier(self, action: str, payload: Any) -> bool:
        """Whether a 2.0.1 station not accepted reports, by its ``requestId``, on an UpdateFirmware or
        GetLog the CSMS sent it and it accepted on an earlier connection
        (``commands.selectors.status_asked_earlier``): a firmware update reboots the station, which
        reports its last statuses (Installed, InstallVerificationFailed, ...) on its new connection,
        Pending again. B02.FR.09 lists the triggers of TriggerMessage, GetBaseReport and GetReport; a
        status the CSMS asked for with its own request is served on any connection (refused, the
        update's outcome was lost and a campaign waited for it until its timeout). Read only in this
        rare branch (a pending station sending one of these two statuses unasked on its connection),
        then kept for the connection."""
        if self._ocpp_version != "2.0.1" or action not in ("FirmwareStatusNotification", "LogStatusNotification"):
            return False
        request_id = payload.get("requestId") if isinstance(payload, dict) else None
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            return False
        if (action, request_id) in self._asked_earlier:
            return True
        asked = await database_sync_to_async(command_selectors.status_asked_earlier)(
            charge_point_id=self.id, action=action, request_id=request_id
        )
        if asked:
            self._asked_earlier = self._asked_earlier | {(action, request_id)}
        return asked

    async def _commissioned(self) -> bool:
        """Whether the charger may use the network; read until it is, then kept for the connection.

        Auto-registered chargers are pending: a stranger must not authorize or start sessions.
        """
        if not self._is_commissioned:
            self._is_commissioned = await database_sync_to_async(selectors.charge_point_is_commissioned)(
                charge_point_id=self.id
            )
        return self._is_commissioned

    async def _refuse_oversized(self, raw_msg: str, size: int) -> None:
        """Not stored, not parsed: a FormatViolation for the id at its start, if one is there.
        ``size``: its UTF-8 bytes, which the limit counts (not its characters)."""
        limit = self._max_frame_bytes
        logger.warning("%s: refused a frame of %d bytes (limit %d)", self.id, size, limit)
        if self._outstanding_failed(raw_msg, f"The answer of {size} bytes is over the {limit} byte limit."):
            return
        unique_id = rpc_errors.leading_call_id(raw_msg, ocpp_version=self._ocpp_version)
        if unique_id is not None:
            error = FormatViolationError(description=f"Frame of {size} bytes is over the {limit} byte limit.")
            await self._send_message(Call(unique_id, "", {}).create_call_error(error))

    async def _refuse_unreadable(self, raw_msg: str, received_at: datetime, error: OCPPError | RecursionError) -> None:
        """A frame that did not unpack: logged, then an answer to the awaited CALL fails it at once,
        and anything else is answered where its id can be read (``_unreadable_answer``). Its log row
        holds the id its answer carries (an answer to the awaited CALL: that CALL's id and action),
        so that the admin finds the frame by the id the charger and the CALLERROR name."""
        outstanding = self._outstanding
        if outstanding is not None and self._answers_the_outstanding_call(raw_msg):
            self._log(MessageDirection.INBOUND, raw_msg, received_at, unique_id=outstanding[0], action=outstanding[1])
            self._outstanding_failed(raw_msg, "The answer is not a well-formed CALLRESULT or CALLERROR.")
            return
        answer = self._unreadable_answer(raw_msg, error)
        unique_id = answer[0] if answer is not None and answer[0] != rpc_errors.UNREADABLE_ID else ""
        self._log(MessageDirection.INBOUND, raw_msg, received_at, unique_id=unique_id)
        if answer is None:
            code = error.code if isinstance(error, OCPPError) else None
            logger.warning("%s: dropped unreadable frame (%s): %.200r", self.id, code, raw_msg)
            return
        await self._send_message(Call(answer[0], "", {}).create_call_error(answer[1]))

    def _unreadable_answer(self, raw_msg: str, error: OCPPError | RecursionError) -> tuple[str | int, OCPPError] | None:
        """The id and error to answer a frame that did not unpack with, or None (``rpc_errors``). A
        frame nested deeper than the decoder goes whose CALL id leads it gets a FormatViolation with
        that id (its own, not 2.0.1's ``-1`` for an unreadable one)."""
        if not isinstance(error, RecursionError):
            return rpc_errors.unparseable_answer(raw_msg, error, ocpp_version=self._ocpp_version)
        unique_id = rpc_errors.leading_call_id(raw_msg, ocpp_version=self._ocpp_version)
        if unique_id is None:
            return rpc_errors.unparseable_answer(raw_msg, None, ocpp_version=self._ocpp_version)
        return unique_id, FormatViolationError(description="The payload is nested deeper than any OCPP message.")

    async def _answer_undecodable_number(self, raw_msg: str, received_at: datetime, error: ValueError) -> None:
        """A CALL gets a TypeConstraintViolation (no OCPP type holds the number); an answer
        ends the outstanding CALL at once as a FormatViolation, instead of its timeout. Logged
        with the id it carries."""
        frame = _frame_with_numbers_as_text(raw_msg)
        unique_id = _readable_unique_id_of(frame)
        action = (
            "" if unique_id is None or frame[0] == str(int(MessageType.Call)) else self._outstanding_action(unique_id)
        )
        self._log(MessageDirection.INBOUND, raw_msg, received_at, unique_id=unique_id or "", action=action)
        if unique_id is None:
            logger.warning("%s: dropped a frame with an undecodable number (%s): %.200r", self.id, error, raw_msg)
            return
        description = "A number in the frame has more digits than any OCPP type holds."
        message_type = frame[0]  # as text, like every number here
        if message_type == str(int(MessageType.Call)):
            refusal = TypeConstraintViolationError(description=description)
            await self._send_message(Call(unique_id, "", {}).create_call_error(refusal))
        elif message_type in (str(int(MessageType.CallResult)), str(int(MessageType.CallError))):
            self._response_received(CallError(unique_id, "FormatViolation", f"Undecodable answer: {description}", {}))

    def _answers_the_outstanding_call(self, raw_msg: str) -> bool:
        """Whether ``raw_msg`` starts as the answer to the CALL the CSMS awaits: one frame, never
        resent, that a rate limit must not drop (its command would wait out its timeout)."""
        outstanding = self._outstanding
        if outstanding is None or outstanding[2].done():  # none awaited, or its answer is in
            return False
        match = _LEADING_ANSWER_ID.match(raw_msg[:100])
        return match is not None and match.group(1) == outstanding[0]

    def _outstanding_failed(self, raw_msg: str, description: str) -> bool:
        """An answer to the awaited CALL that cannot be read (cut off, too large, no payload) ends
        it at once as a FormatViolation (the API's 502), instead of its timeout; whether it did."""
        if not self._answers_the_outstanding_call(raw_msg):
            return False
        assert self._outstanding is not None
        self._response_received(CallError(self._outstanding[0], "FormatViolation", description, {}))
        return True

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
        Raises ``CallNotSent`` when the frame could not be written (the charger cannot have it);
        any other exception comes after it was: the charger may have acted on the CALL.
        """
        withdrawn = None if self._is_commissioned else self._asked_noted(action, payload)
        if withdrawn is None:
            return await self._call_answer(action, payload, timeout)
        answered = None
        try:
            answered = await self._call_answer(action, payload, timeout)
            return answered
        finally:
            if answered is None or not _asked_accepted(answered):
                withdrawn()

    async def _call_answer(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """``send_call``'s CALL and its answer."""
        unique_id = str(uuid.uuid4())
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._outstanding = (unique_id, action, answer)
        try:
            try:
                await self._send_message(Call(unique_id, action, payload))
            except Exception as error:
                raise CallNotSent(error) from error
            response = await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            return {"outcome": "timeout"}
        finally:
            self._outstanding = None
        if isinstance(response, CallError):  # any of its parts may be nested (its code read below)
            depth = max(map(json_depth, (response.error_code, response.error_description, response.error_details)))
        else:
            depth = json_depth(response.payload)
        if depth > MAX_JSON_DEPTH:
            return dict(_ANSWER_TOO_DEEP)  # every later step would recurse through it
        if response.message_type_id == MessageType.CallError:
            if response.error_code is not None and type(response.error_code) is not str:
                return dict(_ERROR_CODE_NOT_TEXT)
            # a code the charger left out (null) is OCPP's catch-all, not the text "None"
            error_code = "GenericError" if response.error_code is None else response.error_code
            if FORMATION_VIOLATION_SPELLING in (await self._current_profile()).quirks:
                error_code = quirks.error_code_spelled(error_code, ocpp_version=self._ocpp_version)
            return {
                "outcome": "call_error",
                "error_code": text_escaped(error_code),
                "error_description": text_escaped(_description_text(response.error_description)),
                "error_details": (
                    _answer_storable(response.error_details) if isinstance(response.error_details, dict) else {}
                ),
            }
        result = await self._result_checked(action, _answer_storable(response.payload))
        if result["outcome"] == "result":
            taken = heartbeat_interval_accepted(action, payload, result["payload"])
            self.heartbeat_interval = self.heartbeat_interval if taken is None else taken
        return result

    async def _result_checked(self, action: str, payload: Any) -> dict[str, Any]:
        """A CALLRESULT checked against the action's response schema: a strict charger's invalid
        answer is an ``invalid_response``; a lenient model's violations are recorded, its answer passed on."""
        errors = schemas.response_errors(ocpp_version=self._ocpp_version, action=action, payload=payload)
        readable = payload if isinstance(payload, dict) else {}
        if not errors:
            return {"outcome": "result", "payload": readable}
        violations = schemas.described(errors)
        if not (await self._current_profile()).lenient:
            return {
                "outcome": "invalid_response",
                "payload": readable,
                "violations": violations,
                "error_code": "InvalidResponse",
                "error_description": f"The charge point's answer breaks the OCPP {self._ocpp_version} "
                f"{action}Response schema.",
            }
        try:
            await database_sync_to_async(schema_violations_record)(
                charge_point_id=self.id,
                action=f"{action}Response",
                violations=leniency.received_violations(errors),
                received_at=timezone.now(),
            )
        except Exception:
            logger.exception("%s: could not record the violations of its %s answer", self.id, action)
        return {"outcome": "result", "payload": readable, "violations": violations}

    async def _send(self, message: str) -> None:
        """Send a frame given as text (the package's interface): read back for what is logged."""
        message_type, unique_id, frame = outgoing_frame(message)
        if message_type == MessageType.CallResult:  # its payload is sent as text, never read here
            await self._send_message(CallResult(unique_id, {}), text=message)
        elif frame is not None and message_type == MessageType.Call:
            await self._send_message(Call(unique_id, frame[2], frame[3]), text=message)
        elif frame is not None:
            await self._send_message(CallError(unique_id, *frame[2:5]), text=message)

    async def _send_message(self, message: Call | CallResult | CallError, *, text: str | None = None) -> None:
        """Send ``message``, its CALLERROR code in the charger's version's spelling, and log it. What
        is logged is read from the message, not its text. A CALL is logged before it goes (its
        answer may be read before the send returns) and its send's error raised to its caller; an
        answer to an inbound CALL is logged and counted once it left: one the charger's closed
        socket refused is dropped with a line, in neither the log nor the metrics."""
        unique_id = str(message.unique_id)
        at = utc_now()
        if isinstance(message, Call):
            text = text if text is not None else frame_text(message)
            logged = redaction.call_frame_redacted(self._ocpp_version, message.action, text)
            self._log(MessageDirection.OUTBOUND, logged, at, message.message_type_id, unique_id, message.action)
            await self._connection.send(text)
            return
        if isinstance(message, CallError):
            code = quirks.error_code_spelled(message.error_code, ocpp_version=self._ocpp_version)
            description = rpc_errors.description_fitted(message.error_description, ocpp_version=self._ocpp_version)
            if code != message.error_code or description != message.error_description:
                text = frame_text(CallError(message.unique_id, code, description, message.error_details))
        text = text if text is not None else frame_text(message)
        try:
            await self._connection.send(text)
        except OSError:  # the ASGI server's error for a send on a closed socket (daphne's: SocketClosed)
            # The charger left while its answer was on the way: what it sent is handled (committed),
            # it will send it again on its next connection if it needs the answer.
            logger.info("%s: the socket closed before the answer to %r could be sent", self.id, unique_id)
            return
        action = self._inbound_actions.get(unique_id, "")
        self._log(MessageDirection.OUTBOUND, text, at, message.message_type_id, unique_id, action)
        if action:
            metrics.ocpp_call_answered(
                ocpp_version=self._ocpp_version,
                action=action if action in self.route_map else "other",
                outcome=message.error_code if isinstance(message, CallError) else "result",
                seconds=time.perf_counter() - self._call_received,
            )
        elif isinstance(message, CallError):
            # A frame refused before its action was read (over the frame rate, oversized, not JSON, nested
            # too deep): its CALLERROR counted as of an action the CSMS does not know, in the same spelling.
            metrics.ocpp_call_answered(
                ocpp_version=self._ocpp_version,
                action="other",
                outcome=message.error_code,
                seconds=time.perf_counter() - self._frame_received,
            )

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
