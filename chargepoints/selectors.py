"""Reads of the fleet."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone
from ocpp.messages import MessageType

from chargepoints import metering
from chargepoints.models import (
    AuthorizationStatus,
    ChargePoint,
    ChargerModelProfile,
    Connector,
    Heartbeat,
    IdTag,
    LifecycleState,
    MessageDirection,
    MeterSample,
    OcppMessage,
    Strictness,
    Transaction,
    TransactionStatus,
)
from chargepoints.passwords import charger_password_matches
from kernel.plain_sql import columns_of, model_rows


def charge_point_get(*, charge_point_id: str) -> ChargePoint:
    """The charge point, or ``ChargePoint.DoesNotExist``."""
    return ChargePoint.objects.get(charge_point_id=charge_point_id)


def charge_point_may_connect(
    *, charge_point_id: str, password: str | None, require_password: bool = False, may_hash: bool = True
) -> bool:
    """Whether a handshake for this id is allowed: known, not decommissioned, right password.

    With ``require_password`` a charger without a password set is refused too. Without
    ``may_hash``, ``passwords.PasswordNeedsHashing`` is raised when the password would need a hash
    (it was not checked against the stored hash in this process before).
    """
    return not charge_point_refusal(
        charge_point_id=charge_point_id, password=password, require_password=require_password, may_hash=may_hash
    )


def charge_point_refusal(
    *, charge_point_id: str, password: str | None, require_password: bool = False, may_hash: bool = True
) -> str:
    """Why a handshake for this id is refused, for the log ("" when it is allowed): "unknown",
    "decommissioned", "no password presented", "wrong password" or "no password set (required)".
    Without ``may_hash``, ``passwords.PasswordNeedsHashing`` is raised as in ``charge_point_may_connect``."""
    charge_point = (
        ChargePoint.objects.filter(charge_point_id=charge_point_id).only("password_hash", "lifecycle_state").first()
    )
    if charge_point is None:
        return "unknown"
    if charge_point.lifecycle_state == LifecycleState.DECOMMISSIONED:
        return "decommissioned"
    if not charge_point.password_hash:
        return "no password set (required)" if require_password else ""
    if password is None:
        return "no password presented"
    matches = charger_password_matches(
        charge_point_id=charge_point_id, password=password, password_hash=charge_point.password_hash, may_hash=may_hash
    )
    return "" if matches else "wrong password"


def connector_list(*, charge_point: ChargePoint) -> QuerySet[Connector]:
    return Connector.objects.filter(charge_point=charge_point).order_by("evse_id", "connector_id")


@dataclass(frozen=True)
class IdTagInfo:
    """The CSMS's authorization answer for an id tag, in either version's terms."""

    status: str
    expiry_date: datetime | None = None
    parent_id_tag: str = ""
    parent_token_type: str = ""


def id_tag_find(*, id_tag: str) -> IdTag | None:
    """The id tag, matched ignoring case as OCPP requires, with its parent."""
    # LOWER(id_tag) = ... uses the unique index on LOWER(id_tag); __iexact (UPPER) would not.
    if connection.vendor == "postgresql":  # every Authorize and start: one plain statement (kernel.plain_sql)
        table = connection.ops.quote_name(IdTag._meta.db_table)
        found = model_rows(
            IdTag,
            f"SELECT {columns_of(IdTag, 't')}, {columns_of(IdTag, 'p')} FROM {table} t"
            f" LEFT JOIN {table} p ON p.id = t.parent_id WHERE LOWER(t.id_tag) = %s LIMIT 1",
            [id_tag.lower()],
            related=("parent", IdTag),
        )
        return found[0] if found else None
    return IdTag.objects.select_related("parent").alias(key=Lower("id_tag")).filter(key=id_tag.lower()).first()


def id_tag_authorize(*, id_tag: str, token_type: str = "", at: datetime | None = None) -> IdTagInfo:
    """Whether ``id_tag`` may charge now. Unknown tags are Invalid; matching ignores case (OCPP).

    A tag whose own status is Accepted answers with its parent's status when the parent is
    blocked or expired (a blocked fleet account blocks its cards). A tag registered with a
    token type matches only that type.
    """
    at = at or timezone.now()
    tag = id_tag_find(id_tag=id_tag)
    if tag is None or (tag.token_type and token_type and tag.token_type != token_type):
        return IdTagInfo(status=AuthorizationStatus.INVALID)
    status = _effective_status(tag, at)
    if status == AuthorizationStatus.ACCEPTED and tag.parent is not None:
        status = _effective_status(tag.parent, at)
    parent = tag.parent
    return IdTagInfo(
        status=status,
        expiry_date=tag.expiry_date,
        parent_id_tag=parent.id_tag if parent else "",
        parent_token_type=parent.token_type if parent else "",
    )


def _effective_status(tag: IdTag, at: datetime) -> str:
    if tag.status == AuthorizationStatus.ACCEPTED and tag.expiry_date is not None and tag.expiry_date <= at:
        return AuthorizationStatus.EXPIRED
    return tag.status


def transaction_list(
    *,
    charge_point_id: str | None = None,
    status: str | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
) -> QuerySet[Transaction]:
    transactions = Transaction.objects.select_related("charge_point", "reservation", "billing_record")
    if charge_point_id:
        transactions = transactions.filter(charge_point__charge_point_id=charge_point_id)
    if status:
        transactions = transactions.filter(status=status)
    if started_after:
        transactions = transactions.filter(started_at__gte=started_after)
    if started_before:
        transactions = transactions.filter(started_at__lt=started_before)
    return transactions


# --- The operator dashboard ------------------------------------------------------------------

CONNECTOR_FAULTED = "Faulted"
# 1.6 reports "NoError"; 2.0.1 and a charger that never reported leave it blank.
CONNECTOR_NO_ERROR = ("", "NoError")


@dataclass(frozen=True)
class FleetSummary:
    """What the fleet is doing now, in the four numbers an operator looks at first."""

    online: int
    offline: int
    faulted_connectors: int
    charging_now: int


def fleet_summary() -> FleetSummary:
    """Counts over the chargers in service (decommissioned ones are retired, not offline), in three queries."""
    in_service = ChargePoint.objects.exclude(lifecycle_state=LifecycleState.DECOMMISSIONED)
    chargers = in_service.aggregate(
        online=Count("pk", filter=Q(connected=True)), offline=Count("pk", filter=Q(connected=False))
    )
    faulted = Connector.objects.filter(
        Q(status=CONNECTOR_FAULTED) | ~Q(error_code__in=CONNECTOR_NO_ERROR),
        charge_point__in=in_service,
    ).count()
    charging = Transaction.objects.filter(status=TransactionStatus.ACTIVE).count()
    return FleetSummary(
        online=chargers["online"], offline=chargers["offline"], faulted_connectors=faulted, charging_now=charging
    )


def recently_offline_charge_point_list(*, since: datetime, limit: int = 20) -> QuerySet[ChargePoint]:
    """Chargers in service that went offline at or after ``since``, the latest first."""
    return (
        ChargePoint.objects.exclude(lifecycle_state=LifecycleState.DECOMMISSIONED)
        .filter(connected=False, offline_since__gte=since)
        .order_by("-offline_since")[:limit]
    )


def active_transaction_list(*, limit: int = 20) -> QuerySet[Transaction]:
    """Open sessions, the latest started first, with their charger (one query)."""
    return (
        Transaction.objects.filter(status=TransactionStatus.ACTIVE)
        .select_related("charge_point")
        .order_by("-started_at")[:limit]
    )


# --- The OCPP message log and meter charts (admin reads) ----------------------------------------

# An answer further than this from its CALL is another exchange reusing the id (counters restart at boot).
OCPP_ANSWER_WINDOW = timedelta(minutes=10)
POWER_MEASURAND = "Power.Active.Import"
OCPP_ANSWER_TYPES = (MessageType.CallResult, MessageType.CallError)
_OTHER_DIRECTION = {
    MessageDirection.INBOUND: MessageDirection.OUTBOUND,
    MessageDirection.OUTBOUND: MessageDirection.INBOUND,
}


def ocpp_message_pair(*, message: OcppMessage) -> OcppMessage | None:
    """The other half of an exchange: a CALL's CALLRESULT/CALLERROR, or an answer's CALL.

    Same charger, same unique id, the other direction, the nearest in time on the right side
    (a unique id is only unique while its CALL is open).
    """
    if not message.unique_id or message.message_type not in (MessageType.Call, *OCPP_ANSWER_TYPES):
        return None
    others = OcppMessage.objects.select_related("charge_point").filter(
        charge_point_id=message.charge_point_id,
        unique_id=message.unique_id,
        direction=_OTHER_DIRECTION.get(message.direction, ""),
    )
    if message.message_type == MessageType.Call:
        return (
            others.filter(
                message_type__in=OCPP_ANSWER_TYPES,
                created_at__gte=message.created_at,
                created_at__lte=message.created_at + OCPP_ANSWER_WINDOW,
            )
            .order_by("created_at", "id")
            .first()
        )
    return (
        others.filter(
            message_type=MessageType.Call,
            created_at__lte=message.created_at,
            created_at__gte=message.created_at - OCPP_ANSWER_WINDOW,
        )
        .order_by("-created_at", "-id")
        .first()
    )


def ocpp_call_answers(*, messages: Sequence[OcppMessage]) -> dict[int, OcppMessage]:
    """The answer of every CALL among ``messages``, by the CALL's pk, in one query (a changelist page)."""
    calls = [m for m in messages if m.message_type == MessageType.Call and m.unique_id]
    if not calls:
        return {}
    candidates = OcppMessage.objects.filter(
        message_type__in=OCPP_ANSWER_TYPES,
        charge_point_id__in={call.charge_point_id for call in calls},
        unique_id__in={call.unique_id for call in calls},
        created_at__gte=min(call.created_at for call in calls),
        created_at__lte=max(call.created_at for call in calls) + OCPP_ANSWER_WINDOW,
    ).order_by("created_at", "id")
    by_exchange: dict[tuple[int, str, str], list[OcppMessage]] = defaultdict(list)
    for answer in candidates:
        by_exchange[(answer.charge_point_id, answer.unique_id, answer.direction)].append(answer)
    answers: dict[int, OcppMessage] = {}
    for call in calls:
        side = by_exchange[(call.charge_point_id, call.unique_id, _OTHER_DIRECTION.get(call.direction, ""))]
        answer = next(
            (a for a in side if call.created_at <= a.created_at <= call.created_at + OCPP_ANSWER_WINDOW), None
        )
        if answer is not None:
            answers[call.pk] = answer
    return answers


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
    rows = MeterSample.objects.filter(
        transaction=transaction, measurand__in=[metering.ENERGY_REGISTER, POWER_MEASURAND], value__isnull=False
    ).only("timestamp", "measurand", "value", "phase", "context", "location")
    samples = [metering.Sample.of(row) for row in rows]
    readings = metering.register_readings(samples)
    energy: list[tuple[datetime, Decimal]] = []
    if readings:
        baseline = transaction.meter_start_wh if transaction.meter_start_wh is not None else readings[0].wh
        if transaction.meter_start_wh is not None:
            energy.append((transaction.started_at, Decimal(0)))
        energy += [(reading.at, reading.wh - baseline) for reading in readings]
    # register_readings totals any measurand by phase and location once it is labelled as the register.
    power_samples = (replace(s, measurand=metering.ENERGY_REGISTER) for s in samples if s.measurand == POWER_MEASURAND)
    power = [(reading.at, reading.wh) for reading in metering.register_readings(power_samples)]
    return MeterSeries(energy_wh=energy, power_w=power)


# --- One charger's recent activity (its admin page) -------------------------------------------


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


def charge_point_recent_message_list(*, charge_point: ChargePoint, limit: int = 20) -> QuerySet[OcppMessage]:
    """The charger's latest OCPP frames (the charger/-created_at index), without their payloads."""
    return (
        OcppMessage.objects.filter(charge_point=charge_point)
        .only("id", "direction", "message_type", "action", "unique_id", "created_at")
        .order_by("-created_at", "-id")[:limit]
    )


def charge_point_recent_heartbeat_list(*, charge_point: ChargePoint, limit: int = 20) -> QuerySet[Heartbeat]:
    return Heartbeat.objects.filter(charge_point=charge_point).order_by("-received_at")[:limit]


def charge_point_heartbeat_count(*, charge_point: ChargePoint, since: datetime) -> int:
    return Heartbeat.objects.filter(charge_point=charge_point, received_at__gte=since).count()


@dataclass(frozen=True)
class ChargerProfile:
    """How the gateway treats one charger's messages (a ``ChargerModelProfile``, or the default)."""

    lenient: bool = False
    quirks: tuple[str, ...] = ()
    id_tag_suffix: str = ""


STRICT_PROFILE = ChargerProfile()


def charger_profile_for(*, vendor: str, model: str, firmware_version: str = "") -> ChargerProfile:
    """The most specific profile matching a charger model: a named model before the vendor's
    catch-all, then the longest firmware prefix. No match: strict, no quirks."""
    if not vendor:
        return STRICT_PROFILE
    candidates = ChargerModelProfile.objects.filter(Q(model="") | Q(model__iexact=model), vendor__iexact=vendor).only(
        "model", "firmware_version_prefix", "strictness", "quirks", "id_tag_suffix"
    )
    matching = [row for row in candidates if firmware_version.startswith(row.firmware_version_prefix)]
    if not matching:
        return STRICT_PROFILE
    best = max(matching, key=lambda row: (bool(row.model), len(row.firmware_version_prefix)))
    return ChargerProfile(
        lenient=best.strictness == Strictness.LENIENT,
        quirks=tuple(name for name in best.quirks if isinstance(name, str)),
        id_tag_suffix=best.id_tag_suffix,
    )


def charge_point_profile(*, charge_point_id: str) -> ChargerProfile:
    """The profile of the model a charger last booted as (strict until it has booted)."""
    charge_point = (
        ChargePoint.objects.filter(charge_point_id=charge_point_id).only("vendor", "model", "firmware_version").first()
    )
    if charge_point is None:
        return STRICT_PROFILE
    return charger_profile_for(
        vendor=charge_point.vendor, model=charge_point.model, firmware_version=charge_point.firmware_version
    )


def charge_point_is_commissioned(*, charge_point_id: str) -> bool:
    return ChargePoint.objects.filter(
        charge_point_id=charge_point_id, lifecycle_state=LifecycleState.COMMISSIONED
    ).exists()
