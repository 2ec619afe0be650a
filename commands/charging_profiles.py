"""Smart charging guard: the profiles the CSMS believes are installed, and conflicts among them.

OCPP: on one connector, a profile with the same purpose and stack level as an installed one
replaces it. That is rarely what the integrator meant when validity periods overlap, so the
API says so in ``warnings`` before the charger silently drops the older profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargepoints.models import ChargePoint
from charging.models import InstalledChargingProfile
from kernel.timestamps import parse_ocpp_time


@dataclass(frozen=True)
class ProfileTarget:
    connector_id: int
    profile_id: int
    purpose: str
    stack_level: int
    valid_from: datetime | None
    valid_to: datetime | None
    profile: dict[str, Any]


def profile_target(ocpp_version: str, body: dict[str, Any]) -> ProfileTarget:
    """Read a SetChargingProfile request body (snake_case) of either version."""
    if ocpp_version == "1.6":
        connector_id, profile = body["connector_id"], body["cs_charging_profiles"]
        profile_id = profile["charging_profile_id"]
    else:
        connector_id, profile = body["evse_id"], body["charging_profile"]
        profile_id = profile["id"]
    return ProfileTarget(
        connector_id=connector_id,
        profile_id=profile_id,
        purpose=profile["charging_profile_purpose"],
        stack_level=profile["stack_level"],
        valid_from=parse_ocpp_time(profile.get("valid_from")),
        valid_to=parse_ocpp_time(profile.get("valid_to")),
        profile=profile,
    )


def _overlaps(a_from: datetime | None, a_to: datetime | None, b_from: datetime | None, b_to: datetime | None) -> bool:
    return (a_to is None or b_from is None or b_from < a_to) and (b_to is None or a_from is None or a_from < b_to)


def charging_profile_conflicts(*, charge_point: ChargePoint, target: ProfileTarget) -> list[str]:
    installed = InstalledChargingProfile.objects.filter(
        charge_point=charge_point,
        connector_id=target.connector_id,
        purpose=target.purpose,
        stack_level=target.stack_level,
    ).exclude(profile_id=target.profile_id)
    return [
        f"Profile {other.profile_id} on connector {other.connector_id} has the same purpose "
        f"({other.purpose}) and stack level ({other.stack_level}) with an overlapping validity; "
        f"the charger replaces it with profile {target.profile_id}."
        for other in installed
        if _overlaps(other.valid_from, other.valid_to, target.valid_from, target.valid_to)
    ]


def charging_profile_installed(*, charge_point: ChargePoint, target: ProfileTarget) -> None:
    """The charger accepted the profile: it replaces same-id and same purpose+stack-level ones."""
    InstalledChargingProfile.objects.filter(
        charge_point=charge_point,
        connector_id=target.connector_id,
        purpose=target.purpose,
        stack_level=target.stack_level,
    ).exclude(profile_id=target.profile_id).delete()
    InstalledChargingProfile.objects.update_or_create(
        charge_point=charge_point,
        connector_id=target.connector_id,
        profile_id=target.profile_id,
        defaults={
            "purpose": target.purpose,
            "stack_level": target.stack_level,
            "valid_from": target.valid_from,
            "valid_to": target.valid_to,
            "profile": target.profile,
        },
    )


def charging_profiles_cleared(*, charge_point: ChargePoint, ocpp_version: str, body: dict[str, Any]) -> int:
    """The charger accepted ClearChargingProfile: forget the profiles its criteria match."""
    if ocpp_version == "1.6":
        criteria = {
            "profile_id": body.get("id"),
            "connector_id": body.get("connector_id"),
            "purpose": body.get("charging_profile_purpose"),
            "stack_level": body.get("stack_level"),
        }
    else:
        found = body.get("charging_profile_criteria") or {}
        criteria = {
            "profile_id": body.get("charging_profile_id"),
            "connector_id": found.get("evse_id"),
            "purpose": found.get("charging_profile_purpose"),
            "stack_level": found.get("stack_level"),
        }
    filters = {field: value for field, value in criteria.items() if value is not None}
    return InstalledChargingProfile.objects.filter(charge_point=charge_point, **filters).delete()[0]
