"""The message log's window joins its group-commit batch's first pass as a charger's message
does (``WriteBehindBuffer(savepoint=False)``): no SAVEPOINT nor RELEASE, its COPY gathered with the
batch's last writes and COMMIT. Refused, it sends the batch to its second pass, where it fails alone
and the batch's other units are committed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from chargepoints.models import ChargePoint, OcppMessage
from chargepoints.services import LoggedFrame, charge_point_register
from chargepoints.services.liveness import Sighting
from kernel.plain_sql import PIPELINED_COPY_ROWS
from ocpp_gateway import buffers
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.message_log import message_log
from ocpp_gateway.sightings import sightings
from ocpp_gateway.tests.batches import COMMIT_LOSSES, CommitLoss, commit_lost_in_flight
from ocpp_gateway.tests.conftest import RoundTrip

pytestmark = pytest.mark.django_db(transaction=True)

_AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the batch's round trips: PostgreSQL")


def _frame(charge_point_id: str, n: int, *, created_at: datetime | None = _AT) -> LoggedFrame:
    return LoggedFrame(
        charge_point_id=charge_point_id,
        direction="in",
        frame=f'[2,"{n}","Heartbeat",{{}}]',
        created_at=created_at,  # type: ignore[arg-type]  # None: a row PostgreSQL refuses
    )


def _named(*, charge_point_id: str) -> str:
    """A charger's unit beside the log's in the batch."""
    charge_point_register(charge_point_id=charge_point_id, heartbeat_interval=60)
    return charge_point_id


async def _both(*flushes: Awaitable[Any]) -> None:
    """Flushes queued one after the other, in order (each buffer's unit queued before the next's)."""
    queued = []
    for flush in flushes:
        queued.append(asyncio.ensure_future(flush))
        await asyncio.sleep(0)
    await asyncio.gather(*queued)


async def _one_batch(group: CommitGroup, flush: Awaitable[Any], *others: str) -> list[Any]:
    """The log's flush and a unit of each of ``others`` in one batch of ``group``."""
    release = threading.Event()
    first = asyncio.ensure_future(group.run(release.wait, timeout=5))
    await asyncio.sleep(0.05)
    queued = [asyncio.ensure_future(flush)]
    queued += [asyncio.ensure_future(group.run(_named, charge_point_id=name)) for name in others]
    await asyncio.sleep(0.05)
    release.set()
    await first
    return list(await asyncio.gather(*queued))


async def test_the_log_s_copy_goes_with_its_batch_s_commit_and_no_savepoint(
    monkeypatch: pytest.MonkeyPatch, statements: list[str], round_trips: list[RoundTrip]
) -> None:
    await sync_to_async(charge_point_register)(charge_point_id="LOG-1", heartbeat_interval=60)
    group = CommitGroup(max_units=64)
    monkeypatch.setattr(buffers, "commit_group", group)
    for n in range(3):
        message_log.add(_frame("LOG-1", n))
    del statements[:], round_trips[:]
    await _one_batch(group, message_log.flush(), "LOG-2")
    assert not [sql for sql in statements if sql.startswith(("SAVEPOINT", "RELEASE"))]
    (last,) = [trip for trip in round_trips if any(OcppMessage._meta.db_table in sql for sql in trip.statements)]
    assert last.statements[-1] == "COMMIT"  # the log's rows and the batch's COMMIT: one round trip
    assert await OcppMessage.objects.filter(charge_point__charge_point_id="LOG-1").acount() == 3


async def test_a_window_behind_sightings_in_its_batch_is_written_after_their_savepoint_with_the_last_writes(
    monkeypatch: pytest.MonkeyPatch, statements: list[str]
) -> None:
    """The sightings' unit (in its savepoint) is queued ahead of the log's though it came after it:
    its savepoint would otherwise write the log's gathered rows at once. A window of more than
    ``PIPELINED_COPY_ROWS`` frames is a COPY just before the COMMIT's round trip."""
    await sync_to_async(charge_point_register)(charge_point_id="LOG-1", heartbeat_interval=60)
    group = CommitGroup(max_units=64)
    monkeypatch.setattr(buffers, "commit_group", group)
    for n in range(PIPELINED_COPY_ROWS + 8):
        message_log.add(_frame("LOG-1", n))
    sightings.add(Sighting(charge_point_id="LOG-1", channel_name="specific.log!1", at=_AT))
    del statements[:]
    await _one_batch(group, _both(message_log.flush(), sightings.flush()), "LOG-2")
    log_write = next(n for n, sql in enumerate(statements) if OcppMessage._meta.db_table in sql)
    assert statements[log_write].startswith("COPY")
    savepoints = [n for n, sql in enumerate(statements) if sql.startswith(("SAVEPOINT", "RELEASE"))]
    insert = next(n for n, sql in enumerate(statements) if sql.startswith('INSERT INTO "chargepoints_chargepoint"'))
    assert savepoints and max(savepoints) < insert < log_write  # the sightings' (only), LOG-2's unit, the log
    assert await OcppMessage.objects.filter(charge_point__charge_point_id="LOG-1").acount() == PIPELINED_COPY_ROWS + 8


async def test_a_refused_window_sends_its_batch_to_the_second_pass_and_loses_only_its_refused_row(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, statements: list[str]
) -> None:
    await sync_to_async(charge_point_register)(charge_point_id="LOG-1", heartbeat_interval=60)
    group = CommitGroup(max_units=64)
    monkeypatch.setattr(buffers, "commit_group", group)
    message_log.add(_frame("LOG-1", 1))
    message_log.add(_frame("LOG-1", 2, created_at=None))  # NOT NULL: refused by PostgreSQL
    message_log.add(_frame("LOG-1", 3))
    del statements[:]
    await _one_batch(group, message_log.flush(), "LOG-2")
    refused = next(n for n, sql in enumerate(statements) if OcppMessage._meta.db_table in sql)
    assert not [sql for sql in statements[:refused] if sql.startswith("SAVEPOINT")]  # the first pass: none
    assert [sql for sql in statements[refused:] if sql.startswith("SAVEPOINT")]  # the second: each unit its own
    # The batch's other unit committed; the window written again row by row in the next batch.
    stored = OcppMessage.objects.filter(charge_point__charge_point_id="LOG-1").values_list("frame", flat=True)
    frames = sorted([frame async for frame in stored])
    assert frames == ['[2,"1","Heartbeat",{}]', '[2,"3","Heartbeat",{}]']
    assert await sync_to_async(ChargePoint.objects.filter(charge_point_id="LOG-2").exists)()
    assert "Could not store a OCPP log frame row" in caplog.text


@pytest.mark.parametrize("how", COMMIT_LOSSES)
async def test_a_window_whose_batch_s_commit_is_lost_is_logged_as_maybe_stored_and_not_written_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: CommitLoss
) -> None:
    await sync_to_async(charge_point_register)(charge_point_id="LOG-1", heartbeat_interval=60)
    group = CommitGroup(max_units=64)
    monkeypatch.setattr(buffers, "commit_group", group)
    commit_lost_in_flight(monkeypatch, how)
    for n in range(3):
        message_log.add(_frame("LOG-1", n))
    await message_log.flush()
    assert await OcppMessage.objects.filter(charge_point__charge_point_id="LOG-1").acount() == 3  # once
    assert "3 OCPP log frame rows may or may not be stored" in caplog.text
    assert "may or may not be committed (not written again)" in caplog.text
    assert "not committed" not in caplog.text.replace("may or may not be committed", "")
