"""Reads of the fleet."""

from __future__ import annotations

from django.contrib.auth.hashers import check_password
from django.db.models import QuerySet

from chargepoints.models import ChargePoint, Connector, LifecycleState


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
