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


def names_no_connector(*, evse_id: int, connector_id: int) -> bool:
    """Whether a 2.0.1 status names no connector: 2.0.1 numbers EVSEs, and each EVSE's connectors,
    from 1 (part 2, 2.23 EVSEType, and 2.6 ComponentType's connector numbering), and has no connector of
    the station as a whole (1.6's connector 0). Such a StatusNotification (EVSE 0, connector 0, or
    below) is acknowledged and kept as no connector, as NotifyEvent's AvailabilityState of such ids is."""
    return evse_id < 1 or connector_id < 1
