"""A group-commit batch's configuration reads after a boot, recorded together (issue 15, round 16).

After an accepted boot whose configuration is not current, the gateway records the read it then
sends on the charger's connection (``changes.configuration_refresh_on_boot``, a unit of the
process's commit group): for a 1.6 charger one statement of its own, which checks the charger
(commissioned, connected, its version known) and inserts its GetConfiguration row. A fleet's first
connect has one per charger. A batch written without savepoints records those of its 1.6 chargers
ahead by one statement (``refreshes_recorded_together``): the same checks and the same row per
charger, each with its own id, or none where the checks fail. Each unit then takes what was
recorded for its charger (``refresh_recorded_taken``) instead of its own statement. A 2.0.1
charger's read (its report id reserved under its row's lock), an unknown charger, one alone in its
batch: its own way.

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
from kernel.plain_sql import array_text, bound_cursor, instance_insert_selecting, instance_saved
from kernel.rows_ahead import RowsAhead, UnitKind


@dataclass(frozen=True, slots=True)
class RefreshRecorded:
    """What a batch recorded for a 1.6 charger's read after its boot: the pending command, or None
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
    """Within the block (a batch's pass without savepoints), the read after a boot of each 1.6
    charger of ``charge_point_ids`` is recorded now (one statement) and answered
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
_ASKED = "cp.lifecycle_state = %s AND cp.connection_channel <> '' AND cp.ocpp_version = '1.6'"  # as ``changes._ASKED``


def _statement(insert: str) -> str:
    """``changes._REFRESH_READ``'s 1.6 part for many chargers: per charger found, its columns, the
    id its command would have, and whether it was recorded."""
    selected = ", ".join(f"c.{connection.ops.quote_name(column)}" for column in _COLUMNS)
    return (
        "WITH ask AS (SELECT * FROM unnest(%s::text[], %s::uuid[]) AS ask(charge_point_id, command_id)),"
        f" cp AS (SELECT {selected}, ask.command_id FROM {_CHARGERS} c JOIN ask"
        " ON c.charge_point_id = ask.charge_point_id),"
        f" recorded AS ({insert} WHERE {_ASKED} RETURNING charge_point_id)"
        f" SELECT {', '.join(f'cp.{connection.ops.quote_name(column)}' for column in _COLUMNS)},"
        " cp.command_id, EXISTS (SELECT 1 FROM recorded r WHERE r.charge_point_id = cp.id) FROM cp"
    )


def _recorded(asked: list[str]) -> dict[str, RefreshRecorded]:
    """The statement for ``asked`` (charger ids): charger id -> what was recorded, for its 1.6 chargers."""
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
            ],
        )
        rows = cursor.fetchall()
    recorded: dict[str, RefreshRecorded] = {}
    for *columns, command_id, was_recorded in rows:
        charge_point = ChargePoint.from_db(connection.alias, list(_COLUMNS), columns)
        if charge_point.ocpp_version != "1.6":
            continue  # its own way
        recorded[charge_point.charge_point_id] = RefreshRecorded(
            _command_of(template, charge_point, command_id) if was_recorded else None
        )
    return recorded


def _command_of(template: Command, charge_point: ChargePoint, command_id: uuid.UUID) -> Command:
    """The row recorded for ``charge_point``: the template's values (its time too), its own id and charger."""
    command = command_own(charge_point=charge_point, command="get_configuration", body={})
    command.id, command.created_at = command_id, template.created_at
    instance_saved(command)
    return command
