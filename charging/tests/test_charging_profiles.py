from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from ocpp.v201.enums import ChargingProfilePurposeEnumType

from charging.models import InstalledChargingProfile, Transaction, TransactionStatus
from charging.services import charging_profiles
from charging.services.charging_profiles import ProfileCriteria
from ocpp_gateway.v16.smart_charging import profile_target

pytestmark = pytest.mark.django_db


def profile_body(profile_id: int, stack_level: int = 0, valid_from: str | None = None, valid_to: str | None = None):
    profile = {
        "charging_profile_id": profile_id,
        "stack_level": stack_level,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": {
            "charging_rate_unit": "W",
            "charging_schedule_period": [{"start_period": 0, "limit": 7400}],
        },
    }
    if valid_from:
        profile["valid_from"] = valid_from
    if valid_to:
        profile["valid_to"] = valid_to
    return {"connector_id": 1, "cs_charging_profiles": profile}


def install(charge_point, body):
    target = profile_target(body)
    charging_profiles.charging_profile_installed(charge_point=charge_point, target=target)


def conflicts(charge_point, body):
    target = profile_target(body)
    return charging_profiles.charging_profile_conflicts(charge_point=charge_point, target=target)


def test_same_purpose_and_stack_level_with_overlapping_validity_is_a_conflict(register_charge_point):
    charge_point = register_charge_point("CP-1")
    install(charge_point, profile_body(1))
    assert len(conflicts(charge_point, profile_body(2))) == 1
    assert conflicts(charge_point, profile_body(2, stack_level=1)) == []
    assert conflicts(charge_point, profile_body(1)) == []  # same id: an intended update


def test_a_1_6_default_on_a_connector_replaces_the_whole_charger_s_there(register_charge_point):
    """1.6 §3.13.1 TxDefaultProfile: one for connector 1 while one for connector 0 is installed replaces it
    "only for that specific connector". Probe: that was warned of on the same connector only, so an
    operator replacing a charger-wide default (a site's failsafe) on connector 1 read no warning."""
    charge_point = register_charge_point("CP-1")
    install(charge_point, {**profile_body(1), "connector_id": 0})
    assert conflicts(charge_point, profile_body(2)) == [
        "Profile 1 on connector 0 has the same purpose (TxDefaultProfile) and stack level (0); the charger"
        " replaces it for connector 1 with profile 2 (OCPP 1.6 §3.13.1): the other connectors keep it."
    ]
    assert conflicts(charge_point, profile_body(2, stack_level=1)) == []  # it stacks above
    assert conflicts_201(charge_point, profile_body(2)) == []  # a 2.0.1 station holds both


def conflicts_201(charge_point, body):
    target = dataclasses.replace(profile_target(body), ocpp_version="2.0.1")
    return charging_profiles.charging_profile_conflicts(charge_point=charge_point, target=target)


def test_disjoint_validity_periods_do_not_conflict_on_2_0_1(register_charge_point):
    """K01.FR.06: a 2.0.1 station holds them side by side. (1.6 replaces one with the other whatever
    their validities, §5.16.2: a conflict, see the next test.)"""
    charge_point = register_charge_point("CP-1")
    install(charge_point, profile_body(1, valid_from="2026-05-01T00:00:00Z", valid_to="2026-05-02T00:00:00Z"))
    later = profile_body(2, valid_from="2026-05-02T00:00:00Z", valid_to="2026-05-03T00:00:00Z")
    overlapping = profile_body(3, valid_from="2026-05-01T12:00:00+02:00")
    assert conflicts_201(charge_point, later) == []
    assert len(conflicts_201(charge_point, overlapping)) == 1


def test_disjoint_validity_periods_conflict_on_1_6(register_charge_point):
    charge_point = register_charge_point("CP-1")
    install(charge_point, profile_body(1, valid_from="2026-05-01T00:00:00Z", valid_to="2026-05-02T00:00:00Z"))
    later = profile_body(2, valid_from="2026-05-02T00:00:00Z", valid_to="2026-05-03T00:00:00Z")
    assert [warning.split(";")[1] for warning in conflicts(charge_point, later)] == [
        " the charger replaces it with profile 2, though their validity periods do not overlap (OCPP 1.6 §5.16.2):"
        " give it another stack level to keep both."
    ]


def test_an_accepted_profile_replaces_the_one_it_conflicts_with_and_clear_forgets(register_charge_point):
    charge_point = register_charge_point("CP-1")
    install(charge_point, profile_body(1))
    install(charge_point, profile_body(2))
    assert list(InstalledChargingProfile.objects.values_list("profile_id", flat=True)) == [2]
    criteria = ProfileCriteria(connector_id=1)
    cleared = charging_profiles.charging_profiles_cleared(charge_point=charge_point, criteria=criteria)
    assert cleared == 1
    assert not InstalledChargingProfile.objects.exists()


def test_a_profile_id_set_on_another_connector_moves_there(register_charge_point):
    """1.6 §5.16.2, 2.0.1 K01.FR.05: a profile with the id of an installed one replaces it, on any connector."""
    charge_point = register_charge_point("CP-1")
    install(charge_point, profile_body(2))
    install(charge_point, {**profile_body(2), "connector_id": 2})
    install(charge_point, {**profile_body(3), "connector_id": 1})
    rows = InstalledChargingProfile.objects.order_by("profile_id").values_list("profile_id", "connector_id")
    assert list(rows) == [(2, 2), (3, 1)]


def test_a_clear_naming_an_id_forgets_that_profile_whatever_the_other_criteria(register_charge_point):
    """OCPP 1.6 §5.5: an id denotes one profile; the charger cleared it though the connector differed."""
    charge_point = register_charge_point("CP-1")
    install(charge_point, {**profile_body(4), "connector_id": 0})
    install(charge_point, profile_body(5, stack_level=1))
    criteria = ProfileCriteria(profile_id=4, connector_id=1)
    assert charging_profiles.charging_profiles_cleared(charge_point=charge_point, criteria=criteria) == 1
    assert list(InstalledChargingProfile.objects.values_list("profile_id", flat=True)) == [5]


@pytest.mark.parametrize("purpose", sorted(ChargingProfilePurposeEnumType))
def test_a_profile_of_every_2_0_1_purpose_is_recorded_whole(register_charge_point, purpose):
    """ChargingStationExternalConstraints is 34 characters: the column held 32 (StringDataRightTruncation)."""
    charge_point = register_charge_point("CP-201", ocpp_version="2.0.1")
    body = profile_body(1)
    body["cs_charging_profiles"]["charging_profile_purpose"] = purpose
    install(charge_point, body)
    assert InstalledChargingProfile.objects.get().purpose == purpose


def test_a_tx_profile_whose_transaction_ended_is_no_conflict(register_charge_point):
    """Round 43's probe: a TxProfile stays recorded after its transaction, which the charger deleted
    it with (1.6 §3.13.1, 2.0.1 K01), so a TxProfile for the connector's next transaction was
    answered with a warning that the charger "replaces" it."""
    charge_point = register_charge_point("CP-1")
    tx_profile = profile_body(1, stack_level=1)
    tx_profile["cs_charging_profiles"]["charging_profile_purpose"] = "TxProfile"
    install(charge_point, tx_profile)
    installed = InstalledChargingProfile.objects.get()
    session = Transaction.objects.create(
        charge_point=charge_point,
        ocpp_transaction_id="1",
        start_key="k",
        connector_id=1,
        started_at=installed.installed_at,
    )
    next_one = profile_body(2, stack_level=1)
    next_one["cs_charging_profiles"]["charging_profile_purpose"] = "TxProfile"
    assert len(conflicts(charge_point, next_one)) == 1  # its transaction still runs
    session.status, session.stopped_at = TransactionStatus.ENDED, installed.installed_at + timedelta(seconds=5)
    session.save()
    assert conflicts(charge_point, next_one) == []
    install(charge_point, profile_body(3, stack_level=1))  # a TxDefaultProfile does not end with it
    assert len(conflicts(charge_point, profile_body(4, stack_level=1))) == 1


def test_a_remote_start_s_profile_the_station_reports_keeps_its_wait_for_the_ev(register_charge_point):
    """Review: a ReportChargingProfiles (K09) listing a remote start's TxProfile while the station
    waits for the EV recorded it without its wait, and the profile was then forgotten at the next
    Available although the station still held it."""
    from django.utils import timezone

    charge_point = register_charge_point("CP-201", ocpp_version="2.0.1")
    body = profile_body(7)
    body["cs_charging_profiles"]["charging_profile_purpose"] = "TxProfile"
    waits_until = timezone.now() + timedelta(minutes=3)
    charging_profiles.charging_profile_installed(
        charge_point=charge_point, target=profile_target(body), awaited_until=waits_until
    )
    reported = {
        "id": 7,
        "stack_level": 0,
        "charging_profile_purpose": "TxProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": [{"id": 1, "charging_rate_unit": "W", "charging_schedule_period": []}],
    }
    assert charging_profiles.charging_profiles_reported(
        charge_point_id="CP-201", evse_id=1, source="CSO", profiles=[reported]
    )
    assert InstalledChargingProfile.objects.get().awaited_until == waits_until


def test_a_charger_moved_to_another_ocpp_version_holds_none_of_the_profiles_of_the_old_one(register_charge_point):
    """Probe: a 1.6 charger upgraded to 2.0.1 under the same id (and back) kept its 1.6 profiles as
    installed: a 2.0.1 profile of the same purpose and stack level was warned of as rejected, and
    nothing ever removed them. Those of the other version are not held, and go at the next answer."""
    from chargepoints.models import ChargePoint

    charge_point = register_charge_point("CP-MOVED", ocpp_version="1.6")
    install(charge_point, profile_body(1))
    assert len(conflicts_201(charge_point, profile_body(2))) == 1  # a station that says so
    ChargePoint.objects.filter(pk=charge_point.pk).update(ocpp_version="2.0.1")
    charge_point.refresh_from_db()
    assert conflicts_201(charge_point, profile_body(2)) == []
    assert charging_profiles.charging_profiles_held(charge_point=charge_point) == []
    target = dataclasses.replace(profile_target(profile_body(2)), ocpp_version="2.0.1")
    charging_profiles.charging_profile_set_follow(charge_point=charge_point, accepted=True, target=target)
    assert list(InstalledChargingProfile.objects.values_list("profile_id", "ocpp_version")) == [(2, "2.0.1")]
    ChargePoint.objects.filter(pk=charge_point.pk).update(ocpp_version="1.6")  # and back again
    charge_point.refresh_from_db()
    assert conflicts(charge_point, profile_body(3)) == []
    assert charging_profiles.charging_profiles_held(charge_point=charge_point) == []
