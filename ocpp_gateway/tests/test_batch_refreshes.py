"""A group-commit batch's configuration reads after a boot recorded together
(``configuration.refresh_writes``; PostgreSQL): one statement for the batch's 1.6 chargers, each
read as it is recorded alone (a pending GetConfiguration of its own, none for a charger not to be
asked); a 2.0.1 charger's read by a second (its report id reserved: ``test_batch_reports``); one
after another unit of its charger records its own way.
Their outcomes when unanswered (a CALLERROR) written together too, unless a webhook subscription
wants ``command.completed``."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from chargepoints.models import ChargePoint, LifecycleState
from chargepoints.services import charge_point_register, connector_status_set
from commands.models import Command, CommandState
from commands.rpc import call_outcome
from commands.services import command_complete
from configuration.changes import configuration_refresh_on_boot
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.tests.batches import one_batch
from webhooks.models import WebhookDelivery, WebhookSubscription

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements: PostgreSQL"),
]

_ONE_READ = "WITH cp AS (SELECT"  # a read after a boot recorded its own way
_READS_RECORDED = "WITH ask AS (SELECT * FROM unnest(%s::text[]"  # the batch's
_IDS_RESERVED = "WITH ask AS (SELECT * FROM unnest(%s::bigint[]"  # the batch's 2.0.1 report ids and commands
_COMMANDS = connection.ops.quote_name(Command._meta.db_table)
_OUTCOME_ALONE = f'UPDATE {_COMMANDS} SET "state" = %s'  # an outcome written its own way
_OUTCOMES_GATHERED = f'UPDATE {_COMMANDS} SET "state" = v."state"'  # the batch's
_UNANSWERED = {"outcome": "call_error", "error_code": "NotImplemented", "error_description": "no"}


@pytest.fixture(autouse=True)
def _read_after_boot(settings: Any) -> None:
    settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT = True


def _arranged(prefix: str) -> list[str]:
    """Five chargers: three 1.6 ones connected and commissioned, one pending, one 2.0.1 connected."""
    names = [f"{prefix}-{n}" for n in range(5)]
    for name in names:
        charge_point_register(charge_point_id=name, heartbeat_interval=60)
    ChargePoint.objects.filter(charge_point_id__in=names).update(connection_channel="ch", ocpp_version="1.6")
    ChargePoint.objects.filter(charge_point_id=names[3]).update(lifecycle_state=LifecycleState.PENDING)
    ChargePoint.objects.filter(charge_point_id=names[4]).update(ocpp_version="2.0.1")
    return names


def _recorded(name: str) -> list[tuple[Any, ...]]:
    return list(
        Command.objects.filter(charge_point__charge_point_id=name).values_list(
            "charge_point_identity", "ocpp_version", "command", "action", "request", "state"
        )
    )


async def test_a_batch_s_1_6_reads_after_a_boot_are_recorded_by_one_statement(statements: list[str]) -> None:
    names = await sync_to_async(_arranged)("READ")
    group = CommitGroup(max_units=64)
    del statements[:]
    results = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": name}) for name in names))
    assert not [result for result in results if isinstance(result, BaseException)], results
    assert len([sql for sql in statements if sql.startswith(_READS_RECORDED)]) == 1
    assert not [sql for sql in statements if sql.startswith(_ONE_READ)]  # the 2.0.1 charger's too (round 18)
    assert len([sql for sql in statements if sql.startswith(_IDS_RESERVED)]) == 1  # its report id, its GetBaseReport
    commands = results[:3]
    assert all(isinstance(command, Command) for command in commands)
    assert len({command.pk for command in commands}) == 3
    assert results[3] is None  # pending: not asked
    assert isinstance(results[4], Command) and results[4].command == "get_base_report"
    for name, command in zip(names, commands, strict=False):
        assert command.charge_point.charge_point_id == name
        assert command.action == "GetConfiguration" and command.created_at is not None
        assert await sync_to_async(_recorded)(name) == [
            (name, "1.6", "get_configuration", "GetConfiguration", {}, CommandState.PENDING)
        ]
        assert (await Command.objects.aget(pk=command.pk)).created_at == command.created_at
    assert await sync_to_async(_recorded)(names[3]) == []


async def test_a_read_after_another_unit_of_its_charger_records_its_own_way(statements: list[str]) -> None:
    names = await sync_to_async(_arranged)("AFTER")
    group = CommitGroup(max_units=64)
    del statements[:]
    status = {"charge_point_id": names[0], "connector_id": 1, "status": "Available", "error_code": "NoError"}
    results = await one_batch(
        group,
        (connector_status_set, status),
        (configuration_refresh_on_boot, {"charge_point_id": names[0]}),
        (configuration_refresh_on_boot, {"charge_point_id": names[1]}),
        (configuration_refresh_on_boot, {"charge_point_id": names[2]}),
    )
    assert all(isinstance(command, Command) for command in results[1:]), results
    assert len([sql for sql in statements if sql.startswith(_READS_RECORDED)]) == 1
    assert len([sql for sql in statements if sql.startswith(_ONE_READ)]) == 1  # the first charger's
    for name in names[:3]:
        assert len(await sync_to_async(_recorded)(name)) == 1


async def _unanswered(prefix: str) -> list[Command]:
    """The reads after a boot of three 1.6 chargers, recorded, then answered by a CALLERROR in one batch."""
    names = await sync_to_async(_arranged)(prefix)
    group = CommitGroup(max_units=64)
    commands = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in names[:3]))
    outcome = call_outcome(_UNANSWERED, started=0.0)
    results = await one_batch(group, *((command_complete, {"command": c, "outcome": outcome}) for c in commands))
    assert not [result for result in results if isinstance(result, BaseException)], results
    return commands


def _outcomes(commands: list[Command]) -> list[tuple[Any, ...]]:
    rows = Command.objects.filter(pk__in=[command.pk for command in commands]).order_by("pk")
    return [
        (*row[:3], row[3] is not None)
        for row in rows.values_list("state", "error_code", "error_description", "completed_at")
    ]


async def test_a_batch_s_unanswered_reads_are_completed_by_one_statement(statements: list[str]) -> None:
    commands = await _unanswered("DONE")
    assert [sql for sql in statements if sql.startswith(_OUTCOME_ALONE)] == []
    assert len([sql for sql in statements if sql.startswith(_OUTCOMES_GATHERED)]) == 1
    assert await sync_to_async(_outcomes)(commands) == [(CommandState.CALL_ERROR, "NotImplemented", "no", True)] * 3


async def test_unanswered_reads_wanted_by_a_subscription_are_completed_with_their_events(
    statements: list[str],
) -> None:
    await WebhookSubscription.objects.acreate(url="http://127.0.0.1:9/hooks", events=["command.completed"], secret="s")
    commands = await _unanswered("HOOKED")
    assert [sql for sql in statements if sql.startswith(_OUTCOMES_GATHERED)] == []
    assert len([sql for sql in statements if sql.startswith(_OUTCOME_ALONE)]) == 3
    assert await sync_to_async(_outcomes)(commands) == [(CommandState.CALL_ERROR, "NotImplemented", "no", True)] * 3
    assert await WebhookDelivery.objects.filter(event_type="command.completed").acount() == 3
