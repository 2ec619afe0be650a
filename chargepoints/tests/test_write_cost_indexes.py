"""The indexes a message maintains (issue 15, migrations chargepoints 0008 and 0011, charging 0003
and 0005, billing 0004, commands 0007 and 0008, configuration 0002): the redundant ones stay gone,
and writing a charger's ``last_seen``, a session's register, a connector's status or a command's
completion stays HOT."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from chargepoints.models import ChargePoint, Connector
from charging.models import Transaction
from commands.models import Command, CommandState

pytestmark = pytest.mark.django_db

_EXPECTED = {
    "chargepoints_ocppmessage": {
        "chargepoint_charge__ca9c33_idx",
        "chargepoints_ocppmessage_created_at_8e763f50",
        "chargepoints_ocppmessage_pkey",
        "ocpp_message_unique_id",
    },
    "chargepoints_chargepoint": {
        "chargepoints_chargepoint_charge_point_id_60808394_like",
        "chargepoints_chargepoint_charge_point_id_key",
        "chargepoints_chargepoint_pkey",
        "chargepoints_chargepoint_tariff_id_14b29d13",
        "charge_point_pending",  # partial: the chargers auto-registration's cap counts
    },
    "chargepoints_metersample": {
        "chargepoint_transac_121692_idx",
        "chargepoints_metersample_charge_point_id_f0a95061",
        "chargepoints_metersample_pkey",
        "meter_sample_parked",
    },
    "commands_command": {
        "command_charger_latest",
        "command_idempotency_key_per_api_key",
        "commands_command_api_key_id_50b82b8f",
        "commands_command_charge_point_identity_25f0bd31",
        "commands_command_charge_point_identity_25f0bd31_like",
        "commands_command_created_at_13173777",
        "commands_command_pkey",
        "commands_command_user_id_4f08efde",
    },
    # A charger's configuration read after its first boot (configuration 0002): each foreign key
    # whose column leads its table's unique constraint is served by that constraint's index.
    "configuration_configurationkey": {
        "configuration_configurationkey_command_id_7c965c84",
        "configuration_configurationkey_pkey",
        "configuration_key_per_charger",
    },
    "configuration_devicemodelvariable": {
        "configuration_devicemodelvariable_pkey",
        "device_model_variable_per_charger",
    },
    "configuration_devicemodelattribute": {
        "configuration_devicemodelattribute_command_id_19aa69f3",
        "configuration_devicemodelattribute_pkey",
        "device_model_attribute_per_type",
    },
    "configuration_devicemodelreport": {
        "configuration_devicemodelreport_command_id_46d16c24",
        "configuration_devicemodelreport_pkey",
        "device_model_report_per_request",
    },
    "chargepoints_transaction": {
        "chargepoint_charge__1ed87e_idx",
        "chargepoints_transaction_pkey",
        "chargepoints_transaction_started_at_78fdf2a0",
        "session_needs_review",  # partial: the sessions to review
        "session_id_tag_lower",  # the admin's search by id tag, any case (was on id_tag as sent)
        "session_reserved",  # partial: the sessions that used a reservation
        "transaction_start_unique_while_active",
    },
    "billing_billingrecord": {
        "billing_billingrecord_created_at_8d381346",
        "billing_billingrecord_pkey",
        "billing_billingrecord_tariff_id_6935f6e3",
        "billing_billingrecord_transaction_id_key",
        "billing_record_charger",
        "billing_record_id_tag_lower",
        "billing_record_stopped",  # the list's order and its stopped_after/before filters
    },
}


def _indexes(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's catalog")
@pytest.mark.parametrize("table", sorted(_EXPECTED))
def test_only_the_indexes_a_query_needs(table: str) -> None:
    assert _indexes(table) == _EXPECTED[table]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's catalog")
def test_sessions_lose_only_the_charger_foreign_keys_own_index() -> None:
    indexes = _indexes("chargepoints_transaction")
    assert "chargepoints_transaction_charge_point_id_56781de6" not in indexes
    assert "chargepoint_charge__1ed87e_idx" in indexes  # (charge_point, status) serves its queries


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's storage parameters")
def test_a_chargers_last_seen_is_written_on_its_page() -> None:
    """No index covers ``last_seen`` and the pages keep room: the update stays on its page (HOT,
    no index entry written)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'chargepoints_chargepoint'")
        assert cursor.fetchone()[0] == ["fillfactor=70"]
    charge_point = ChargePoint.objects.create(charge_point_id="CP-HOT", heartbeat_interval=300)
    hot_updates = "SELECT pg_stat_get_xact_tuples_hot_updated('chargepoints_chargepoint'::regclass)"
    with connection.cursor() as cursor:
        cursor.execute(hot_updates)
        (before,) = cursor.fetchone()
        cursor.execute(
            "UPDATE chargepoints_chargepoint SET last_seen = %s WHERE id = %s",
            [timezone.now() - timedelta(seconds=1), charge_point.pk],
        )
        cursor.execute(hot_updates)
        (after,) = cursor.fetchone()
    assert after == before + 1  # a heap-only tuple: no index entry written


def _hot_updates(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_get_xact_tuples_hot_updated(%s::regclass)", [table])
        return cursor.fetchone()[0]


def _fillfactor(table: str) -> list[str] | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [table])
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's storage parameters")
def test_a_sessions_register_is_written_on_its_page_among_as_many_sessions_as_it_holds() -> None:
    """A reading's update of its session (register, energy, seqNos: no index covers them) finds room
    on its page even when sessions were started back to back after it (fillfactor 50): HOT, no
    entry in the session's indexes. At fillfactor 100 the page is full and the row moves."""
    charge_point = ChargePoint.objects.create(charge_point_id="CP-HOT-SESSIONS", heartbeat_interval=300)
    now = timezone.now()
    Transaction.objects.bulk_create(
        Transaction(charge_point=charge_point, ocpp_version="1.6", start_key=f"start-{n}", id_tag="TAG", started_at=now)
        for n in range(200)  # more than a page holds (about 65 of these at fillfactor 100)
    )
    first = Transaction.objects.filter(charge_point=charge_point).order_by("id").first()
    assert first is not None
    before = _hot_updates("chargepoints_transaction")
    Transaction.objects.filter(pk=first.pk).update(last_register_wh=1500, last_register_at=now, energy_wh=500)
    assert _hot_updates("chargepoints_transaction") == before + 1
    assert _fillfactor("chargepoints_transaction") == ["fillfactor=50"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's storage parameters")
def test_a_connectors_status_is_written_on_its_page_among_as_many_connectors_as_it_holds() -> None:
    """A StatusNotification's update of its connector finds room on its page (fillfactor 70): HOT."""
    charge_point = ChargePoint.objects.create(charge_point_id="CP-HOT-CONNECTORS", heartbeat_interval=300)
    Connector.objects.bulk_create(
        Connector(charge_point=charge_point, connector_id=n)
        for n in range(1, 401)  # about 110 a full page
    )
    first = Connector.objects.filter(charge_point=charge_point).order_by("id").first()
    assert first is not None
    before = _hot_updates("chargepoints_connector")
    Connector.objects.filter(pk=first.pk).update(status="Charging", status_timestamp=timezone.now())
    assert _hot_updates("chargepoints_connector") == before + 1
    assert _fillfactor("chargepoints_connector") == ["fillfactor=70"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's storage parameters")
def test_a_commands_completion_is_written_on_its_page_among_as_many_commands_as_it_holds() -> None:
    """A configuration read's completion (its state and the fleet's six keys answered: no index
    covers them) finds room on its page even when commands were recorded back to back after it
    (fillfactor 50): HOT, no entry in the command's seven indexes. At fillfactor 100 the page is
    full and the row moves."""
    Command.objects.bulk_create(
        Command(
            charge_point_identity="CP-HOT-COMMANDS",
            ocpp_version="1.6",
            command="get_configuration",
            action="GetConfiguration",
        )
        for _ in range(100)  # more than a page holds (about 45 of these at fillfactor 100)
    )
    first = Command.objects.filter(charge_point_identity="CP-HOT-COMMANDS").order_by("created_at", "id").first()
    assert first is not None
    keys = [{"key": f"Key{n}", "readonly": False, "value": "x" * 40} for n in range(6)]
    before = _hot_updates("commands_command")
    Command.objects.filter(pk=first.pk).update(
        state=CommandState.ACCEPTED, response={"configurationKey": keys}, completed_at=timezone.now(), latency_ms=12.5
    )
    assert _hot_updates("commands_command") == before + 1
    assert _fillfactor("commands_command") == ["fillfactor=50"]
