"""A group-commit batch's BootNotifications written together (``chargepoints.services.boot_writes``;
PostgreSQL): one statement for the whole batch's boots, and each ends as it ends booted alone (the
answer: status, interval, identity kept, the configuration read's condition; the charger's row; its
online event); an unknown charger, one after another unit of its charger, one in a batch written
again, one its unit does not take, or one whose charger is held elsewhere boots its own way."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from chargepoints.models import ChargePoint, LifecycleState
from chargepoints.services import BootResult, charge_point_boot, charge_point_register, connector_status_set, fleet
from commands.models import Command, CommandState
from configuration.changes import configuration_read_recent
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.tests.batches import Refused, one_batch, refused
from webhooks.models import EventType, WebhookDelivery, WebhookSubscription

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements: PostgreSQL"),
]

_ONE_BOOT = "WITH before AS (SELECT id, connected, vendor"  # a boot written its own way
_BOOTS_WRITTEN = "WITH sent AS (SELECT * FROM unnest("
_ROW = ("connected", "offline_since", "lifecycle_state", "vendor", "model", "serial_number", "firmware_version",
        "iccid", "imsi", "meter_type", "meter_serial_number", "boot_pending",
        "previous_heartbeat_interval")  # fmt: skip


@pytest.fixture(autouse=True)
def _read_after_boot(settings: Any) -> None:
    settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT = True
    settings.CSMS_CONFIGURATION_REFRESH_MAX_AGE = 3600


def _boot(charge_point_id: str, firmware_version: str = "2.0") -> dict[str, Any]:
    """The Boot unit's arguments, as both versions' handlers queue it (the configuration read's condition)."""
    return {
        "charge_point_id": charge_point_id,
        "vendor": "Acme",
        "model": "A1",
        "serial_number": "S-1",
        "firmware_version": firmware_version,
        "iccid": "89",
        "imsi": "24",
        "meter_type": "EM340",
        "meter_serial_number": "M-1",
        "condition": configuration_read_recent(),
    }


def _configuration_read(charge_point_id: str) -> None:
    """A read of the whole configuration, asked and accepted now (1.6)."""
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
    Command.objects.create(
        charge_point=charge_point,
        charge_point_identity=charge_point_id,
        ocpp_version="1.6",
        command="get_configuration",
        action="GetConfiguration",
        request={},
        state=CommandState.ACCEPTED,
    )


def _arranged(prefix: str) -> list[dict[str, Any]]:
    """Six chargers in five states; the boots under test."""
    cp = [f"{prefix}-{n}" for n in range(6)]
    for n, name in enumerate(cp):
        charge_point_register(charge_point_id=name, heartbeat_interval=60 + n)
    ChargePoint.objects.filter(charge_point_id__in=cp).update(previous_heartbeat_interval=300)  # a boot clears it
    ChargePoint.objects.filter(charge_point_id=cp[1]).update(connected=True, connection_channel="ch")
    ChargePoint.objects.filter(charge_point_id=cp[2]).update(lifecycle_state=LifecycleState.PENDING)
    for name in cp[3:5]:
        charge_point_boot(**_boot(name))
        _configuration_read(name)
    return [
        _boot(cp[0]),  # offline, never booted: its online event
        _boot(cp[1]),  # connected: no event
        _boot(cp[2]),  # pending: answered Pending
        _boot(cp[3]),  # the same firmware, its configuration read recently: no read asked
        _boot(cp[4], firmware_version="2.1"),  # new firmware: the read under 2.0 does not stand for it
        _boot(cp[5]),  # offline, never booted
    ]


def _outcome(prefix: str, results: list[Any]) -> list[tuple[Any, ...]]:
    """Each charger's answer (interval as its offset), row and online events; names as placeholders."""
    ended = []
    for n, result in enumerate(results):
        name = f"{prefix}-{n}"
        row = ChargePoint.objects.filter(charge_point_id=name).values_list(*_ROW, "last_boot_at", "last_seen").get()
        events = [
            json.loads(body)["data"]["reason"]
            for body in WebhookDelivery.objects.filter(event_type=EventType.CHARGE_POINT_ONLINE).values_list(
                "body", flat=True
            )
            if json.loads(body)["data"]["charge_point_id"] == name
        ]
        assert row[-2] == row[-1] == result.current_time  # its boot time is the one answered
        answer = (result.status, result.interval - n, result.identity_kept, result.condition_held)
        ended.append((answer, row[:-2], events))
    return ended


async def _subscribed() -> None:
    await WebhookSubscription.objects.acreate(
        url="http://hooks.invalid/", events=[EventType.CHARGE_POINT_ONLINE], secret="s"
    )


async def test_a_batch_s_boots_are_written_by_one_statement_and_end_as_each_booted_alone(
    statements: list[str],
) -> None:
    await _subscribed()
    alone = await sync_to_async(_arranged)("ALONE")
    together = await sync_to_async(_arranged)("BATCH")
    group = CommitGroup(max_units=64)
    alone_results = [(await one_batch(group, (charge_point_boot, boot)))[0] for boot in alone]
    del statements[:]
    results = await one_batch(group, *((charge_point_boot, boot) for boot in together))
    assert len([sql for sql in statements if sql.startswith(_BOOTS_WRITTEN)]) == 1
    assert not [sql for sql in statements if sql.startswith(_ONE_BOOT)]
    assert [type(result) for result in results] == [BootResult] * 6
    expected = await sync_to_async(_outcome)("ALONE", alone_results)
    assert await sync_to_async(_outcome)("BATCH", results) == expected
    assert [answer for answer, _, _ in expected] == [
        ("Accepted", 60, False, False),
        ("Accepted", 60, False, False),
        ("Pending", 60, False, False),
        ("Accepted", 60, True, True),
        ("Accepted", 60, False, True),  # asked since the last boot, within the max age: held (identity not kept)
        ("Accepted", 60, False, False),
    ]
    assert [len(events) for _, _, events in expected] == [1, 0, 1, 1, 1, 1]  # 3 and 4: at their first boot
    assert [row[-1] for _, row, _ in expected] == [None] * 6  # the interval kept until the boot: none now


def _booted_before(prefix: str) -> tuple[list[dict[str, Any]], list[Any]]:
    """Three chargers, the first two booted already; their boots, the first no restart (2.0.1 reason
    ``Triggered``), and their boot times before them."""
    cp = [f"{prefix}-{n}" for n in range(3)]
    for name in cp:
        charge_point_register(charge_point_id=name, heartbeat_interval=60)
    for name in cp[:2]:
        charge_point_boot(**_boot(name))
    before = [ChargePoint.objects.values_list("last_boot_at", flat=True).get(charge_point_id=name) for name in cp]
    return [{**_boot(cp[0]), "restarted": False}, _boot(cp[1]), {**_boot(cp[2]), "restarted": False}], before


def _boot_times(prefix: str) -> list[Any]:
    return [
        ChargePoint.objects.values_list("last_boot_at", flat=True).get(charge_point_id=f"{prefix}-{n}")
        for n in range(3)
    ]


async def test_a_boot_that_is_no_restart_keeps_the_boot_time_in_a_batch_as_alone(statements: list[str]) -> None:
    """A boot the charger says is no restart (2.0.1 ``Triggered``) keeps the charger's boot time, on
    any connection; one of a charger that never booted sets it, as a restart does."""
    group = CommitGroup(max_units=64)
    for prefix in ("ALONE-NR", "BATCH-NR"):
        boots, before = await sync_to_async(_booted_before)(prefix)
        del statements[:]
        if prefix.startswith("ALONE"):
            results = [(await one_batch(group, (charge_point_boot, boot)))[0] for boot in boots]
        else:
            results = await one_batch(group, *((charge_point_boot, boot) for boot in boots))
            assert len([sql for sql in statements if sql.startswith(_BOOTS_WRITTEN)]) == 1
        assert before[0] is not None and before[2] is None
        assert await sync_to_async(_boot_times)(prefix) == [
            before[0],
            results[1].current_time,
            results[2].current_time,
        ]


async def test_a_boot_after_another_unit_of_its_charger_in_the_batch_writes_its_own_way(
    statements: list[str],
) -> None:
    for name in ("TWICE-1", "TWICE-2", "TWICE-3"):
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
    status = {"charge_point_id": "TWICE-1", "connector_id": 1, "status": "Available"}
    del statements[:]
    results = await one_batch(
        CommitGroup(max_units=64),
        (connector_status_set, status),
        (charge_point_boot, _boot("TWICE-1")),  # after its charger's status: its own way
        (charge_point_boot, _boot("TWICE-2")),
        (charge_point_boot, _boot("TWICE-3")),
        (charge_point_boot, _boot("TWICE-2", firmware_version="2.1")),  # its charger's second boot
    )
    assert [type(result) for result in results[1:]] == [BootResult] * 4
    assert len([sql for sql in statements if sql.startswith(_BOOTS_WRITTEN)]) == 1
    assert len([sql for sql in statements if sql.startswith(_ONE_BOOT)]) == 2
    assert results[4].identity_kept is False and results[4].current_time > results[2].current_time
    firmware = ChargePoint.objects.values_list("firmware_version", flat=True)
    assert await firmware.aget(charge_point_id="TWICE-2") == "2.1"


async def test_an_unknown_charger_s_boot_fails_alone_and_the_batch_is_written_again(statements: list[str]) -> None:
    for name in ("KNOWN-1", "KNOWN-2"):
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
    del statements[:]
    results = await one_batch(
        CommitGroup(max_units=64),
        (charge_point_boot, _boot("KNOWN-1")),
        (charge_point_boot, _boot("UNKNOWN")),
        (charge_point_boot, _boot("KNOWN-2")),
    )
    assert [type(result) for result in results] == [BootResult, ChargePoint.DoesNotExist, BootResult]
    # the first pass wrote the two known ahead, then the unknown one's own write failed it; the
    # second pass booted each its own way
    assert len([sql for sql in statements if sql.startswith(_BOOTS_WRITTEN)]) == 1
    assert len([sql for sql in statements if sql.startswith(_ONE_BOOT)]) == 4
    booted = ChargePoint.objects.order_by("charge_point_id").values_list("charge_point_id", "firmware_version")
    assert [row async for row in booted] == [("KNOWN-1", "2.0"), ("KNOWN-2", "2.0")]


async def test_a_batch_written_again_boots_each_once_its_own_way(statements: list[str]) -> None:
    for name in ("AGAIN-1", "AGAIN-2"):
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
        await sync_to_async(charge_point_boot)(**_boot(name, firmware_version="1.0"))
    del statements[:]
    results = await one_batch(
        CommitGroup(max_units=64),
        (charge_point_boot, _boot("AGAIN-1")),
        (refused, {}),
        (charge_point_boot, _boot("AGAIN-2")),
    )
    assert [type(result) for result in results] == [BootResult, Refused, BootResult]
    # the rows written ahead were rolled back with the first pass: the new firmware is a change
    assert [results[0].identity_kept, results[2].identity_kept] == [False, False]
    assert len([sql for sql in statements if sql.startswith(_BOOTS_WRITTEN)]) == 1
    assert len([sql for sql in statements if sql.startswith(_ONE_BOOT)]) == 2


async def test_a_boot_its_unit_does_not_take_is_not_left_written(statements: list[str], monkeypatch) -> None:
    """The batch wrote it ahead, its unit asked otherwise at its turn (here: the taking refused for
    one charger): its own write would read the row the batch wrote (the new firmware as the one it
    had), so the batch is written again, each its own way, and its answer is as if alone."""
    for name in ("TURN-1", "TURN-2", "TURN-3"):
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
        await sync_to_async(charge_point_boot)(**_boot(name, firmware_version="1.0"))
    taken = fleet.boot_write_taken
    refusing = [True]

    def taken_but_turn_2_in_the_first_pass(lookup: Any) -> Any:
        if lookup.charge_point_id == "TURN-2" and refusing[0]:
            refusing[0] = False
            return None
        return taken(lookup)

    monkeypatch.setattr(fleet, "boot_write_taken", taken_but_turn_2_in_the_first_pass)
    del statements[:]
    results = await one_batch(
        CommitGroup(max_units=64), *((charge_point_boot, _boot(name)) for name in ("TURN-1", "TURN-2", "TURN-3"))
    )
    assert [result.identity_kept for result in results] == [False, False, False]  # 1.0 -> 2.0, each
    assert len([sql for sql in statements if sql.startswith(_BOOTS_WRITTEN)]) == 1  # then rolled back
    assert (
        len([sql for sql in statements if sql.startswith(_ONE_BOOT)]) == 4
    )  # TURN-2 in the first pass, all three again


async def test_a_boot_alone_in_its_batch_is_one_statement_its_own_way(statements: list[str]) -> None:
    await sync_to_async(charge_point_register)(charge_point_id="ALONE-1", heartbeat_interval=60)
    del statements[:]
    results = await one_batch(CommitGroup(max_units=64), (charge_point_boot, _boot("ALONE-1")))
    assert [type(result) for result in results] == [BootResult]
    assert not [sql for sql in statements if sql.startswith(_BOOTS_WRITTEN)]
    assert len([sql for sql in statements if sql.startswith(_ONE_BOOT)]) == 1


async def test_a_charger_held_elsewhere_is_not_waited_for_by_the_batch_s_write(statements: list[str]) -> None:
    """The batch's write skips it and its boot waits for it at its turn, its own way (here past the
    first pass's lock wait, so the batch is written again, each its own way)."""
    import psycopg

    from conftest import _test_database_url

    for name in ("HELD-1", "HELD-2", "HELD-3"):
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
    holder = await sync_to_async(psycopg.connect)(_test_database_url())
    try:
        await sync_to_async(holder.execute)(
            f"SELECT 1 FROM {ChargePoint._meta.db_table} WHERE charge_point_id = 'HELD-2' FOR UPDATE"
        )

        def release_in_the_second_pass() -> None:
            """Once the second pass has begun (HELD-1's own boot: the second one asked alone)."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and sum(sql.startswith(_ONE_BOOT) for sql in statements) < 2:
                time.sleep(0.01)
            holder.commit()

        release = threading.Thread(target=release_in_the_second_pass)
        release.start()
        del statements[:]
        results = await one_batch(
            CommitGroup(max_units=64), *((charge_point_boot, _boot(f"HELD-{n}")) for n in (1, 2, 3))
        )
        release.join()
    finally:
        await sync_to_async(holder.close)()
    assert [type(result) for result in results] == [BootResult] * 3
    assert len([sql for sql in statements if sql.startswith(_BOOTS_WRITTEN)]) == 1
    # HELD-2's own boot in the first pass (its wait past that pass's 100 ms), then all three in the
    # second; a batch write that waited for HELD-2 would have failed the first pass before any: 3
    assert len([sql for sql in statements if sql.startswith(_ONE_BOOT)]) == 4
    booted = ChargePoint.objects.order_by("charge_point_id").values_list("firmware_version", flat=True)
    assert [value async for value in booted] == ["2.0"] * 3


async def test_a_batch_s_triggered_boots_keep_their_boot_time_as_one_alone_does(statements: list[str]) -> None:
    """A 2.0.1 boot of reason ``Triggered`` (F06) on a connection opened after the last boot is no
    restart: written with its batch's others, as alone, it keeps ``last_boot_at``; the others move it."""
    booted_before = "2026-11-01T08:00:00+00:00"

    def arranged(prefix: str) -> list[dict[str, Any]]:
        names = [f"{prefix}-{n}" for n in range(4)]
        for name in names:
            charge_point_register(charge_point_id=name, heartbeat_interval=60)
        ChargePoint.objects.filter(charge_point_id__in=names).update(
            last_boot_at=booted_before, handshake_started_at="2026-11-02T08:00:00+00:00"
        )
        return [{**_boot(name), "restarted": n % 2 != 0} for n, name in enumerate(names)]

    def boot_times(prefix: str) -> list[bool]:
        rows = ChargePoint.objects.filter(charge_point_id__startswith=f"{prefix}-").order_by("charge_point_id")
        return [
            at is not None and at.isoformat() == booted_before for at in rows.values_list("last_boot_at", flat=True)
        ]

    alone, together = await sync_to_async(arranged)("TRIG-ALONE"), await sync_to_async(arranged)("TRIG-BATCH")
    group = CommitGroup(max_units=64)
    for boot in alone:
        await one_batch(group, (charge_point_boot, boot))
    del statements[:]
    await one_batch(group, *((charge_point_boot, boot) for boot in together))
    assert len([sql for sql in statements if sql.startswith(_BOOTS_WRITTEN)]) == 1
    assert await sync_to_async(boot_times)("TRIG-ALONE") == [True, False, True, False]
    assert await sync_to_async(boot_times)("TRIG-BATCH") == [True, False, True, False]
