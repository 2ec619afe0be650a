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
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from django.conf import settings

from chargepoints.services import BootResult
from commands import catalog
from commands.rpc import call_outcome
from commands.services import command_complete
from configuration.changes import configuration_refresh_on_boot
from kernel import metrics
from ocpp_gateway.group_commit import in_commit_group

logger = logging.getLogger(__name__)


class LocalCaller(Protocol):
    async def call_locally(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]: ...


def configuration_current(boot: BootResult) -> bool:
    """Whether the charger's stored configuration needs no read after this boot: the same vendor,
    model and firmware version as its last boot, and ``configuration_read_recent`` held."""
    return boot.identity_kept and bool(boot.condition_held)


async def refresh_after_boot(charge_point_id: str, connection: LocalCaller, *, current: bool) -> None:
    """Ask for the configuration once the Boot answer is out and record the answer, unless
    ``current`` (``configuration_current``); never fails the connection."""
    if not settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT or current:
        return
    try:
        command = await in_commit_group(configuration_refresh_on_boot)(charge_point_id=charge_point_id)
        if command is None:
            return
        started = time.monotonic()
        timeout = settings.CSMS_OCPP_CALL_TIMEOUT
        reply = await connection.call_locally(command.action, catalog.to_ocpp_payload(command.request), timeout)
        outcome = call_outcome(reply, started=started)
        metrics.command_round_trip(action=command.action, outcome=outcome.outcome, seconds=time.monotonic() - started)
        await in_commit_group(command_complete)(command=command, outcome=outcome)
    except Exception:
        logger.exception("%s: could not read the configuration after its boot", charge_point_id)
