"""Celery entry points for the gateway; the rules live in ``gateway_processes`` and services."""

from celery import shared_task

from commands.services import commands_abandoned_timed_out
from configuration.changes import configuration_reads_owed_after_abandoned
from ocpp_gateway.gateway_processes import dead_gateway_presence_release


@shared_task
def release_dead_gateway_presence() -> list[str]:
    return dead_gateway_presence_release()


@shared_task
def time_out_abandoned_commands() -> int:
    """Commands a dead process left pending are timed out; its reads after a boot are owed."""
    abandoned = commands_abandoned_timed_out()
    configuration_reads_owed_after_abandoned(abandoned)
    return len(abandoned)
