from __future__ import annotations

import copy
from typing import Any

from django.contrib import admin
from django.db.models import ForeignKey, QuerySet
from django.forms import BooleanField, ModelChoiceField, ModelForm, NumberInput, TextInput
from django.forms.models import BaseInlineFormSet, construct_instance
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from kernel.admin_mixins import ChangedOnThePageForm, CheckedAutocompleteSelect, RefusalsShown
from sites import services
from sites.chart import allocation_chart_svg
from sites.engine import failsafe_clear_on_commit
from sites.models import ConnectorMaximum, Site, SiteMember
from sites.triggers import site_recompute_on_commit

HISTORY_ROWS = 50
CHART_POINTS = 2000


class SiteMemberForm(ChangedOnThePageForm, ModelForm):
    """A member as the API checks it: its phases are the site's (``services.member_phases_checked``).
    Its flag is the engine's, shown read-only: cleared by ticking ``clear_smart_charging_flag`` (as
    the API's ``smart_charging_flag: ""``, ``flagged_at`` with it), never typed in. A text box
    posted back what the page showed, so a flag the engine raised while the page was open was
    cleared by any later save of the member (its charger steered again). Its ``changed_data`` is
    what the operator changed on the page (``ChangedOnThePageForm``)."""

    clear_smart_charging_flag = BooleanField(
        required=False, label="Clear flag", help_text="Steer this charger again (the engine flagged it)."
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        site = self.cleaned_data.get("site") or getattr(self.instance, "site", None)
        if "phases" in self.cleaned_data and isinstance(site, Site):
            try:
                services.member_phases_checked(site, self.cleaned_data["phases"])
            except services.SiteConflict as conflict:
                self.add_error("phases", str(conflict))
        if self.cleaned_data.get("clear_smart_charging_flag"):
            self.instance.smart_charging_flag, self.instance.flagged_at = "", None
        return self.cleaned_data

    def changed_fields(self) -> dict[str, Any]:
        """The member's fields this form changes (``site_member_update``'s keywords)."""
        fields = {name: self.cleaned_data[name] for name in self.changed_data if name in self.cleaned_data}
        if fields.pop("clear_smart_charging_flag", False):
            fields["smart_charging_flag"] = ""
        return fields


class ChargerChoice(CheckedAutocompleteSelect):
    """A member row's charger box, labelled with the charger the row was read with (``labels``, set
    by ``SiteMemberFormSet``): the stock box read each row's charger again, a query per member. A
    value no charger can have is the field's error (``CheckedAutocompleteSelect``)."""

    labels: dict[str, str]

    def optgroups(self, name: str, value: Any, attr: Any = None) -> Any:
        labels = getattr(self, "labels", {})
        selected = {str(v) for v in value if str(v) not in self.choices.field.empty_values}
        if not selected or not selected <= labels.keys():
            return super().optgroups(name, value, attr)
        options = [] if self.is_required else [self.create_option(name, "", "", False, 0)]
        for pk in sorted(selected):
            options.append(self.create_option(name, pk, labels[pk], True, len(options)))
        return [(None, options, 0)]


class SiteMemberFormSet(BaseInlineFormSet):
    """Each row's charger box labelled from the charger read with the members (``ChargerChoice``).
    A member's row writes, as the API's member update, only what the operator changed in it, on the
    member as it stands (``services.site_member_update``): saved whole, a maximum the API changed
    while the page was open was put back as the page showed it."""

    def save_existing(self, form: Any, obj: SiteMember, commit: bool = True) -> SiteMember:
        if not commit or not isinstance(form, SiteMemberForm):
            return super().save_existing(form, obj, commit=commit)
        return services.site_member_update(member=obj, **form.changed_fields())

    def add_fields(self, form: Any, index: Any) -> None:
        super().add_fields(form, index)
        member = form.instance
        field = form.fields.get("charge_point")
        box = getattr(field, "widget", None)
        box = getattr(box, "widget", box)  # inside the admin's related-object wrapper
        if isinstance(field, ModelChoiceField) and isinstance(box, ChargerChoice) and member.charge_point_id:
            charge_point = member.charge_point  # read with the members (select_related)
            box.labels = {str(charge_point.pk): field.label_from_instance(charge_point)}


class SiteMemberInline(admin.TabularInline):
    """A site's members, read with their chargers and site in one query: a site of 200 chargers
    took 600 queries (each row's site, charger, and charger again for its box)."""

    model = SiteMember
    form = SiteMemberForm
    formset = SiteMemberFormSet
    extra = 0
    autocomplete_fields = ["charge_point"]
    fields = [
        "charge_point",
        "max_current_a",
        "phases",
        "priority",
        "smart_charging_flag",
        "flagged_at",
        "clear_smart_charging_flag",
    ]
    readonly_fields = ["smart_charging_flag", "flagged_at"]
    # Boxes as wide as what goes in them: at the admin's width for names, the row ran past the window.
    widgets = {
        "max_current_a": NumberInput(attrs={"class": "vIntegerField"}),
        "phases": TextInput(attrs={"size": 8}),
    }

    def get_formset(self, request: HttpRequest, obj: Site | None = None, **kwargs: Any) -> Any:
        return super().get_formset(request, obj, widgets=self.widgets, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet[SiteMember]:
        return super().get_queryset(request).select_related("charge_point", "site")

    def formfield_for_foreignkey(self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "charge_point":
            kwargs["widget"] = ChargerChoice(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class SiteForm(ChangedOnThePageForm, ModelForm):
    """The site as the API checks it (``services.site_checked``): a conflict is the field's error.
    Its ``changed_data`` is what the operator changed on the page (``ChangedOnThePageForm``), which
    ``SiteAdmin.save_model`` writes: compared with the row at the save, a capacity the API changed
    while the page was open was "changed" and put back as the page showed it."""

    def clean(self) -> dict[str, Any]:
        super().clean()
        if not self.errors:
            try:  # the site as it would be saved: a copy of the row with what the operator changed
                services.site_checked(self._as_saved())
            except services.SiteConflict as conflict:
                self.add_error(conflict.field if conflict.field in self.fields else None, str(conflict))
        return self.cleaned_data

    def _as_saved(self) -> Site:
        """A new site with the form's values; a site's row with only what the operator changed on
        the page, as ``SiteAdmin.save_model`` saves it: checked with every value the page showed, a
        failsafe current within the capacity shown but above the one the API set meanwhile passed
        the form, and the save refused it (a 500)."""
        if self.instance.pk is None:
            return construct_instance(self, copy.copy(self.instance))
        site = copy.copy(self.instance)
        for name in self.changed_data:
            if name in self.cleaned_data:
                setattr(site, name, self.cleaned_data[name])
        return site


class SiteConflictsShown(RefusalsShown):
    """A site or member the page's check passed and the service refused at the save, the site or
    member changed meanwhile (its phases, its capacity): the refusal is the page's message, nothing
    saved, not a 500 (``RefusalsShown``)."""

    refusals = (services.SiteConflict,)

    def refusal_message(self, refusal: Exception) -> str:
        field = getattr(refusal, "field", "")
        return f"Not saved ({field.replace('_', ' ')}): {refusal}" if field else f"Not saved: {refusal}"


@admin.register(Site)
class SiteAdmin(SiteConflictsShown, admin.ModelAdmin):
    form = SiteForm
    list_display = ["name", "phases", "voltage_v", "capacity_a", "capacity_w", "member_count", "flagged_count"]
    search_fields = ["name"]
    inlines = [SiteMemberInline]
    readonly_fields = [
        "live_base_load_a",
        "live_base_load_at",
        "allocation_chart",
        "allocation_history",
        "created_at",
        "updated_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Site]:
        return super().get_queryset(request).prefetch_related("members")

    @admin.display(description="Members")
    def member_count(self, site: Site) -> int:
        return len(site.members.all())

    @admin.display(description="Flagged (counted at maximum)")
    def flagged_count(self, site: Site) -> int:
        return sum(1 for member in site.members.all() if member.smart_charging_flag)

    @admin.display(description="Allocation over time")
    def allocation_chart(self, site: Site) -> SafeString:
        snapshots = list(site.snapshots.all()[:CHART_POINTS])
        svg = allocation_chart_svg(
            capacity_a=[(s.at, s.capacity_a) for s in snapshots if s.capacity_a is not None],
            limits_sum_a=[(s.at, s.limits_sum_a) for s in snapshots],
            measured_a=[(s.at, s.measured_a) for s in snapshots if s.measured_a is not None],
            title=f"Allocation of {site}",
        )
        return mark_safe(svg)  # built from numbers and escaped text only (sites.chart)

    @admin.display(description="Allocation changes (newest first)")
    def allocation_history(self, site: Site) -> SafeString:
        rows = site.snapshots.all()[:HISTORY_ROWS]
        header = mark_safe(
            "<tr><th>At</th><th>Capacity (A)</th><th>Base load (A)</th><th>Sum of limits (A)</th>"
            "<th>Measured (A)</th><th>Limits (transaction: A)</th></tr>"
        )
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    date_format(timezone.localtime(s.at), "DATETIME_FORMAT"),  # as every date in the admin
                    s.capacity_a,
                    s.base_load_a,
                    s.limits_sum_a,
                    s.measured_a if s.measured_a is not None else "-",
                    ", ".join(f"{tx}: {limit}" for tx, limit in sorted(s.limits.items())),
                )
                for s in rows
            ),
        )
        return format_html("<table>{}{}</table>", header, body)

    def save_model(self, request: HttpRequest, obj: Site, form: ModelForm, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        services.site_save(site=obj, **fields)

    def delete_model(self, request: HttpRequest, obj: Site) -> None:
        services.site_delete(site=obj)  # as the API: its chargers' failsafe cleared

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Site]) -> None:
        for site in queryset:
            services.site_delete(site=site)

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        for member in getattr(formset, "deleted_objects", []):  # members removed in the inline, as the API
            failsafe_clear_on_commit(charge_point=member.charge_point)

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        site_recompute_on_commit(site_id=form.instance.pk)


@admin.register(ConnectorMaximum)
class ConnectorMaximumAdmin(admin.ModelAdmin):
    """A maximum saved or deleted here recomputes its site, as the API's member update does: a
    maximum lowered below a session's limit bounded it only at the next sweep."""

    list_display = ["member", "connector_id", "max_current_a"]
    autocomplete_fields = ["member"]

    def save_model(self, request: HttpRequest, obj: ConnectorMaximum, form: ModelForm, change: bool) -> None:
        moved_from = form.initial.get("member") if change else None
        previous = SiteMember.objects.filter(pk=moved_from) if moved_from is not None else SiteMember.objects.none()
        previous_site_id = previous.values_list("site_id", flat=True).first()
        services.connector_maximum_save(maximum=obj, previous_site_id=previous_site_id)

    def delete_model(self, request: HttpRequest, obj: ConnectorMaximum) -> None:
        services.connector_maximum_delete(maximum=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ConnectorMaximum]) -> None:
        for maximum in queryset:
            services.connector_maximum_delete(maximum=maximum)


@admin.register(SiteMember)
class SiteMemberAdmin(SiteConflictsShown, admin.ModelAdmin):
    form = SiteMemberForm
    list_display = ["charge_point", "site", "max_current_a", "phases", "priority", "smart_charging_flag"]
    list_filter = ["site"]
    search_fields = ["charge_point__charge_point_id", "site__name"]
    autocomplete_fields = ["charge_point"]
    readonly_fields = ["smart_charging_flag", "flagged_at"]

    def save_model(self, request: HttpRequest, obj: SiteMember, form: ModelForm, change: bool) -> None:
        if change and isinstance(form, SiteMemberForm):  # as the API: what the form changed, on the row as it stands
            services.site_member_update(member=obj, **form.changed_fields())
        else:
            super().save_model(request, obj, form, change)
        site_recompute_on_commit(site_id=obj.site_id)
        moved_from = form.initial.get("site")
        if change and moved_from and moved_from != obj.site_id:  # the site it left shares its part out
            site_recompute_on_commit(site_id=moved_from)

    def delete_model(self, request: HttpRequest, obj: SiteMember) -> None:
        services.site_member_remove(member=obj)  # as the API: the site recomputed, its failsafe cleared

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SiteMember]) -> None:
        for member in queryset.select_related("charge_point"):
            services.site_member_remove(member=member)
