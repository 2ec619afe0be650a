"""Celery entry points for charging sessions; the rules live in ``services``."""

from celery import shared_task

from charging.services import reservations


# The name it had in chargepoints: beat schedules and queued messages keep finding it.
@shared_task(name="chargepoints.tasks.expire_reservations")
def expire_reservations() -> int:
    return reservations.reservations_expire()
