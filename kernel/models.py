"""The API key model: every app's API authenticates with it (it moved here from ``csms`` and kept its table)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ApiKeyScope(models.TextChoices):
    FULL = "full", "Full access"
    READ_ONLY = "read_only", "Read only (no commands, no changes)"


class ApiKey(models.Model):
    """A Bearer key for the REST API. Only its SHA-256 is stored; the key is shown once."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=16, choices=ApiKeyScope.choices, default=ApiKeyScope.FULL)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Refused from this moment on.")
    last_used_at = models.DateTimeField(
        null=True, blank=True, help_text="The last authenticated request (recorded at most once a minute)."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "csms_apikey"
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())
