"""OCPP 2.0.1 Smart Charging block (K): SetChargingProfile (the conflicts warned of before sending, the
profile installed by an accepted answer) and ClearChargingProfile. The charger's reports of its
profiles and limits are acknowledged in ``notifications.py``."""

from __future__ import annotations

from typing import Any

from ocpp.v201.enums import Action

from chargepoints.models import ChargePoint
from charging.services import charging_profiles
from charging.services.charging_profiles import ProfileCriteria, ProfileTarget
from commands.models import Command
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.command_routes import answer, answer_accepted, answering_charge_point, request_check


def profile_target(body: dict[str, Any]) -> ProfileTarget:
    """A SetChargingProfileRequest body (snake_case) as the profile it installs (on ``evse_id``); a
    RequestStartTransactionRequest's too (the same fields)."""
    profile = body["charging_profile"]
    return ProfileTarget(
        connector_id=body["evse_id"],
        profile_id=profile["id"],
        purpose=profile["charging_profile_purpose"],
        stack_level=profile["stack_level"],
        valid_from=parse_ocpp_time(profile.get("valid_from")),
        valid_to=parse_ocpp_time(profile.get("valid_to")),
        profile=profile,
        ocpp_version="2.0.1",
    )


class SmartChargingHandlers:
    @staticmethod
    @request_check(Action.set_charging_profile)
    def set_charging_profile_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        return charging_profiles.charging_profile_conflicts(charge_point=charge_point, target=profile_target(body))

    @staticmethod
    @answer(Action.set_charging_profile)
    def after_set_charging_profile(command: Command) -> None:
        charging_profiles.charging_profile_set_follow(
            charge_point=answering_charge_point(command),
            accepted=answer_accepted(command),
            target=profile_target(command.request),
        )

    @staticmethod
    @answer(Action.clear_charging_profile)
    def after_clear_charging_profile(command: Command) -> None:
        body = command.request
        found = body.get("charging_profile_criteria") or {}
        criteria = ProfileCriteria(
            profile_id=body.get("charging_profile_id"),
            connector_id=found.get("evse_id"),
            purpose=found.get("charging_profile_purpose"),
            stack_level=found.get("stack_level"),
        )
        charging_profiles.charging_profiles_clear_follow(
            charge_point=answering_charge_point(command), accepted=answer_accepted(command), criteria=criteria
        )
