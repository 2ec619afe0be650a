"""Sending OCPP commands to chargers, with an audit record of each."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from chargepoints.models import ChargePoint, LifecycleState, MessageDirection, OcppMessage
from commands import catalog, charger_passwords, events, redaction, routes, selectors
from commands.models import Command, CommandState
from commands.outcome_writes import completion_unit_register, outcome_written_taken
from commands.outcomes import OUTCOME_FIELDS, REFUSING_STATUSES, answered, outcome_applied
from commands.rpc import NOT_SENT_IN_TIME, CallOutcome, Outcome, send_call, send_call_sync
from kernel.api_keys import api_key_active_check, api_key_still_active
from kernel.model_instances import instance_new
from kernel.models import ApiKey
from kernel.plain_sql import (
    bound_cursor,
    columns_of,
    gathering,
    instance_insert_selecting,
    instance_inserted,
    instance_of,
    instance_saved,
    instance_updated,
)
from kernel.sweeps import each_passed_over
from webhooks.models import EventType
from webhooks.services import webhook_event_emit, webhook_event_may_have_subscribers, webhook_subscribers_condition

logger = logging.getLogger(__name__)


class CommandRefused(Exception):
    """The request cannot be sent; ``code`` names why (NotFound, ValidationError, UnsupportedVersion,
    ChargePointDecommissioned, ChargePointPending, IdempotencyKeyReused)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


class ApiKeyInactive(Exception):
    """The request's API key, remembered active and not read again (``CommandRequest.api_key_checked``
    False), was revoked or expired meanwhile (or its scope changed): nothing was recorded or sent."""


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
    # False: ``api_key`` was not read from the database for this request (``kernel.api_keys.
    # api_key_find_remembered``): it is verified before anything is recorded (else ApiKeyInactive).
    api_key_checked: bool = True

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
    once and the outcome is recorded when it arrives (poll ``/api/v1/commands/{id}``), except for a
    charger no process holds (its presence read with the command's record): nothing is awaited
    then, and the Command is returned finished (``not_connected``) as with ``wait``. A repeated
    ``idempotency_key`` (per API key) returns the first command instead of sending again, unless it
    was never sent (``not_connected``, or a timeout spent waiting behind other CALLs): then it is
    sent now; with another request it raises ``CommandRefused("IdempotencyKeyReused")``.
    """
    command, created = _command_record(request, outcome_follows=wait)
    if not created and _never_sent(command):
        command, created = _taken_back_to_send(command, request)
    if not created:
        if wait and command.state == CommandState.PENDING:
            raise CommandInProgress(command)
        return command
    if _presence(command):  # a command to a charger no process holds is not sent: nothing to prepare
        routes.request_before_sending(command)
    if not wait and _presence(command):
        _dispatch_in_background(command)
        return command
    outcome = send_call_sync(
        command.charge_point_identity,
        command.action,
        catalog.to_ocpp_payload(command.request),
        channel_name=_presence(command),
        when_slow=_database_connection_release,
        ocpp_version=command.ocpp_version,
    )
    return command_complete(command=command, outcome=outcome)


# A finished command nothing of which reached the charger: not connected (or the channel layer unable
# to reach it), or timed out waiting behind the charger's other CALLs (``rpc.NOT_SENT_IN_TIME``).
_NEVER_SENT = Q(state=CommandState.NOT_CONNECTED) | Q(state=CommandState.TIMEOUT, error_description=NOT_SENT_IN_TIME)


def _never_sent(command: Command) -> bool:
    """Whether ``command`` (finished) never reached the charger (``_NEVER_SENT``)."""
    return command.state == CommandState.NOT_CONNECTED or (
        command.state == CommandState.TIMEOUT and command.error_description == NOT_SENT_IN_TIME
    )


def _taken_back_to_send(command: Command, request: CommandRequest) -> tuple[Command, bool]:
    """A replay (same Idempotency-Key) of a command that was never sent (``_NEVER_SENT``: the
    charger not connected, the channel layer unable to reach it, its timeout spent behind other
    CALLs): its row made pending again, to be
    sent now, as its caller retrying asked; True then, with the body of ``request`` (the same: its
    fingerprint is the row's) to send, not the row's, whose secrets are redacted. False when a
    concurrent replay took it first (the command as it is now). The row's ``created_at`` becomes
    now: it dates the send the abandoned-commands sweep watches.

    Raises ``CommandRefused`` as a new request would be refused (``_charge_point_sendable``: the
    charger since answered Pending, or speaking another OCPP version): the row stays as it was."""
    if command.charge_point_id is not None:
        _charge_point_sendable(ChargePoint.objects.filter(pk=command.charge_point_id).first(), request)
    unsent = Command.objects.filter(_NEVER_SENT, pk=command.pk, charge_point__isnull=False)
    taken = unsent.update(
        state=CommandState.PENDING,
        response=None,
        response_violations={},
        error_code="",
        error_description="",
        latency_ms=None,
        completed_at=None,
        created_at=timezone.now(),
    )
    command = Command.objects.select_related("charge_point").get(pk=command.pk)
    if taken:
        command.request = catalog.body_normalized(request.ocpp_version, command.action, request.body)
    return command, bool(taken)


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


def _command_record(request: CommandRequest, *, outcome_follows: bool) -> tuple[Command, bool]:
    """The validated, recorded command, and whether it is new (False: an idempotent replay).
    ``outcome_follows``: this caller records the outcome before it answers (``wait``), whose commit
    then makes the command's row durable too (``_PENDING_ROW_FLUSHED_BY_THE_OUTCOME``).

    Raises ``ApiKeyInactive`` first if an unchecked key is no longer active, then
    ``CommandRefused`` (NotFound, UnsupportedVersion, ChargePointDecommissioned, ChargePointPending,
    ValidationError, IdempotencyKeyReused)."""
    action = catalog.ocpp_action(request.command)
    if (
        connection.vendor == "postgresql"
        and not request.idempotency_key
        and action not in _NOT_WHILE_PENDING  # reads the charger's state first (_charge_point_sendable)
        and not routes.request_has_check(ocpp_version=request.ocpp_version, action=action)
        and not catalog.validate_body(request.ocpp_version, action, request.body)
    ):
        return _command_recorded_at_once(request, action, outcome_follows=outcome_follows), True
    if (unchecked := _key_to_check(request)) is not None and not api_key_still_active(api_key=unchecked):
        raise ApiKeyInactive
    if request.idempotency_key:
        previous = _previous_command(request)
        if previous is not None:
            return _replayable(previous, request), False
    charge_point = _sendable_charge_point(request)
    errors = catalog.validate_body(request.ocpp_version, action, request.body)
    if errors:
        raise CommandRefused("ValidationError", "The request body is invalid.", errors)
    warnings = routes.request_warnings(
        charge_point=charge_point, ocpp_version=request.ocpp_version, action=action, body=request.body
    )
    # One INSERT commits alone; the savepoint is for the unique Idempotency-Key a concurrent request
    # may take first (an IntegrityError that must not break a caller's transaction).
    try:
        with transaction.atomic() if request.idempotency_key else contextlib.nullcontext():
            command = _command_of(
                request,
                action,
                warnings=warnings,
                charge_point=charge_point,
                charge_point_identity=charge_point.charge_point_id,
                idempotency_key=request.idempotency_key,
                request_fingerprint=request.fingerprint if request.idempotency_key else "",
            )
            with _secrets_redacted(command):
                _command_inserted(command)
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key won the race.
        previous = _previous_command(request)
        assert previous is not None
        return _replayable(previous, request), False
    return command, True


_CHARGERS = ChargePoint._meta.db_table
# The charge point's read, the key's check and the audit row's INSERT in one statement (issue 15):
# the row is inserted only for a registered charger of the request's version (or none yet), not
# decommissioned, and an active key; the charger's columns (NULL if not registered), the key's check and whether it was.
_RECORD_AT_ONCE = (
    f"WITH cp AS (SELECT {columns_of(ChargePoint, 'c')} FROM {_CHARGERS} c WHERE c.charge_point_id = %s),"
    " allowed AS (SELECT {key_active} AS key_active{commit_setting}),"
    " recorded AS ({insert}, allowed WHERE allowed.key_active AND cp.ocpp_version IN ('', %s)"
    f" AND cp.lifecycle_state <> '{LifecycleState.DECOMMISSIONED}' RETURNING 1)"
    f" SELECT {columns_of(ChargePoint, 'cp')}, allowed.key_active, EXISTS (SELECT 1 FROM recorded)"
    " FROM allowed LEFT JOIN cp ON true"
)


# The pending row's commit does not wait for its WAL to reach the disk (a flush of 0.4 to 3 ms on
# this project's machines, issue 15: a step of every command's latency) where the command's outcome
# is recorded before anyone hears of it: that UPDATE's synchronous commit flushes the WAL up to its
# own commit record, the row's included. Only a command in flight when PostgreSQL crashes may lose
# its pending row (its caller had no answer). Set for the statement's own transaction alone
# (``set_config(..., true)`` in an autocommit statement), never inside a caller's transaction.
_PENDING_ROW_FLUSHED_BY_THE_OUTCOME = ", set_config('synchronous_commit', 'off', true)"


def _command_recorded_at_once(request: CommandRequest, action: str, *, outcome_follows: bool) -> Command:
    """``_command_record`` in one statement (``_RECORD_AT_ONCE``) for a valid body without an
    Idempotency-Key nor a request check: the checks on the charger and the key in the INSERT."""
    command = _command_of(request, action, warnings=[], charge_point_identity=request.charge_point_id)
    with _secrets_redacted(command):
        insert, values = instance_insert_selecting(command, source="cp", selected={"charge_point_id": "cp.id"})
    key_active, key_params = "true", list[Any]()
    if (unchecked := _key_to_check(request)) is not None:
        key_active, key_params = api_key_active_check(api_key=unchecked)
    flushed_later = outcome_follows and connection.get_autocommit() and not connection.in_atomic_block
    commit_setting = _PENDING_ROW_FLUSHED_BY_THE_OUTCOME if flushed_later else ""
    statement = _RECORD_AT_ONCE.format(key_active=key_active, insert=insert, commit_setting=commit_setting)
    with bound_cursor() as cursor:
        cursor.execute(statement, [request.charge_point_id, *key_params, *values, request.ocpp_version])
        row = cursor.fetchone()
    assert row is not None
    *columns, active, recorded = row
    if not active:
        raise ApiKeyInactive
    charge_point = instance_of(ChargePoint, columns) if columns[0] is not None else None
    _charge_point_sendable(charge_point, request)
    assert charge_point is not None and recorded
    command.charge_point = charge_point
    instance_saved(command)
    return command


@contextlib.contextmanager
def _secrets_redacted(command: Command) -> Iterator[None]:
    """Within the block, ``command.request`` as it is recorded: a charger password it sets and the
    secret of a file location replaced (``redaction``); the command sent, and its answer's
    follow-up, keep the real one."""
    sent = command.request
    command.request = redaction.request_redacted(command.ocpp_version, command.action, sent)
    try:
        yield
    finally:
        command.request = sent


def _command_of(request: CommandRequest, action: str, **columns: Any) -> Command:
    """The audit row of ``request`` (OCPP ``action``), with ``columns`` besides: ``Command(...)``
    without its keyword loop over every field (``instance_new``), a step of every command (issue 15)."""
    return instance_new(
        Command,
        ocpp_version=request.ocpp_version,
        command=request.command,
        action=action,
        request=catalog.body_normalized(request.ocpp_version, action, request.body),
        api_key=request.api_key,
        user_id=request.user_id,
        **columns,
    )


def _key_to_check(request: CommandRequest) -> ApiKey | None:
    """The API key of ``request`` if it was not read from the database for it (to verify), else None."""
    return None if request.api_key_checked else request.api_key


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
    outcome = await send_call(
        command.charge_point_identity,
        command.action,
        payload,
        channel_name=_presence(command),
        ocpp_version=command.ocpp_version,
    )
    await database_sync_to_async(command_complete)(command=command, outcome=outcome)


def _dispatch_in_background(command: Command) -> None:
    """Send on this process's event loop without holding the HTTP request open. The send records
    the outcome on a copy: ``command`` stays the pending command the caller answers with (202),
    even when the outcome is recorded before that answer is made (a charger answering at once, or
    one not connected)."""
    sent = copy.copy(command)  # shallow: its own state and related-row cache; the rows it caches are shared, read only

    async def spawn() -> None:
        command_dispatch(sent)

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
    _charge_point_sendable(charge_point, request)
    assert charge_point is not None
    return charge_point


# What the CSMS may not send a charger its BootNotification answer holds Pending (not commissioned):
# OCPP 1.6 §4.2 ("RemoteStartTransaction.req and RemoteStopTransaction.req"), 2.0.1 B02 (the station
# rejects RequestStart/StopTransaction while Pending).
_NOT_WHILE_PENDING = frozenset(
    {"RemoteStartTransaction", "RemoteStopTransaction", "RequestStartTransaction", "RequestStopTransaction"}
)


DECOMMISSIONED_MESSAGE = (
    "The charge point is decommissioned: it is refused at its handshake and can receive no command"
    " until it is commissioned again."
)


def _charge_point_sendable(charge_point: ChargePoint | None, request: CommandRequest) -> None:
    """Raises ``CommandRefused`` (NotFound, UnsupportedVersion, ChargePointDecommissioned,
    ChargePointPending) unless ``request`` may go to ``charge_point``."""
    if charge_point is None:
        raise CommandRefused("NotFound", f"Charge point {request.charge_point_id!r} is not registered.")
    if charge_point.ocpp_version and charge_point.ocpp_version != request.ocpp_version:
        raise CommandRefused(
            "UnsupportedVersion",
            f"{request.command} is an OCPP {request.ocpp_version} command; "
            f"this charge point speaks OCPP {charge_point.ocpp_version}.",
        )
    if charge_point.lifecycle_state == LifecycleState.DECOMMISSIONED:
        # Refused at its handshake: never connected again until commissioned, so no retry can reach it
        # (it was a 503 NotConnected, which tells a caller to try again later).
        raise CommandRefused("ChargePointDecommissioned", DECOMMISSIONED_MESSAGE)
    action = catalog.ocpp_action(request.command)
    if action in _NOT_WHILE_PENDING and charge_point.lifecycle_state == LifecycleState.PENDING:
        raise CommandRefused(
            "ChargePointPending",
            f"The charge point is pending (not commissioned): OCPP forbids {action} until it is accepted.",
        )


# The CALLERROR code of an answer the gateway could not read (cut off, too deep, a number too long:
# ``ocpp_gateway.router``), and a charger's own when it could not read the CALL (1.6's spelling too).
_FORMAT_VIOLATIONS = frozenset({"FormatViolation", "FormationViolation"})


def _answer_unreadable(command: Command) -> bool:
    """Whether ``command`` ended in a FormatViolation: most often an answer the gateway could not read,
    which may have said the charger carried the request out; taken as unanswered (a timeout), never as
    a refusal."""
    return command.state == CommandState.CALL_ERROR and command.error_code in _FORMAT_VIOLATIONS


def command_complete(*, command: Command, outcome: CallOutcome) -> Command:
    """Record what became of the command: its outcome (``outcomes.outcome_applied``), the answer's
    route followed (``routes.answer_follow``) and the ``command.completed`` event, in one
    transaction. In a group-commit batch, what its batch wrote ahead for it
    (``outcome_writes.outcome_written_taken``: the outcome and the answer's store) is not written again.

    The first completion stands: the outcome is written only while the row is still pending (one
    conditional UPDATE, which waits for a concurrent completion's lock and reads its commit). An
    answer that comes after the abandoned-commands sweep timed the command out writes nothing,
    follows no route and emits no second ``command.completed``; the command is returned as it
    stands (``_completed_before``)."""
    if outcome_written_taken(command, outcome):
        webhook_event_emit(event_type=EventType.COMMAND_COMPLETED, data=events.command_completed(command))
        return command
    outcome_applied(command, outcome, completed_at=timezone.now())
    follows = answered(command) and command.charge_point_id and routes.answer_has_route(command)
    unanswered = None
    if _never_sent(command) or (command.state == CommandState.CALL_ERROR and not _answer_unreadable(command)):
        unanswered = routes.unsent_route(command)  # never reached the charger, or refused unread
    elif command.state == CommandState.TIMEOUT or _answer_unreadable(command):
        unanswered = routes.unanswered_route(command)
    if command.charge_point is None:
        unanswered = None
    if not follows and unanswered is None and _outcome_saved_alone(command):
        return command
    with transaction.atomic():
        if not _outcome_saved(command):
            return _completed_before(command)
        if follows:
            _answer_followed(command)
        if unanswered is not None:
            unanswered(command)
        webhook_event_emit(
            event_type=EventType.COMMAND_COMPLETED,
            data=events.command_completed(command),
        )
    return command


# Seconds beyond the call timeout after which a command still pending was abandoned: the process
# that sent it (or waited for its answer) stopped, and nothing else will complete it.
ABANDONED_MARGIN_SECONDS = 60
ABANDONED = "The process that sent it stopped before the charge point's answer came back."
_ABANDONED_PER_SWEEP = 500
ABANDONED_LOOKBACK = timedelta(hours=1)
# Where the sweeps left off (``commands_abandoned_timed_out``): every command made before it and
# abandoned is completed. In the cache (Redis), shared by the workers and kept across their restarts.
ABANDONED_SWEPT_UNTIL = "commands:abandoned-swept-until"


def commands_abandoned_timed_out() -> list[Command]:
    """Complete as timed out (``Timeout``, with its ``command.completed`` event) the commands still
    pending ``CSMS_OCPP_CALL_TIMEOUT`` + ``ABANDONED_MARGIN_SECONDS`` after they were made: the
    gateway or API process that sent them died (a ``?wait=false`` command's caller polls for an
    outcome that would never come). Each is locked and checked again (a late completion wins); at
    most 500 a sweep, the oldest first, among those made since the sweeps left off
    (``ABANDONED_SWEPT_UNTIL``: after Celery beat or its worker was away, or a backlog of more
    than a sweep's), or in the ``ABANDONED_LOOKBACK`` before the cutoff when that is earlier or
    unknown (the sweep runs every minute: a range of the ``created_at`` index, not the whole
    table; measured from the cutoff, not from now, whatever the call timeout). Returns those
    completed."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.CSMS_OCPP_CALL_TIMEOUT + ABANDONED_MARGIN_SECONDS)
    stale = Command.objects.filter(
        state=CommandState.PENDING, created_at__lt=cutoff, created_at__gte=_abandoned_sweep_start(cutoff)
    ).order_by("created_at")
    found = list(stale.values_list("pk", "created_at")[:_ABANDONED_PER_SWEEP])

    def timed_out(pk: uuid.UUID) -> Command | None:
        with transaction.atomic():
            command = stale.select_for_update(skip_locked=True).filter(pk=pk).first()
            if command is None:
                return None
            return command_complete(command=command, outcome=CallOutcome(Outcome.TIMEOUT, error_description=ABANDONED))

    # One that cannot be completed must not hold the sweep at it for ever (``kernel.sweeps``).
    failed = "the abandoned commands' sweep could not complete command %s"
    completed = [c for c in each_passed_over([pk for pk, _ in found], timed_out, logger=logger, failed=failed) if c]
    # All found: swept up to the cutoff; else up to the last one (the oldest first), the rest next time.
    _abandoned_swept_until(cutoff if len(found) < _ABANDONED_PER_SWEEP else found[-1][1])
    return completed


def _abandoned_sweep_start(cutoff: datetime) -> datetime:
    """Where a sweep of the commands made before ``cutoff`` starts: where the sweeps left off, or
    ``ABANDONED_LOOKBACK`` before ``cutoff`` when that is earlier or unknown (the cache unreachable)."""
    start = cutoff - ABANDONED_LOOKBACK
    try:
        swept_until = cache.get(ABANDONED_SWEPT_UNTIL)
    except Exception as error:
        logger.warning("the abandoned commands' sweep could not read where it left off: %r", error)
        return start
    return swept_until if isinstance(swept_until, datetime) and swept_until < start else start


def _abandoned_swept_until(at: datetime) -> None:
    try:
        cache.set(ABANDONED_SWEPT_UNTIL, at, None)
    except Exception as error:
        logger.warning("the abandoned commands' sweep could not record where it left off: %r", error)


def _answer_followed(command: Command) -> None:
    """``routes.answer_follow`` in a savepoint: an answer the CSMS cannot apply to its state (a bug,
    a value its columns cannot hold) is logged, and the command's outcome is recorded all the same:
    it was answered, and a command left pending for ever helps no one. A lost race (a deadlock, a
    lock wait timed out, the database gone) is raised: written again, it may apply."""
    try:
        with transaction.atomic():
            routes.answer_follow(command)
    except OperationalError:
        raise
    except Exception:
        logger.exception(
            "%s: the answer to %s (command %s) was not applied to the CSMS's state",
            command.charge_point_identity,
            command.action,
            command.pk,
        )


completion_unit_register(command_complete)  # its batch writes its answered reads ahead (``outcome_writes``)


def _outcome_saved_alone(command: Command) -> bool:
    """The outcome's UPDATE without a transaction when nothing need be written with it, in one
    statement that also asks whether a webhook subscription may want ``command.completed`` (then
    it writes nothing and returns False: the caller writes it with the event). PostgreSQL only.

    In a group-commit batch (``kernel.plain_sql.gathering``: the configuration read after a boot,
    answered by a CALLERROR or a timeout) the subscription is asked once per batch
    (``webhook_event_may_have_subscribers``) and, when there is none, the UPDATE is gathered: the
    batch writes its outcomes by one statement (issue 15). No unit of the batch reads the row: the
    Boot's ``configuration_read_recent`` asks only for an accepted read, whose answer follows a
    route (``routes.answer_has_route``) and is never written here."""
    if connection.vendor != "postgresql":
        return False
    if gathering():
        if webhook_event_may_have_subscribers(event_type=EventType.COMMAND_COMPLETED):
            return False
        # a row completed meanwhile fails the batch's gathered writes: written again, by ``_outcome_saved``
        return instance_updated(command, OUTCOME_FIELDS, may_gather=True, guard=_PENDING)
    subscribers, params = webhook_subscribers_condition(event_type=EventType.COMMAND_COMPLETED)
    # completed before: nothing written here either, ``_outcome_saved`` tells
    unless = (f"({subscribers} OR {_COMPLETED_BEFORE[0]})", [*params, *_COMPLETED_BEFORE[1]])
    return instance_updated(command, OUTCOME_FIELDS, unless=unless)


def _outcome_saved(command: Command) -> bool:
    """The outcome's UPDATE, while the row is pending (``_COMPLETED_BEFORE``); False when it was not
    (completed before: nothing written)."""
    if connection.vendor == "postgresql":
        # the ORM's save, without its query building (issue 15)
        return instance_updated(command, OUTCOME_FIELDS, unless=_COMPLETED_BEFORE)
    fields = {name: getattr(command, name) for name in OUTCOME_FIELDS}
    return bool(Command.objects.filter(pk=command.pk, state=CommandState.PENDING).update(**fields))


# ``instance_updated``'s ``unless`` for an outcome: the command was completed before (by the
# abandoned-commands sweep, say), whose outcome and ``command.completed`` event stand.
_COMPLETED_BEFORE = ("(state <> %s)", [CommandState.PENDING.value])
_PENDING = ("state", CommandState.PENDING.value)  # the gathered write's guard, to the same end


def _completed_before(command: Command) -> Command:
    """``command`` (its outcome's fields set but not written) as its row stands: completed before
    this outcome came (``_outcome_saved``), which is logged and dropped."""
    logger.warning(
        "%s: the outcome of %s (command %s, %s) came after it was completed; left as it was",
        command.charge_point_identity,
        command.action,
        command.pk,
        command.state,
    )
    command.refresh_from_db(fields=OUTCOME_FIELDS)
    return command


def command_refusal(*, command: Command) -> str:
    """The status by which the charger refused ``command`` (e.g. ``Rejected``, ``UnknownVariable``)."""
    statuses = catalog.answer_statuses(command.command, command.response or {}, snake_case=True)
    refusing = sorted(statuses & REFUSING_STATUSES)
    return refusing[0] if refusing else "Rejected"


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


def heartbeat_interval_owed_push(*, charge_point_id: str) -> Command | None:
    """A charger reconnected without a BootNotification (whose answer would carry its interval, 1.6
    §4.2, 2.0.1 B01) while its stored heartbeat interval is one it has not taken (changed while it
    was away, or a push it refused or must reboot for: ``previous_heartbeat_interval`` set): push
    it (``heartbeat_interval_push``'s command), not waiting for the answer, whose handler records it
    taken as any push's. Returns the command sent, or None when nothing is owed or the charger is
    not connected. Raises ``CommandRefused`` as ``command_send``."""
    charge_point = ChargePoint.objects.filter(
        charge_point_id=charge_point_id, previous_heartbeat_interval__isnull=False
    ).first()
    if charge_point is None or not charge_point.connection_channel or not charge_point.ocpp_version:
        return None
    command, body = _heartbeat_interval_command(charge_point.ocpp_version, charge_point.heartbeat_interval)
    request = CommandRequest(
        charge_point_id=charge_point.charge_point_id,
        ocpp_version=charge_point.ocpp_version,
        command=command,
        body=body,
    )
    return command_send(request=request, wait=False)


def pending_charger_wake(
    *, charge_point: ChargePoint, previous_state: str, api_key: ApiKey | None = None, user_id: int | None = None
) -> None:
    """Once a connected charger is commissioned, ask it to boot again (TriggerMessage BootNotification,
    the same in 1.6 and 2.0.1): it was answered Pending and would otherwise wait up to its interval.

    Sent after the commit, in the background (the command is recorded as any other); an offline or
    silent charger never fails the commissioning: its next Boot is Accepted anyway, and a charger
    that reconnects without one is asked on its new connection (``commissioned_charger_boot_ask``).
    """
    if previous_state == LifecycleState.COMMISSIONED or charge_point.lifecycle_state != LifecycleState.COMMISSIONED:
        return
    if not charge_point.connection_channel or not charge_point.ocpp_version:
        return
    request = _boot_trigger_request(charge_point, api_key=api_key, user_id=user_id)
    command_send_on_commit(request=request, purpose="ask the commissioned charger to boot")


def commissioned_charger_boot_ask(*, charge_point_id: str) -> Command | None:
    """A commissioned charger whose last BootNotification was answered Pending
    (``ChargePoint.boot_pending``) connected: ask it to boot again (TriggerMessage BootNotification),
    not waiting for the answer. It was commissioned while away (or its wake went unanswered) and came
    back without rebooting: it still takes itself as Pending, sends no Boot before its Pending interval
    runs out (1.6 §4.2, 2.0.1 B02), and may use the network for nothing meanwhile. Returns the command
    sent, or None when nothing is owed (it booted meanwhile) or the charger is not connected. Raises
    ``CommandRefused`` as ``command_send``."""
    charge_point = ChargePoint.objects.filter(
        charge_point_id=charge_point_id, lifecycle_state=LifecycleState.COMMISSIONED, boot_pending=True
    ).first()
    if charge_point is None or not charge_point.connection_channel or not charge_point.ocpp_version:
        return None
    return command_send(request=_boot_trigger_request(charge_point), wait=False)


def _boot_trigger_request(
    charge_point: ChargePoint, *, api_key: ApiKey | None = None, user_id: int | None = None
) -> CommandRequest:
    """TriggerMessage BootNotification to ``charge_point`` (the same in 1.6 and 2.0.1)."""
    return CommandRequest(
        charge_point_id=charge_point.charge_point_id,
        ocpp_version=charge_point.ocpp_version,
        command="trigger_message",
        body={"requested_message": "BootNotification"},
        api_key=api_key,
        user_id=user_id,
    )


def command_send_on_commit(*, request: CommandRequest, purpose: str) -> None:
    """Send ``request`` in the background once the caller's transaction commits (recorded as any
    command; ``command_send(wait=False)``). A refusal or failure is logged (``could not <purpose>``),
    never raised: the caller's change stands without it."""

    def send() -> None:
        try:
            command_send(request=request, wait=False)
        except Exception:
            logger.exception("%s: could not %s", request.charge_point_id, purpose)

    transaction.on_commit(send)


@dataclass(frozen=True)
class RecordedSecretsRedacted:
    commands: int  # commands whose recorded request changed
    messages: int  # message log frames that changed


def recorded_secrets_redact(*, batch_size: int = 2000) -> RecordedSecretsRedacted:
    """Redact what rows written before the redaction of recorded secrets (round 46; a charger's
    password before round 45) still hold: a location's secret (a signed firmware link's or an
    upload link's token, an FTP password) and a charger's password in ``Command.request``, a
    password a charger reported in ``Command.response``, and both in the message log's frames, as
    ``redaction.request_redacted``, ``charger_passwords.answer_redacted`` and the gateway redact
    them now.

    Idempotent: a redacted row is left alone, and so is a command in flight (its answer's
    follow-up may read the request: run it again later). Rows are read and written
    ``batch_size`` at a time, each batch its own transaction: commands by primary key among the
    actions that may hold a secret, the message log by ranges of its primary key (never a scan
    of the whole table in one statement), so it runs beside the gateway
    (``manage.py redact_recorded_secrets``)."""
    changed_commands = 0
    last_pk = None
    while True:
        batch = (
            Command.objects.filter(action__in=redaction.SECRET_ACTIONS)
            .exclude(state=CommandState.PENDING)  # in flight: its answer's follow-up may read the request
            .order_by("pk")
        )
        if last_pk is not None:
            batch = batch.filter(pk__gt=last_pk)
        rows = list(batch.only("pk", "ocpp_version", "action", "request", "response")[:batch_size])
        if not rows:
            break
        last_pk = rows[-1].pk
        changed = [command for command in rows if _command_secrets_redacted(command)]
        with transaction.atomic():
            Command.objects.bulk_update(changed, ["request", "response"])
        changed_commands += len(changed)
    return RecordedSecretsRedacted(commands=changed_commands, messages=_logged_secrets_redact(batch_size=batch_size))


def _command_secrets_redacted(command: Command) -> bool:
    """Redact ``command``'s request (a location's secret, a password it sets) and its answer (a
    password the charger reported, ``charger_passwords.answer_redacted``); whether either changed."""
    before = (command.request, command.response)
    if isinstance(command.request, dict):
        command.request = redaction.request_redacted(command.ocpp_version, command.action, command.request)
    if isinstance(command.response, dict):
        command.response = charger_passwords.answer_redacted(command.ocpp_version, command.action, command.response)
    return (command.request, command.response) != before


def _logged_secrets_redact(*, batch_size: int) -> int:
    bounds = OcppMessage.objects.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return 0
    changed_messages = 0
    for low in range(bounds["low"], bounds["high"] + 1, batch_size):
        rows = OcppMessage.objects.filter(
            pk__gte=low, pk__lt=low + batch_size, action__in=redaction.SECRET_ACTIONS
        ).only("pk", "direction", "message_type", "action", "frame")
        changed = []
        for message in rows:
            outbound_call = message.direction == MessageDirection.OUTBOUND and message.message_type == 2
            redacted = redaction.logged_frame_redacted(
                action=message.action, outbound_call=outbound_call, text=message.frame
            )
            if redacted != message.frame:
                message.frame = redacted
                changed.append(message)
        with transaction.atomic():
            OcppMessage.objects.bulk_update(changed, ["frame"])
        changed_messages += len(changed)
    return changed_messages
