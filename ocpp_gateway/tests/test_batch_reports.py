"""A group-commit batch's 2.0.1 first connects (issue 15, round 18; PostgreSQL): the reads after
their boots recorded together, each report id reserved under its charger's lock
(``configuration.refresh_writes``), and their NotifyReport parts stored by one statement
(``configuration.report_writes``); each charger's GetBaseReport, report and device model end as
they end written alone. An unknown charger's part fails alone; a part after another unit of its
charger, or one its unit does not take, is stored its own way."""

from __future__ import annotations

import contextvars
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction

from chargepoints.models import ChargePoint, LifecycleState
from chargepoints.services import BootResult, charge_point_boot, charge_point_register, connector_status_set
from commands import services as command_services
from commands.models import Command, CommandState
from commands.rpc import call_outcome
from commands.services import command_complete
from configuration import services
from configuration.changes import configuration_read_recent, configuration_refresh_on_boot
from configuration.models import ConfigurationKey, DeviceModelAttribute, DeviceModelReport, DeviceModelVariable
from kernel.log_format import charge_point_id_var
from ocpp_gateway.configuration_refresh import configuration_current
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.tests.batches import one_batch
from webhooks.models import EventType, WebhookDelivery, WebhookSubscription

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements: PostgreSQL"),
]

_REPORTS = connection.ops.quote_name(DeviceModelReport._meta.db_table)
_ONE_READ = "WITH cp AS (SELECT"  # a read after a boot recorded its own way (``changes._REFRESH_READ``)
_READS_RECORDED = "WITH ask AS (SELECT * FROM unnest(%s::text[]"  # the batch's read (1.6 recorded, 2.0.1 locked)
_IDS_RESERVED = "WITH ask AS (SELECT * FROM unnest(%s::bigint[]"  # the batch's 2.0.1 report ids and commands
_ONE_RESERVATION = f"INSERT INTO {_REPORTS} (charge_point_id, request_id, parts_received"  # a report id, its own way
_PARTS_STORED = "WITH part AS (SELECT *"  # NotifyReport parts' statement (one part alone, or a batch's)
_TIES = f"WITH tied AS (INSERT INTO {_REPORTS} AS r (charge_point_id, request_id, command_id"  # reports tied
_COMMANDS = connection.ops.quote_name(Command._meta.db_table)
_OUTCOME_ALONE = f'UPDATE {_COMMANDS} SET "state" = %s'  # an outcome written its own way
_OUTCOMES_GATHERED = f'UPDATE {_COMMANDS} SET "state" = v."state"'  # the batch's
_REFUSED_FORGOTTEN = f"DELETE FROM {_REPORTS}"  # a refused report request's reserved report
_ACCEPTED = {"outcome": "result", "payload": {"status": "Accepted"}}


@pytest.fixture(autouse=True)
def _read_after_boot(settings: Any) -> None:
    settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT = True
    settings.CSMS_CONFIGURATION_REFRESH_MAX_AGE = 3600


def _item(component: str, variable: str, *attributes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A ReportDataType item in snake_case, as the NotifyReport handler passes it."""
    return {
        "component": {"name": component},
        "variable": {"name": variable},
        "variable_attribute": list(attributes),
        **extra,
    }


_REPORT = [  # as the fleet's chargers report (``loadgen.DEVICE_MODEL_REPORT``), and more shapes
    _item("OCPPCommCtrlr", "HeartbeatInterval", {"type": "Actual", "value": "300", "mutability": "ReadWrite"}),
    _item("SampledDataCtrlr", "TxUpdatedInterval", {"value": "60"}, {"type": "Target", "value": "30"}),
    _item(
        "EVSE",
        "Power",
        {"value": "22000", "mutability": "ReadOnly", "persistent": True, "constant": False},
        variable_characteristics={"data_type": "decimal", "unit": "W", "supports_monitoring": False},
    ),
    {
        "component": {"name": "Connector", "instance": "A", "evse": {"id": 1, "connector_id": 1}},
        "variable": {"name": "Available", "instance": "x"},
        "variable_attribute": [{"value": "true"}, {"value": "false"}],  # the last of a type wins
    },
]


def _connected201(*names: str) -> None:
    """2.0.1 chargers, commissioned and connected (as after their handshake)."""
    for name in names:
        charge_point_register(charge_point_id=name, heartbeat_interval=60)
    ChargePoint.objects.filter(charge_point_id__in=names).update(connection_channel="ch", ocpp_version="2.0.1")


def _reserved(name: str, times: int = 1) -> list[int]:
    """Report ids reserved for ``name`` beforehand (as earlier reads did), in a transaction of their own."""
    charge_point = ChargePoint.objects.get(charge_point_id=name)
    with transaction.atomic():
        return [services.device_model_report_request_id(charge_point=charge_point) for _ in range(times)]


def _commands(names: list[str]) -> list[tuple[Any, ...]]:
    rows = Command.objects.filter(charge_point__charge_point_id__in=names).order_by("charge_point_identity")
    return [
        (row[0].split("-", 1)[1], *row[1:])
        for row in rows.values_list("charge_point_identity", "ocpp_version", "command", "action", "request", "state")
    ]


def _reports(names: list[str]) -> list[tuple[Any, ...]]:
    rows = DeviceModelReport.objects.filter(charge_point__charge_point_id__in=names).order_by(
        "charge_point__charge_point_id", "request_id"
    )
    return [
        (row[0].split("-", 1)[1], *row[1:6], row[6] is not None, row[7], row[8] is not None)
        for row in rows.values_list(
            "charge_point__charge_point_id",
            "request_id",
            "parts_received",
            "seq_nos",
            "variables_reported",
            "complete",
            "generated_at",
            "command__command",
            "completed_at",
        )
    ]


def _device_model(names: list[str]) -> list[tuple[Any, ...]]:
    """Each charger's variables and attributes (charger names without their prefix)."""
    rows = DeviceModelAttribute.objects.filter(variable__charge_point__charge_point_id__in=names).order_by(
        "variable__charge_point__charge_point_id", "variable__identity", "type"
    )
    return [
        (row[0].split("-", 1)[1], *row[1:-1], row[-1] is not None)
        for row in rows.values_list(
            "variable__charge_point__charge_point_id",
            "variable__component_name",
            "variable__component_instance",
            "variable__evse_id",
            "variable__connector_id",
            "variable__variable_name",
            "variable__variable_instance",
            "variable__identity",
            "variable__characteristics",
            "type",
            "value",
            "pending_value",
            "mutability",
            "persistent",
            "constant",
            "learned_from",
            "report_request_id",
            "command__command",
            "learned_at",
        )
    ]


async def test_a_batch_s_2_0_1_reads_after_a_boot_reserve_their_report_ids_by_one_statement(
    statements: list[str],
) -> None:
    """Four 2.0.1 chargers (one with report ids reserved before, one pending) and a 1.6 one: the
    batch's read, then one statement reserving the 2.0.1 chargers' report ids and recording their
    GetBaseReports; none of their own; each as recorded alone."""

    def arranged(prefix: str) -> list[str]:
        names = [f"{prefix}-{n}" for n in range(5)]
        _connected201(*names)
        ChargePoint.objects.filter(charge_point_id=names[2]).update(lifecycle_state=LifecycleState.PENDING)
        ChargePoint.objects.filter(charge_point_id=names[4]).update(ocpp_version="1.6")
        _reserved(names[1], times=3)
        return names

    alone = await sync_to_async(arranged)("ALONE")
    together = await sync_to_async(arranged)("BATCH")
    group = CommitGroup(max_units=64)
    alone_results = [
        (await one_batch(group, (configuration_refresh_on_boot, {"charge_point_id": n})))[0] for n in alone
    ]
    del statements[:]
    results = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in together))
    assert len([sql for sql in statements if sql.startswith(_READS_RECORDED)]) == 1
    assert len([sql for sql in statements if sql.startswith(_IDS_RESERVED)]) == 1
    assert not [sql for sql in statements if sql.startswith((_ONE_READ, _ONE_RESERVATION))]
    assert [type(result) for result in results] == [Command, Command, type(None), Command, Command]
    assert [type(result) for result in alone_results] == [type(result) for result in results]
    for result, name in zip(results, together, strict=True):
        if result is not None:
            assert result.charge_point.charge_point_id == name and result.state == CommandState.PENDING
            stored = await Command.objects.aget(pk=result.pk)
            assert (stored.request, stored.created_at, stored.charge_point_id) == (
                result.request,
                result.created_at,
                result.charge_point.pk,
            )
    assert [result.request for result in results[:2]] == [
        {"request_id": 1, "report_base": "FullInventory"},
        {"request_id": 4, "report_base": "FullInventory"},
    ]
    assert await sync_to_async(_commands)(together) == await sync_to_async(_commands)(alone)
    assert await sync_to_async(_reports)(together) == await sync_to_async(_reports)(alone)


async def test_a_batch_reserves_a_report_id_past_the_highest_32_bit_integer_as_one_reserved_alone(
    statements: list[str],
) -> None:
    """A charger whose reports used requestId 2147483647 (and a made-up negative one): the batch's
    reservation takes the lowest free id above 0, as a reservation alone does, never one out of range."""

    def arranged(name: str) -> None:
        _connected201(name)
        for request_id in (-3, 1, 2147483647):
            services.device_model_report_record(
                charge_point_id=name, request_id=request_id, seq_no=0, tbc=False, generated_at=None, report_data=[]
            )

    await sync_to_async(arranged)("HIGH-1")
    await sync_to_async(arranged)("HIGH-2")
    del statements[:]
    reads = ((configuration_refresh_on_boot, {"charge_point_id": name}) for name in ("HIGH-1", "HIGH-2"))
    results = await one_batch(CommitGroup(max_units=64), *reads)
    assert len([sql for sql in statements if sql.startswith(_IDS_RESERVED)]) == 1
    assert [result.request["request_id"] for result in results] == [2, 2]
    assert await sync_to_async(_reserved)("HIGH-1") == [3]


async def test_a_2_0_1_charger_held_elsewhere_is_not_waited_for_by_the_batch_s_lock(statements: list[str]) -> None:
    """The batch's read locks the others' rows without waiting for it (``SKIP LOCKED``); its unit
    waits for it at its turn, its own way (here past the first pass's lock wait, so the batch is
    written again, each its own way)."""
    import psycopg

    from conftest import _test_database_url

    names = ["HELD-1", "HELD-2", "HELD-3"]
    await sync_to_async(_connected201)(*names)
    holder = await sync_to_async(psycopg.connect)(_test_database_url())
    try:
        await sync_to_async(holder.execute)(
            f"SELECT 1 FROM {ChargePoint._meta.db_table} WHERE charge_point_id = 'HELD-2' FOR UPDATE"
        )

        def release_in_the_second_pass() -> None:
            """Once the second pass has begun (HELD-1's own read: the second one alone)."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and sum(sql.startswith(_ONE_READ) for sql in statements) < 2:
                time.sleep(0.01)
            holder.commit()

        release = threading.Thread(target=release_in_the_second_pass)
        release.start()
        del statements[:]
        results = await one_batch(
            CommitGroup(max_units=64), *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in names)
        )
        release.join()
    finally:
        await sync_to_async(holder.close)()
    assert [type(result) for result in results] == [Command] * 3
    assert len([sql for sql in statements if sql.startswith(_IDS_RESERVED)]) == 1  # HELD-1 and HELD-3's
    # HELD-2's own in the first pass (its wait past that pass's 100 ms), then all three in the
    # second; a batch lock that waited for HELD-2 would have failed the first pass before any: 3
    assert len([sql for sql in statements if sql.startswith(_ONE_READ)]) == 4
    assert [result.request["request_id"] for result in results] == [1, 1, 1]  # the first pass's rolled back
    assert await DeviceModelReport.objects.acount() == 3


async def test_a_2_0_1_charger_only_referred_to_elsewhere_is_neither_skipped_nor_waited_for(
    statements: list[str], settings: Any
) -> None:
    """Another transaction holds a foreign key's lock on chargers' rows (``KEY SHARE``: what its
    insert of a row referring to the charger takes, its constraints checked at once as a batch's
    are): the batch's lock takes them all the same, a read alone and a report id reserved alone do
    not wait for it (``FOR NO KEY UPDATE``; a ``FOR UPDATE`` skipped them, or waited)."""
    import psycopg

    from conftest import _test_database_url

    settings.CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS = 300
    names = ["REFERRED-1", "REFERRED-2", "REFERRED-3", "REFERRED-4"]
    await sync_to_async(_connected201)(*names)
    group = CommitGroup(max_units=64)
    holder = await sync_to_async(psycopg.connect)(_test_database_url())
    try:
        await sync_to_async(holder.execute)(
            f"SELECT 1 FROM {ChargePoint._meta.db_table} WHERE charge_point_id IN ('REFERRED-2', 'REFERRED-4')"
            " FOR KEY SHARE"
        )
        del statements[:]
        together = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in names[:3]))
        assert len([sql for sql in statements if sql.startswith(_READS_RECORDED)]) == 1
        assert len([sql for sql in statements if sql.startswith(_IDS_RESERVED)]) == 1  # REFERRED-2's too
        assert not [sql for sql in statements if sql.startswith(_ONE_READ)]
        alone = await one_batch(group, (configuration_refresh_on_boot, {"charge_point_id": "REFERRED-4"}))

        def reserved_alone() -> int:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = 300")
                return services.device_model_report_request_id(
                    charge_point=ChargePoint.objects.get(charge_point_id="REFERRED-2")
                )

        again = await sync_to_async(reserved_alone)()
    finally:
        await sync_to_async(holder.close)()
    assert [type(result) for result in [*together, *alone]] == [Command] * 4
    assert [result.request["request_id"] for result in [*together, *alone]] == [1, 1, 1, 1]
    assert again == 2


def _parts(prefix: str) -> list[dict[str, Any]]:
    """Four chargers' parts in four states: a reserved report's only part; the last part of a report
    one part of which arrived; a report never reserved; a part received before, again."""
    names = [f"{prefix}-{n}" for n in range(4)]
    _connected201(*names)
    for name in names[:2] + names[3:]:
        _reserved(name)
    at = datetime(2026, 12, 1, 10, tzinfo=UTC)
    earlier: dict[str, Any] = {"request_id": 1, "generated_at": at, "report_data": _REPORT[:1]}
    services.device_model_report_record(charge_point_id=names[1], seq_no=0, tbc=True, **earlier)
    DeviceModelVariable.objects.filter(charge_point__charge_point_id=names[1]).update(characteristics={"unit": "s"})
    again: dict[str, Any] = {
        "charge_point_id": names[3],
        "request_id": 1,
        "seq_no": 0,
        "tbc": False,
        "generated_at": at,
    }
    services.device_model_report_record(**again, report_data=_REPORT)
    last = {"seq_no": 0, "tbc": False, "generated_at": at, "report_data": _REPORT}
    return [
        {"charge_point_id": names[0], "request_id": 1, **last},
        {"charge_point_id": names[1], "request_id": 1, **last, "seq_no": 1, "generated_at": None},
        {"charge_point_id": names[2], "request_id": 7, **last, "tbc": True, "report_data": _REPORT[1:]},
        {**again, "report_data": _REPORT},
    ]


async def test_a_batch_s_notify_reports_are_stored_by_one_statement_as_each_alone(statements: list[str]) -> None:
    alone = await sync_to_async(_parts)("ALONE")
    together = await sync_to_async(_parts)("BATCH")
    group = CommitGroup(max_units=64)
    for part in alone:
        del statements[:]
        await one_batch(group, (services.device_model_report_record, part))
        assert len([sql for sql in statements if sql.startswith(_PARTS_STORED)]) == 1  # its own, one statement
    del statements[:]
    results = await one_batch(group, *((services.device_model_report_record, part) for part in together))
    assert [type(result) for result in results] == [DeviceModelReport] * 4
    assert len([sql for sql in statements if sql.startswith(_PARTS_STORED)]) == 1
    # nothing else (the BEGIN and COMMIT are not statements of a cursor) but, once it committed, one
    # UPDATE of the chargers whose report gives the heartbeat interval they keep (heartbeat_intervals_reported)
    assert len(statements) == 2 and statements[1].startswith('UPDATE "chargepoints_chargepoint"')
    names = [part["charge_point_id"] for part in together]
    assert [(report.charge_point_id, report.request_id) for report in results] == [
        ((await ChargePoint.objects.aget(charge_point_id=name)).pk, part["request_id"])
        for name, part in zip(names, together, strict=True)
    ]
    reports = await sync_to_async(_reports)(names)
    assert reports == await sync_to_async(_reports)([part["charge_point_id"] for part in alone])
    assert [report[1:7] for report in reports] == [
        (1, 1, [0], 4, True, True),
        (1, 2, [0, 1], 5, True, False),  # generated_at: the last part's (none)
        (7, 1, [0], 3, False, True),  # not complete: more to come
        (1, 1, [0], 4, True, True),  # the same part twice: counted once
    ]
    model = await sync_to_async(_device_model)(names)
    assert model == await sync_to_async(_device_model)([part["charge_point_id"] for part in alone])
    assert len(model) == 5 + 5 + 4 + 5
    charger_1 = [row for row in model if row[0] == "1"]
    # its item gives no characteristics: those stored stay
    assert [row[8] for row in charger_1 if row[5] == "HeartbeatInterval"] == [{"unit": "s"}]
    power = next(row for row in model if row[0] == "0" and row[5] == "Power")
    assert power[8] == {"data_type": "decimal", "unit": "W", "supports_monitoring": False}
    assert power[9:17] == ("Actual", "22000", None, "ReadOnly", True, False, "NotifyReport", 1)
    available = [row for row in model if row[0] == "0" and row[5] == "Available"]
    assert [(row[2:5], row[6], row[10]) for row in available] == [(("A", 1, 1), "x", "false")]


async def test_an_unknown_charger_s_part_fails_alone_and_the_batch_is_written_again(statements: list[str]) -> None:
    await sync_to_async(_connected201)("KNOWN-1", "KNOWN-2")
    at = datetime(2026, 12, 1, 10, tzinfo=UTC)
    part = {"request_id": 1, "seq_no": 0, "tbc": False, "generated_at": at, "report_data": _REPORT}
    del statements[:]
    results = await one_batch(
        CommitGroup(max_units=64),
        (services.device_model_report_record, {"charge_point_id": "KNOWN-1", **part}),
        (services.device_model_report_record, {"charge_point_id": "UNKNOWN", **part}),
        (services.device_model_report_record, {"charge_point_id": "KNOWN-2", **part}),
    )
    assert [type(result) for result in results] == [DeviceModelReport, ChargePoint.DoesNotExist, DeviceModelReport]
    # the batch's statement for the two known, the unknown one's own failing the first pass, each again
    assert len([sql for sql in statements if sql.startswith(_PARTS_STORED)]) == 5
    assert await DeviceModelReport.objects.filter(complete=True, parts_received=1).acount() == 2
    assert await DeviceModelAttribute.objects.acount() == 2 * 5


async def test_a_part_after_another_unit_of_its_charger_is_stored_its_own_way_and_sees_it(
    statements: list[str],
) -> None:
    """The charger's GetBaseReport answer (Accepted) before its part in the batch, on its connection:
    the part is stored after it, its attributes tied to that command, as in order."""
    names = ["ORDER-1", "ORDER-2", "ORDER-3"]
    await sync_to_async(_connected201)(*names)
    group = CommitGroup(max_units=64)
    commands = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in names))
    connection_1 = contextvars.copy_context()
    connection_1.run(charge_point_id_var.set, "ORDER-1")
    part = {"request_id": 1, "seq_no": 0, "tbc": False, "generated_at": None, "report_data": _REPORT[:1]}
    del statements[:]
    results = await one_batch(
        group,
        (connection_1, command_complete, {"command": commands[0], "outcome": call_outcome(_ACCEPTED, started=0.0)}),
        (connection_1, services.device_model_report_record, {"charge_point_id": "ORDER-1", **part}),
        (services.device_model_report_record, {"charge_point_id": "ORDER-2", **part}),
        (services.device_model_report_record, {"charge_point_id": "ORDER-3", **part}),
    )
    assert [type(result) for result in results] == [Command] + [DeviceModelReport] * 3
    assert len([sql for sql in statements if sql.startswith(_PARTS_STORED)]) == 2  # ORDER-2 and 3's, ORDER-1's
    model = await sync_to_async(_device_model)(names)
    assert [(row[0], row[17]) for row in model] == [("1", "get_base_report"), ("2", None), ("3", None)]


async def test_a_part_its_unit_does_not_take_is_not_left_stored(statements: list[str], monkeypatch) -> None:
    """The batch stored it ahead, its unit asked otherwise at its turn (here: the taking refused for
    one charger): the batch is written again, each its own way."""
    names = ["TURN-1", "TURN-2", "TURN-3"]
    await sync_to_async(_connected201)(*names)
    taken = services.report_stored_taken
    refusing = [True]

    def taken_but_turn_2_in_the_first_pass(part: Any) -> Any:
        if part.charge_point_id == "TURN-2" and refusing[0]:
            refusing[0] = False
            return None
        return taken(part)

    monkeypatch.setattr(services, "report_stored_taken", taken_but_turn_2_in_the_first_pass)
    part = {"request_id": 1, "seq_no": 0, "tbc": False, "generated_at": None, "report_data": _REPORT}
    del statements[:]
    results = await one_batch(
        CommitGroup(max_units=64),
        *((services.device_model_report_record, {"charge_point_id": name, **part}) for name in names),
    )
    assert [type(result) for result in results] == [DeviceModelReport] * 3
    # the batch's, TURN-2's own in the first pass (then rolled back), all three again
    assert len([sql for sql in statements if sql.startswith(_PARTS_STORED)]) == 5
    assert [report[2:5] for report in await sync_to_async(_reports)(names)] == [(1, [0], 4)] * 3


async def test_a_fleet_s_2_0_1_first_connects_in_batches_store_every_charger_s_device_model(
    statements: list[str],
) -> None:
    """Four 2.0.1 chargers' first connect as the fleet makes it, each step one batch: Boot, the
    read after it (GetBaseReport), its answer (Accepted), the NotifyReport, two statuses. Each
    charger's report is complete and tied to its GetBaseReport, its device model stored, one
    ``command.completed`` event each; their next boot finds the configuration current."""
    await WebhookSubscription.objects.acreate(
        url="http://hooks.invalid/", events=[EventType.COMMAND_COMPLETED], secret="s"
    )
    names = [f"FIRST-{n}" for n in range(4)]
    for name in names:
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
    await ChargePoint.objects.filter(charge_point_id__in=names).aupdate(connection_channel="ch", ocpp_version="2.0.1")
    group = CommitGroup(max_units=64)
    boot = {"vendor": "Acme", "model": "A2", "firmware_version": "1.0", "condition": configuration_read_recent()}
    booted = await one_batch(group, *((charge_point_boot, {"charge_point_id": n, **boot}) for n in names))
    assert not [configuration_current(result) for result in booted if configuration_current(result)]
    del statements[:]
    commands = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in names))
    answered = await one_batch(
        group, *((command_complete, {"command": c, "outcome": call_outcome(_ACCEPTED, started=0.0)}) for c in commands)
    )
    assert [command.state for command in answered] == [CommandState.ACCEPTED] * 4
    # written ahead with the batch's other completions: one outcome UPDATE, one tie, none of their own
    assert len([sql for sql in statements if sql.startswith(_OUTCOMES_GATHERED)]) == 1
    assert len([sql for sql in statements if sql.startswith(_TIES)]) == 1
    assert not [sql for sql in statements if sql.startswith(_OUTCOME_ALONE)]
    reports = await one_batch(
        group,
        *(
            (
                services.device_model_report_record,
                {"charge_point_id": n, "request_id": c.request["request_id"], "seq_no": 0, "tbc": False,
                 "generated_at": None, "report_data": _REPORT},
            )
            for n, c in zip(names, commands, strict=True)
        ),
    )  # fmt: skip
    for evse in (1, 2):
        status = {"evse_id": evse, "connector_id": 1, "status": "Available"}
        await one_batch(group, *((connector_status_set, {"charge_point_id": n, **status}) for n in names))
    assert [type(report) for report in reports] == [DeviceModelReport] * 4
    assert not [sql for sql in statements if sql.startswith((_ONE_READ, _ONE_RESERVATION))]
    assert len([sql for sql in statements if sql.startswith(_PARTS_STORED)]) == 1
    assert [report[1:] for report in await sync_to_async(_reports)(names)] == [
        (1, 1, [0], 4, True, False, "get_base_report", True)
    ] * 4
    model = await sync_to_async(_device_model)(names)
    assert len(model) == 4 * 5 and {row[17] for row in model} == {"get_base_report"}
    assert await WebhookDelivery.objects.filter(event_type=EventType.COMMAND_COMPLETED).acount() == 4
    again = await one_batch(group, *((charge_point_boot, {"charge_point_id": n, **boot}) for n in names))
    assert [type(result) for result in again] == [BootResult] * 4
    assert [configuration_current(result) for result in again] == [True] * 4


async def test_report_requests_answered_in_a_batch_are_tied_with_its_other_completions(
    statements: list[str],
) -> None:
    """Three report requests answered Accepted (two GetBaseReports, a GetReport) and a 1.6
    GetConfiguration answered with keys, in one batch: their outcomes by one UPDATE, the reports
    tied by one statement (``@answers_together`` of GetBaseReport and GetReport), the keys by one;
    every report tied to its command and each command as its unit answers it."""
    names = ["TIE-1", "TIE-2", "TIE-3"]
    await sync_to_async(_connected201)(*names, "TIE-16")
    await ChargePoint.objects.filter(charge_point_id="TIE-16").aupdate(ocpp_version="1.6")
    group = CommitGroup(max_units=64)
    commands = await one_batch(
        group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in [*names, "TIE-16"])
    )
    report = await sync_to_async(services.device_model_report_request_id)(
        charge_point=await ChargePoint.objects.aget(charge_point_id="TIE-3")
    )
    commands[2].action, commands[2].command = "GetReport", "get_report"
    commands[2].request = {"request_id": report, "component_criteria": ["Active"]}
    await sync_to_async(commands[2].save)()
    keys = {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]}
    answers = [_ACCEPTED] * 3 + [{"outcome": "result", "payload": keys}]
    del statements[:]
    results = await one_batch(
        group,
        *(
            (command_complete, {"command": c, "outcome": call_outcome(a, started=0.0)})
            for c, a in zip(commands, answers, strict=True)
        ),
    )
    assert [result.state for result in results] == [CommandState.ACCEPTED] * 4
    assert [result.response for result in results[:3]] == [{"status": "Accepted"}] * 3
    assert len([sql for sql in statements if sql.startswith(_OUTCOMES_GATHERED)]) == 1
    assert len([sql for sql in statements if sql.startswith(_TIES)]) == 1
    assert not [sql for sql in statements if sql.startswith(_OUTCOME_ALONE)]
    tied = DeviceModelReport.objects.filter(command__isnull=False).order_by("charge_point__charge_point_id")
    assert [row async for row in tied.values_list("request_id", "command_id")] == [
        (1, commands[0].pk),
        (1, commands[1].pk),
        (report, commands[2].pk),
    ]
    stored = Command.objects.filter(pk__in=[c.pk for c in commands]).values_list("pk", "state", "response")
    assert {row[0]: row[1:] async for row in stored} == {
        result.pk: (CommandState.ACCEPTED, result.response) for result in results
    }
    assert await ConfigurationKey.objects.filter(charge_point__charge_point_id="TIE-16").acount() == 1


async def _parts_then_answers(prefix: str, group: CommitGroup, *, together: bool) -> list[str]:
    """Three 2.0.1 chargers read after their boot; then each one's NotifyReport part, then its
    GetBaseReport's answer (Accepted), as the fleet's arrive (the charger answers, then reports at
    once): all in one batch, or each unit in its own batch (in order)."""
    names = [f"{prefix}-{n}" for n in range(3)]
    await sync_to_async(_connected201)(*names)
    commands = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in names))
    part = {"request_id": 1, "seq_no": 0, "tbc": False, "generated_at": None, "report_data": _REPORT}
    units: list[tuple[Any, dict[str, Any]]] = []
    for name, command in zip(names, commands, strict=True):
        units.append((services.device_model_report_record, {"charge_point_id": name, **part}))
        units.append((command_complete, {"command": command, "outcome": call_outcome(_ACCEPTED, started=0.0)}))
    if together:
        await one_batch(group, *units)
    else:
        for unit in units:
            await one_batch(group, unit)
    return names


async def test_answers_after_their_parts_are_written_ahead_after_the_parts_as_in_order(statements: list[str]) -> None:
    """Each charger's part, then its answer, in one batch: the parts by one statement, then the
    answers' outcomes by one and their reports tied by one, none of their own; the reports,
    commands and device models as the same units one by one leave them (the attributes learned
    before the tie: no command)."""
    group = CommitGroup(max_units=64)
    alone = await _parts_then_answers("INORDER", group, together=False)
    del statements[:]
    together = await _parts_then_answers("AHEAD", group, together=True)
    assert len([sql for sql in statements if sql.startswith(_PARTS_STORED)]) == 1
    assert len([sql for sql in statements if sql.startswith(_OUTCOMES_GATHERED)]) == 1
    assert len([sql for sql in statements if sql.startswith(_TIES)]) == 1
    assert not [sql for sql in statements if sql.startswith(_OUTCOME_ALONE)]
    assert await sync_to_async(_reports)(together) == await sync_to_async(_reports)(alone)
    assert await sync_to_async(_commands)(together) == await sync_to_async(_commands)(alone)
    model = await sync_to_async(_device_model)(together)
    assert model == await sync_to_async(_device_model)(alone)
    assert {row[17] for row in model} == {None}


async def test_an_answer_after_a_part_not_stored_ahead_is_written_after_it(statements: list[str]) -> None:
    """One charger's part (alone in the batch: not stored ahead), then its answer; two other
    chargers' answers: those two are written ahead, the first charger's answer after its part, at
    its turn (written ahead, its report's tie would come before the part: its attributes tied)."""
    names = ["AFTER-1", "AFTER-2", "AFTER-3"]
    await sync_to_async(_connected201)(*names)
    group = CommitGroup(max_units=64)
    commands = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in names))
    part = {"request_id": 1, "seq_no": 0, "tbc": False, "generated_at": None, "report_data": _REPORT}
    outcome = call_outcome(_ACCEPTED, started=0.0)
    del statements[:]
    results = await one_batch(
        group,
        (services.device_model_report_record, {"charge_point_id": "AFTER-1", **part}),
        *((command_complete, {"command": c, "outcome": outcome}) for c in commands),
    )
    assert [type(result) for result in results] == [DeviceModelReport, Command, Command, Command]
    assert len([sql for sql in statements if sql.startswith(_OUTCOMES_GATHERED)]) == 1  # AFTER-2 and 3's
    assert len([sql for sql in statements if sql.startswith(_OUTCOME_ALONE)]) == 1  # AFTER-1's, at its turn
    assert len([sql for sql in statements if sql.startswith(_TIES)]) == 2
    model = await sync_to_async(_device_model)(["AFTER-1"])
    assert len(model) == 5 and {row[17] for row in model} == {None}
    tied = DeviceModelReport.objects.order_by("charge_point__charge_point_id").values_list("command_id", flat=True)
    assert [row async for row in tied] == [command.pk for command in commands]


async def test_report_answers_written_ahead_and_not_taken_are_written_again_once_each(
    statements: list[str], monkeypatch
) -> None:
    """The batch completed three answered report requests ahead, one unit asked otherwise at its
    turn (here: the taking refused for one command in the first pass): the batch is written again,
    each its own way; every report ends tied to its command once, every command accepted."""
    names = ["AGAIN-1", "AGAIN-2", "AGAIN-3"]
    await sync_to_async(_connected201)(*names)
    group = CommitGroup(max_units=64)
    commands = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in names))
    taken = command_services.outcome_written_taken
    refusing = [True]

    def taken_but_again_2_in_the_first_pass(command: Command, outcome: Any) -> bool:
        if command.charge_point_identity == "AGAIN-2" and refusing[0]:
            refusing[0] = False
            return False
        return taken(command, outcome)

    monkeypatch.setattr(command_services, "outcome_written_taken", taken_but_again_2_in_the_first_pass)
    del statements[:]
    outcome = call_outcome(_ACCEPTED, started=0.0)
    results = await one_batch(group, *((command_complete, {"command": c, "outcome": outcome}) for c in commands))
    assert [result.state for result in results] == [CommandState.ACCEPTED] * 3
    # the batch's tie (then rolled back), each again in the second pass; AGAIN-2's own in the first
    # wrote nothing (its command completed ahead: the first completion stands)
    assert len([sql for sql in statements if sql.startswith(_TIES)]) == 1 + 3
    assert len([sql for sql in statements if sql.startswith(_OUTCOMES_GATHERED)]) == 1
    tied = DeviceModelReport.objects.order_by("charge_point__charge_point_id").values_list("request_id", "command_id")
    assert [row async for row in tied] == [(1, command.pk) for command in commands]


async def test_a_refused_report_request_written_ahead_forgets_its_report_as_alone(statements: list[str]) -> None:
    """A refused report request (NotSupported) is completed ahead with an accepted one, its reserved
    report forgotten by its route as alone; an unanswered one (a CALLERROR) goes its own way and
    ties nothing."""
    names = ["NOTIE-1", "NOTIE-2", "NOTIE-3"]
    await sync_to_async(_connected201)(*names)
    group = CommitGroup(max_units=64)
    commands = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in names))
    refused = call_outcome({"outcome": "result", "payload": {"status": "NotSupported"}}, started=0.0)
    unanswered = call_outcome({"outcome": "call_error", "error_code": "NotImplemented"}, started=0.0)
    del statements[:]
    results = await one_batch(
        group,
        (command_complete, {"command": commands[0], "outcome": refused}),
        (command_complete, {"command": commands[1], "outcome": unanswered}),
        (command_complete, {"command": commands[2], "outcome": call_outcome(_ACCEPTED, started=0.0)}),
    )
    assert [result.state for result in results] == [
        CommandState.REJECTED,
        CommandState.CALL_ERROR,
        CommandState.ACCEPTED,
    ]
    # ahead: the refused and the accepted; at the batch's end: the unanswered one's (round 17's)
    assert len([sql for sql in statements if sql.startswith(_OUTCOMES_GATHERED)]) == 2
    assert not [sql for sql in statements if sql.startswith(_OUTCOME_ALONE)]
    assert len([sql for sql in statements if sql.startswith(_TIES)]) == 1  # the accepted one's
    assert len([sql for sql in statements if sql.startswith(_REFUSED_FORGOTTEN)]) == 1
    reports = DeviceModelReport.objects.order_by("charge_point__charge_point_id").values_list(
        "charge_point__charge_point_id", "command_id"
    )
    assert [row async for row in reports] == [("NOTIE-2", None), ("NOTIE-3", commands[2].pk)]


async def test_a_report_answer_written_ahead_for_a_command_the_sweep_timed_out_leaves_its_timeout() -> None:
    """A batch completing answered report requests ahead (one UPDATE for all) overwrote the Timeout
    the abandoned-commands sweep gave one of them meanwhile (a second ``command.completed``). The
    first completion stands: that command stays timed out, its report untied; the others are
    completed."""
    names = ["SWEPT-1", "SWEPT-2", "SWEPT-3"]
    await sync_to_async(_connected201)(*names)
    group = CommitGroup(max_units=64)
    commands = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in names))
    await Command.objects.filter(pk=commands[1].pk).aupdate(state=CommandState.TIMEOUT)  # the sweep's
    outcome = call_outcome(_ACCEPTED, started=0.0)
    results = await one_batch(group, *((command_complete, {"command": c, "outcome": outcome}) for c in commands))
    assert [result.state for result in results] == [CommandState.ACCEPTED, CommandState.TIMEOUT, CommandState.ACCEPTED]
    states = Command.objects.filter(pk__in=[c.pk for c in commands]).order_by("charge_point_identity")
    assert [state async for state in states.values_list("state", flat=True)] == [
        CommandState.ACCEPTED,
        CommandState.TIMEOUT,
        CommandState.ACCEPTED,
    ]
    tied = DeviceModelReport.objects.filter(command_id__isnull=False).values_list("command_id", flat=True)
    assert {row async for row in tied} == {commands[0].pk, commands[2].pk}
