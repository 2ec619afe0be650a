"""Security events chargers reported (SecurityEventNotification), newest first, read-only.

A fleet's events are kept, millions of them: the list counts at most ``CappedCountPaginator.cap``
rows, in the order of the primary key (newest received first), filters by type among OCPP's
(no SELECT DISTINCT over the table) and searches by indexes.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from chargepoints.admin.shared import charger_pks_matching
from chargepoints.models import SecurityEvent
from kernel.admin_lists import CappedList
from kernel.admin_mixins import ReadOnlyAdmin

# OCPP's security events: 1.6's security whitepaper (appendix 1) and 2.0.1's part 2 appendices.
SECURITY_EVENT_TYPES = sorted(
    {
        "AttemptedReplayAttacks",
        "CentralSystemFailedToAuthenticate",
        "CsmsFailedToAuthenticate",
        "FailedToAuthenticateAtCentralSystem",
        "FailedToAuthenticateAtCsms",
        "FirmwareUpdated",
        "InvalidCentralSystemCertificate",
        "InvalidChargePointCertificate",
        "InvalidChargingStationCertificate",
        "InvalidCsmsCertificate",
        "InvalidFirmwareSignature",
        "InvalidFirmwareSigningCertificate",
        "InvalidMessages",
        "InvalidTLSCipherSuite",
        "InvalidTLSVersion",
        "MaintenanceLoginAccepted",
        "MaintenanceLoginFailed",
        "MemoryExhaustion",
        "ReconfigurationOfSecurityParameters",
        "ResetOrReboot",
        "SecurityLogWasCleared",
        "SettingSystemTime",
        "StartupOfTheDevice",
        "TamperDetectionActivated",
    }
)


class EventTypeFilter(admin.SimpleListFilter):
    """OCPP's event types as fixed choices (a SELECT DISTINCT over every event was 0.13 s a page at
    1,000,000); a vendor's own type still filters by ``?event_type=<type>``."""

    title, parameter_name = "event type", "event_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(event_type, event_type) for event_type in SECURITY_EVENT_TYPES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SecurityEvent]) -> QuerySet[SecurityEvent]:
        value = self.value()
        return queryset if value is None else queryset.filter(event_type=value)


@admin.register(SecurityEvent)
class SecurityEventAdmin(CappedList, ReadOnlyAdmin):
    list_display = ["timestamp", "charge_point", "event_type", "tech_info", "received_at"]
    list_filter = [EventTypeFilter]
    search_fields = ["charge_point__charge_point_id", "event_type", "tech_info"]
    search_help_text = "A charger id (or part of one): its events; else part of an event type or of the tech info."
    list_select_related = ["charge_point"]
    fields = list_display  # type: ignore[assignment]
    readonly_fields = fields  # type: ignore[assignment]
    ordering = ["-id"]  # the order an index serves: the model's -timestamp sorted every event a page
    sortable_by = ()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[SecurityEvent], search_term: str
    ) -> tuple[QuerySet[SecurityEvent], bool]:
        """The events of the chargers whose id contains the term (by the charger's index) and those
        whose type (among OCPP's) or tech info contains it. An ILIKE of each
        through the join scanned every event with its charger (1.5 s a page at 1,000,000)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        chargers = charger_pks_matching(term)
        event_types = [name for name in SECURITY_EVENT_TYPES if term.casefold() in name.casefold()]
        found = Q(event_type__in=event_types) | Q(tech_info__icontains=term)
        return queryset.filter(found | Q(charge_point_id__in=chargers) if chargers else found), False
