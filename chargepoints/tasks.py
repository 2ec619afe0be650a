"""Celery entry points for fleet housekeeping; the rules live in ``services``."""

from celery import shared_task
from django.conf import settings

from chargepoints import services
from kernel.single_flight import Sweep


@shared_task(base=Sweep)
def mark_offline_stale_charge_points() -> list[str]:
    return services.mark_offline_stale_charge_points()


@shared_task(base=Sweep)
def prune_heartbeats() -> int:
    return services.heartbeats_prune(older_than_days=settings.CSMS_HEARTBEAT_RETENTION_DAYS)


@shared_task(base=Sweep)
def prune_ocpp_messages() -> int:
    return services.ocpp_messages_prune(older_than_days=settings.CSMS_MESSAGE_LOG_DAYS)
