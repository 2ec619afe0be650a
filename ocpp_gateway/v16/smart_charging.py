"""OCPP 1.6 Smart Charging profile: SetChargingProfile (the conflicts warned of before sending, the
profile installed by an accepted answer) and ClearChargingProfile."""

from __future__ import annotations

from typing import Any

from ocpp.v16.enums import Action

from chargepoints.models import ChargePoint
from charging import selectors as charging_selectors
from charging.services import charging_profiles
from charging.services.charging_profiles import ProfileCriteria, ProfileTarget
from commands.models import Command
from configuration import selectors
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.command_routes import answer, answer_accepted, answering_charge_point, request_check


def profile_target(body: dict[str, Any], profile_field: str = "cs_charging_profiles") -> ProfileTarget:
    """A SetChargingProfile.req body (snake_case) as the profile it installs on ``connector_id``; a
    RemoteStartTransaction.req's with ``profile_field="charging_profile"``."""
    profile = body[profile_field]
    return ProfileTarget(
        connector_id=body["connector_id"],
        profile_id=profile["charging_profile_id"],
        purpose=profile["charging_profile_purpose"],
        stack_level=profile["stack_level"],
        valid_from=parse_ocpp_time(profile.get("valid_from")),
        valid_to=parse_ocpp_time(profile.get("valid_to")),
        profile=profile,
    )


def _tx_profile_warnings(charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
    """A TxProfile's: when the CSMS knows no active session where it is set (``tx_profile_warnings``)."""
    profile = body["cs_charging_profiles"]
    if profile["charging_profile_purpose"] != "TxProfile":
        return []
    return charging_selectors.tx_profile_warnings(
        charge_point=charge_point,
        ocpp_version="1.6",
        connector_id=body["connector_id"],
        transaction_id=profile.get("transaction_id"),
    )


class SmartChargingHandlers:
    @staticmethod
    @request_check(Action.set_charging_profile)
    def set_charging_profile_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        """Conflicts with the profiles installed, and what the charger reported it cannot take."""
        profile = body["cs_charging_profiles"]
        schedule = profile["charging_schedule"]
        return (
            charging_profiles.charging_profile_conflicts(charge_point=charge_point, target=profile_target(body))
            + selectors.charging_profile_request_warnings(
                limits=selectors.charging_profile_limits_16(charge_point=charge_point),
                stack_level=profile["stack_level"],
                periods=len(schedule["charging_schedule_period"]),
                rate_units={schedule["charging_rate_unit"]},
            )
            + _tx_profile_warnings(charge_point, body)
        )

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
        criteria = ProfileCriteria(
            profile_id=body.get("id"),
            connector_id=body.get("connector_id"),
            purpose=body.get("charging_profile_purpose"),
            stack_level=body.get("stack_level"),
        )
        charging_profiles.charging_profiles_clear_follow(
            charge_point=answering_charge_point(command), accepted=answer_accepted(command), criteria=criteria
        )
