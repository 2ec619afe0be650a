"""Celery entry points for sites; the rules live in ``engine``."""

from celery import shared_task

from kernel.single_flight import Sweep
from sites import services


@shared_task(base=Sweep)
def recompute_sites() -> int:
    return services.sites_recompute_all()
