"""The sites API: sites, members, connector maximums, the live base load."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from charging.models import InstalledChargingProfile, MeterSample, Transaction
from sites.engine import site_apply
from sites.models import Site, SiteMember
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_subscription_create

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
SITE = {"name": "Depot", "phases": 1, "voltage_v": "230", "capacity_a": "32"}


def create_site(api_client, **fields):
    response = api_client.post("/api/v1/sites/", {**SITE, **fields}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_site_is_created_read_changed_and_deleted(api_client):
    site = create_site(api_client)
    assert site["capacity_a"] == "32.0" and site["min_current_a"] == "6.0"
    assert api_client.get(f"/api/v1/sites/{site['id']}").json()["name"] == "Depot"
    changed = api_client.patch(f"/api/v1/sites/{site['id']}/", {"capacity_a": "40"}, format="json")
    assert changed.json()["capacity_a"] == "40.0"
    assert api_client.delete(f"/api/v1/sites/{site['id']}/").status_code == 204
    assert not Site.objects.exists()


def test_a_site_without_any_capacity_is_refused_naming_the_field(api_client):
    response = api_client.post("/api/v1/sites/", {**SITE, "capacity_a": None}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "ValidationError"
    assert "capacity_a" in response.json()["details"]


@pytest.mark.parametrize(
    ("field", "value"), [("phases", 2), ("voltage_v", "0"), ("capacity_a", "-1"), ("min_current_a", "abc")]
)
def test_bad_site_fields_are_named(api_client, field, value):
    response = api_client.post("/api/v1/sites/", {**SITE, field: value}, format="json")
    assert response.status_code == 400
    assert field in response.json()["details"]


def test_members_with_connector_maximums(api_client, register_charge_point):
    register_charge_point("CP-A")
    site = create_site(api_client)
    response = api_client.post(
        f"/api/v1/sites/{site['id']}/members",
        {
            "charge_point_id": "CP-A",
            "max_current_a": "16",
            "connector_maximums": [{"connector_id": 1, "max_current_a": "10"}],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    listed = api_client.get(f"/api/v1/sites/{site['id']}/members").json()
    assert listed[0]["charge_point_id"] == "CP-A"
    assert listed[0]["connector_maximums"] == [{"connector_id": 1, "max_current_a": "10.0"}]
    patched = api_client.patch(
        f"/api/v1/sites/{site['id']}/members/CP-A", {"priority": 2, "connector_maximums": []}, format="json"
    )
    assert patched.json()["priority"] == 2 and patched.json()["connector_maximums"] == []
    assert api_client.delete(f"/api/v1/sites/{site['id']}/members/CP-A").status_code == 204
    assert not SiteMember.objects.exists()


def test_a_member_added_again_is_a_400_naming_it_and_keeps_what_it_had(api_client, register_charge_point):
    """Probe: a second POST of a member of the site was answered 201 and changed it, the fields it
    left out put back to their defaults: its 16 A maximum to 32 A (the site counted it at twice what
    its cable takes), its priority to 0. A change is a PATCH."""
    register_charge_point("CP-A")
    site = create_site(api_client)
    members = f"/api/v1/sites/{site['id']}/members"
    first = api_client.post(members, {"charge_point_id": "CP-A", "max_current_a": "16", "priority": 2}, format="json")
    assert first.status_code == 201, first.json()
    again = api_client.post(members, {"charge_point_id": "CP-A"}, format="json")
    assert again.status_code == 400, again.json()
    assert again.json()["error"] == "ValidationError"
    assert "CP-A" in again.json()["details"]["charge_point_id"][0]
    assert api_client.get(f"{members}/CP-A").json() == first.json()


def test_a_misspelt_field_of_a_connector_maximum_is_a_400_naming_it(api_client, register_charge_point):
    """It was dropped: the member was added without the maximum its sender meant to give."""
    register_charge_point("CP-A")
    site = create_site(api_client)
    maximum = {"connector_id": 1, "max_current_a": "10", "max_curent_a": "6"}
    body = {"charge_point_id": "CP-A", "connector_maximums": [maximum]}
    response = api_client.post(f"/api/v1/sites/{site['id']}/members", body, format="json")
    assert response.status_code == 400
    assert response.json()["details"]["connector_maximums"]["0"] == {"max_curent_a": ["Unknown field."]}
    assert not SiteMember.objects.exists()


def test_the_schema_documents_a_members_post_as_it_is_answered(api_client, client):
    """The POST shared the GET's schema: documented 200 with a list of members, it answers 201 with
    the one member added (a client generated from the schema refused the answer)."""
    members = client.get("/api/v1/schema/?format=json").json()["paths"]["/api/v1/sites/{id}/members/"]
    member = {"$ref": "#/components/schemas/SiteMember"}
    assert "200" not in members["post"]["responses"]
    assert members["post"]["responses"]["201"]["content"]["application/json"]["schema"] == member
    assert members["post"]["requestBody"]["content"]["application/json"]["schema"] == member
    listed = members["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed == {"type": "array", "items": member}


def test_a_sites_members_are_listed_in_a_few_queries_however_many(api_client, register_charge_point):
    """Their connector maximums were read one query per member (a depot of 200 chargers: 200)."""
    site = create_site(api_client)

    def listed() -> tuple[list[dict], int]:
        with CaptureQueriesContext(connection) as queries:
            response = api_client.get(f"/api/v1/sites/{site['id']}/members")
        assert response.status_code == 200
        return response.json(), len(queries.captured_queries)

    for number in range(6):
        register_charge_point(f"CP-{number}")
        maximums = [{"connector_id": 2, "max_current_a": "8"}, {"connector_id": 1, "max_current_a": str(10 + number)}]
        body = {"charge_point_id": f"CP-{number}", "connector_maximums": maximums}
        assert api_client.post(f"/api/v1/sites/{site['id']}/members", body, format="json").status_code == 201
        if number == 0:
            _, with_one = listed()
    members, with_six = listed()
    assert with_six == with_one
    assert [member["connector_maximums"] for member in members][5] == [
        {"connector_id": 1, "max_current_a": "15.0"},
        {"connector_id": 2, "max_current_a": "8.0"},
    ]


def test_a_charger_belongs_to_at_most_one_site(api_client, register_charge_point):
    register_charge_point("CP-A")
    first, second = create_site(api_client), create_site(api_client, name="Office")
    response = api_client.post(f"/api/v1/sites/{first['id']}/members", {"charge_point_id": "CP-A"}, format="json")
    assert response.status_code == 201
    response = api_client.post(f"/api/v1/sites/{second['id']}/members", {"charge_point_id": "CP-A"}, format="json")
    assert response.status_code == 400
    assert "charge_point_id" in response.json()["details"]
    assert SiteMember.objects.get().site_id == first["id"]


def test_unknown_charger_and_phase_are_named(api_client, register_charge_point):
    register_charge_point("CP-A")
    site = create_site(api_client)
    unknown = api_client.post(f"/api/v1/sites/{site['id']}/members", {"charge_point_id": "NOPE"}, format="json")
    assert "charge_point_id" in unknown.json()["details"]
    phase = api_client.post(
        f"/api/v1/sites/{site['id']}/members", {"charge_point_id": "CP-A", "phases": "L2"}, format="json"
    )
    assert phase.status_code == 400 and "phases" in phase.json()["details"]


def test_only_clearing_the_flag_is_allowed(api_client, register_charge_point):
    register_charge_point("CP-A")
    site = create_site(api_client)
    api_client.post(f"/api/v1/sites/{site['id']}/members", {"charge_point_id": "CP-A"}, format="json")
    SiteMember.objects.update(smart_charging_flag="SetChargingProfile rejected")
    refused = api_client.patch(f"/api/v1/sites/{site['id']}/members/CP-A", {"smart_charging_flag": "x"}, format="json")
    assert refused.status_code == 400
    cleared = api_client.patch(f"/api/v1/sites/{site['id']}/members/CP-A", {"smart_charging_flag": ""}, format="json")
    assert cleared.json()["smart_charging_flag"] == ""


def test_a_member_as_read_is_taken_back_as_it_was(api_client, register_charge_point):
    """A PATCH of what a GET returned (its own charger, the flag the engine set) was a 400: "Remove
    the member and add it to change the charger", and "Only clearing the flag", though neither changed."""
    register_charge_point("CP-A")
    register_charge_point("CP-B")
    site = create_site(api_client)
    api_client.post(f"/api/v1/sites/{site['id']}/members", {"charge_point_id": "CP-A"}, format="json")
    SiteMember.objects.update(smart_charging_flag="SetChargingProfile rejected", flagged_at=T0)
    read = api_client.get(f"/api/v1/sites/{site['id']}/members/CP-A").json()
    changed = api_client.patch(f"/api/v1/sites/{site['id']}/members/CP-A", {**read, "priority": 3}, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json() == {**read, "priority": 3}
    member = SiteMember.objects.get()
    assert (member.priority, member.smart_charging_flag, member.flagged_at) == (3, "SetChargingProfile rejected", T0)
    moved = api_client.patch(f"/api/v1/sites/{site['id']}/members/CP-A", {"charge_point_id": "CP-B"}, format="json")
    assert moved.status_code == 400 and "charge_point_id" in moved.json()["details"]
    typed = api_client.patch(f"/api/v1/sites/{site['id']}/members/CP-A", {"smart_charging_flag": "x"}, format="json")
    assert typed.status_code == 400 and "smart_charging_flag" in typed.json()["details"]
    assert SiteMember.objects.get().charge_point.charge_point_id == "CP-A"


def test_live_base_load_needs_one_value_per_phase(api_client):
    site = create_site(api_client, phases=3, capacity_a="63")
    wrong = api_client.post(f"/api/v1/sites/{site['id']}/base-load", {"load_a": ["10"]}, format="json")
    assert wrong.status_code == 400 and "load_a" in wrong.json()["details"]
    negative = api_client.post(f"/api/v1/sites/{site['id']}/base-load", {"load_a": ["1", "-2", "3"]}, format="json")
    assert negative.status_code == 400 and "load_a" in negative.json()["details"]
    posted = api_client.post(f"/api/v1/sites/{site['id']}/base-load", {"load_a": ["10", "12.5", "8"]}, format="json")
    assert posted.status_code == 200
    assert posted.json()["live_base_load_a"] == ["10.0", "12.5", "8.0"]


def test_unknown_site_is_404(api_client):
    assert api_client.get("/api/v1/sites/999").json()["error"] == "NotFound"
    assert api_client.get("/api/v1/sites/999/members").status_code == 404


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"failsafe_current_a": "100"}, "failsafe_current_a"),  # each member's profile while the CSMS is away
        ({"min_current_a": "40"}, "min_current_a"),
        ({"base_load_a": "20", "failsafe_current_a": "16"}, "failsafe_current_a"),  # 12 A left for a charger
        ({"capacity_w": "4600", "failsafe_current_a": "25"}, "failsafe_current_a"),  # 20 A from the power
    ],
)
def test_currents_above_what_the_site_gives_one_charger_are_refused(api_client, fields, named):
    response = api_client.post("/api/v1/sites/", {**SITE, **fields}, format="json")
    assert response.status_code == 400, response.json()
    assert named in response.json()["details"]
    assert not Site.objects.exists()


def test_the_allocation_webhook_writes_currents_as_the_allocation_history_does(api_client):
    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["site.allocation_changed"])
    site = Site.objects.create(name="Depot", phases=1, capacity_a=32)  # no session: a sum of 0 A
    site_apply(site_id=site.pk)
    [history] = api_client.get(f"/api/v1/sites/{site.pk}/allocation/").json()["history"]
    data = json.loads(WebhookDelivery.objects.get().body)["data"]
    assert (data["capacity_a"], data["limits_sum_a"]) == (history["capacity_a"], history["limits_sum_a"])
    assert history["limits_sum_a"] == "0.0"


def test_a_patch_is_checked_on_the_whole_site_so_a_stored_zero_voltage_is_named(api_client):
    """The admin once saved a voltage of 0; a PATCH leaving the voltage out then divided by it (500)."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=0, capacity_a=32)
    response = api_client.patch(f"/api/v1/sites/{site.pk}/", {"capacity_w": "7000"}, format="json")
    assert response.status_code == 400
    assert response.json()["details"] == {"voltage_v": ["The voltage (phase to neutral) must be positive."]}


def test_a_query_parameter_the_members_do_not_read_is_a_400_naming_it(api_client):
    """Probe: ``members?charge_point_id=CP-A`` answered every member, taken for that one."""
    site = create_site(api_client)
    response = api_client.get(f"/api/v1/sites/{site['id']}/members?charge_point_id=CP-A")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["details"] == {"charge_point_id": ["Unknown query parameter."]}
    assert api_client.get(f"/api/v1/sites/{site['id']}/members?format=json").status_code == 200


def _installed(charge_point, *, purpose, connector_id, profile_id, stack_level, unit, limit, **extra):
    """A profile an operator set and the charger accepted, as its answer records it."""
    profile = {
        "charging_profile_id": profile_id,
        "stack_level": stack_level,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Relative",
        "charging_schedule": {
            "charging_rate_unit": unit,
            "charging_schedule_period": [{"start_period": 0, "limit": limit}],
        },
        **extra,
    }
    InstalledChargingProfile.objects.create(
        charge_point=charge_point,
        connector_id=connector_id,
        profile_id=profile_id,
        purpose=purpose,
        stack_level=stack_level,
        profile=profile,
    )


def test_the_allocation_gives_a_session_under_an_operator_s_tx_profile_the_limit_that_profile_sets(
    api_client, register_charge_point
):
    """Probe: an operator's 1.6 TxProfile at stack level 2 (5520 W: 24 A at 230 V) prevails over the
    site's (§3.13.2), and the site counts the session at 24 A (its history says so), but the
    allocation's ``sessions`` gave its limit as the 32 A failsafe default the site holds it under."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=230, capacity_a=32)
    charge_point = register_charge_point("CP-STACKED")
    SiteMember.objects.create(site=site, charge_point=charge_point)
    session = Transaction.objects.create(
        charge_point=charge_point, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=timezone.now()
    )
    _installed(
        charge_point,
        purpose="TxProfile",
        connector_id=1,
        profile_id=7,
        stack_level=2,
        unit="W",
        limit=5520,
        transaction_id=session.pk,
    )
    site_apply(site_id=site.pk)
    allocation = api_client.get(f"/api/v1/sites/{site.pk}/allocation").json()
    [held] = allocation["sessions"]
    assert (held["limit_a"], held["steered"]) == ("24.0", False)
    assert allocation["history"][0]["limits"] == {str(session.pk): "24.0"}


def test_the_allocation_history_gives_a_session_without_a_tx_profile_the_default_its_charger_holds(
    api_client, register_charge_point
):
    """Probe: a session holding no TxProfile of the site's was recorded in the history (and the
    site.allocation_changed webhook) at the site's failsafe default, whatever its charger applies and
    the site counts it at: under an operator's TxDefaultProfile at stack level 1 of 32 A the history
    said 16 A (the 32 A site's failsafe for its two members); on a charger away since it accepted a
    16 A failsafe, the site's failsafe lowered to 8 A since (four members), it said 8 A."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=230, capacity_a=32)
    operator_s, away = register_charge_point("CP-DEFAULT"), register_charge_point("CP-AWAY")
    sessions = []
    for charge_point in (operator_s, away):
        SiteMember.objects.create(site=site, charge_point=charge_point)
        sessions.append(
            Transaction.objects.create(
                charge_point=charge_point,
                ocpp_transaction_id=charge_point.charge_point_id,
                start_key=charge_point.charge_point_id,
                connector_id=1,
                started_at=timezone.now(),
            )
        )
    _installed(operator_s, purpose="TxDefaultProfile", connector_id=0, profile_id=5, stack_level=1, unit="A", limit=32)
    _installed(away, purpose="TxDefaultProfile", connector_id=0, profile_id=1700000, stack_level=0, unit="A", limit=16)
    for charge_point_id in ("CP-3", "CP-4"):  # the failsafe: 32 / 4 = 8 A
        SiteMember.objects.create(site=site, charge_point=register_charge_point(charge_point_id))
    site_apply(site_id=site.pk)
    allocation = api_client.get(f"/api/v1/sites/{site.pk}/allocation").json()
    limits = {str(sessions[0].pk): "32.0", str(sessions[1].pk): "16.0"}
    assert [(s["transaction_id"], s["limit_a"]) for s in allocation["sessions"]] == [
        (int(pk), limit) for pk, limit in limits.items()
    ]
    [history] = allocation["history"]
    assert (history["limits"], history["limits_sum_a"]) == (limits, "48.0")


@pytest.mark.parametrize(
    ("fields", "capacity"),
    [
        ({"capacity_a": None, "capacity_w": "7000"}, "30.4"),  # 7000 W / 230 V, floored
        ({"capacity_a": "40", "capacity_w": "7000"}, "30.4"),  # the lower of the two
        ({"phases": 3, "capacity_a": "32", "capacity_w": "11000"}, "15.9"),  # 11000 W / (3 x 230 V)
        ({"capacity_a": "32", "capacity_w": "9000"}, "32.0"),
    ],
)
def test_the_allocation_history_and_webhook_give_the_capacity_per_phase_the_site_is_shared_to(
    api_client, fields, capacity
):
    """Probe: a site with only ``capacity_w`` had ``capacity_a: null`` in its allocation history and
    webhook (its admin chart no capacity line), and one with both the A it was given, not the lower
    limit its power sets, which the allocator keeps to."""
    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["site.allocation_changed"])
    site = create_site(api_client, **fields)
    site_apply(site_id=site["id"])
    [history] = api_client.get(f"/api/v1/sites/{site['id']}/allocation/").json()["history"]
    data = json.loads(WebhookDelivery.objects.get().body)["data"]
    assert (history["capacity_a"], data["capacity_a"]) == (capacity, capacity)


def test_the_allocation_history_sums_the_limits_and_draws_on_the_site_s_most_loaded_phase(
    api_client, register_charge_point
):
    """Probe: three single-phase chargers on L1, L2 and L3 of a 32 A three-phase site, 32 A each,
    were recorded at a sum of limits of 96 A (and a draw of 60 A) against a capacity of 32 A per
    phase: a site within its limit charted three times over it. The sums are now per phase (A per
    phase, as the capacity and the base load): the most loaded phase's."""
    site = Site.objects.create(name="Depot", phases=3, voltage_v=230, capacity_a=32)
    for phase in ("L1", "L2", "L3", "L1L2L3"):
        charge_point = register_charge_point(f"CP-{phase}")
        SiteMember.objects.create(site=site, charge_point=charge_point, phases=phase, max_current_a=16)
        session = Transaction.objects.create(
            charge_point=charge_point, ocpp_transaction_id="1", start_key=phase, connector_id=1, started_at=T0
        )
        MeterSample.objects.create(
            charge_point=charge_point,
            transaction=session,
            source="MeterValues",
            timestamp=T0,
            received_at=T0,
            measurand="Current.Import",
            raw_value="10" if phase == "L2" else "5",
        )
    site_apply(site_id=site.pk)  # none connected: each counted at its 16 A maximum
    [history] = api_client.get(f"/api/v1/sites/{site.pk}/allocation/").json()["history"]
    assert set(history["limits"].values()) == {"16.0"}
    assert (history["capacity_a"], history["limits_sum_a"], history["measured_a"]) == ("32.0", "32.0", "15.0")
