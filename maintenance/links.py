"""The URLs chargers use: signed, expiring firmware downloads and single-use diagnostics uploads.

Both are built on ``CSMS_PUBLIC_URL`` (the address chargers reach, the proxy's behind TLS).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import urllib.parse
import uuid

from django.conf import settings
from django.core import signing
from django.urls import reverse

_FIRMWARE_SALT = "maintenance.firmware-download"


class LinkRefused(Exception):
    """The link is forged, expired or spent."""


def firmware_download_url(*, firmware_id: str, ttl: int | None = None) -> str:
    """An absolute URL for the file, valid for ``ttl`` s (default ``CSMS_FIRMWARE_URL_TTL``)."""
    expires = int(time.time()) + (ttl or settings.CSMS_FIRMWARE_URL_TTL)
    token = signing.dumps({"f": firmware_id, "e": expires}, salt=_FIRMWARE_SALT, compress=True)
    return settings.CSMS_PUBLIC_URL + reverse("firmware-download", kwargs={"token": token})


def firmware_download_verify(*, token: str) -> str:
    """The firmware id a download token grants. Raises LinkRefused if forged or expired."""
    try:
        claims = signing.loads(token, salt=_FIRMWARE_SALT)
    except signing.BadSignature:
        raise LinkRefused("The download link is not valid.") from None
    if not isinstance(claims, dict) or int(claims.get("e", 0)) < time.time():
        raise LinkRefused("The download link has expired.")
    return str(claims["f"])


def firmware_linked(*, location: str) -> str | None:
    """The firmware id a CSMS download link (``firmware_download_url``) names, expired or not; None
    for any other location (an operator's server, a forged token)."""
    path = urllib.parse.urlsplit(location).path
    marker = path.rfind(_FIRMWARE_PATH)
    if marker < 0:
        return None
    try:
        claims = signing.loads(path[marker + len(_FIRMWARE_PATH) :], salt=_FIRMWARE_SALT)
    except signing.BadSignature:
        return None
    try:
        return str(uuid.UUID(str(claims["f"]))) if isinstance(claims, dict) else None
    except (KeyError, ValueError):
        return None


_FIRMWARE_PATH = "/firmware/download/"


def upload_token_new() -> tuple[str, str]:
    """A fresh upload token and its SHA-256 (hex), which is all the database keeps."""
    token = secrets.token_urlsafe(32)
    return token, upload_token_digest(token)


def upload_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def diagnostics_upload_url(*, token: str) -> str:
    return settings.CSMS_PUBLIC_URL + reverse("diagnostics-upload", kwargs={"token": token})
