"""The configuration reads after boots wait their turn in the process (``ConfigurationReads``,
issue 15): each starts once no charger's unit has waited for a batch of the commit group for
``QUIET_SECONDS`` (``CommitGroup.quiet_seconds``: the reads' own units do not count), or once it
has waited ``LONGEST_WAIT_SECONDS``, a batch's worth at most being recorded at once; a read whose
connection closed meanwhile, or before its CALL was answered, is marked owed
(``ChargePoint.configuration_read_owed``) and an owed read clears the mark; each runs in the
context of the connection that queued it."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from chargepoints.models import ChargePoint
from chargepoints.services import charge_point_register
from commands.models import Command, CommandState
from configuration.models import ConfigurationKey
from kernel.log_format import charge_point_id_var
from ocpp_gateway import configuration_refresh
from ocpp_gateway.configuration_refresh import QUIET_SECONDS, ConfigurationReads
from ocpp_gateway.group_commit import CommitGroup

pytestmark = pytest.mark.django_db(transaction=True)

_KEYS = [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]


class _Charger:
    """The charger's end of a connection, as the router hands back what it answers: a
    GetConfiguration answered with one key (``leaves``: the socket closes before the answer, as the
    consumer tells it). Notes when each CALL came and which charger the caller's context named."""

    channel_name = "ch"  # the channel ``_registered`` says holds the charger

    def __init__(
        self, *, connected: bool = True, leaves: bool = False, times_out: bool = False, refuses: bool = False
    ) -> None:
        self.connected, self.leaves, self.times_out, self.refuses = connected, leaves, times_out, refuses
        self.calls: list[tuple[str, float, str]] = []  # action, time.monotonic(), the context's charger

    def accepts_calls(self) -> bool:
        return self.connected

    async def call_locally(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.calls.append((action, time.monotonic(), charge_point_id_var.get("")))
        if self.leaves:
            self.connected = False
            return {"outcome": "not_connected"}
        if self.times_out:
            return {"outcome": "timeout"}
        if self.refuses:
            return {"outcome": "call_error", "error_code": "NotSupported", "error_description": "", "error_details": {}}
        return {"outcome": "result", "payload": {"configuration_key": _KEYS}, "violations": {}}


def _registered(*names: str) -> None:
    for name in names:
        charge_point_register(charge_point_id=name, heartbeat_interval=60)
    ChargePoint.objects.filter(charge_point_id__in=names).update(connection_channel="ch", ocpp_version="1.6")


def _owed(name: str) -> bool:
    return ChargePoint.objects.get(charge_point_id=name).configuration_read_owed


def _read_recorded(name: str) -> tuple[list[str], list[str]]:
    """The charger's commands' states and its stored keys."""
    states = list(Command.objects.filter(charge_point__charge_point_id=name).values_list("state", flat=True))
    keys = list(ConfigurationKey.objects.filter(charge_point__charge_point_id=name).values_list("key", flat=True))
    return states, keys


def _slow(*, seconds: float, ended: list[float]) -> None:
    time.sleep(seconds)
    ended.append(time.monotonic())


def _queued(reads: ConfigurationReads, charge_point_id: str, charger: _Charger, *, owed: bool = False) -> None:
    """Queue a read as the Boot's hook does: in the context of the charger's connection."""
    token = charge_point_id_var.set(charge_point_id)
    try:
        reads.queue(charge_point_id, charger, owed=owed)
    finally:
        charge_point_id_var.reset(token)


def _registered_owed(name: str) -> None:
    """A charger registered and marked owed, as an earlier connection's unanswered read leaves it."""
    _registered(name)
    ChargePoint.objects.filter(charge_point_id=name).update(configuration_read_owed=True)


async def _until(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def test_a_read_waits_while_units_wait_for_a_batch_and_starts_once_none_has_for_a_while() -> None:
    await sync_to_async(_registered)("READS-QUIET")
    group = CommitGroup(max_units=1, lanes=1)
    ended: list[float] = []
    # one unit written, two waiting behind it until the second ends; the third takes no time
    slow = [asyncio.ensure_future(group.run(_slow, seconds=s, ended=ended)) for s in (0.3, 0.3, 0.0)]
    await asyncio.sleep(0.05)
    reads, charger = ConfigurationReads(group), _Charger()
    _queued(reads, "READS-QUIET", charger)
    await asyncio.sleep(0.2)
    assert reads.waiting() == 1 and charger.calls == []  # waiting its turn
    await asyncio.gather(*slow)
    await _until(_read_completed("READS-QUIET"))
    [(action, called_at, named)] = charger.calls
    assert action == "GetConfiguration" and named == "READS-QUIET"
    # the third unit waited until the second ended; the read started a quiet while after that
    assert called_at >= ended[1] + QUIET_SECONDS


def _read_completed(name: str) -> Any:
    async def completed() -> bool:
        return (await sync_to_async(_read_recorded)(name)) == ([CommandState.ACCEPTED], ["HeartbeatInterval"])

    return completed


async def test_a_read_that_has_waited_its_longest_starts_while_units_still_wait(monkeypatch) -> None:
    await sync_to_async(_registered)("READS-LONG")
    monkeypatch.setattr(configuration_refresh, "LONGEST_WAIT_SECONDS", 0.0)
    group = CommitGroup(max_units=64, lanes=1)
    slow = [asyncio.ensure_future(group.run(_slow, seconds=0.6, ended=[])) for _ in range(2)]
    await asyncio.sleep(0.05)
    reads, charger = ConfigurationReads(group), _Charger()
    _queued(reads, "READS-LONG", charger)
    await asyncio.sleep(0.2)
    assert reads.waiting() == 0 and charger.calls == []  # started: its record waits beside the second unit
    await asyncio.gather(*slow)
    await _until(_read_completed("READS-LONG"))


async def test_at_most_a_batch_s_worth_of_reads_is_being_recorded_at_once(monkeypatch) -> None:
    names = [f"READS-CAP-{n}" for n in range(5)]
    await sync_to_async(_registered)(*names)
    monkeypatch.setattr(configuration_refresh, "LONGEST_WAIT_SECONDS", 0.0)  # they go while units wait
    group = CommitGroup(max_units=2, lanes=1)
    slow = asyncio.ensure_future(group.run(_slow, seconds=1.0, ended=[]))
    await asyncio.sleep(0.05)
    reads, chargers = ConfigurationReads(group), [_Charger() for _ in names]
    for name, charger in zip(names, chargers, strict=True):
        _queued(reads, name, charger)
    await asyncio.sleep(0.2)
    assert reads.waiting() == 3  # two started, their records queued behind the slow unit
    await slow
    for name in names:
        await _until(_read_completed(name))


async def test_the_reads_own_units_waiting_leave_the_group_quiet() -> None:
    """A read's units are ``background``: while only they wait for a batch the group stays quiet,
    so the reads after a burst follow one another without a quiet pause between each batch's worth."""
    group = CommitGroup(max_units=1, lanes=1)
    first = asyncio.ensure_future(group.run(_slow, seconds=1.0, ended=[], background=True))
    second = asyncio.ensure_future(group.run(_slow, seconds=0.0, ended=[], background=True))
    await asyncio.sleep(0.05)
    assert group.quiet_seconds() > 0
    third = asyncio.ensure_future(group.run(_slow, seconds=0.0, ended=[]))
    await asyncio.sleep(0.05)
    assert group.quiet_seconds() == 0  # a charger's unit waits
    await asyncio.gather(first, second, third)
    assert 0 <= group.quiet_seconds() < 1.0  # it waited until the first ended


async def test_a_read_whose_connection_closed_before_its_turn_is_skipped() -> None:
    await sync_to_async(_registered)("READS-GONE", "READS-HERE")
    group = CommitGroup(max_units=64, lanes=1)
    reads, gone, here = ConfigurationReads(group), _Charger(connected=False), _Charger()
    _queued(reads, "READS-GONE", gone)
    _queued(reads, "READS-HERE", here)

    async def answered() -> bool:
        return bool(here.calls) and (await sync_to_async(_read_recorded)("READS-HERE"))[0] == [CommandState.ACCEPTED]

    await _until(answered)
    assert gone.calls == [] and reads.waiting() == 0
    assert await sync_to_async(_read_recorded)("READS-GONE") == ([], [])  # nothing recorded for it
    await _until(_marked_owed("READS-GONE"))
    assert not await sync_to_async(_owed)("READS-HERE")


def _marked_owed(name: str) -> Any:
    async def marked() -> bool:
        return await sync_to_async(_owed)(name)

    return marked


async def test_a_read_whose_connection_closes_while_it_waits_is_dropped_and_owed_at_once(monkeypatch) -> None:
    """The consumer's close tells the queue (``connection_closed``): the mark is written then, not
    at the read's turn (here never), so a reconnect to any process finds it."""
    await sync_to_async(_registered)("READS-LEFT")
    monkeypatch.setattr(configuration_refresh, "QUIET_SECONDS", math.inf)  # never quiet enough
    reads, charger = ConfigurationReads(CommitGroup(max_units=64, lanes=1)), _Charger()
    _queued(reads, "READS-LEFT", charger)
    await asyncio.sleep(0.1)
    assert reads.waiting() == 1 and not await sync_to_async(_owed)("READS-LEFT")
    charger.connected = False
    reads.connection_closed("READS-LEFT", charger)
    assert reads.waiting() == 0
    await _until(_marked_owed("READS-LEFT"))
    assert charger.calls == [] and await sync_to_async(_read_recorded)("READS-LEFT") == ([], [])


async def test_a_read_whose_call_went_unanswered_is_owed() -> None:
    """The socket closed under the CALL, or the CALL timed out (a half-open socket)."""
    await sync_to_async(_registered)("READS-MIDWAY", "READS-SILENT")
    reads = ConfigurationReads(CommitGroup(max_units=64, lanes=1))
    left, silent = _Charger(leaves=True), _Charger(times_out=True)
    _queued(reads, "READS-MIDWAY", left)
    _queued(reads, "READS-SILENT", silent)
    await _until(_marked_owed("READS-MIDWAY"))
    await _until(_marked_owed("READS-SILENT"))
    assert [call[0] for call in left.calls + silent.calls] == ["GetConfiguration"] * 2


async def test_a_newer_connection_that_holds_the_charger_is_told_its_read_is_owed() -> None:
    """A half-open socket replaced: the newer connection's handshake read the charger's row before
    the older one closed and marked it; it hears of the mark over the channel layer."""
    await sync_to_async(_registered)("READS-REPLACED")
    layer = get_channel_layer()
    newer = await layer.new_channel()
    await sync_to_async(ChargePoint.objects.filter(charge_point_id="READS-REPLACED").update)(connection_channel=newer)
    reads, older = ConfigurationReads(CommitGroup(max_units=64, lanes=1)), _Charger(leaves=True)
    _queued(reads, "READS-REPLACED", older)
    told = await asyncio.wait_for(layer.receive(newer), timeout=10)
    assert told == {"type": "ocpp.configuration_read_owed"}
    assert await sync_to_async(_owed)("READS-REPLACED")


async def test_an_owed_read_not_answered_keeps_the_mark() -> None:
    await sync_to_async(_registered_owed)("READS-OWED-SILENT")
    reads, charger = ConfigurationReads(CommitGroup(max_units=64, lanes=1)), _Charger(times_out=True)
    _queued(reads, "READS-OWED-SILENT", charger, owed=True)

    async def completed() -> bool:
        states = (await sync_to_async(_read_recorded)("READS-OWED-SILENT"))[0]
        return states == [CommandState.TIMEOUT]

    await _until(completed)
    assert await sync_to_async(_owed)("READS-OWED-SILENT")


async def test_an_owed_read_clears_the_mark_and_a_newer_read_takes_an_older_one_s_place() -> None:
    await sync_to_async(_registered_owed)("READS-OWED")
    group = CommitGroup(max_units=1, lanes=1)
    slow = asyncio.ensure_future(group.run(_slow, seconds=0.3, ended=[]))
    await asyncio.sleep(0.05)
    reads, older, newer = ConfigurationReads(group), _Charger(), _Charger()
    _queued(reads, "READS-OWED", older, owed=True)
    _queued(reads, "READS-OWED", newer)  # the charger's boot on a newer connection: it keeps the mark's clearing
    assert reads.waiting() == 1
    await slow
    await _until(_read_completed("READS-OWED"))
    assert older.calls == [] and len(newer.calls) == 1
    assert not await sync_to_async(_owed)("READS-OWED")


async def test_a_read_whose_connection_is_gone_is_skipped_with_a_line(caplog) -> None:
    """A waiting read holds its connection by weak reference: a consumer gone (its socket closed and
    the consumer collected) is a read skipped, not a connection kept alive."""
    await sync_to_async(_registered)("READS-COLLECTED")
    group = CommitGroup(max_units=64, lanes=1)
    slow = [asyncio.ensure_future(group.run(_slow, seconds=s, ended=[])) for s in (0.3, 0.0)]
    await asyncio.sleep(0.05)
    reads = ConfigurationReads(group)
    _queued(reads, "READS-COLLECTED", _Charger())  # nothing else holds it
    gc.collect()

    async def none_waiting() -> bool:
        return reads.waiting() == 0

    with caplog.at_level(logging.INFO, logger="ocpp_gateway.configuration_refresh"):
        await asyncio.gather(*slow)
        await _until(none_waiting)
    assert "READS-COLLECTED: configuration read not answered on this connection" in caplog.text
    assert await sync_to_async(_read_recorded)("READS-COLLECTED") == ([], [])
    await _until(_marked_owed("READS-COLLECTED"))


async def test_each_read_runs_in_the_context_of_the_connection_that_queued_it() -> None:
    """The worker that starts the reads was started by the first; every read's log lines and units
    name its own charger."""
    names = [f"READS-CTX-{n}" for n in range(3)]
    await sync_to_async(_registered)(*names)
    group = CommitGroup(max_units=64, lanes=1)
    reads = ConfigurationReads(group)
    chargers = [_Charger() for _ in names]
    for name, charger in zip(names, chargers, strict=True):
        _queued(reads, name, charger)

    for name in names:
        await _until(_read_completed(name))
    assert [charger.calls[0][2] for charger in chargers] == names


async def test_an_owed_read_the_charger_refuses_clears_the_mark() -> None:
    """Answered is answered: a charger that refuses the read is asked again at its next boot, as
    after any boot, not at every connection."""
    await sync_to_async(_registered_owed)("READS-OWED-NO")
    reads, charger = ConfigurationReads(CommitGroup(max_units=64, lanes=1)), _Charger(refuses=True)
    _queued(reads, "READS-OWED-NO", charger, owed=True)

    async def cleared() -> bool:
        return not await sync_to_async(_owed)("READS-OWED-NO")

    await _until(cleared)
    assert (await sync_to_async(_read_recorded)("READS-OWED-NO"))[0] == [CommandState.CALL_ERROR]
