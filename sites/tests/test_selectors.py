"""The session views the engine allocates from (``sites.selectors``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from chargepoints.models import ChargePoint, Connector
from charging.models import InstalledChargingProfile, MeterSample, Transaction
from charging.services.charging_profiles import charging_profile_conflicts
from ocpp_gateway.v16.smart_charging import profile_target
from sites.models import SessionLimit, Site, SiteMember
from sites.selectors import (
    FAILSAFE_PROFILE_ID,
    TX_PROFILE_ID_BASE,
    site_capacity_a,
    site_failsafe_limit,
    site_limits,
    site_outlets,
    site_sessions,
)
from sites.services import sites_recompute_all

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def _reading(session: Transaction, amps: str, received_at: datetime, **signed: object) -> None:
    MeterSample.objects.create(
        charge_point_id=session.charge_point_id,
        transaction=session,
        source="MeterValues",
        timestamp=received_at,
        measurand="Current.Import",
        unit="A",
        raw_value=amps,
        received_at=received_at,
        **signed,
    )


def test_a_reading_received_before_its_limit_was_raised_does_not_count_as_its_draw(register_charge_point):
    """After a raise, the car's last reading still shows the old limit: it is not "taking less"."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    charge_point = register_charge_point("CP-SITE")
    SiteMember.objects.create(site=site, charge_point=charge_point)
    session = Transaction.objects.create(
        charge_point=charge_point, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=T0
    )
    _reading(session, "8.6", T0 + timedelta(seconds=10))
    raised = T0 + timedelta(seconds=20)
    held = SessionLimit.objects.create(
        site=site, transaction=session, limit_a=Decimal(13), sent_at=raised, raised_at=raised
    )
    _tx_profile_installed(session)
    [view] = site_sessions(site=site, now=T0 + timedelta(seconds=30))
    assert view.demand.draw_a is None

    held.sent_at = T0 + timedelta(seconds=40)
    held.save()  # the same limit sent again (or a lower one): readings since the raise count
    _reading(session, "12.9", T0 + timedelta(seconds=30))
    [view] = site_sessions(site=site, now=T0 + timedelta(seconds=50))
    assert view.demand.draw_a == Decimal("12.9")


def _tx_profile_installed(session: Transaction) -> InstalledChargingProfile:
    """The session's TxProfile as the charger's accepted answer records it (``engine._send``)."""
    return InstalledChargingProfile.objects.create(
        charge_point_id=session.charge_point_id,
        connector_id=session.connector_id or 1,
        profile_id=TX_PROFILE_ID_BASE + session.pk,
        purpose="TxProfile",
        stack_level=1,
        profile={},
    )


def _failsafe_installed(charge_point: ChargePoint, limit: float) -> InstalledChargingProfile:
    """The site's failsafe TxDefaultProfile (1.6) as the charger's accepted answer records it."""
    return InstalledChargingProfile.objects.create(
        charge_point=charge_point,
        connector_id=0,
        profile_id=FAILSAFE_PROFILE_ID,
        purpose="TxDefaultProfile",
        stack_level=0,
        ocpp_version="1.6",
        profile={
            "charging_profile_id": FAILSAFE_PROFILE_ID,
            "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Relative",
            "charging_schedule": {
                "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 0, "limit": limit}],
            },
        },
    )


def test_a_limit_whose_tx_profile_was_cleared_is_held_no_more(register_charge_point):
    """Round 43's probe: after a ClearChargingProfile the charger accepted, the engine still took the
    session for held at its old TxProfile limit, so it never sent it again (the charger ran under its
    failsafe default, or under no profile at all)."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    charge_point = register_charge_point("CP-CLEARED")
    SiteMember.objects.create(site=site, charge_point=charge_point)
    session = Transaction.objects.create(
        charge_point=charge_point, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=T0
    )
    SessionLimit.objects.create(site=site, transaction=session, limit_a=Decimal(6), sent_at=T0)
    installed = _tx_profile_installed(session)
    [view] = site_sessions(site=site, now=T0)
    assert (view.limit is not None, view.held_a) == (True, Decimal(6))
    installed.delete()  # what charging_profiles_cleared does on the charger's Accepted
    [view] = site_sessions(site=site, now=T0)
    assert (view.limit, view.held_a) == (None, Decimal(32))  # its failsafe default: the site's 32 A


def test_a_charger_moved_from_another_site_is_held_at_the_tx_profile_that_site_sent(register_charge_point):
    """Probe: a charger taken off site A (its session's TxProfile of 32 A still on it, valid for
    ``CSMS_SITES_PROFILE_VALIDITY``) and put on site B was taken by B for charging under B's failsafe
    default; an allocation equal to it sent nothing, and the car drew 32 A on B for up to 15 minutes.
    So after site A was deleted (its limits gone with it): the TxProfile installed says what it holds."""
    site_a = Site.objects.create(name="A", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    site_b = Site.objects.create(name="B", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(20))
    charge_point = register_charge_point("CP-MOVED")
    session = Transaction.objects.create(
        charge_point=charge_point, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=T0
    )
    SessionLimit.objects.create(site=site_a, transaction=session, limit_a=Decimal(32), sent_at=T0)
    installed = _tx_profile_installed(session)
    installed.profile = {
        "charging_profile_id": installed.profile_id,
        "charging_schedule": {
            "charging_rate_unit": "A",
            "charging_schedule_period": [{"start_period": 0, "limit": 32}],
        },
    }
    installed.save()
    SiteMember.objects.create(site=site_b, charge_point=charge_point)  # taken off A, put on B
    ChargePoint.objects.filter(pk=charge_point.pk).update(connection_channel="channel")  # sent B's failsafe
    [view] = site_sessions(site=site_b, now=T0 + timedelta(seconds=10))
    assert (view.limit is not None, view.held_a) == (True, Decimal(32))
    site_a.delete()
    [view] = site_sessions(site=site_b, now=T0 + timedelta(seconds=10))
    assert (view.limit is not None, view.held_a) == (True, Decimal(32))
    assert view.limit.sent_at == installed.installed_at  # renewed at half its validity from then
    installed.delete()  # its TxProfile cleared: the failsafe default of B (20 A for its one outlet)
    [view] = site_sessions(site=site_b, now=T0 + timedelta(seconds=10))
    assert (view.limit, view.held_a) == (None, Decimal(20))


@pytest.mark.parametrize(
    ("kind", "extra", "running", "over"),
    [
        ("Absolute", {}, 5, 11),  # 10 minutes from T0
        ("Relative", {}, 5, 11),  # 10 minutes from the session's start (T0)
        ("Recurring", {"recurrency_kind": "Daily"}, 24 * 60 + 5, 24 * 60 + 11),  # 10 minutes each day from T0
    ],
)
def test_an_operator_s_profile_whose_schedule_has_run_its_duration_no_longer_prevails(
    register_charge_point, kind, extra, running, over
):
    """Probe: an operator's TxProfile above the site's stack level (6 A for 10 minutes) was counted
    for the session as long as its validity lasted, though the charger falls back to the next lower
    stack level when its schedule's duration is over (1.6 §3.13.2, 2.0.1 K01): the site's TxProfile
    or its failsafe default, more than the 6 A the site counted it at; an operator's TxDefaultProfile
    likewise."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    charge_point = register_charge_point("CP-STACKED")
    SiteMember.objects.create(site=site, charge_point=charge_point)
    Transaction.objects.create(
        charge_point=charge_point, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=T0
    )
    schedule = {
        "charging_rate_unit": "A",
        "duration": 600,
        "charging_schedule_period": [{"start_period": 0, "limit": 6}],
    }
    if kind != "Relative":
        schedule["start_schedule"] = "2026-05-01T10:00:00Z"
    for purpose, connector, stack_level in (("TxProfile", 1, 2), ("TxDefaultProfile", 0, 1)):
        InstalledChargingProfile.objects.create(
            charge_point=charge_point,
            connector_id=connector,
            profile_id=stack_level,
            purpose=purpose,
            stack_level=stack_level,
            profile={
                "charging_profile_id": stack_level,
                "stack_level": stack_level,
                "charging_profile_purpose": purpose,
                "charging_profile_kind": kind,
                "charging_schedule": schedule,
                **extra,
            },
        )
    [view] = site_sessions(site=site, now=T0 + timedelta(minutes=running))
    assert (view.override_a, view.default_a) == (Decimal(6), Decimal(6))
    [view] = site_sessions(site=site, now=T0 + timedelta(minutes=over))
    assert (view.override_a, view.default_a) == (None, None)


def test_a_1_6_operator_s_tx_default_profile_on_the_session_s_connector_replaces_the_failsafe_there(
    register_charge_point,
):
    """1.6 §3.13.1 TxDefaultProfile: "In the event a TxDefaultProfile for connector 0 is installed, and
    the Central System sends a new profile with ConnectorId >0, the TxDefaultProfile SHALL be replaced
    only for that specific connector". Probe: an operator's 32 A default at the failsafe's stack level
    (0) on connector 1 was not counted (only those above it were): the site took a new session on
    connector 1 for drawing its 6 A failsafe, while the charger let the car draw 32 A."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    charge_point = register_charge_point("CP-DEFAULT")
    SiteMember.objects.create(site=site, charge_point=charge_point)
    _failsafe_installed(charge_point, 6)
    InstalledChargingProfile.objects.create(
        charge_point=charge_point,
        connector_id=1,
        profile_id=7,
        purpose="TxDefaultProfile",
        stack_level=0,
        ocpp_version="1.6",
        profile={
            "charging_profile_id": 7,
            "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Relative",
            "charging_schedule": {
                "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 0, "limit": 32}],
            },
        },
    )
    for connector in (1, 2):
        Transaction.objects.create(
            charge_point=charge_point,
            ocpp_transaction_id=str(connector),
            start_key=f"k{connector}",
            connector_id=connector,
            started_at=T0,
        )
    views = {view.transaction.connector_id: view for view in site_sessions(site=site, now=T0)}
    assert (views[1].default_a, views[1].held_a) == (Decimal(32), Decimal(32))
    assert (views[2].default_a, views[2].held_a) == (None, Decimal(6))  # connector 2 keeps the failsafe


def test_a_1_6_operator_s_default_on_a_member_s_connector_is_warned_to_replace_the_site_s_failsafe_there(
    register_charge_point,
):
    """Probe: an operator's TxDefaultProfile at the failsafe's stack level (0) on connector 1 of a site's
    member replaces the failsafe there (1.6 §3.13.1, see the test above), and set_charging_profile sent it
    without a warning. It names the site's failsafe now."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    charge_point = register_charge_point("CP-DEFAULT")
    SiteMember.objects.create(site=site, charge_point=charge_point)
    _failsafe_installed(charge_point, 6)
    body = {
        "connector_id": 1,
        "cs_charging_profiles": {
            "charging_profile_id": 7,
            "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Relative",
            "charging_schedule": {
                "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 0, "limit": 32}],
            },
        },
    }
    assert charging_profile_conflicts(charge_point=charge_point, target=profile_target(body)) == [
        f"Profile {FAILSAFE_PROFILE_ID} (the failsafe default of site 'Depot') on connector 0 has the same purpose"
        " (TxDefaultProfile) and stack level (0); the charger replaces it for connector 1 with profile 7"
        " (OCPP 1.6 §3.13.1): the other connectors keep it."
    ]


def test_a_1_6_signed_current_is_not_taken_for_the_car_s_draw(register_charge_point):
    """A 1.6 SignedData value is the signed blob: "3E50" is no current, however it reads; a 2.0.1
    reading with its signature beside it is one."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    charge_point = register_charge_point("CP-SIGNED")
    SiteMember.objects.create(site=site, charge_point=charge_point)
    session = Transaction.objects.create(
        charge_point=charge_point, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=T0
    )
    _reading(session, "3E50", T0, format="SignedData", signed_data={"format": "SignedData", "value": "3E50"})
    [view] = site_sessions(site=site, now=T0 + timedelta(seconds=5))
    assert view.demand.draw_a is None
    _reading(session, "9.5", T0 + timedelta(seconds=1), signed_data={"signed_meter_data": "OCMF|9.5"})
    [view] = site_sessions(site=site, now=T0 + timedelta(seconds=5))
    assert view.demand.draw_a == Decimal("9.5")


def test_the_default_failsafe_shares_what_the_site_gives_its_chargers_not_its_whole_capacity(register_charge_point):
    """32 A less a fixed 10 A base load: 22 A to share; an explicit failsafe above 22 A is refused, the
    computed one gave one member 32 A (42 A on a 32 A connection with the CSMS away)."""
    site = Site.objects.create(name="Base", phases=1, capacity_a=Decimal(32), base_load_a=Decimal(10))
    assert site_failsafe_limit(site=site, outlets=1) == Decimal(22)
    assert site_failsafe_limit(site=site, outlets=2) == Decimal(11)
    assert site_failsafe_limit(site=site, outlets=4) == Decimal(0)  # 5.5 A: under the 6 A minimum


def test_the_default_failsafe_is_shared_among_the_members_connectors_and_evses(register_charge_point):
    """Round 43's probe: a two-connector 1.6 charger and a two-EVSE 2.0.1 station on a 32 A site were
    each given a 16 A failsafe TxDefaultProfile, which each connector (EVSE) applies to its own
    session: four sessions at 64 A once the CSMS was away."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    dual = register_charge_point("CP-DUAL")
    station = register_charge_point("CS-DUAL", ocpp_version="2.0.1")
    fresh = register_charge_point("CP-NEW")  # no status reported yet: one at least
    for charge_point in (dual, station, fresh):
        SiteMember.objects.create(site=site, charge_point=charge_point)
    ChargePoint.objects.filter(pk=dual.pk).update(connection_channel="channel")  # sent the site's failsafe
    for connector_id in (0, 1, 2):  # 1.6: connector 0 is the charger itself
        Connector.objects.create(charge_point=dual, connector_id=connector_id)
    for evse_id in (1, 2):
        Connector.objects.create(charge_point=station, evse_id=evse_id, connector_id=1)
    assert site_outlets(members=site.members.all()) == 5
    session = Transaction.objects.create(
        charge_point=dual, ocpp_transaction_id="1", start_key="k", connector_id=2, started_at=T0
    )
    [view] = site_sessions(site=site, now=T0)
    assert (view.transaction, view.held_a) == (session, Decimal("6.4"))  # 32 / 5, not 32 / 3 = 10.6


def test_a_session_whose_evse_is_not_known_yet_is_not_steered(register_charge_point):
    """A 2.0.1 session authorized before the cable has no EVSE: its TxProfile went to EVSE 0, was
    refused, the charger was flagged and the site's other session paused at 0 A."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    charge_point = register_charge_point("CP-E", ocpp_version="2.0.1")
    charge_point.connection_channel = "specific.x!y"
    charge_point.save()
    SiteMember.objects.create(site=site, charge_point=charge_point)
    session = Transaction.objects.create(
        charge_point=charge_point, ocpp_version="2.0.1", ocpp_transaction_id="TX", start_key="TX", started_at=T0
    )
    [view] = site_sessions(site=site, now=T0)
    assert not view.adjustable
    session.evse_id = 1
    session.save()
    [view] = site_sessions(site=site, now=T0)
    assert view.adjustable


def test_a_stored_site_whose_voltage_is_not_positive_gives_nothing_from_its_power_capacity():
    """A row saved before voltages were checked: no DivisionByZero, and no unbounded allocation."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(0), capacity_w=Decimal(7000))
    assert site_capacity_a(site=site) == 0
    limits = site_limits(site=site, extra_load_a=(Decimal(0),))
    assert (limits.capacity_a, limits.capacity_w) == (0, None)
    assert sites_recompute_all() == 1


def test_a_member_moved_to_another_ocpp_version_counts_the_outlets_of_that_version_only(register_charge_point):
    """Probe: a two-connector 1.6 charger upgraded to a one-EVSE 2.0.1 station still counted two
    outlets (its 1.6 connectors 1 and 2 beside EVSE 1): the site's failsafe default was halved."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    moved = register_charge_point("CP-MOVED", ocpp_version="1.6")
    SiteMember.objects.create(site=site, charge_point=moved)
    for connector_id in (1, 2):
        Connector.objects.create(charge_point=moved, connector_id=connector_id)
    assert site_outlets(members=site.members.all()) == 2
    ChargePoint.objects.filter(pk=moved.pk).update(ocpp_version="2.0.1")
    Connector.objects.create(charge_point=moved, evse_id=1, connector_id=1)
    assert site_outlets(members=site.members.all()) == 1


def test_a_member_moved_to_another_ocpp_version_holds_none_of_the_old_version_s_profiles(register_charge_point):
    """Probe: a 1.6 member upgraded to 2.0.1 under the same id still had its 1.6 profiles counted: an
    operator's 1.6 TxDefaultProfile (6 A) as the session's default, and the site's 1.6 failsafe as
    installed, so the site never sent the station its failsafe default again."""
    from sites.engine import _failsafe_changes
    from sites.selectors import FAILSAFE_PROFILE_ID

    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    charge_point = register_charge_point("CP-MOVED", ocpp_version="1.6")
    ChargePoint.objects.filter(pk=charge_point.pk).update(connection_channel="channel")
    member = SiteMember.objects.create(site=site, charge_point=charge_point)
    for profile_id, stack_level, limit in ((1, 1, 6), (FAILSAFE_PROFILE_ID, 0, 32)):
        InstalledChargingProfile.objects.create(
            charge_point=charge_point,
            connector_id=0,
            profile_id=profile_id,
            purpose="TxDefaultProfile",
            stack_level=stack_level,
            ocpp_version="1.6",
            profile={
                "charging_profile_id": profile_id,
                "stack_level": stack_level,
                "charging_profile_purpose": "TxDefaultProfile",
                "charging_profile_kind": "Absolute",
                "charging_schedule": {
                    "charging_rate_unit": "A",
                    "charging_schedule_period": [{"start_period": 0, "limit": limit}],
                },
            },
        )
    Transaction.objects.create(
        charge_point=charge_point, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=T0
    )
    [view] = site_sessions(site=site, now=T0)
    assert view.default_a == Decimal(6)
    member = SiteMember.objects.select_related("charge_point").get(pk=member.pk)
    assert _failsafe_changes(site, [member], Decimal(32)) == []  # held already
    ChargePoint.objects.filter(pk=charge_point.pk).update(ocpp_version="2.0.1")
    Transaction.objects.all().delete()
    Transaction.objects.create(
        charge_point=charge_point,
        ocpp_transaction_id="tx-2",
        start_key="k2",
        connector_id=1,
        evse_id=1,
        ocpp_version="2.0.1",
        started_at=T0,
    )
    [view] = site_sessions(site=site, now=T0)
    assert view.default_a is None
    member = SiteMember.objects.select_related("charge_point").get(pk=member.pk)
    assert [change.limit_a for change in _failsafe_changes(site, [member], Decimal(32))] == [Decimal(32)]


def test_an_offline_charger_is_counted_at_its_tx_profile_until_that_profile_ends(register_charge_point, settings):
    """Probe: with ``CSMS_SITES_OFFLINE_RESERVE_SECONDS`` shorter than ``CSMS_SITES_PROFILE_VALIDITY``
    (120 s against 900 s), a charger gone offline 5 minutes after its 24 A TxProfile was renewed was
    counted at its 8 A failsafe default, and its share handed on to the others, while it still
    charged at 24 A until that profile's ``validTo`` (10 more minutes): the site overloaded by 16 A."""
    from sites.selectors import fixed_load

    settings.CSMS_SITES_OFFLINE_RESERVE_SECONDS = 120
    settings.CSMS_SITES_PROFILE_VALIDITY = 900
    site = Site.objects.create(
        name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32), failsafe_current_a=Decimal(8)
    )
    charge_point = register_charge_point("CP-AWAY")
    SiteMember.objects.create(site=site, charge_point=charge_point)
    session = Transaction.objects.create(
        charge_point=charge_point, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=T0
    )
    renewed = T0 + timedelta(minutes=1)
    SessionLimit.objects.create(site=site, transaction=session, limit_a=Decimal(24), sent_at=renewed, raised_at=T0)
    _tx_profile_installed(session)
    _failsafe_installed(charge_point, 8)
    ChargePoint.objects.filter(pk=charge_point.pk).update(
        connection_channel="", offline_since=renewed + timedelta(minutes=5)
    )
    for minutes, expected in ((6, 24), (8, 24), (14.9, 24), (15, 8)):  # validTo: renewed + 15 min
        now = renewed + timedelta(minutes=minutes)
        [view] = site_sessions(site=site, now=now)
        assert (minutes, fixed_load(view=view, failsafe_a=Decimal(8), now=now)) == (minutes, Decimal(expected))


def test_a_session_under_its_failsafe_default_is_counted_at_the_one_its_charger_holds(register_charge_point):
    """Probe: a charger went offline holding the site's 16 A failsafe TxDefaultProfile, its session
    under it (no TxProfile); the site's failsafe was then lowered to 8 A (a member added, a lower
    capacity), which the charger never received. The site counted the session at 8 A, and gave the
    other 8 A it still drew to the other sessions: so too while a charger silent on the lowered
    failsafe (a timeout) was counted at "the limit it held"."""
    from sites.selectors import FAILSAFE_PROFILE_ID, fixed_load

    site = Site.objects.create(
        name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32), failsafe_current_a=Decimal(8)
    )
    charge_point = register_charge_point("CP-OLD-DEFAULT")
    SiteMember.objects.create(site=site, charge_point=charge_point)
    InstalledChargingProfile.objects.create(
        charge_point=charge_point,
        connector_id=0,
        profile_id=FAILSAFE_PROFILE_ID,
        purpose="TxDefaultProfile",
        stack_level=0,
        ocpp_version="1.6",
        profile={
            "charging_profile_id": FAILSAFE_PROFILE_ID,
            "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Relative",
            "charging_schedule": {
                "charging_rate_unit": "A",
                "charging_schedule_period": [{"start_period": 0, "limit": 16.0}],
            },
        },
    )
    Transaction.objects.create(
        charge_point=charge_point, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=T0
    )
    ChargePoint.objects.filter(pk=charge_point.pk).update(connection_channel="", offline_since=T0)
    now = T0 + timedelta(hours=2)  # long past the offline reserve: it charges under its failsafe default
    [view] = site_sessions(site=site, now=now)
    assert view.held_a == Decimal(16)
    assert fixed_load(view=view, failsafe_a=Decimal(8), now=now) == Decimal(16)


@pytest.mark.django_db
def test_a_profile_in_a_rejected_by_a_charger_found_to_take_w_alone_meanwhile_flags_nothing(register_charge_point):
    """Review: a failsafe sent in A while the charger's units were not known, waiting behind its
    configuration read, which then read them as W alone: its rejection flagged the charger for good
    (counted at its maximum) though it takes what the site sends in W. Not a refusal: the charger is
    left to the next pass or recompute, which sends W; one whose units were known is flagged."""
    from commands.models import Command, CommandState
    from sites.engine import Change, _record, _Unanswered

    site = Site.objects.create(name="Depot", phases=1, capacity_a=Decimal(32))
    charge_point = register_charge_point("CP-DC")
    member = SiteMember.objects.select_related("charge_point").get(
        pk=SiteMember.objects.create(site=site, charge_point=charge_point).pk
    )
    rejected = Command.objects.create(
        charge_point_identity="CP-DC",
        ocpp_version="1.6",
        command="set_charging_profile",
        action="SetChargingProfile",
        state=CommandState.REJECTED,
    )
    change = Change(member=member, limit_a=Decimal(16), previous_a=Decimal(0))
    now = datetime(2026, 5, 1, tzinfo=UTC)
    ChargePoint.objects.filter(pk=charge_point.pk).update(charging_rate_units="W")  # read while the profile waited
    unanswered = _Unanswered()
    assert _record(site, change, rejected, now, unanswered) is False
    member.refresh_from_db()
    assert (member.smart_charging_flag, unanswered.chargers) == ("", {charge_point.pk})

    ChargePoint.objects.filter(pk=charge_point.pk).update(charging_rate_units="A")  # its units were known: A
    assert _record(site, change, rejected, now, _Unanswered()) is False
    member.refresh_from_db()
    assert member.smart_charging_flag.startswith("SetChargingProfile rejected")
