from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models

from webhooks.url_safety import webhook_url_redacted


class EventType(models.TextChoices):
    CHARGE_POINT_OFFLINE = "charge_point.offline"
    CHARGE_POINT_ONLINE = "charge_point.online"
    CONNECTOR_STATUS_CHANGED = "connector.status_changed"
    TRANSACTION_STARTED = "transaction.started"
    TRANSACTION_ENDED = "transaction.ended"
    BILLING_RECORD_CREATED = "billing_record.created"
    COMMAND_COMPLETED = "command.completed"
    FIRMWARE_STATUS_CHANGED = "firmware.status_changed"
    FIRMWARE_CAMPAIGN_FINISHED = "firmware_campaign.finished"
    DIAGNOSTICS_UPLOADED = "diagnostics.uploaded"
    SITE_ALLOCATION_CHANGED = "site.allocation_changed"
    SECURITY_EVENT_REPORTED = "charge_point.security_event"
    CHARGING_LIMIT_CHANGED = "charge_point.charging_limit_changed"


def event_types_validate(events: object) -> None:
    """The one rule for a subscription's ``events``, in the API and the admin form alike: a
    non-empty list of EventType values. Raises Django's ``ValidationError`` naming the names
    that are not event types, and the ones that are."""
    if not isinstance(events, list) or not all(isinstance(name, str) for name in events):
        raise ValidationError("A list of event type names is expected.", code="invalid")
    if not events:
        raise ValidationError("Choose at least one event type.", code="required")
    unknown = [name for name in events if name not in EventType.values]
    if unknown:
        raise ValidationError(
            "Not an event type: %(unknown)s. The event types are %(known)s.",
            code="unknown_event_type",
            params={"unknown": ", ".join(unknown), "known": ", ".join(EventType.values)},
        )


def event_types_once(events: list[str]) -> list[str]:
    """``events`` with each name once, in the order first given (a subscription is sent an event
    once however often it names its type: stored once, it reads as it works)."""
    return list(dict.fromkeys(events))


class WebhookSubscription(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2000)
    events = models.JSONField(help_text="Event types this subscription receives.")
    # Kept in clear: it signs every delivery (HMAC needs the secret itself, not a hash).
    secret = models.CharField(max_length=100)
    # After a rotation the old secret signs next to the new one until it expires (webhooks/signing.py).
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        # Its label wherever it is named (a delivery's row and filter, the admin's history, a
        # deletion's confirmation): the URL without its secrets.
        return webhook_url_redacted(self.url)


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """The outbox: one event for one subscription, written in the transaction that caused it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = models.UUIDField(db_index=True, help_text="The body's id; the same for every subscription.")
    event_type = models.CharField(max_length=64, choices=EventType.choices)
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    body = models.TextField(help_text="The exact JSON that is signed and sent.")
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    lease_token = models.UUIDField(
        null=True, blank=True, editable=False, help_text="The claim that holds the delivery now (fencing)."
    )
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.subscription_id} ({self.state})"


class WebhookAttempt(models.Model):  # noqa: DJ008  (shown as its delivery's inline rows)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(db_index=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField()

    class Meta:
        ordering = ["attempted_at"]
