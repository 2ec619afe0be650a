"""Charging sessions and the charger state around them: who may charge (id tags, local lists),
reservations, transactions with their meter ledger, the reconciliation queue, and the charging
profiles a charger holds.

The models moved here from ``chargepoints`` and ``commands`` and kept their tables (``db_table``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.formats import date_format
from django.utils.timezone import localtime

from chargepoints.models import ChargePoint, OcppVersion

# --- Authorization ---------------------------------------------------------------------------


class AuthorizationStatus(models.TextChoices):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"


class IdTag(models.Model):
    """Who may charge: a 1.6 idTag or a 2.0.1 idToken (with its type)."""

    id_tag = models.CharField(
        max_length=36, help_text="1.6 idTag (max 20) or 2.0.1 idToken (max 36); matched case-insensitively."
    )
    token_type = models.CharField(
        max_length=20, blank=True, help_text="2.0.1 idToken type (ISO14443, eMAID, ...); blank matches any type."
    )
    status = models.CharField(max_length=16, choices=AuthorizationStatus.choices, default=AuthorizationStatus.ACCEPTED)
    expiry_date = models.DateTimeField(null=True, blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children", verbose_name="parent id tag"
    )
    description = models.CharField(max_length=200, blank=True)
    max_concurrent_sessions = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Sessions this id tag may have open at once on all chargers; beyond it an Authorize or a start"
        " elsewhere is answered ConcurrentTx. Blank: no limit.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "chargepoints_idtag"
        ordering = ["id_tag"]
        constraints = [models.UniqueConstraint(Lower("id_tag"), name="id_tag_unique_case_insensitive")]

    def __str__(self) -> str:
        return self.id_tag


class LocalAuthList(models.Model):
    """The local authorization list a charger holds, as far as the CSMS knows (SendLocalList)."""

    charge_point = models.OneToOneField(ChargePoint, on_delete=models.CASCADE, related_name="local_auth_list")
    version = models.IntegerField()
    entries = models.JSONField(default=dict, help_text="id tag -> status, after the last accepted update.")
    ocpp_version = models.CharField(  # db_default: the release before it inserts lists without it
        max_length=8,
        blank=True,
        default="",
        db_default="",
        help_text="The OCPP version the charger held it in (1.6, 2.0.1); empty: not known, held in either.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "chargepoints_localauthlist"

    def __str__(self) -> str:
        return f"{self.charge_point} local list v{self.version}"


# --- Reservations ----------------------------------------------------------------------------


class ReservationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REFUSED = "refused", "Refused by the charger"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    USED = "used", "Used by a transaction"


class Reservation(models.Model):
    """The CSMS's record of a ReserveNow the charger answered (1.6 connector or 2.0.1 EVSE)."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="reservations")
    reservation_id = models.IntegerField()
    connector_id = models.PositiveIntegerField(null=True, blank=True, help_text="1.6 connectorId (0: any).")
    evse_id = models.PositiveIntegerField(null=True, blank=True, help_text="2.0.1 evseId (absent: any).")
    id_tag = models.CharField(max_length=36)
    token_type = models.CharField(  # db_default: the release before it inserts reservations without it
        max_length=20,
        blank=True,
        default="",
        db_default="",
        help_text="2.0.1 idToken type (ISO14443, KeyCode, ...): only a token of that type uses it; blank: any type"
        " (1.6, or made before the type was kept).",
    )
    parent_id_tag = models.CharField(  # db_default: the release before it inserts reservations without it
        max_length=36,
        blank=True,
        default="",
        db_default="",
        help_text="1.6 parentIdTag / 2.0.1 groupIdToken: any tag of that group may use it.",
    )
    expiry_date = models.DateTimeField()
    status = models.CharField(max_length=16, choices=ReservationStatus.choices, default=ReservationStatus.ACTIVE)
    charger_status = models.CharField(max_length=32, blank=True, help_text="The charger's answer to ReserveNow.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "chargepoints_reservation"
        ordering = ["-created_at"]
        constraints = [
            # The charger holds one reservation of an id (a reused one replaces it, OCPP 1.6 §5.13,
            # 2.0.1 H01): unique among the active; the ended keep their record (a session's, say).
            models.UniqueConstraint(
                fields=["charge_point", "reservation_id"],
                condition=Q(status=ReservationStatus.ACTIVE),
                name="reservation_id_unique_while_active",
            )
        ]
        indexes = [models.Index(fields=["status", "expiry_date"])]

    def __str__(self) -> str:
        return f"reservation {self.reservation_id} on {self.charge_point} ({self.status})"


# --- Transactions and the meter ledger -------------------------------------------------------


class TransactionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"


class Transaction(models.Model):
    """A charging session, one model for both versions.

    1.6: the CSMS assigns the integer ``id`` as transactionId. 2.0.1: the charger names it
    (``ocpp_transaction_id``). ``start_key`` makes a replayed start find the same row.
    """

    # Indexed by (charge_point, status) below, which leads with it.
    charge_point = models.ForeignKey(ChargePoint, on_delete=models.PROTECT, related_name="transactions", db_index=False)
    ocpp_version = models.CharField(max_length=8, choices=OcppVersion.choices)
    ocpp_transaction_id = models.CharField(max_length=36, blank=True, help_text="2.0.1 transactionId.")
    start_key = models.CharField(max_length=200, help_text="What identifies a replay of the same start.")
    evse_id = models.PositiveIntegerField(null=True, blank=True)
    connector_id = models.PositiveIntegerField(null=True, blank=True)
    id_tag = models.CharField(max_length=36, blank=True)
    id_token_type = models.CharField(max_length=20, blank=True)
    id_tag_status = models.CharField(max_length=16, blank=True, help_text="The authorization answered at start.")
    stop_id_tag = models.CharField(max_length=36, blank=True)
    status = models.CharField(max_length=8, choices=TransactionStatus.choices, default=TransactionStatus.ACTIVE)
    started_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    charger_started_at = models.DateTimeField(
        null=True, blank=True, help_text="The start as sent, when its receipt was used instead (chargepoints.clock)."
    )
    charger_stopped_at = models.DateTimeField(
        null=True, blank=True, help_text="The stop as sent, when its receipt was used instead (chargepoints.clock)."
    )
    meter_start_wh = models.DecimalField(max_digits=20, decimal_places=3, null=True, blank=True)
    meter_stop_wh = models.DecimalField(max_digits=20, decimal_places=3, null=True, blank=True)
    last_register_wh = models.DecimalField(
        max_digits=20, decimal_places=3, null=True, blank=True, help_text="Latest energy register reading."
    )
    last_register_at = models.DateTimeField(null=True, blank=True)
    last_register_scope = models.SmallIntegerField(
        null=True,
        blank=True,
        help_text="What the latest register reading measured: its location's rank (Outlet 0, Cable 1, Inlet 2,"
        " EV 3) times 8 plus its phases (L1 1, L2 2, L3 4; a total 7). Empty: not known.",
    )
    last_sample_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Latest time of a MeterValues reading of the session, of any measurand: a message no later"
        " may be a resent copy (one without an energy register reading too).",
    )
    energy_wh = models.DecimalField(max_digits=20, decimal_places=3, null=True, blank=True)
    stop_reason = models.CharField(max_length=32, blank=True)
    closed_by_csms = models.BooleanField(default=False, help_text="Closed without a stop from the charger.")
    # db_default: the release before it inserts sessions without it
    end_unknown = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Its charger's stop told no time of its end (a restart's, stamped 1970 or unstamped): ended at"
        " the charger's boot, its time billed up to its last evidence, also when a late event re-prices it.",
    )
    idle_since = models.DateTimeField(null=True, blank=True, help_text="Connected but not charging since.")
    idle_seconds = models.PositiveIntegerField(default=0, help_text="Idle time before idle_since.")
    charging_state_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="2.0.1: the latest time a chargingState was told at (the charger's time of its event): a"
        " state arriving late but later than it is the session's state.",
    )
    charging_state_charging = models.BooleanField(
        null=True,
        blank=True,
        help_text="2.0.1: whether the state told at charging_state_at was charging (an ended session idle to its"
        " end stops being idle at a later Charging state arriving late).",
    )
    time_spent_charging = models.PositiveIntegerField(null=True, blank=True, help_text="2.0.1 timeSpentCharging.")
    # db_default: the release before it inserts sessions without it
    withheld_seconds = models.PositiveIntegerField(
        default=0,
        db_default=0,
        help_text="2.0.1: time the station withheld energy (chargingState SuspendedEVSE) before withheld_since,"
        " which an idle time taken from timeSpentCharging leaves out.",
    )
    withheld_since = models.DateTimeField(
        null=True, blank=True, help_text="2.0.1: withholding energy (SuspendedEVSE) since, while the EV was not idle."
    )
    seq_nos = models.JSONField(
        default=list,
        blank=True,
        help_text="2.0.1 seqNo values processed, ascending: a seqNo alone, or [first, last] for a run of them.",
    )
    remote_start_id = models.IntegerField(null=True, blank=True)
    # Indexed below where set (``session_reserved``): almost every session has none.
    reservation = models.ForeignKey(
        Reservation, on_delete=models.SET_NULL, null=True, blank=True, related_name="transactions", db_index=False
    )
    anomalies = models.JSONField(default=list, blank=True, help_text="Meter checks that failed (see metering).")
    # Indexed below where true (``session_needs_review``): the admin's filter of the few to review.
    needs_review = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "chargepoints_transaction"
        ordering = ["-started_at", "-id"]
        constraints = [
            # Ids and 1.6 replay keys repeat (counters reset, clocks at 1970): unique among open sessions.
            models.UniqueConstraint(
                fields=["charge_point", "start_key"],
                condition=Q(status="active"),
                name="transaction_start_unique_while_active",
            ),
        ]
        # A session's row is written again by most of its messages (its register, its seqNos): no
        # index covers what they change, and the table's fillfactor leaves room on its page
        # (migration 0005), so that such an update writes no index entry (HOT). The partial
        # indexes hold the few rows they serve, so a start or a stop writes no entry in them.
        indexes = [
            models.Index(fields=["charge_point", "status"]),
            # The admin's search by id tag, matched ignoring case as OCPP matches tags (migration 0007).
            models.Index(Lower("id_tag"), "started_at", name="session_id_tag_lower"),
            models.Index(fields=["needs_review"], condition=Q(needs_review=True), name="session_needs_review"),
            models.Index(fields=["reservation"], condition=Q(reservation__isnull=False), name="session_reserved"),
        ]

    def __str__(self) -> str:
        return f"transaction {self.ocpp_id} on {self.charge_point}"

    @property
    def ocpp_id(self) -> str:
        """The transactionId the charger uses: our integer in 1.6, its own string in 2.0.1."""
        return self.ocpp_transaction_id or str(self.pk)


class MeterSample(models.Model):
    """One sampled value exactly as received, with its normalised value (the ledger's provenance)."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="meter_samples")
    # Indexed by (transaction, measurand, timestamp) below, which leads with it.
    transaction = models.ForeignKey(
        Transaction, on_delete=models.CASCADE, null=True, blank=True, related_name="meter_samples", db_index=False
    )
    evse_id = models.PositiveIntegerField(null=True, blank=True)
    connector_id = models.PositiveIntegerField(null=True, blank=True)
    reconciliation_item = models.ForeignKey(
        "ReconciliationItem",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="meter_samples",
        help_text="The parked stop it came in; attaching the stop moves it to the transaction.",
        db_index=False,  # indexed below where set: almost every sample has none
    )
    source = models.CharField(max_length=32, help_text="The message it came in (MeterValues, StopTransaction, ...).")
    timestamp = models.DateTimeField()
    charger_timestamp = models.DateTimeField(
        null=True, blank=True, help_text="The timestamp as sent, when its receipt was used instead."
    )
    measurand = models.CharField(max_length=64)
    phase = models.CharField(max_length=8, blank=True)
    unit = models.CharField(max_length=20, blank=True)
    multiplier = models.SmallIntegerField(default=0, help_text="2.0.1 unitOfMeasure.multiplier (power of ten).")
    context = models.CharField(max_length=32, blank=True)
    location = models.CharField(max_length=16, blank=True)
    format = models.CharField(max_length=16, blank=True)
    raw_value = models.TextField(help_text="The value as received.")
    signed_data = models.JSONField(null=True, blank=True, help_text="SignedData / signedMeterValue as received.")
    value = models.DecimalField(
        max_digits=24, decimal_places=6, null=True, blank=True, help_text="In the base unit (Wh, W, A, V, ...)."
    )
    received_at = models.DateTimeField()

    class Meta:
        db_table = "chargepoints_metersample"
        ordering = ["timestamp", "id"]
        indexes = [
            models.Index(fields=["transaction", "measurand", "timestamp"]),
            models.Index(
                fields=["reconciliation_item"],
                condition=Q(reconciliation_item__isnull=False),
                name="meter_sample_parked",
            ),
        ]

    def __str__(self) -> str:
        at = date_format(localtime(self.timestamp), "DATETIME_FORMAT")
        return f"{self.measurand} {self.raw_value} {self.unit} at {at}"


# --- Reconciliation --------------------------------------------------------------------------


class ReconciliationReason(models.TextChoices):
    UNKNOWN_TRANSACTION = "unknown_transaction", "Stop for an unknown transaction"
    INVALID_TRANSACTION_ID = "invalid_transaction_id", "Stop with transactionId -1"
    ALREADY_STOPPED = "already_stopped", "Second stop for a stopped transaction"
    NULL_ID_TAG = "null_id_tag", "Stop with a null idTag"


class ReconciliationState(models.TextChoices):
    OPEN = "open", "Open"
    ATTACHED = "attached", "Attached to a transaction"
    DISCARDED = "discarded", "Discarded"


class ReconciliationItem(models.Model):
    """A stop the CSMS acknowledged but could not simply apply; an operator resolves it."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.PROTECT, related_name="reconciliation_items")
    reason = models.CharField(max_length=32, choices=ReconciliationReason.choices)
    state = models.CharField(max_length=16, choices=ReconciliationState.choices, default=ReconciliationState.OPEN)
    action = models.CharField(max_length=64)
    ocpp_transaction_id = models.CharField(max_length=36, blank=True, help_text="As the charger sent it.")
    payload = models.JSONField(help_text="The message as received.")
    meter_stop_wh = models.DecimalField(max_digits=20, decimal_places=3, null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=32, blank=True)
    id_tag = models.CharField(max_length=36, blank=True)
    seq_no = models.BigIntegerField(null=True, blank=True, help_text="2.0.1 seqNo of the parked event.")
    transaction = models.ForeignKey(
        Transaction, on_delete=models.SET_NULL, null=True, blank=True, related_name="reconciliation_items"
    )
    received_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)

    class Meta:
        db_table = "chargepoints_reconciliationitem"
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["state", "received_at"])]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} from {self.charge_point} ({self.state})"


# --- Charging profiles ---------------------------------------------------------------------


class InstalledChargingProfile(models.Model):
    """A charging profile the CSMS believes is installed: set when the charger accepted it,
    removed when a ClearChargingProfile it accepted matched it, or (a TxProfile) when a profile command
    is answered after its transaction ended or never came (``charging_profiles_held``). One of the
    OCPP version the charger no longer speaks (moved from 1.6 to 2.0.1 or back under the same id) is
    not held (``charging.selectors.profiles_of_their_version``) and goes at its next profile answer."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="charging_profiles")
    connector_id = models.PositiveIntegerField(help_text="1.6 connectorId or 2.0.1 evseId; 0 is the whole station.")
    profile_id = models.IntegerField()
    purpose = models.CharField(
        max_length=64, help_text="ChargingProfilePurposeType: up to 34 characters (ChargingStationExternalConstraints)."
    )
    stack_level = models.IntegerField()
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_to = models.DateTimeField(null=True, blank=True)
    profile = models.JSONField()
    ocpp_version = models.CharField(
        max_length=8,
        blank=True,
        default="",
        help_text="The OCPP version the charger accepted it in (1.6, 2.0.1); empty: not known, held in either.",
    )
    installed_at = models.DateTimeField(auto_now=True)
    awaited_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A remote start's TxProfile: until when the charger waits for the EV (its connection timeout"
        " after it accepted the start). Empty: a profile no remote start installed.",
    )

    class Meta:
        db_table = "commands_installedchargingprofile"
        constraints = [
            models.UniqueConstraint(
                fields=["charge_point", "connector_id", "profile_id"], name="charging_profile_unique_per_connector"
            )
        ]

    def __str__(self) -> str:
        return f"profile {self.profile_id} on {self.charge_point} connector {self.connector_id}"


class ExternalChargingLimit(models.Model):
    """A limit on a 2.0.1 station set by another source than the CSMS (NotifyChargingLimit, K12: an
    energy manager, the grid operator, a local controller), in force until the station reports it
    released (ClearedChargingLimit, K13). One per station, EVSE and source: a new notification
    replaces the last."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="external_limits")
    evse_id = models.PositiveIntegerField(help_text="The EVSE it limits; 0: the whole station.")
    source = models.CharField(max_length=20, help_text="ChargingLimitSourceEnumType: EMS, Other, SO, CSO.")
    grid_critical = models.BooleanField(null=True, blank=True, help_text="isGridCritical as reported; empty: not said.")
    schedules = models.JSONField(
        default=list, blank=True, help_text="The station's chargingSchedule list as sent (camelCase); empty: none."
    )
    reported_at = models.DateTimeField(help_text="When the CSMS received the notification.")

    class Meta:
        ordering = ["-reported_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["charge_point", "evse_id", "source"], name="external_limit_per_source")
        ]

    def __str__(self) -> str:
        return f"{self.source} limit on {self.charge_point} EVSE {self.evse_id}"


class EvChargingNeeds(models.Model):
    """What an EV told a 2.0.1 station it needs over ISO 15118 (NotifyEVChargingNeeds, K15; again
    when it renegotiates, K16): when it leaves and how much energy it wants. The CSMS answers it
    Rejected (it computes no schedule from it) and keeps it for the operator, with the session open
    on that EVSE when it came (none: the station starts its transaction later)."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="ev_charging_needs")
    evse_id = models.PositiveIntegerField()
    transaction = models.ForeignKey(
        Transaction, on_delete=models.SET_NULL, null=True, blank=True, related_name="ev_charging_needs"
    )
    requested_energy_transfer = models.CharField(
        max_length=32, help_text="EnergyTransferModeEnumType, e.g. AC_three_phase."
    )
    departure_time = models.DateTimeField(
        null=True, blank=True, help_text="When the EV means to leave; empty: not said."
    )
    energy_amount_wh = models.PositiveIntegerField(null=True, blank=True, help_text="The energy it asks for, Wh.")
    needs = models.JSONField(help_text="chargingNeeds as sent (camelCase): the EV's limits and state of charge.")
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["charge_point", "-received_at"])]
        verbose_name = verbose_name_plural = "EV charging needs"

    def __str__(self) -> str:
        return f"EV needs on {self.charge_point} EVSE {self.evse_id}"
