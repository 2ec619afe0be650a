from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class CommandState(models.TextChoices):
    PENDING = "pending", "Pending (in flight)"
    ACCEPTED = "accepted", "Accepted"
    REBOOT_REQUIRED = "reboot_required", "Accepted, effective after a reboot"
    REJECTED = "rejected", "Rejected by the charger"
    INVALID_RESPONSE = "invalid_response", "Answer breaks the OCPP response schema"
    CALL_ERROR = "call_error", "CALLERROR from the charger"
    TIMEOUT = "timeout", "No answer in time"
    NOT_CONNECTED = "not_connected", "Charger not connected"


class Command(models.Model):
    """One OCPP command sent to a charger: the audit log and the idempotency record."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    charge_point = models.ForeignKey(  # indexed by command_charger_latest, which leads with it
        "chargepoints.ChargePoint", on_delete=models.SET_NULL, null=True, related_name="commands", db_index=False
    )
    charge_point_identity = models.CharField(max_length=48, db_index=True)
    ocpp_version = models.CharField(max_length=8)
    command = models.CharField(max_length=64)
    action = models.CharField(max_length=64)
    request = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=CommandState.choices, default=CommandState.PENDING)
    response = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_description = models.TextField(blank=True)
    # db_default: the release before it records commands without it.
    error_details = models.JSONField(
        default=dict,
        db_default={},
        blank=True,
        help_text="A CALLERROR's errorDetails as the charger sent them (vendor data, at most 4 KiB of JSON).",
    )
    response_violations = models.JSONField(
        default=dict, blank=True, help_text="How the charger's answer breaks the OCPP response schema, per field."
    )
    # Who asked (``requested_by``) stays on the audit: a key or login that sent commands is revoked
    # or deactivated, not deleted (deleted, its commands would read as the CSMS's own).
    api_key = models.ForeignKey("kernel.ApiKey", on_delete=models.PROTECT, null=True, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    # What was asked under that key (``commands.services.request_fingerprint``): the same key with
    # another request is refused instead of replaying this command's answer.
    request_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("send_command", "Can send OCPP commands to charge points")]
        # A charger's latest commands: its command list, and the recent configuration read a boot asks for.
        indexes = [models.Index(fields=["charge_point", "-created_at"], name="command_charger_latest")]
        # No index covers what a completion writes (state, answer, error, times): the table's
        # fillfactor leaves room on the row's page (migration 0008) so that it may stay there (HOT).
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="command_idempotency_key_per_api_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} to {self.charge_point_identity} ({self.state})"

    @property
    def requested_by(self) -> str:
        """Who asked: ``api-key:<name>``, ``user:<username>`` (the admin), or ``csms`` for a command
        the CSMS sends of its own accord (the configuration read after a boot, a site's limits, a
        firmware campaign's wave)."""
        if self.api_key_id:
            return f"api-key:{self.api_key}"
        if self.user_id:
            return f"user:{self.user}"
        return "csms"
