"""Celery entry points for charging sessions; the rules live in ``services``."""

from celery import shared_task

from charging.services import reservations, stranded_sessions
from kernel.single_flight import Sweep


# The name it had in chargepoints: beat schedules and queued messages keep finding it.
@shared_task(base=Sweep, name="chargepoints.tasks.expire_reservations")
def expire_reservations() -> int:
    return reservations.reservations_expire()


@shared_task(base=Sweep, name="charging.tasks.close_stranded_sessions")
def close_stranded_sessions() -> int:
    return stranded_sessions.transactions_close_after_version_change()
