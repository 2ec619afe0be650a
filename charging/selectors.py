"""Reads of charging sessions: authorization answers, session lists and a session's meter series."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.db import connection
from django.db.models import F, Model, Q, QuerySet, Value
from django.db.models.functions import Lower
from django.utils import timezone

from chargepoints.models import ChargePoint
from charging import metering
from charging.models import (
    AuthorizationStatus,
    IdTag,
    MeterSample,
    Reservation,
    ReservationStatus,
    Transaction,
    TransactionStatus,
)
from kernel.plain_sql import array_text, bound_cursor, columns_of, instance_of

# --- Charging profiles -----------------------------------------------------------------------


def profiles_of_their_version() -> Q:
    """``InstalledChargingProfile`` rows of the OCPP version their charger speaks now (as
    ``chargepoints.selectors.connectors_of_their_version`` for connectors): a charger moved from 1.6
    to 2.0.1 or back under the same id (a firmware upgrade or downgrade) holds none of the profiles
    it accepted in the other version (its new firmware starts without them), whatever the CSMS
    recorded. A row or a charger of no known version counts in either."""
    return Q(ocpp_version="") | Q(charge_point__ocpp_version="") | Q(ocpp_version=F("charge_point__ocpp_version"))


# --- Authorization ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IdTagInfo:
    """The CSMS's authorization answer for an id tag, in either version's terms. ``registered``:
    False for a token no id tag stands for (none registered, or one of another token type), whose
    ``status`` is Invalid (1.6 has no other; 2.0.1 answers ``Unknown``, ``ocpp_gateway.v201``).
    ``registered_as``: the token type of the id tag of the same string that does not stand for it."""

    status: str
    expiry_date: datetime | None = None
    parent_id_tag: str = ""
    parent_token_type: str = ""
    registered: bool = True
    max_concurrent_sessions: int | None = None  # the tag's limit; ConcurrentTx: the limit reached
    # The limits of sessions at once of the tag and of its group (parent), as (primary key, limit,
    # the group's id tag; "" for the tag's own): each counts the sessions of that tag and its cards
    limits: tuple[tuple[int, int, str], ...] = ()
    limited_by: str = ""  # ConcurrentTx: the group whose limit was reached ("": the tag's own)
    registered_as: str = ""


# OCPP 1.6 §7.2 AuthorizationStatus, 2.0.1 AuthorizationStatusEnumType: "already involved in another
# transaction and multiple transactions are not allowed". An answer, never a tag's stored status.
CONCURRENT_TX = "ConcurrentTx"
# The sessions that take a place of a tag's limit: answered Accepted, or not answered at all.
_COUNTED_STATUSES = (AuthorizationStatus.ACCEPTED, "")


def id_tag_find(*, id_tag: str) -> IdTag | None:
    """The id tag, matched ignoring case as OCPP requires, with its parent.

    The database folds both sides (``LOWER(id_tag) = LOWER(%s)``), as the unique index on
    LOWER(id_tag) does: Python's ``str.lower`` differs from it beyond ASCII (``İ``, and every
    letter under a C locale or SQLite), and a tag registered as ``KARTE-İ1`` was then found by no
    spelling at all."""
    # LOWER(id_tag) = ... uses the unique index on LOWER(id_tag); __iexact (UPPER) would not.
    if connection.vendor == "postgresql":  # every Authorize and start: one plain statement (kernel.plain_sql)
        return id_tags_found([id_tag]).get(id_tag)
    found = IdTag.objects.select_related("parent").alias(key=Lower("id_tag"))
    return found.filter(key=Lower(Value(id_tag))).first()


def id_tag_authorize(*, id_tag: str, token_type: str = "", at: datetime | None = None) -> IdTagInfo:
    """Whether ``id_tag`` may charge now. Unknown tags are Invalid (not ``registered``); matching ignores case (OCPP).

    A tag whose own status is Accepted answers with its parent's status when the parent is
    blocked or expired (a blocked fleet account blocks its cards). A tag registered with a
    token type matches only that type.
    """
    return id_tag_info_of(id_tag_find(id_tag=id_tag), token_type=token_type, at=at or timezone.now())


def id_tags_found(id_tags: Sequence[str]) -> dict[str, IdTag]:
    """``id_tag_find`` of several tags in one statement (PostgreSQL): each as given -> the tag, with
    its parent; a tag not registered is absent. Keyed by the spelling given, not folded: Python's
    ``str.lower`` is not the database's LOWER (``id_tag_find``), and two spellings one folds alike
    may be two tags, or a tag and none, for the other."""
    sql, params = id_tags_read(id_tags)
    with bound_cursor() as cursor:
        cursor.execute(sql, params)
        return id_tags_of_rows(cursor.fetchall())


def id_tags_read(id_tags: Sequence[str]) -> tuple[str, list[Any]]:
    """``id_tags_found``'s statement and parameters (for a pipeline), its rows for ``id_tags_of_rows``.
    The tags go as given: the database folds their case as its index does (``id_tag_find``)."""
    table = connection.ops.quote_name(IdTag._meta.db_table)
    return (
        f"SELECT q.key, {columns_of(IdTag, 't')}, {columns_of(IdTag, 'p')} FROM unnest(%s::text[]) AS q(key)"
        f" JOIN {table} t ON LOWER(t.id_tag) = LOWER(q.key) LEFT JOIN {table} p ON p.id = t.parent_id",
        [array_text(list(id_tags))],
    )


def id_tags_of_rows(rows: list[tuple[Any, ...]]) -> dict[str, IdTag]:
    """``id_tags_read``'s rows: each tag as given -> the tag, with its parent (``id_tags_found``)."""
    width = len(IdTag._meta.concrete_fields)
    found = {}
    for key, *columns in rows:
        tag, parent = instance_of(IdTag, columns[:width]), columns[width:]
        tag.parent = instance_of(IdTag, parent) if parent[_pk_index(IdTag)] is not None else None
        found[key] = tag
    return found


def _pk_index(model: type[Model]) -> int:
    return model._meta.concrete_fields.index(model._meta.pk)


def id_tag_info_of(tag: IdTag | None, *, token_type: str = "", at: datetime) -> IdTagInfo:
    """The answer ``id_tag_authorize`` gives at ``at`` for ``tag`` as ``id_tag_find`` returned it
    (None: not registered), presented with ``token_type`` ("" when the charger sent none)."""
    if tag is None:
        return IdTagInfo(status=AuthorizationStatus.INVALID, registered=False)
    if tag.token_type and token_type and tag.token_type != token_type:  # a 2.0.1 idToken: value and type
        return IdTagInfo(status=AuthorizationStatus.INVALID, registered=False, registered_as=tag.token_type)
    status = _effective_status(tag, at)
    if status == AuthorizationStatus.ACCEPTED and tag.parent is not None:
        status = _effective_status(tag.parent, at)
    parent = tag.parent
    return IdTagInfo(
        status=status,
        # A card is no longer valid than its group (the charger's authorization cache keeps it until then)
        expiry_date=min(
            (expiry for expiry in (tag.expiry_date, parent.expiry_date if parent else None) if expiry is not None),
            default=None,
        ),
        parent_id_tag=parent.id_tag if parent else "",
        parent_token_type=parent.token_type if parent else "",
        max_concurrent_sessions=tag.max_concurrent_sessions,
        limits=tuple(
            (row.pk, row.max_concurrent_sessions, group)
            for row, group in ((tag, ""), (parent, parent.id_tag if parent else ""))
            if row is not None and row.max_concurrent_sessions is not None
        ),
    )


def id_tag_answered_status(*, tag: IdTag) -> str:
    """The status a charger presenting ``tag`` is answered now, a session elsewhere aside
    (ConcurrentTx): its own, its group's Blocked, Expired or Invalid, Expired past its or its
    group's expiry date. What the API and admin show beside the stored ``status``, which says
    Accepted for a card chargers are refused. ``tag.parent`` as read with it: no statement."""
    return id_tag_info_of(tag, at=timezone.now()).status


def id_tag_infos_of(tag: IdTag | None, *, token_type: str = "", at: datetime) -> tuple[IdTagInfo, IdTagInfo]:
    """``id_tag_info_of`` now (the answer the charger gets: the tag as it stands) and at ``at``,
    when the charger took the tag (a start's or event's time, judged: ``chargepoints.clock``),
    which decides the session's ``id_tag_status``: an offline charger's queued start on a tag
    valid then but expired before its delivery was authorized (not ``unauthorized_token``).
    Only an expiry date depends on the time: the same info twice, without a second look, unless
    the tag is Expired now and ``at`` is earlier. A status other than an expiry (Blocked, Invalid)
    is the tag's as it stands: the CSMS keeps no history of it."""
    now_info = id_tag_info_of(tag, token_type=token_type, at=timezone.now())
    if now_info.status != AuthorizationStatus.EXPIRED:
        return now_info, now_info
    return now_info, id_tag_info_of(tag, token_type=token_type, at=at)


def id_tag_authorize_at(*, id_tag: str, token_type: str = "", at: datetime) -> tuple[IdTagInfo, IdTagInfo]:
    """``id_tag_infos_of`` of ``id_tag`` (one statement, as ``id_tag_authorize``)."""
    return id_tag_infos_of(id_tag_find(id_tag=id_tag), token_type=token_type, at=at)


def id_tag_concurrency_checked(
    *,
    info: IdTagInfo,
    id_tag: str,
    charge_point_id: str,
    connector_id: int | None = None,
    evse_id: int | None = None,
    ocpp_transaction_id: str | None = None,
    start_key: str = "",
    started_at: datetime | None = None,
    placeless: bool = False,
) -> IdTagInfo:
    """``info`` (Accepted) answered ``ConcurrentTx`` when its tag already has its
    ``max_concurrent_sessions`` open elsewhere, or its group (its parent, a fleet account) has the
    group's; otherwise ``info`` unchanged, without a statement for a tag with no limit and no group
    with one (most) or not Accepted. A tag's limit counts its own sessions and its cards' (a group's
    limit bounds the sessions of all its cards together: set on the group, which no charger
    presents, it would otherwise bound nothing).

    ``started_at``: a start's time (judged, ``chargepoints.clock``): only sessions that began by
    then count. A start an offline charger queued hours ago is no second session of one that
    began since (its card was free when it began: answered Accepted, not flagged). A session the
    CSMS recorded ``metering.LONG_SESSION`` (7 days) ago or more and still open counts no more: its
    stop was lost (no charging session lasts so long), and it would hold the card's place for ever.

    Elsewhere: an Authorize (neither connector, EVSE nor transaction given) counts the sessions
    open on other chargers, so that the card that started a session may still stop it where it
    charges (a charger that authorizes the stop tap). A start counts every session open but those
    on its own connector (1.6) or EVSE (2.0.1) of its charger and its own transaction or
    ``start_key`` (as stored): the one a new start supersedes, or the session a later event or a
    replay of it belongs to. A 1.6 start on connector 0 (none: the charger as a whole) has only
    its own start: the card's session on a connector of the same charger counts. ``placeless``: a
    start yet to come whose charger chooses its connector or EVSE (a remote start naming none): every
    open session counts, those on its own charger too (the charger starts it on another connector,
    so the card's session there is a second one). Matching ignores case (``id_tag``, as presented,
    is the tag ``info`` is of: its limits name the rows).
    One statement per limit (the sessions' index on LOWER(id_tag)), at most its limit rows.
    """
    if not info.limits or info.status != AuthorizationStatus.ACCEPTED:
        return info
    here = Q(charge_point__charge_point_id=charge_point_id)
    # 2.0.1 numbers connectors within their EVSE: its place is the EVSE; 1.6's is the connector.
    places = [Q(evse_id=evse_id)] if evse_id is not None else []
    places += [Q(connector_id=connector_id)] if connector_id is not None and evse_id is None else []
    places += [Q(ocpp_transaction_id=ocpp_transaction_id)] if ocpp_transaction_id else []
    places += [Q(start_key=start_key)] if start_key else []
    if places:
        place = places[0]
        for other in places[1:]:
            place |= other
        here &= place
    for pk, limit, group in info.limits:
        # The tag's sessions and its cards' (a group's), as their rows spell them, any case
        tags = IdTag.objects.filter(Q(pk=pk) | Q(parent_id=pk)).annotate(folded=Lower("id_tag")).values("folded")
        open_sessions = Transaction.objects.alias(key=Lower("id_tag")).filter(
            key__in=tags, status=TransactionStatus.ACTIVE, id_tag_status__in=_COUNTED_STATUSES
        )
        # A session recorded LONG_SESSION ago and still open lost its stop (none lasts so long): no place
        open_sessions = open_sessions.filter(created_at__gt=timezone.now() - metering.LONG_SESSION)
        if started_at is not None:
            open_sessions = open_sessions.filter(started_at__lte=started_at)
        elsewhere = open_sessions if placeless else open_sessions.exclude(here)
        if len(elsewhere.values_list("pk", flat=True)[:limit]) >= limit:
            return replace(info, status=CONCURRENT_TX, max_concurrent_sessions=limit, limited_by=group)
    return info


def _effective_status(tag: IdTag, at: datetime) -> str:
    if tag.status == AuthorizationStatus.ACCEPTED and tag.expiry_date is not None and tag.expiry_date <= at:
        return AuthorizationStatus.EXPIRED
    return tag.status


# --- Local authorization lists ----------------------------------------------------------------


def local_lists_of_their_version() -> Q:
    """``LocalAuthList`` rows of the OCPP version their charger speaks now (as
    ``profiles_of_their_version`` for charging profiles): a charger moved from 1.6 to 2.0.1 or back
    under the same id (a firmware upgrade or downgrade) holds neither the list version nor the
    entries it held in the other version. A row or a charger of no known version counts in either."""
    return Q(ocpp_version="") | Q(charge_point__ocpp_version="") | Q(ocpp_version=F("charge_point__ocpp_version"))


# A 2.0.1 entry's key: its idToken, a space, its type in parentheses (an idToken has no whitespace:
# ``commands.body_rules``; a type is one of IdTokenEnumType's, so no 1.6 idTag reads as typed)
_TYPED_ENTRY = re.compile(
    r"(.*) \((ISO14443|ISO15693|eMAID|MacAddress|Central|KeyCode|Local|NoAuthorization)\)", re.DOTALL
)
_Status = TypeVar("_Status")


def local_list_key(id_tag: str, token_type: str = "") -> str:
    """A local list entry's key in ``LocalAuthList.entries``: a 1.6 idTag as it is, a 2.0.1 idToken
    with its type, ``"ABC (ISO14443)"``. OCPP 2.0.1 identifies a token by both (IdTokenType): a
    card's UID and a PIN code (KeyCode) of the same characters are two entries of a list."""
    return f"{id_tag} ({token_type})" if token_type else id_tag


def local_list_key_parts(key: str) -> tuple[str, str]:
    """``local_list_key``'s id tag and token type ("": none, a 1.6 entry or one recorded before the
    CSMS kept 2.0.1 types)."""
    typed = _TYPED_ENTRY.fullmatch(key)
    return (typed[1], typed[2]) if typed else (key, "")


def local_list_entries_applied(
    current: Mapping[str, _Status], update: Mapping[str, _Status | None]
) -> dict[str, _Status]:
    """The entries ``current`` (keyed by ``local_list_key``) after a Differential ``update`` (the same
    keys; None removes the entry). An entry replaces, or removes, those of its token (matched
    ignoring case: IdToken is case-insensitive) of its type and those of no type (the type not
    known: it may be this one); one of no type (1.6) those of any type. One look-up per entry, not a
    scan of the list (a list of 20 000 tags took 23 s of CPU)."""
    entries = dict(current)
    held: dict[str, list[tuple[str, str]]] = {}  # lower(id tag) -> its entries' keys and types
    for key in entries:
        id_tag, token_type = local_list_key_parts(key)
        held.setdefault(id_tag.lower(), []).append((key, token_type))
    for key, status in update.items():
        id_tag, token_type = local_list_key_parts(key)
        kept = []
        for old_key, old_type in held.get(id_tag.lower(), ()):
            if token_type and old_type and old_type != token_type:
                kept.append((old_key, old_type))
            else:
                del entries[old_key]
        if status is not None:
            entries[key] = status
            kept.append((key, token_type))
        held[id_tag.lower()] = kept
    return entries


# --- Sessions --------------------------------------------------------------------------------


def transaction_list(
    *,
    charge_point_id: str | None = None,
    status: str | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
) -> QuerySet[Transaction]:
    transactions = Transaction.objects.select_related("charge_point", "reservation", "billing_record")
    if charge_point_id is not None:
        transactions = transactions.filter(charge_point__charge_point_id=charge_point_id)
    if status is not None:
        transactions = transactions.filter(status=status)
    if started_after is not None:
        transactions = transactions.filter(started_at__gte=started_after)
    if started_before is not None:
        transactions = transactions.filter(started_at__lt=started_before)
    return transactions


def active_transaction_list(*, limit: int = 20) -> QuerySet[Transaction]:
    """Open sessions, the latest started first, with their charger (one query)."""
    return (
        Transaction.objects.filter(status=TransactionStatus.ACTIVE)
        .select_related("charge_point")
        .order_by("-started_at")[:limit]
    )


def transaction_active_count() -> int:
    """The sessions open now, on every charger (the dashboard's "charging now")."""
    return Transaction.objects.filter(status=TransactionStatus.ACTIVE).count()


def charge_point_recent_transaction_list(*, charge_point: ChargePoint, limit: int = 10) -> QuerySet[Transaction]:
    """The charger's latest sessions, the latest started first."""
    return Transaction.objects.filter(charge_point=charge_point).order_by("-started_at", "-id")[:limit]


def charge_point_open_transaction(*, charge_point: ChargePoint) -> Transaction | None:
    """The charger's latest session still open: what a remote stop ends unless told otherwise."""
    return (
        Transaction.objects.filter(charge_point=charge_point, status=TransactionStatus.ACTIVE)
        .order_by("-started_at", "-id")
        .first()
    )


# --- Meter charts (admin reads) ----------------------------------------------------------------

POWER_MEASURAND = "Power.Active.Import"
# What ``metering.Sample.of`` reads of a row (its text, unit and multiplier give its resolution).
SAMPLE_FIELDS = ("timestamp", "measurand", "value", "phase", "context", "location", "raw_value", "unit", "multiplier")


@dataclass(frozen=True)
class MeterSeries:
    """What a session's meter said over time, in totals (phases summed as for billing)."""

    energy_wh: list[tuple[datetime, Decimal]]  # delivered since the meter start
    power_w: list[tuple[datetime, Decimal]]


def transaction_meter_series(*, transaction: Transaction) -> MeterSeries:
    """Energy delivered and active power of a session, in time order, from its stored samples.

    Energy is each register total minus the meter start (the first reading without one), with
    the meter start itself as the first point. Power follows the register's rules: a reading
    without a phase is the total, otherwise the line phases of one instant add up; outlet wins.
    """
    # Tuples in the order of Sample's fields, not model instances: a week's session sampled every
    # 15 s (80,000 energy and power rows) took 3.8 s to chart, most of it building the instances.
    order = tuple(field.name for field in fields(metering.Sample))
    measurand = order.index("measurand")
    rows = list(
        MeterSample.objects.filter(
            transaction=transaction, measurand__in=[metering.ENERGY_REGISTER, POWER_MEASURAND], value__isnull=False
        ).values_list(*order)
    )
    samples = [metering.Sample(*row) for row in rows if row[measurand] == metering.ENERGY_REGISTER]
    readings = metering.register_readings(samples)
    energy: list[tuple[datetime, Decimal]] = []
    if readings:
        baseline = transaction.meter_start_wh if transaction.meter_start_wh is not None else readings[0].wh
        if transaction.meter_start_wh is not None:
            energy.append((transaction.started_at, Decimal(0)))
        energy += [(reading.at, reading.wh - baseline) for reading in readings]
    # register_readings totals any measurand by phase and location once it is labelled as the register.
    power_samples = (
        metering.Sample(**{**dict(zip(order, row, strict=True)), "measurand": metering.ENERGY_REGISTER})
        for row in rows
        if row[measurand] == POWER_MEASURAND
    )
    power = [(reading.at, reading.wh) for reading in metering.register_readings(power_samples)]
    return MeterSeries(energy_wh=energy, power_w=power)


def transactions_open_exist(*, charge_point: ChargePoint, connector_id: int, evse_id: int | None) -> bool:
    """Whether a session is open on the connector (a 2.0.1 EVSE): most statuses have none to follow.
    One plain statement on PostgreSQL (every StatusNotification asks)."""
    if connection.vendor != "postgresql":
        where = Q(evse_id=evse_id) if evse_id is not None else Q(connector_id=connector_id, evse_id__isnull=True)
        return Transaction.objects.filter(where, charge_point=charge_point, status=TransactionStatus.ACTIVE).exists()
    quote = connection.ops.quote_name
    on_connector = "evse_id = %s" if evse_id is not None else "connector_id = %s AND evse_id IS NULL"
    with bound_cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {quote(Transaction._meta.db_table)} WHERE charge_point_id = %s AND status = %s"
            f" AND {on_connector} LIMIT 1",
            [charge_point.pk, TransactionStatus.ACTIVE, evse_id if evse_id is not None else connector_id],
        )
        return cursor.fetchone() is not None


def remote_start_token_warnings(
    *,
    id_tag: str,
    token_type: str,
    charge_point_id: str,
    connector_id: int | None = None,
    evse_id: int | None = None,
) -> list[str]:
    """The remote start guard: the CSMS sends a remote start for any token, but says when it would
    not authorize that token itself (unknown, Blocked, Expired, or ConcurrentTx: at its
    ``max_concurrent_sessions`` with sessions open other than where it starts, charger
    ``charge_point_id``'s 1.6 connector or 2.0.1 EVSE, or this charger when none is named, as
    ``id_tag_concurrency_checked`` counts): the charger is answered so at the session's start (OCPP
    1.6 §5.11: the Central System verifies the idTag of every start) and stops it where configured
    to, and a session it keeps is flagged ``unauthorized_token`` and billed for review. Empty for an
    Accepted token, and for a 2.0.1 ``NoAuthorization`` one (a session started without
    authorization is not flagged)."""
    if token_type == "NoAuthorization":
        return []
    info = id_tag_concurrency_checked(
        info=id_tag_authorize(id_tag=id_tag, token_type=token_type),
        id_tag=id_tag,
        charge_point_id=charge_point_id,
        connector_id=connector_id,
        evse_id=evse_id,
        placeless=connector_id is None and evse_id is None,
    )
    return _status_warnings(
        id_tag, info, f"the charger is answered so when the session starts, {_STOPS}", token_type=token_type
    )


def reservation_token_warnings(*, id_tag: str, token_type: str) -> list[str]:
    """The reservation guard (1.6 ReserveNow, 2.0.1 H01): as ``remote_start_token_warnings``, for
    the token a reservation is made for, and the session it starts on the reservation."""
    return _token_warnings(
        id_tag, token_type, f"the charger is answered so when a session starts on the reservation, {_STOPS}"
    )


# What a start answered other than Accepted leads to (the warnings of remote starts and reservations).
_STOPS = (
    "and may stop it (1.6 StopTransactionOnInvalidId, 2.0.1 StopTxOnInvalidId); a session it keeps is flagged"
    " unauthorized_token"
)


def remote_stop_warnings(*, charge_point: ChargePoint, transaction_id: int) -> list[str]:
    """The remote stop guard (1.6 RemoteStopTransaction, §5.12): the CSMS sends a stop for any
    transaction id, but says when it knows no active session of ``charge_point`` by that id (the
    charger answers Rejected for a transaction it does not have): one it does not know, another
    charger's, or one that has ended. A 1.6 session's id is ours (``Transaction.ocpp_id``): found
    by its primary key, or among the charger's own sessions (indexed both: not a scan of all)."""
    return _stop_warnings(charge_point, transaction_id, _sessions_named_16(charge_point, transaction_id))


def _sessions_named_16(charge_point: ChargePoint, transaction_id: int) -> QuerySet[Transaction]:
    """The 1.6 sessions ``transaction_id`` may name: ours (``Transaction.ocpp_id``), found by its
    primary key, or one of the charger's own by the id it gave (indexed both: not a scan of all)."""
    named = Q(pk=transaction_id, ocpp_transaction_id="") | Q(
        charge_point=charge_point, ocpp_transaction_id=str(transaction_id)
    )
    return Transaction.objects.filter(named, ocpp_version="1.6")


def request_stop_warnings(*, charge_point: ChargePoint, transaction_id: str) -> list[str]:
    """The remote stop guard of 2.0.1 RequestStopTransaction (F03), as ``remote_stop_warnings``: the
    station names its transactions itself, so the id is looked for among its own sessions only."""
    sessions = Transaction.objects.filter(
        charge_point=charge_point, ocpp_version="2.0.1", ocpp_transaction_id=transaction_id
    )
    return _stop_warnings(charge_point, transaction_id, sessions)


def tx_profile_warnings(
    *, charge_point: ChargePoint, ocpp_version: str, connector_id: int, transaction_id: int | str | None
) -> list[str]:
    """The TxProfile guard (SetChargingProfile of purpose TxProfile on connector, or 2.0.1 EVSE,
    ``connector_id``): the charger rejects a TxProfile while no transaction is active there (1.6
    §5.16, 2.0.1 K01.FR.09), or for a transaction it does not have open there (2.0.1 K01.FR.33).
    The CSMS sends it anyway (its view may lag the charger's), but says when it knows no active
    session of ``charge_point`` there: none on the connector (a 1.6 one without ``transaction_id``),
    ``transaction_id`` on another connector, another charger's, ended, or unknown."""
    where, place = ("evse_id", "EVSE") if ocpp_version == "2.0.1" else ("connector_id", "connector")
    identity = charge_point.charge_point_id
    if transaction_id is None:
        on_it = {where: connector_id, "status": TransactionStatus.ACTIVE, "ocpp_version": ocpp_version}
        if Transaction.objects.filter(charge_point=charge_point, **on_it).exists():
            return []
        return [
            f"No session is active on {place} {connector_id} of {identity} for the CSMS; the charger"
            " rejects a TxProfile while no transaction runs there."
        ]
    if ocpp_version == "2.0.1":
        sessions = Transaction.objects.filter(
            charge_point=charge_point, ocpp_version="2.0.1", ocpp_transaction_id=str(transaction_id)
        )
    else:
        sessions = _sessions_named_16(charge_point, int(transaction_id))
    places = set(
        sessions.filter(charge_point=charge_point, status=TransactionStatus.ACTIVE).values_list(where, flat=True)
    )
    if not places:
        return _stop_warnings(charge_point, transaction_id, sessions, "rejects a TxProfile for a transaction")
    if connector_id in places or None in places:  # None: a session of no known place
        return []
    others = ", ".join(map(str, sorted(places)))
    return [
        f"Transaction {transaction_id} is on {place} {others} of {identity}, not {connector_id}; the charger"
        f" rejects a TxProfile for a transaction not on its {place}."
    ]


def _stop_warnings(
    charge_point: ChargePoint,
    transaction_id: object,
    sessions: QuerySet[Transaction],
    refused: str = "answers Rejected",
) -> list[str]:
    """The warning of a remote stop of ``transaction_id`` (or, ``refused``, of another command the
    charger refuses for a transaction it does not have open), which names ``sessions``: none when
    one of them is an active session of ``charge_point``."""
    found = sessions.values_list("charge_point_id", "charge_point__charge_point_id", "status")
    ours = [status for owner, _, status in found if owner == charge_point.pk]
    if TransactionStatus.ACTIVE in ours:
        return []
    identity = charge_point.charge_point_id
    if ours:
        verdict = f"of {identity} has ended for the CSMS"
    elif others := sorted({other for owner, other, _ in found if owner != charge_point.pk}):
        verdict = f"is a session of {', '.join(others)}, not of {identity}"
    else:
        verdict = "is not known to the CSMS"
    return [f"Transaction {transaction_id} {verdict}; the charger {refused} if it has no such transaction open."]


def cancel_reservation_warnings(*, charge_point: ChargePoint, reservation_id: int) -> list[str]:
    """The cancel guard (1.6 CancelReservation §5.2, 2.0.1 H02): the CSMS sends a cancel for any
    reservation id, but says when it knows no active reservation of ``charge_point`` by that id (the
    charger answers Rejected for one it does not hold): one it never recorded, or one that has
    ended, and how (the session that used it, its expiry, a cancel, the charger's refusal)."""
    records = dict(
        Reservation.objects.filter(charge_point=charge_point, reservation_id=reservation_id).values_list("pk", "status")
    )
    if ReservationStatus.ACTIVE in records.values():
        return []
    if not records:
        verdict = "is not known to the CSMS"
    else:  # the latest of the id's records: each reuse of an ended id is a new one
        latest = max(records)
        verdict = f"of {charge_point.charge_point_id} has ended for the CSMS ({_ENDED_HOW[records[latest]]}"
        if records[latest] == ReservationStatus.USED:
            session = Transaction.objects.filter(reservation_id=latest).order_by("-pk").first()
            verdict += f" by transaction {session.ocpp_id}" if session is not None else ""
        verdict += ")"
    return [f"Reservation {reservation_id} {verdict}; the charger answers Rejected if it holds no such reservation."]


_ENDED_HOW: dict[str, str] = {
    ReservationStatus.USED: "used",
    ReservationStatus.EXPIRED: "expired",
    ReservationStatus.CANCELLED: "cancelled",
    ReservationStatus.REFUSED: "refused by the charger",
}


def _token_warnings(id_tag: str, token_type: str, consequence: str) -> list[str]:
    if token_type == "NoAuthorization":
        return []
    info = id_tag_authorize(id_tag=id_tag, token_type=token_type)
    return _status_warnings(id_tag, info, consequence, token_type=token_type)


def _status_warnings(id_tag: str, info: IdTagInfo, consequence: str, *, token_type: str = "") -> list[str]:
    status = info.status
    if status == AuthorizationStatus.ACCEPTED:
        return []
    # A registered tag stored Invalid is known: only a token none stands for is not (2.0.1 answers it Unknown)
    verdict = f"is {status}" if info.registered else "is not known to the CSMS (1.6 Invalid, 2.0.1 Unknown)"
    if info.registered_as:  # 2.0.1 C01, IdTokenType: a token is its value and its type; a PIN's is Invalid (C04)
        unknown = "Invalid" if token_type == "KeyCode" else "Unknown"
        verdict = (
            f"of type {token_type} is not known to the CSMS (2.0.1 {unknown}): it holds {id_tag!r} as a token of"
            f" type {info.registered_as} only, and an idToken is its value and its type (OCPP 2.0.1 C01)"
        )
    if status == CONCURRENT_TX:
        whose = f"its group {info.limited_by!r}'s" if info.limited_by else "its"
        verdict += f" ({whose} {info.max_concurrent_sessions} session(s) at once are open elsewhere)"
    return [f"Id tag {id_tag!r} {verdict}; {consequence}."]
