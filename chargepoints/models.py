from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.formats import date_format
from django.utils.timezone import localtime


class OcppVersion(models.TextChoices):
    V16 = "1.6", "OCPP 1.6"
    V201 = "2.0.1", "OCPP 2.0.1"


class LifecycleState(models.TextChoices):
    PENDING = "pending", "Pending"
    COMMISSIONED = "commissioned", "Commissioned"
    DECOMMISSIONED = "decommissioned", "Decommissioned"


# The heartbeat intervals the CSMS keeps for a charger, s: the API's, the admin's and those a charger takes.
HEARTBEAT_INTERVAL_MIN, HEARTBEAT_INTERVAL_MAX = 1, 86_400


class ChargePoint(models.Model):
    """A charger, identified by the id in its WebSocket URL."""

    charge_point_id = models.CharField(max_length=48, unique=True)
    ocpp_version = models.CharField(max_length=8, choices=OcppVersion.choices, blank=True)
    lifecycle_state = models.CharField(
        max_length=16, choices=LifecycleState.choices, default=LifecycleState.COMMISSIONED
    )
    heartbeat_interval = models.PositiveIntegerField(
        help_text="Seconds between heartbeats.",
        validators=[MinValueValidator(HEARTBEAT_INTERVAL_MIN), MaxValueValidator(HEARTBEAT_INTERVAL_MAX)],
    )
    vendor = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=50, blank=True)
    serial_number = models.CharField(max_length=50, blank=True)
    firmware_version = models.CharField(max_length=50, blank=True)
    iccid = models.CharField(max_length=20, blank=True)
    imsi = models.CharField(max_length=20, blank=True)
    # 1.6 BootNotification meterType and meterSerialNumber (2.0.1's boot has none: blank). db_default:
    # the release before them registers chargers without them.
    meter_type = models.CharField(max_length=25, blank=True, default="", db_default="")
    meter_serial_number = models.CharField(max_length=25, blank=True, default="", db_default="")
    connected = models.BooleanField(default=False)
    last_seen = models.DateTimeField(null=True, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    last_boot_at = models.DateTimeField(null=True, blank=True)
    # The interval (s) the charger may still heartbeat at: heartbeat_interval was changed since it
    # last took one (a push answered RebootRequired or refused, an edit while it was away). Its next
    # boot, whose answer carries heartbeat_interval, or a push answered Accepted clears it; the
    # offline sweep waits for the longer of the two meanwhile (chargepoints.services.heartbeat_pace).
    previous_heartbeat_interval = models.PositiveIntegerField(null=True, blank=True)
    # The interval (s) its last configuration read found the charger keeping instead of
    # heartbeat_interval (a read-only key, a firmware ignoring the boot answer's interval): boots do
    # not clear it (they change nothing for such a charger); a read giving heartbeat_interval or a
    # push answered Accepted does. The offline sweep waits for the longest of the three.
    reported_heartbeat_interval = models.PositiveIntegerField(null=True, blank=True)
    # The interval (s) a push left unanswered (its ChangeConfiguration or SetVariables timed out) may
    # have set: the charger heartbeats at it or at the one it had, the CSMS does not know which. The
    # record keeps heartbeat_interval (no guess); the offline sweep waits for the longest meanwhile. The
    # configuration read owed then settles it: a read giving it makes it heartbeat_interval (taken), any
    # other clears it; so do a boot (its answer carries heartbeat_interval) and a push answered.
    unconfirmed_heartbeat_interval = models.PositiveIntegerField(null=True, blank=True)
    # The first boot reporting the vendor, model and firmware version the charger has now (null:
    # not known, at most its last boot): a configuration read since then read this firmware.
    identity_booted_at = models.DateTimeField(null=True, blank=True)
    # A configuration read after its boot was not answered on its connection (closed first, or the
    # CALL timed out): the next connection reads it, even without a new boot; cleared by its answer.
    configuration_read_owed = models.BooleanField(default=False, db_default=False)
    # Its last BootNotification was answered Pending (it was not commissioned then): commissioned
    # since, it is asked to boot again (TriggerMessage BootNotification) when it connects, instead of
    # waiting out its Pending interval. Each boot writes it (its answer's status); db_default: the
    # release before it writes no such thing.
    boot_pending = models.BooleanField(default=False, db_default=False)
    offline_since = models.DateTimeField(null=True, blank=True)
    # The units the charger takes a charging profile's limit in, as its configuration last gave them
    # (1.6 ChargingScheduleAllowedChargingRateUnit, 2.0.1 SmartChargingCtrlr.RateUnit): "A", "W" or
    # "A,W"; blank: not known (taken as A). Written by the configuration app (``services.rate_units``),
    # read by the site engine, which sends a charger taking W alone its limits in W.
    charging_rate_units = models.CharField(
        max_length=3,
        blank=True,
        default="",
        db_default="",
        help_text="The units it takes a charging profile's limit in, as its configuration gave them: A, W or A,W;"
        " blank: not known (A). A site sends a charger taking W alone its limits in W.",
    )
    password_hash = models.CharField(max_length=128, blank=True)
    password_hash_after_reboot = models.CharField(
        max_length=128,
        blank=True,
        default="",
        db_default="",
        help_text="A password the charger accepted to use after its next reboot (answered RebootRequired): "
        "admitted beside the current one until the charger first presents it, which makes it the current one.",
    )
    password_hash_after_reboot_earlier = models.CharField(
        max_length=128,
        blank=True,
        default="",
        db_default="",
        help_text="The candidate password a newer one replaced before either was confirmed (a rotation started twice): "
        "admitted too until the charger presents one of them.",
    )
    tariff = models.ForeignKey(
        "billing.Tariff",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="charge_points",
        help_text="Blank: the default tariff applies.",
    )
    # Presence: the channel-layer name of the consumer that holds this charger's socket.
    connection_channel = models.CharField(max_length=200, blank=True)
    # When the handshake that last took presence began (its gateway's clock): the attach of a
    # handshake that began earlier never takes presence from it (it was abandoned meanwhile).
    handshake_started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["charge_point_id"]
        # No index covers last_seen (nor anything else a message writes): a message's update of its
        # charger's row then stays on the row's page and writes no index entry (HOT; the table's
        # fillfactor leaves room, migration 0008). The offline sweep reads the table, which is small.
        # The pending chargers alone (auto-registration's cap counts them at an unknown charger's
        # handshake): a message writes neither column, its update stays HOT.
        indexes = [
            models.Index(fields=["id"], condition=Q(lifecycle_state="pending"), name="charge_point_pending"),
        ]

    def __str__(self) -> str:
        return self.charge_point_id


class Connector(models.Model):
    """A connector of a charger. OCPP 1.6 has no EVSE level: evse_id stays null there."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="connectors")
    evse_id = models.PositiveIntegerField(null=True, blank=True)
    connector_id = models.PositiveIntegerField()
    status = models.CharField(max_length=32, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    info = models.CharField(max_length=50, blank=True)
    vendor_id = models.CharField(max_length=255, blank=True)
    vendor_error_code = models.CharField(max_length=50, blank=True)
    status_timestamp = models.DateTimeField(null=True, blank=True)
    charger_timestamp = models.DateTimeField(
        null=True, blank=True, help_text="The status's timestamp as sent, when its receipt was used instead."
    )
    status_time_received = models.BooleanField(
        default=False,
        db_default=False,
        help_text="The status's time is its receipt (the charger's absent or implausible): a later status "
        "is not judged older by it.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["charge_point", "evse_id", "connector_id"]
        # No index covers what a status writes: its update stays on the row's page (HOT; the
        # table's fillfactor leaves room, migration 0011) and writes no index entry.
        constraints = [
            models.UniqueConstraint(
                fields=["charge_point", "connector_id"],
                condition=Q(evse_id__isnull=True),
                name="connector_unique_without_evse",
            ),
            models.UniqueConstraint(
                fields=["charge_point", "evse_id", "connector_id"],
                condition=Q(evse_id__isnull=False),
                name="connector_unique_within_evse",
            ),
        ]

    def __str__(self) -> str:
        where = f"EVSE {self.evse_id} " if self.evse_id is not None else ""
        return f"{self.charge_point} {where}connector {self.connector_id}"


class Heartbeat(models.Model):
    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="heartbeats")
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.charge_point} at {date_format(localtime(self.received_at), 'DATETIME_FORMAT')}"


class MessageDirection(models.TextChoices):
    INBOUND = "in", "Charger to CSMS"
    OUTBOUND = "out", "CSMS to charger"


class OcppMessage(models.Model):
    """One WebSocket frame, exactly as it went over the wire."""

    # Indexed by (charge_point, -created_at) below, which leads with it. No foreign key constraint
    # in the database: PostgreSQL's check of it, a locking read of the charger's row per logged
    # frame, was about 3-5 µs of its CPU a frame, 10-16 µs per persisted message (issue 15). The
    # writer keeps only frames of chargers it found or keeps (``ocpp_messages_record``: a charger
    # deleted through the ORM is forgotten by every process) and deleting a charger deletes its
    # log (``on_delete``); a frame flushed while its charger is deleted (or within
    # ``CHARGER_PKS_KEPT_SECONDS`` of a delete without a signal) may outlive it until the log's
    # prune (``ocpp_messages_prune``).
    charge_point = models.ForeignKey(
        ChargePoint, on_delete=models.CASCADE, related_name="messages", db_index=False, db_constraint=False
    )
    direction = models.CharField(max_length=3, choices=MessageDirection.choices)
    message_type = models.PositiveSmallIntegerField(null=True, blank=True)
    # Indexed below for exact matches only (no LIKE twin: nothing searches the log by a prefix).
    unique_id = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=64, blank=True)
    frame = models.TextField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["charge_point", "-created_at"]),
            models.Index(fields=["unique_id"], name="ocpp_message_unique_id"),
        ]

    def __str__(self) -> str:
        return f"{self.charge_point} {self.direction} {self.action or self.message_type}"


# --- Chargers that break the schema ----------------------------------------------------------


class Strictness(models.TextChoices):
    STRICT = "strict", "Strict: every schema violation is a CALLERROR"
    LENIENT = "lenient", "Lenient with audit: known harmless violations are accepted and recorded"


class ChargerModelProfile(models.Model):
    """How strictly the gateway treats one charger model (and firmware line), and its quirks.

    Chargers of a model without a profile are treated strictly, with no quirks.
    """

    vendor = models.CharField(max_length=50, help_text="As in BootNotification; matched case-insensitively.")
    model = models.CharField(
        max_length=50, blank=True, help_text="As in BootNotification; blank matches every model of the vendor."
    )
    firmware_version_prefix = models.CharField(
        max_length=50, blank=True, help_text="Matches firmware versions that start with it; blank matches any."
    )
    strictness = models.CharField(max_length=8, choices=Strictness.choices, default=Strictness.STRICT)
    quirks = models.JSONField(default=list, blank=True, help_text="Payload fixups applied to this model's messages.")
    id_tag_suffix = models.CharField(
        max_length=100,
        blank=True,
        help_text="Regular expression of a suffix strip_idtag_suffix removes from idTags, e.g. ':\\d+' or '-0'.",
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["vendor", "model", "firmware_version_prefix"]
        constraints = [
            models.UniqueConstraint(
                Lower("vendor"), Lower("model"), "firmware_version_prefix", name="charger_model_profile_unique"
            )
        ]

    def __str__(self) -> str:
        model = f"{self.vendor} {self.model or '(any model)'}"
        return f"{model} firmware {self.firmware_version_prefix}*" if self.firmware_version_prefix else model


class SchemaViolation(models.Model):
    """A schema violation the CSMS accepted (a session message, or a lenient profile's message):
    what the charger sent, where, in which frame, and when."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="schema_violations")
    action = models.CharField(max_length=64)
    path = models.CharField(max_length=200, help_text="Where in the payload, e.g. meterValue/0/sampledValue/1/unit.")
    validator = models.CharField(max_length=32, help_text="The JSON schema keyword that failed: enum, maxLength.")
    value = models.CharField(max_length=200, help_text="The value as received (its first 200 characters).")
    frame = models.TextField(blank=True, help_text="The whole frame as received.")
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["charge_point", "-received_at"]),
            # The message log's prune deletes those received before its cutoff (``ocpp_messages_prune``).
            models.Index(fields=["received_at"], name="schema_violation_received"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.path} ({self.validator}) from {self.charge_point}"


class SecurityEvent(models.Model):
    """A security event a charger reported (SecurityEventNotification: OCPP 1.6 security whitepaper
    §4.3, 2.0.1 A04), kept for the operator beyond the message log's retention. ``timestamp`` is
    the charger's (when it happened), ``received_at`` the CSMS's. The same event sent again (the
    same type, time and details: a replay after a lost answer) is kept once; of a time the CSMS
    cannot read, the same time as sent (``timestamp_sent``)."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="security_events")
    event_type = models.CharField(
        max_length=50, help_text="As the charger named it, e.g. TamperDetectionActivated, InvalidFirmwareSignature."
    )
    timestamp = models.DateTimeField(help_text="When it happened, by the charger's clock.")
    tech_info = models.CharField(max_length=255, blank=True, help_text="The charger's details, if any.")
    timestamp_sent = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_default="",
        help_text="The time as sent, when unreadable (its receipt is the timestamp then): a resend repeats it.",
    )
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["charge_point", "timestamp", "event_type", "tech_info"], name="security_event_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} on {self.charge_point}"
