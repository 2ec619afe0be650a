"""The CSMS's record of reservations: what ReserveNow / CancelReservation achieved, and expiry."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Q, Subquery, Value, When
from django.db.models.functions import Lower
from django.utils import timezone

from chargepoints.models import ChargePoint, OcppVersion
from charging.models import IdTag, Reservation, ReservationStatus, Transaction
from kernel.plain_sql import columns_of, model_rows


def reservation_record(
    *,
    charge_point: ChargePoint,
    reservation_id: int,
    id_tag: str,
    expiry_date: datetime,
    accepted: bool,
    charger_status: str,
    connector_id: int | None = None,
    evse_id: int | None = None,
    token_type: str = "",
    parent_id_tag: str = "",
) -> Reservation:
    """Record the charger's answer to ReserveNow. An accepted one with the id of an active
    reservation replaces it (OCPP 1.6 §5.13, 2.0.1 H01); a refused one changes nothing on the
    charger: an active reservation of that id stays as it is. Otherwise the answer is a new record:
    one that ended (used by a session, cancelled, expired) keeps its own, whatever id reuses it. An
    accepted one of a 1.6 connector (not 0) ends, as cancelled, any other active there: the charger
    answers Occupied to a new id for a connector it holds reserved (§5.13), so it holds no other (lost
    at a reboot, expired by its clock), which a later session of its tag there would otherwise use.
    ``token_type``: a 2.0.1 idToken's type ("": 1.6, none)."""
    fields = {
        "connector_id": connector_id,
        "evse_id": evse_id,
        "id_tag": id_tag,
        "token_type": token_type,
        "parent_id_tag": parent_id_tag,
        "expiry_date": expiry_date,
        "charger_status": charger_status,
        "status": ReservationStatus.ACTIVE if accepted else ReservationStatus.REFUSED,
    }
    active = Reservation.objects.filter(
        charge_point=charge_point, reservation_id=reservation_id, status=ReservationStatus.ACTIVE
    )
    if not accepted:
        kept = active.first()
        if kept is not None:
            return kept
        return Reservation.objects.create(charge_point=charge_point, reservation_id=reservation_id, **fields)
    try:
        with transaction.atomic():  # a savepoint: another answer may record the id's active one first
            reservation, _ = active.update_or_create(
                charge_point=charge_point, reservation_id=reservation_id, defaults=fields
            )
    except IntegrityError:
        reservation, _ = active.update_or_create(
            charge_point=charge_point, reservation_id=reservation_id, defaults=fields
        )
    if connector_id:  # 1.6 §5.13: a reserved connector answers Occupied to another id; Accepted: it holds no other
        Reservation.objects.filter(
            charge_point=charge_point, connector_id=connector_id, evse_id=None, status=ReservationStatus.ACTIVE
        ).exclude(pk=reservation.pk).update(status=ReservationStatus.CANCELLED, updated_at=timezone.now())
    return reservation


def reservation_end(*, charge_point_id: str, reservation_id: int, status: str) -> int:
    """An active reservation ends (cancelled, or expired/removed as a 2.0.1 charger reports)."""
    return Reservation.objects.filter(
        charge_point__charge_point_id=charge_point_id, reservation_id=reservation_id, status=ReservationStatus.ACTIVE
    ).update(status=status, updated_at=timezone.now())


# A connector (1.6 connector 0: the charger; 2.0.1: its EVSE) in one of these statuses holds no
# reservation: those on it end (OCPP 1.6 §5.13, "set to Faulted or Unavailable"; 2.0.1 H01, whose
# charger also reports it in ReservationStatusUpdate Removed, as cancelled here too).
RESERVATION_ENDING_STATUSES = frozenset({"Faulted", "Unavailable"})
_ENDING_LIST = ", ".join(f"'{status}'" for status in sorted(RESERVATION_ENDING_STATUSES))


def reservations_active_when() -> str:
    """A branch of ``status_reads.status_asked`` (the ``asked`` of a batch's status writes): over a
    status's row ``v``, for a status that ends reservations, whether one is active on its connector
    (as ``_on_connector`` matches it). Asked in the status's write: a Faulted or Unavailable on a
    connector with none costs no statement."""
    reservations = connection.ops.quote_name(Reservation._meta.db_table)
    return (
        f"WHEN v.status IN ({_ENDING_LIST}) THEN EXISTS (SELECT 1 FROM {reservations} r"
        f" WHERE r.charge_point_id = v.cp AND r.status = '{ReservationStatus.ACTIVE}'"
        " AND CASE WHEN v.evse IS NOT NULL THEN v.evse = 0 OR r.evse_id = v.evse"
        " ELSE v.connector = 0 OR r.connector_id = v.connector END)"
    )


def connector_reservations_follow(
    *,
    charge_point: ChargePoint,
    connector_id: int,
    evse_id: int | None,
    status: str,
    any_active: bool | None,
    previous_status: str = "",
) -> int:
    """A StatusNotification ``status`` on the connector (2.0.1: its EVSE): Faulted or Unavailable
    ends the reservations active there, as cancelled; on 1.6 connector 0 (2.0.1 EVSE 0), every one of
    the charger's. ``any_active``: whether one is, as its status's write found
    (``reservations_active_when``; False: no statement), None: not asked. A 1.6 connector (not 0)
    ``Available`` after ``Reserved`` (``previous_status``) ends its own (``_reserved_gone_available``).
    Returns how many ended."""
    if evse_id is None and connector_id and (previous_status, status) == _RESERVATION_GONE:
        return _reserved_gone_available(charge_point, connector_id)
    if status not in RESERVATION_ENDING_STATUSES or any_active is False:
        return 0
    return Reservation.objects.filter(
        _on_connector(connector_id, evse_id), charge_point_id=charge_point.pk, status=ReservationStatus.ACTIVE
    ).update(status=ReservationStatus.CANCELLED, updated_at=timezone.now())


# OCPP 1.6 §4.9, transition E1: a Reserved connector becomes Available when its reservation expires
# or is cancelled (a reboot that lost it too); its user presenting the id tag makes it Preparing (E2).
_RESERVATION_GONE = ("Reserved", "Available")


def _reserved_gone_available(charge_point: ChargePoint, connector_id: int) -> int:
    """The charger holds no reservation on the 1.6 connector any more: those active there end,
    ``expired`` when their expiry passed (the charger's clock expired it before the CSMS's sweep),
    else ``cancelled``. A connector the charger never showed Reserved is not asked (it may not show
    reservations: Available says nothing), nor one on connector 0 (any connector)."""
    now = timezone.now()
    return Reservation.objects.filter(
        charge_point_id=charge_point.pk, connector_id=connector_id, evse_id=None, status=ReservationStatus.ACTIVE
    ).update(
        status=Case(
            When(expiry_date__lte=now, then=Value(ReservationStatus.EXPIRED)),
            default=Value(ReservationStatus.CANCELLED),
        ),
        updated_at=now,
    )


def _on_connector(connector_id: int, evse_id: int | None) -> Q:
    """The reservations a status of the connector (2.0.1: EVSE) ends: its own (1.6 connector 0,
    2.0.1 EVSE 0: the charger's, all of them). One on 1.6 connector 0 or on no 2.0.1 EVSE (any) ends
    only with the charger."""
    if evse_id is not None:
        return Q() if evse_id == 0 else Q(evse_id=evse_id)
    return Q() if connector_id == 0 else Q(connector_id=connector_id)


def reservation_of_the_start(session: Transaction, parent_id_tag: str | None = "") -> int | None:
    """The reservationId of the charger's active reservation that ``session``, started without
    naming one (or naming one the CSMS holds none of: MicroOcpp's -1), uses: its id tag's (any
    case; a 2.0.1 token's of its type, or of none: 2.0.1 identifies a token by both, and a PIN
    code (KeyCode) ``1234`` is not the card ``1234``), or its group's (``parent_id_tag``: the
    parent of the session's tag, as its authorization answered), on its connector, or on 1.6
    connector 0 (2.0.1: on its EVSE, or on none). OCPP 1.6 §5.13: a transaction started for the reserved idTag or
    parentIdTag on the reserved connector (any connector for connector 0) ends the reservation,
    whether or not the StartTransaction names it (2.0.1 H01: a groupIdToken's, likewise). One whose
    expiry passed before the session started is gone at the charger, though active here until the
    sweep (``reservations_expire``): not this session's. None: no such reservation.

    A 2.0.1 session whose EVSE is not known yet (E03: the token authorized before the cable) uses
    only a reservation of any EVSE; one of an EVSE waits for the event that names its EVSE
    (``transaction_start._reservation_of_the_event``), which brings no authorization: its
    ``parent_id_tag`` None, the group of the session's tag as registered now, read in the same statement."""
    if not session.id_tag:
        return None
    anywhere = Q(evse_id__isnull=True, connector_id__isnull=True)  # a 2.0.1 one of no EVSE
    if session.evse_id is not None:
        where = Q(evse_id=session.evse_id) | anywhere
    elif session.ocpp_version == OcppVersion.V201:
        where = anywhere
    else:
        where = Q(evse_id__isnull=True, connector_id__in=(0, session.connector_id))
    whose = Q(id_tag__iexact=session.id_tag)
    if session.id_token_type:  # a reservation of no type (1.6, or made before types were kept): any
        whose &= Q(token_type="") | Q(token_type=session.id_token_type)
    if parent_id_tag is None:  # the registered tag's group (none: NULL, no match), any case as id_tag_find
        tag = IdTag.objects.alias(key=Lower("id_tag")).filter(key=Lower(Value(session.id_tag)))
        group = Subquery(tag.annotate(group=Lower("parent__id_tag")).values("group")[:1])
        whose |= Q(group_key=group)
    elif parent_id_tag:
        whose |= Q(parent_id_tag__iexact=parent_id_tag)
    if session.started_at is not None:
        where &= Q(expiry_date__gte=session.started_at)
    reservations = Reservation.objects.alias(group_key=Lower("parent_id_tag")).filter(
        where, whose, charge_point_id=session.charge_point_id, status=ReservationStatus.ACTIVE
    )
    return reservations.values_list("reservation_id", flat=True).first()


def reservations_expire(*, now: datetime | None = None) -> int:
    """Close every active reservation past its expiry; returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        return Reservation.objects.filter(status=ReservationStatus.ACTIVE, expiry_date__lte=now).update(
            status=ReservationStatus.EXPIRED, updated_at=now
        )


def reservation_use(session: Transaction, reservation_id: int | None) -> None:
    """The charger's reservation ``reservation_id`` is used by ``session``: its active one, else one
    the CSMS expired that had not expired when the session started (OCPP 1.6 §5.13, 2.0.1 H01: a
    start before the expiry uses it; an offline charger's start arrives late, after the sweep of
    ``reservations_expire``). On PostgreSQL one ``UPDATE ... RETURNING`` where the ORM reads, then saves."""
    if reservation_id is None:
        return
    if connection.vendor != "postgresql":
        of_id = Reservation.objects.filter(charge_point_id=session.charge_point_id, reservation_id=reservation_id)
        in_time = of_id.filter(status=ReservationStatus.EXPIRED, expiry_date__gte=session.started_at)
        reservation = of_id.filter(status=ReservationStatus.ACTIVE).first() or in_time.order_by("-pk").first()
        if reservation is None:
            return
        reservation.status = ReservationStatus.USED
        reservation.save(update_fields=["status", "updated_at"])
        session.reservation = reservation
        return
    table = connection.ops.quote_name(Reservation._meta.db_table)
    used = model_rows(  # one row: the id's active reservation (one at most), else its latest expired in time
        Reservation,
        f"UPDATE {table} r SET status = %s, updated_at = %s WHERE r.id = (SELECT o.id FROM {table} o"
        " WHERE o.charge_point_id = %s AND o.reservation_id = %s"
        " AND (o.status = %s OR (o.status = %s AND o.expiry_date >= %s))"
        " ORDER BY o.status = %s DESC, o.id DESC LIMIT 1)"
        # checked again on the row as locked: one a concurrent cancel ended is left as it ended
        f" AND r.status IN (%s, %s) RETURNING {columns_of(Reservation, 'r')}",
        [
            ReservationStatus.USED,
            timezone.now(),
            session.charge_point_id,
            reservation_id,
            ReservationStatus.ACTIVE,
            ReservationStatus.EXPIRED,
            session.started_at,
            ReservationStatus.ACTIVE,
            ReservationStatus.ACTIVE,
            ReservationStatus.EXPIRED,
        ],
    )
    if used:
        session.reservation = used[0]
