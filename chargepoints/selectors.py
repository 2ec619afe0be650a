"""Reads of the fleet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.hashers import check_password
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from chargepoints.models import (
    AuthorizationStatus,
    ChargePoint,
    Connector,
    Heartbeat,
    IdTag,
    LifecycleState,
    OcppMessage,
    Transaction,
    TransactionStatus,
)


def charge_point_get(*, charge_point_id: str) -> ChargePoint:
    """The charge point, or ``ChargePoint.DoesNotExist``."""
    return ChargePoint.objects.get(charge_point_id=charge_point_id)


def charge_point_may_connect(*, charge_point_id: str, password: str | None) -> bool:
    """Whether a handshake for this id is allowed: known, not decommissioned, right password."""
    charge_point = (
        ChargePoint.objects.filter(charge_point_id=charge_point_id)
        .exclude(lifecycle_state=LifecycleState.DECOMMISSIONED)
        .only("password_hash")
        .first()
    )
    if charge_point is None:
        return False
    if not charge_point.password_hash:
        return True
    return password is not None and check_password(password, charge_point.password_hash)


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
