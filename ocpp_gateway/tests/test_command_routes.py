"""Answers are routed per version: each router owns the handlers for the answers to the commands it
sends, every command whose answer changes charger state has one per version, and an answer
without a route changes nothing. Handlers are called through ``command_complete`` with a fixed answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from ocpp.v16.enums import Action

from charging.models import InstalledChargingProfile, LocalAuthList, Reservation, ReservationStatus, Transaction
from charging.services.charging_profiles import EV_CONNECTION_WAIT_MARGIN, EV_CONNECTION_WAIT_UNREPORTED
from commands import catalog, routes
from commands.models import Command
from commands.rpc import CallOutcome, Outcome
from commands.services import command_complete
from configuration.models import ConfigurationKey
from ocpp_gateway.command_routes import answer, version_routes
from ocpp_gateway.versions import ROUTERS

# The commands whose answer changes charger state (the ladder ``commands.services`` had before the routes).
CHARGER_STATE_COMMANDS = {
    "reserve_now",
    "cancel_reservation",
    "send_local_list",
    "get_local_list_version",
    "set_charging_profile",
    "clear_charging_profile",
    "get_charging_profiles",  # 2.0.1 NoProfiles: none of those asked about is held (K09)
    "get_configuration",
    "change_configuration",
    "get_variables",
    "set_variables",
    "get_base_report",
    "get_report",
    "remote_start_transaction",  # the charging profile it installs
    "request_start_transaction",
}


@pytest.mark.parametrize("version", sorted(catalog.COMMANDS))
def test_every_command_whose_answer_changes_charger_state_has_an_answer_handler(version):
    sent = {catalog.ocpp_action(command) for command in catalog.COMMANDS[version]}
    followed = {catalog.ocpp_action(command) for command in CHARGER_STATE_COMMANDS & set(catalog.COMMANDS[version])}
    # 2.0.1: AcceptedCanceled fails the update the charger cancelled (L01); 1.6: a later update
    # accepted supersedes a campaign's under way (its reports name no request)
    followed.add("UpdateFirmware")
    answered = set(routes.command_routes(version).answers)
    assert answered == followed
    assert answered <= sent


@pytest.mark.parametrize("version", sorted(ROUTERS))
def test_each_version_s_routes_are_installed_at_start(version):
    assert routes.command_routes(version) == version_routes(ROUTERS[version])
    remote = (
        {"RemoteStartTransaction", "RemoteStopTransaction"}
        if version == "1.6"
        else {"RequestStartTransaction", "RequestStopTransaction"}
    )
    # Their warnings: more keys than GetConfigurationMaxKeys (1.6), over the station's reported limits (2.0.1).
    configuration = {"GetConfiguration"} if version == "1.6" else {"GetVariables", "SetVariables", "GetReport"}
    # A local list over the limits the charger reported (1.6 SendLocalListMaxLength, ...; 2.0.1 LocalAuthListCtrlr).
    expected = {"SetChargingProfile", "ReserveNow", "SendLocalList", "CancelReservation", *remote, *configuration}
    assert set(routes.command_routes(version).request_checks) == expected
    # A report asked again under its requestId starts afresh (2.0.1 B07/B08); a charger password's
    # candidate hash is stored before it leaves; a campaign's image re-sent by hand puts its
    # target whose download failed back in flight before it leaves (its reports may come first).
    before = (
        {"ChangeConfiguration", "UpdateFirmware"}
        if version == "1.6"
        else {"GetBaseReport", "GetReport", "SetVariables", "UpdateFirmware"}
    )
    assert set(routes.command_routes(version).before_sending) == before
    # A password whose CALL left unanswered may have been taken.
    unanswered = {"ChangeConfiguration"} if version == "1.6" else {"SetVariables"}
    assert set(routes.command_routes(version).unanswered) == unanswered
    # ... and its candidate dropped when it never reached the charger (and the target failed again).
    unsent = {"ChangeConfiguration", "UpdateFirmware"} if version == "1.6" else {"SetVariables", "UpdateFirmware"}
    assert set(routes.command_routes(version).unsent) == unsent


def test_an_action_handled_twice_is_refused():
    class First:
        @staticmethod
        @answer(Action.reset)
        def after_reset(command: Command) -> None: ...

    class Second(First):
        @staticmethod
        @answer(Action.reset)
        def after_hard_reset(command: Command) -> None: ...

    with pytest.raises(ImproperlyConfigured, match="two handlers for Reset"):
        version_routes(Second)


def answered(charge_point, version: str, command: str, request: dict[str, Any], payload: dict[str, Any]) -> Command:
    """``command`` sent to ``charge_point`` and completed with the CALLRESULT ``payload`` (camelCase)."""
    record = Command.objects.create(
        charge_point=charge_point,
        charge_point_identity=charge_point.charge_point_id,
        ocpp_version=version,
        command=command,
        action=catalog.ocpp_action(command),
        request=request,
    )
    return command_complete(command=record, outcome=CallOutcome(Outcome.RESULT, payload=payload))


@pytest.mark.django_db
def test_an_answer_without_a_route_changes_nothing(register_charge_point):
    charge_point = register_charge_point("CP-1")
    command = answered(charge_point, "1.6", "reset", {"type": "Hard"}, {"status": "Accepted"})
    assert command.state == "accepted"
    assert not Reservation.objects.exists() and not LocalAuthList.objects.exists()


RESERVE_NOW = {
    "1.6": {"reservation_id": 7, "connector_id": 2, "expiry_date": "2026-05-01T12:00:00Z", "id_tag": "RFID-1"},
    "2.0.1": {
        "id": 7,
        "evse_id": 2,
        "expiry_date_time": "2026-05-01T12:00:00Z",
        "id_token": {"id_token": "RFID-1", "type": "ISO14443"},
    },
}


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_reserve_now_and_cancel_reservation_answers_end_in_the_same_reservation(register_charge_point, version):
    charge_point = register_charge_point("CP-1")
    answered(charge_point, version, "reserve_now", RESERVE_NOW[version], {"status": "Accepted"})
    reservation = Reservation.objects.get(reservation_id=7)
    place = (reservation.connector_id, reservation.evse_id)
    assert place == ((2, None) if version == "1.6" else (None, 2))
    assert (reservation.status, reservation.id_tag) == (ReservationStatus.ACTIVE, "RFID-1")
    answered(charge_point, version, "cancel_reservation", {"reservation_id": 7}, {"status": "Accepted"})
    assert Reservation.objects.get(reservation_id=7).status == ReservationStatus.CANCELLED
    # Rejected: the charger holds no reservation of that id (1.6 §7.5): the record is not left active
    answered(charge_point, version, "reserve_now", RESERVE_NOW[version], {"status": "Accepted"})
    again = Reservation.objects.get(reservation_id=7, status=ReservationStatus.ACTIVE)  # a new one: the first ended
    answered(charge_point, version, "cancel_reservation", {"reservation_id": 7}, {"status": "Rejected"})
    assert [r.status for r in Reservation.objects.filter(reservation_id=7).order_by("pk")] == [
        ReservationStatus.CANCELLED,
        ReservationStatus.CANCELLED,
    ]
    assert again.pk != reservation.pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("version", "group"),
    [("1.6", {"parent_id_tag": "FLEET-1"}), ("2.0.1", {"group_id_token": {"id_token": "FLEET-1", "type": "Central"}})],
)
def test_a_reservation_keeps_the_group_it_was_made_for(register_charge_point, version, group):
    """1.6 ReserveNow parentIdTag, 2.0.1 groupIdToken: a start by any tag of the group uses it."""
    charge_point = register_charge_point("CP-1")
    answered(charge_point, version, "reserve_now", {**RESERVE_NOW[version], **group}, {"status": "Accepted"})
    assert Reservation.objects.get(reservation_id=7).parent_id_tag == "FLEET-1"


SEND_LOCAL_LIST = {
    "1.6": {
        "list_version": 4,
        "update_type": "Full",
        "local_authorization_list": [{"id_tag": "RFID-1", "id_tag_info": {"status": "Blocked"}}, {"id_tag": "RFID-2"}],
    },
    "2.0.1": {
        "version_number": 4,
        "update_type": "Full",
        "local_authorization_list": [
            {"id_token": {"id_token": "RFID-1", "type": "ISO14443"}, "id_token_info": {"status": "Blocked"}},
            {"id_token": {"id_token": "RFID-2", "type": "ISO14443"}},
        ],
    },
}
LIST_VERSION_FIELD = {"1.6": "listVersion", "2.0.1": "versionNumber"}


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_local_list_answers_end_in_the_same_local_list(register_charge_point, version):
    charge_point = register_charge_point("CP-1")
    answered(charge_point, version, "send_local_list", SEND_LOCAL_LIST[version], {"status": "Failed"})
    assert not LocalAuthList.objects.exists()
    answered(charge_point, version, "send_local_list", SEND_LOCAL_LIST[version], {"status": "Accepted"})
    local_list = LocalAuthList.objects.get()
    entry = {"1.6": "RFID-1", "2.0.1": "RFID-1 (ISO14443)"}[version]  # 2.0.1: the token with its type
    assert (local_list.version, local_list.entries) == (4, {entry: "Blocked"})
    answered(charge_point, version, "get_local_list_version", {}, {LIST_VERSION_FIELD[version]: 9})
    assert LocalAuthList.objects.get().version == 9


SET_PROFILE = {
    "1.6": {
        "connector_id": 1,
        "cs_charging_profiles": {
            "charging_profile_id": 5,
            "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": {
                "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, "limit": 7400}],
            },
        },
    },
    "2.0.1": {
        "evse_id": 1,
        "charging_profile": {
            "id": 5,
            "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": [
                {"id": 1, "charging_rate_unit": "W", "charging_schedule_period": [{"start_period": 0, "limit": 7400}]}
            ],
        },
    },
}
CLEAR_OTHER_PROFILE = {"1.6": {"id": 6}, "2.0.1": {"charging_profile_id": 6}}
CLEAR_ON_CONNECTOR = {"1.6": {"connector_id": 1}, "2.0.1": {"charging_profile_criteria": {"evse_id": 1}}}


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_charging_profile_answers_end_in_the_same_installed_profiles(register_charge_point, version):
    charge_point = register_charge_point("CP-1")
    answered(charge_point, version, "set_charging_profile", SET_PROFILE[version], {"status": "Rejected"})
    assert not InstalledChargingProfile.objects.exists()
    answered(charge_point, version, "set_charging_profile", SET_PROFILE[version], {"status": "Accepted"})
    installed = InstalledChargingProfile.objects.get()
    assert (installed.connector_id, installed.profile_id, installed.purpose) == (1, 5, "TxDefaultProfile")
    warnings = routes.request_warnings(
        charge_point=charge_point, ocpp_version=version, action="SetChargingProfile", body=_other(SET_PROFILE[version])
    )
    assert warnings and "Profile 5 on connector 1" in warnings[0]
    answered(charge_point, version, "clear_charging_profile", CLEAR_OTHER_PROFILE[version], {"status": "Accepted"})
    assert InstalledChargingProfile.objects.exists()
    answered(charge_point, version, "clear_charging_profile", CLEAR_ON_CONNECTOR[version], {"status": "Accepted"})
    assert not InstalledChargingProfile.objects.exists()


REMOTE_START = {
    "1.6": ("remote_start_transaction", {"connector_id": 1, "id_tag": "RFID-1"}, "connector_id"),
    "2.0.1": (
        "request_start_transaction",
        {"evse_id": 1, "remote_start_id": 9, "id_token": {"id_token": "RFID-1", "type": "ISO14443"}},
        "evse_id",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_an_accepted_remote_start_installs_its_charging_profile_on_its_connector(register_charge_point, version):
    charge_point = register_charge_point("CP-1")
    command, body, target = REMOTE_START[version]
    profile = {**SET_PROFILE[version][_PROFILE_FIELD[version]], "charging_profile_purpose": "TxProfile"}
    answered(charge_point, version, command, {**body, "charging_profile": profile}, {"status": "Rejected"})
    assert not InstalledChargingProfile.objects.exists()
    chosen_by_the_charger = {name: value for name, value in body.items() if name != target}
    answered(
        charge_point, version, command, {**chosen_by_the_charger, "charging_profile": profile}, {"status": "Accepted"}
    )
    assert not InstalledChargingProfile.objects.exists()  # where it went is not known
    answered(charge_point, version, command, {**body, "charging_profile": profile}, {"status": "Accepted"})
    installed = InstalledChargingProfile.objects.get()
    assert (installed.connector_id, installed.profile_id, installed.purpose) == (1, 5, "TxProfile")


_PROFILE_FIELD = {"1.6": "cs_charging_profiles", "2.0.1": "charging_profile"}


def _other(body: dict[str, Any]) -> dict[str, Any]:
    """The same SetChargingProfile request for profile 6."""
    key = "cs_charging_profiles" if "cs_charging_profiles" in body else "charging_profile"
    id_field = "charging_profile_id" if key == "cs_charging_profiles" else "id"
    return {**body, key: {**body[key], id_field: 6}}


def _next_profile_warned(charge_point, version: str, *, after: timedelta = timedelta(0)) -> bool:
    """Whether a TxProfile for the connector's next transaction (profile 6), asked about ``after``
    from now, is warned of as replacing the remote start's (profile 5): whether that one is held."""
    body = _other({**SET_PROFILE[version], _PROFILE_FIELD[version]: _REMOTE_START_PROFILE[version]})
    later = timezone.now() + after
    with mock.patch("charging.services.charging_profiles.timezone.now", return_value=later):
        warnings = routes.request_warnings(
            charge_point=charge_point, ocpp_version=version, action="SetChargingProfile", body=body
        )
    return bool(warnings) and "Profile 5 on connector 1" in warnings[0]


_REMOTE_START_PROFILE = {
    version: {
        **cast(dict[str, Any], SET_PROFILE[version][_PROFILE_FIELD[version]]),
        "charging_profile_purpose": "TxProfile",
    }
    for version in ("1.6", "2.0.1")
}


def _remote_start_answered(charge_point, version: str) -> None:
    command, body, _ = REMOTE_START[version]
    profile = _REMOTE_START_PROFILE[version]
    answered(charge_point, version, command, {**body, "charging_profile": profile}, {"status": "Accepted"})


@pytest.mark.django_db
@pytest.mark.parametrize("status", [None, "Available", "Preparing"])
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_remote_start_s_tx_profile_is_held_while_the_charger_waits_for_the_ev_whatever_it_reports(
    register_charge_point, version, status
):
    """Round 45: the charger drops a TxProfile with its transaction, and holds none for a remote
    start whose EV never came (1.6 §3.13.1, §5.11; 2.0.1 K01, F01.FR.08). The CSMS took an
    ``Available`` connector after the start for "never came": a charger that stays Available until
    the cable is in, reporting it again while it waits, had its profile forgotten (the next one not
    warned of as replacing it), and one that never reported anything kept it forever. Now it is held
    as long as the charger waits (its ConnectionTimeOut, 60 s here, and a margin for its last-moment
    start still on its way; 2.0.1 TxCtrlr.EVConnectionTimeOut, not reported here: 5 minutes), and gone
    after, whatever the connector reported."""
    from chargepoints.services.fleet import connector_status_set

    charge_point = register_charge_point("CP-1", ocpp_version=version)
    ConfigurationKey.objects.create(
        charge_point=charge_point,
        key="ConnectionTimeOut",
        value="60",
        readonly=False,
        learned_from="GetConfiguration",
        learned_at=timezone.now(),
    )
    wait = timedelta(seconds=60) + EV_CONNECTION_WAIT_MARGIN if version == "1.6" else EV_CONNECTION_WAIT_UNREPORTED
    evse = {"evse_id": 1} if version == "2.0.1" else {}
    _remote_start_answered(charge_point, version)
    if status is not None:
        connector_status_set(charge_point_id="CP-1", connector_id=1, status=status, **evse)
    assert _next_profile_warned(charge_point, version)  # waited on
    assert _next_profile_warned(charge_point, version, after=wait - timedelta(seconds=5))
    assert not _next_profile_warned(charge_point, version, after=wait + timedelta(seconds=1))  # never came
    with mock.patch("charging.services.charging_profiles.timezone.now", return_value=timezone.now() + wait * 2):
        answered(charge_point, version, "clear_charging_profile", CLEAR_OTHER_PROFILE[version], {"status": "Accepted"})
    assert not InstalledChargingProfile.objects.exists()  # forgotten when the charger's profiles were next touched


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_remote_start_s_tx_profile_whose_transaction_began_is_held_until_it_ends(register_charge_point, version):
    charge_point = register_charge_point("CP-1", ocpp_version=version)
    _remote_start_answered(charge_point, version)
    session = Transaction.objects.create(
        charge_point=charge_point,
        ocpp_version=version,
        connector_id=1,
        evse_id=1 if version == "2.0.1" else None,
        started_at=timezone.now(),
    )
    assert _next_profile_warned(charge_point, version, after=timedelta(hours=1))  # its transaction goes on
    Transaction.objects.filter(pk=session.pk).update(status="ended", stopped_at=timezone.now())
    assert not _next_profile_warned(charge_point, version)
