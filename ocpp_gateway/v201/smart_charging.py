"""OCPP 2.0.1 Smart Charging block (K): SetChargingProfile (the conflicts warned of before sending, the
profile installed by an accepted answer), ClearChargingProfile, and GetChargingProfiles with the
ReportChargingProfiles that answer it (K09: the profiles the station holds, recorded). The charger's
limits (NotifyChargingLimit, ISO 15118 needs) are acknowledged in ``notifications.py``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ocpp.v201.enums import Action, GetChargingProfileStatusEnumType

from chargepoints.models import ChargePoint
from charging import selectors as charging_selectors
from charging.services import charging_profiles
from charging.services.charging_profiles import ProfileCriteria, ProfileTarget
from commands.models import Command
from commands.selectors import charging_profiles_question
from configuration import selectors
from kernel import payload_case
from kernel.ocpp_package import on_payload
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.command_routes import (
    answer,
    answer_accepted,
    answer_status,
    answering_charge_point,
    request_check,
)
from ocpp_gateway.group_commit import in_commit_group

logger = logging.getLogger(__name__)


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


def report_charging_profiles_record(
    *, charge_point_id: str, request_id: int, evse_id: int, source: str, profiles: list[dict[str, Any]], last: bool
) -> None:
    """One ReportChargingProfiles of the sequence answering GetChargingProfiles ``request_id`` (K09):
    its profiles recorded (``charging_profiles_reported``); the ``last`` one completes the answer, and
    the profiles the question (``charging_profiles_question``) asked about that no message of it
    reported are forgotten (``charging_profiles_unreported_forget``). A sequence no question of the
    CSMS's asked for forgets nothing."""
    charging_profiles.charging_profiles_reported(
        charge_point_id=charge_point_id, evse_id=evse_id, source=source, profiles=profiles
    )
    question = charging_profiles_question(charge_point_id=charge_point_id, request_id=request_id) if last else None
    if question is not None:
        charging_profiles.charging_profiles_unreported_forget(
            charge_point_id=charge_point_id,
            evse_id=question.request.get("evse_id"),
            criterion=question.request.get("charging_profile") or {},
            asked_at=question.created_at,
        )


def _tx_profile_warnings(charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
    """A TxProfile's: when the CSMS knows no active session where it is set (``tx_profile_warnings``)."""
    profile = body["charging_profile"]
    if profile["charging_profile_purpose"] != "TxProfile":
        return []
    return charging_selectors.tx_profile_warnings(
        charge_point=charge_point,
        ocpp_version="2.0.1",
        connector_id=body["evse_id"],
        transaction_id=profile.get("transaction_id"),
    )


class SmartChargingHandlers:
    id: str
    frame_work_kept: Callable[[list[Any], str], Coroutine[Any, Any, list[Any]]]

    @on_payload(Action.report_charging_profiles)
    async def on_report_charging_profiles(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{requestId, chargingLimitSource, evseId, chargingProfile: [...], tbc?}`` -> ``{}`` (K09):
        the CSMS's own profiles (source ``CSO``) among them recorded installed, and after the last one
        of its sequence (``tbc`` false) those asked about that went unreported forgotten
        (``report_charging_profiles_record``). Not on the path of ordinary messages: a station sends it
        only when asked (GetChargingProfiles).

        Each ``CSO`` profile after the first takes a turn of the frame rate (``CSMS_MAX_FRAMES_PER_SECOND``),
        as the SetChargingProfile that installed it did, waiting for it a few seconds at most
        (``frame_work_kept``): one frame of 250 made-up profiles cost 640 ms of CPU (4000
        Heartbeats'). Those past the wait are not recorded, and such a message forgets
        nothing (what it left out is not unreported)."""
        profiles = payload["chargingProfile"]
        if payload["chargingLimitSource"] == charging_profiles.CSMS_SOURCE and len(profiles) > 1:
            profiles = await self.frame_work_kept(profiles, "ReportChargingProfiles' profiles")
        await in_commit_group(report_charging_profiles_record)(
            charge_point_id=self.id,
            request_id=payload["requestId"],
            evse_id=payload["evseId"],
            source=payload["chargingLimitSource"],
            profiles=payload_case.snake_case(profiles),
            last=not payload.get("tbc", False) and len(profiles) == len(payload["chargingProfile"]),
        )
        return {}

    @staticmethod
    @answer(Action.get_charging_profiles)
    def after_get_charging_profiles(command: Command) -> None:
        """NoProfiles: the station holds none of those asked about; the CSMS forgets those it
        recorded (``charging_profiles_none_held``). Accepted: its ReportChargingProfiles follow."""
        if answer_status(command) == GetChargingProfileStatusEnumType.no_profiles:
            body = command.request
            charging_profiles.charging_profiles_none_held(
                charge_point=answering_charge_point(command),
                evse_id=body.get("evse_id"),
                criterion=body.get("charging_profile") or {},
            )

    @staticmethod
    @request_check(Action.set_charging_profile)
    def set_charging_profile_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        """Conflicts with the profiles installed, and what the station reported it cannot take."""
        profile = body["charging_profile"]
        schedules = profile["charging_schedule"]
        return (
            charging_profiles.charging_profile_conflicts(charge_point=charge_point, target=profile_target(body))
            + selectors.charging_profile_request_warnings(
                limits=selectors.charging_profile_limits_201(charge_point=charge_point),
                stack_level=profile["stack_level"],
                periods=max(len(schedule["charging_schedule_period"]) for schedule in schedules),
                rate_units={schedule["charging_rate_unit"] for schedule in schedules},
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
