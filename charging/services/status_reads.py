"""A group-commit batch's closing statuses (``CLOSING_STATUSES``: ``Available`` and the others of a
connector with no transaction on it): the sessions open on their connectors, read
together (issue 15).

A closing status asks the rows whether a session is open on its connector (2.0.1: its EVSE),
to close what a reboot interrupted (``transaction_end.connector_sessions_follow``): one statement
per such status, since the connection's kept sessions may lack one its charger's previous
connection committed; and a session open there from before the charger's boot is then closed
(``transaction_end.transactions_close_after_reboot``), which read its rows, locked, again. A batch
written without savepoints writes its statuses ahead, their chargers locked
(``chargepoints.services.status_writes``); right after, this reads the open sessions of every
charger among them whose closing status was written, locked, by one statement
(``connector_sessions_read_together``; round 15: their rows, not only whether one is open), and
each status's receiver takes its connector's (``connector_sessions_taken``) instead of reading
them twice. The ledgers of those it will close (open from before their charger's last boot) are
read by one statement right after (round 16: ``ledger_reads.locked_ledgers_read_together``), not
one per close.

The read follows the chargers' locks, and a session is written only under its charger's lock, so
no other transaction changes the answer before the status's unit runs; in the batch, only a unit
of that charger could, and the status is the first of its charger's units (the group commit
chooses). What is not taken is dropped once its unit ran (``connector_sessions_read_dropped``).
PostgreSQL only.

Most closing statuses follow a stop, on a connector with no session open: the statuses' write
asks whether the connector has one (``status_asked``, after the same locks: in the statement
that writes a batch's connectors, beside a lone status's write in its round trip), and only the
chargers of those that have one are read; the others' connectors are answered "none" without a
statement (round 28: the read was 6 % of PostgreSQL's statement time in the fleet's rate phase, and
returned no row; round 33: a lone status too, and the question is its connector's, not its
charger's).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache

from django.db import connection

from chargepoints.models import ChargePoint
from chargepoints.services.status_writes import StatusLookup, StatusWrite
from charging.models import Transaction, TransactionStatus
from charging.services.ledger_reads import locked_ledger_dropped, locked_ledgers_read_together
from charging.services.reservations import reservations_active_when
from kernel.plain_sql import array_text, columns_of, model_rows
from kernel.rows_ahead import RowsAhead

# The statuses after which a connector's sessions from before its charger's boot are closed (its
# receiver always reads the rows): a connector with no transaction on it (1.6 and 2.0.1 statuses).
# Not Faulted nor Unavailable: a transaction the charger kept through its reboot may pass through
# them while it starts up, and goes on (1.6 §4.9: Faulted returns to Charging); a stop the charger
# sends later still replaces a close.
CLOSING_STATUSES = frozenset({"Available", "Preparing", "Reserved"})
_CLOSING_LIST = ", ".join(f"'{status}'" for status in sorted(CLOSING_STATUSES))

_Key = tuple[int, int, int | None]  # (charger's pk, connector id, EVSE id or None)
_open: RowsAhead[_Key, list[Transaction]] = RowsAhead(fewest=1)  # key -> the sessions open there
_read: RowsAhead[StatusLookup, tuple[_Key, list[int]]] = RowsAhead(fewest=1)  # lookup -> key, the pks it closes


def status_asked() -> str:
    """For ``status_writes.statuses_written_together``'s ``asked``: over a status's row ``v``, for a
    closing status, whether a session is open on its connector (2.0.1: its EVSE; as ``_on`` matches
    it); for one that ends reservations, whether one is active there
    (``reservations.reservations_active_when``; the two sets of statuses are apart); else NULL."""
    sessions = connection.ops.quote_name(Transaction._meta.db_table)
    return (
        f"CASE WHEN v.status IN ({_CLOSING_LIST}) THEN EXISTS (SELECT 1 FROM {sessions} t"
        f" WHERE t.charge_point_id = v.cp AND t.status = '{TransactionStatus.ACTIVE}'"
        " AND CASE WHEN v.evse IS NOT NULL THEN t.evse_id = v.evse"
        f" ELSE t.connector_id = v.connector AND t.evse_id IS NULL END) {reservations_active_when()} END"
    )


@contextmanager
def connector_sessions_read_together(written: Sequence[tuple[StatusLookup, StatusWrite]]) -> Iterator[None]:
    """Within the block, the sessions open on the connector of each closing status among
    ``written`` (written ahead, their chargers locked) are answered from one statement made now,
    which locks them; a connector its write found with none open (``condition_held`` false, from
    ``status_asked``) is answered "none" without it. None such, or not PostgreSQL: no
    statement, no answer."""
    with _open.kept() as answers, _read.kept() as read:
        closing = [(lookup, write) for lookup, write in written if lookup.status in CLOSING_STATUSES]
        if _open.enough(closing):
            asked = sorted({write.charge_point.pk for _, write in closing if write.condition_held is not False})
            sessions = _open_sessions(asked) if asked else {}
            for lookup, write in closing:
                key = (write.charge_point.pk, lookup.connector_id, lookup.evse_id)
                answers[key] = [session for session in sessions.get(key[0], ()) if _on(session, key)]
                read[lookup] = (key, [session.pk for session in answers[key] if _before_boot(session)])
        with locked_ledgers_read_together([pk for _, pks in read.values() for pk in pks]):
            yield


def connector_sessions_taken(charge_point_pk: int, connector_id: int, evse_id: int | None) -> list[Transaction] | None:
    """The sessions open on the connector (a 2.0.1 EVSE), locked, newest first (the model's order),
    as read for its status's batch (taken: no other unit gets them; as read, not yet remembered by
    ``session_rows.transaction_remember``); None when not read."""
    return _open.taken((charge_point_pk, connector_id, evse_id))


def connector_sessions_read_dropped(lookup: StatusLookup | None) -> None:
    """Its unit ran: the answer read for ``lookup``'s connector, if it was left, and the ledgers
    read for its closes, are no later unit's."""
    read = _read.dropped(lookup)
    if read is not None:
        key, closed = read
        _open.dropped(key)
        for pk in closed:
            locked_ledger_dropped(pk)


def _before_boot(session: Transaction) -> bool:
    """Whether ``transaction_end.transactions_close_after_reboot`` closes this open session
    (``opened_before_boot``; the charger's row read with it)."""
    return opened_before_boot(session, session.charge_point.last_boot_at)


def opened_before_boot(session: Transaction, last_boot_at: datetime | None) -> bool:
    """Whether the CSMS heard of ``session`` before its charger's last boot: both times by the
    CSMS's clock (the row's ``created_at``, the boot's receipt), never the charger's, whose start
    time may run minutes behind (a session opened after the boot would look older than it)."""
    return last_boot_at is not None and session.created_at < last_boot_at


def _on(session: Transaction, key: _Key) -> bool:
    """Whether an open session is on ``key``'s connector, as ``selectors.transactions_open_exist``
    matches it: its EVSE, or (1.6) its connector without one."""
    _, connector_id, evse_id = key
    if evse_id is not None:
        return session.evse_id == evse_id
    return session.connector_id == connector_id and session.evse_id is None


@cache
def _open_sessions_read() -> str:
    """``_open_sessions``' statement, its select list built once."""
    quote = connection.ops.quote_name
    return (
        f"SELECT {columns_of(Transaction, 't')}, {columns_of(ChargePoint, 'c')}"
        f" FROM {quote(Transaction._meta.db_table)} t JOIN {quote(ChargePoint._meta.db_table)} c"
        " ON c.id = t.charge_point_id WHERE t.charge_point_id = ANY(%s::bigint[]) AND t.status = %s"
        " ORDER BY t.started_at DESC, t.id DESC FOR UPDATE OF t"  # the model's ordering
    )


def _open_sessions(pks: list[int]) -> dict[int, list[Transaction]]:
    """Charger pk -> the sessions open on it (with its row, as ``session_rows.transactions_open_on_connector``
    reads them), locked, newest first, for the chargers ``pks``."""
    found: dict[int, list[Transaction]] = {}
    sessions = model_rows(
        Transaction,
        _open_sessions_read(),
        [array_text(pks), TransactionStatus.ACTIVE],
        related=("charge_point", ChargePoint),
    )
    for session in sessions:
        found.setdefault(session.charge_point_id, []).append(session)
    return found
