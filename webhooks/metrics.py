"""Webhook figures for /metrics (kernel.metrics), read from the outbox at scrape time (one query)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.db import DatabaseError
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from webhooks.selectors import webhook_backlog

logger = logging.getLogger(__name__)


class WebhookBacklogCollector:
    """Webhook backlog and failures, read from the outbox at scrape time."""

    def collect(self) -> Iterator[Any]:
        """The backlog's gauges; none while the database cannot be read (the scrape keeps every
        other series: a 500 would lose them all)."""
        try:
            backlog = webhook_backlog(now=timezone.now())
        except DatabaseError as error:
            logger.warning("metrics: webhook backlog not read, the database failed: %s", error)
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
