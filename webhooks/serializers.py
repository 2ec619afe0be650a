from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kernel.serializers import UnknownFieldsRefused
from webhooks.models import EventType, WebhookSubscription, event_types_once, event_types_validate


@extend_schema_field({"type": "array", "items": {"type": "string", "enum": EventType.values}, "minItems": 1})
class EventTypesField(serializers.ListField):
    """A subscription's event types, checked by the rule the admin form applies too; each kept once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.CharField(), validators=[event_types_validate], **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        return event_types_once(super().to_internal_value(data))


class WebhookSubscriptionSerializer(UnknownFieldsRefused, serializers.ModelSerializer):
    events = EventTypesField()

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "active", "description", "created_at"]
        read_only_fields = ["id", "created_at"]

    refused_fields = {"secret": "The secret cannot be set; POST /api/v1/webhooks/{id}/rotate-secret issues a new one."}


class WebhookSubscriptionCreatedSerializer(WebhookSubscriptionSerializer):
    """The answer to a create: the only time the signing secret is shown."""

    class Meta(WebhookSubscriptionSerializer.Meta):
        fields = [*WebhookSubscriptionSerializer.Meta.fields, "secret"]
        read_only_fields = [*WebhookSubscriptionSerializer.Meta.read_only_fields, "secret"]


class WebhookSecretRotatedSerializer(serializers.ModelSerializer):
    """The answer to a rotation: the only time the new secret is shown, and until when the old one
    still signs (null: it stopped at once)."""

    class Meta:
        model = WebhookSubscription
        fields = ["id", "secret", "previous_secret_expires_at"]
        read_only_fields = fields
