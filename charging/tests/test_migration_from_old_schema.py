"""A database of the schema before the sessions moved out of chargepoints (issue 16) migrates to
the latest schema and loses nothing: every row is found through the new models, with its foreign
keys, and the permissions granted on a moved model still name it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.apps.registry import Apps
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from billing.models import BillingRecord
from chargepoints.models import ChargePoint
from charging.models import (
    IdTag,
    InstalledChargingProfile,
    LocalAuthList,
    MeterSample,
    ReconciliationItem,
    Reservation,
    Transaction,
)
from commands.models import Command
from kernel.models import ApiKey
from sites.models import SessionLimit

# The last migration of each app before the move; the apps born in it have none.
BEFORE_THE_MOVE = [
    ("chargepoints", "0005_schema_violation_frame"),
    ("commands", "0004_command_request_fingerprint"),
    ("csms", "0002_api_key_scope_expiry_last_used"),
    ("billing", "0002_initial"),
    ("sites", "0001_sites_members_limits_snapshots"),
    ("charging", None),
    ("kernel", None),
]
AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _migrate(targets: list[tuple[str, str | None]] | None = None) -> Apps:
    """Migrate the test database to ``targets`` (the latest migrations when None); the models of that state."""
    executor = MigrationExecutor(connection)
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    executor.loader.build_graph()
    nodes = [(app, name) for app, name in targets if name is not None]
    return executor.loader.project_state(nodes).apps


@pytest.fixture
def old_schema() -> Iterator[Apps]:
    """The models of the schema before the move; the latest schema is back afterwards, even on failure."""
    try:
        yield _migrate(BEFORE_THE_MOVE)
    finally:
        _migrate()


def _old_rows(apps: Apps) -> dict[str, int]:
    """One row of each moved model and of each model pointing at one, in the old apps; their ids."""
    model = apps.get_model
    charger = model("chargepoints", "ChargePoint").objects.create(charge_point_id="CP-OLD", heartbeat_interval=60)
    parent = model("chargepoints", "IdTag").objects.create(id_tag="FLEET-1")
    tag = model("chargepoints", "IdTag").objects.create(id_tag="CARD-1", parent=parent)
    local_list = model("chargepoints", "LocalAuthList").objects.create(
        charge_point=charger, version=3, entries={"CARD-1": "Accepted"}
    )
    reservation = model("chargepoints", "Reservation").objects.create(
        charge_point=charger, reservation_id=7, connector_id=1, id_tag="CARD-1", expiry_date=AT, status="used"
    )
    session = model("chargepoints", "Transaction").objects.create(
        charge_point=charger,
        ocpp_version="1.6",
        start_key="1|CARD-1|2026-05-01T12:00:00Z",
        connector_id=1,
        id_tag="CARD-1",
        status="ended",
        started_at=AT,
        stopped_at=AT,
        meter_start_wh=Decimal("1000"),
        meter_stop_wh=Decimal("1500"),
        energy_wh=Decimal("500"),
        reservation=reservation,
    )
    item = model("chargepoints", "ReconciliationItem").objects.create(
        charge_point=charger,
        reason="already_stopped",
        state="attached",
        action="StopTransaction",
        payload={"transactionId": session.pk},
        received_at=AT,
        transaction=session,
    )
    sample = model("chargepoints", "MeterSample").objects.create(
        charge_point=charger,
        transaction=session,
        reconciliation_item=item,
        source="MeterValues",
        timestamp=AT,
        measurand="Energy.Active.Import.Register",
        raw_value="1500",
        value=Decimal("1500"),
        received_at=AT,
    )
    profile = model("commands", "InstalledChargingProfile").objects.create(
        charge_point=charger, connector_id=1, profile_id=5, purpose="TxDefaultProfile", stack_level=0, profile={}
    )
    api_key = model("csms", "ApiKey").objects.create(name="old key", prefix="abc", key_hash="0" * 64)
    command = model("commands", "Command").objects.create(
        charge_point=charger,
        charge_point_identity="CP-OLD",
        ocpp_version="1.6",
        command="reset",
        action="Reset",
        api_key=api_key,
    )
    record = model("billing", "BillingRecord").objects.create(
        transaction=session,
        charge_point_identity="CP-OLD",
        energy_wh=Decimal("500"),
        started_at=AT,
        stopped_at=AT,
        duration_seconds=0,
        charging_seconds=0,
        idle_seconds=0,
        total=Decimal("1.50"),
    )
    site = model("sites", "Site").objects.create(name="Depot")
    limit = model("sites", "SessionLimit").objects.create(site=site, transaction=session, limit_a=16, sent_at=AT)
    return {
        "charger": charger.pk,
        "parent": parent.pk,
        "tag": tag.pk,
        "local_list": local_list.pk,
        "reservation": reservation.pk,
        "session": session.pk,
        "item": item.pk,
        "sample": sample.pk,
        "profile": profile.pk,
        "api_key": api_key.pk,
        "command": command.pk,
        "record": record.pk,
        "limit": limit.pk,
    }


@pytest.mark.django_db(transaction=True)
def test_rows_of_the_old_schema_are_all_there_through_the_new_models(old_schema):
    ids = _old_rows(old_schema)

    _migrate()

    charger = ChargePoint.objects.get(pk=ids["charger"])
    assert IdTag.objects.get(pk=ids["tag"]).parent_id == ids["parent"]
    assert LocalAuthList.objects.get(pk=ids["local_list"]).charge_point == charger
    assert Reservation.objects.get(pk=ids["reservation"]).charge_point == charger
    session = Transaction.objects.get(pk=ids["session"])
    assert (session.charge_point, session.reservation_id, session.energy_wh) == (
        charger,
        ids["reservation"],
        Decimal("500"),
    )
    item = ReconciliationItem.objects.get(pk=ids["item"])
    assert (item.charge_point, item.transaction) == (charger, session)
    sample = MeterSample.objects.get(pk=ids["sample"])
    assert (sample.transaction, sample.reconciliation_item, sample.value) == (session, item, Decimal("1500"))
    assert InstalledChargingProfile.objects.get(pk=ids["profile"]).charge_point == charger
    api_key = ApiKey.objects.get(pk=ids["api_key"])
    assert Command.objects.get(pk=ids["command"]).api_key == api_key
    assert BillingRecord.objects.get(pk=ids["record"]).transaction == session
    assert session.billing_record.pk == ids["record"]
    assert SessionLimit.objects.get(pk=ids["limit"]).transaction == session
    # New rows go on in the same tables, after the old ones.
    assert (
        Transaction.objects.create(charge_point=charger, ocpp_version="1.6", start_key="again", started_at=AT).pk
        > session.pk
    )


@pytest.mark.django_db(transaction=True)
def test_permissions_granted_on_a_moved_model_survive_the_move(old_schema):
    moved = {
        ("chargepoints", "transaction"): "change",
        ("chargepoints", "reconciliationitem"): "change",
        ("commands", "installedchargingprofile"): "view",
        ("csms", "apikey"): "view",
    }
    permission_ids = []
    for (app_label, model), action in moved.items():
        # The contenttypes and auth tables did not change: their models of today write them.
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type, codename=f"{action}_{model}", defaults={"name": f"Can {action} {model}"}
        )
        permission_ids.append(permission.pk)
    operator = User.objects.create_user(username="operator", password="x", is_staff=True)
    operator.user_permissions.set(permission_ids)

    _migrate()

    operator = User.objects.get(pk=operator.pk)  # no cached permissions
    assert operator.has_perms(
        [
            "charging.change_transaction",
            "charging.change_reconciliationitem",
            "charging.view_installedchargingprofile",
            "kernel.view_apikey",
        ]
    )
    assert set(Permission.objects.filter(pk__in=permission_ids).values_list("content_type__app_label", flat=True)) == {
        "charging",
        "kernel",
    }
