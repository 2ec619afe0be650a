"""A charge point's admin page, with its latest sessions (the "Recent transactions" panel)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from chargepoints.admin import fleet
from chargepoints.models import ChargePoint
from charging.selectors import charge_point_recent_transaction_list


class ChargePointAdmin(fleet.ChargePointAdmin):
    """The fleet's charge point page, and the charger's latest sessions."""

    def _charge_point_context(self, request: HttpRequest, charge_point: ChargePoint) -> dict[str, Any]:
        return {
            **super()._charge_point_context(request, charge_point),
            "recent_transactions": charge_point_recent_transaction_list(charge_point=charge_point),
        }


admin.site.unregister(ChargePoint)
admin.site.register(ChargePoint, ChargePointAdmin)
