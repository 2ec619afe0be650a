"""Per-process buffer for the OCPP message log.

Writing one row per frame would double the database work of every OCPP message; frames are
collected here and written in one INSERT every ``CSMS_MESSAGE_LOG_FLUSH_MS`` instead.
"""

from __future__ import annotations

from django.conf import settings

from chargepoints.services import LoggedFrame, ocpp_messages_record
from ocpp_gateway.buffers import WriteBehindBuffer


def _write(frames: list[LoggedFrame]) -> None:
    ocpp_messages_record(frames=frames)


message_log: WriteBehindBuffer[LoggedFrame] = WriteBehindBuffer(
    name="OCPP log frame",
    write=_write,
    flush_seconds=lambda: settings.CSMS_MESSAGE_LOG_FLUSH_SECONDS,
    max_batch=1000,
    locks=lambda frames: frozenset(),  # no charger's row: the log has no foreign key constraint, nothing else is locked
    savepoint=False,  # refused only by a failing database: its rows go with its batch's last writes
)
