"""Firmware files and rollout campaigns, and the diagnostics/log files chargers upload."""

from __future__ import annotations

import uuid

from django.db import models


class FirmwareFile(models.Model):
    """A firmware image held in the configured storage (``STORAGES["default"]``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    version = models.CharField(max_length=50, blank=True)
    file = models.FileField(upload_to="firmware/")
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    sha256 = models.CharField(max_length=64)
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at"]

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()


class CampaignState(models.TextChoices):
    ACTIVE = "active", "Active (waves from the start time on)"
    PAUSED = "paused", "Paused"
    CANCELLED = "cancelled", "Cancelled"
    COMPLETED = "completed", "Completed"


class Campaign(models.Model):
    """A firmware rollout: UpdateFirmware sent to ``targets`` in waves of at most ``concurrency``
    chargers in flight, from ``start_at`` on."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    firmware = models.ForeignKey(FirmwareFile, on_delete=models.PROTECT, related_name="campaigns")
    start_at = models.DateTimeField()
    concurrency = models.PositiveIntegerField(help_text="Chargers updating at once.")
    state = models.CharField(max_length=16, choices=CampaignState.choices, default=CampaignState.ACTIVE)
    selection = models.JSONField(default=dict, blank=True, help_text="How the chargers were chosen.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class TargetState(models.TextChoices):
    PENDING = "pending", "Waiting for its wave"
    SENT = "sent", "UpdateFirmware sent"
    DOWNLOADING = "downloading", "Downloading"
    DOWNLOADED = "downloaded", "Downloaded"
    INSTALLING = "installing", "Installing"
    INSTALLED = "installed", "Installed"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Not sent (campaign cancelled)"


IN_FLIGHT = (TargetState.SENT, TargetState.DOWNLOADING, TargetState.DOWNLOADED, TargetState.INSTALLING)


class CampaignTarget(models.Model):
    """One charger in a campaign; its ``id`` is the 2.0.1 ``requestId`` of its UpdateFirmware."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="targets")
    charge_point = models.ForeignKey("chargepoints.ChargePoint", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=16, choices=TargetState.choices, default=TargetState.PENDING)
    status = models.CharField(max_length=32, blank=True, help_text="The charger's last FirmwareStatus.")
    failure = models.CharField(max_length=64, blank=True, help_text="Why it failed: a status, a refusal or Timeout.")
    command = models.ForeignKey("commands.Command", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "charge_point"], name="campaign_target_unique")]
        indexes = [models.Index(fields=["charge_point", "state"])]

    def __str__(self) -> str:
        return f"{self.charge_point} in {self.campaign} ({self.state})"


class LogUploadState(models.TextChoices):
    REQUESTED = "requested", "Requested"
    UPLOADING = "uploading", "Uploading"
    UPLOADED = "uploaded", "Uploaded"
    FAILED = "failed", "Failed"


class LogUpload(models.Model):
    """A GetDiagnostics (1.6) or GetLog (2.0.1) request and the file the charger uploaded for it.

    The charger uploads to ``/diagnostics/upload/<token>``; only the token's SHA-256 is kept, and
    it is spent by the first upload. ``id`` is the 2.0.1 ``requestId``.
    """

    charge_point = models.ForeignKey("chargepoints.ChargePoint", on_delete=models.CASCADE, related_name="log_uploads")
    log_type = models.CharField(max_length=32, help_text="Diagnostics (1.6), DiagnosticsLog or SecurityLog (2.0.1).")
    state = models.CharField(max_length=16, choices=LogUploadState.choices, default=LogUploadState.REQUESTED)
    status = models.CharField(max_length=32, blank=True, help_text="The charger's last upload status.")
    token_sha256 = models.CharField(max_length=64, unique=True)
    token_expires_at = models.DateTimeField()
    command = models.ForeignKey("commands.Command", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    file = models.FileField(upload_to="diagnostics/", blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True, help_text="Bytes.")
    received_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.log_type} from {self.charge_point} ({self.state})"
