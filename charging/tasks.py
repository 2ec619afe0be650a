"""Celery entry points for charging sessions; the rules live in ``services``."""

from celery import shared_task

from charging.services import reservations, reset_closes


# The name it had in chargepoints: beat schedules and queued messages keep finding it.
@shared_task(name="chargepoints.tasks.expire_reservations")
def expire_reservations() -> int:
    return reservations.reservations_expire()


@shared_task(name="charging.tasks.close_sessions_a_reset_ended")
def close_sessions_a_reset_ended() -> int:
    return reset_closes.transactions_close_after_reset()
