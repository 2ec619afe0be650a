"""The ``data`` of the webhook events firmware campaigns and diagnostics emit (README, "Webhooks");
see chargepoints/events.py."""

from __future__ import annotations

from typing import Any

from maintenance.models import Campaign, CampaignTarget, LogUpload
from webhooks.models import EventType


def firmware_status_changed(target: CampaignTarget) -> dict[str, Any]:
    """firmware.status_changed: one charger's progress in a campaign (``status`` as the charger sent it)."""
    return {
        "campaign_id": str(target.campaign_id),
        "charge_point_id": target.charge_point.charge_point_id,
        "state": target.state,
        "status": target.status or None,
        "failure": target.failure or None,
    }


def firmware_campaign_finished(campaign: Campaign, *, progress: dict[str, int]) -> dict[str, Any]:
    """firmware_campaign.finished: ``progress`` counts chargers per target state."""
    return {"campaign_id": str(campaign.pk), "state": campaign.state, "progress": progress}


def diagnostics_uploaded(upload: LogUpload) -> dict[str, Any]:
    """diagnostics.uploaded: a file a charger uploaded (``size`` in bytes)."""
    return {
        "log_upload_id": upload.pk,
        "charge_point_id": upload.charge_point.charge_point_id,
        "log_type": upload.log_type,
        "file_name": upload.file_name,
        "size": upload.size,
    }


EVENT_BUILDERS = {
    EventType.FIRMWARE_STATUS_CHANGED: firmware_status_changed,
    EventType.FIRMWARE_CAMPAIGN_FINISHED: firmware_campaign_finished,
    EventType.DIAGNOSTICS_UPLOADED: diagnostics_uploaded,
}
