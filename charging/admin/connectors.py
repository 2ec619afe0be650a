"""The connectors list, from which an operator removes one its charger no longer has."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from chargepoints.admin import fleet
from chargepoints.models import Connector
from charging import selectors
from charging.services.connectors import ConnectorInUse, connector_delete
from kernel.admin_mixins import RefusalsShown


class ConnectorAdmin(RefusalsShown, fleet.ConnectorAdmin):
    """As the fleet's (shown, never typed in), and removable by an operator with the delete
    permission (``connector_delete``): a connector its charger no longer has (a firmware update
    that took one away) kept its last status for good. Not one with an open session: shown
    protected by it, or, a session started after the page's check, refused with the reason
    (``RefusalsShown``; a "Delete selected" deletes all or none)."""

    refusals = (ConnectorInUse,)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """As ``connector_delete`` refuses: a connector with an open session is shown protected by it."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        in_use = [
            f"Open session on {connector}"
            for connector in objs
            if selectors.transactions_open_exist(
                charge_point=connector.charge_point, connector_id=connector.connector_id, evse_id=connector.evse_id
            )
        ]
        return deleted, counts, perms_needed, [*protected, *in_use]

    def delete_model(self, request: HttpRequest, obj: Connector) -> None:
        connector_delete(connector=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Connector]) -> None:
        with transaction.atomic():
            for connector in queryset:
                connector_delete(connector=connector)


admin.site.unregister(Connector)
admin.site.register(Connector, ConnectorAdmin)
