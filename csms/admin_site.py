"""The admin site: Django's admin with the operator dashboard as its index.

``admin.site`` is this site (``CsmsAdminConfig.default_site``), so every ``@admin.register``
in the apps lands here unchanged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, re_path, reverse
from django.utils import timezone

from chargepoints.selectors import fleet_summary, recently_offline_charge_point_list
from charging.selectors import active_transaction_list, transaction_active_count
from commands.selectors import failed_command_list
from kernel.admin_mixins import DateHierarchyChecked, LookupsChecked, PickersChecked, SelectionChecked
from webhooks.selectors import (
    failed_delivery_list,
    receiver_failure_rate_list,
    webhook_backlog,
)

RECENTLY_OFFLINE_WINDOW = timedelta(hours=1)
RECEIVER_FAILURE_WINDOW = timedelta(minutes=10)
DASHBOARD_LIST_LIMIT = 10
# Admin pages of models that moved to another app (issue 16): old app label -> models -> new app label.
MOVED_ADMIN_PAGES = {
    "chargepoints": ("idtag|localauthlist|reservation|transaction|metersample|reconciliationitem", "charging"),
    "commands": ("installedchargingprofile", "charging"),
    "csms": ("apikey", "kernel"),
}


class CsmsAdminSite(admin.AdminSite):
    site_header = "Dynamo CSMS"
    site_title = "Dynamo CSMS"
    index_title = "Control room"

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        """Every list page with a date hierarchy, ours and django-axes', answers a year beyond any
        date as a bad filter, not with a 500 (``DateHierarchyChecked``); every list page, a lookup of
        such a year on any date column (``LookupsChecked``); every autocomplete box, its and its
        inlines', a value no row can have as the field's error (``PickersChecked``); every action, a
        selected row no row can be as the list's message (``SelectionChecked``)."""
        admin_class = admin_class or admin.ModelAdmin
        if admin_class.date_hierarchy and not issubclass(admin_class, DateHierarchyChecked):
            admin_class = type(admin_class.__name__, (DateHierarchyChecked, admin_class), {})
        if not issubclass(admin_class, LookupsChecked):
            admin_class = type(admin_class.__name__, (LookupsChecked, admin_class), {})
        if not issubclass(admin_class, PickersChecked):
            inlines = [_pickers_checked(inline) for inline in admin_class.inlines]
            admin_class = type(admin_class.__name__, (PickersChecked, admin_class), {"inlines": inlines})
        if not issubclass(admin_class, SelectionChecked):
            admin_class = type(admin_class.__name__, (SelectionChecked, admin_class), {})
        super().register(model_or_iterable, admin_class, **options)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        # Ahead of Django's own patterns, whose catch-all would otherwise answer first.
        dashboard = path("dashboard/", self.admin_view(self.dashboard_view), name="dashboard")
        return [dashboard, *moved_admin_page_redirects(), *super().get_urls()]

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        return super().index(request, extra_context={**dashboard_context(request.user), **(extra_context or {})})

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """The dashboard alone, for the index page to swap in when it refreshes itself."""
        return TemplateResponse(request, "admin/dashboard.html", dashboard_context(request.user))


def _pickers_checked(inline: Any) -> Any:
    return inline if issubclass(inline, PickersChecked) else type(inline.__name__, (PickersChecked, inline), {})


def moved_admin_page_redirects() -> list[URLPattern]:
    """Bookmarks of a moved model's admin pages (``/admin/chargepoints/transaction/7/change/``)
    lead to the same page under the model's new app label, with the query string."""
    return [
        re_path(rf"^{old_label}/(?P<model>{models})/(?P<rest>.*)$", moved_admin_page, {"new_label": new_label})
        for old_label, (models, new_label) in MOVED_ADMIN_PAGES.items()
    ]


def moved_admin_page(request: HttpRequest, *, model: str, rest: str, new_label: str) -> HttpResponse:
    query = request.META.get("QUERY_STRING", "")
    url = f"{reverse('admin:index')}{new_label}/{model}/{rest}"
    return HttpResponsePermanentRedirect(f"{url}?{query}" if query else url)


def dashboard_context(user: Any) -> dict[str, Any]:
    """What the dashboard shows ``user``: each panel only with the view permission of its model
    (a support login without the sessions' permission sees no id tags there), read only then."""
    now = timezone.now()
    context: dict[str, Any] = {
        "dashboard_now": now,
        "dashboard_refresh_seconds": settings.CSMS_ADMIN_DASHBOARD_REFRESH_SECONDS,
    }
    if user.has_perm("chargepoints.view_chargepoint"):
        context["fleet"] = fleet_summary()
        context["recently_offline"] = recently_offline_charge_point_list(
            since=now - RECENTLY_OFFLINE_WINDOW, limit=DASHBOARD_LIST_LIMIT
        )
    if user.has_perm("charging.view_transaction"):
        context["charging_now"] = transaction_active_count()
        context["active_transactions"] = active_transaction_list(limit=DASHBOARD_LIST_LIMIT)
    if user.has_perm("webhooks.view_webhookdelivery"):
        context["failed_deliveries"] = failed_delivery_list(limit=DASHBOARD_LIST_LIMIT)
        context["webhook_backlog"] = webhook_backlog(now=now)
        context["failing_receivers"] = receiver_failure_rate_list(
            since=now - RECEIVER_FAILURE_WINDOW, limit=DASHBOARD_LIST_LIMIT
        )
    if user.has_perm("commands.view_command"):
        context["failed_commands"] = failed_command_list(limit=DASHBOARD_LIST_LIMIT)
    return context
