"""What the CSMS knows of each charger's configuration, and when and how it learned each value.

OCPP 1.6 keeps flat keys (GetConfiguration, ChangeConfiguration); OCPP 2.0.1 keeps a device model
of components, variables and their attributes (NotifyReport, GetVariables, SetVariables).
"""

from __future__ import annotations

from typing import Any

from django.db import models


class LearnedFrom(models.TextChoices):
    GET_CONFIGURATION = "GetConfiguration"
    CHANGE_CONFIGURATION = "ChangeConfiguration"
    NOTIFY_REPORT = "NotifyReport"
    GET_VARIABLES = "GetVariables"
    SET_VARIABLES = "SetVariables"


# A value sent whose command's answer did not come back (a timeout, an answer that could not be
# read, the sending process dead): the charger may have taken it, or not. The value shown is the one
# known before; the charger's configuration is read when it is next reachable (``configuration_read_owed``)
# and that read, or a later answered change, settles it (``configuration.changes.configuration_change_unanswered``).
UNCONFIRMED_HELP = (
    "Sent by a %s left unanswered: the charger may have taken it, or not (value is the one known"
    " before). The next read of the charger's configuration settles it."
)


class ConfigurationKey(models.Model):
    """One OCPP 1.6 configuration key (OCPP 1.6 §5.8 GetConfiguration, §5.3 ChangeConfiguration)."""

    # No index of its own: the unique (charge_point, key) leads with it (one index entry less per
    # key stored, six per 1.6 charger's configuration read after its first boot; issue 15).
    charge_point = models.ForeignKey(
        "chargepoints.ChargePoint", on_delete=models.CASCADE, related_name="configuration_keys", db_index=False
    )
    key = models.CharField(max_length=50)
    value = models.TextField(null=True, blank=True, help_text="None when the charger gave no value.")
    readonly = models.BooleanField(null=True, help_text="None for a key the charger does not know.")
    unknown = models.BooleanField(default=False, help_text="The charger listed it in unknownKey.")
    pending_value = models.TextField(
        null=True, blank=True, help_text="Accepted with RebootRequired: the value after the next reboot."
    )
    unconfirmed_value = models.TextField(null=True, blank=True, help_text=UNCONFIRMED_HELP % "ChangeConfiguration")
    learned_from = models.CharField(max_length=32, choices=LearnedFrom.choices)
    command = models.ForeignKey("commands.Command", on_delete=models.SET_NULL, null=True, blank=True)
    learned_at = models.DateTimeField()

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["charge_point", "key"], name="configuration_key_per_charger")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class DeviceModelVariable(models.Model):
    """One OCPP 2.0.1 variable of a component, with its characteristics (2.0.1 part 2 §B, ReportDataType)."""

    # No index of its own: the unique (charge_point, identity) leads with it (issue 15).
    charge_point = models.ForeignKey(
        "chargepoints.ChargePoint", on_delete=models.CASCADE, related_name="device_model_variables", db_index=False
    )
    component_name = models.CharField(max_length=50)
    component_instance = models.CharField(max_length=50, blank=True)
    evse_id = models.PositiveIntegerField(null=True, blank=True)
    connector_id = models.PositiveIntegerField(null=True, blank=True)
    variable_name = models.CharField(max_length=50)
    variable_instance = models.CharField(max_length=50, blank=True)
    # SHA-256 of the six parts above: one variable per charger, also where evse or connector is absent
    # (a unique constraint over nullable columns would need NULLS NOT DISTINCT, which SQLite lacks).
    identity = models.CharField(max_length=64, editable=False)
    characteristics = models.JSONField(
        null=True, blank=True, help_text="VariableCharacteristics in snake_case (data_type, unit, limits, ...)."
    )
    learned_at = models.DateTimeField()

    class Meta:
        ordering = ["component_name", "component_instance", "evse_id", "connector_id", "variable_name"]
        constraints = [
            models.UniqueConstraint(fields=["charge_point", "identity"], name="device_model_variable_per_charger")
        ]

    def __str__(self) -> str:
        return f"{self.component_name}.{self.variable_name}"

    @property
    def component(self) -> dict[str, Any]:
        """ComponentType in snake_case: name, and instance and evse (id, connector_id) where known."""
        component: dict[str, Any] = {"name": self.component_name}
        if self.component_instance:
            component["instance"] = self.component_instance
        if self.evse_id is not None:
            component["evse"] = {"id": self.evse_id}
            if self.connector_id is not None:
                component["evse"]["connector_id"] = self.connector_id
        return component

    @property
    def variable(self) -> dict[str, Any]:
        """VariableType in snake_case: name, and instance where known."""
        return {"name": self.variable_name, **({"instance": self.variable_instance} if self.variable_instance else {})}


class AttributeType(models.TextChoices):
    ACTUAL = "Actual"
    TARGET = "Target"
    MIN_SET = "MinSet"
    MAX_SET = "MaxSet"


# What a reported VariableAttributeType that leaves them out means (OCPP 2.0.1 part 2, 2.52).
ATTRIBUTE_DEFAULTS = {"mutability": "ReadWrite", "persistent": False, "constant": False}


class DeviceModelAttribute(models.Model):
    """One attribute (Actual, Target, MinSet, MaxSet) of a 2.0.1 variable."""

    # No index of its own: the unique (variable, type) leads with it (issue 15).
    variable = models.ForeignKey(
        DeviceModelVariable, on_delete=models.CASCADE, related_name="attributes", db_index=False
    )
    type = models.CharField(max_length=8, choices=AttributeType.choices, default=AttributeType.ACTUAL)
    value = models.TextField(null=True, blank=True)
    mutability = models.CharField(max_length=16, blank=True, help_text="ReadOnly, WriteOnly or ReadWrite.")
    persistent = models.BooleanField(null=True)
    constant = models.BooleanField(null=True)
    pending_value = models.TextField(
        null=True, blank=True, help_text="Accepted with RebootRequired: the value after the next reboot."
    )
    unconfirmed_value = models.TextField(null=True, blank=True, help_text=UNCONFIRMED_HELP % "SetVariables")
    learned_from = models.CharField(max_length=32, choices=LearnedFrom.choices)
    report_request_id = models.IntegerField(null=True, blank=True, help_text="NotifyReport requestId.")
    command = models.ForeignKey("commands.Command", on_delete=models.SET_NULL, null=True, blank=True)
    learned_at = models.DateTimeField()

    class Meta:
        ordering = ["type"]
        constraints = [models.UniqueConstraint(fields=["variable", "type"], name="device_model_attribute_per_type")]

    def __str__(self) -> str:
        return f"{self.variable} {self.type}={self.value}"


class DeviceModelReport(models.Model):
    """A 2.0.1 report arriving in parts (NotifyReport requestId, seqNo, tbc)."""

    # No index of its own: the unique (charge_point, request_id) leads with it (issue 15).
    charge_point = models.ForeignKey(
        "chargepoints.ChargePoint", on_delete=models.CASCADE, related_name="device_model_reports", db_index=False
    )
    request_id = models.IntegerField()
    command = models.ForeignKey("commands.Command", on_delete=models.SET_NULL, null=True, blank=True)
    parts_received = models.PositiveIntegerField(default=0)
    seq_nos = models.JSONField(default=list, blank=True, help_text="The seqNo of each part received.")
    variables_reported = models.PositiveIntegerField(default=0)
    last_seq_no = models.IntegerField(null=True, blank=True, help_text="The seqNo of the part with tbc false.")
    complete = models.BooleanField(
        default=False, help_text="Every part arrived: the one with tbc false and each seqNo from 0 up to it."
    )
    generated_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["charge_point", "request_id"], name="device_model_report_per_request")
        ]

    def __str__(self) -> str:
        return f"report {self.request_id} of {self.charge_point}"
