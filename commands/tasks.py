"""Celery entry points for commands; the rules live in their modules."""

from celery import shared_task

from commands import reset_sessions
from kernel.single_flight import Sweep


@shared_task(base=Sweep, name="commands.tasks.close_sessions_a_reset_ended")
def close_sessions_a_reset_ended() -> int:
    return reset_sessions.transactions_close_after_reset()
