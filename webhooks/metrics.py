"""Webhook figures for /metrics (kernel.metrics), read from the outbox at scrape time (one query)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from webhooks.selectors import WebhookBacklog, webhook_backlog

logger = logging.getLogger(__name__)

# Seconds a scrape waits for the outbox's figures (as /readyz waits for each dependency): the read took
# the pool's timeout (CSMS_DB_POOL_TIMEOUT, 10 s) while PostgreSQL was away, and forever behind a lock
# on the outbox; Prometheus gave up on the scrape at its own 10 s and every series was lost.
READ_WAIT = 3.0
READER_NAME = "metrics-webhook-backlog"  # the reading thread's
_reading: Future[WebhookBacklog] | None = None  # the latest read, which may still wait for the database
_reading_lock = threading.Lock()


class WebhookBacklogCollector:
    """Webhook backlog and failures, read from the outbox at scrape time."""

    def collect(self) -> Iterator[Any]:
        """The backlog's gauges; none while the database cannot be read, or does not answer within
        ``READ_WAIT`` (the scrape keeps every other series: a 500 or a scrape past Prometheus's
        timeout would lose them all)."""
        backlog = _backlog_read()
        if backlog is None:
            return
        yield GaugeMetricFamily(
            "csms_webhook_deliveries_pending", "Webhook deliveries not yet delivered.", value=backlog.pending
        )
        yield GaugeMetricFamily(
            "csms_webhook_deliveries_due",
            "Pending webhook deliveries due now (waiting for a webhook worker).",
            value=backlog.due,
        )
        yield GaugeMetricFamily(
            "csms_webhook_oldest_pending_seconds",
            "Age of the oldest undelivered webhook delivery, seconds (0 when none).",
            value=backlog.oldest_pending_seconds or 0.0,
        )
        yield GaugeMetricFamily(
            "csms_webhook_deliveries_failed",
            "Webhook deliveries that gave up after their last attempt (kept until re-sent).",
            value=backlog.failed,
        )


def _backlog_read() -> WebhookBacklog | None:
    """The outbox's figures, read on a thread of their own and waited for ``READ_WAIT`` s at most;
    None when the database failed or did not answer in time. A read left waiting goes on alone (a
    daemon thread: it holds up no stop), and the scrapes meanwhile wait for it instead of starting
    another: one thread at most waits on the database, however many scrapes come."""
    global _reading
    with _reading_lock:
        reading = _reading
        if reading is None or reading.done():
            _reading = reading = Future()
            threading.Thread(target=_read, args=(reading,), name=READER_NAME, daemon=True).start()
    try:
        return reading.result(timeout=READ_WAIT)
    except FutureTimeout:
        logger.warning("metrics: webhook backlog not read, the database did not answer within %g s", READ_WAIT)
    except DatabaseError as error:
        logger.warning("metrics: webhook backlog not read, the database failed: %s", error)
    return None


def _read(reading: Future[WebhookBacklog]) -> None:
    try:
        reading.set_result(webhook_backlog(now=timezone.now()))
    except BaseException as error:
        reading.set_exception(error)
    finally:
        connection.close()  # this thread's connection, back to the pool
