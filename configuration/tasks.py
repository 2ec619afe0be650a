"""Celery entry points for configuration housekeeping; the rules live in ``services``."""

from celery import shared_task
from django.conf import settings

from configuration import services
from kernel.single_flight import Sweep


@shared_task(base=Sweep)
def prune_device_model_reports() -> int:
    return services.device_model_reports_prune(keep=settings.CSMS_MAX_DEVICE_MODEL_REPORTS)
