"""The EVSE and connector ids a charger may name in a StatusNotification.

Each new id makes a connector row (``connector_status_set``): OCPP bounds neither id (an integer up
to 2^31-1), so a charger counting them up would fill the table without end. Ids above
``CSMS_MAX_CONNECTOR_ID`` are refused before any database work.
"""

from __future__ import annotations

from django.conf import settings


def connector_ids_refusal(*, connector_id: int | None, evse_id: int | None = None) -> str:
    """Why a status of ``connector_id`` (of ``evse_id``, 2.0.1) is refused; "" when it is not."""
    maximum = settings.CSMS_MAX_CONNECTOR_ID
    for name, value in (("evseId", evse_id), ("connectorId", connector_id)):
        if isinstance(value, int) and value > maximum:
            return f"{name} {value} is over the CSMS's maximum, {maximum} (CSMS_MAX_CONNECTOR_ID)."
    return ""
