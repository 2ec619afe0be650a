"""A charger's WebSocket handshake in one unit of work: admission, presence, the connection's state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Literal

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction

from chargepoints.passwords import password_hash_admitting
from chargepoints.selectors import ChargerProfile
from chargepoints.services.fleet import Connection, RowCondition, charge_point_admit, charge_point_connect


@dataclass(frozen=True)
class Attachment:
    """What a connection keeps from its handshake.

    ``replaced_channel``: the older connection this one replaces ("" if none), for the caller to
    close; ``heartbeat_interval`` in s; ``commissioned``: the charger may use the network;
    ``profile``: its model's quirks and strictness, from the model it last booted as;
    ``boot_identity``: that model, as (vendor, model, firmware version); ``condition_held``: the
    value of ``charge_point_attach``'s ``condition`` (None when not asked or off PostgreSQL);
    ``configuration_read_owed``: a read of its configuration after a boot was skipped
    (``ChargePoint.configuration_read_owed``); ``heartbeat_interval_owed``: its stored heartbeat
    interval is one it has not taken (``ChargePoint.previous_heartbeat_interval`` set).
    """

    replaced_channel: str
    heartbeat_interval: int
    commissioned: bool
    profile: ChargerProfile
    boot_identity: tuple[str, str, str] = ("", "", "")
    condition_held: bool | None = None
    configuration_read_owed: bool = False
    heartbeat_interval_owed: bool = False  # an interval it has not taken is stored (``Connection``)
    boot_owed: bool = False  # commissioned, its last boot answered Pending (``Connection``)


SUPERSEDED = "a newer handshake holds the charger"
ADMISSION_CHANGED = "its password or lifecycle changed during the handshake, twice"
# Reads of the admission a handshake makes before it gives up: each is written only if the row
# still holds what the read admitted (``_connected_as_read``), else read again.
ADMISSIONS_READ = 2


def charge_point_attach(
    *,
    charge_point_id: str,
    password: str | None,
    ocpp_version: str,
    channel_name: str,
    handshake_started_at: datetime | None = None,
    may_hash: bool = True,
    condition: RowCondition | None = None,
) -> Attachment | str:
    """Admit the handshake (``charge_point_admit``) and record that ``channel_name`` holds the
    charger's socket (``charge_point_connect``), in one transaction; when refused, why (for the log):
    ``SUPERSEDED`` when a handshake that began after ``handshake_started_at`` (None: now) holds it.

    The gateway makes one database call per handshake, and its first message needs no lookup. A
    handshake this process can admit without hashing (``passwords.password_hash_admitting``) is one
    statement on PostgreSQL: the presence write checks the admission; any other reads the row first.
    Without ``may_hash``, ``passwords.PasswordNeedsHashing`` is raised before anything is written.
    ``condition``: asked in the presence write's statement (``charge_point_connect``).
    """
    connect = partial(
        charge_point_connect,
        charge_point_id=charge_point_id,
        ocpp_version=ocpp_version,
        channel_name=channel_name,
        handshake_started_at=handshake_started_at,
        condition=condition,
    )
    with transaction.atomic():
        connection = _connected_as_admitted(connect, charge_point_id, password)
        for _ in range(ADMISSIONS_READ):
            if connection is not False:
                break
            refusal = charge_point_admit(charge_point_id=charge_point_id, password=password, may_hash=may_hash)
            if refusal:
                return refusal
            connection = _connected_as_read(connect, charge_point_id, password)
        else:
            return ADMISSION_CHANGED
        if connection is None:
            return SUPERSEDED
        assert connection is not False  # asked without ``admitted_hash``
    return Attachment(
        replaced_channel=connection.replaced_channel,
        heartbeat_interval=connection.heartbeat_interval,
        commissioned=connection.commissioned,
        profile=connection.profile,
        boot_identity=connection.boot_identity,
        condition_held=connection.condition_held,
        configuration_read_owed=connection.configuration_read_owed,
        heartbeat_interval_owed=connection.heartbeat_interval_owed,
        boot_owed=connection.boot_owed,
    )


def _connected_as_admitted(
    connect: Callable[..., Connection | Literal[False] | None], charge_point_id: str, password: str | None
) -> Connection | Literal[False] | None:
    """``connect`` with the admission checked in its statement, when this process can tell which
    stored password hash admits ``password`` without hashing it (PostgreSQL; the handshakes of a
    charger without a password, and reconnects, issue 15); False when it is not, or was not asked:
    then ``charge_point_admit`` reads the row and tells why."""
    if db_connection.vendor != "postgresql":
        return False
    admitted_hash = password_hash_admitting(
        charge_point_id=charge_point_id, password=password, require_password=settings.CSMS_REQUIRE_CHARGER_PASSWORD
    )
    return False if admitted_hash is None else connect(admitted_hash=admitted_hash)


def _connected_as_read(
    connect: Callable[..., Connection | Literal[False] | None], charge_point_id: str, password: str | None
) -> Connection | Literal[False] | None:
    """``connect`` after ``charge_point_admit`` admitted the handshake from an unlocked read (and
    a hash, which no lock is held for): on PostgreSQL written only where the row, once locked,
    still has the stored hash and lifecycle that read admitted; False when it changed meanwhile (a
    password changed, the charger decommissioned or deleted through the API: their socket close
    found no presence yet, so this handshake must not take it with what no longer admits it)."""
    if db_connection.vendor != "postgresql":
        return connect()
    admitted_hash = password_hash_admitting(charge_point_id=charge_point_id, password=password, require_password=False)
    # A password not remembered was admitted without one set (no hash to check it against).
    connection = connect(admitted_hash=admitted_hash if admitted_hash is not None else "")
    if connection is False and admitted_hash:
        # A remembered password the row no longer holds: admitted because its password was removed
        # since (any password is, then), unless the row changed again meanwhile.
        connection = connect(admitted_hash="")
    return connection
