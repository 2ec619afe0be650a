"""Celery entry points for sites; the rules live in ``engine``."""

from celery import shared_task

from sites import services


@shared_task
def recompute_sites() -> int:
    return services.sites_recompute_all()
