"""Celery entry points for the gateway; the rules live in ``gateway_processes`` and services."""

from celery import shared_task

from ocpp_gateway.gateway_processes import dead_gateway_presence_release


@shared_task
def release_dead_gateway_presence() -> list[str]:
    return dead_gateway_presence_release()
