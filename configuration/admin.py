"""The configuration store in the admin: searchable, and edited only through the charger.

Saving a changed value sends ChangeConfiguration (1.6) or SetVariables (2.0.1) on the API's path;
the stored value changes when the charger accepts it, and the message bar says what it answered.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from chargepoints.admin.shared import charger_pks_matching
from commands.admin import command_outcome_message
from commands.services import CommandRefused
from configuration import changes
from configuration.models import ConfigurationKey, DeviceModelAttribute, DeviceModelReport, DeviceModelVariable
from kernel.admin_lists import CappedList
from kernel.admin_mixins import ChangedOnThePageForm

_LEARNED = ("learned_from", "learned_at", "command")


def _change_through_charger(request: HttpRequest, obj: Any, change: dict[str, Any], label: str) -> None:
    charge_point = obj.charge_point if isinstance(obj, ConfigurationKey) else obj.variable.charge_point
    try:
        results = changes.configuration_change(charge_point=charge_point, changes=[change], user_id=request.user.pk)
    except changes.ConfigurationUnanswered as unanswered:
        messages.add_message(request, *command_outcome_message(unanswered.command, label))
        return
    except CommandRefused as refused:
        messages.error(request, f"{label} not sent to {charge_point}: {refused} {refused.details or ''}")
        return
    status = results[0].get("status") if results else None
    level = messages.SUCCESS if status == "Accepted" else messages.WARNING
    messages.add_message(request, level, f"{label} on {charge_point}: the charge point answered {status}.")


def _searched(term: str, charger: str, *names: str) -> Q | None:
    """A term finds the rows of the chargers whose id contains it (the chargers looked up first, then
    their rows by the ``charger`` column, which leads the list's unique index) and the rows whose
    ``names`` contain it (a value of 60 beside charger CP-060). An ILIKE of the charger id through
    the join, ORed with the names', scanned every row with its charger (0.8-1.2 s a page at
    1,000,000 variables). None for an empty term."""
    term = term.strip()
    if not term:
        return None
    chargers = charger_pks_matching(term)
    found = Q(**{f"{charger}__in": chargers}) if chargers else Q()
    for name in names:
        found |= Q(**{f"{name}__icontains": term})
    return found


class _ChargerEditedForm(ChangedOnThePageForm, forms.ModelForm):
    """The value typed in is sent to the charger when it is not the value the page showed
    (``ChangedOnThePageForm``): compared with the store at the save, a value the charger reported
    while the page was open (a refresh, a change from the API) read as typed in, and the page's
    old value was sent back to the charger by a save with nothing changed."""


class _ChargerEditedAdmin(admin.ModelAdmin):
    form = _ChargerEditedForm

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and request.user.has_perm("commands.send_command")


@admin.register(ConfigurationKey)
class ConfigurationKeyAdmin(CappedList, _ChargerEditedAdmin):
    """Dozens of keys a charger, a fleet's hundreds of thousands: in the order of the charger/key
    unique index, counted to a cap, sorted by no other column (as the device model lists)."""

    ordering = ("charge_point_id", "key")
    sortable_by = ()
    list_display = (
        "charge_point",
        "key",
        "value",
        "readonly",
        "unknown",
        "pending_value",
        "unconfirmed_value",
        *_LEARNED,
    )
    list_filter = ("learned_from", "readonly", "unknown")
    search_fields = ("charge_point__charge_point_id", "key", "value")
    search_help_text = "A charger id (or part of one): that charger's keys; else part of a key or value."
    list_select_related = ("charge_point", "command")  # the command may be null: not followed by default

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ConfigurationKey], search_term: str
    ) -> tuple[QuerySet[ConfigurationKey], bool]:
        found = _searched(search_term, "charge_point_id", "key", "value")
        return (queryset if found is None else queryset.filter(found)), False

    fields = ("charge_point", "key", "value", "readonly", "unknown", "pending_value", "unconfirmed_value", *_LEARNED)
    readonly_fields = ("charge_point", "key", "readonly", "unknown", "pending_value", "unconfirmed_value", *_LEARNED)

    def save_model(self, request: HttpRequest, obj: ConfigurationKey, form: Any, change: bool) -> None:
        """Nothing is saved here: ChangeConfiguration is sent, and the answer updates the store."""
        if "value" in form.changed_data:
            change_ = {"key": obj.key, "value": obj.value or ""}
            _change_through_charger(request, obj, change_, f"ChangeConfiguration {obj.key}")


class DeviceModelAttributeInline(admin.TabularInline):
    model = DeviceModelAttribute
    extra = 0
    can_delete = False
    fields = ("type", "value", "mutability", "persistent", "constant", "pending_value", "unconfirmed_value", *_LEARNED)
    readonly_fields = fields


@admin.register(DeviceModelVariable)
class DeviceModelVariableAdmin(CappedList, admin.ModelAdmin):
    """A 2.0.1 station reports hundreds of variables, a fleet millions: the list is in the order of
    the charger/identity unique index, counts at most ``CappedCountPaginator.cap`` rows and sorts by
    no other column (sorting the model's component/variable order sorted the table whole per page)."""

    ordering = ("charge_point_id", "identity")
    sortable_by = ()
    list_display = (
        "charge_point",
        "component_name",
        "component_instance",
        "evse_id",
        "connector_id",
        "variable_name",
        "variable_instance",
        "learned_at",
    )
    search_fields = ("charge_point__charge_point_id", "component_name", "variable_name")
    search_help_text = (
        "A charger id (or part of one): that charger's variables; else part of a component or variable name."
    )
    list_filter = ("component_name",)
    readonly_fields = [field.name for field in DeviceModelVariable._meta.fields]
    inlines = [DeviceModelAttributeInline]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[DeviceModelVariable], search_term: str
    ) -> tuple[QuerySet[DeviceModelVariable], bool]:
        found = _searched(search_term, "charge_point_id", "component_name", "variable_name")
        return (queryset if found is None else queryset.filter(found)), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(DeviceModelAttribute)
class DeviceModelAttributeAdmin(CappedList, _ChargerEditedAdmin):
    """As the variables' list: in the order of the variable/type unique index, counted to a cap."""

    ordering = ("variable_id", "type")
    sortable_by = ()
    list_display = ("variable", "type", "value", "mutability", "pending_value", "unconfirmed_value", *_LEARNED)
    list_filter = ("type", "mutability", "learned_from")
    search_fields = ("variable__charge_point__charge_point_id", "variable__component_name", "variable__variable_name")
    search_help_text = (
        "A charger id (or part of one): that charger's variables; else part of a component or variable name."
    )
    list_select_related = ("variable", "command")  # the command may be null: not followed by default

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[DeviceModelAttribute], search_term: str
    ) -> tuple[QuerySet[DeviceModelAttribute], bool]:
        found = _searched(search_term, "charge_point_id", "component_name", "variable_name")
        variables = DeviceModelVariable.objects.filter(found).values("pk") if found is not None else None
        return (queryset if variables is None else queryset.filter(variable__in=variables)), False

    fields = (
        "variable",
        "type",
        "value",
        "mutability",
        "persistent",
        "constant",
        "pending_value",
        "unconfirmed_value",
        *_LEARNED,
    )
    readonly_fields = (
        "variable",
        "type",
        "mutability",
        "persistent",
        "constant",
        "pending_value",
        "unconfirmed_value",
        *_LEARNED,
    )

    def save_model(self, request: HttpRequest, obj: DeviceModelAttribute, form: Any, change: bool) -> None:
        """Nothing is saved here: SetVariables is sent, and the answer updates the store."""
        if "value" not in form.changed_data:
            return
        variable = obj.variable
        change_ = {
            "component": variable.component,
            "variable": variable.variable,
            "attribute_type": obj.type,
            "value": obj.value or "",
        }
        _change_through_charger(request, obj, change_, f"SetVariables {variable}")


@admin.register(DeviceModelReport)
class DeviceModelReportAdmin(admin.ModelAdmin):
    list_display = (
        "charge_point",
        "request_id",
        "parts_received",
        "variables_reported",
        "complete",
        "started_at",
        "completed_at",
    )
    search_fields = ("charge_point__charge_point_id",)
    readonly_fields = [field.name for field in DeviceModelReport._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
