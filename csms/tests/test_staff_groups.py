"""The two staff groups: support sees everything and changes nothing; operator may also act."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.test import Client, RequestFactory
from django.utils import timezone

from billing.models import Tariff
from chargepoints.services import charge_point_heartbeat, connector_status_set
from charging.models import IdTag
from charging.services.transaction_start import StartRequest, transaction_start
from commands.models import Command, CommandState
from csms.staff_groups import (
    OPERATOR,
    OPERATOR_PERMISSIONS,
    PROJECT_APPS,
    SUPPORT,
    staff_groups_ensure,
    staff_user_create,
)
from kernel.api_keys import api_key_create
from webhooks.models import DeliveryState, WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough pass phrase"


def _codes(group: Group) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def _send_command_permission() -> Permission:
    """What helper migrations declare on Command's Meta; made here if it does not exist yet."""
    permission, _ = Permission.objects.get_or_create(
        content_type=ContentType.objects.get_for_model(Command),
        codename="send_command",
        defaults={"name": "Can send commands to chargers"},
    )
    return permission


@pytest.fixture
def rows(register_charge_point) -> None:
    """At least one row behind most admin pages, so change pages are opened too."""
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    connector_status_set(charge_point_id="CP-1", connector_id=1, status="Available")
    charge_point_heartbeat(charge_point_id="CP-1")
    Command.objects.create(
        charge_point=charge_point, charge_point_identity="CP-1", ocpp_version="1.6", command="reset",
        action="Reset", state=CommandState.REJECTED,
    )  # fmt: skip
    transaction_start(StartRequest(
        charge_point_id="CP-1", ocpp_version="1.6", start_key="k", started_at=timezone.now(), connector_id=1,
        id_tag="TAG", authorize=False, meter_start_wh=Decimal(0),
    ))  # fmt: skip
    IdTag.objects.create(id_tag="TAG")
    Tariff.objects.create(name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"))
    subscription = WebhookSubscription.objects.create(url="https://hooks.example.com/", events=["*"], secret="s")
    WebhookDelivery.objects.create(
        event_id=uuid.uuid4(), event_type="charge_point.online", subscription=subscription, body="{}",
        state=DeliveryState.FAILED, next_attempt_at=timezone.now(),
    )  # fmt: skip
    api_key_create(name="integration")


def _project_admins():
    return [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in PROJECT_APPS
    ]


def test_migrate_creates_a_support_group_that_may_view_every_project_model_and_nothing_else():
    support = Group.objects.get(name=SUPPORT)

    codes = _codes(support)
    expected = {f"{model._meta.app_label}.view_{model._meta.model_name}" for model, _ in _project_admins()}
    assert expected <= codes
    assert all(code.split(".")[1].startswith("view_") for code in codes)
    assert {code.split(".")[0] for code in codes} <= set(PROJECT_APPS)


def test_the_operator_group_adds_the_levers_to_what_support_sees():
    _send_command_permission()
    groups = staff_groups_ensure()

    support, operator = _codes(groups[SUPPORT]), _codes(groups[OPERATOR])
    assert operator == support | set(OPERATOR_PERMISSIONS)
    assert not any(code.split(".")[1].startswith("delete_") for code in operator)


def test_ensuring_the_groups_again_changes_nothing_and_undoes_hand_edits():
    before = {name: _codes(group) for name, group in staff_groups_ensure().items()}
    Group.objects.get(name=SUPPORT).permissions.add(Permission.objects.get(codename="delete_chargepoint"))

    after = {name: _codes(group) for name, group in staff_groups_ensure().items()}

    assert after == before
    assert Group.objects.filter(name__in=[SUPPORT, OPERATOR]).count() == 2


def test_an_operator_may_send_commands_once_the_permission_exists():
    Permission.objects.filter(codename="send_command", content_type__app_label="commands").delete()
    staff_groups_ensure()  # tolerated: the permission's migration has not run yet
    operator = staff_user_create(username="olga", password=PASSWORD, group=OPERATOR)
    assert not operator.has_perm("commands.send_command")

    _send_command_permission()
    staff_groups_ensure()

    operator = User.objects.get(username="olga")  # permissions are cached per user object
    assert operator.has_perm("commands.send_command")
    assert operator.has_perm("chargepoints.change_chargepoint")
    assert not operator.has_perm("chargepoints.delete_chargepoint")


def test_a_support_user_opens_every_admin_page_and_is_offered_no_way_to_change_anything(rows, client: Client):
    _send_command_permission()
    staff_groups_ensure()
    support = staff_user_create(username="sam", password=PASSWORD, group=SUPPORT)
    assert not support.has_perm("commands.send_command")
    client.force_login(support)
    request = RequestFactory().get("/admin/")
    request.user = support

    for model, model_admin in _project_admins():
        changelist = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        response = client.get(changelist)
        assert response.status_code == 200, changelist
        assert b'class="addlink"' not in response.content, changelist
        writing = [
            name
            for name, (function, _, _) in model_admin.get_actions(request).items()
            if list(getattr(function, "allowed_permissions", ())) != ["view"]
        ]
        assert not writing, f"{changelist} offers {writing}"
        instance = model.objects.first()
        if instance is not None:
            page = client.get(f"{changelist}{instance.pk}/change/")
            assert page.status_code == 200, changelist
            assert b'name="_save"' not in page.content, changelist
            assert b'class="deletelink"' not in page.content, changelist


def test_a_support_user_sees_the_dashboard_but_not_the_user_accounts(client: Client):
    client.force_login(staff_user_create(username="sam", password=PASSWORD, group=SUPPORT))

    assert b'id="fleet-dashboard"' in client.get("/admin/").content
    assert client.get("/admin/dashboard/").status_code == 200
    assert client.get("/admin/auth/user/").status_code == 403


def test_create_staff_user_puts_a_staff_login_in_the_group(monkeypatch):
    out = io.StringIO()
    call_command("create_staff_user", "olga", group=OPERATOR, password=PASSWORD, stdout=out)
    monkeypatch.setenv("CSMS_STAFF_PASSWORD", PASSWORD)
    call_command("create_staff_user", "sam", "--group", SUPPORT, stdout=out)

    olga, sam = User.objects.get(username="olga"), User.objects.get(username="sam")
    assert olga.is_staff and not olga.is_superuser and olga.check_password(PASSWORD)
    assert list(olga.groups.values_list("name", flat=True)) == [OPERATOR]
    assert list(sam.groups.values_list("name", flat=True)) == [SUPPORT] and sam.check_password(PASSWORD)
    assert "Created staff user 'olga' in the operator group." in out.getvalue()


def test_create_staff_user_refuses_a_weak_or_missing_password_and_a_taken_name(monkeypatch):
    monkeypatch.delenv("CSMS_STAFF_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO())  # no tty, so no prompt
    with pytest.raises(CommandError, match="No password"):
        call_command("create_staff_user", "olga", group=OPERATOR)
    with pytest.raises(CommandError, match="too short"):
        call_command("create_staff_user", "olga", group=OPERATOR, password="pw")
    call_command("create_staff_user", "olga", group=OPERATOR, password=PASSWORD, stdout=io.StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_staff_user", "olga", group=SUPPORT, password=PASSWORD)
    assert User.objects.filter(username="olga").count() == 1
