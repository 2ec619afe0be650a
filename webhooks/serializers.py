from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kernel.models import ApiKey, ApiKeyScope
from kernel.serializers import UnknownFieldsRefused
from webhooks.models import EventType, WebhookSubscription, event_types_once, event_types_validate
from webhooks.url_safety import webhook_url_redacted


@extend_schema_field({"type": "array", "items": {"type": "string", "enum": EventType.values}, "minItems": 1})
class EventTypesField(serializers.ListField):
    """A subscription's event types, checked by the rule the admin form applies too; each kept once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.CharField(), validators=[event_types_validate], **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        return event_types_once(super().to_internal_value(data))


class WebhookSubscriptionSerializer(UnknownFieldsRefused, serializers.ModelSerializer):
    """A subscription. A read-only API key, which may not manage webhooks, reads its ``url`` with
    the secrets a URL can carry redacted (``webhooks.url_safety.webhook_url_redacted``)."""

    events = EventTypesField()

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "active", "description", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            "url": {
                "help_text": "The receiver. Read with a read-only API key, the secrets a URL can carry are "
                "`[redacted]`: the password of its user information, every query value, the fragment "
                "and path segments that read as tokens (16 characters or more, with a digit or both cases)."
            }
        }

    refused_fields = {"secret": "The secret cannot be set; POST /api/v1/webhooks/{id}/rotate-secret issues a new one."}

    def to_representation(self, instance: WebhookSubscription) -> dict[str, Any]:
        data = super().to_representation(instance)
        request = self.context.get("request")
        api_key = getattr(request, "auth", None)
        if isinstance(api_key, ApiKey) and api_key.scope == ApiKeyScope.READ_ONLY:
            data["url"] = webhook_url_redacted(data["url"])
        return data


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
