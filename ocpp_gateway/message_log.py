"""Per-process buffer for the OCPP message log.

Writing one row per frame would double the database work of every OCPP message; frames are
collected here and written in one INSERT every ``CSMS_MESSAGE_LOG_FLUSH_MS`` instead.
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from chargepoints.services import LoggedFrame, ocpp_messages_record

logger = logging.getLogger(__name__)

_MAX_BATCH = 1000


class MessageLogBuffer:
    def __init__(self) -> None:
        self._pending: list[LoggedFrame] = []
        self._flusher: asyncio.Task[None] | None = None

    def add(self, frame: LoggedFrame) -> None:
        self._pending.append(frame)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(settings.CSMS_MESSAGE_LOG_FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
            try:
                await database_sync_to_async(ocpp_messages_record)(frames=batch)
            except Exception:
                logger.exception("Could not store %d OCPP log frames", len(batch))


message_log = MessageLogBuffer()
