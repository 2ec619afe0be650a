"""Issuing, checking and revoking API keys."""

from __future__ import annotations

import hashlib
import secrets

from django.utils import timezone

from csms.models import ApiKey

KEY_PREFIX = "dyn_"


def _hash(key: str) -> str:
    # Keys are 256-bit random tokens: a fast hash is enough, no password stretching needed.
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """Create a key; returns the record and the plain key, which is not stored anywhere."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey.objects.create(name=name, prefix=key[:12], key_hash=_hash(key))
    return record, key


def api_key_find_active(*, key: str) -> ApiKey | None:
    return ApiKey.objects.filter(key_hash=_hash(key), revoked_at__isnull=True).first()


def api_key_revoke(*, api_key: ApiKey) -> None:
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
