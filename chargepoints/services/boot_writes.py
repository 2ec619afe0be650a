"""A group-commit batch's BootNotifications, written together (issue 15, round 15).

A BootNotification (1.6 and 2.0.1, ``fleet.charge_point_boot``) is one statement of its own on
PostgreSQL (``fleet._boot_written``): the charger's row locked, online, its boot identity and boot
time written, and what the answer needs returned (whether it was connected, its lifecycle state and
heartbeat interval, whether its vendor, model and firmware are those it had, the caller's
``condition``). A batch written without savepoints writes them once for all its boots, before its
units run (``boots_written_together``): one statement locks the boots' chargers that no other
transaction holds, in the order of their primary keys, waiting for none (``SKIP LOCKED``: a
charger held elsewhere is left to its boot, which waits for it at its turn, as a boot always did),
and writes each one's row by the same rule. Each boot then takes what was written for it
(``boot_write_taken``) and, at its turn, sends its online event and answers as before. A boot not
found there (an unknown charger, one held elsewhere, one asking another condition, one alone in its
batch) writes its own way.

Only the first unit of its charger in the batch is written ahead (the group commit chooses). What
is written and not taken is dropped once its unit ran (``boot_write_dropped``), which then sends the
batch to its second pass. PostgreSQL only; the batch's second pass (each unit in its savepoint)
writes each boot the unit's way, the first pass's writes rolled back with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.utils import timezone

from chargepoints.models import ChargePoint, LifecycleState
from chargepoints.services.attach_writes import RowCondition
from kernel.plain_sql import array_text, bound_cursor
from kernel.rows_ahead import RowsAhead, UnitKind, asked_rows

# The boot's columns, in the order of ``BootLookup``'s and of ``fleet._boot_written``'s parameters.
BOOT_COLUMNS = (
    "vendor", "model", "serial_number", "firmware_version", "iccid", "imsi", "meter_type", "meter_serial_number"
)  # fmt: skip


class BootLookup(NamedTuple):
    """A boot as ``charge_point_boot``'s keyword arguments."""

    charge_point_id: str
    vendor: str
    model: str
    serial_number: str = ""
    firmware_version: str = ""
    iccid: str = ""
    imsi: str = ""
    meter_type: str = ""
    meter_serial_number: str = ""
    # False: the charger says it did not restart (2.0.1 reason ``Triggered``): its boot time stays.
    restarted: bool = True
    condition: RowCondition | None = None


class BootRow(NamedTuple):
    """What a boot's write returns: whether the charger was connected before, its lifecycle state
    and heartbeat interval (s), whether its vendor, model and firmware version are those it had, and
    the condition's value (None when none was asked)."""

    was_connected: bool
    lifecycle_state: str
    heartbeat_interval: int
    identity_kept: bool
    condition_held: bool | None


@dataclass(frozen=True, slots=True)
class BootWrite:
    """A boot written ahead: what it asked (to be taken only by the same ask), the time written
    (``now``: its boot time) and what it found."""

    lookup: BootLookup
    now: datetime
    row: BootRow


_units: UnitKind[BootLookup] = UnitKind(BootLookup)
boot_unit_register = _units.register  # ``func``'s units are boots: their arguments a ``BootLookup``'s
boot_lookup_of = _units.lookup_of
_writes: RowsAhead[str, BootWrite] = RowsAhead()  # charger id -> its boot written


@contextmanager
def boots_written_together(lookups: Sequence[BootLookup]) -> Iterator[None]:
    """Within the block (a batch's pass without savepoints), each of ``lookups`` whose charger was
    found and not held elsewhere is written now (one statement) and answered (``boot_write_taken``).
    Fewer than ``FEWEST`` asking one condition, or not PostgreSQL: no statement, no answer."""
    with _writes.kept() as writes:
        asks = asked_rows(lookups) if _writes.enough(lookups) else []
        if _writes.enough(asks):
            writes.update(_boots_written(asks))
        yield


def boot_write_taken(lookup: BootLookup) -> BootWrite | None:
    """What was written ahead for ``lookup`` in this pass (taken: no other unit gets it), or None.
    One written for another ask of its charger is left: ``boot_write_dropped`` then tells the batch
    to be written again."""
    return _writes.taken(lookup.charge_point_id, lambda write: write.lookup == lookup)


def boot_write_dropped(lookup: BootLookup | None) -> bool:
    """Its unit ran: what was written for ``lookup``'s charger, if it was left, is no later unit's.
    True when it was left: a boot's row is written that its unit did not take, so the batch's pass
    must be rolled back and written again without writes ahead."""
    return lookup is not None and _writes.dropped(lookup.charge_point_id) is not None


_TABLE = ChargePoint._meta.db_table


# ``ChargePoint.boot_pending`` as a boot writes it: whether its answer is Pending (the charger is not
# commissioned; ``cp``'s lifecycle state, which the boot does not write, is the one its answer reads).
BOOT_PENDING_WRITTEN = f"boot_pending = cp.lifecycle_state <> '{LifecycleState.COMMISSIONED.value}'"


def boot_time_written(restarted: str) -> str:
    """``last_boot_at`` as a BootNotification writes it (its time the last parameter; ``restarted``
    the SQL of the boot's ``BootLookup.restarted``): a second Boot on the connection that already
    booted (a TriggerMessage's, a Pending charger's retry), and one the charger says is no restart
    (2.0.1 reason ``Triggered``, on any connection), keep the boot time it had."""
    return (
        "CASE WHEN before.last_boot_at >= before.handshake_started_at"
        f" OR (NOT {restarted} AND before.last_boot_at IS NOT NULL) THEN before.last_boot_at ELSE %s END"
    )


def booted_on_this_connection(last_boot_at: datetime | None, handshake_started_at: datetime | None) -> bool:
    """Whether the charger's last boot came on the connection it holds now (after that connection's
    handshake began): a BootNotification there is not a restart (OCPP 1.6 §5.17, 2.0.1 F06: a
    TriggerMessage's BootNotification reports, the charger did not reboot; a reboot ends the socket).
    ``last_boot_at`` is what the CSMS closes interrupted sessions by: only a restart moves it."""
    return last_boot_at is not None and handshake_started_at is not None and last_boot_at >= handshake_started_at


def _statement(asked: str) -> str:
    """``fleet._boot_written``'s statement for many chargers (one row of arrays each), with the
    locks taken in the order of the chargers' ids, skipping those held: per charger written, its
    ordinal and that statement's row."""
    identity = ", ".join(f"{column} = sent.{column}" for column in BOOT_COLUMNS)
    arrays = ", ".join(["%s::text[]"] * (1 + len(BOOT_COLUMNS)) + ["%s::boolean[]"])
    return (
        f"WITH sent AS (SELECT * FROM unnest({arrays}) WITH ORDINALITY"
        f" AS sent(charge_point_id, {', '.join(BOOT_COLUMNS)}, restarted, n)),"
        " before AS (SELECT sent.n, c.id, c.connected, c.vendor, c.model, c.firmware_version, c.last_boot_at,"
        " c.identity_booted_at, c.handshake_started_at"
        f" FROM {_TABLE} c JOIN sent ON c.charge_point_id = sent.charge_point_id"
        " ORDER BY c.id FOR UPDATE OF c SKIP LOCKED)"
        f" UPDATE {_TABLE} AS cp SET connected = true,"
        " offline_since = CASE WHEN before.connected THEN cp.offline_since END,"
        f" {identity}, last_boot_at = {boot_time_written('sent.restarted')},"
        " last_seen = %s, updated_at = %s, previous_heartbeat_interval = NULL,"
        " unconfirmed_heartbeat_interval = NULL,"
        f" {BOOT_PENDING_WRITTEN},"
        " identity_booted_at = CASE WHEN (before.vendor, before.model, before.firmware_version)"
        " = (sent.vendor, sent.model, sent.firmware_version)"
        " THEN coalesce(before.identity_booted_at, before.last_boot_at, %s) ELSE %s END"
        " FROM before JOIN sent ON sent.n = before.n WHERE cp.id = before.id"
        " RETURNING before.n, before.connected, cp.lifecycle_state, cp.heartbeat_interval,"
        " (before.vendor, before.model, before.firmware_version) = (cp.vendor, cp.model, cp.firmware_version),"
        f" ({asked})"
    )


def _boots_written(asks: list[BootLookup]) -> dict[str, BootWrite]:
    """The statement for ``asks``: charger id -> what its boot wrote and found (the chargers written only)."""
    now = timezone.now()
    asked, asked_params = asks[0].condition or ("NULL", [])
    params: list[Any] = [
        array_text([ask.charge_point_id for ask in asks]),
        *(array_text([getattr(ask, column) for ask in asks]) for column in BOOT_COLUMNS),
        array_text([ask.restarted for ask in asks]),
        now,
        now,
        now,
        now,
        now,
        *asked_params,
    ]
    with bound_cursor() as cursor:
        cursor.execute(_statement(asked), params)
        rows = cursor.fetchall()
    writes = {}
    for n, *row in rows:
        ask = asks[n - 1]  # WITH ORDINALITY counts from 1
        writes[ask.charge_point_id] = BootWrite(ask, now, BootRow(*row))
    return writes
