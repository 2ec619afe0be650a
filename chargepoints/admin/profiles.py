"""Chargers that break the schema: per model strictness and quirks, and the violations accepted."""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin

from chargepoints.models import ChargerModelProfile, SchemaViolation
from chargepoints.quirks import QUIRKS
from kernel.admin_lists import CappedList
from kernel.admin_mixins import ReadOnlyAdmin


class ChargerModelProfileForm(forms.ModelForm):
    quirks = forms.MultipleChoiceField(
        choices=[(name, f"{name}: {description}") for name, description in QUIRKS.items()],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    class Meta:
        model = ChargerModelProfile
        fields = ["vendor", "model", "firmware_version_prefix", "strictness", "quirks", "id_tag_suffix", "note"]

    def clean_id_tag_suffix(self) -> str:
        pattern = self.cleaned_data["id_tag_suffix"]
        try:
            re.compile(pattern)
        except re.error as error:
            raise forms.ValidationError(f"Not a regular expression: {error}") from error
        return pattern


@admin.register(ChargerModelProfile)
class ChargerModelProfileAdmin(admin.ModelAdmin):
    form = ChargerModelProfileForm
    list_display = ["vendor", "model", "firmware_version_prefix", "strictness", "quirk_list", "updated_at"]
    list_filter = ["strictness", "vendor"]
    search_fields = ["vendor", "model", "note"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="quirks")
    def quirk_list(self, obj: ChargerModelProfile) -> str:
        return ", ".join(obj.quirks) or "-"


@admin.register(SchemaViolation)
class SchemaViolationAdmin(CappedList, ReadOnlyAdmin):
    """What the CSMS accepted despite the schema (session messages, lenient profiles), for the vendor
    conversation. A model with a wrong unit in every MeterValues adds a row a minute per charger (kept
    ``CSMS_MESSAGE_LOG_DAYS``): newest recorded first by the primary key, counted to a cap, sorted by
    no other column (the time order sorted the table whole: 1 s a page at 500 000 rows)."""

    ordering = ("-id",)
    sortable_by = ()

    list_display = ["received_at", "charge_point", "action", "path", "validator", "value"]
    list_filter = ["validator", "action"]
    search_fields = ["charge_point__charge_point_id", "path"]
    list_select_related = ["charge_point"]
    fields = [*list_display, "frame"]  # type: ignore[list-item]  # field names only, no callables
    readonly_fields = fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields
