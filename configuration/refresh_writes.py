"""A group-commit batch's configuration reads after a boot, recorded together (issue 15, rounds 16 and 18).

After an accepted boot whose configuration is not current, the gateway records the read it then
sends on the charger's connection (``changes.configuration_refresh_on_boot``, a unit of the
process's commit group): for a 1.6 charger one statement of its own, which checks the charger
(commissioned, connected, its version known) and inserts its GetConfiguration row; for a 2.0.1
charger three: the checks with its row locked, its report id reserved (a ``DeviceModelReport`` row,
the next requestId of the charger's), its GetBaseReport row. A fleet's first connect has one read
per charger. A batch written without savepoints records those of its chargers ahead
(``refreshes_recorded_together``): one statement makes the same checks for all, records the 1.6
chargers' GetConfiguration rows and locks the 2.0.1 chargers' rows (in the order of their ids,
skipping one held by another transaction: its unit waits for it at its turn); the lock is ``FOR NO
KEY UPDATE``, as every report id reservation's: it excludes another reservation and a change of the
row, not a transaction that only refers to the row (a foreign key's ``KEY SHARE``: a command, a
session inserted for the charger), which a ``FOR UPDATE`` would skip, or wait for. A second, once those
locks are held (so that it sees a reservation committed meanwhile), reserves each locked 2.0.1
charger's report id and records its GetBaseReport, each with its own id. Each unit then takes what
was recorded for its charger (``refresh_recorded_taken``) instead of its own statements. An unknown
charger, one held elsewhere, one alone in its batch: its own way.

Only the first unit of its charger in the batch is recorded ahead (the group commit chooses): a
unit of that charger before it (a disconnect) may change what the checks read. A command recorded
and not taken is dropped once its unit ran (``refresh_record_dropped``), which then sends the batch
to its second pass: no read is committed that no unit sends. PostgreSQL only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from chargepoints.models import ChargePoint, LifecycleState
from commands.models import Command
from commands.services import command_own
from configuration.models import DeviceModelReport
from configuration.report_writes import request_id_next_sql
from kernel.plain_sql import array_text, bound_cursor, instance_insert_selecting, instance_saved
from kernel.rows_ahead import RowsAhead, UnitKind


@dataclass(frozen=True, slots=True)
class RefreshRecorded:
    """What a batch recorded for a charger's read after its boot: the pending command, or None
    when the charger is not to be asked (not commissioned, not connected)."""

    command: Command | None


def _charger_named(*, charge_point_id: str) -> str:
    """A read after a boot's lookup: its charger's id (other arguments: none, ``TypeError``)."""
    return str(charge_point_id)


_units: UnitKind[str] = UnitKind(_charger_named)
refresh_unit_register = _units.register  # ``func``'s units record a read after a boot (``charge_point_id``)
refresh_lookup_of = _units.lookup_of  # the charger id of a unit that records a read after a boot, else None
_recorded_ahead: RowsAhead[str, RefreshRecorded] = RowsAhead()  # charger id -> what was recorded


@contextmanager
def refreshes_recorded_together(charge_point_ids: Sequence[str]) -> Iterator[None]:
    """Within the block (a batch's pass without savepoints), the read after a boot of each charger
    of ``charge_point_ids`` is recorded now (one statement; a second for 2.0.1 chargers) and answered
    (``refresh_recorded_taken``). Fewer than ``FEWEST``, the read after a boot off (its units
    record nothing), or not PostgreSQL: no statement, no answer."""
    with _recorded_ahead.kept() as recorded:
        asked = sorted(set(charge_point_ids))
        if _recorded_ahead.enough(asked) and settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT:
            recorded.update(_recorded(asked))
        yield


def refresh_recorded_taken(charge_point_id: str) -> RefreshRecorded | None:
    """What was recorded ahead for the charger's read in this pass (taken: no other unit gets it),
    or None: the unit records its own way."""
    return _recorded_ahead.taken(charge_point_id)


def refresh_record_dropped(charge_point_id: str | None) -> bool:
    """Its unit ran: what was recorded for the charger, if it was left, is no later unit's. True
    when a command was left: a read is written that no unit sends, so the batch's pass must be
    rolled back and written again without records ahead."""
    left = _recorded_ahead.dropped(charge_point_id)
    return left is not None and left.command is not None


_CHARGERS = connection.ops.quote_name(ChargePoint._meta.db_table)
# The charger's columns the checks and the command need, in the model's field order as
# ``Model.from_db`` takes them (``changes._REFRESH_COLUMNS``'s).
_COLUMNS = tuple(
    field.attname
    for field in ChargePoint._meta.concrete_fields
    if field.attname in ("id", "charge_point_id", "lifecycle_state", "connection_channel", "ocpp_version")
)
# As ``changes._ASKED``: a 1.6 charger asked (its GetConfiguration recorded), a 2.0.1 one (its row locked).
_ASKED = "cp.lifecycle_state = %s AND cp.connection_channel <> '' AND cp.ocpp_version = '1.6'"
_ASKED_201 = "cp.lifecycle_state = %s AND cp.connection_channel <> '' AND cp.ocpp_version NOT IN ('', '1.6')"


def _statement(insert: str) -> str:
    """``changes._REFRESH_READ`` for many chargers: per charger found, its columns, the id its
    command would have, whether it was recorded (1.6), and whether its row is locked (2.0.1, its
    report id to reserve; one held by another transaction is skipped)."""
    selected = ", ".join(f"c.{connection.ops.quote_name(column)}" for column in _COLUMNS)
    return (
        "WITH ask AS (SELECT * FROM unnest(%s::text[], %s::uuid[]) AS ask(charge_point_id, command_id)),"
        f" cp AS (SELECT {selected}, ask.command_id FROM {_CHARGERS} c JOIN ask"
        " ON c.charge_point_id = ask.charge_point_id),"
        f" recorded AS ({insert} WHERE {_ASKED} RETURNING charge_point_id),"
        f" locked AS (SELECT c.id FROM {_CHARGERS} c JOIN cp ON c.id = cp.id WHERE {_ASKED_201}"
        " ORDER BY c.id FOR NO KEY UPDATE OF c SKIP LOCKED)"
        f" SELECT {', '.join(f'cp.{connection.ops.quote_name(column)}' for column in _COLUMNS)},"
        " cp.command_id, EXISTS (SELECT 1 FROM recorded r WHERE r.charge_point_id = cp.id),"
        " EXISTS (SELECT 1 FROM locked l WHERE l.id = cp.id) FROM cp"
    )


def _recorded(asked: list[str]) -> dict[str, RefreshRecorded]:
    """The statements for ``asked`` (charger ids): charger id -> what was recorded (a charger held
    by another transaction, an unknown one: none)."""
    template = command_own(
        charge_point=ChargePoint(charge_point_id="", ocpp_version="1.6"), command="get_configuration", body={}
    )
    insert, values = instance_insert_selecting(
        template,
        source="cp",
        selected={"id": "cp.command_id", "charge_point_id": "cp.id", "charge_point_identity": "cp.charge_point_id"},
    )
    ids = [uuid.uuid4() for _ in asked]
    with bound_cursor() as cursor:
        cursor.execute(
            _statement(insert),
            [
                array_text(asked),
                array_text([str(command_id) for command_id in ids]),
                *values,
                LifecycleState.COMMISSIONED,
                LifecycleState.COMMISSIONED,
            ],
        )
        rows = cursor.fetchall()
    recorded: dict[str, RefreshRecorded] = {}
    locked: list[tuple[ChargePoint, uuid.UUID]] = []
    for *columns, command_id, was_recorded, was_locked in rows:
        charge_point = ChargePoint.from_db(connection.alias, list(_COLUMNS), columns)
        if charge_point.ocpp_version == "1.6":
            command = _command_of(template, charge_point, command_id) if was_recorded else None
            recorded[charge_point.charge_point_id] = RefreshRecorded(command)
        elif was_locked:
            locked.append((charge_point, command_id))
        elif not _asked(charge_point):
            recorded[charge_point.charge_point_id] = RefreshRecorded(None)
        # else: held by another transaction, its own way
    if locked:
        recorded.update(_reports_reserved(locked))
    return recorded


def _asked(charge_point: ChargePoint) -> bool:
    """``_ASKED_201``'s checks (or ``_ASKED``'s), on the charger's columns as read."""
    return bool(
        charge_point.lifecycle_state == LifecycleState.COMMISSIONED
        and charge_point.connection_channel
        and charge_point.ocpp_version
    )


_REPORTS = connection.ops.quote_name(DeviceModelReport._meta.db_table)
_REPORT_BASE = "FullInventory"  # ``changes._configuration_read``'s
# ``services._report_request_id_reserved``'s INSERT for many chargers whose rows this transaction
# locked, then each one's GetBaseReport asking for that report: per charger, its requestId.
_RESERVED = (
    "WITH ask AS (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::uuid[])"
    " AS ask(id, charge_point_id, ocpp_version, command_id)),"
    f" reserved AS (INSERT INTO {_REPORTS} (charge_point_id, request_id, parts_received, seq_nos,"
    " variables_reported, complete, started_at)"
    f" SELECT ask.id, {request_id_next_sql('ask.id')}, 0, '[]', 0, false, %s FROM ask ORDER BY ask.id"
    " RETURNING charge_point_id, request_id),"
    " cp AS (SELECT ask.*, reserved.request_id FROM ask JOIN reserved ON reserved.charge_point_id = ask.id),"
    " recorded AS ({insert} RETURNING 1)"
    " SELECT cp.id, cp.request_id FROM cp"
)


def _reports_reserved(locked: list[tuple[ChargePoint, uuid.UUID]]) -> dict[str, RefreshRecorded]:
    """Each locked 2.0.1 charger's report id reserved and its GetBaseReport recorded, by one
    statement: charger id -> its pending command, as ``changes._configuration_read`` and
    ``command_record_own`` make it."""
    template = command_own(
        charge_point=ChargePoint(charge_point_id="", ocpp_version="2.0.1"),
        command="get_base_report",
        body={"request_id": 0, "report_base": _REPORT_BASE},
    )
    insert, values = instance_insert_selecting(
        template,
        source="cp",
        selected={
            "id": "cp.command_id",
            "charge_point_id": "cp.id",
            "charge_point_identity": "cp.charge_point_id",
            "ocpp_version": "cp.ocpp_version",
            "request": f"jsonb_build_object('request_id', cp.request_id, 'report_base', '{_REPORT_BASE}')",
        },
    )
    with bound_cursor() as cursor:
        cursor.execute(
            _RESERVED.format(insert=insert),
            [
                array_text([charge_point.pk for charge_point, _ in locked]),
                array_text([charge_point.charge_point_id for charge_point, _ in locked]),
                array_text([charge_point.ocpp_version for charge_point, _ in locked]),
                array_text([str(command_id) for _, command_id in locked]),
                template.created_at,
                *values,
            ],
        )
        request_ids = dict(cursor.fetchall())
    recorded = {}
    for charge_point, command_id in locked:
        body = {"request_id": request_ids[charge_point.pk], "report_base": _REPORT_BASE}
        command = command_own(charge_point=charge_point, command="get_base_report", body=body)
        command.id, command.created_at = command_id, template.created_at
        instance_saved(command)
        recorded[charge_point.charge_point_id] = RefreshRecorded(command)
    return recorded


def _command_of(template: Command, charge_point: ChargePoint, command_id: uuid.UUID) -> Command:
    """The row recorded for ``charge_point``: the template's values (its time too), its own id and charger."""
    command = command_own(charge_point=charge_point, command="get_configuration", body={})
    command.id, command.created_at = command_id, template.created_at
    instance_saved(command)
    return command
