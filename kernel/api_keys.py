"""Issuing, checking and revoking API keys."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from kernel.models import ApiKey, ApiKeyScope
from kernel.plain_sql import columns_of, condition_holds, model_rows

KEY_PREFIX = "dyn_"
LAST_USED_PRECISION = timedelta(minutes=1)


def _hash(key: str) -> str:
    # Keys are 256-bit random tokens: a fast hash is enough, no password stretching needed.
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(
    *, name: str, scope: str = ApiKeyScope.FULL, expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Create a key (``scope`` full or read_only); returns the record and the plain key, which is
    not stored anywhere."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey.objects.create(name=name, prefix=key[:12], key_hash=_hash(key), scope=scope, expires_at=expires_at)
    return record, key


def api_key_find_active(*, key: str) -> ApiKey | None:
    """The key's record if it is neither revoked nor expired.

    Read on every API request: one plain statement on PostgreSQL (``kernel.plain_sql``, issue 15).
    Not cached, so that a key revoked or expired in any process is refused by all at once.
    """
    if connection.vendor == "postgresql":
        found = model_rows(
            ApiKey,
            f"SELECT {columns_of(ApiKey, 'k')} FROM {connection.ops.quote_name(ApiKey._meta.db_table)} k"
            " WHERE k.key_hash = %s AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > %s)"
            " LIMIT 1",
            [_hash(key), timezone.now()],
        )
        return found[0] if found else None
    return ApiKey.objects.filter(_active_now(), key_hash=_hash(key)).first()


# Keys found active, by hash, for the callers that verify a key again in a statement of their own
# (``api_key_find_remembered``): value the record and when it was found (time.monotonic()).
_remembered: dict[str, tuple[ApiKey, float]] = {}
REMEMBERED_AT_MOST = 1024
REMEMBERED_FOR = 60.0  # seconds: a record's other fields (its name) are read again this often


def api_key_find_remembered(*, key: str) -> tuple[ApiKey | None, bool]:
    """The key's record, and whether it was checked active now: ``(record, True)`` as
    ``api_key_find_active`` finds it, ``(None, True)`` for a key it refuses, or ``(record, False)``
    for one found active by this process within the last ``REMEMBERED_FOR`` seconds and not read
    again. The caller of the last must verify it before acting on it (``api_key_active_check``, in
    the statement that acts), and ``api_key_forget`` it if it is no longer active: a key revoked or
    expired in any process (or by a queryset update) is refused by the first statement that acts.
    """
    digest = _hash(key)
    remembered = _remembered.get(digest)
    if remembered is not None and time.monotonic() - remembered[1] < REMEMBERED_FOR:
        return remembered[0], False
    found = api_key_find_active(key=key)
    if found is None:
        _remembered.pop(digest, None)
        return None, True
    if len(_remembered) >= REMEMBERED_AT_MOST:
        _remembered.clear()
    _remembered[digest] = (found, time.monotonic())
    return found, True


def api_key_forget(*, api_key: ApiKey) -> None:
    """Drop ``api_key`` from this process's remembered keys: the next request reads it again."""
    _remembered.pop(api_key.key_hash, None)


def api_key_active_check(*, api_key: ApiKey) -> tuple[str, list[Any]]:
    """An SQL expression (and its parameters) true while ``api_key`` is neither revoked nor expired
    and keeps its scope, for a statement that acts on its authority (PostgreSQL)."""
    table = connection.ops.quote_name(ApiKey._meta.db_table)
    return (
        f"EXISTS (SELECT 1 FROM {table} k WHERE k.id = %s AND k.scope = %s AND k.revoked_at IS NULL"
        " AND (k.expires_at IS NULL OR k.expires_at > %s))",
        [api_key.pk, api_key.scope, timezone.now()],
    )


def api_key_still_active(*, api_key: ApiKey) -> bool:
    """Whether ``api_key`` is neither revoked nor expired and keeps its scope: one statement."""
    if connection.vendor != "postgresql":
        return ApiKey.objects.filter(pk=api_key.pk, scope=api_key.scope).filter(_active_now()).exists()
    return condition_holds(*api_key_active_check(api_key=api_key))


def _active_now() -> Q:
    return Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))


def api_key_mark_used(*, api_key: ApiKey) -> None:
    """Record the key's use, at most once per LAST_USED_PRECISION (one UPDATE, not per request)."""
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def api_key_list() -> QuerySet[ApiKey]:
    return ApiKey.objects.order_by("-created_at")


def api_key_find(*, id_or_prefix: str) -> ApiKey:
    """The key with this id, or the one key whose prefix starts so; raises ApiKey.DoesNotExist."""
    if id_or_prefix.isascii() and id_or_prefix.isdigit():
        found = ApiKey.objects.filter(pk=int(id_or_prefix)).first()
        if found is None:
            raise ApiKey.DoesNotExist(f"No API key has the id {id_or_prefix}.")
        return found
    matches = list(ApiKey.objects.filter(prefix__startswith=id_or_prefix)[:2])
    if not matches:
        raise ApiKey.DoesNotExist(f"no API keys match {id_or_prefix!r}.")
    if len(matches) > 1:  # two are read, not counted: "2 API keys match" was said of four
        raise ApiKey.DoesNotExist(
            f"more than one API key matches {id_or_prefix!r}: give more of its prefix, or its id (list_api_keys)."
        )
    return matches[0]


def api_key_revoke(*, api_key: ApiKey) -> None:
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    api_key_forget(api_key=api_key)
