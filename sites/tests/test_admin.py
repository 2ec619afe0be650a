"""The site pages of the admin: members, flags and the allocation over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kernel.tests.page_forms import form_as_posted
from sites import services
from sites.admin import SiteMemberForm
from sites.models import AllocationSnapshot, ConnectorMaximum, Site, SiteMember
from sites.services import sites_recompute_all

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def site(register_charge_point) -> Site:
    site = Site.objects.create(name="Depot", phases=1, capacity_a=Decimal(32))
    SiteMember.objects.create(site=site, charge_point=register_charge_point("CP-A"))
    SiteMember.objects.create(
        site=site, charge_point=register_charge_point("CP-B"), smart_charging_flag="SetChargingProfile rejected"
    )
    for minute, total in enumerate([Decimal(32), Decimal(16), Decimal("31.8")]):
        AllocationSnapshot.objects.create(
            site=site,
            at=T0 + timedelta(minutes=minute),
            capacity_a=Decimal(32),
            base_load_a=Decimal(0),
            limits_sum_a=total,
            measured_a=total - 1,
            limits={"1": str(total)},
        )
    return site


def test_site_list_counts_members_and_flagged_ones(admin_client, site):
    page = admin_client.get("/admin/sites/site/").content.decode()
    assert "Depot" in page
    assert '<td class="field-member_count">2</td>' in page
    assert '<td class="field-flagged_count">1</td>' in page


def test_site_page_charts_capacity_limits_and_measured_draw(admin_client, site):
    page = admin_client.get(f"/admin/sites/site/{site.pk}/change/").content.decode()
    for css in ("site-capacity", "site-limits", "site-measured"):
        assert f'class="{css}"' in page
    assert "<td>31.8</td>" in page and "SetChargingProfile rejected" in page


def test_the_sweep_recomputes_every_site_and_sends_nothing_to_offline_chargers(site):
    assert sites_recompute_all() == 1
    assert not SiteMember.objects.get(charge_point__charge_point_id="CP-A").smart_charging_flag


def test_the_admin_refuses_a_site_the_api_refuses_with_the_field_s_error(admin_client):
    """A failsafe above the capacity less the base load was a 500 (SiteConflict), not a form error."""
    form = {
        "name": "Yard",
        "phases": 1,
        "voltage_v": 230,
        "capacity_a": "32",
        "base_load_a": "10",
        "failsafe_current_a": "30",
        "min_current_a": "6",
        "members-TOTAL_FORMS": "0",
        "members-INITIAL_FORMS": "0",
    }
    response = admin_client.post("/admin/sites/site/add/", form)
    assert response.status_code == 200
    assert "above what the site gives one charger" in response.content.decode()
    assert not Site.objects.filter(name="Yard").exists()


@pytest.mark.parametrize("voltage", ["0", "-230"])
def test_the_admin_refuses_a_voltage_that_is_not_positive_as_the_voltage_s_error(admin_client, voltage):
    """A power capacity over a voltage of 0 was a 500 (DivisionByZero); a negative one was refused
    as a failsafe "above what the site gives one charger"."""
    form = {
        "name": "Yard",
        "phases": 1,
        "voltage_v": voltage,
        "capacity_a": "",
        "capacity_w": "7000",
        "base_load_a": "0",
        "min_current_a": "6",
        "members-TOTAL_FORMS": "0",
        "members-INITIAL_FORMS": "0",
    }
    response = admin_client.post("/admin/sites/site/add/", form)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "voltage_v": ["The voltage (phase to neutral) must be positive."]
    }
    assert not Site.objects.filter(name="Yard").exists()


def test_the_admin_refuses_member_phases_the_api_refuses(admin_client, site):
    """Round 43's probe: the member inline (and the member page) saved phases "L9" (or "L2" on a
    single-phase site), which the API refuses with a 400 naming phases."""
    a, b = SiteMember.objects.filter(site=site).order_by("charge_point__charge_point_id")
    form = {
        "name": "Depot",
        "phases": 1,
        "voltage_v": "230",
        "capacity_a": "32",
        "base_load_a": "0",
        "min_current_a": "6",
        "members-TOTAL_FORMS": "2",
        "members-INITIAL_FORMS": "2",
    }
    for index, (member, phases) in enumerate([(a, "L9"), (b, "")]):
        form |= {
            f"members-{index}-id": member.pk,
            f"members-{index}-site": site.pk,
            f"members-{index}-charge_point": member.charge_point_id,
            f"members-{index}-max_current_a": "32",
            f"members-{index}-phases": phases,
            f"members-{index}-priority": "0",
            f"members-{index}-smart_charging_flag": member.smart_charging_flag,
        }
    response = admin_client.post(f"/admin/sites/site/{site.pk}/change/", form)
    assert response.status_code == 200
    assert "Use one of [&#x27;L1&#x27;]" in response.content.decode()
    member_form = {
        "site": site.pk,
        "charge_point": a.charge_point_id,
        "max_current_a": "32",
        "phases": "L2",
        "priority": "0",
        "smart_charging_flag": "",
    }
    response = admin_client.post(f"/admin/sites/sitemember/{a.pk}/change/", member_form)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "phases": ["Use one of ['L1'] or leave blank for all site phases."]
    }
    assert not SiteMember.objects.exclude(phases="").exists()


def test_a_flag_cleared_in_the_site_s_inline_clears_when_it_was_raised(admin_client, site):
    """As the API's member update: the site's member inline (``flagged_at`` read-only) left it set."""
    a, b = SiteMember.objects.filter(site=site).order_by("charge_point__charge_point_id")
    SiteMember.objects.filter(pk=b.pk).update(flagged_at=T0)
    form = {
        "name": "Depot",
        "phases": 1,
        "voltage_v": "230",
        "capacity_a": "32",
        "base_load_a": "0",
        "min_current_a": "6",
        "members-TOTAL_FORMS": "2",
        "members-INITIAL_FORMS": "2",
    }
    for index, member in enumerate([a, b]):
        form |= {
            f"members-{index}-id": member.pk,
            f"members-{index}-site": site.pk,
            f"members-{index}-charge_point": member.charge_point_id,
            f"members-{index}-max_current_a": "32",
            f"members-{index}-phases": "",
            f"members-{index}-priority": "0",
            f"members-{index}-clear_smart_charging_flag": "on" if member == b else "",
        }
    response = admin_client.post(f"/admin/sites/site/{site.pk}/change/", form)
    assert response.status_code == 302
    b.refresh_from_db()
    assert (b.smart_charging_flag, b.flagged_at) == ("", None)


def test_the_allocation_history_writes_its_times_as_the_rest_of_the_admin(admin_client, site):
    """Its times were written as Python prints them (``2026-05-01 10:02:00.250000+00:00``), unlike
    every other date on the page (``2026-05-01 10:02:00 UTC``, ``csms/formats``)."""
    third = T0 + timedelta(minutes=2)
    AllocationSnapshot.objects.filter(at=third).update(at=third + timedelta(microseconds=250000))

    page = admin_client.get(f"/admin/sites/site/{site.pk}/change/").content.decode()

    assert "<td>2026-05-01 10:02:00 UTC</td>" in page
    assert "<td>2026-05-01 10:00:00 UTC</td>" in page
    assert "+00:00" not in page


def test_a_site_not_yet_allocated_says_so_not_that_it_has_no_meter_values(admin_client):
    """A new site's chart said "No meter values yet" (the session chart's words): a site has no meter
    values; it has had no allocation yet."""
    site = Site.objects.create(name="Yard", phases=1, capacity_a=Decimal(32))

    page = admin_client.get(f"/admin/sites/site/{site.pk}/change/").content.decode()

    assert "No allocation yet" in page
    assert "meter values" not in page.lower()


def test_a_site_s_page_reads_its_members_chargers_in_a_few_queries_not_three_per_member(
    admin_client, register_charge_point, django_assert_max_num_queries
):
    """A site of 10 members took 38 queries: each member's row read its site, its charger and again
    its charger for the charger box (a site of 200 chargers: 600 queries)."""
    site = Site.objects.create(name="Depot", phases=1, capacity_a=Decimal(320))
    for n in range(30):
        SiteMember.objects.create(site=site, charge_point=register_charge_point(f"CP-{n:02}"))
    with django_assert_max_num_queries(20):
        page = admin_client.get(f"/admin/sites/site/{site.pk}/change/").content.decode()
    assert all(
        f'<option value="{m.charge_point_id}" selected>CP-{n:02}</option>' in page
        for n, m in enumerate(SiteMember.objects.filter(site=site).order_by("charge_point__charge_point_id"))
    )


@pytest.fixture
def recomputed(monkeypatch) -> list[tuple[str, str]]:
    """The sites (and chargers) queued for a recompute once a change commits."""
    queued: list[tuple[str, str]] = []
    monkeypatch.setattr("sites.triggers._queue", queued.append)
    return queued


def test_a_connector_maximum_saved_or_deleted_in_the_admin_recomputes_its_site(
    admin_client, site, recomputed, django_capture_on_commit_callbacks
):
    """The API's member update recomputes the site when it changes a connector maximum; the admin's
    page of them saved the row alone: a maximum lowered below a session's limit (a 16 A cable on a
    32 A charger) bounded it only at the next sweep (``CSMS_SITES_RECOMPUTE_INTERVAL``)."""
    member = SiteMember.objects.get(charge_point__charge_point_id="CP-A")
    form = {"member": member.pk, "connector_id": "1", "max_current_a": "16"}

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/sites/connectormaximum/add/", form)
    assert response.status_code == 302
    maximum = ConnectorMaximum.objects.get(member=member)
    assert recomputed == [("site", str(site.pk))]

    recomputed.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/sites/connectormaximum/{maximum.pk}/change/", form | {"max_current_a": "10"}
        )
    assert response.status_code == 302
    assert recomputed == [("site", str(site.pk))]

    recomputed.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/sites/connectormaximum/{maximum.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ConnectorMaximum.objects.exists()
    assert recomputed == [("site", str(site.pk))]


def _site_form(site: Site, members: list[tuple[SiteMember, dict[str, str]]]) -> dict[str, Any]:
    """The site page's form as posted, with its member rows (each with ``extra`` fields)."""
    form: dict[str, Any] = {
        "name": site.name,
        "phases": site.phases,
        "voltage_v": "230",
        "capacity_a": "32",
        "base_load_a": "0",
        "min_current_a": "6",
        "members-TOTAL_FORMS": str(len(members)),
        "members-INITIAL_FORMS": str(len(members)),
    }
    for index, (member, extra) in enumerate(members):
        form |= {
            f"members-{index}-id": member.pk,
            f"members-{index}-site": site.pk,
            f"members-{index}-charge_point": member.charge_point_id,
            f"members-{index}-max_current_a": "32",
            f"members-{index}-phases": "",
            f"members-{index}-priority": "0",
        } | {f"members-{index}-{name}": value for name, value in extra.items()}
    return form


def test_the_admin_never_takes_a_smart_charging_flag_typed_in_as_the_api_does(admin_client, site):
    """The member page and the site's inline saved any text typed in the flag (the API answers 400:
    only clearing it is allowed): a charger flagged by hand was no longer steered nor sent the
    site's failsafe, counted at its maximum, with no ``flagged_at`` saying when. The flag is shown
    read-only: a posted one is not taken."""
    a, b = SiteMember.objects.filter(site=site).order_by("charge_point__charge_point_id")
    member_form = {"site": site.pk, "charge_point": a.charge_point_id, "max_current_a": "32", "priority": "0"}
    response = admin_client.post(
        f"/admin/sites/sitemember/{a.pk}/change/", member_form | {"smart_charging_flag": "do not steer"}
    )
    assert response.status_code == 302
    flags = {"smart_charging_flag": "by hand"}
    response = admin_client.post(f"/admin/sites/site/{site.pk}/change/", _site_form(site, [(a, flags), (b, {})]))
    assert response.status_code == 302
    assert dict(SiteMember.objects.values_list("charge_point__charge_point_id", "smart_charging_flag")) == {
        "CP-A": "",
        "CP-B": "SetChargingProfile rejected",
    }


def test_a_flag_the_engine_raised_while_the_page_was_open_is_kept_by_a_save(admin_client, site):
    """Review: the flag was a text box, posted back as the page showed it; a flag the engine raised
    (a charger refusing its profile) after the page was opened was cleared by any later save of
    the member, from its page or the site's (the charger steered again). Only the "Clear flag" box
    clears it."""
    a, b = SiteMember.objects.filter(site=site).order_by("charge_point__charge_point_id")
    shown = {"smart_charging_flag": ""}  # what the page showed before the engine flagged CP-A
    SiteMember.objects.filter(pk=a.pk).update(smart_charging_flag="SetChargingProfile rejected", flagged_at=T0)
    member_form = {"site": site.pk, "charge_point": a.charge_point_id, "max_current_a": "32", "priority": "5"}
    response = admin_client.post(f"/admin/sites/sitemember/{a.pk}/change/", member_form | shown)
    assert response.status_code == 302
    a.refresh_from_db()
    assert (a.priority, a.smart_charging_flag, a.flagged_at) == (5, "SetChargingProfile rejected", T0)

    response = admin_client.post(f"/admin/sites/site/{site.pk}/change/", _site_form(site, [(a, shown), (b, shown)]))
    assert response.status_code == 302
    assert set(SiteMember.objects.values_list("smart_charging_flag", flat=True)) == {"SetChargingProfile rejected"}

    cleared = {"clear_smart_charging_flag": "on"}
    response = admin_client.post(f"/admin/sites/sitemember/{a.pk}/change/", member_form | cleared)
    assert response.status_code == 302
    response = admin_client.post(f"/admin/sites/site/{site.pk}/change/", _site_form(site, [(a, {}), (b, cleared)]))
    assert response.status_code == 302
    assert list(SiteMember.objects.values_list("smart_charging_flag", "flagged_at")) == [("", None), ("", None)]


def test_a_capacity_changed_while_a_site_s_page_is_open_is_kept_when_the_operator_saves_a_name(admin_client, site):
    """The save writes what the form changed, but the form compared the page's values with the row at
    the save: a capacity the API changed while the page was open differed, was "changed", and was put
    back as the page showed it by a change of the site's name. Only what the operator changed on the
    page is written."""
    url = f"/admin/sites/site/{site.pk}/change/"
    page = admin_client.get(url).content.decode()

    services.site_save(site=Site.objects.get(pk=site.pk), capacity_a=Decimal(63))  # the API, meanwhile
    response = admin_client.post(url, form_as_posted(page, "site_form", name="Depot North"))

    assert response.status_code == 302
    site.refresh_from_db()
    assert (site.name, site.capacity_a) == ("Depot North", Decimal(63))


def test_a_member_s_maximum_changed_while_the_site_s_page_is_open_is_kept_when_the_operator_saves_its_priority(
    admin_client, site
):
    """The members' rows were saved whole, each compared with the row at the save: a maximum the API
    lowered while the page was open was put back as the page showed it by a change of that member's
    priority (or of nothing in its row: the difference counted as a change). Only what the operator
    changed in a row is written, on the member as it stands."""
    a, b = SiteMember.objects.filter(site=site).order_by("charge_point__charge_point_id")
    url = f"/admin/sites/site/{site.pk}/change/"
    page = admin_client.get(url).content.decode()

    for member in (a, b):  # the API, meanwhile
        services.site_member_update(member=SiteMember.objects.get(pk=member.pk), max_current_a=Decimal(16))
    response = admin_client.post(url, form_as_posted(page, "site_form", **{"members-0-priority": "5"}))

    assert response.status_code == 302
    members = SiteMember.objects.order_by("charge_point__charge_point_id")
    assert list(members.values_list("max_current_a", "priority")) == [(Decimal(16), 5), (Decimal(16), 0)]


def test_a_failsafe_above_a_capacity_lowered_while_the_page_was_open_is_the_field_s_error_not_a_500(admin_client, site):
    """The form checked the site with the capacity the page showed, the save (on the row as it stands)
    with the one the API had set meanwhile: a failsafe current within the old capacity but above the
    new one passed the form and was refused by the save, a 500. The form checks what will be saved."""
    url = f"/admin/sites/site/{site.pk}/change/"
    page = admin_client.get(url).content.decode()

    services.site_save(site=Site.objects.get(pk=site.pk), capacity_a=Decimal(10))  # the API, meanwhile
    response = admin_client.post(url, form_as_posted(page, "site_form", failsafe_current_a="16"))

    assert response.status_code == 200
    assert "failsafe_current_a" in response.context["adminform"].form.errors
    site.refresh_from_db()
    assert (site.capacity_a, site.failsafe_current_a) == (Decimal(10), None)


@pytest.mark.parametrize("charger", ["abc", "99999999999999999999"])
def test_a_charger_no_charger_can_have_is_the_member_s_error_not_a_500(admin_client, site, charger):
    """A member's charger posted that no charger's id can be (its page, or a row of the site's) was
    looked up to label the charger box again: a 500. It is the field's error, nothing saved."""
    member_form = {"site": site.pk, "charge_point": charger, "max_current_a": "32", "priority": "0"}
    response = admin_client.post("/admin/sites/sitemember/add/", member_form)
    assert response.status_code == 200
    assert "charge_point" in response.context["adminform"].form.errors

    a, b = SiteMember.objects.filter(site=site).order_by("charge_point__charge_point_id")
    form = _site_form(site, [(a, {"charge_point": charger, "priority": "7"}), (b, {})])
    response = admin_client.post(f"/admin/sites/site/{site.pk}/change/", form)
    assert response.status_code == 200
    assert "charge_point" in response.context["inline_admin_formsets"][0].formset.forms[0].errors
    assert SiteMember.objects.count() == 2
    assert not SiteMember.objects.filter(priority=7).exists()


def _site_made_single_phase_after_the_page_s_check(monkeypatch, site: Site) -> None:
    """The race: the site is made single-phase (the API, another operator) right after the page's
    check of a member's phases passed on the three-phase site."""
    checked = SiteMemberForm.clean

    def check_then_change(form: SiteMemberForm) -> dict[str, Any]:
        cleaned = checked(form)
        services.site_save(site=Site.objects.get(pk=site.pk), phases=1)
        return cleaned

    monkeypatch.setattr(SiteMemberForm, "clean", check_then_change)


@pytest.mark.parametrize("page", ["member", "site"])
def test_member_phases_the_site_lost_after_the_page_s_check_are_the_page_s_message_not_a_500(
    admin_client, site, monkeypatch, page
):
    """A member's phases "L2" checked on a three-phase site, the site made single-phase before the
    save: ``site_member_update`` refused them (SiteConflict), a 500, from the member's page or the
    site's. It is the page's message, nothing saved."""
    services.site_save(site=site, phases=3)
    a = SiteMember.objects.get(charge_point__charge_point_id="CP-A")
    url = f"/admin/sites/sitemember/{a.pk}/change/" if page == "member" else f"/admin/sites/site/{site.pk}/change/"
    shown = admin_client.get(url).content.decode()
    form_id, field = ("sitemember_form", "phases") if page == "member" else ("site_form", "")
    if page == "site":  # CP-A's row
        posted = form_as_posted(shown, form_id)
        field = next(f"members-{n}-phases" for n in range(2) if posted[f"members-{n}-id"] == str(a.pk))
    _site_made_single_phase_after_the_page_s_check(monkeypatch, site)

    response = admin_client.post(url, form_as_posted(shown, form_id, **{field: "L2", "name": "Depot 2"}), follow=True)

    assert response.status_code == 200
    said = [str(message) for message in response.context["messages"]]
    assert said == ["Not saved (phases): Use one of ['L1'] or leave blank for all site phases."]
    assert not SiteMember.objects.exclude(phases="").exists()
    assert Site.objects.get(pk=site.pk).name == "Depot"
