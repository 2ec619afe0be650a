"""Celery entry points for the gateway; the rules live in ``gateway_processes`` and services."""

from celery import shared_task

from configuration.changes import commands_abandoned_settled
from kernel.single_flight import Sweep
from ocpp_gateway.gateway_processes import dead_gateway_presence_release


@shared_task(base=Sweep)
def release_dead_gateway_presence() -> list[str]:
    return dead_gateway_presence_release()


@shared_task(base=Sweep)
def time_out_abandoned_commands() -> int:
    """Commands a dead process left pending are timed out; its reads after a boot are owed."""
    return commands_abandoned_settled()
