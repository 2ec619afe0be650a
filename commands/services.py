"""Sending OCPP commands to chargers, with an audit record of each."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chargepoints.models import ChargePoint, LifecycleState
from commands import catalog, events, routes, selectors
from commands.models import Command, CommandState
from commands.rpc import CallOutcome, Outcome, send_call, send_call_sync
from kernel.models import ApiKey
from kernel.plain_sql import instance_inserted, instance_updated
from webhooks.models import EventType
from webhooks.services import webhook_event_emit, webhook_subscribers_condition

logger = logging.getLogger(__name__)

# Statuses by which a charger refuses a command (docs/architecture.md, API: 409 with that status).
REFUSING_STATUSES = frozenset(
    {
        "Rejected",
        "Occupied",
        "Faulted",
        "Unavailable",
        "NotImplemented",
        "NotSupported",
        "UnlockFailed",
        "UnknownConnector",
        "OngoingAuthorizedTransaction",
        "UnknownMessageId",
        "UnknownVendorId",
        "VersionMismatch",
        "Failed",
        "UnknownComponent",
        "UnknownVariable",
        "NotSupportedAttributeType",
    }
)
REBOOT_REQUIRED = "RebootRequired"


class CommandRefused(Exception):
    """The request cannot be sent; ``code`` names why (NotFound, ValidationError, UnsupportedVersion)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


class CommandInProgress(Exception):
    def __init__(self, command: Command) -> None:
        super().__init__(f"Command {command.id} with this Idempotency-Key is still in flight.")
        self.command = command


@dataclass(frozen=True)
class CommandRequest:
    charge_point_id: str
    ocpp_version: str
    command: str
    body: dict[str, Any]
    api_key: ApiKey | None = None
    user_id: int | None = None
    idempotency_key: str = ""

    @property
    def fingerprint(self) -> str:
        return request_fingerprint(
            charge_point_id=self.charge_point_id, ocpp_version=self.ocpp_version, command=self.command, body=self.body
        )


def request_fingerprint(*, charge_point_id: str, ocpp_version: str, command: str, body: dict[str, Any]) -> str:
    """SHA-256 (hex) of what a command request asks: charger, OCPP version, command and body.

    Key order and the URL form (charger in the path or in the body) do not change it.
    """
    asked = [charge_point_id, ocpp_version, command, body]
    return hashlib.sha256(json.dumps(asked, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def command_send(*, request: CommandRequest, wait: bool = True) -> Command:
    """Validate, record and send a command.

    With ``wait`` the finished Command is returned; without, the pending Command is returned at
    once and the outcome is recorded when it arrives (poll ``/api/v1/commands/{id}``). A repeated
    ``idempotency_key`` (per API key) returns the first command instead of sending again; with
    another request it raises ``CommandRefused("IdempotencyKeyReused")``.
    """
    command, created = _command_record(request)
    if not created:
        if wait and command.state == CommandState.PENDING:
            raise CommandInProgress(command)
        return command
    if not wait:
        _dispatch_in_background(command)
        return command
    outcome = send_call_sync(
        command.charge_point_identity,
        command.action,
        catalog.to_ocpp_payload(command.request),
        channel_name=_presence(command),
        when_slow=_database_connection_release,
    )
    return command_complete(command=command, outcome=outcome)


def _database_connection_release() -> None:
    """Give the thread's database connection back to the pool while a slow charger is awaited (up to
    CSMS_OCPP_CALL_TIMEOUT): requests waiting on chargers do not hold the pool's connections. Not
    before ``commands.rpc.SLOW_AFTER``: a quick answer's UPDATE reuses the connection (no pool
    round trip and health check). Inside a caller's transaction the connection stays."""
    if not connection.in_atomic_block:
        connection.close()


def _presence(command: Command) -> str:
    """The charger's presence as read when ``command`` was recorded, a moment ago (saves a query)."""
    assert command.charge_point is not None
    return command.charge_point.connection_channel


def _command_record(request: CommandRequest) -> tuple[Command, bool]:
    """The validated, recorded command, and whether it is new (False: an idempotent replay)."""
    if request.idempotency_key:
        previous = _previous_command(request)
        if previous is not None:
            return _replayable(previous, request), False
    charge_point = _sendable_charge_point(request)
    action = catalog.ocpp_action(request.command)
    errors = catalog.validate_payload(request.ocpp_version, action, catalog.to_ocpp_payload(request.body))
    if errors:
        raise CommandRefused("ValidationError", "The request body is invalid.", errors)
    warnings = routes.request_warnings(
        charge_point=charge_point, ocpp_version=request.ocpp_version, action=action, body=request.body
    )
    # One INSERT commits alone; the savepoint is for the unique Idempotency-Key a concurrent request
    # may take first (an IntegrityError that must not break a caller's transaction).
    try:
        with transaction.atomic() if request.idempotency_key else contextlib.nullcontext():
            command = Command(
                warnings=warnings,
                charge_point=charge_point,
                charge_point_identity=charge_point.charge_point_id,
                ocpp_version=request.ocpp_version,
                command=request.command,
                action=action,
                request=request.body,
                api_key=request.api_key,
                user_id=request.user_id,
                idempotency_key=request.idempotency_key,
                request_fingerprint=request.fingerprint if request.idempotency_key else "",
            )
            _command_inserted(command)
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key won the race.
        previous = _previous_command(request)
        assert previous is not None
        return _replayable(previous, request), False
    return command, True


def command_record_own(*, charge_point: ChargePoint, command: str, body: dict[str, Any]) -> Command:
    """Record a command the CSMS sends of its own accord with a body it built (the configuration read
    after a boot): valid by construction and without request checks, so neither runs; its sender
    records the outcome with ``command_complete``. ``charge_point`` must have its
    ``connection_channel`` and ``ocpp_version``."""
    recorded = command_own(charge_point=charge_point, command=command, body=body)
    _command_inserted(recorded)
    return recorded


def command_own(*, charge_point: ChargePoint, command: str, body: dict[str, Any]) -> Command:
    """``command_record_own``'s command, not yet saved: for a caller that inserts it in a
    statement of its own (``kernel.plain_sql.instance_insert_selecting``)."""
    return Command(
        warnings=[],
        charge_point=charge_point,
        charge_point_identity=charge_point.charge_point_id,
        ocpp_version=charge_point.ocpp_version,
        command=command,
        action=catalog.ocpp_action(command),
        request=body,
    )


def _command_inserted(command: Command) -> None:
    """The audit row's INSERT: the ORM's save without its query building on PostgreSQL (issue 15)."""
    if connection.vendor == "postgresql":
        instance_inserted(command)
    else:
        command.save(force_insert=True)


_background_sends: set[asyncio.Task[None]] = set()


def command_dispatch(command: Command) -> None:
    """Send a recorded, pending command on the running event loop and record its outcome when it
    arrives; returns at once. Call it from the event loop's thread."""
    # A fresh context: the caller's thread-sensitive executor may be gone when this task runs.
    task = asyncio.get_running_loop().create_task(_send_and_complete(command), context=contextvars.Context())
    _background_sends.add(task)
    task.add_done_callback(_background_sends.discard)


async def _send_and_complete(command: Command) -> None:
    payload = catalog.to_ocpp_payload(command.request)
    outcome = await send_call(command.charge_point_identity, command.action, payload, channel_name=_presence(command))
    await database_sync_to_async(command_complete)(command=command, outcome=outcome)


def _dispatch_in_background(command: Command) -> None:
    """Send on this process's event loop without holding the HTTP request open."""

    async def spawn() -> None:
        command_dispatch(command)

    async_to_sync(spawn)()


def _replayable(previous: Command, request: CommandRequest) -> Command:
    """The command recorded under the request's key, if it asked the same (docs/architecture.md, API: else a 422)."""
    if previous.request_fingerprint != request.fingerprint:
        raise CommandRefused(
            "IdempotencyKeyReused",
            f"The Idempotency-Key {request.idempotency_key!r} was used for another request "
            f"({previous.command} to {previous.charge_point_identity}); use a new key for a new request.",
            {"command_id": str(previous.id)},
        )
    return previous


def _previous_command(request: CommandRequest) -> Command | None:
    return Command.objects.filter(api_key=request.api_key, idempotency_key=request.idempotency_key).first()


def _sendable_charge_point(request: CommandRequest) -> ChargePoint:
    charge_point = selectors.command_charge_point(charge_point_id=request.charge_point_id)
    if charge_point is None:
        raise CommandRefused("NotFound", f"Charge point {request.charge_point_id!r} is not registered.")
    if charge_point.ocpp_version and charge_point.ocpp_version != request.ocpp_version:
        raise CommandRefused(
            "UnsupportedVersion",
            f"{request.command} is an OCPP {request.ocpp_version} command; "
            f"this charge point speaks OCPP {charge_point.ocpp_version}.",
        )
    return charge_point


def command_complete(*, command: Command, outcome: CallOutcome) -> Command:
    """Record what became of the command."""
    command.state = _state_for(command.command, outcome)
    if outcome.outcome in (Outcome.RESULT, Outcome.INVALID_RESPONSE):
        command.response = catalog.from_ocpp_payload(command.command, outcome.payload)
    command.response_violations = outcome.violations
    command.error_code = outcome.error_code
    command.error_description = outcome.error_description
    command.latency_ms = outcome.latency_ms
    command.completed_at = timezone.now()
    follows = command.state in _ANSWERED_STATES and command.charge_point_id and routes.answer_has_route(command)
    if not follows and _outcome_saved_alone(command):
        return command
    with transaction.atomic():
        _outcome_saved(command)
        if follows:
            routes.answer_follow(command)
        webhook_event_emit(
            event_type=EventType.COMMAND_COMPLETED,
            data=events.command_completed(command),
        )
    return command


def _outcome_saved_alone(command: Command) -> bool:
    """The outcome's UPDATE without a transaction when nothing need be written with it, in one
    statement that also asks whether a webhook subscription may want ``command.completed`` (then
    it writes nothing and returns False: the caller writes it with the event). PostgreSQL only."""
    if connection.vendor != "postgresql":
        return False
    unless = webhook_subscribers_condition(event_type=EventType.COMMAND_COMPLETED)
    return instance_updated(command, _OUTCOME_FIELDS, unless=unless)


def _outcome_saved(command: Command) -> None:
    if connection.vendor == "postgresql":
        instance_updated(command, _OUTCOME_FIELDS)  # the ORM's save, without its query building (issue 15)
    else:
        command.save(update_fields=_OUTCOME_FIELDS)


_OUTCOME_FIELDS = [
    "state",
    "response",
    "response_violations",
    "error_code",
    "error_description",
    "latency_ms",
    "completed_at",
]
_ANSWERED_STATES = (CommandState.ACCEPTED, CommandState.REBOOT_REQUIRED, CommandState.REJECTED)


def command_refusal(*, command: Command) -> str:
    """The status by which the charger refused ``command`` (e.g. ``Rejected``, ``UnknownVariable``)."""
    statuses = catalog.answer_statuses(command.command, command.response or {}, snake_case=True)
    refusing = sorted(statuses & REFUSING_STATUSES)
    return refusing[0] if refusing else "Rejected"


def _state_for(command: str, outcome: CallOutcome) -> str:
    """Refused if any status in the answer refuses (every variable's for SetVariables), effective
    after a reboot if any says so (1.6 ChangeConfiguration, 2.0.1 SetVariables), else accepted."""
    if outcome.outcome == Outcome.RESULT:
        statuses = catalog.answer_statuses(command, outcome.payload)
        if statuses & REFUSING_STATUSES:
            return CommandState.REJECTED
        return CommandState.REBOOT_REQUIRED if REBOOT_REQUIRED in statuses else CommandState.ACCEPTED
    return {
        Outcome.INVALID_RESPONSE: CommandState.INVALID_RESPONSE,
        Outcome.CALL_ERROR: CommandState.CALL_ERROR,
        Outcome.TIMEOUT: CommandState.TIMEOUT,
        Outcome.NOT_CONNECTED: CommandState.NOT_CONNECTED,
    }[outcome.outcome]


def _heartbeat_interval_command(ocpp_version: str, interval: int) -> tuple[str, dict[str, Any]]:
    if ocpp_version == "1.6":
        return "change_configuration", {"key": "HeartbeatInterval", "value": str(interval)}
    return "set_variables", {
        "set_variable_data": [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "attribute_value": str(interval),
            }
        ]
    }


def heartbeat_interval_push(
    *, charge_point: ChargePoint, api_key: ApiKey | None = None, user_id: int | None = None
) -> Command | None:
    """Tell a connected charger its new heartbeat interval (the next Boot answer carries it anyway).

    Returns the command sent, or None when the charger is not connected.
    """
    if not charge_point.connection_channel or not charge_point.ocpp_version:
        return None
    command, body = _heartbeat_interval_command(charge_point.ocpp_version, charge_point.heartbeat_interval)
    return command_send(
        request=CommandRequest(
            charge_point_id=charge_point.charge_point_id,
            ocpp_version=charge_point.ocpp_version,
            command=command,
            body=body,
            api_key=api_key,
            user_id=user_id,
        )
    )


def pending_charger_wake(
    *, charge_point: ChargePoint, previous_state: str, api_key: ApiKey | None = None, user_id: int | None = None
) -> None:
    """Once a connected charger is commissioned, ask it to boot again (TriggerMessage BootNotification,
    the same in 1.6 and 2.0.1): it was answered Pending and would otherwise wait up to its interval.

    Sent after the commit, in the background (the command is recorded as any other); an offline or
    silent charger never fails the commissioning: its next Boot is Accepted anyway.
    """
    if previous_state == LifecycleState.COMMISSIONED or charge_point.lifecycle_state != LifecycleState.COMMISSIONED:
        return
    if not charge_point.connection_channel or not charge_point.ocpp_version:
        return
    request = CommandRequest(
        charge_point_id=charge_point.charge_point_id,
        ocpp_version=charge_point.ocpp_version,
        command="trigger_message",
        body={"requested_message": "BootNotification"},
        api_key=api_key,
        user_id=user_id,
    )

    def send() -> None:
        try:
            command_send(request=request, wait=False)
        except Exception:
            logger.exception("%s: could not ask the commissioned charger to boot", charge_point.charge_point_id)

    transaction.on_commit(send)
