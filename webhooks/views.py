from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from kernel.api_errors import ApiError
from kernel.serializers import no_body_fields
from webhooks import services
from webhooks.models import WebhookSubscription
from webhooks.serializers import (
    WebhookSecretRotatedSerializer,
    WebhookSubscriptionCreatedSerializer,
    WebhookSubscriptionSerializer,
)
from webhooks.signing import webhook_secret_rotate
from webhooks.url_safety import UnsafeWebhookUrl, webhook_url_check


def _refuse_unsafe(url: str) -> None:
    try:
        webhook_url_check(url)
    except UnsafeWebhookUrl as unsafe:
        raise ApiError(400, "ValidationError", "The request body is invalid.", details={"url": [str(unsafe)]}) from None


class WebhookSubscriptionViewSet(viewsets.ModelViewSet):
    """Webhook subscriptions. The signing secret is returned once, in the create answer."""

    serializer_class = WebhookSubscriptionSerializer
    # rotate-secret reads a body, if only to refuse it (no_body_fields).
    api_error_statuses = {"rotate_secret": (400, 413, 415)}

    def get_queryset(self) -> QuerySet[WebhookSubscription]:
        # Newest first; the id breaks a tie, so a page's rows never move to another page between reads.
        return WebhookSubscription.objects.order_by("-created_at", "-id")

    def get_object(self) -> WebhookSubscription:
        try:
            return WebhookSubscription.objects.get(pk=self.kwargs["pk"])
        except (WebhookSubscription.DoesNotExist, DjangoValidationError):
            raise ApiError(404, "NotFound", f"No webhook subscription {self.kwargs['pk']}.") from None

    def perform_destroy(self, instance: WebhookSubscription) -> None:
        services.webhook_subscription_delete(subscription=instance)  # not the ORM's cascade, row by row

    @extend_schema(responses={201: WebhookSubscriptionCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _refuse_unsafe(serializer.validated_data["url"])
        subscription = services.webhook_subscription_create(**serializer.validated_data)
        return Response(WebhookSubscriptionCreatedSerializer(subscription).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: WebhookSecretRotatedSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        """A new signing secret, shown once; the old one signs alongside it for the grace period."""
        no_body_fields(request.data)
        subscription = webhook_secret_rotate(subscription=self.get_object())
        return Response(WebhookSecretRotatedSerializer(subscription).data)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        if "url" in serializer.validated_data:
            _refuse_unsafe(serializer.validated_data["url"])
        assert isinstance(serializer.instance, WebhookSubscription)  # an update's: the object it was given
        services.webhook_subscription_update(subscription=serializer.instance, **serializer.validated_data)
