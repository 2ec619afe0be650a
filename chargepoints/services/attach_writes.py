"""A group-commit batch's handshake attaches, written together (issue 15, round 14).

A handshake this process admits without hashing (``passwords.password_hash_admitting``) is
attached by one statement of its own on PostgreSQL (``fleet.charge_point_connect``): the charger's
row locked where its admission holds, its presence written unless a newer handshake holds it, and
what the connection keeps returned (interval, commissioning, boot identity, model profiles, the
caller's ``condition``). A batch written without savepoints writes them once for all its attaches,
before its units run (``attaches_written_together``): one statement locks the chargers whose
admission holds and that no other transaction holds, in the order of their primary keys, waiting
for none (``SKIP LOCKED``: a charger held elsewhere is left to its attach, which waits for it at
its turn, as an attach always did), and writes each one's presence by the same rule. Each attach
then takes what was written for it (``attach_write_taken``) and, at its turn, sends its online
event and builds its connection as before. An attach not found there (refused, unknown, held
elsewhere, or asking what the batch did not) writes its own way.

Only the first unit of its charger in the batch is written ahead (the group commit chooses). What
is written and not taken is dropped once its unit ran (``attach_write_dropped``). PostgreSQL only;
the batch's second pass (each unit in its savepoint) attaches each the unit's way, the first
pass's writes rolled back with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.utils import timezone

from chargepoints import selectors
from chargepoints.models import ChargePoint, ChargerModelProfile, LifecycleState
from chargepoints.passwords import password_hash_admitting
from kernel.plain_sql import array_text, bound_cursor
from kernel.rows_ahead import RowsAhead, UnitKind, asked_rows

# An SQL boolean expression over the charger's row (alias ``cp``) and its parameters.
RowCondition = tuple[str, list[Any]]


class AttachLookup(NamedTuple):
    """An attach as its unit's keyword arguments (``handshake_auth._attached_with_sessions``')."""

    charge_point_id: str
    password: str | None
    ocpp_version: str
    channel_name: str
    may_hash: bool
    handshake_started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AttachWrite:
    """What an attach written ahead asked (to be taken only by the same ask) and found: ``row`` as
    ``fleet._connection_written``'s statement returns it, ``now`` the time written."""

    ocpp_version: str
    channel_name: str
    started_at: datetime
    condition: RowCondition | None
    now: datetime
    row: tuple[Any, ...]


_units: UnitKind[AttachLookup] = UnitKind(AttachLookup)
attach_lookup_of = _units.lookup_of
_conditions: dict[Callable[..., Any], Callable[[], RowCondition | None]] = {}  # func -> the condition it asks
_writes: RowsAhead[str, AttachWrite] = RowsAhead()  # charger id -> its attach written


def attach_unit_register(func: Callable[..., Any], condition: Callable[[], RowCondition | None]) -> None:
    """``func``'s units are attaches (keyword arguments an ``AttachLookup``'s) asking ``condition()``."""
    _units.register(func)
    _conditions[func] = condition


@contextmanager
def attaches_written_together(lookups: Sequence[tuple[AttachLookup, Callable[..., Any]]]) -> Iterator[None]:
    """Within the block (a batch's pass without savepoints), each of ``lookups`` ((lookup, its
    unit's func)) admitted without hashing, found and not held elsewhere is written now (one
    statement) and answered (``attach_write_taken``). Fewer than ``FEWEST``, or not PostgreSQL:
    no statement, no answer."""
    with _writes.kept() as writes:
        asks = asked_rows(_admitted(lookups)) if _writes.enough(lookups) else []
        if _writes.enough(asks):
            writes.update(_attaches_written(asks))
        yield


def attach_write_taken(
    *,
    charge_point_id: str,
    ocpp_version: str,
    channel_name: str,
    started_at: datetime,
    condition: RowCondition | None,
) -> AttachWrite | None:
    """What was written ahead for this handshake (its charger, version, channel and start) asking
    ``condition`` in this pass (taken: no other unit gets it), or None. Its admission was checked
    by the batch's statement, with the hash this process admits the password by. One that does not
    match is left, and ``attach_write_dropped`` then tells the batch to be written again."""
    asked = (ocpp_version, channel_name, started_at, condition)
    return _writes.taken(
        charge_point_id,
        lambda write: (write.ocpp_version, write.channel_name, write.started_at, write.condition) == asked,
    )


def attach_write_dropped(lookup: AttachLookup | None) -> bool:
    """Its unit ran: what was written for ``lookup``, if it was left, is no later unit's. True when
    it was left: the row is written for a handshake its unit did not attach (judged otherwise at its
    turn), so the batch's pass must be rolled back and written again without writes ahead."""
    return lookup is not None and _writes.dropped(lookup.charge_point_id) is not None


def attaches_written_held() -> list[str]:
    """The chargers whose attach this pass wrote ahead (``attaches_written_together``), not yet
    taken, found its condition true (the presence write's ``condition_held``): what the batch may
    read together for them (``charging.services.open_sessions.open_sessions_read_together``).
    Empty outside a pass."""
    return [charge_point_id for charge_point_id, write in _writes.left().items() if write.row[-2]]


class _Ask(NamedTuple):
    charge_point_id: str
    admitted_hash: str
    channel_name: str
    started_at: datetime
    ocpp_version: str
    condition: RowCondition | None


def _admitted(lookups: Sequence[tuple[AttachLookup, Callable[..., Any]]]) -> Iterator[_Ask]:
    """The attaches the batch may write: a start time and an admission known without hashing
    (any other writes its own way)."""
    require = settings.CSMS_REQUIRE_CHARGER_PASSWORD
    for lookup, func in lookups:
        if lookup.handshake_started_at is None:
            continue
        admitted_hash = password_hash_admitting(
            charge_point_id=lookup.charge_point_id, password=lookup.password, require_password=require
        )
        if admitted_hash is not None:
            yield _Ask(
                lookup.charge_point_id,
                admitted_hash,
                lookup.channel_name,
                lookup.handshake_started_at,
                lookup.ocpp_version,
                _conditions[func](),
            )


_TABLE = ChargePoint._meta.db_table
_PROFILES = ChargerModelProfile._meta.db_table


def connection_returned(asked: str) -> str:
    """What a presence write returns for ``fleet._connection_of_row`` (``cp``: the charger's row written,
    ``before``: it as it was; ``asked``: the condition's SQL): the one list both the single attach
    (``fleet._connection_written``) and a batch's return, so their rows keep one shape."""
    profile_row = ", ".join(f"p.{column}" for column in selectors.PROFILE_COLUMNS)
    return (
        "before.connection_channel, before.connected, cp.heartbeat_interval, cp.lifecycle_state,"
        " cp.configuration_read_owed, cp.previous_heartbeat_interval IS NOT NULL, cp.boot_pending,"
        f" cp.vendor, cp.model, cp.firmware_version, ({asked}),"
        f" (SELECT json_agg(json_build_array({profile_row})) FROM {_PROFILES} p WHERE cp.vendor <> ''"
        f"  AND {selectors.profiles_matching('cp.vendor', 'cp.model')})"
    )


def _statement(asked: str) -> str:
    """``fleet._connection_written``'s statement for many chargers (one row of arrays each), with
    the locks taken in the order of the chargers' ids, skipping those held: per charger found, its
    ordinal and that statement's row (all NULL when a newer handshake holds it)."""
    return (
        "WITH v AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[])"
        " WITH ORDINALITY AS v(charge_point_id, password_hash, channel, started, version, n)),"
        " before AS (SELECT v.n, c.id, c.connected, c.connection_channel, c.handshake_started_at"
        f" FROM {_TABLE} c JOIN v ON c.charge_point_id = v.charge_point_id AND c.lifecycle_state <> %s"
        " AND c.password_hash = v.password_hash ORDER BY c.id FOR UPDATE OF c SKIP LOCKED),"
        f" written AS (UPDATE {_TABLE} AS cp SET connection_channel = v.channel, handshake_started_at = v.started,"
        " ocpp_version = v.version, connected = true, offline_since = NULL, last_seen = %s, updated_at = %s"
        " FROM before JOIN v ON v.n = before.n WHERE cp.id = before.id"
        " AND (before.handshake_started_at IS NULL OR before.handshake_started_at <= v.started)"
        f" RETURNING before.n, {connection_returned(asked)})"
        " SELECT before.n, written.* FROM before LEFT JOIN written ON written.n = before.n"
    )


def _attaches_written(asks: list[_Ask]) -> dict[str, AttachWrite]:
    """The statement for ``asks``: charger id -> what its attach found (the chargers found only)."""
    now = timezone.now()
    asked, asked_params = asks[0].condition or ("NULL", [])
    params: list[Any] = [
        array_text([ask.charge_point_id for ask in asks]),
        array_text([ask.admitted_hash for ask in asks]),
        array_text([ask.channel_name for ask in asks]),
        array_text([ask.started_at for ask in asks]),
        array_text([ask.ocpp_version for ask in asks]),
        LifecycleState.DECOMMISSIONED,
        now,
        now,
        *asked_params,
    ]
    with bound_cursor() as cursor:
        cursor.execute(_statement(asked), params)
        rows = cursor.fetchall()
    writes = {}
    for n, _, *row in rows:
        ask = asks[n - 1]  # WITH ORDINALITY counts from 1
        writes[ask.charge_point_id] = AttachWrite(
            ask.ocpp_version, ask.channel_name, ask.started_at, ask.condition, now, tuple(row)
        )
    return writes
