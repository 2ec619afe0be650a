"""Reading and changing a charger's configuration through the command path (``commands.services``),
so that every exchange is a recorded Command and its answer reaches the store (the gateway's answer routes,
docs/architecture.md "A command")."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from chargepoints.models import ChargePoint, LifecycleState
from commands import catalog
from commands.models import Command, CommandState
from commands.outcomes import answered
from commands.rpc import CallOutcome
from commands.services import (
    CommandRefused,
    CommandRequest,
    command_complete,
    command_own,
    command_record_own,
    command_send,
    commands_abandoned_timed_out,
)
from configuration import selectors
from configuration.models import ConfigurationKey, DeviceModelAttribute, DeviceModelReport, DeviceModelVariable
from configuration.refresh_writes import refresh_recorded_taken, refresh_unit_register
from configuration.services import ReportedAttribute, configuration_values_unconfirmed, device_model_report_request_id
from kernel.charger_connections import configuration_read_owed_told
from kernel.models import ApiKey
from kernel.plain_sql import instance_insert_selecting, instance_saved
from kernel.sweeps import each_passed_over

logger = logging.getLogger(__name__)


class ConfigurationUnanswered(Exception):
    """The charger answered none of the change: ``command`` says why (not connected, timeout, CALLERROR)."""

    def __init__(self, command: Command) -> None:
        super().__init__(f"{command.action} to {command.charge_point_identity} ended {command.state}.")
        self.command = command


def _send(
    charge_point: ChargePoint,
    command: str,
    body: dict[str, Any],
    *,
    wait: bool = True,
    api_key: ApiKey | None = None,
    user_id: int | None = None,
) -> Command:
    return command_send(
        request=CommandRequest(
            charge_point_id=charge_point.charge_point_id,
            ocpp_version=charge_point.ocpp_version,
            command=command,
            body=body,
            api_key=api_key,
            user_id=user_id,
        ),
        wait=wait,
    )


def configuration_refresh(
    *, charge_point: ChargePoint, wait: bool = True, api_key: ApiKey | None = None, user_id: int | None = None
) -> Command:
    """Ask the charger for its whole configuration: 1.6 GetConfiguration (all keys), 2.0.1
    GetBaseReport FullInventory (its NotifyReport parts follow). Raises ``CommandRefused``."""
    command, body = _configuration_read(charge_point)
    return _send(charge_point, command, body, wait=wait, api_key=api_key, user_id=user_id)


def _configuration_read(charge_point: ChargePoint, *, locked: bool = False) -> tuple[str, dict[str, Any]]:
    """The command reading the whole configuration, and its body (2.0.1: a report id reserved;
    ``locked``: under the charger's row lock the caller holds)."""
    if charge_point.ocpp_version == "1.6":
        return "get_configuration", {}
    return "get_base_report", {
        "request_id": device_model_report_request_id(charge_point=charge_point, locked=locked),
        "report_base": "FullInventory",
    }


def configuration_refresh_on_boot(*, charge_point_id: str) -> Command | None:
    """After an accepted boot (CSMS_CONFIGURATION_REFRESH_ON_BOOT), record the configuration read
    for the caller to send (the gateway, on the charger's connection) and complete
    (``commands.services.command_complete``). Returns the pending command, or None when nothing is
    to be asked."""
    if not settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT:
        return None
    with transaction.atomic():  # a 2.0.1 report id is reserved under the charger's row lock
        if connection.vendor == "postgresql":
            return _refresh_recorded(charge_point_id)
        charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).only(*_REFRESH_COLUMNS).first()
        if (
            charge_point is None
            or charge_point.lifecycle_state != LifecycleState.COMMISSIONED
            or not (charge_point.connection_channel and charge_point.ocpp_version)
        ):
            return None
        command, body = _configuration_read(charge_point)
        return command_record_own(charge_point=charge_point, command=command, body=body)


refresh_unit_register(configuration_refresh_on_boot)  # its batch records its reads ahead (``refresh_writes``)


# The outcomes of a CALL the charger did not answer: its read stays (or becomes) owed.
UNANSWERED = ("timeout", "not_connected")


def configuration_read_owed_set(*, charge_point_id: str, channel_name: str) -> None:
    """The read after the charger's boot, asked on the connection ``channel_name``, was not
    answered there (the socket closed first, or the CALL timed out): the charger's next connection
    reads its configuration, with or without a new boot (``ChargePoint.configuration_read_owed``).
    A newer connection that holds the charger already (it replaced a half-open socket: its
    handshake read the mark before this) is told over the channel layer once this commits. The
    charger's row is locked before its holder is read: a handshake committing meanwhile either
    came first (its channel is read here) or waits and reads the mark. ``channel_name`` empty: a
    read owed for another reason (an abandoned read, a change left unanswered): the connection
    holding the charger, if any, is told. Two statements."""
    held_by = (
        ChargePoint.objects.select_for_update(no_key=True)
        .filter(charge_point_id=charge_point_id)
        .values_list("connection_channel", flat=True)
        .first()
    )
    ChargePoint.objects.filter(charge_point_id=charge_point_id).update(configuration_read_owed=True)
    if held_by and held_by != channel_name:
        transaction.on_commit(lambda: configuration_read_owed_told(channel_name=held_by), robust=True)


def configuration_change_unanswered(
    *, command: Command, keys: Sequence[tuple[str, str]] = (), attributes: Sequence[ReportedAttribute] = ()
) -> None:
    """A change of the charger's configuration (1.6 ChangeConfiguration ``keys``, 2.0.1 SetVariables
    ``attributes``: ``services.configuration_values_unconfirmed``) left and its answer did not come
    back (a timeout, an answer that could not be read, the sending process dead): the charger may
    have taken it, or not. The values sent are kept as unconfirmed beside those known, and the
    charger's configuration read is owed (``configuration_read_owed_set``: its connection, or its
    next one, reads it after its next message) so that the CSMS learns what it holds; the read
    settles them. The charger's row is locked before the configuration's (the order of the writes
    that take the charger's first)."""
    charge_point = command.charge_point
    assert charge_point is not None
    configuration_read_owed_set(charge_point_id=charge_point.charge_point_id, channel_name="")
    configuration_values_unconfirmed(charge_point=charge_point, command=command, keys=keys, attributes=attributes)


def commands_abandoned_settled() -> int:
    """Commands a dead process left pending timed out (``commands_abandoned_timed_out``); among
    them the CSMS's own reads after a boot (a 1.6 GetConfiguration of every key, a 2.0.1
    GetBaseReport): each charger's read is owed (``configuration_read_owed_set``). Returns how many.
    A charger whose mark raises is logged and passed over: the Timeouts are committed and the
    sweep has moved past them, so it ended the sweep and every later charger's read was never owed."""
    abandoned = commands_abandoned_timed_out()
    reads = [command.charge_point_identity for command in abandoned if _own_whole_read(command)]
    failed = "the abandoned commands' sweep could not mark the configuration read of %s owed"
    each_passed_over(reads, _read_owed, logger=logger, failed=failed)
    return len(abandoned)


def _own_whole_read(command: Command) -> bool:
    own = command.api_key_id is None and command.user_id is None
    whole = command.command == "get_base_report" or (
        command.command == "get_configuration" and not command.request.get("key")
    )
    return own and whole


def _read_owed(charge_point_id: str) -> None:
    with transaction.atomic():
        configuration_read_owed_set(charge_point_id=charge_point_id, channel_name="")


def configuration_read_answered(*, command: Command, outcome: CallOutcome) -> Command:
    """``commands.services.command_complete`` for an owed read (``configuration_read_owed_set``);
    the mark cleared once the charger answered it, whatever it answered (a charger that refuses the
    read is asked again at its next boot, as after any boot, not at every connection)."""
    with transaction.atomic():
        completed = command_complete(command=command, outcome=outcome)
        # as recorded: an answer after the sweep's Timeout is not (the read stays owed)
        if completed.state not in UNANSWERED and command.charge_point_id is not None:
            ChargePoint.objects.filter(pk=command.charge_point_id, configuration_read_owed=True).update(
                configuration_read_owed=False
            )
        return completed


# The columns the checks, the command and a 2.0.1 report id need (not the full row), in the
# model's field order as ``Model.from_db`` takes them.
_REFRESH_COLUMNS = tuple(
    field.attname
    for field in ChargePoint._meta.concrete_fields
    if field.attname in ("id", "charge_point_id", "lifecycle_state", "connection_channel", "ocpp_version")
)

# The configuration read after a boot in one statement on PostgreSQL (every accepted boot asks,
# issue 15): the charger's columns the checks need and, for a charger that gets the read, a 1.6
# GetConfiguration recorded in the same statement, or a 2.0.1 charger's row locked for its report
# id (reserved and recorded by the statements that follow, which read after the lock is held; ``FOR
# NO KEY UPDATE``: not waiting for a transaction whose foreign key only refers to the row).
_CHARGERS = connection.ops.quote_name(ChargePoint._meta.db_table)
_ASKED = "cp.lifecycle_state = %s AND cp.connection_channel <> '' AND cp.ocpp_version <> ''"
_REFRESH_SELECTED = ", ".join(connection.ops.quote_name(column) for column in _REFRESH_COLUMNS)
_REFRESH_READ = (
    f"WITH cp AS (SELECT {_REFRESH_SELECTED} FROM {_CHARGERS} WHERE charge_point_id = %s),"
    f" locked AS (SELECT 1 FROM {_CHARGERS} c JOIN cp ON c.id = cp.id"
    f" WHERE {_ASKED} AND cp.ocpp_version <> '1.6' FOR NO KEY UPDATE OF c),"
    " recorded AS ({insert} WHERE " + _ASKED + " AND cp.ocpp_version = '1.6' RETURNING 1)"
    f" SELECT {', '.join(f'cp.{connection.ops.quote_name(column)}' for column in _REFRESH_COLUMNS)},"
    " EXISTS (SELECT 1 FROM recorded), EXISTS (SELECT 1 FROM locked) FROM cp"
)


def _refresh_recorded(charge_point_id: str) -> Command | None:
    """``configuration_refresh_on_boot`` on PostgreSQL (inside a transaction): what its batch
    recorded for it (``refresh_writes``), else ``_REFRESH_READ``, then, for a 2.0.1 charger, its
    report id and its command."""
    taken = refresh_recorded_taken(charge_point_id)
    if taken is not None:
        return taken.command
    recorded = command_own(
        charge_point=ChargePoint(charge_point_id=charge_point_id, ocpp_version="1.6"),
        command="get_configuration",
        body={},
    )
    insert, values = instance_insert_selecting(recorded, source="cp", selected={"charge_point_id": "cp.id"})
    with connection.cursor() as cursor:
        cursor.execute(
            _REFRESH_READ.format(insert=insert),
            [charge_point_id, LifecycleState.COMMISSIONED, *values, LifecycleState.COMMISSIONED],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    *columns, read_recorded, locked = row
    charge_point = ChargePoint.from_db(connection.alias, list(_REFRESH_COLUMNS), columns)
    if read_recorded:
        recorded.charge_point = charge_point
        instance_saved(recorded)
        return recorded
    if not locked:
        return None
    command, body = _configuration_read(charge_point, locked=True)
    return command_record_own(charge_point=charge_point, command=command, body=body)


# A read of the whole configuration asked since the first boot of the firmware the charger last
# booted with (not one its firmware may have changed after: ``before.identity_booted_at``, or its
# previous boot where that is not known) and within a maximum age of this boot (``cp.last_boot_at``,
# the boot's time as written), and answered in full: a 1.6
# GetConfiguration of every key accepted, a 2.0.1 GetBaseReport FullInventory accepted whose
# report's last part arrived; and no value changed with RebootRequired waiting for the read after a
# boot. A boot with the same firmware that skipped the read does not make the next one read again.
# The condition ``configuration_read_recent`` gives ``charge_point_boot``, over the charger's row
# ``cp`` and the row as it was before this boot (``before``).
_COMMANDS = connection.ops.quote_name(Command._meta.db_table)
_REPORTS = connection.ops.quote_name(DeviceModelReport._meta.db_table)
_KEYS = connection.ops.quote_name(ConfigurationKey._meta.db_table)
_VARIABLES = connection.ops.quote_name(DeviceModelVariable._meta.db_table)
_ATTRIBUTES = connection.ops.quote_name(DeviceModelAttribute._meta.db_table)
_READ_RECENT = (
    f"EXISTS (SELECT 1 FROM {_COMMANDS} c WHERE c.charge_point_id = cp.id"
    " AND c.created_at >= cp.last_boot_at - %s::integer * interval '1 second'"
    " AND c.created_at >= coalesce(before.identity_booted_at, before.last_boot_at) AND c.state = %s"
    " AND ((c.command = 'get_configuration'"
    " AND coalesce(c.request -> 'key', 'null') IN ('null', '[]'))"
    " OR (c.command = 'get_base_report' AND c.request ->> 'report_base' = 'FullInventory'"
    f" AND EXISTS (SELECT 1 FROM {_REPORTS} r WHERE r.command_id = c.id AND r.complete))))"
    f" AND NOT EXISTS (SELECT 1 FROM {_KEYS} k WHERE k.charge_point_id = cp.id AND k.pending_value IS NOT NULL)"
    f" AND NOT EXISTS (SELECT 1 FROM {_VARIABLES} v JOIN {_ATTRIBUTES} a ON a.variable_id = v.id"
    " WHERE v.charge_point_id = cp.id AND a.pending_value IS NOT NULL)"
)


def configuration_read_recent() -> tuple[str, list[Any]] | None:
    """The condition (SQL over the charger's row ``cp`` and its row before this boot ``before``, and
    its parameters) that a read of the charger's whole configuration (1.6 GetConfiguration of
    every key, 2.0.1 GetBaseReport FullInventory with its report complete) was asked since the
    first boot of its firmware (``identity_booted_at``; its previous boot where not known) and within
    ``CSMS_CONFIGURATION_REFRESH_MAX_AGE`` seconds of this boot and accepted, and that
    no value of its waits for a reboot (``pending_value``); None when that setting is 0 (every
    accepted boot reads) or the read after a boot is off. The same for every boot while the settings
    stand (no time among its parameters), so a batch writes its boots asking it by one statement
    (``chargepoints.services.boot_writes``)."""
    max_age = settings.CSMS_CONFIGURATION_REFRESH_MAX_AGE
    if not settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT or max_age == 0:
        return None
    return _READ_RECENT, [max_age, CommandState.ACCEPTED]


def configuration_change(
    *,
    charge_point: ChargePoint,
    changes: list[dict[str, Any]],
    api_key: ApiKey | None = None,
    user_id: int | None = None,
) -> list[dict[str, Any]]:
    """Change values; the answer per value: its ``status`` (Accepted, RebootRequired, Rejected,
    NotSupported, UnknownComponent, ...) and ``command_id``, or an ``error`` when unanswered.

    1.6: ``changes`` are ``{"key", "value"}``, one ChangeConfiguration each, in order, stopping at the
    first left unanswered. 2.0.1: ``{"component", "variable", "attribute_type"?, "value"}``, one
    SetVariables. Raises ``ConfigurationUnanswered`` when nothing was answered, ``CommandRefused``:
    ``ValidationError`` naming the value (``keys.1.value``) when any command would be refused
    (``configuration_change_refusals``), before anything is sent.
    """
    refusals = configuration_change_refusals(ocpp_version=charge_point.ocpp_version, changes=changes)
    if refusals:
        raise CommandRefused("ValidationError", "The request body is invalid.", refusals)
    if charge_point.ocpp_version == "1.6":
        return _configuration_keys_change(charge_point, changes, api_key, user_id)
    return _variables_set(charge_point, changes, api_key, user_id)


def configuration_change_refusals(*, ocpp_version: str, changes: list[dict[str, Any]]) -> dict[str, Any]:
    """What the commands of ``changes`` break (``catalog.validate_body``: a charger password it could
    not use, a 2.0.1 attribute set twice, ...), named as the change's fields (``{"keys": {"1":
    {"value": [...]}}}``, as the serializer names them); {} when none. Checked for all of them before
    the first is sent: a 1.6 key refused after the keys before it were sent (or a 2.0.1 request cut
    into several) answered 400 of a configuration the charger had partly taken."""
    found: dict[str, Any] = {}
    if ocpp_version == "1.6":
        for index, change in enumerate(changes):
            body = {"key": change["key"], "value": change["value"]}
            for path, messages in catalog.validate_body("1.6", "ChangeConfiguration", body).items():
                _refusal_at(found, ["keys", str(index), *path.split(".")], messages)
        return found
    body = {"set_variable_data": _set_variable_data(changes)}
    for path, messages in catalog.validate_body(ocpp_version, "SetVariables", body).items():
        steps = path.split(".")
        if steps[0] != "set_variable_data" or len(steps) < 2:
            _refusal_at(found, ["variables"], messages)
            continue
        fields = ["value" if step == "attribute_value" else step for step in steps[2:]]
        _refusal_at(found, ["variables", steps[1], *fields], messages)
    return found


def _refusal_at(found: dict[str, Any], path: list[str], messages: list[str]) -> None:
    """``messages`` at ``path`` of the nested ``found``."""
    *parents, field = path
    holder = found
    for step in parents:
        holder = holder.setdefault(step, {})
    holder.setdefault(field, []).extend(messages)


def _set_variable_data(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """2.0.1 ``changes`` as SetVariables items (snake_case)."""
    return [
        {
            "component": change["component"],
            "variable": change["variable"],
            "attribute_type": change.get("attribute_type", "Actual"),
            "attribute_value": change["value"],
        }
        for change in changes
    ]


def _configuration_keys_change(
    charge_point: ChargePoint, changes: list[dict[str, Any]], api_key: ApiKey | None, user_id: int | None
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    unanswered: Command | None = None
    for change in changes:
        answer: dict[str, Any] = {"key": change["key"], "value": change["value"]}
        if unanswered is not None:
            results.append({**answer, "status": None, "error": "NotSent"})
            continue
        body = {"key": change["key"], "value": change["value"]}
        command = _send(charge_point, "change_configuration", body, api_key=api_key, user_id=user_id)
        if not answered(command):
            if not results:
                raise ConfigurationUnanswered(command)
            unanswered = command
            results.append(
                {**answer, "status": None, "error": command.error_code or command.state, "command_id": str(command.id)}
            )
            continue
        results.append({**answer, "status": (command.response or {}).get("status"), "command_id": str(command.id)})
    return results


def _variables_set(
    charge_point: ChargePoint, changes: list[dict[str, Any]], api_key: ApiKey | None, user_id: int | None
) -> list[dict[str, Any]]:
    """One SetVariables, or as many as the charger's ``ItemsPerMessage``/``BytesPerMessage`` of
    ``SetVariables`` need (B05: a request over them may be refused whole with a CALLERROR), in
    order, stopping at the first left unanswered as the 1.6 keys do."""
    data = _set_variable_data(changes)
    results: list[dict[str, Any]] = []
    unanswered: Command | None = None
    for batch in _set_variables_batches(charge_point, data):
        if unanswered is not None:
            results.extend({**_asked(item), "status": None, "error": "NotSent"} for item in batch)
            continue
        body = {"set_variable_data": batch}
        command = _send(charge_point, "set_variables", body, api_key=api_key, user_id=user_id)
        if not answered(command):
            if not results:
                raise ConfigurationUnanswered(command)
            unanswered = command
            error = command.error_code or command.state
            results.extend(
                {**_asked(item), "status": None, "error": error, "command_id": str(command.id)} for item in batch
            )
            continue
        results.extend(
            {
                "component": result.get("component"),
                "variable": result.get("variable"),
                "attribute_type": result.get("attribute_type", "Actual"),
                "status": result.get("attribute_status"),
                **({"status_info": result["attribute_status_info"]} if "attribute_status_info" in result else {}),
                "command_id": str(command.id),
            }
            for result in (command.response or {}).get("set_variable_result") or []
        )
    return results


def _asked(item: dict[str, Any]) -> dict[str, Any]:
    return {"component": item["component"], "variable": item["variable"], "attribute_type": item["attribute_type"]}


def _set_variables_batches(charge_point: ChargePoint, data: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``data`` in order, cut into SetVariables requests within the limits the charger reported
    (``DeviceDataCtrlr.ItemsPerMessage`` and ``BytesPerMessage``, instance ``SetVariables``; the
    whole CALL frame counted); one request when it reported none. An item too big alone goes alone."""
    items = selectors.device_model_limit(charge_point=charge_point, variable="ItemsPerMessage", instance="SetVariables")
    size = selectors.device_model_limit(charge_point=charge_point, variable="BytesPerMessage", instance="SetVariables")
    batches: list[list[dict[str, Any]]] = []
    used = 0
    empty_frame = catalog.call_frame_bytes("SetVariables", {"set_variable_data": []})
    for item in data:
        # An item's bytes in the frame: its JSON and a comma (the request's own fields are overhead).
        cost = len(json.dumps(catalog.to_ocpp_payload(item), separators=(",", ":"))) + 1  # escaped as sent
        full = batches and (
            (items is not None and len(batches[-1]) >= items) or (size is not None and empty_frame + used + cost > size)
        )
        if not batches or full:
            batches.append([])
            used = 0
        batches[-1].append(item)
        used += cost
    return batches
