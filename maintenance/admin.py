"""Firmware files, campaigns with their progress, and diagnostics uploads staff can download."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import FileResponse, Http404, HttpRequest, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chargepoints.models import ChargePoint
from kernel.admin_mixins import RefusalsShown
from maintenance.errors import MaintenanceError
from maintenance.models import Campaign, CampaignTarget, FirmwareFile, LogUpload
from maintenance.services import diagnostics, firmware


class FirmwareFileForm(forms.ModelForm):
    class Meta:
        model = FirmwareFile
        fields = ["name", "version", "file"]

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        try:
            firmware.firmware_image_size_check(upload)
        except MaintenanceError as error:
            raise forms.ValidationError(str(error)) from None
        return upload


@admin.register(FirmwareFile)
class FirmwareFileAdmin(admin.ModelAdmin):
    form = FirmwareFileForm
    list_display = ["name", "version", "size", "sha256", "uploaded_at"]
    search_fields = ["name", "version", "sha256"]

    def get_readonly_fields(self, request: HttpRequest, obj: FirmwareFile | None = None) -> list[str]:
        return ["name", "version", "file", "size", "sha256", "uploaded_at"] if obj else []

    def save_model(self, request: HttpRequest, obj: FirmwareFile, form: forms.Form, change: bool) -> None:
        if change:
            return
        created = firmware.firmware_file_create(
            name=form.cleaned_data["name"], version=form.cleaned_data["version"], upload=form.cleaned_data["file"]
        )
        obj.pk, obj.size, obj.sha256, obj.file = created.pk, created.size, created.sha256, created.file
        obj._state.adding = False


TARGETS_SHOWN = 200


class FirstTargetsFormSet(BaseInlineFormSet):
    """A campaign's first ``TARGETS_SHOWN`` targets (one of 10,000 chargers rendered them all; its
    progress counts every one), read once."""

    def get_queryset(self) -> Any:
        if not hasattr(self, "_first_targets"):
            self._first_targets = list(super().get_queryset()[:TARGETS_SHOWN])
        return self._first_targets


class CampaignTargetInline(admin.TabularInline):
    model = CampaignTarget
    formset = FirstTargetsFormSet
    verbose_name_plural = f"Targets (the first {TARGETS_SHOWN}; the progress counts all)"
    fields = ["charge_point", "state", "status", "failure", "sent_at", "updated_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[CampaignTarget]:
        return super().get_queryset(request).select_related("charge_point", "campaign")


class CampaignCreateForm(forms.ModelForm):
    """A new campaign: the chargers listed, and/or those of a vendor and model (combined with AND)."""

    charge_points = forms.ModelMultipleChoiceField(queryset=ChargePoint.objects.all(), required=False)
    vendor = forms.CharField(max_length=50, required=False)
    model = forms.CharField(max_length=50, required=False, label="Charger model")
    concurrency = forms.IntegerField(min_value=1, max_value=10000, initial=5)
    start_at = forms.DateTimeField(required=False, help_text="Blank: now (UTC).")

    class Meta:
        model = Campaign
        fields = ["name", "firmware", "start_at", "concurrency"]

    def selection(self) -> dict[str, Any]:
        data = self.cleaned_data
        ids = [charge_point.charge_point_id for charge_point in data.get("charge_points") or []]
        return {"charge_point_ids": ids, "vendor": data.get("vendor", ""), "model": data.get("model", "")}

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        try:
            if not firmware.campaign_charge_points(**self.selection()).exists():
                raise forms.ValidationError("The selection matches no charger.")
        except MaintenanceError as error:
            raise forms.ValidationError(str(error)) from None
        return cleaned


@admin.register(Campaign)
class CampaignAdmin(RefusalsShown, admin.ModelAdmin):
    """Campaigns: created here or through the API; watched, paused, resumed and cancelled. A
    selection whose chargers went away (decommissioned, deleted) after the add page's check is the
    service's refusal as the page's message, no campaign created, not a 500 (``RefusalsShown``)."""

    refusals = (MaintenanceError,)

    list_display = ["name", "firmware", "state", "progress", "concurrency", "start_at", "finished_at"]
    list_filter = ["state"]
    search_fields = ["name"]
    shown = ["name", "firmware", "state", "progress", "concurrency", "start_at", "selection", "finished_at"]
    inlines = [CampaignTargetInline]
    actions = ["pause", "resume", "cancel"]

    def refusal_message(self, refusal: Exception) -> str:
        details = getattr(refusal, "details", {})
        said = " ".join(f"{name}: {' '.join(map(str, texts))}" for name, texts in details.items())
        return f"{refusal} {said}".strip()

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """The campaigns and how many targets go with them, not each target listed: each named its
        charger, read one by one (a campaign of 5,000 chargers: 5,004 queries, 3.2 s)."""
        campaigns = list(objs)
        targets = CampaignTarget.objects.filter(campaign__in=campaigns).count()
        listed: list[Any] = [format_html("Campaign: {}", campaign) for campaign in campaigns]
        if targets:
            listed.append(f"{targets} campaign targets")
        perms_needed = set() if self.has_delete_permission(request) else {"campaign"}
        if targets and not request.user.has_perm("maintenance.delete_campaigntarget"):
            perms_needed.add("campaign target")  # as Django's cascade asks
        return listed, {"campaigns": len(campaigns), "campaign targets": targets}, perms_needed, []

    def get_form(self, request: HttpRequest, obj: Campaign | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = CampaignCreateForm
            kwargs["fields"] = None
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Campaign | None = None) -> list[str]:  # type: ignore[override]  # the stubs let it nest
        if obj is None:
            return ["name", "firmware", "charge_points", "vendor", "model", "concurrency", "start_at"]
        return self.shown

    def get_readonly_fields(self, request: HttpRequest, obj: Campaign | None = None) -> list[str]:
        return self.shown if obj else []

    def get_inline_instances(self, request: HttpRequest, obj: Campaign | None = None) -> list[Any]:
        return super().get_inline_instances(request, obj) if obj else []

    def save_model(self, request: HttpRequest, obj: Campaign, form: forms.Form, change: bool) -> None:
        if change:
            return
        data = form.cleaned_data
        created = firmware.campaign_create(
            name=data["name"],
            firmware=data["firmware"],
            concurrency=data["concurrency"],
            start_at=data.get("start_at"),
            **form.selection(),  # type: ignore[attr-defined]
        )
        firmware.campaign_advance_soon(campaign_id=created.pk)
        obj.pk = created.pk
        obj._state.adding = False

    def save_related(self, request: HttpRequest, form: forms.Form, formsets: Any, change: bool) -> None:
        """Targets are the service's; the form has nothing else to save."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        return firmware.campaigns_counted(super().get_queryset(request).select_related("firmware"))

    @admin.display(description="Progress")
    def progress(self, campaign: Campaign) -> str:
        counts = firmware.campaign_progress(campaign)
        return ", ".join(f"{count} {state}" for state, count in counts.items() if count)

    def _apply(self, request: HttpRequest, queryset: QuerySet[Campaign], service: Any, verb: str) -> None:
        for campaign in queryset:
            try:
                service(campaign_id=str(campaign.pk))
            except MaintenanceError as error:
                self.message_user(request, f"{campaign}: {error}", messages.WARNING)
            else:
                self.message_user(request, f"{campaign}: {verb}.")

    @admin.action(description="Pause the selected campaigns", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._apply(request, queryset, firmware.campaign_pause, "paused")

    @admin.action(description="Resume the selected campaigns", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._apply(request, queryset, firmware.campaign_resume, "resumed")

    @admin.action(description="Cancel the selected campaigns", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._apply(request, queryset, firmware.campaign_cancel, "cancelled")


@admin.register(LogUpload)
class LogUploadAdmin(admin.ModelAdmin):
    list_display = ["charge_point", "log_type", "state", "status", "file_name", "size", "download", "created_at"]
    list_filter = ["state", "log_type"]
    search_fields = ["charge_point__charge_point_id", "file_name"]
    readonly_fields = [
        "charge_point",
        "log_type",
        "state",
        "status",
        "command",
        "file_name",
        "size",
        "download",
        "received_at",
        "token_expires_at",
        "created_at",
    ]
    fields = readonly_fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="File")
    def download(self, upload: LogUpload) -> SafeString | str:
        if not upload.file:
            return "-"
        url = reverse("admin:maintenance_logupload_download", args=[upload.pk])
        return format_html('<a href="{}">Download</a>', url)

    def get_urls(self) -> list[URLPattern]:
        download = self.admin_site.admin_view(self.download_view)
        return [path("<int:pk>/download/", download, name="maintenance_logupload_download"), *super().get_urls()]

    def download_view(self, request: HttpRequest, pk: int) -> FileResponse | HttpResponseRedirect:
        """Staff with view permission on log uploads download the file as the charger sent it; a
        file no longer stored is said in the message bar of the upload's page."""
        if not self.has_view_permission(request):
            raise Http404
        upload = LogUpload.objects.filter(pk=pk).first()
        if upload is None or not upload.file:
            raise Http404
        try:
            opened, name = diagnostics.log_upload_file_open(upload=upload)
        except MaintenanceError as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:maintenance_logupload_change", args=[upload.pk]))
        return FileResponse(opened, as_attachment=True, filename=name)
