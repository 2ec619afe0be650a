"""Operator forms for the admin's commands panel: each turns what an operator types into the
catalog command and its snake_case body for the charger's OCPP version.

The body then goes through ``commands.services.command_send``, exactly as an API request would.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, ClassVar, cast

from django import forms

from chargepoints.models import HEARTBEAT_INTERVAL_MAX, HEARTBEAT_INTERVAL_MIN, ChargePoint, OcppVersion
from charging.selectors import charge_point_open_transaction
from kernel.schemas import INT32_RANGE

V16 = OcppVersion.V16
_INTEGER = re.compile(r"-?[0-9]{1,10}")

RESET_TYPES = {
    "1.6": [
        ("Soft", "Soft: restart the software, ending sessions cleanly"),
        ("Hard", "Hard: reboot the hardware at once"),
    ],
    "2.0.1": [
        ("Immediate", "Immediate: reboot now, ending any session"),
        ("OnIdle", "OnIdle: reboot once no session is running"),
    ],
}

TRIGGERABLE_MESSAGES = {
    "1.6": [
        "StatusNotification",
        "BootNotification",
        "Heartbeat",
        "MeterValues",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
    ],
    "2.0.1": [
        "StatusNotification",
        "BootNotification",
        "Heartbeat",
        "MeterValues",
        "TransactionEvent",
        "LogStatusNotification",
        "FirmwareStatusNotification",
        "PublishFirmwareStatusNotification",
        "SignChargingStationCertificate",
        "SignV2GCertificate",
        "SignCombinedCertificate",
    ],
}

AVAILABILITY = [("Operative", "Operative (available)"), ("Inoperative", "Inoperative (unavailable)")]

ID_TOKEN_TYPES = ["ISO14443", "ISO15693", "eMAID", "KeyCode", "Local", "MacAddress", "Central", "NoAuthorization"]

# A 2.0.1 remoteStartId is ours to choose; the charger echoes it in its TransactionEvent.
REMOTE_START_ID_LIMIT = 2**31 - 1


class CommandForm(forms.Form):
    """One command of the panel, bound to a charger whose OCPP version is known."""

    name: ClassVar[str]  # what the panel and its URL call the command
    label: ClassVar[str]  # what operators read ("Reset sent to CP-1")

    def __init__(self, *args: Any, charge_point: ChargePoint, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"id_{self.name}_%s")
        super().__init__(*args, **kwargs)
        self.charge_point = charge_point
        self.version = charge_point.ocpp_version

    def command_body(self) -> tuple[str, dict[str, Any]]:
        """The catalog command name and its snake_case body; call after ``is_valid()``."""
        raise NotImplementedError


def _connector_field(label: str, help_text: str, *, required: bool = False, min_value: int = 0) -> forms.IntegerField:
    return forms.IntegerField(label=label, required=required, min_value=min_value, help_text=help_text)


class ResetForm(CommandForm):
    name = "reset"
    label = "Reset"

    type = forms.ChoiceField(label="Reset type")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["type"]).choices = RESET_TYPES[self.version]

    def command_body(self) -> tuple[str, dict[str, Any]]:
        return "reset", {"type": self.cleaned_data["type"]}


class ChangeAvailabilityForm(CommandForm):
    name = "change_availability"
    label = "Change availability"

    connector = _connector_field("Connector", "0: the whole charger.")
    status = forms.ChoiceField(label="Make it", choices=AVAILABILITY)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connector"].initial = 0
        if self.version != V16:
            self.fields["connector"].label = "EVSE"
            self.fields["connector"].help_text = "Blank or 0: the whole charging station."

    def command_body(self) -> tuple[str, dict[str, Any]]:
        connector, status = self.cleaned_data["connector"] or 0, self.cleaned_data["status"]
        if self.version == V16:
            return "change_availability", {"connector_id": connector, "type": status}
        body: dict[str, Any] = {"operational_status": status}
        if connector:
            body["evse"] = {"id": connector}
        return "change_availability", body


class TriggerMessageForm(CommandForm):
    name = "trigger_message"
    label = "Trigger message"

    requested_message = forms.ChoiceField(label="Message")
    connector = _connector_field("Connector", "Optional; blank: the whole charger.", min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(m, m) for m in TRIGGERABLE_MESSAGES[self.version]]
        cast(forms.ChoiceField, self.fields["requested_message"]).choices = choices
        if self.version != V16:
            self.fields["connector"].label = "EVSE"
            self.fields[
                "connector"
            ].help_text = "Optional; blank: the whole charger. A StatusNotification names its EVSE (F06.FR.13)."

    def command_body(self) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"requested_message": self.cleaned_data["requested_message"]}
        connector = self.cleaned_data["connector"]
        if connector is not None:
            body.update({"connector_id": connector} if self.version == V16 else {"evse": {"id": connector}})
        return "trigger_message", body


class RemoteStartForm(CommandForm):
    name = "remote_start"
    label = "Remote start"

    id_tag = forms.CharField(label="Id token", max_length=36)
    token_type = forms.ChoiceField(label="Token type", choices=[(t, t) for t in ID_TOKEN_TYPES])
    connector = _connector_field("EVSE", "Optional; blank: the charger chooses.", min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.version == V16:
            self.fields["id_tag"] = forms.CharField(label="Id tag", max_length=20)
            self.fields["connector"].label = "Connector"
            del self.fields["token_type"]

    def command_body(self) -> tuple[str, dict[str, Any]]:
        id_tag, connector = self.cleaned_data["id_tag"], self.cleaned_data["connector"]
        if self.version == V16:
            body: dict[str, Any] = {"id_tag": id_tag}
            if connector is not None:
                body["connector_id"] = connector
            return "remote_start_transaction", body
        body = {
            "id_token": {"id_token": id_tag, "type": self.cleaned_data["token_type"]},
            "remote_start_id": secrets.randbelow(REMOTE_START_ID_LIMIT) + 1,
        }
        if connector is not None:
            body["evse_id"] = connector
        return "request_start_transaction", body


class RemoteStopForm(CommandForm):
    name = "remote_stop"
    label = "Remote stop"

    transaction_id = forms.CharField(
        label="Transaction id", required=False, max_length=36, help_text="Blank: the charger's open session."
    )

    def clean_transaction_id(self) -> str:
        transaction_id = self.cleaned_data["transaction_id"].strip()
        if not transaction_id:
            session = charge_point_open_transaction(charge_point=self.charge_point)
            if session is None:
                raise forms.ValidationError(f"{self.charge_point} has no open session; give a transaction id.")
            transaction_id = session.ocpp_id
        if self.version == V16 and not _INTEGER.fullmatch(transaction_id):  # ASCII: "³" is a digit to isdigit
            raise forms.ValidationError("An OCPP 1.6 transaction id is a number.")
        if self.version == V16 and int(transaction_id) not in INT32_RANGE:
            raise forms.ValidationError("An OCPP 1.6 transaction id is a 32-bit integer.")
        return transaction_id

    def command_body(self) -> tuple[str, dict[str, Any]]:
        transaction_id = self.cleaned_data["transaction_id"]
        if self.version == V16:
            return "remote_stop_transaction", {"transaction_id": int(transaction_id)}
        return "request_stop_transaction", {"transaction_id": transaction_id}


class UnlockConnectorForm(CommandForm):
    name = "unlock_connector"
    label = "Unlock connector"

    evse = _connector_field("EVSE", "", required=True, min_value=1)
    connector = _connector_field("Connector", "", required=True, min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.version == V16:
            del self.fields["evse"]
        else:
            self.fields["connector"].help_text = "Within the EVSE (usually 1)."
            self.fields["connector"].initial = 1

    def command_body(self) -> tuple[str, dict[str, Any]]:
        if self.version == V16:
            return "unlock_connector", {"connector_id": self.cleaned_data["connector"]}
        return "unlock_connector", {
            "evse_id": self.cleaned_data["evse"],
            "connector_id": self.cleaned_data["connector"],
        }


class ChangeHeartbeatIntervalForm(CommandForm):
    """Stored on the charger and pushed to it (``heartbeat_interval_push``); no body of its own."""

    name = "change_heartbeat_interval"
    label = "Heartbeat interval change"

    interval = forms.IntegerField(label="Seconds", min_value=HEARTBEAT_INTERVAL_MIN, max_value=HEARTBEAT_INTERVAL_MAX)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["interval"].initial = self.charge_point.heartbeat_interval


COMMAND_FORMS: dict[str, type[CommandForm]] = {
    form.name: form
    for form in (
        ResetForm,
        ChangeAvailabilityForm,
        TriggerMessageForm,
        RemoteStartForm,
        RemoteStopForm,
        UnlockConnectorForm,
        ChangeHeartbeatIntervalForm,
    )
}
