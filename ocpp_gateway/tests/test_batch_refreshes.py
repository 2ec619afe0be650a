"""A group-commit batch's configuration reads after a boot recorded together
(``configuration.refresh_writes``; PostgreSQL): one statement for the batch's 1.6 chargers, each
read as it is recorded alone (a pending GetConfiguration of its own, none for a charger not to be
asked); a 2.0.1 charger's read by a second (its report id reserved: ``test_batch_reports``); one
after another unit of its charger records its own way.
Their outcomes when unanswered (a CALLERROR) written together too, unless a webhook subscription
wants ``command.completed``; when answered with keys, their outcomes and keys written ahead of the
batch's units by one statement each (``commands.outcome_writes``), but for a read after another unit
of its charger; a Boot after its read in the batch sees it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.utils import timezone

from chargepoints.models import ChargePoint, Connector, LifecycleState
from chargepoints.services import charge_point_boot, charge_point_register, connector_status_set
from commands.models import Command, CommandState
from commands.rpc import call_outcome
from commands.services import command_complete
from configuration.changes import configuration_read_recent, configuration_refresh_on_boot
from configuration.models import ConfigurationKey, LearnedFrom
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
_KEYS = connection.ops.quote_name(ConfigurationKey._meta.db_table)
_KEYS_ALONE = f"WITH gone AS (DELETE FROM {_KEYS}"  # an answer's keys stored its own way
_KEYS_TOGETHER = "WITH t AS (SELECT * FROM unnest("  # the batch's


@pytest.fixture(autouse=True)
def _read_after_boot(settings: Any) -> None:
    settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT = True
    settings.CSMS_CONFIGURATION_REFRESH_MAX_AGE = 3600


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


def _answer(n: int) -> dict[str, Any]:
    """Charger ``n``'s GetConfiguration answer (camelCase, as sent): an interval of its own, a key
    without a value, and for charger 1 a key it does not know."""
    keys = [
        {"key": "HeartbeatInterval", "readonly": False, "value": str(300 + n)},
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
        {"key": "AuthorizationKey", "readonly": False},
    ]
    return {
        "outcome": "result",
        "payload": {"configurationKey": keys, **({"unknownKey": ["Vendor.X"]} if n == 1 else {})},
    }


def _expected_keys(n: int, command: Command) -> list[tuple[Any, ...]]:
    """Charger ``n``'s keys once ``_answer(n)`` is stored: (key, value, readonly, unknown, pending, from, command)."""
    read = (None, LearnedFrom.GET_CONFIGURATION, command.pk)
    unknown = [("Vendor.X", None, None, True, *read)] if n == 1 else []
    return [
        ("AuthorizationKey", None, False, False, *read),
        ("HeartbeatInterval", str(300 + n), False, False, *read),
        ("NumberOfConnectors", "2", True, False, *read),
        *unknown,
    ]


def _keys_stored(name: str) -> list[tuple[Any, ...]]:
    rows = ConfigurationKey.objects.filter(charge_point__charge_point_id=name).order_by("key")
    return list(rows.values_list("key", "value", "readonly", "unknown", "pending_value", "learned_from", "command_id"))


def _keys_known_before(name: str) -> None:
    """Keys the charger's read will change: one its answer lacks (gone), one waiting for a reboot (its
    value read: the charger booted since, and this is the read after its boot)."""
    charge_point = ChargePoint.objects.get(charge_point_id=name)
    for key, pending in (("Gone", None), ("HeartbeatInterval", "900")):
        ConfigurationKey.objects.create(
            charge_point=charge_point,
            key=key,
            value="1",
            readonly=False,
            pending_value=pending,
            learned_from=LearnedFrom.CHANGE_CONFIGURATION,
            learned_at=timezone.now(),
        )
    ChargePoint.objects.filter(pk=charge_point.pk).update(last_boot_at=timezone.now())


def _written(statements: list[str]) -> dict[str, int]:
    """How the batch's outcomes and keys were written: alone or together, statements of each."""
    starts = {
        "outcomes alone": _OUTCOME_ALONE,
        "outcomes together": _OUTCOMES_GATHERED,
        "keys alone": _KEYS_ALONE,
        "keys together": _KEYS_TOGETHER,
    }
    return {way: len([sql for sql in statements if sql.startswith(start)]) for way, start in starts.items()}


def _completion(command: Command, n: int) -> tuple[Any, dict[str, Any]]:
    return command_complete, {"command": command, "outcome": call_outcome(_answer(n), started=0.0)}


async def _recorded_reads(group: CommitGroup, names: list[str]) -> list[Command]:
    commands = await one_batch(group, *((configuration_refresh_on_boot, {"charge_point_id": n}) for n in names))
    assert all(isinstance(command, Command) for command in commands), commands
    return commands


def _completed_rows(commands: list[Command]) -> list[tuple[Any, ...]]:
    """Each command's row as (state, response, completed_at), in the order of ``commands``."""
    rows = Command.objects.in_bulk([command.pk for command in commands])
    return [(rows[c.pk].state, rows[c.pk].response, rows[c.pk].completed_at) for c in commands]


async def _three_reads_completed_together(names: list[str], statements: list[str]) -> tuple[list[Any], list[Any]]:
    """The first three chargers' reads recorded, then answered in one batch: every completion
    written ahead, outcomes by one statement and keys by one. (commands, the units' results)."""
    group = CommitGroup(max_units=64)
    commands = await _recorded_reads(group, names[:3])
    del statements[:]
    results = await one_batch(group, *(_completion(command, n) for n, command in enumerate(commands)))
    assert not [result for result in results if isinstance(result, BaseException)], results
    assert _written(statements) == {"outcomes alone": 0, "outcomes together": 1, "keys alone": 0, "keys together": 1}
    return commands, results


async def test_a_batch_s_answered_reads_are_completed_by_one_statement_for_outcomes_and_one_for_keys(
    statements: list[str],
) -> None:
    names = await sync_to_async(_arranged)("KEYS")
    await sync_to_async(_keys_known_before)(names[0])
    commands, results = await _three_reads_completed_together(names, statements)
    rows = await sync_to_async(_completed_rows)(commands)
    assert [row[0] for row in rows] == [CommandState.ACCEPTED] * 3
    for n, (name, command, row) in enumerate(zip(names, results, rows, strict=False)):
        assert command.state == CommandState.ACCEPTED and command.completed_at is not None
        assert row[1:] == (command.response, command.completed_at)  # the unit's instance is the row written
        assert row[1]["configuration_key"][0] == {"key": "HeartbeatInterval", "readonly": False, "value": str(300 + n)}
        assert await sync_to_async(_keys_stored)(name) == _expected_keys(n, command)


async def test_a_boot_after_its_answered_read_in_the_batch_sees_it_one_before_does_not(
    statements: list[str],
) -> None:
    names = await sync_to_async(_arranged)("BOOTED")
    boot = {"vendor": "Acme", "model": "A1", "firmware_version": "2.0", "condition": configuration_read_recent()}
    group = CommitGroup(max_units=64)
    await one_batch(group, *((charge_point_boot, {"charge_point_id": name, **boot}) for name in names[:3]))
    commands = await _recorded_reads(group, names[:3])
    del statements[:]
    status = {"charge_point_id": names[2], "connector_id": 1, "status": "Available", "error_code": "NoError"}
    results = await one_batch(
        group,
        (charge_point_boot, {"charge_point_id": names[1], **boot}),  # before its read's completion
        (connector_status_set, status),  # before its read's completion: reads no configuration
        *(_completion(command, n) for n, command in enumerate(commands)),
        (charge_point_boot, {"charge_point_id": names[0], **boot}),  # after its read's completion
    )
    assert not [result for result in results if isinstance(result, BaseException)], results
    assert results[0].condition_held is False  # its configuration not read yet: read again after this boot
    assert results[-1].condition_held is True  # read in this batch, before this boot: current
    # the read after the Boot of its charger completes its own way; the others (one after a status) ahead
    assert _written(statements) == {"outcomes alone": 1, "outcomes together": 1, "keys alone": 1, "keys together": 1}
    for n, (name, command) in enumerate(zip(names, commands, strict=False)):
        assert await sync_to_async(_keys_stored)(name) == _expected_keys(n, command)


_ONE_STATUS = "WITH cp AS (UPDATE chargepoints_chargepoint SET last_seen"  # a status written its own way
_STATUSES_WRITTEN = "WITH given AS (SELECT * FROM unnest("  # the batch's statuses' connectors


def _connectors(names: list[str]) -> list[tuple[Any, ...]]:
    rows = Connector.objects.filter(charge_point__charge_point_id__in=names).order_by("charge_point__charge_point_id")
    return list(
        rows.order_by("charge_point__charge_point_id", "connector_id").values_list(
            "charge_point__charge_point_id", "connector_id", "status"
        )
    )


async def test_a_status_after_its_charger_s_read_after_a_boot_or_its_completion_is_written_with_the_batch(
    statements: list[str],
) -> None:
    """A first connect's statuses arrive beside its read after the Boot and that read's answer: a
    status after them (which write a command and the configuration store only) is still written
    with the batch's statuses, not its own way."""
    names = await sync_to_async(_arranged)("BESIDE")
    group = CommitGroup(max_units=64)
    del statements[:]

    def status(name: str, connector_id: int) -> tuple[Any, dict[str, Any]]:
        return connector_status_set, {
            "charge_point_id": name,
            "connector_id": connector_id,
            "status": "Available",
            "error_code": "NoError",
        }

    results = await one_batch(
        group,
        (configuration_refresh_on_boot, {"charge_point_id": names[0]}),
        status(names[0], 1),
        (configuration_refresh_on_boot, {"charge_point_id": names[1]}),
        status(names[1], 1),
    )
    assert not [result for result in results if isinstance(result, BaseException)], results
    commands = [results[0], results[2]]
    assert all(isinstance(command, Command) for command in commands), results
    assert len([sql for sql in statements if sql.startswith(_READS_RECORDED)]) == 1
    assert not [sql for sql in statements if sql.startswith(_ONE_STATUS)]
    assert len([sql for sql in statements if sql.startswith(_STATUSES_WRITTEN)]) == 1
    del statements[:]
    results = await one_batch(
        group,
        _completion(commands[0], 0),
        status(names[0], 2),
        _completion(commands[1], 1),
        status(names[1], 2),
        status(names[1], 1),  # after another status of its charger: its own way, as before
    )
    assert not [result for result in results if isinstance(result, BaseException)], results
    assert _written(statements) == {"outcomes alone": 0, "outcomes together": 1, "keys alone": 0, "keys together": 1}
    assert len([sql for sql in statements if sql.startswith(_ONE_STATUS)]) == 1
    assert len([sql for sql in statements if sql.startswith(_STATUSES_WRITTEN)]) == 1
    assert await sync_to_async(_connectors)(names[:2]) == [
        (names[0], 1, "Available"),
        (names[0], 2, "Available"),
        (names[1], 1, "Available"),
        (names[1], 2, "Available"),
    ]
    for n, (name, command) in enumerate(zip(names, commands, strict=False)):
        assert await sync_to_async(_keys_stored)(name) == _expected_keys(n, command)


async def test_answered_reads_wanted_by_a_subscription_are_completed_together_with_their_events(
    statements: list[str],
) -> None:
    await WebhookSubscription.objects.acreate(url="http://127.0.0.1:9/hooks", events=["command.completed"], secret="s")
    names = await sync_to_async(_arranged)("EVENTS")
    _, results = await _three_reads_completed_together(names, statements)
    bodies = [
        json.loads(body)["data"]
        async for body in WebhookDelivery.objects.filter(event_type="command.completed").values_list("body", flat=True)
    ]
    assert sorted((data["command_id"], data["state"], data["response"]) for data in bodies) == sorted(
        (str(command.pk), CommandState.ACCEPTED, command.response) for command in results
    )


@pytest.fixture
def keys_refused() -> Any:
    """PostgreSQL refuses a key named ``Refused``: a read whose keys cannot be stored (a lenient
    charger's over-long key did so before such keys were left out, ``configuration.services``)."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {_KEYS} ADD CONSTRAINT test_key_refused CHECK (key <> 'Refused')")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {_KEYS} DROP CONSTRAINT test_key_refused")


async def test_a_batch_whose_keys_are_refused_completes_each_read_its_own_way(
    statements: list[str], keys_refused: None
) -> None:
    names = await sync_to_async(_arranged)("REFUSED")
    group = CommitGroup(max_units=64)
    commands = await _recorded_reads(group, names[:3])
    too_long = _answer(1)
    too_long["payload"]["configurationKey"].append({"key": "Refused", "readonly": False, "value": "1"})
    del statements[:]
    results = await one_batch(
        group,
        _completion(commands[0], 0),
        (command_complete, {"command": commands[1], "outcome": call_outcome(too_long, started=0.0)}),
        _completion(commands[2], 2),
    )
    # its keys' failure, alone: the answer is recorded all the same (a command left pending helps no one)
    assert [result.state for result in results] == [CommandState.ACCEPTED] * 3
    # the first pass tried the batch's statements; the second wrote each read its own way
    assert _written(statements) == {"outcomes alone": 3, "outcomes together": 1, "keys alone": 3, "keys together": 1}
    rows = await sync_to_async(_completed_rows)(commands)
    assert [row[0] for row in rows] == [CommandState.ACCEPTED] * 3
    assert await sync_to_async(_keys_stored)(names[1]) == []
    for n in (0, 2):
        assert await sync_to_async(_keys_stored)(names[n]) == _expected_keys(n, commands[n])


def _refused() -> None:
    raise ValueError("a later unit of the batch fails")


async def test_answered_reads_written_ahead_of_a_unit_that_fails_are_written_again_once_each(
    statements: list[str],
) -> None:
    """The first pass wrote the reads ahead, then a later unit failed: the pass is rolled back and
    the second writes each read its own way — every outcome and key stored once, one event each."""
    await WebhookSubscription.objects.acreate(url="http://127.0.0.1:9/hooks", events=["command.completed"], secret="s")
    names = await sync_to_async(_arranged)("LATER")
    group = CommitGroup(max_units=64)
    commands = await _recorded_reads(group, names[:3])
    del statements[:]
    results = await one_batch(group, *(_completion(command, n) for n, command in enumerate(commands)), (_refused, {}))
    assert isinstance(results[-1], ValueError)  # its own failure, alone
    assert [result.state for result in results[:3]] == [CommandState.ACCEPTED] * 3
    assert _written(statements) == {"outcomes alone": 3, "outcomes together": 1, "keys alone": 3, "keys together": 1}
    rows = await sync_to_async(_completed_rows)(commands)
    assert [row[0] for row in rows] == [CommandState.ACCEPTED] * 3
    for n, (name, command) in enumerate(zip(names, commands, strict=False)):
        assert await sync_to_async(_keys_stored)(name) == _expected_keys(n, command)
    events = WebhookDelivery.objects.filter(event_type="command.completed").values_list("body", flat=True)
    assert sorted([json.loads(body)["data"]["command_id"] async for body in events]) == sorted(
        str(command.pk) for command in commands
    )
