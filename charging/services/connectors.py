"""Connectors an operator removes: one its charger no longer has (a 1.6 charger that reports fewer
connectors after a firmware update kept the old one, with its last status, for good: in the API's
list, the dashboard's counts, a site's outlets)."""

from __future__ import annotations

from django.db import transaction

from chargepoints.models import Connector
from charging import selectors


class ConnectorInUse(Exception):
    def __init__(self, connector: Connector) -> None:
        super().__init__(f"{connector} has an open session; stop it (or let it end) first.")
        self.connector_id = connector.pk


def connector_delete(*, connector: Connector) -> None:
    """Remove ``connector``, its row locked. Raises ``ConnectorInUse`` while a session is open on it
    (on its EVSE, 2.0.1): the session's stop and meter values are attributed to it. A charger that
    reports it again (a StatusNotification) gets it back as a new row."""
    with transaction.atomic():
        locked = Connector.objects.select_for_update().select_related("charge_point").filter(pk=connector.pk).first()
        if locked is None:
            return
        if selectors.transactions_open_exist(
            charge_point=locked.charge_point, connector_id=locked.connector_id, evse_id=locked.evse_id
        ):
            raise ConnectorInUse(locked)
        locked.delete()
