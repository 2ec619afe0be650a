"""Writes to the fleet: registration, presence, boot, liveness and connector status.

Both OCPP versions end here; handlers translate their payloads into these arguments.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Model, ProtectedError, Q, QuerySet, Value, When
from django.db.models.functions import StrIndex, Substr
from django.db.models.signals import post_save
from django.utils import timezone

from chargepoints import clock, events, selectors
from chargepoints.models import (
    ChargePoint,
    Connector,
    Heartbeat,
    LifecycleState,
    OcppMessage,
    SchemaViolation,
)
from chargepoints.passwords import PasswordNeedsHashing, charger_password_matches
from chargepoints.services.attach_writes import RowCondition, attach_write_taken, connection_returned
from chargepoints.services.boot_writes import (
    BOOT_COLUMNS,
    BOOT_PENDING_WRITTEN,
    BootLookup,
    BootRow,
    boot_time_written,
    boot_unit_register,
    boot_write_taken,
    booted_on_this_connection,
)
from chargepoints.services.heartbeat_pace import EXPECTED_HEARTBEAT_INTERVAL, heartbeat_interval_stored
from chargepoints.services.status_writes import (
    CONNECTOR_COLUMNS,
    STATUS_COLUMNS,
    StatusLookup,
    status_unit_register,
    status_write_taken,
    status_written,
)
from chargepoints.signals import connector_status_replayed, connector_status_reported
from kernel import cache_changes
from kernel.batch_memo import batch_memos
from kernel.charger_connections import connection_close_sync
from kernel.plain_sql import array_text, bound_cursor, rows_copied
from kernel.storable_text import text_escaped
from kernel.sweeps import rows_pruned
from webhooks.models import EventType
from webhooks.services import webhook_event_emit, webhook_event_may_have_subscribers

logger = logging.getLogger(__name__)


class ChargePointAlreadyExists(Exception):
    def __init__(self, charge_point_id: str) -> None:
        super().__init__(f"Charge point {charge_point_id!r} is already registered.")
        self.charge_point_id = charge_point_id


@dataclass(frozen=True)
class BootResult:
    status: str  # "Accepted" or "Pending"
    interval: int
    current_time: datetime
    identity_kept: bool = False  # vendor, model and firmware version those of the charger's last boot
    condition_held: bool | None = None  # ``charge_point_boot``'s ``condition``: None when not asked


def charge_point_register(
    *,
    charge_point_id: str,
    heartbeat_interval: int,
    ocpp_version: str = "",
    lifecycle_state: str = LifecycleState.COMMISSIONED,
    password: str | None = None,
    tariff: Model | None = None,
) -> ChargePoint:
    """Register a charger; ``tariff`` is its own (billing's ``Tariff``), None: the default applies."""
    charge_point = ChargePoint(
        charge_point_id=charge_point_id,
        tariff_id=tariff.pk if tariff is not None else None,
        heartbeat_interval=heartbeat_interval,
        ocpp_version=ocpp_version,
        lifecycle_state=lifecycle_state,
        password_hash=make_password(password) if password else "",
    )
    try:
        with transaction.atomic():
            charge_point.save()
    except IntegrityError:
        raise ChargePointAlreadyExists(charge_point_id) from None
    return charge_point


def charge_point_admit(*, charge_point_id: str, password: str | None, may_hash: bool = True) -> str:
    """Whether a WebSocket handshake for this id may go on: "" if so, else why not (for the log,
    see ``selectors.charge_point_refusal``).

    Known chargers need to be not decommissioned and to present their password (every charger
    must have one with CSMS_REQUIRE_CHARGER_PASSWORD). Unknown ones are refused, unless
    CSMS_AUTO_REGISTER is on: then they are registered as pending, their Boot is answered
    Pending, and an operator commissions them; while ``CSMS_AUTO_REGISTER_MAX_PENDING`` wait so,
    unknown ones are refused again. Without ``may_hash``, a password that would need
    hashing raises ``passwords.PasswordNeedsHashing`` (the gateway bounds and throttles hashing).
    """
    require_password = settings.CSMS_REQUIRE_CHARGER_PASSWORD
    refusal = selectors.charge_point_refusal(
        charge_point_id=charge_point_id, password=password, require_password=require_password, may_hash=may_hash
    )
    if refusal == selectors.PASSWORD_AFTER_REBOOT:  # the charger rebooted: the new one is current
        return _password_after_reboot_made_current(charge_point_id, password or "")
    if refusal != "unknown" or not settings.CSMS_AUTO_REGISTER or require_password:
        return refusal
    if _pending_full():
        return (
            f"unknown, and not registered: {settings.CSMS_AUTO_REGISTER_MAX_PENDING} chargers already wait for"
            " commissioning (CSMS_AUTO_REGISTER_MAX_PENDING)"
        )
    with contextlib.suppress(ChargePointAlreadyExists):  # a concurrent handshake registered it a moment ago
        charge_point_register(
            charge_point_id=charge_point_id,
            heartbeat_interval=settings.CSMS_DEFAULT_HEARTBEAT_INTERVAL,
            lifecycle_state=LifecycleState.PENDING,
        )
    logger.info("%s: unknown charger registered as pending (CSMS_AUTO_REGISTER)", charge_point_id)
    return ""


def _pending_full() -> bool:
    """Whether ``CSMS_AUTO_REGISTER_MAX_PENDING`` chargers wait for commissioning: one bounded
    statement, read only for a handshake of an unknown charger under ``CSMS_AUTO_REGISTER``."""
    cap = settings.CSMS_AUTO_REGISTER_MAX_PENDING
    return selectors.pending_charge_point_list(limit=cap).count() >= cap


def _password_after_reboot_made_current(charge_point_id: str, password: str) -> str:
    """The candidate password (``charge_point_password_offered``: one sent to the charger, taken for
    after its reboot or not answered) the charger presented at its handshake is the one checked from
    now: the old one no longer admits it. "" (admitted), or "wrong password" when the locked row's
    candidate is no longer the one that matched (another offer replaced it meanwhile: never made
    current) and its current password is not the one presented either (a concurrent handshake of the
    charger made it current: admitted). Only hashes this process just verified are checked under the
    row's lock: one that would need hashing is taken as no match (the charger's retry is checked
    afresh)."""

    def presented(password_hash: str) -> bool:
        try:
            return bool(password_hash) and charger_password_matches(
                charge_point_id=charge_point_id, password=password, password_hash=password_hash, may_hash=False
            )
        except PasswordNeedsHashing:
            return False

    with transaction.atomic():
        rows = ChargePoint.objects.select_for_update().filter(charge_point_id=charge_point_id)
        current, candidate, earlier = rows.values_list(*_PASSWORD_COLUMNS).first() or ("", "", "")
        if presented(candidate):  # the newest: the earlier one is superseded
            rows.update(password_hash=candidate, **_NO_CANDIDATES, updated_at=timezone.now())
            return ""
        if presented(earlier):  # the newer one's command may still be settled (taken for after a reboot)
            rows.update(password_hash=earlier, password_hash_after_reboot_earlier="", updated_at=timezone.now())
            return ""
    return "" if presented(current) else "wrong password"


_PASSWORD_COLUMNS = ("password_hash", "password_hash_after_reboot", "password_hash_after_reboot_earlier")
_NO_CANDIDATES = {"password_hash_after_reboot": "", "password_hash_after_reboot_earlier": ""}


_UNCHANGED: Any = object()


def charge_point_update(
    *,
    charge_point: ChargePoint,
    heartbeat_interval: int | None = None,
    lifecycle_state: str | None = None,
    ocpp_version: str | None = None,
    password: str | None = _UNCHANGED,
    tariff: Model | None = _UNCHANGED,
) -> ChargePoint:
    """Change what an operator may change.

    A password is set, rotated (new value) or removed (None); a tariff (billing's ``Tariff``)
    likewise (None: the default tariff applies). Decommissioning closes the charger's socket: a decommissioned
    charger may not stay connected; so does a password change: the charger reconnects with it; so does
    a commissioned charger set back to pending: its connection serves it as commissioned (kept from
    its handshake, ``OcppRouter._commissioned``), its next one only what a pending charger may send.
    Raises ``ChargePointConnectedOverVersion`` for an ``ocpp_version`` other than the one the
    charger is connected over as the locked row tells (the caller's instance may predate its
    handshake, on any process), nothing changed.
    """
    changed = ["updated_at"]
    for field, value in (
        ("lifecycle_state", lifecycle_state),
        ("ocpp_version", ocpp_version),
    ):
        if value is not None:
            setattr(charge_point, field, value)
            changed.append(field)
    if password is not _UNCHANGED:
        charge_point.password_hash = make_password(password) if password else ""
        charge_point.password_hash_after_reboot = charge_point.password_hash_after_reboot_earlier = ""
        changed += list(_PASSWORD_COLUMNS)
    if tariff is not _UNCHANGED:
        charge_point.tariff_id = tariff.pk if tariff is not None else None
        changed.append("tariff")
    with transaction.atomic():
        locked = lifecycle_state or ocpp_version is not None or password is not _UNCHANGED
        stored_state, stored_version = _presence_locked(charge_point) if locked else (None, None)
        if ocpp_version is not None and charge_point.connected and stored_version != ocpp_version:
            raise ChargePointConnectedOverVersion(charge_point.charge_point_id, stored_version or "")
        charge_point.save(update_fields=changed)
        if heartbeat_interval is not None:
            heartbeat_interval_stored(charge_point=charge_point, interval=heartbeat_interval)
        if charge_point.lifecycle_state == LifecycleState.DECOMMISSIONED:
            _close_connection_on_commit(charge_point, "charge point decommissioned")
        elif stored_state == LifecycleState.COMMISSIONED and charge_point.lifecycle_state == LifecycleState.PENDING:
            _close_connection_on_commit(charge_point, "charge point no longer commissioned")
        elif password is not _UNCHANGED:
            _close_connection_on_commit(charge_point, "charger password changed")
    return charge_point


@dataclass(frozen=True)
class PasswordOffer:
    """A password the CSMS is sending a charger, as the hash stored for it: ``candidate``."""

    candidate: str


def charge_point_password_offered(*, charge_point: ChargePoint, password: str) -> PasswordOffer:
    """Before the CALL setting the charger's password leaves (1.6 ``ChangeConfiguration`` of
    ``AuthorizationKey``, 2.0.1 ``SetVariables`` of ``SecurityCtrlr.BasicAuthPassword``): its hash is
    stored as the candidate (``password_hash_after_reboot``), which admits the charger beside its
    current password until one is confirmed. Whatever becomes of the command (answered, timed out,
    its sending process dead and the command timed out by the sweep from its redacted row), a charger
    that took the password is admitted at its next handshake, which confirms it
    (``charge_point_admit``). The answer settles it too (``charge_point_password_answered``).

    A candidate stored before (a rotation started twice: the first taken for after a reboot, or not
    answered) moves to ``password_hash_after_reboot_earlier`` and still admits: the charger may have
    taken it and never the newer one. Two candidates are kept at most (each costs a wrong password
    a hash): a third rotation in flight drops the oldest. Neither the password nor its hash is logged."""
    candidate = make_password(password)
    with transaction.atomic():
        rows = ChargePoint.objects.filter(pk=charge_point.pk)
        stored = rows.select_for_update().values_list(*_PASSWORD_COLUMNS[1:]).first()
        before, earlier = stored or ("", "")
        rows.update(
            password_hash_after_reboot=candidate,
            password_hash_after_reboot_earlier=before or earlier,
            updated_at=timezone.now(),
        )
    charge_point.password_hash_after_reboot = candidate
    charge_point.password_hash_after_reboot_earlier = before or earlier
    return PasswordOffer(candidate=candidate)


def charge_point_password_answered(
    *,
    charge_point: ChargePoint,
    password: str,
    offer: PasswordOffer | None,
    status: Literal["taken", "after_reboot", "refused"],
) -> None:
    """The charger answered the CALL setting its password (``charge_point_password_offered`` made
    ``offer`` before it left; None: not made in this process). ``taken`` (Accepted): the candidate is
    the password from now, the old one no longer admits, nor does a candidate offered before it
    (the charger holds this one now); a newer one stays. ``after_reboot`` (RebootRequired): the
    candidate stays beside the old one until the charger presents it. ``refused`` (Rejected,
    NotSupported, ...): the candidate is dropped, the other one stays (a newer one offered meanwhile,
    or one the charger took earlier for after its reboot); the old password admits."""
    rows = ChargePoint.objects.filter(pk=charge_point.pk)
    now = timezone.now()
    newest, earlier = F("password_hash_after_reboot"), F("password_hash_after_reboot_earlier")
    if status == "refused":
        if offer is not None:  # the earlier candidate takes the newest's place when that is the one dropped
            dropped = Q(password_hash_after_reboot=offer.candidate)
            rows.filter(dropped | Q(password_hash_after_reboot_earlier=offer.candidate)).update(
                password_hash_after_reboot=Case(When(dropped, then=earlier), default=newest),
                password_hash_after_reboot_earlier=Value(""),
                updated_at=now,
            )
        return
    candidate = offer.candidate if offer is not None else make_password(password)
    if status == "taken":
        is_newest = Q(password_hash_after_reboot=candidate)
        rows.update(
            password_hash=candidate,
            password_hash_after_reboot=Case(When(is_newest, then=Value("")), default=newest),
            # the earlier candidate was offered before this one, unless this one is it (then a newer one stays)
            password_hash_after_reboot_earlier=Case(
                When(is_newest | Q(password_hash_after_reboot_earlier=candidate), then=Value("")), default=earlier
            ),
            updated_at=now,
        )
    elif offer is None:
        rows.update(password_hash_after_reboot=candidate, password_hash_after_reboot_earlier=newest, updated_at=now)
    else:  # stored before sending: again only when dropped since (a late answer never overwrites a newer offer)
        rows.filter(password_hash_after_reboot="").update(password_hash_after_reboot=candidate, updated_at=now)


class ChargePointConnectedOverVersion(Exception):
    """An OCPP version set for a charger connected over another one: its connection sets it."""

    def __init__(self, charge_point_id: str, ocpp_version: str) -> None:
        super().__init__(f"The charge point is connected over OCPP {ocpp_version}: its connection sets it.")
        self.charge_point_id = charge_point_id


class ChargePointHasHistory(Exception):
    def __init__(self, charge_point_id: str) -> None:
        super().__init__(
            f"Charge point {charge_point_id!r} has transactions or reconciliation items; decommission it instead."
        )
        self.charge_point_id = charge_point_id


def charge_point_delete(*, charge_point: ChargePoint) -> None:
    """Remove a charger; one with billing history is kept (decommission it instead). A connected one
    is disconnected, and goes offline for webhook subscribers (``reason`` ``deleted``): its socket's
    close finds no row to mark offline, so nothing else would tell them."""
    try:
        with transaction.atomic():
            _presence_locked(charge_point)  # a handshake committed since it was read is closed too
            _close_connection_on_commit(charge_point, "charge point deleted")
            if charge_point.connected:
                now = timezone.now()
                _emit_connectivity(EventType.CHARGE_POINT_OFFLINE, charge_point.charge_point_id, now, "deleted")
            charge_point.delete()
    except ProtectedError:
        raise ChargePointHasHistory(charge_point.charge_point_id) from None


def _presence_locked(charge_point: ChargePoint) -> tuple[str | None, str | None]:
    """``charge_point``'s presence (``connection_channel``, ``connected``) read again, its row
    locked until the caller's transaction ends, and its lifecycle state and OCPP version as stored
    returned (None, None: the row is gone): the instance was read before (the API's and the
    admin's, a password hashed meanwhile), and a charger that reconnected since, to any process,
    holds another socket, which the change must close, over the version its handshake wrote. A
    handshake after the lock waits for the change, and its presence write checks the admission
    again (``charge_point_connect``'s ``admitted_hash``)."""
    found = (
        ChargePoint.objects.select_for_update()
        .filter(pk=charge_point.pk)
        .values_list("connection_channel", "connected", "lifecycle_state", "ocpp_version")
        .first()
    )
    if found is None:
        return None, None
    charge_point.connection_channel, charge_point.connected, stored_state, stored_version = found
    return stored_state, stored_version


def _close_connection_on_commit(charge_point: ChargePoint, reason: str) -> None:
    channel_name = charge_point.connection_channel
    if channel_name:
        transaction.on_commit(lambda: connection_close_sync(channel_name=channel_name, reason=reason))


@dataclass(frozen=True)
class Connection:
    replaced_channel: str  # the connection this one replaces ("" if none): the caller closes it
    heartbeat_interval: int
    commissioned: bool = False
    boot_identity: tuple[str, str, str] = ("", "", "")  # vendor, model, firmware version of the last boot
    condition_held: bool | None = None  # ``charge_point_connect``'s ``condition``: None when not asked
    profile: selectors.ChargerProfile = selectors.STRICT_PROFILE  # of the model of ``boot_identity``
    configuration_read_owed: bool = False  # ``ChargePoint.configuration_read_owed``
    # An interval stored while the charger was away (or one it has not taken): pushed on this connection
    # unless it boots (``ChargePoint.previous_heartbeat_interval`` set; heartbeat_pace).
    heartbeat_interval_owed: bool = False
    # Commissioned, its last boot answered Pending (``ChargePoint.boot_pending``): asked to boot again
    # on this connection (it would wait out its Pending interval otherwise).
    boot_owed: bool = False


def charge_point_connect(
    *,
    charge_point_id: str,
    ocpp_version: str,
    channel_name: str,
    handshake_started_at: datetime | None = None,
    condition: RowCondition | None = None,
    admitted_hash: str | None = None,
) -> Connection | Literal[False] | None:
    """Record that ``channel_name`` now holds the charger's socket; None (nothing written) when a
    handshake that began after ``handshake_started_at`` (None: now) took presence before.
    ``admitted_hash`` (PostgreSQL only): the handshake's admission checked in the same statement,
    the charger not decommissioned and its stored password hash this one
    (``passwords.password_hash_admitting``); False (nothing written, the row not locked) when it
    is not, or the charger is unknown: ``charge_point_admit`` tells why.

    The newest handshake wins: a charger that gave up on a slow handshake and opened another
    socket is held by the newer one, however late the older one's attach comes. Handshakes of
    different processes are ordered by their hosts' clocks. ``condition`` (PostgreSQL; ignored
    elsewhere) is evaluated in the same statement, after the write, into ``condition_held``: what
    a higher app asks of the charger at connect without a round trip of its own."""
    now = timezone.now()
    started_at = handshake_started_at or now
    if connection.vendor == "postgresql":
        return _connection_written(
            charge_point_id, ocpp_version, channel_name, now, started_at, condition, admitted_hash
        )
    assert admitted_hash is None, "the admission in the presence write is PostgreSQL's"
    with transaction.atomic():
        charge_point = ChargePoint.objects.select_for_update().get(charge_point_id=charge_point_id)
        newer = charge_point.handshake_started_at
        if newer is not None and newer > started_at:
            return None
        previous_channel = charge_point.connection_channel
        if not charge_point.connected:
            _emit_connectivity(EventType.CHARGE_POINT_ONLINE, charge_point.charge_point_id, now, "connected")
        charge_point.connection_channel = channel_name
        charge_point.handshake_started_at = started_at
        charge_point.ocpp_version = ocpp_version
        charge_point.connected = True
        charge_point.offline_since = None
        charge_point.last_seen = now
        charge_point.save(
            update_fields=[
                "connection_channel",
                "handshake_started_at",
                "ocpp_version",
                "connected",
                "offline_since",
                "last_seen",
                "updated_at",
            ]
        )
    return Connection(
        replaced_channel=previous_channel if previous_channel != channel_name else "",
        heartbeat_interval=charge_point.heartbeat_interval,
        commissioned=charge_point.lifecycle_state == LifecycleState.COMMISSIONED,
        boot_identity=(charge_point.vendor, charge_point.model, charge_point.firmware_version),
        profile=selectors.charger_profile_for(
            vendor=charge_point.vendor, model=charge_point.model, firmware_version=charge_point.firmware_version
        ),
        configuration_read_owed=charge_point.configuration_read_owed,
        heartbeat_interval_owed=charge_point.previous_heartbeat_interval is not None,
        boot_owed=charge_point.boot_pending and charge_point.lifecycle_state == LifecycleState.COMMISSIONED,
    )


# The admission ``charge_point_connect`` may check in its presence write (``admitted_hash``): in the
# locking read's own WHERE, so a refused handshake locks nothing (and hashes, if it must, unlocked).
_ADMITTED = " AND lifecycle_state <> %s AND password_hash = %s"
_DECOMMISSIONED = LifecycleState.DECOMMISSIONED


def _connection_written(
    charge_point_id: str,
    ocpp_version: str,
    channel_name: str,
    now: datetime,
    started_at: datetime,
    condition: RowCondition | None,
    admitted_hash: str | None,
) -> Connection | Literal[False] | None:
    """``charge_point_connect`` as one plain statement (PostgreSQL, issue 15), or as the batch's
    statement wrote it for this handshake (``attach_writes``)."""
    ahead = attach_write_taken(
        charge_point_id=charge_point_id,
        ocpp_version=ocpp_version,
        channel_name=channel_name,
        started_at=started_at,
        condition=condition,
    )
    if ahead is not None:  # admitted by the batch's statement, as this process admits it without hashing
        return _connection_of_row(charge_point_id, channel_name, ahead.now, ahead.row)
    table = connection.ops.quote_name(ChargePoint._meta.db_table)
    asked, asked_params = condition or ("NULL", [])
    admitted, admitted_params = ("", []) if admitted_hash is None else (_ADMITTED, [_DECOMMISSIONED, admitted_hash])
    params: list[Any] = [charge_point_id, *admitted_params, channel_name, started_at, ocpp_version, now, now]
    with transaction.atomic(), bound_cursor() as cursor:
        cursor.execute(
            "WITH before AS (SELECT id, connected, connection_channel, handshake_started_at"
            f" FROM {table} WHERE charge_point_id = %s{admitted} FOR UPDATE),"
            f" written AS (UPDATE {table} AS cp SET connection_channel = %s, handshake_started_at = %s,"
            " ocpp_version = %s, connected = true, offline_since = NULL, last_seen = %s, updated_at = %s"
            " FROM before WHERE cp.id = before.id"
            " AND (before.handshake_started_at IS NULL OR before.handshake_started_at <= %s)"
            f" RETURNING {connection_returned(asked)})"
            " SELECT written.* FROM before LEFT JOIN written ON true",
            [*params, started_at, *asked_params],
        )
        row = cursor.fetchone()
        if row is None and admitted_hash is not None:
            return False
        if row is None:
            raise ChargePoint.DoesNotExist(f"Charge point {charge_point_id!r} is not registered.")
        return _connection_of_row(charge_point_id, channel_name, now, row)


def _connection_of_row(charge_point_id: str, channel_name: str, now: datetime, row: Sequence[Any]) -> Connection | None:
    """The connection a presence write's row tells of (``_connection_written``'s statement or the
    batch's), its online event emitted when the charger was offline; None when a newer handshake
    holds the charger (the row all NULL)."""
    (
        previous_channel,
        was_connected,
        interval,
        lifecycle_state,
        read_owed,
        interval_owed,
        boot_pending,
        *boot_identity,
        held,
        candidates,
    ) = row
    if interval is None:  # a newer handshake holds it
        return None
    if not was_connected:
        _emit_connectivity(EventType.CHARGE_POINT_ONLINE, charge_point_id, now, "connected")
    return Connection(
        replaced_channel=previous_channel if previous_channel != channel_name else "",
        heartbeat_interval=interval,
        commissioned=lifecycle_state == LifecycleState.COMMISSIONED,
        boot_identity=(boot_identity[0], boot_identity[1], boot_identity[2]),
        condition_held=held,
        profile=selectors.charger_profile_among(
            json.loads(candidates) if isinstance(candidates, str) else candidates or [],
            firmware_version=boot_identity[2],
        ),
        configuration_read_owed=read_owed,
        heartbeat_interval_owed=bool(interval_owed),
        boot_owed=bool(boot_pending) and lifecycle_state == LifecycleState.COMMISSIONED,
    )


def charge_point_disconnect(
    *, charge_point_id: str, channel_name: str, reason: str = "disconnected", at: datetime | None = None
) -> bool:
    """Clear presence, but only if ``channel_name`` still holds it; the charger goes offline.

    A charger that reconnected while its old socket was half-open is held by the new
    connection; the old consumer closing late must not mark it offline. A charger the sweep
    already marked offline emits no second event. ``reason`` goes into the offline event; ``at``
    (default now), when the socket closed, is its time and ``offline_since``: a disconnect written
    again after the database refused it is still dated from the close.
    """
    now = timezone.now()
    at = at or now
    with transaction.atomic():
        if connection.vendor == "postgresql":
            went_offline = _disconnection_written(charge_point_id, channel_name, now, at)
            if went_offline is None:
                return False
        else:
            cleared = ChargePoint.objects.filter(
                charge_point_id=charge_point_id, connection_channel=channel_name
            ).update(connection_channel="", updated_at=now)
            if not cleared:
                return False
            went_offline = bool(
                ChargePoint.objects.filter(charge_point_id=charge_point_id, connected=True).update(
                    connected=False, offline_since=at
                )
            )
        if went_offline:
            _emit_connectivity(EventType.CHARGE_POINT_OFFLINE, charge_point_id, at, reason)
    return True


def _disconnection_written(charge_point_id: str, channel_name: str, now: datetime, at: datetime) -> bool | None:
    """``charge_point_disconnect``'s two writes as one plain statement (PostgreSQL): presence
    cleared and the charger offline since ``at`` unless it already was. None when ``channel_name``
    does not hold the charger (nothing written); else whether it was connected. A reconnect storm
    disconnects every handshake its chargers gave up on: the disconnects' two round trips were 43 %
    of the commit group's units in a 10,000-charger storm's profile (issue 15)."""
    table = connection.ops.quote_name(ChargePoint._meta.db_table)
    with bound_cursor() as cursor:
        cursor.execute(
            "WITH before AS (SELECT id, connected FROM "
            f"{table} WHERE charge_point_id = %s AND connection_channel = %s FOR UPDATE)"
            f" UPDATE {table} AS cp SET connection_channel = '', updated_at = %s, connected = false,"
            " offline_since = CASE WHEN before.connected THEN %s ELSE cp.offline_since END"
            " FROM before WHERE cp.id = before.id RETURNING before.connected",
            [charge_point_id, channel_name, now, at],
        )
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


def gateway_processes_holding_presence() -> list[str]:
    """The gateway processes that hold some charger's presence, by channel-name prefix.

    A consumer's channel name is ``<process prefix>!<connection>``; the prefix (up to and
    including ``!``) is unique to the process that holds the socket.
    """
    channel = F("connection_channel")
    prefix = Substr(channel, 1, StrIndex(channel, Value("!")))
    return list(
        ChargePoint.objects.exclude(connection_channel="")
        .annotate(process=prefix)
        .exclude(process="")
        .order_by()
        .values_list("process", flat=True)
        .distinct()
    )


def charge_points_release_process(*, process: str) -> list[str]:
    """Presence held by the dead gateway process ``process`` (a channel-name prefix) is cleared.

    Set-based, in transactions of at most ``_RELEASE_CHUNK`` chargers (short locks beside a live
    process's batches): the held rows are locked (in id order, ``FOR NO KEY UPDATE`` like a
    session's lock, so inserts referring to them don't wait), their presence cleared with one
    UPDATE, the connected ones marked offline with another, one offline event each (reason
    ``gateway_lost``; whether anyone subscribed asked once per chunk). A row locked by another
    transaction is skipped (``SKIP LOCKED``), never waited for: a live process's batch locks
    its chargers in arrival order, not id order, so waiting could close a deadlock, and would
    hold this chunk's rows (the handshakes taking them over) meanwhile. The transaction that
    holds it is most likely a handshake taking the charger over (then the charger is no longer
    this process's), or another sweep releasing it; ``gateway_process_holds_presence`` tells
    whether any was left for a later round. A charger that reconnected elsewhere before the lock
    is no longer held by ``process`` and is left alone; one reconnecting after it waits for the
    commit. Returns the ids whose presence was released.
    """
    released: list[tuple[int, str]] = []
    while chunk := _release_chunk(process, after=released[-1][0] if released else 0):
        released.extend(chunk)
    return [charge_point_id for _, charge_point_id in released]


def gateway_process_holds_presence(*, process: str) -> bool:
    """Whether some charger's presence is held by a channel of ``process`` (a channel-name prefix)."""
    return ChargePoint.objects.filter(connection_channel__startswith=process).exists()


_RELEASE_CHUNK = 500


def _release_chunk(process: str, *, after: int) -> list[tuple[int, str]]:
    now = timezone.now()
    with transaction.atomic(), batch_memos():
        held = list(
            ChargePoint.objects.select_for_update(no_key=True, skip_locked=True)
            .filter(connection_channel__startswith=process, pk__gt=after)
            .order_by("pk")
            .values_list("pk", "charge_point_id", "connected")[:_RELEASE_CHUNK]
        )
        if not held:
            return []
        ChargePoint.objects.filter(pk__in=[pk for pk, _, _ in held]).update(connection_channel="", updated_at=now)
        went_offline = [(pk, charge_point_id) for pk, charge_point_id, connected in held if connected]
        ChargePoint.objects.filter(pk__in=[pk for pk, _ in went_offline]).update(connected=False, offline_since=now)
        if went_offline and webhook_event_may_have_subscribers(event_type=EventType.CHARGE_POINT_OFFLINE):
            for _, charge_point_id in went_offline:
                _emit_connectivity(EventType.CHARGE_POINT_OFFLINE, charge_point_id, now, "gateway_lost")
    return [(pk, charge_point_id) for pk, charge_point_id, _ in held]


def _mark_online(charge_point_id: str, now: datetime, reason: str = "message_received", **presence: str) -> None:
    """A message from an offline charger brings it online: one event per transition."""
    went_online = ChargePoint.objects.filter(charge_point_id=charge_point_id, connected=False, **presence).update(
        connected=True, offline_since=None
    )
    if went_online:
        _emit_connectivity(EventType.CHARGE_POINT_ONLINE, charge_point_id, now, reason)


def _emit_connectivity(event_type: str, charge_point_id: str, at: datetime, reason: str) -> None:
    webhook_event_emit(
        event_type=event_type,
        data=events.charge_point_connectivity(charge_point_id=charge_point_id, at=at, reason=reason),
    )


def charge_point_seen(*, charge_point_id: str, channel_name: str, at: datetime | None = None) -> None:
    """Any inbound message proves the charger is alive, and that this connection holds it.

    A presence found empty is claimed back: the RPC clears it when a command goes unacknowledged,
    which a live connection does while the channel layer (Redis) is away or its process stalls.
    """
    at = at or timezone.now()
    with transaction.atomic():
        ChargePoint.objects.filter(
            Q(connection_channel=channel_name) | Q(connection_channel=""), charge_point_id=charge_point_id
        ).update(connection_channel=channel_name, last_seen=at)
        _mark_online(charge_point_id, at, connection_channel=channel_name)


def charge_point_presence_reclaimed(*, charge_point_id: str, channel_name: str) -> None:
    """The connection behind ``channel_name``, its socket open, claims back a presence found empty
    (a command's caller cleared it when this connection's process stalled, or another process's
    sweep released it while this one's announcement lapsed: ``gateway_lost``), and
    the charger is online again (``gateway_back``). ``last_seen`` is left as it was: nothing was
    heard from the charger, and the offline sweep still judges its silence."""
    now = timezone.now()
    with transaction.atomic():
        claimed = ChargePoint.objects.filter(charge_point_id=charge_point_id, connection_channel="").update(
            connection_channel=channel_name
        )
        if claimed:
            _mark_online(charge_point_id, now, "gateway_back", connection_channel=channel_name)


def charge_point_boot(
    *,
    charge_point_id: str,
    vendor: str,
    model: str,
    serial_number: str = "",
    firmware_version: str = "",
    iccid: str = "",
    imsi: str = "",
    meter_type: str = "",
    meter_serial_number: str = "",
    restarted: bool = True,
    condition: RowCondition | None = None,
) -> BootResult:
    """Record a BootNotification: the charger's identity, its boot time, online (one event when it
    was offline). Raises ``ChargePoint.DoesNotExist`` for an unregistered charger. ``condition``
    (PostgreSQL; ignored elsewhere) is evaluated in the same statement, after the write, into
    ``condition_held``: what a higher app asks of the charger at its boot without a round trip. In
    a group-commit batch the boot may have been written ahead with the batch's others
    (``boot_writes``): it takes that write, whose boot time is the batch's, and sends its event as here.
    ``restarted`` False: the charger says it did not restart (2.0.1 reason ``Triggered``, F06), and
    its boot time (``last_boot_at``, by which the sessions a reboot interrupted are closed) stays,
    as for a second boot on the connection that booted (``boot_writes.boot_time_written``)."""
    lookup = BootLookup(
        charge_point_id,
        vendor,
        model,
        serial_number,
        firmware_version,
        iccid,
        imsi,
        meter_type,
        meter_serial_number,
        restarted,
        condition,
    )
    ahead = boot_write_taken(lookup)
    now = timezone.now() if ahead is None else ahead.now
    with transaction.atomic():
        if connection.vendor == "postgresql":
            row = ahead.row if ahead is not None else _boot_written(lookup, now)
            lifecycle_state, interval, identity_kept, held = row[1:]
            if not row.was_connected:
                _emit_connectivity(EventType.CHARGE_POINT_ONLINE, charge_point_id, now, "message_received")
        else:
            _mark_online(charge_point_id, now)
            charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
            identity_kept = _boot_identity_of(charge_point) == (vendor, model, firmware_version)
            _record_boot(charge_point, now, *lookup[1:9], restarted=restarted)
            lifecycle_state, interval, held = charge_point.lifecycle_state, charge_point.heartbeat_interval, None
    accepted = lifecycle_state == LifecycleState.COMMISSIONED
    return BootResult(
        status="Accepted" if accepted else "Pending",
        interval=interval,
        current_time=now,
        identity_kept=identity_kept,
        condition_held=held,
    )


def _boot_identity_of(charge_point: ChargePoint) -> tuple[str, str, str]:
    return charge_point.vendor, charge_point.model, charge_point.firmware_version


def _boot_written(lookup: BootLookup, now: datetime) -> BootRow:
    """``_mark_online`` and ``_record_boot`` as one plain statement (PostgreSQL, issue 15): whether
    the charger was connected before, its lifecycle state and heartbeat interval, whether its
    vendor, model and firmware version are those it had, and ``lookup.condition``'s value (over the
    charger's row ``cp`` as written and as it was before, ``before``). ``identity_booted_at`` keeps
    the first boot of the vendor, model and firmware version reported (this boot when they changed).
    A batch's boots are written by one statement of the same rule (``boot_writes``)."""
    table = connection.ops.quote_name(ChargePoint._meta.db_table)
    assignments = ", ".join(f"{column} = %s" for column in BOOT_COLUMNS)
    asked, asked_params = lookup.condition or ("NULL", [])
    identity = lookup[1 : 1 + len(BOOT_COLUMNS)]
    vendor, model, _, firmware_version, *_ = identity
    with bound_cursor() as cursor:
        cursor.execute(
            "WITH before AS (SELECT id, connected, vendor, model, firmware_version, last_boot_at,"
            f" identity_booted_at, handshake_started_at FROM {table} WHERE charge_point_id = %s FOR UPDATE)"
            f" UPDATE {table} AS cp SET connected = true,"
            " offline_since = CASE WHEN before.connected THEN cp.offline_since END,"
            f" {assignments}, last_boot_at = {boot_time_written('%s')},"
            " last_seen = %s, updated_at = %s, previous_heartbeat_interval = NULL,"
            " unconfirmed_heartbeat_interval = NULL,"
            f" {BOOT_PENDING_WRITTEN},"
            " identity_booted_at = CASE WHEN (before.vendor, before.model, before.firmware_version)"
            " = (%s, %s, %s) THEN coalesce(before.identity_booted_at, before.last_boot_at, %s) ELSE %s END"
            " FROM before WHERE cp.id = before.id"
            " RETURNING before.connected, cp.lifecycle_state, cp.heartbeat_interval,"
            " (before.vendor, before.model, before.firmware_version)"
            " = (cp.vendor, cp.model, cp.firmware_version),"
            f" ({asked})",
            [
                lookup.charge_point_id,
                *identity,
                lookup.restarted,
                now,
                now,
                now,
                vendor,
                model,
                firmware_version,
                now,
                now,
                *asked_params,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        raise ChargePoint.DoesNotExist(f"Charge point {lookup.charge_point_id!r} is not registered.")
    return BootRow(*row)


def _record_boot(
    charge_point: ChargePoint,
    now: datetime,
    vendor: str,
    model: str,
    serial_number: str,
    firmware_version: str,
    iccid: str,
    imsi: str,
    meter_type: str,
    meter_serial_number: str,
    *,
    restarted: bool,
) -> None:
    if _boot_identity_of(charge_point) == (vendor, model, firmware_version):
        charge_point.identity_booted_at = charge_point.identity_booted_at or charge_point.last_boot_at or now
    else:
        charge_point.identity_booted_at = now
    charge_point.vendor = vendor
    charge_point.model = model
    charge_point.serial_number = serial_number
    charge_point.firmware_version = firmware_version
    charge_point.iccid = iccid
    charge_point.imsi = imsi
    charge_point.meter_type = meter_type
    charge_point.meter_serial_number = meter_serial_number
    kept = booted_on_this_connection(charge_point.last_boot_at, charge_point.handshake_started_at) or (
        not restarted and charge_point.last_boot_at is not None
    )
    if not kept:
        charge_point.last_boot_at = now
    charge_point.last_seen = now
    charge_point.previous_heartbeat_interval = None  # its answer carries heartbeat_interval
    charge_point.unconfirmed_heartbeat_interval = None
    charge_point.boot_pending = charge_point.lifecycle_state != LifecycleState.COMMISSIONED  # answered Pending
    charge_point.save(
        update_fields=[
            "previous_heartbeat_interval",
            "unconfirmed_heartbeat_interval",
            "boot_pending",
            "vendor",
            "model",
            "serial_number",
            "firmware_version",
            "iccid",
            "imsi",
            "meter_type",
            "meter_serial_number",
            "last_boot_at",
            "identity_booted_at",
            "last_seen",
            "updated_at",
        ]
    )


def charge_point_heartbeat(*, charge_point_id: str) -> datetime:
    now = timezone.now()
    charge_point_heartbeats_record(heartbeats=[ReceivedHeartbeat(charge_point_id=charge_point_id, received_at=now)])
    return now


@dataclass(frozen=True)
class ReceivedHeartbeat:
    charge_point_id: str
    received_at: datetime


def charge_point_heartbeats_record(*, heartbeats: Sequence[ReceivedHeartbeat]) -> int:
    """Store a batch of heartbeats in one transaction: a row each, each charger's latest as its
    ``last_heartbeat`` and ``last_seen``, and offline chargers back online (one event each).

    The gateway buffers heartbeats per process; a constant number of queries per batch, not per
    heartbeat. Heartbeats of deleted chargers are dropped.

    Inside a caller's transaction it sets no savepoint of its own (``atomic(savepoint=False)``): a
    failure marks the caller's whole transaction for rollback, so a caller that must outlive it
    runs it in a savepoint (the write-behind buffers' units do, ``in_savepoint``).
    """
    latest: dict[str, datetime] = {}
    for heartbeat in heartbeats:
        latest[heartbeat.charge_point_id] = max(
            heartbeat.received_at, latest.get(heartbeat.charge_point_id, heartbeat.received_at)
        )
    with transaction.atomic(savepoint=False):
        ids, offline = (_heartbeats_marked if connection.vendor == "postgresql" else _heartbeats_marked_orm)(latest)
        for charge_point_id in offline:
            _mark_online(charge_point_id, latest[charge_point_id])
        rows = [(ids[h.charge_point_id], h.received_at) for h in heartbeats if h.charge_point_id in ids]
        if connection.vendor == "postgresql":
            rows_copied(Heartbeat, ("charge_point_id", "received_at"), rows)
        else:
            Heartbeat.objects.bulk_create(Heartbeat(charge_point_id=pk, received_at=at) for pk, at in rows)
    return len(rows)


# Every charger's latest heartbeat in one statement of fixed text, whatever the batch's size:
# two arrays to convert instead of an ORM CASE with a branch per charger.
_HEARTBEATS_MARKED = (
    f"UPDATE {ChargePoint._meta.db_table} AS cp SET last_heartbeat = beat.at, last_seen = beat.at"
    " FROM unnest(%s::text[], %s::timestamptz[]) AS beat(charge_point_id, at)"
    " WHERE cp.charge_point_id = beat.charge_point_id"
    " RETURNING cp.charge_point_id, cp.id, cp.connected"
)


def _heartbeats_marked(latest: dict[str, datetime]) -> tuple[dict[str, int], list[str]]:
    """``last_heartbeat`` and ``last_seen`` of each charger in ``latest`` (id -> time) set in one
    UPDATE (PostgreSQL); (charge_point_id -> pk of the chargers found, those not connected)."""
    with bound_cursor() as cursor:
        cursor.execute(_HEARTBEATS_MARKED, [array_text(list(latest)), array_text(list(latest.values()))])
        found = cursor.fetchall()
    return {cp: pk for cp, pk, _ in found}, [cp for cp, _, connected in found if not connected]


def _heartbeats_marked_orm(latest: dict[str, datetime]) -> tuple[dict[str, int], list[str]]:
    """``_heartbeats_marked`` through the ORM (SQLite)."""
    ids = dict(ChargePoint.objects.filter(charge_point_id__in=latest).values_list("charge_point_id", "pk"))
    offline = list(
        ChargePoint.objects.filter(pk__in=ids.values(), connected=False).values_list("charge_point_id", flat=True)
    )
    if ids:
        at_each = Case(*(When(pk=ids[cp], then=Value(at)) for cp, at in latest.items() if cp in ids))
        ChargePoint.objects.filter(pk__in=ids.values()).update(last_heartbeat=at_each, last_seen=at_each)
    return ids, offline


def connector_status_set(
    *,
    charge_point_id: str,
    connector_id: int,
    status: str,
    evse_id: int | None = None,
    error_code: str = "",
    info: str = "",
    vendor_id: str = "",
    vendor_error_code: str = "",
    timestamp: datetime | None = None,
    charging: bool | None = None,
) -> Connector:
    """Create or update the connector's record from a StatusNotification.

    ``timestamp`` is the charger's (None: absent), judged by ``chargepoints.clock``: when its
    receipt stands in for it (implausible, or ahead of it), it is kept in ``charger_timestamp``. A
    notification older than the one already stored (chargers replay queued messages after
    a reconnect) does not overwrite the newer status, unless the stored one was received
    before the charger's last boot and this one after it. ``charging`` (None: the status says
    nothing about it) feeds the idle time of the connector's session; ``Available`` after a
    reboot closes the sessions the reboot interrupted (charging, on
    ``chargepoints.signals.connector_status_reported``, in this transaction). In a group-commit
    batch the status may have been written ahead with the batch's others (``status_writes``): it
    takes that write, whose time of receipt is the batch's, and sends its signal and event as here.
    """
    ahead = status_write_taken(
        StatusLookup(
            charge_point_id, connector_id, status, evse_id, error_code, info, vendor_id, vendor_error_code, timestamp,
            charging,
        )
    )  # fmt: skip
    now = timezone.now() if ahead is None else ahead.now
    judged = clock.charger_time(timestamp, received_at=now, tolerance_s=settings.CSMS_CLOCK_SKEW_TOLERANCE)
    timestamp = judged.at
    status_columns = (status, error_code, info, vendor_id, vendor_error_code, timestamp, judged.kept, judged.received)
    with transaction.atomic():
        if ahead is None:
            seen, connector, written = _status_written(charge_point_id, evse_id, connector_id, now, status_columns)
        else:  # written with the batch's other statuses (``status_writes``)
            seen, connector, written = ahead.charge_point, ahead.connector, ahead.written
        # The charger's row first, as every session write does (one lock order, no deadlock).
        charge_point = seen or _charge_point_seen_now(charge_point_id, now)
        stored = connector is not None
        if connector is not None:  # PostgreSQL: read, checked and written (or created) at once
            if not written:
                return _status_replayed(charge_point, connector, charging, timestamp)
        else:
            connector = _connector_locked(charge_point, evse_id, connector_id)
            if _status_superseded(connector, timestamp, charge_point.last_boot_at):
                return _status_replayed(charge_point, connector, charging, timestamp)
        connector_status_reported.send(
            sender=Connector,
            charge_point=charge_point,
            connector_id=connector_id,
            evse_id=evse_id,
            status=status,
            previous_status=connector.status,
            charging=charging,
            at=timestamp,
            asked=None if ahead is None else ahead.condition_held,
        )
        if (connector.status != status or connector.error_code != error_code) and webhook_event_may_have_subscribers(
            event_type=EventType.CONNECTOR_STATUS_CHANGED
        ):  # the event's data built only then
            webhook_event_emit(
                event_type=EventType.CONNECTOR_STATUS_CHANGED,
                data=events.connector_status_changed(
                    charge_point_id=charge_point_id,
                    evse_id=evse_id,
                    connector_id=connector_id,
                    status=status,
                    previous_status=connector.status,
                    error_code=error_code,
                    timestamp=timestamp,
                ),
            )
        connector.status = status
        connector.error_code = error_code
        connector.info = info
        connector.vendor_id = vendor_id
        connector.vendor_error_code = vendor_error_code
        connector.status_timestamp = timestamp
        connector.charger_timestamp = judged.kept
        connector.status_time_received = judged.received
        if stored:
            connector.updated_at = now
        else:
            connector.updated_at = timezone.now()
            _connector_status_write(connector)
    return connector


def connector_statuses_set(*, charge_point_id: str, statuses: Sequence[dict[str, Any]]) -> list[Connector]:
    """``connector_status_set`` of each of ``statuses`` (its other arguments: ``evse_id``,
    ``connector_id``, ``status``, ``timestamp``, ...), in their order, as one unit of work: one
    message telling many connectors' states (a 2.0.1 NotifyEvent, some 230 in a frame) is one
    transaction, where a unit each made it as many batches and COMMITs one after the other."""
    with transaction.atomic():
        return [connector_status_set(charge_point_id=charge_point_id, **status) for status in statuses]


status_unit_register(connector_status_set)  # a batch writes its statuses together (``status_writes``)
boot_unit_register(charge_point_boot)  # and its boots (``boot_writes``)


# The StatusNotification path in plain statements on PostgreSQL: the ORM's compiler and model
# machinery cost several times the statements themselves on the gateway's busiest path (issue 15).
# Elsewhere (SQLite, whose raw cursors return naive times) the same steps go through the ORM.
# The columns are ``status_writes``' (a batch's statuses written together).


def _status_written(
    charge_point_id: str, evse_id: int | None, connector_id: int, now: datetime, values: tuple[Any, ...]
) -> tuple[ChargePoint | None, Connector | None, bool]:
    """``status_writes.status_written`` (one statement) on PostgreSQL; all None off it. Raises
    ``ChargePoint.DoesNotExist`` for an unknown charger."""
    if connection.vendor != "postgresql":
        return None, None, False
    charge_point, connector, written, _ = status_written(charge_point_id, evse_id, connector_id, now, values)
    if charge_point is None:
        raise ChargePoint.DoesNotExist(f"No charge point {charge_point_id!r}")
    return charge_point, connector, written


def _charge_point_seen_now(charge_point_id: str, now: datetime) -> ChargePoint:
    """Set the charger's ``last_seen`` (which locks its row) and return its id and last boot;
    ``ChargePoint.DoesNotExist`` for an unknown id."""
    if connection.vendor != "postgresql":
        charge_point = ChargePoint.objects.only("pk", "charge_point_id", "last_boot_at").get(
            charge_point_id=charge_point_id
        )
        ChargePoint.objects.filter(pk=charge_point.pk).update(last_seen=now)
        return charge_point
    quote = connection.ops.quote_name
    with bound_cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(ChargePoint._meta.db_table)} SET last_seen = %s WHERE charge_point_id = %s"
            " RETURNING id, last_boot_at",
            [now, charge_point_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise ChargePoint.DoesNotExist(f"No charge point {charge_point_id!r}")
    return ChargePoint.from_db("default", ["id", "charge_point_id", "last_boot_at"], [row[0], charge_point_id, row[1]])


def _connector_locked(charge_point: ChargePoint, evse_id: int | None, connector_id: int) -> Connector:
    """The connector's row, locked; created (through the ORM) the first time it is named."""
    row = None
    if connection.vendor == "postgresql":
        row = _connector_row_locked(charge_point, evse_id, connector_id)
    if row is None:
        connector, _ = Connector.objects.select_for_update().get_or_create(
            charge_point=charge_point, evse_id=evse_id, connector_id=connector_id
        )
        return connector
    return Connector.from_db("default", list(CONNECTOR_COLUMNS), list(row))


def _connector_row_locked(charge_point: ChargePoint, evse_id: int | None, connector_id: int) -> tuple[Any, ...] | None:
    quote = connection.ops.quote_name
    evse = "evse_id IS NULL" if evse_id is None else "evse_id = %s"
    with bound_cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(map(quote, CONNECTOR_COLUMNS))} FROM {quote(Connector._meta.db_table)}"
            f" WHERE charge_point_id = %s AND connector_id = %s AND {evse} FOR UPDATE",
            [charge_point.pk, connector_id] + ([] if evse_id is None else [evse_id]),
        )
        return cursor.fetchone()


def _connector_status_write(connector: Connector) -> None:
    if connection.vendor != "postgresql":
        connector.save()
        return
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column)} = %s" for column in STATUS_COLUMNS)
    with bound_cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Connector._meta.db_table)} SET {assignments} WHERE id = %s",
            [getattr(connector, column) for column in STATUS_COLUMNS] + [connector.pk],
        )


def _status_replayed(charge_point: ChargePoint, connector: Connector, charging: bool | None, at: datetime) -> Connector:
    """A status older than ``connector``'s stored one, which it keeps: one that says whether the EV
    draws power is still a state of the sessions there (``connector_status_replayed``: an offline
    charger's queued Charging, SuspendedEV, Finishing, sent after its current status, time its
    session's idle fee)."""
    if charging is not None:
        connector_status_replayed.send(
            sender=Connector,
            charge_point=charge_point,
            connector_id=connector.connector_id,
            evse_id=connector.evse_id,
            charging=charging,
            at=at,
            newer_received_at=connector.updated_at,
        )
    return connector


def _status_superseded(connector: Connector, timestamp: datetime, last_boot_at: datetime | None) -> bool:
    """Whether the stored status is newer than one at ``timestamp`` received now.

    What the charger said after its last boot supersedes what it said before it, whatever its
    clock claims (a clock that restarted at the firmware's build date after a power cut). A stored
    status whose time is its receipt (``status_time_received``) supersedes none: the charger's
    clock cannot be compared with the CSMS's, and a status stamped in the future, or not at all,
    must not freeze the connector.
    """
    if connector.status_timestamp is None or connector.status_time_received or timestamp >= connector.status_timestamp:
        return False
    return not (last_boot_at is not None and connector.updated_at < last_boot_at)


@dataclass(slots=True)  # not frozen: two are built per OCPP message, and a frozen __init__ costs 3x
class LoggedFrame:
    charge_point_id: str
    direction: str
    frame: str
    created_at: datetime
    message_type: int | None = None
    unique_id: str = ""
    action: str = ""


def ocpp_messages_record(*, frames: list[LoggedFrame]) -> int:
    """Store a batch of logged frames in one COPY (one INSERT off PostgreSQL); frames of deleted
    chargers are dropped. Inside ``kernel.plain_sql.copies_gathered`` (a group-commit batch's first
    pass) the COPY is gathered with the batch's last writes.

    Text PostgreSQL cannot store (NUL, lone surrogates) is kept as its JSON escape (``\\u0000``).
    """
    ids = _charger_pks({frame.charge_point_id for frame in frames})
    rows = [
        (
            ids[frame.charge_point_id],
            frame.direction,
            frame.message_type,
            text_escaped(frame.unique_id)[:64],
            text_escaped(frame.action)[:64],
            text_escaped(frame.frame),
            frame.created_at,
        )
        for frame in frames
        if frame.charge_point_id in ids
    ]
    if connection.vendor == "postgresql":
        rows_copied(OcppMessage, _LOGGED_FRAME_COLUMNS, rows, may_gather=True)
    else:
        messages = (OcppMessage(**dict(zip(_LOGGED_FRAME_COLUMNS, row, strict=True))) for row in rows)
        OcppMessage.objects.bulk_create(messages)
    return len(rows)


def _charger_pks(charge_point_ids: set[str]) -> dict[str, int]:
    """``{charge_point_id: pk}`` of the chargers that exist among ``charge_point_ids``: those this
    process keeps (``_kept_pks``, while it listens to ``kernel.cache_changes``), the others read
    by one statement. A steady fleet's log is then written without a read (the read cost about
    1 ms of CPU a flush, PostgreSQL's and the batch thread's together, at 200 chargers; issue 15).
    A charger deleted or renamed through the ORM in any process is forgotten
    (``charger_pks_changed``); one deleted or renamed without a model signal (raw SQL, a queryset
    ``update()``), or whose notice is lost, stays kept ``CHARGER_PKS_KEPT_SECONDS`` at most: its
    frames meanwhile go under its old pk (kept until the log's prune, not in the log of a charger
    registered again under its id)."""
    return _kept_pks.found(charge_point_ids, _charger_pks_read)


def _charger_pks_read(charge_point_ids: set[str]) -> dict[str, int]:
    """``_charger_pks`` from the database. On PostgreSQL one statement of one array parameter
    (``= ANY``): its text is the same for any number of chargers, so psycopg converts it once and
    prepares it (an ``IN`` list of a thousand placeholders was converted and bound per value at
    every flush, issue 15)."""
    if connection.vendor != "postgresql":
        return dict(
            ChargePoint.objects.filter(charge_point_id__in=charge_point_ids).values_list("charge_point_id", "pk")
        )
    with bound_cursor() as cursor:
        cursor.execute(_CHARGER_PKS, [array_text(list(charge_point_ids))])
        return dict(cursor.fetchall())


CHARGER_PKS_TOPIC = "charger_pks"
# Kept at most this long (s): a charger deleted or renamed without a model signal, or whose notice
# is lost, has its frames of that long logged under its old pk (``_charger_pks``).
CHARGER_PKS_KEPT_SECONDS = 10.0
_kept_pks: cache_changes.KeptMapping[str, int] = cache_changes.KeptMapping(
    CHARGER_PKS_TOPIC, seconds=CHARGER_PKS_KEPT_SECONDS
)


def charger_pks_changed(*, signal: Any, created: bool = False, update_fields: Any = None, **_: Any) -> None:
    """ChargePoint's ``post_save`` / ``post_delete`` receiver, and chargepoints' ``post_migrate``
    one (a flush empties the table without a signal): every process's kept charger pks are
    forgotten (this one's at once, the others' when the change commits). A save that cannot
    change a charger's id (a new charger: none was kept; any save naming its fields without
    ``charge_point_id``: its presence, its boot) changes nothing kept."""
    if signal is post_save and (created or (update_fields is not None and "charge_point_id" not in update_fields)):
        return
    cache_changes.changed(CHARGER_PKS_TOPIC)


_CHARGER_PKS = (
    f"SELECT charge_point_id, {ChargePoint._meta.pk.column} FROM {ChargePoint._meta.db_table}"
    " WHERE charge_point_id = ANY(%s::varchar[])"
)
_LOGGED_FRAME_COLUMNS = ("charge_point_id", "direction", "message_type", "unique_id", "action", "frame", "created_at")


def mark_offline_stale_charge_points(*, now: datetime | None = None) -> list[str]:
    """Mark offline every charger that sent nothing within 2x its heartbeat interval (the longer
    of two while it may keep its previous one: ``heartbeat_pace.EXPECTED_HEARTBEAT_INTERVAL``).

    The socket may still look open (half-open TCP is the usual case). On PostgreSQL one pass,
    each charger judged by its own interval in the statement (a pass per distinct interval scanned
    the connected chargers once per interval: 3,000 intervals among 6,000 chargers, 9,000
    statements and 5.6 s a sweep); elsewhere one per distinct interval (SQLite has no integer x
    interval arithmetic). A pass commits every ``_SWEEP_CHUNK`` chargers; rows are claimed with
    SKIP LOCKED so sweeps running in several processes never mark one twice. Returns the ids that
    went offline in this sweep.
    """
    now = now or timezone.now()
    connected = ChargePoint.objects.filter(connected=True).annotate(expected_interval=EXPECTED_HEARTBEAT_INTERVAL)
    if connection.vendor == "postgresql":
        silent_since = ExpressionWrapper(
            Value(now) - F("expected_interval") * Value(timedelta(seconds=2)), output_field=DateTimeField()
        )
        return _stale_marked_offline(connected.filter(last_seen__lt=silent_since), now)
    went_offline: list[str] = []
    intervals = connected.order_by().values_list("expected_interval", flat=True).distinct()
    for interval in list(intervals):
        silent = connected.filter(expected_interval=interval, last_seen__lt=now - timedelta(seconds=2 * interval))
        went_offline.extend(_stale_marked_offline(silent, now))
    return went_offline


# Chargers the sweep marks offline per transaction: a mass outage's sweep holds no more rows locked
# than this while it writes their events (as the dead-process release, ``_RELEASE_CHUNK``).
_SWEEP_CHUNK = 500


def _stale_marked_offline(stale_chargers: QuerySet[ChargePoint], now: datetime) -> list[str]:
    """``stale_chargers`` not locked elsewhere marked offline since ``now``, an event each, in
    transactions of at most ``_SWEEP_CHUNK`` chargers in id order (``FOR NO KEY UPDATE``, as a
    session's lock: inserts referring to them don't wait; whether anyone subscribed asked once a
    chunk); their ids. One transaction for all held a mass outage's every row while it wrote their
    events (5,000 chargers with a subscriber: 7.5 s), and the reconnecting chargers' handshakes and
    boots waited behind it past the group commit's lock timeout."""
    went_offline: list[str] = []
    after = 0
    while True:
        with transaction.atomic(), batch_memos():
            stale = list(
                stale_chargers.select_for_update(no_key=True, skip_locked=True)
                .filter(pk__gt=after)
                .order_by("pk")
                .values_list("pk", "charge_point_id")[:_SWEEP_CHUNK]
            )
            ChargePoint.objects.filter(pk__in=[pk for pk, _ in stale], connected=True).update(
                connected=False, offline_since=now
            )
            for _, charge_point_id in stale:
                _emit_connectivity(EventType.CHARGE_POINT_OFFLINE, charge_point_id, now, "heartbeat_timeout")
        went_offline.extend(charge_point_id for _, charge_point_id in stale)
        if len(stale) < _SWEEP_CHUNK:
            return went_offline
        after = stale[-1][0]


def heartbeats_prune(*, older_than_days: int) -> int:
    """The heartbeats received more than ``older_than_days`` ago (``CSMS_HEARTBEAT_RETENTION_DAYS``),
    deleted in chunks (``kernel.sweeps.rows_pruned``); returns how many."""
    before = timezone.now() - timedelta(days=older_than_days)
    return rows_pruned(Heartbeat.objects.filter(received_at__lt=before), oldest_first="received_at")


def ocpp_messages_prune(*, older_than_days: int) -> int:
    """The message log's frames older than ``older_than_days`` (``CSMS_MESSAGE_LOG_DAYS``), and the
    schema violations received before then, each of which keeps its frame (id tags included), deleted
    in chunks (``kernel.sweeps.rows_pruned``); returns the frames of the log deleted."""
    before = timezone.now() - timedelta(days=older_than_days)
    rows_pruned(SchemaViolation.objects.filter(received_at__lt=before), oldest_first="received_at")
    return rows_pruned(OcppMessage.objects.filter(created_at__lt=before), oldest_first="created_at")
