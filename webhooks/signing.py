"""Signing secrets: their rotation with a grace period, and the signature header of a delivery.

``X-Dynamo-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``. After a
rotation the old secret keeps signing next to the new one for CSMS_WEBHOOK_SECRET_GRACE_SECONDS,
so receivers can switch at their pace: the header then carries two ``v1`` values, the new one first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webhooks.models import WebhookSubscription

SECRET_PREFIX = "whsec_"


def secret_new() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature_header(*, secret: str, body: str, timestamp: int) -> str:
    return f"t={timestamp},v1={_v1(secret, body, timestamp)}"


def subscription_signature_header(
    *, subscription: WebhookSubscription, body: str, timestamp: int, now: datetime | None = None
) -> str:
    """The header for a delivery to ``subscription``: signed with its secret, and with the
    previous one too while that one's grace period lasts."""
    header = signature_header(secret=subscription.secret, body=body, timestamp=timestamp)
    expires = subscription.previous_secret_expires_at
    if subscription.previous_secret and expires and expires > (now or timezone.now()):
        header += f",v1={_v1(subscription.previous_secret, body, timestamp)}"
    return header


def webhook_secret_rotate(*, subscription: WebhookSubscription) -> WebhookSubscription:
    """Give the subscription a new secret; the old one keeps signing for the grace period
    (CSMS_WEBHOOK_SECRET_GRACE_SECONDS, 0: not at all). The new secret is on the returned record."""
    with transaction.atomic():
        locked = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        grace = timedelta(seconds=settings.CSMS_WEBHOOK_SECRET_GRACE_SECONDS)
        locked.previous_secret = locked.secret if grace else ""
        locked.previous_secret_expires_at = timezone.now() + grace if grace else None
        locked.secret = secret_new()
        locked.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return locked


def _v1(secret: str, body: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
