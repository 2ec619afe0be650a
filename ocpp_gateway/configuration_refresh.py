"""The configuration read after a boot, shared by both versions' routers (``@after`` BootNotification).

The command is recorded, sent and its answer recorded like any other (a ``Command`` row, the
answer's route into the configuration store), but by the process holding the socket without the
channel layer: the CALL goes on the connection's own outbound queue (``call_locally``), behind any
command already queued, and both writes are units of the process's commit group (no thread hop
of their own). Before, it went to Redis and back to this same process (issue 15).

A boot reporting the vendor, model and firmware version of the charger's last one is not followed
by a read when a read of its whole configuration asked since the first boot of that firmware
(``ChargePoint.identity_booted_at``; the boots between that skipped the read included), within
``CSMS_CONFIGURATION_REFRESH_MAX_AGE`` seconds, was answered in full and no value waits for a
reboot (``configuration_read_recent``, asked in the Boot's own statement): a restart's reconnect
storm re-reads no configuration.

The reads wait their turn in the process (``ConfigurationReads``): a connect burst's Boots and
statuses come first. A read its connection did not answer (closed first, or the CALL timed out)
is owed (``ChargePoint.configuration_read_owed``): the charger's next connection, or the newer
one that already holds it, reads it after its next message, a boot or not (a 1.6 charger back
from a network drop sends no BootNotification); the mark is cleared once an owed read is answered.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

from django.conf import settings

from chargepoints.services import BootResult
from commands import catalog
from commands.rpc import call_outcome
from commands.services import command_complete
from configuration.changes import (
    UNANSWERED,
    configuration_read_answered,
    configuration_read_owed_set,
    configuration_refresh_on_boot,
)
from kernel import metrics
from ocpp_gateway.group_commit import CommitGroup, commit_group

logger = logging.getLogger(__name__)

Result = TypeVar("Result")

# Reads start once no charger's unit has waited for a batch of the commit group this long (a connect
# burst keeps units waiting every few ms)...
QUIET_SECONDS = 0.1
# ... or once they have waited this long: a process busy for good still reads every configuration,
# a batch's worth at a time.
LONGEST_WAIT_SECONDS = 60.0
_POLL_SECONDS = 0.02  # how often waiting reads look for their turn


class LocalCaller(Protocol):
    channel_name: str  # the connection's channel-layer name

    def accepts_calls(self) -> bool: ...

    async def call_locally(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]: ...


def configuration_current(boot: BootResult) -> bool:
    """Whether the charger's stored configuration needs no read after this boot: the same vendor,
    model and firmware version as its last boot, and ``configuration_read_recent`` held."""
    return boot.identity_kept and bool(boot.condition_held)


def refresh_after_boot(charge_point_id: str, connection: LocalCaller, *, current: bool, owed: bool) -> bool:
    """Queue a read of the configuration, once the Boot answer is out (``ConfigurationReads``),
    unless ``current`` (``configuration_current``) or reads after boots are off; whether it was
    queued. ``owed``: the charger's read is owed (``ChargePoint.configuration_read_owed``): this
    read's answer clears the mark (a current configuration queues none: the connection keeps the
    debt and reads after its next message)."""
    if settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT and not current:
        configuration_reads.queue(charge_point_id, connection, owed=owed)
        return True
    return False


def refresh_owed(charge_point_id: str, connection: LocalCaller) -> bool:
    """Queue the read owed to the charger (its connection's handshake found the mark, or it was
    told), once a message of its is answered; whether it was queued (not when reads after boots
    are off)."""
    if settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT:
        configuration_reads.queue(charge_point_id, connection, owed=True)
        return True
    return False


class _Waiting(NamedTuple):
    """A read waiting its turn: no task, the connection not kept alive by it."""

    charge_point_id: str
    connection: weakref.ref[LocalCaller]
    context: contextvars.Context  # the connection's: log lines and units name its charger
    queued_at: float  # time.monotonic()
    owed: bool  # the mark is set; the read's answer clears it (``configuration_read_answered``)


@dataclass
class _ReportAwaited:
    """A 2.0.1 read's report (GetBaseReport ``request_id``) whose last part has not arrived on the
    connection that asked for it: ``accepted`` once the station answered Accepted, ``closed`` once the
    connection closed before that answer was seen."""

    connection: weakref.ref[LocalCaller]
    channel_name: str  # the connection's
    request_id: int
    waiting: _Waiting
    accepted: bool = False
    closed: bool = False


class ConfigurationReads:
    """The configuration reads after boots of this process's connections, in boot order (issue 15).

    A read starts once no unit of the chargers' own messages has waited for a batch of the
    process's commit group for ``QUIET_SECONDS`` (``CommitGroup.quiet_seconds``; the reads' units
    are ``background`` and do not count), or once it has waited ``LONGEST_WAIT_SECONDS``; and
    while fewer than a batch's worth of reads (the group's ``max_units``) have their record or
    their answer's completion waiting for a batch or being written. A read's record and what its
    answer stores are units of the batches the chargers' messages wait for (round 23 measured the
    read at 27-40 % of a first connect's server CPU and half its PostgreSQL's): a connect burst's
    Boots and statuses are answered first, the reads follow. A read's CALL holds no turn: a
    charger slow to answer (up to ``CSMS_OCPP_CALL_TIMEOUT``) delays no other read. A read whose
    connection closed before its turn (``connection_closed``) is dropped with a line, and one whose
    CALL went unanswered (the socket closed, or it timed out) is completed as such; both are marked
    owed (``configuration_read_owed_set``). So is a 2.0.1 read the station accepted whose report's
    last part (``tbc`` false) had not arrived when its connection closed: a station back from a
    network drop sends no BootNotification, and its device model stayed half read until its next
    boot. One read waits per charger: a newer one takes the place of
    the older. The queue serves one event loop: a queue used from a new one (tests) drops what the
    old one left."""

    def __init__(self, group: CommitGroup) -> None:
        self._group = group  # the commit group its units go to and whose quiet it waits for
        self._waiting: deque[_Waiting] = deque()
        self._pending: dict[str, _Waiting] = {}  # per charger, its read in ``_waiting`` (others there are dropped)
        self._writing = 0  # reads whose record or completion is queued for a batch or being written
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._reads: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps weak ones)
        self._reports: dict[str, _ReportAwaited] = {}  # per charger, its read's report not yet whole

    def waiting(self) -> int:
        """Reads waiting their turn."""
        return len(self._pending)

    def queue(self, charge_point_id: str, connection: LocalCaller, *, owed: bool = False) -> None:
        """Read ``charge_point_id``'s configuration over ``connection`` in its turn, in the caller's
        context (its log lines and commit-group units name its charger); ``owed``: the charger's
        mark is set, the read's answer clears it (``configuration_read_answered``)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._waiting.clear()
            self._pending.clear()
            self._reads.clear()
            self._reports.clear()
            self._writing, self._loop, self._worker = 0, loop, None
        older = self._pending.get(charge_point_id)
        owed = owed or (older is not None and older.owed)  # a newer read takes an older one's place
        waiting = _Waiting(charge_point_id, weakref.ref(connection), contextvars.copy_context(), time.monotonic(), owed)
        self._pending[charge_point_id] = waiting
        self._waiting.append(waiting)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._serve(), context=contextvars.Context())

    def connection_closed(self, charge_point_id: str, connection: LocalCaller) -> None:
        """``connection`` closed: its read, if one waits, is dropped and owed (at once, so that the
        charger's next connection, in any process, finds the mark)."""
        waiting = self._pending.get(charge_point_id)
        if waiting is not None and waiting.connection() is connection:
            del self._pending[charge_point_id]
            self._owed(waiting, connection.channel_name)
        awaited = self._reports.get(charge_point_id)
        if awaited is not None and awaited.connection() is connection:
            awaited.closed = True
            if awaited.accepted:
                self._report_cut_short(awaited)

    def report_ended(self, charge_point_id: str, request_id: int) -> None:
        """The last part (``tbc`` false) of the charger's report ``request_id`` arrived."""
        awaited = self._reports.get(charge_point_id)
        if awaited is not None and awaited.request_id == request_id:
            del self._reports[charge_point_id]

    def _report_answered(self, charge_point_id: str, awaited: _ReportAwaited, reply: dict[str, Any]) -> None:
        """The station's answer to the read's GetBaseReport: accepted, its report is awaited until its
        last part arrives (already closed: owed now); else, nothing is (left unanswered: owed by
        ``_read``)."""
        if self._reports.get(charge_point_id) is not awaited:
            return  # its last part came before this answer was seen, or a newer read took its place
        if reply["outcome"] != "result" or (reply.get("payload") or {}).get("status") != "Accepted":
            del self._reports[charge_point_id]
            return
        awaited.accepted = True
        if awaited.closed:
            self._report_cut_short(awaited)

    def _report_cut_short(self, awaited: _ReportAwaited) -> None:
        """Its connection closed before the report's last part: the read is owed (its answer cleared
        an owed read's mark, so it is marked again)."""
        del self._reports[awaited.waiting.charge_point_id]
        line = "%s: configuration report %s cut short by its connection's close (read at the next one)"
        awaited.waiting.context.run(logger.info, line, awaited.waiting.charge_point_id, awaited.request_id)
        self._owed(awaited.waiting._replace(owed=False), awaited.channel_name, logged=True)

    async def _serve(self) -> None:
        """Start each waiting read in its turn, in order; ends once none waits."""
        while self._waiting:
            if self._pending.get(self._waiting[0].charge_point_id) is not self._waiting[0]:
                self._waiting.popleft()  # dropped (its connection closed) or taken over by a newer read
                continue
            if not self._turn_now():
                await asyncio.sleep(_POLL_SECONDS)
                continue
            waiting = self._waiting.popleft()
            del self._pending[waiting.charge_point_id]
            connection = waiting.connection()
            if connection is None or not connection.accepts_calls():
                self._owed(waiting, connection.channel_name if connection is not None else "")
                continue
            self._writing += 1
            self._started(self._read(waiting, connection), waiting.context)

    def _started(self, coroutine: Any, context: contextvars.Context) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, context=context)
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    def _owed(
        self, waiting: _Waiting, channel_name: str, *, in_its_context: bool = False, logged: bool = False
    ) -> None:
        """A read its connection (``channel_name``) did not answer, marked owed in the database (a
        ``background`` unit) unless it was owed already; ``in_its_context``: called from the read's
        own task; ``logged``: the caller said why."""
        line = "%s: configuration read not answered on this connection (read at the next one)"
        if not logged and in_its_context:
            logger.info(line, waiting.charge_point_id)
        elif not logged:
            waiting.context.run(logger.info, line, waiting.charge_point_id)
        if waiting.owed:
            return
        self._writing += 1
        written = self._owed_written(waiting.charge_point_id, channel_name)
        self._started(written, waiting.context.copy())

    async def _owed_written(self, charge_point_id: str, channel_name: str) -> None:
        try:
            await self._written(configuration_read_owed_set, charge_point_id=charge_point_id, channel_name=channel_name)
        except Exception:
            logger.exception("%s: could not mark its configuration read owed", charge_point_id)

    def _turn_now(self) -> bool:
        """Whether the first waiting read may start."""
        if self._writing >= self._group.max_units:
            return False
        return (
            self._group.quiet_seconds() >= QUIET_SECONDS
            or time.monotonic() - self._waiting[0].queued_at >= LONGEST_WAIT_SECONDS
        )

    async def _read(self, waiting: _Waiting, connection: LocalCaller) -> None:
        """Ask for the configuration and record the answer; never fails the connection. A CALL
        left unanswered (the socket closed, a timeout) makes the read owed; an owed read's answer
        clears the mark."""
        charge_point_id = waiting.charge_point_id
        try:
            command = await self._written(configuration_refresh_on_boot, charge_point_id=charge_point_id)
            if command is None:
                return
            started = time.monotonic()
            timeout = settings.CSMS_OCPP_CALL_TIMEOUT
            awaited = None
            if command.command == "get_base_report":  # its parts may come before its answer is seen
                request_id = command.request["request_id"]
                awaited = _ReportAwaited(weakref.ref(connection), connection.channel_name, request_id, waiting)
                self._reports[charge_point_id] = awaited
            reply = await connection.call_locally(command.action, catalog.to_ocpp_payload(command.request), timeout)
            if awaited is not None:
                self._report_answered(charge_point_id, awaited, reply)
            if reply["outcome"] in UNANSWERED:
                self._owed(waiting, connection.channel_name, in_its_context=True)
            outcome = call_outcome(reply, started=started)
            seconds = time.monotonic() - started
            metrics.command_round_trip(action=command.action, outcome=outcome.outcome, seconds=seconds)
            self._writing += 1
            complete = configuration_read_answered if waiting.owed else command_complete
            await self._written(complete, command=command, outcome=outcome)
        except Exception:
            logger.exception("%s: could not read the configuration after its boot", charge_point_id)

    async def _written(self, func: Callable[..., Result], **kwargs: Any) -> Result:
        """``func(**kwargs)`` as a ``background`` unit of the group, counted in ``_writing`` (taken
        by the caller) until it is written."""
        try:
            return await self._group.run(func, background=True, **kwargs)
        finally:
            self._writing -= 1


configuration_reads = ConfigurationReads(commit_group)
