from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chargepoints.models import ChargePoint, ChargerModelProfile, SchemaViolation, Strictness
from chargepoints.selectors import STRICT_PROFILE, ChargerProfile, charge_point_profile, charger_profile_for
from chargepoints.services.profiles import ReceivedViolation, schema_violations_record

pytestmark = pytest.mark.django_db


def profile(vendor: str, model: str = "", firmware: str = "", **fields: object) -> ChargerModelProfile:
    return ChargerModelProfile.objects.create(vendor=vendor, model=model, firmware_version_prefix=firmware, **fields)


def test_a_model_without_a_profile_is_strict_with_no_quirks():
    profile("Acme", "A1", strictness=Strictness.LENIENT)
    assert charger_profile_for(vendor="Acme", model="B2", firmware_version="1.0") == STRICT_PROFILE
    assert charger_profile_for(vendor="", model="", firmware_version="") == STRICT_PROFILE


def test_vendor_and_model_match_case_insensitively():
    profile("Acme", "A1", strictness=Strictness.LENIENT, quirks=["unit_aliases"])
    assert charger_profile_for(vendor="ACME", model="a1") == ChargerProfile(lenient=True, quirks=("unit_aliases",))


def test_the_most_specific_profile_wins():
    profile("Acme", strictness=Strictness.LENIENT, note="every Acme")
    profile("Acme", "A1", quirks=["strip_idtag_suffix"], id_tag_suffix="-0")
    profile("Acme", "A1", "2.", strictness=Strictness.LENIENT, quirks=["unit_aliases"])
    profile("Acme", "A1", "2.3", quirks=["formation_violation_spelling"])
    assert charger_profile_for(vendor="Acme", model="Z9", firmware_version="2.3.1").lenient is True
    assert charger_profile_for(vendor="Acme", model="A1", firmware_version="1.0") == ChargerProfile(
        quirks=("strip_idtag_suffix",), id_tag_suffix="-0"
    )
    assert charger_profile_for(vendor="Acme", model="A1", firmware_version="2.1").quirks == ("unit_aliases",)
    assert charger_profile_for(vendor="Acme", model="A1", firmware_version="2.3.9").quirks == (
        "formation_violation_spelling",
    )


def test_a_charger_s_profile_follows_the_model_it_last_booted_as(register_charge_point):
    profile("Acme", "A1", strictness=Strictness.LENIENT)
    register_charge_point("CP-NEW")
    register_charge_point("CP-ACME")
    ChargePoint.objects.filter(charge_point_id="CP-ACME").update(vendor="Acme", model="A1", firmware_version="1.0")
    assert charge_point_profile(charge_point_id="CP-NEW") == STRICT_PROFILE
    assert charge_point_profile(charge_point_id="CP-GONE") == STRICT_PROFILE
    assert charge_point_profile(charge_point_id="CP-ACME").lenient is True


def test_accepted_violations_are_recorded_with_an_excerpt_of_the_value(register_charge_point):
    register_charge_point("CP-1")
    at = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    count = schema_violations_record(
        charge_point_id="CP-1",
        action="BootNotification",
        violations=[
            ReceivedViolation(path="chargePointSerialNumber", validator="maxLength", value="S" * 300),
            ReceivedViolation(path="errorCode", validator="enum", value="Odd\x00"),
        ],
        received_at=at,
    )
    assert count == 2
    rows = {row.path: row for row in SchemaViolation.objects.all()}
    assert rows["chargePointSerialNumber"].value == "S" * 200
    assert rows["errorCode"].value == "Odd\\u0000" and rows["errorCode"].received_at == at
    assert schema_violations_record(charge_point_id="CP-GONE", action="X", violations=[], received_at=at) == 0


def test_operators_list_and_edit_profiles_in_the_admin(admin_client):
    page = admin_client.post(
        "/admin/chargepoints/chargermodelprofile/add/",
        {
            "vendor": "Acme",
            "model": "A1",
            "firmware_version_prefix": "",
            "strictness": Strictness.LENIENT,
            "quirks": ["strip_idtag_suffix", "unit_aliases"],
            "id_tag_suffix": r":\d+",
            "note": "sends 60-character serial numbers",
        },
    )
    assert page.status_code == 302
    saved = ChargerModelProfile.objects.get()
    assert saved.quirks == ["strip_idtag_suffix", "unit_aliases"]
    listing = admin_client.get("/admin/chargepoints/chargermodelprofile/?strictness__exact=lenient")
    assert "strip_idtag_suffix, unit_aliases" in listing.content.decode()


def test_the_admin_refuses_an_unknown_quirk_and_a_broken_pattern(admin_client):
    page = admin_client.post(
        "/admin/chargepoints/chargermodelprofile/add/",
        {"vendor": "Acme", "strictness": Strictness.STRICT, "quirks": ["make_it_work"], "id_tag_suffix": "(:"},
    )
    assert page.status_code == 200
    assert set(page.context["adminform"].form.errors) == {"quirks", "id_tag_suffix"}
    assert not ChargerModelProfile.objects.exists()


def test_recorded_violations_are_listed_in_the_admin(admin_client, register_charge_point):
    charge_point = register_charge_point("CP-ODD")
    SchemaViolation.objects.create(
        charge_point=charge_point,
        action="StatusNotification",
        path="errorCode",
        validator="enum",
        value="FanFailure",
        received_at=datetime(2026, 5, 1, tzinfo=UTC),
    )
    listing = admin_client.get("/admin/chargepoints/schemaviolation/?validator=enum").content.decode()
    assert "FanFailure" in listing and "CP-ODD" in listing


def test_the_violations_list_never_counts_or_sorts_the_whole_table(admin_client, register_charge_point):
    """A model with a wrong unit in every MeterValues records a violation a minute per charger: the
    list sorted every row by time and counted them all (1 s a page at 500 000). Newest recorded
    first by the primary key, the count capped, no other sort by a hand-written ``?o=``."""
    charge_point = register_charge_point("CP-ODD")
    for unit in ("KWH", "kwh"):
        schema_violations_record(
            charge_point_id=charge_point.charge_point_id,
            action="MeterValues",
            violations=[ReceivedViolation(path="meterValue/0/sampledValue/0/unit", validator="enum", value=unit)],
            received_at=datetime(2026, 5, 1, tzinfo=UTC),
        )
    for ordered in ("", "?o=1", "?o=-3.2"):
        with CaptureQueriesContext(connection) as queries:
            page = admin_client.get(f"/admin/chargepoints/schemaviolation/{ordered}")
        assert [row.value for row in page.context["cl"].result_list] == ["kwh", "KWH"]
        order = str(page.context["cl"].queryset.query).partition("ORDER BY ")[2]
        assert order == '"chargepoints_schemaviolation"."id" DESC', ordered
        counts = [each["sql"] for each in queries.captured_queries if "COUNT(" in each["sql"]]
        assert len(counts) == 1 and "LIMIT 10000" in counts[0], counts


@pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements are PostgreSQL only")
def test_the_plain_profile_lookup_finds_what_the_orm_finds(monkeypatch):
    profile("Acme", strictness=Strictness.LENIENT)
    profile("Acme", "A1", quirks=["unit_aliases"], id_tag_suffix="-x")
    profile("Acme", "A1", "2.3", quirks=["unit_aliases", "timestamp_without_zone"])
    profile("Other", "A1", strictness=Strictness.LENIENT)
    asked = [
        ("ACME", "a1", "2.3.1"),
        ("acme", "A1", "1.0"),
        ("Acme", "Z9", ""),
        ("Other", "a1", ""),
        ("None", "A1", ""),
    ]
    plain = [charger_profile_for(vendor=v, model=m, firmware_version=f) for v, m, f in asked]
    monkeypatch.setattr(connection, "vendor", "other")
    assert plain == [charger_profile_for(vendor=v, model=m, firmware_version=f) for v, m, f in asked]
