from __future__ import annotations

from typing import Any

from rest_framework import serializers

from kernel.serializers import UnknownFieldsRefused
from maintenance.models import Campaign, CampaignTarget, FirmwareFile, LogUpload
from maintenance.services.firmware import campaign_progress


class FirmwareFileSerializer(UnknownFieldsRefused, serializers.ModelSerializer):
    file = serializers.FileField(write_only=True, help_text="The firmware image (multipart form field).")
    name = serializers.CharField(max_length=200, required=False, help_text="Default: the file's name.")

    class Meta:
        model = FirmwareFile
        fields = ["id", "name", "version", "file", "size", "sha256", "uploaded_at"]
        read_only_fields = ["id", "size", "sha256", "uploaded_at"]


class CampaignTargetSerializer(serializers.ModelSerializer):
    charge_point_id = serializers.CharField(source="charge_point.charge_point_id")
    command_id = serializers.UUIDField(allow_null=True)
    request_id = serializers.IntegerField(source="id", help_text="The 2.0.1 requestId of its UpdateFirmware.")

    class Meta:
        model = CampaignTarget
        fields = ["charge_point_id", "state", "status", "failure", "request_id", "command_id", "sent_at", "updated_at"]
        read_only_fields = fields


class CampaignSerializer(UnknownFieldsRefused, serializers.ModelSerializer):
    firmware_id = serializers.PrimaryKeyRelatedField(source="firmware", queryset=FirmwareFile.objects.all())
    start_at = serializers.DateTimeField(required=False, help_text="Default: now.")
    concurrency = serializers.IntegerField(min_value=1, max_value=10000)
    charge_point_ids = serializers.ListField(
        child=serializers.CharField(max_length=48), required=False, write_only=True, max_length=100000
    )
    vendor = serializers.CharField(max_length=50, required=False, write_only=True)
    model = serializers.CharField(max_length=50, required=False, write_only=True)
    firmware_version = serializers.CharField(
        max_length=50, required=False, write_only=True, help_text="Chargers now running exactly this version."
    )
    ocpp_version = serializers.ChoiceField(choices=["1.6", "2.0.1"], required=False, write_only=True)
    progress = serializers.SerializerMethodField(help_text="Chargers per state.")

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "firmware_id",
            "start_at",
            "concurrency",
            "state",
            "selection",
            "progress",
            "charge_point_ids",
            "vendor",
            "model",
            "firmware_version",
            "ocpp_version",
            "created_at",
            "finished_at",
        ]
        read_only_fields = ["id", "state", "selection", "progress", "created_at", "finished_at"]

    def get_progress(self, campaign: Campaign) -> dict[str, int]:
        return campaign_progress(campaign)


class CampaignDetailSerializer(CampaignSerializer):
    targets = CampaignTargetSerializer(many=True, read_only=True)

    class Meta(CampaignSerializer.Meta):
        fields = [*CampaignSerializer.Meta.fields, "targets"]


class LogUploadSerializer(serializers.ModelSerializer):
    charge_point_id = serializers.CharField(source="charge_point.charge_point_id", read_only=True)
    request_id = serializers.IntegerField(source="id", read_only=True)
    command_id = serializers.UUIDField(read_only=True, allow_null=True)
    has_file = serializers.SerializerMethodField()

    class Meta:
        model = LogUpload
        fields = [
            "id",
            "request_id",
            "charge_point_id",
            "log_type",
            "state",
            "status",
            "command_id",
            "file_name",
            "size",
            "has_file",
            "received_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_has_file(self, upload: LogUpload) -> bool:
        return bool(upload.file)


class LogUploadRequestSerializer(UnknownFieldsRefused, serializers.Serializer):
    log_type = serializers.ChoiceField(
        choices=["DiagnosticsLog", "SecurityLog"], default="DiagnosticsLog", help_text="2.0.1 only."
    )
    oldest = serializers.DateTimeField(required=False, help_text="1.6 startTime, 2.0.1 oldestTimestamp.")
    latest = serializers.DateTimeField(required=False, help_text="1.6 stopTime, 2.0.1 latestTimestamp.")
    retries = serializers.IntegerField(min_value=0, required=False)
    retry_interval = serializers.IntegerField(min_value=0, required=False, help_text="Seconds.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("oldest") and attrs.get("latest") and attrs["oldest"] > attrs["latest"]:
            raise serializers.ValidationError({"latest": ["Must not be before oldest."]})
        return attrs
