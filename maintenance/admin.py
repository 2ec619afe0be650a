"""Firmware files, campaigns with their progress, and diagnostics uploads staff can download."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from maintenance.errors import MaintenanceError
from maintenance.models import Campaign, CampaignTarget, FirmwareFile, LogUpload
from maintenance.services import firmware


class FirmwareFileForm(forms.ModelForm):
    class Meta:
        model = FirmwareFile
        fields = ["name", "version", "file"]


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


class CampaignTargetInline(admin.TabularInline):
    model = CampaignTarget
    fields = ["charge_point", "state", "status", "failure", "sent_at", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """Campaigns are created through the API; here they are watched, paused, resumed and cancelled."""

    list_display = ["name", "firmware", "state", "progress", "concurrency", "start_at", "finished_at"]
    list_filter = ["state"]
    search_fields = ["name"]
    readonly_fields = ["name", "firmware", "state", "progress", "concurrency", "start_at", "selection", "finished_at"]
    fields = readonly_fields
    inlines = [CampaignTargetInline]
    actions = ["pause", "resume", "cancel"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

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
        "charge_point", "log_type", "state", "status", "command", "file_name", "size", "download", "received_at",
        "token_expires_at", "created_at",
    ]
    fields = readonly_fields

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

    def download_view(self, request: HttpRequest, pk: int) -> FileResponse:
        """Staff with view permission on log uploads download the file as the charger sent it."""
        if not self.has_view_permission(request):
            raise Http404
        upload = LogUpload.objects.filter(pk=pk).first()
        if upload is None or not upload.file:
            raise Http404
        return FileResponse(upload.file.open("rb"), as_attachment=True, filename=PurePosixPath(upload.file_name).name)
