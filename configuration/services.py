"""Recording what chargers tell of their configuration: 1.6 keys and the 2.0.1 device model.

Every write stamps when (``learned_at``) and how (``learned_from``, the command or the report's
requestId) the value was learned. A read of a value after the charger's next boot, or one giving
it, also clears its ``pending_value`` (``report_writes.pending_kept``).
Payloads are snake_case (the ``ocpp`` package's kwargs, ``Command.request``/``response``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeGuard

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from chargepoints.models import ChargePoint
from chargepoints.services import charge_point_heartbeat_interval_taken
from chargepoints.services.heartbeat_pace import (
    charge_point_heartbeat_interval_unconfirmed,
    heartbeat_intervals_reported,
)
from chargepoints.services.rate_units import charging_rate_units_reported
from commands.models import Command
from configuration.models import (
    ATTRIBUTE_DEFAULTS,
    AttributeType,
    ConfigurationKey,
    DeviceModelAttribute,
    DeviceModelReport,
    DeviceModelVariable,
    LearnedFrom,
)
from configuration.report_writes import (
    REQUEST_ID_MAX,
    ReportPart,
    ReportTie,
    identity_digest,
    is_heartbeat_interval,
    is_rate_unit,
    pending_kept,
    pending_kept_sql,
    report_parts_stored,
    report_stored_taken,
    report_unit_register,
    reports_tied,
    request_id_next_sql,
    variable_identity,
)
from kernel.plain_sql import array_text, bound_cursor
from kernel.sweeps import each_passed_over

logger = logging.getLogger(__name__)

ACCEPTED = "Accepted"
REBOOT_REQUIRED = "RebootRequired"
NOT_SUPPORTED = "NotSupported"  # 1.6 ConfigurationStatus: the key is not supported


def configuration_keys_record(
    *,
    charge_point: ChargePoint,
    keys: Iterable[dict[str, Any]],
    unknown_keys: Iterable[str] = (),
    complete: bool,
    command: Command | None = None,
) -> int:
    """Store a 1.6 GetConfiguration answer (OCPP 1.6 §6.29): ``keys`` as ``{"key", "readonly", "value"?}``.

    ``complete``: the request named no keys, so keys the answer lacks are gone. Returns the keys stored.
    """
    now = timezone.now()
    answered = _answered_keys(keys, unknown_keys)
    _heartbeat_intervals_read({charge_point.pk: answered})
    _rate_units_read({charge_point.pk: answered})
    if connection.vendor == "postgresql":
        _configuration_keys_written(charge_point, answered, complete, command, now)
        return len(answered)
    if not complete:  # a key answered in another case than the stored one is that key (``_STORED_CASE``)
        stored = {
            key.lower(): key
            for key in ConfigurationKey.objects.filter(charge_point=charge_point)
            .order_by("-key")
            .values_list("key", flat=True)
        }
        answered = {stored.get(key.lower(), key): answer for key, answer in answered.items()}
    rows = [
        _configuration_key(charge_point, key, value, readonly, unknown, LearnedFrom.GET_CONFIGURATION, command, now)
        for key, (value, readonly, unknown) in answered.items()
    ]
    _pending_values_kept(charge_point, rows)
    with transaction.atomic():  # PostgreSQL's one statement above is atomic by itself, without a savepoint
        if complete:
            ConfigurationKey.objects.filter(charge_point=charge_point).exclude(key__in=answered.keys()).delete()
        ConfigurationKey.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["charge_point", "key"],
            update_fields=[
                "value",
                "readonly",
                "unknown",
                "pending_value",
                "unconfirmed_value",
                "learned_from",
                "command",
                "learned_at",
            ],
        )
    return len(rows)


def _pending_values_kept(charge_point: ChargePoint, rows: list[ConfigurationKey]) -> None:
    """The ``pending_value`` each read key keeps (``pending_kept``; a key the charger says it does
    not know: none), as ``_KEY_PENDING_KEPT`` leaves it. Two queries when a key waits, else one."""
    waiting = {
        key: (pending, learned_at)
        for key, pending, learned_at in ConfigurationKey.objects.filter(
            charge_point=charge_point, pending_value__isnull=False
        ).values_list("key", "pending_value", "learned_at")
    }
    if not waiting:
        return
    booted = ChargePoint.objects.filter(pk=charge_point.pk).values_list("last_boot_at", flat=True).first()
    for row in rows:
        if row.key in waiting and not row.unknown:
            pending, learned_at = waiting[row.key]
            row.pending_value = pending_kept(pending, learned_at, row.value, booted)


# A key's (value, readonly, unknown) as answered: None for what the charger did not give.
_KeyAnswer = tuple[str | None, bool | None, bool]


def _heartbeat_intervals_read(answers: dict[int, dict[str, _KeyAnswer]]) -> None:
    """The ``HeartbeatInterval`` each charger's read gave (charger pk -> its answered keys): the
    interval it heartbeats at, which the offline sweep follows (``heartbeat_intervals_reported``)."""
    reported = {
        pk: value
        for pk, answered in answers.items()
        for key, (value, _, unknown) in answered.items()
        if key.casefold() == HEARTBEAT_INTERVAL_KEY.casefold() and value is not None and not unknown
    }
    heartbeat_intervals_reported(reported=reported)


# The 1.6 key of the units a charger takes a charging profile's limit in (§9.4; the 2.0.1 variable's: ``is_rate_unit``).
RATE_UNITS_KEY = "ChargingScheduleAllowedChargingRateUnit"


def _rate_units_read(answers: dict[int, dict[str, _KeyAnswer]]) -> None:
    """The ``ChargingScheduleAllowedChargingRateUnit`` each charger's read gave (charger pk -> its
    answered keys; one it does not know: none), kept on the charger (``charging_rate_units_reported``)."""
    reported = {
        pk: None if unknown else value
        for pk, answered in answers.items()
        for key, (value, _, unknown) in answered.items()
        if key.casefold() == RATE_UNITS_KEY.casefold()
    }
    charging_rate_units_reported(reported=reported)


# OCPP 1.6 KeyValue (GetConfiguration.conf): ``key`` is a CiString50Type, ``value`` a CiString500Type.
KEY_LENGTH = 50


def _answered_keys(keys: Iterable[dict[str, Any]], unknown_keys: Iterable[str]) -> dict[str, _KeyAnswer]:
    """A GetConfiguration answer's keys (a key given twice: its last), its unknown keys first.

    A lenient charger model's answer (schema violations recorded, not refused) may hold what no
    ChangeConfiguration could name: a key that is no text of at most 50 characters (or holds a NUL) is left out (it
    made the whole answer unstorable: every key lost, a traceback logged); a value that is no text is
    kept as its JSON, a ``readonly`` that is no boolean as unknown (None)."""
    answered: dict[str, _KeyAnswer] = {}
    named: dict[str, str] = {}  # each key answered, by its lower case: 1.6 keys are case-insensitive
    for unknown in unknown_keys:
        if _storable_key(unknown):
            _answer_put(answered, named, unknown, (None, None, True))
    for item in keys:
        key = item.get("key") if isinstance(item, dict) else None
        if not _storable_key(key):
            continue
        value, readonly = item.get("value"), item.get("readonly")
        if value is not None and not isinstance(value, str):
            value = json.dumps(value)
        if value is not None and "\x00" in value:  # PostgreSQL's text holds no NUL
            value = value.replace("\x00", "\ufffd")
        _answer_put(answered, named, key, (value, readonly if isinstance(readonly, bool) else None, False))
    return answered


def _answer_put(answered: dict[str, _KeyAnswer], named: dict[str, str], key: str, answer: _KeyAnswer) -> None:
    """``answer`` for ``key`` in ``answered``, in place of one of the same key in another case
    (``named``: the keys answered by their lower case): a key answered twice is one key, its last
    answer kept."""
    held = named.pop(key.lower(), None)
    if held is not None:
        del answered[held]
    named[key.lower()] = key
    answered[key] = answer


def _storable_key(key: Any) -> TypeGuard[str]:
    return isinstance(key, str) and 0 < len(key) <= KEY_LENGTH and "\x00" not in key


@dataclass(frozen=True)
class KeysRead:
    """A 1.6 GetConfiguration answer to store, as ``configuration_keys_record``'s arguments."""

    charge_point: ChargePoint
    keys: Sequence[dict[str, Any]]
    unknown_keys: Sequence[str]
    complete: bool
    command: Command | None


def configuration_keys_recorded_together(*, reads: Sequence[KeysRead]) -> None:
    """Store several GetConfiguration answers (OCPP 1.6 §6.29) as ``configuration_keys_record``
    stores each, in order: on PostgreSQL by one statement for reads of distinct chargers (a group-
    commit batch's, ``commands.outcome_writes``), a charger's second read by the next statement."""
    if connection.vendor == "postgresql":
        answers = {read.charge_point.pk: _answered_keys(read.keys, read.unknown_keys) for read in reads}
        _heartbeat_intervals_read(answers)
        _rate_units_read(answers)
    else:
        for read in reads:
            configuration_keys_record(
                charge_point=read.charge_point,
                keys=read.keys,
                unknown_keys=read.unknown_keys,
                complete=read.complete,
                command=read.command,
            )
        return
    now = timezone.now()
    pending: dict[int, KeysRead] = {}
    for read in reads:
        if read.charge_point.pk in pending:
            _keys_written_together(list(pending.values()), now)
            pending.clear()
        pending[read.charge_point.pk] = read
    if pending:
        _keys_written_together(list(pending.values()), now)


# ``_KEYS_GONE`` and ``_KEYS_UPSERT`` for many chargers: the rows of every read (``t``), the keys
# of the complete reads' chargers their answer lacks deleted; one row per charger and key.
_KEYS_TOGETHER = (
    "WITH t AS (SELECT * FROM unnest(%s::bigint[], %s::uuid[], %s::text[], %s::text[], %s::boolean[],"
    " %s::boolean[]) AS t(cp, command_id, k, v, r, u)),"
    " gone AS (DELETE FROM {table} d WHERE d.charge_point_id = ANY(%s::bigint[])"
    " AND NOT EXISTS (SELECT 1 FROM t WHERE t.cp = d.charge_point_id AND t.k = d.key))"
    " INSERT INTO {table} AS held (charge_point_id, key, value, readonly, unknown, pending_value, learned_from,"
    " command_id, learned_at)"
    " SELECT cp, CASE WHEN cp = ANY(%s::bigint[]) THEN k ELSE {stored_case} END, v, r, u, NULL, %s::text,"
    " command_id, %s::timestamptz FROM t"
    " ON CONFLICT (charge_point_id, key) DO UPDATE SET value = EXCLUDED.value, readonly = EXCLUDED.readonly,"
    " unknown = EXCLUDED.unknown, pending_value = {pending}, unconfirmed_value = NULL,"
    " learned_from = EXCLUDED.learned_from,"
    " command_id = EXCLUDED.command_id, learned_at = EXCLUDED.learned_at"
)


def _keys_written_together(reads: list[KeysRead], now: datetime) -> None:
    """``_KEYS_TOGETHER`` for ``reads``, one per charger."""
    chargers: list[int] = []
    commands: list[str | None] = []
    keys: list[str] = []
    answers: list[_KeyAnswer] = []
    for read in reads:
        answered = _answered_keys(read.keys, read.unknown_keys)
        chargers += [read.charge_point.pk] * len(answered)
        commands += [str(read.command.pk) if read.command is not None else None] * len(answered)
        keys += answered.keys()
        answers += answered.values()
    values, readonly, unknown = zip(*answers, strict=True) if answers else ((), (), ())
    columns = (chargers, commands, keys, values, readonly, unknown)
    complete = [read.charge_point.pk for read in reads if read.complete]
    table = connection.ops.quote_name(ConfigurationKey._meta.db_table)
    with bound_cursor() as cursor:
        cursor.execute(
            _KEYS_TOGETHER.format(
                table=table, stored_case=_STORED_CASE.format(table=table, charger="t.cp"), pending=_KEY_PENDING_KEPT
            ),
            [
                *(array_text(column) for column in columns),
                array_text(complete),
                array_text(complete),
                LearnedFrom.GET_CONFIGURATION,
                now,
            ],
        )


_KEYS_UPSERT = (
    "INSERT INTO {table} AS held (charge_point_id, key, value, readonly, unknown, pending_value, learned_from,"
    " command_id, learned_at)"
    " SELECT %s, {key}, v, r, u, NULL, %s, %s, %s"
    " FROM unnest(%s::text[], %s::text[], %s::boolean[], %s::boolean[]) AS t(k, v, r, u)"
    " ON CONFLICT (charge_point_id, key) DO UPDATE SET value = EXCLUDED.value, readonly = EXCLUDED.readonly,"
    " unknown = EXCLUDED.unknown, pending_value = {pending}, unconfirmed_value = NULL,"
    " learned_from = EXCLUDED.learned_from,"
    " command_id = EXCLUDED.command_id, learned_at = EXCLUDED.learned_at"
)
# A stored key's value changed with RebootRequired, as a read leaves it (``pending_kept_sql``): one
# the charger says it does not know is settled.
_KEY_PENDING_KEPT = pending_kept_sql("held", "EXCLUDED.value", "held.charge_point_id", settled="EXCLUDED.unknown")
# A key a partial read answered, as the charger's stored key of that name in any case (1.6 keys are
# CiString50Type: a key asked, and answered, in another case is that key), else as answered. A complete
# read's keys are the charger's own: those it no longer reports are deleted, whatever their case.
_STORED_CASE = (
    "COALESCE((SELECT s.key FROM {table} s WHERE s.charge_point_id = {charger} AND lower(s.key) = lower(t.k)"
    " ORDER BY s.key LIMIT 1), t.k)"
)
_KEYS_GONE = "WITH gone AS (DELETE FROM {table} WHERE charge_point_id = %s AND key <> ALL(%s::text[])) "


def _configuration_keys_written(
    charge_point: ChargePoint,
    answered: dict[str, _KeyAnswer],
    complete: bool,
    command: Command | None,
    now: datetime,
) -> None:
    """PostgreSQL: what ``configuration_keys_record``'s ORM path writes (the DELETE of keys the
    answer lacks when ``complete``, then the upsert of the ``answered`` keys in their order) as one
    statement."""
    table = connection.ops.quote_name(ConfigurationKey._meta.db_table)
    keys = list(answered)
    params: list[Any] = [charge_point.pk, keys] if complete else []
    params += [charge_point.pk] if complete else [charge_point.pk, charge_point.pk]
    params += [
        LearnedFrom.GET_CONFIGURATION,
        command.pk if command is not None else None,
        now,
        keys,
        [answer[0] for answer in answered.values()],
        [answer[1] for answer in answered.values()],
        [answer[2] for answer in answered.values()],
    ]
    sql = (_KEYS_GONE if complete else "") + _KEYS_UPSERT
    key = "k" if complete else _STORED_CASE.format(table=table, charger="%s")
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=table, key=key, pending=_KEY_PENDING_KEPT), params)


def _configuration_key(
    charge_point: ChargePoint,
    key: str,
    value: str | None,
    readonly: bool | None,
    unknown: bool,
    learned_from: str,
    command: Command | None,
    now: datetime,
) -> ConfigurationKey:
    return ConfigurationKey(
        charge_point=charge_point,
        key=key,
        value=value,
        readonly=readonly,
        unknown=unknown,
        pending_value=None,
        learned_from=learned_from,
        command=command,
        learned_at=now,
    )


@transaction.atomic
def configuration_key_changed(
    *, charge_point: ChargePoint, key: str, value: str, status: str, command: Command
) -> None:
    """A 1.6 ChangeConfiguration answer (§6.3): Accepted stores ``value``; RebootRequired keeps it
    as the ``pending_value``; NotSupported (the charger has no such key, §7.8) makes a stored key
    ``unknown``, as a GetConfiguration naming it does; any other status changes nothing. The key
    stored in another case is the same key. A ``HeartbeatInterval`` taken is the charger's record too
    (``charge_point_heartbeat_interval_taken``)."""
    if key.casefold() == RATE_UNITS_KEY.casefold() and status in (NOT_SUPPORTED, ACCEPTED):
        charging_rate_units_reported(reported={charge_point.pk: value if status == ACCEPTED else None})
    if status == NOT_SUPPORTED:
        ConfigurationKey.objects.filter(charge_point=charge_point, key__iexact=key).update(
            value=None,
            readonly=None,
            unknown=True,
            pending_value=None,
            unconfirmed_value=None,
            learned_from=LearnedFrom.CHANGE_CONFIGURATION,
            command=command,
            learned_at=timezone.now(),
        )
        return
    if status not in (ACCEPTED, REBOOT_REQUIRED):
        return
    if key.casefold() == HEARTBEAT_INTERVAL_KEY.casefold():
        charge_point_heartbeat_interval_taken(
            charge_point=charge_point, value=value, after_reboot=status == REBOOT_REQUIRED
        )
    # The key as the charger reported it, in whatever case it was named (a CiString50Type).
    row = ConfigurationKey.objects.select_for_update().filter(charge_point=charge_point, key__iexact=key).first()
    if row is None:
        row = ConfigurationKey(charge_point=charge_point, key=key, readonly=False)
    if status == ACCEPTED:
        row.value, row.pending_value = value, None
    else:
        row.pending_value = value
    row.unconfirmed_value = None  # answered: what an earlier change left unanswered did is moot
    row.unknown, row.learned_from, row.command, row.learned_at = (
        False,
        LearnedFrom.CHANGE_CONFIGURATION,
        command,
        timezone.now(),
    )
    row.save()


@dataclass(frozen=True)
class ReportedAttribute:
    """One attribute of a 2.0.1 variable as learned, in snake_case OCPP shapes."""

    component: dict[str, Any]
    variable: dict[str, Any]
    type: str = AttributeType.ACTUAL
    value: str | None = None
    pending_value: str | None = None
    mutability: str = ""
    persistent: bool | None = None
    constant: bool | None = None
    characteristics: dict[str, Any] | None = None


def _variables_upsert(
    charge_point: ChargePoint, attributes: list[ReportedAttribute], now: datetime, *, characteristics: bool
) -> dict[tuple[Any, ...], DeviceModelVariable]:
    """The variables named by ``attributes``, created where new (two queries, whatever the count;
    three when a report's item gives no characteristics: those stored stay, ``_characteristics_kept``)."""
    variables: dict[tuple[Any, ...], DeviceModelVariable] = {}
    for attribute in attributes:
        key = variable_identity(attribute.component, attribute.variable)
        known = variables.get(key)
        variables[key] = _variable_row(
            charge_point,
            key,
            now,
            characteristics=attribute.characteristics or (known.characteristics if known else None),
        )
    if characteristics:
        _characteristics_kept(charge_point, variables.values())
    DeviceModelVariable.objects.bulk_create(
        variables.values(),
        update_conflicts=True,
        unique_fields=["charge_point", "identity"],
        update_fields=["characteristics", "learned_at"] if characteristics else ["learned_at"],
    )
    return variables


def _characteristics_kept(charge_point: ChargePoint, variables: Iterable[DeviceModelVariable]) -> None:
    """A reported variable without characteristics keeps those stored: ReportDataType's
    ``variableCharacteristics`` is optional (a GetReport's items often leave it out), so its
    absence says nothing of the variable's unit, data type or limits."""
    missing = {variable.identity: variable for variable in variables if variable.characteristics is None}
    if not missing:
        return
    stored = DeviceModelVariable.objects.filter(charge_point=charge_point, identity__in=list(missing))
    for identity, kept in stored.values_list("identity", "characteristics"):
        missing[identity].characteristics = kept


@transaction.atomic
def device_model_attributes_record(
    *,
    charge_point: ChargePoint,
    attributes: list[ReportedAttribute],
    learned_from: str,
    command: Command | None = None,
    report_request_id: int | None = None,
) -> None:
    """Store 2.0.1 attributes (and characteristics, from a NotifyReport) for their variables.

    The ``OCPPCommCtrlr.HeartbeatInterval`` a report or a GetVariables answer gives is the interval the
    charger heartbeats at, which the offline sweep follows (``heartbeat_intervals_reported``). A
    SetVariables answer (``learned_from`` SetVariables) writes the value, or for RebootRequired
    the pending value, and leaves the mutability and flags as they were known; an
    ``OCPPCommCtrlr.HeartbeatInterval`` it took is the charger's record too
    (``charge_point_heartbeat_interval_taken``).
    """
    now = timezone.now()
    if learned_from != LearnedFrom.NOTIFY_REPORT:
        attributes = _named_as_stored(charge_point, attributes)
    if learned_from == LearnedFrom.SET_VARIABLES:
        _heartbeat_interval_followed(charge_point, attributes)
    else:
        _heartbeat_interval_read(charge_point, attributes)
    _rate_unit_read(charge_point, attributes)
    reported = learned_from == LearnedFrom.NOTIFY_REPORT
    variables = _variables_upsert(charge_point, attributes, now, characteristics=reported)
    rows: dict[tuple[int, str], DeviceModelAttribute] = {}
    for attribute in attributes:
        variable = variables[variable_identity(attribute.component, attribute.variable)]
        rows[(variable.pk, attribute.type)] = DeviceModelAttribute(
            variable=variable,
            type=attribute.type,
            value=attribute.value,
            pending_value=attribute.pending_value,
            mutability=attribute.mutability,
            persistent=attribute.persistent,
            constant=attribute.constant,
            learned_from=learned_from,
            report_request_id=report_request_id,
            command=command,
            learned_at=now,
        )
    written = [
        "value",
        "pending_value",
        "unconfirmed_value",
        "learned_from",
        "report_request_id",
        "command",
        "learned_at",
    ]
    if reported:
        written += ["mutability", "persistent", "constant"]
    if learned_from == LearnedFrom.SET_VARIABLES:
        _keep_values_of_reboot_required(rows.values())
    else:
        _attribute_pending_values_kept(charge_point, rows.values())
    DeviceModelAttribute.objects.bulk_create(
        rows.values(), update_conflicts=True, unique_fields=["variable", "type"], update_fields=written
    )


@transaction.atomic
def configuration_values_unconfirmed(
    *,
    charge_point: ChargePoint,
    command: Command,
    keys: Sequence[tuple[str, str]] = (),
    attributes: Sequence[ReportedAttribute] = (),
) -> None:
    """Values sent whose command's answer did not come back (1.6 ChangeConfiguration ``keys``, each
    ``(key, value)``; 2.0.1 SetVariables ``attributes``, each ``value`` the one sent): the charger
    may have taken them, or not. Each is kept as its key's or attribute's ``unconfirmed_value``
    beside the value known before, which stays (a row made where none was stored, its value not
    known); the next read of it, or a change of it answered, clears it. The heartbeat interval sent
    is the charger's ``unconfirmed_heartbeat_interval`` (``charge_point_heartbeat_interval_unconfirmed``).
    Keys and names are matched ignoring case, as the answers' are."""
    now = timezone.now()
    for key, value in keys:
        if not ConfigurationKey.objects.filter(charge_point=charge_point, key__iexact=key).update(
            unconfirmed_value=value
        ):
            row = ConfigurationKey(
                charge_point=charge_point,
                key=key,
                unconfirmed_value=value,
                learned_from=LearnedFrom.CHANGE_CONFIGURATION,
                command=command,
                learned_at=now,
            )
            ConfigurationKey.objects.bulk_create([row], ignore_conflicts=True)
        if key.casefold() == HEARTBEAT_INTERVAL_KEY.casefold():
            charge_point_heartbeat_interval_unconfirmed(charge_point=charge_point, value=value)
    if not attributes:
        return
    attributes = _named_as_stored(charge_point, list(attributes))
    for attribute in attributes:
        identity = variable_identity(attribute.component, attribute.variable)
        if attribute.type == AttributeType.ACTUAL and attribute.value is not None and is_heartbeat_interval(identity):
            charge_point_heartbeat_interval_unconfirmed(charge_point=charge_point, value=attribute.value)
    variables = _variables_made(charge_point, attributes, now)
    rows: dict[tuple[int, str], DeviceModelAttribute] = {}
    for attribute in attributes:
        variable = variables[identity_digest(variable_identity(attribute.component, attribute.variable))]
        rows[(variable.pk, attribute.type)] = DeviceModelAttribute(
            variable=variable,
            type=attribute.type,
            unconfirmed_value=attribute.value,
            learned_from=LearnedFrom.SET_VARIABLES,
            command=command,
            learned_at=now,
        )
    DeviceModelAttribute.objects.bulk_create(
        rows.values(), update_conflicts=True, unique_fields=["variable", "type"], update_fields=["unconfirmed_value"]
    )


def _variable_row(charge_point: ChargePoint, key: tuple[Any, ...], now: datetime, **fields: Any) -> DeviceModelVariable:
    """A variable of ``charge_point`` named by ``key`` (``variable_identity``), learned ``now``, not saved."""
    component_name, component_instance, evse_id, connector_id, variable_name, variable_instance = key
    return DeviceModelVariable(
        charge_point=charge_point,
        component_name=component_name,
        component_instance=component_instance,
        evse_id=evse_id,
        connector_id=connector_id,
        variable_name=variable_name,
        variable_instance=variable_instance,
        identity=identity_digest(key),
        learned_at=now,
        **fields,
    )


def _variables_made(
    charge_point: ChargePoint, attributes: Sequence[ReportedAttribute], now: datetime
) -> dict[str, DeviceModelVariable]:
    """The variables ``attributes`` name, by ``identity``: those stored as they are (nothing learned
    of them), those not stored made. Two queries, four when one is made."""
    named = {identity_digest(key): key for key in (variable_identity(a.component, a.variable) for a in attributes)}
    stored = {v.identity: v for v in DeviceModelVariable.objects.filter(charge_point=charge_point, identity__in=named)}
    missing = [_variable_row(charge_point, key, now) for digest, key in named.items() if digest not in stored]
    if missing:
        DeviceModelVariable.objects.bulk_create(missing, ignore_conflicts=True)
        made = DeviceModelVariable.objects.filter(charge_point=charge_point, identity__in=[v.identity for v in missing])
        stored.update({v.identity: v for v in made})
    return stored


# GetVariableStatusEnumType / SetVariableStatusEnumType (2.0.1 part 2): the station has no such
# component or variable, or no attribute of that type.
UNKNOWN_VARIABLE_STATUSES = frozenset({"UnknownComponent", "UnknownVariable"})
UNKNOWN_ATTRIBUTE_STATUS = "NotSupportedAttributeType"


def device_model_unknown_forget(
    *, charge_point: ChargePoint, unknown: Sequence[tuple[dict[str, Any], dict[str, Any], str, str]]
) -> int:
    """A GetVariables or SetVariables answer's results saying the station has no such variable
    (``UNKNOWN_VARIABLE_STATUSES``) or attribute (``UNKNOWN_ATTRIBUTE_STATUS``): each ``(component,
    variable, attribute type, status)``. The stored variable (its names and instances matched ignoring
    case), or its attribute of that type, is no longer stored: its firmware dropped it (a complete
    FullInventory leaves it out too; 1.6 records such a key ``unknown``). One query, and one delete
    per kind when one is stored. Returns how many variables and attributes went."""
    asked = [item for item in unknown if item[3] in UNKNOWN_VARIABLE_STATUSES or item[3] == UNKNOWN_ATTRIBUTE_STATUS]
    if not asked:
        return 0
    if any(t == AttributeType.ACTUAL and is_rate_unit(variable_identity(c, v)) for c, v, t, _ in asked):
        charging_rate_units_reported(reported={charge_point.pk: None})  # its rate units: not known
    names = Q()
    for component, variable, _, _ in asked:
        names |= Q(component_name__iexact=component["name"], variable_name__iexact=variable["name"])
    stored = {
        _folded(
            (v.component_name, v.component_instance, v.evse_id, v.connector_id, v.variable_name, v.variable_instance)
        ): v.pk
        for v in DeviceModelVariable.objects.filter(names, charge_point=charge_point)
    }
    variables: set[int] = set()
    attributes = Q()
    for component, variable, attribute_type, status in asked:
        pk = stored.get(_folded(variable_identity(component, variable)))
        if pk is None:
            continue
        if status in UNKNOWN_VARIABLE_STATUSES:
            variables.add(pk)
        else:
            attributes |= Q(variable_id=pk, type=attribute_type)
    gone = 0
    if attributes:
        gone += DeviceModelAttribute.objects.filter(attributes).exclude(variable_id__in=variables).delete()[0]
    if variables:
        gone += DeviceModelVariable.objects.filter(pk__in=variables).delete()[0]
    return gone


def _folded(identity: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(part.casefold() if isinstance(part, str) else part for part in identity)


def _named_as_stored(charge_point: ChargePoint, attributes: list[ReportedAttribute]) -> list[ReportedAttribute]:
    """``attributes`` (of a GetVariables or SetVariables answer, named as the operator asked) under
    the names and instances of the variables stored for them, matched ignoring case (2.0.1 part 2,
    ComponentType and VariableType: names and instances are case-insensitive): one stored variable
    per variable, however it is spelled. One query."""
    if not attributes:
        return attributes
    names = Q()
    for attribute in attributes:
        names |= Q(component_name__iexact=attribute.component["name"], variable_name__iexact=attribute.variable["name"])
    stored = {
        _folded(identity): identity
        for identity in (
            (v.component_name, v.component_instance, v.evse_id, v.connector_id, v.variable_name, v.variable_instance)
            for v in DeviceModelVariable.objects.filter(names, charge_point=charge_point)
        )
    }
    named = []
    for attribute in attributes:
        identity = stored.get(_folded(variable_identity(attribute.component, attribute.variable)))
        if identity is None:
            named.append(attribute)
            continue
        component_name, component_instance, _, _, variable_name, variable_instance = identity
        component = {**attribute.component, "name": component_name, "instance": component_instance}
        variable = {**attribute.variable, "name": variable_name, "instance": variable_instance}
        named.append(replace(attribute, component=component, variable=variable))
    return named


# The 1.6 key of the heartbeat interval, s (the 2.0.1 variable's: ``is_heartbeat_interval``).
HEARTBEAT_INTERVAL_KEY = "HeartbeatInterval"


def _heartbeat_interval_read(charge_point: ChargePoint, attributes: list[ReportedAttribute]) -> None:
    if (reported := _actual_read(attributes, is_heartbeat_interval)) is not None:
        heartbeat_intervals_reported(reported={charge_point.pk: reported})


def _rate_unit_read(charge_point: ChargePoint, attributes: list[ReportedAttribute]) -> None:
    """The ``SmartChargingCtrlr.RateUnit`` (Actual) a report, a GetVariables answer or an accepted
    SetVariables gives, kept on the charger (``charging_rate_units_reported``); a SetVariables
    answered RebootRequired (no value yet) changes nothing."""
    if (reported := _actual_read(attributes, is_rate_unit)) is not None:
        charging_rate_units_reported(reported={charge_point.pk: reported})


def _actual_read(attributes: list[ReportedAttribute], is_wanted: Callable[[tuple[Any, ...]], bool]) -> str | None:
    """The last Actual value given among ``attributes`` of the variable ``is_wanted`` names, or None."""
    reported = [
        attribute.value
        for attribute in attributes
        if attribute.type == AttributeType.ACTUAL
        and attribute.value is not None
        and is_wanted(variable_identity(attribute.component, attribute.variable))
    ]
    return reported[-1] if reported else None


def _heartbeat_interval_followed(charge_point: ChargePoint, attributes: list[ReportedAttribute]) -> None:
    for attribute in attributes:
        after_reboot = attribute.value is None  # SetVariables answered RebootRequired: its pending value
        taken = attribute.pending_value if after_reboot else attribute.value
        if attribute.type != AttributeType.ACTUAL or taken is None:
            continue
        if is_heartbeat_interval(variable_identity(attribute.component, attribute.variable)):
            charge_point_heartbeat_interval_taken(charge_point=charge_point, value=taken, after_reboot=after_reboot)


def _keep_values_of_reboot_required(rows: Iterable[DeviceModelAttribute]) -> None:
    """RebootRequired leaves the stored value as it was: read it back into the row to write."""
    waiting = [row for row in rows if row.pending_value is not None]
    current = {
        (row.variable_id, row.type): row.value
        for row in DeviceModelAttribute.objects.filter(variable__in=[row.variable for row in waiting])
    }
    for row in waiting:
        row.value = current.get((row.variable.pk, row.type))


def _attribute_pending_values_kept(charge_point: ChargePoint, rows: Iterable[DeviceModelAttribute]) -> None:
    """The ``pending_value`` each attribute a read gives (a report, a GetVariables answer) keeps
    (``pending_kept``), as ``report_writes``' statement leaves it. Two queries when one waits, else one."""
    rows = list(rows)
    waiting = {
        (variable_id, kind): (pending, learned_at)
        for variable_id, kind, pending, learned_at in DeviceModelAttribute.objects.filter(
            variable__in=[row.variable for row in rows], pending_value__isnull=False
        ).values_list("variable_id", "type", "pending_value", "learned_at")
    }
    if not waiting:
        return
    booted = ChargePoint.objects.filter(pk=charge_point.pk).values_list("last_boot_at", flat=True).first()
    for row in rows:
        if (held := waiting.get((row.variable.pk, row.type))) is not None:
            row.pending_value = pending_kept(held[0], held[1], row.value, booted)


def device_model_report_expect(*, charge_point: ChargePoint, request_id: int, command: Command | None) -> None:
    """A report was asked for (GetBaseReport or GetReport answered Accepted): tie it to its command
    (its row made if it is not there)."""
    device_model_reports_expect(expected=[ReportExpected(charge_point, request_id, command)])


@dataclass(frozen=True, slots=True)
class ReportExpected:
    """``device_model_report_expect``'s arguments: a report asked for and accepted."""

    charge_point: ChargePoint
    request_id: int
    command: Command | None


def device_model_reports_expect(*, expected: Sequence[ReportExpected]) -> None:
    """Several reports asked for, each tied as ``device_model_report_expect`` ties it (in order):
    on PostgreSQL by one statement (issue 15: a 2.0.1 charger's first connect; a group-commit
    batch's answers, ``commands.outcome_writes``), where the ORM's ``update_or_create`` is a locked
    read, then the UPDATE, per report. A FullInventory report whose parts completed it before this
    tie (a station that reports before it answers, or whose answer's write came after its parts')
    is the whole device model as if the tie had come first: the variables it left out go."""
    if connection.vendor == "postgresql":
        reports_tied(
            [
                ReportTie(report.charge_point.pk, report.request_id, report.command.pk if report.command else None)
                for report in expected
            ]
        )
        return
    for report in expected:
        row, _ = DeviceModelReport.objects.update_or_create(
            charge_point=report.charge_point,
            request_id=report.request_id,
            defaults={"command": report.command},
            create_defaults={"command": report.command, "started_at": timezone.now()},
        )
        if row.complete and report.command is not None and report.command.request.get("report_base") == "FullInventory":
            # Its parts completed it before this tie (sent before the answer): the whole device model all the same.
            DeviceModelVariable.objects.filter(charge_point=report.charge_point, learned_at__lt=row.started_at).delete()


def device_model_report_restart(*, charge_point: ChargePoint, request_id: int) -> None:
    """A report is asked for under ``request_id`` (GetBaseReport or GetReport recorded, its CALL
    about to leave): the charger's earlier report of that requestId (an integrator's id used again)
    starts afresh, as a report just asked for, so that the parts that follow are counted as this
    request's (complete once all of its own arrived; a FullInventory then the whole device model).
    No report of that id: nothing (its answer ties one). One statement."""
    DeviceModelReport.objects.filter(charge_point=charge_point, request_id=request_id).update(
        command=None,
        parts_received=0,
        seq_nos=[],
        variables_reported=0,
        last_seq_no=None,
        complete=False,
        generated_at=None,
        started_at=timezone.now(),
        completed_at=None,
    )


# Reports deleted per statement by the sweep (``device_model_reports_prune``): its row locks held briefly.
_PRUNE_CHUNK = 5000


def device_model_reports_prune(*, keep: int) -> int:
    """Each charger's device model reports but its newest ``keep`` (``CSMS_MAX_DEVICE_MODEL_REPORTS``,
    by their start: the CSMS's clock), deleted; returns how many. A NotifyReport of a requestId never
    seen makes a report row, asked for or not (a station counting made-up requestIds up at its frame
    rate: 1.7 million rows a day): this sweep bounds them, off the report's own write (a DELETE in
    each part's statement made the reconnect storm lose its way). One grouped read of the
    (charger, requestId) index finds the chargers over it; each one's older rows go in chunks of
    ``_PRUNE_CHUNK``, each its own statement. A charger whose DELETE raises (a deadlock with its own
    NotifyReport, say) is logged and passed over: it ended the sweep, and every charger after it kept
    its reports without end."""
    over = (
        DeviceModelReport.objects.order_by()
        .values("charge_point_id")
        .annotate(reports=Count("pk"))
        .filter(reports__gt=keep)
        .values_list("charge_point_id", flat=True)
    )
    pruned = each_passed_over(
        list(over),
        lambda charge_point_id: _reports_pruned(charge_point_id, keep),
        logger=logger,
        failed="the sweep could not prune the device model reports of charger %s",
    )
    return sum(pruned)


def _reports_pruned(charge_point_id: int, keep: int) -> int:
    """One charger's part of ``device_model_reports_prune``: each chunk's DELETE its own transaction
    (in a caller's, a savepoint: a charger whose DELETE fails is passed over, the sweep goes on)."""
    reports = DeviceModelReport.objects.filter(charge_point_id=charge_point_id)
    kept_last = list(reports.order_by("-started_at", "-pk").values_list("started_at", "pk")[keep - 1 : keep])
    if not kept_last:  # deleted meanwhile
        return 0
    started_at, pk = kept_last[0]
    older = reports.filter(Q(started_at__lt=started_at) | Q(started_at=started_at, pk__lt=pk))
    deleted = 0
    while chunk := list(older.order_by("pk").values_list("pk", flat=True)[:_PRUNE_CHUNK]):
        with transaction.atomic():
            deleted += DeviceModelReport.objects.filter(pk__in=chunk).delete()[0]
    return deleted


def device_model_report_refused(*, charge_point: ChargePoint, request_id: int) -> None:
    """The charger will send no report for ``request_id`` (Rejected, NotSupported, EmptyResultSet):
    forget the requestId reserved for it, unless parts of it arrived anyway."""
    DeviceModelReport.objects.filter(charge_point=charge_point, request_id=request_id, parts_received=0).delete()


@transaction.atomic
def device_model_report_request_id(*, charge_point: ChargePoint, locked: bool = False) -> int:
    """A requestId not yet used for this charger's reports, reserved by a report row (inside a
    transaction: the charger's row is locked until it ends). ``locked``: the caller's transaction
    holds that lock already, taken in a statement before this one."""
    if connection.vendor == "postgresql":
        return _report_request_id_reserved(charge_point.pk, timezone.now(), locked=locked)
    ChargePoint.objects.select_for_update().filter(pk=charge_point.pk).first()
    used = set(DeviceModelReport.objects.filter(charge_point=charge_point).values_list("request_id", flat=True))
    request_id = request_id_next(used)
    DeviceModelReport.objects.create(charge_point=charge_point, request_id=request_id, started_at=timezone.now())
    return request_id


def request_id_next(used: set[int]) -> int:
    """The requestId of the next report the CSMS asks for, its reports having ``used`` these: the
    one after the highest, at least 1; once that is ``REQUEST_ID_MAX`` (the highest 32-bit
    integer, OCPP's), the lowest above 0 not used (``report_writes.request_id_next_sql``)."""
    highest = max(used, default=0)
    if highest < REQUEST_ID_MAX:
        return max(highest, 0) + 1
    return next(n for n in range(1, REQUEST_ID_MAX) if n not in used)


def _report_request_id_reserved(charge_point_pk: int, now: datetime, *, locked: bool) -> int:
    """``device_model_report_request_id`` as two plain statements (issue 15): the lock (unless
    ``locked``; ``FOR NO KEY UPDATE``, as every reservation's: another reservation or a change of
    the row waits for it, a transaction that only refers to the row by a foreign key does not),
    then the next id's row (the second reads after the lock is held, so it sees a concurrent
    reservation). A NotifyReport part of an id never reserved (a charger that made one up) no
    longer waits for the lock: should it insert that very next id first, the reservation fails on
    the unique key (its unit's error, never a report row shared by two requests)."""
    quote = connection.ops.quote_name
    chargers, reports = quote(ChargePoint._meta.db_table), quote(DeviceModelReport._meta.db_table)
    with connection.cursor() as cursor:
        if not locked:
            cursor.execute(f"SELECT 1 FROM {chargers} WHERE id = %s FOR NO KEY UPDATE", [charge_point_pk])
        cursor.execute(
            f"INSERT INTO {reports} (charge_point_id, request_id, parts_received, seq_nos, variables_reported,"
            " complete, started_at)"
            f" SELECT ask.id, {request_id_next_sql('ask.id')}, 0, '[]', 0, false, %s"
            " FROM (SELECT %s::bigint AS id) ask RETURNING request_id",
            [now, charge_point_pk],
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def device_model_report_record(
    *,
    charge_point_id: str,
    request_id: int,
    seq_no: int,
    tbc: bool,
    generated_at: datetime | None,
    report_data: list[dict[str, Any]],
) -> DeviceModelReport:
    """Store one NotifyReport part (2.0.1 part 2 B07/B08): its ``reportData`` into the device model,
    and the part on the report it belongs to (by ``requestId``). A part received twice is stored once.
    On PostgreSQL one statement (``report_writes``), or none of its own in a group-commit batch that
    stored it ahead with its other chargers' parts.

    Raises ``ChargePoint.DoesNotExist`` for an unknown charger, whatever its items: on PostgreSQL
    too a malformed part (``KeyError``...) of an unknown charger says so, as the ORM path, which
    reads the charger first.
    """
    if connection.vendor != "postgresql":
        with transaction.atomic():
            return _report_part_saved(charge_point_id, request_id, seq_no, tbc, generated_at, report_data)
    part = ReportPart(charge_point_id, request_id, seq_no, tbc, generated_at, report_data)
    try:
        report = report_stored_taken(part) or report_parts_stored([part]).get(charge_point_id)
    except (AttributeError, KeyError, TypeError):  # items without what the schema requires
        if not ChargePoint.objects.filter(charge_point_id=charge_point_id).exists():
            report = None  # an unknown charger first, as the ORM path reads it first
        else:
            raise
    if report is None:
        raise ChargePoint.DoesNotExist("ChargePoint matching query does not exist.")
    return report


report_unit_register(device_model_report_record)  # its batch stores its parts ahead (``report_writes``)


def _report_part_saved(
    charge_point_id: str,
    request_id: int,
    seq_no: int,
    tbc: bool,
    generated_at: datetime | None,
    report_data: list[dict[str, Any]],
) -> DeviceModelReport:
    """``device_model_report_record`` through the ORM (other databases than PostgreSQL)."""
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
    now = timezone.now()
    report, _ = DeviceModelReport.objects.select_for_update().get_or_create(
        charge_point=charge_point, request_id=request_id, defaults={"started_at": now}
    )
    device_model_attributes_record(
        charge_point=charge_point,
        attributes=_within_the_maximum(
            charge_point, [attribute for item in report_data for attribute in _reported_attributes(item)]
        ),
        learned_from=LearnedFrom.NOTIFY_REPORT,
        command=report.command,
        report_request_id=request_id,
    )
    if seq_no not in report.seq_nos:
        report.seq_nos = [*report.seq_nos, seq_no]
        report.parts_received += 1
        report.variables_reported += len(report_data)
    report.generated_at = generated_at
    if not tbc:
        report.last_seq_no = seq_no
    if not report.complete and _every_part_received(report):
        report.complete, report.completed_at = True, now
        if report.command is not None and report.command.request.get("report_base") == "FullInventory":
            # The whole device model: the variables it did not report (learned before it) go.
            DeviceModelVariable.objects.filter(charge_point=charge_point, learned_at__lt=report.started_at).delete()
    report.save()
    return report


def _within_the_maximum(charge_point: ChargePoint, attributes: list[ReportedAttribute]) -> list[ReportedAttribute]:
    """``attributes`` of a report part without those of the new variables (in the order given) past
    ``CSMS_MAX_DEVICE_MODEL_VARIABLES`` of the charger's: a station naming made-up components part
    after part grew its device model without end. Its stored variables are still updated."""
    stored = set(DeviceModelVariable.objects.filter(charge_point=charge_point).values_list("identity", flat=True))
    room = settings.CSMS_MAX_DEVICE_MODEL_VARIABLES - len(stored)
    kept = []
    for attribute in attributes:
        identity = identity_digest(variable_identity(attribute.component, attribute.variable))
        if identity not in stored:
            if room <= 0:
                continue
            stored.add(identity)
            room -= 1
        kept.append(attribute)
    return kept


def _every_part_received(report: DeviceModelReport) -> bool:
    """Whether the report's parts are every one from seqNo 0 up to its last (the part with tbc
    false): a part the charger lost leaves it incomplete (OCPP 2.0.1 B07: seqNo counts from 0)."""
    last = report.last_seq_no
    if last is None or last < 0:
        return False
    return len({seq_no for seq_no in report.seq_nos if 0 <= seq_no <= last}) == last + 1


def _reported_attributes(item: dict[str, Any]) -> list[ReportedAttribute]:
    """A ReportDataType as one ReportedAttribute per variableAttribute."""
    return [
        ReportedAttribute(
            component=item["component"],
            variable=item["variable"],
            type=attribute.get("type", AttributeType.ACTUAL),
            value=attribute.get("value"),
            mutability=attribute.get("mutability", ATTRIBUTE_DEFAULTS["mutability"]),
            persistent=attribute.get("persistent", ATTRIBUTE_DEFAULTS["persistent"]),
            constant=attribute.get("constant", ATTRIBUTE_DEFAULTS["constant"]),
            characteristics=item.get("variable_characteristics"),
        )
        for attribute in item["variable_attribute"]
    ]


def stored_passwords_redact() -> int:
    """Replace by ``charger_passwords.REDACTED`` the charger passwords the configuration store kept
    before their redaction (round 45): a 1.6 ``AuthorizationKey``'s value and pending value, a
    2.0.1 ``SecurityCtrlr.BasicAuthPassword``'s attribute values (names matched ignoring case).
    UPDATEs of the few rows that name the password; idempotent. The number of rows changed."""
    from commands.charger_passwords import REDACTED

    rows: list[QuerySet[Any]] = [
        ConfigurationKey.objects.filter(key__iexact="AuthorizationKey"),
        DeviceModelAttribute.objects.filter(
            variable__component_name__iexact="SecurityCtrlr", variable__variable_name__iexact="BasicAuthPassword"
        ),
    ]
    changed = 0
    with transaction.atomic():
        for naming in rows:
            for field in ("value", "pending_value"):
                kept = naming.exclude(**{f"{field}__isnull": True}).exclude(**{f"{field}__in": ["", REDACTED]})
                changed += kept.update(**{field: REDACTED})
    return changed
