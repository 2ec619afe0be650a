"""What a command's outcome records on its row: the state a charger's answer (or its silence) gives,
shared by its completion alone (``services.command_complete``) and a batch's completions written
ahead (``outcome_writes``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from commands import catalog, charger_passwords
from commands.models import Command, CommandState
from commands.rpc import CallOutcome, Outcome

# Statuses by which a charger refuses a command (docs/architecture.md, API: 409 with that status).
REFUSING_STATUSES = frozenset(
    {
        "Rejected",
        "Occupied",
        "Faulted",
        "Unavailable",
        "NotImplemented",
        "NotSupported",
        "UnlockFailed",
        "UnknownConnector",
        "OngoingAuthorizedTransaction",
        "UnknownMessageId",
        "UnknownVendorId",
        "VersionMismatch",
        "Failed",
        "UnknownComponent",
        "UnknownVariable",
        "NotSupportedAttributeType",
        "InvalidCertificate",  # 2.0.1 UpdateFirmware (L01): the signing certificate failed its checks
        "RevokedCertificate",
    }
)
REBOOT_REQUIRED = "RebootRequired"

# The columns an outcome writes (``outcome_applied``'s).
OUTCOME_FIELDS = [
    "state",
    "response",
    "response_violations",
    "error_code",
    "error_description",
    "error_details",
    "latency_ms",
    "completed_at",
]
# The most of a CALLERROR's errorDetails a command keeps, as JSON text (a frame may carry 64 KiB of them).
ERROR_DETAILS_MAX_CHARS = 4096
_ERROR_CODE_MAX_LENGTH: int = Command._meta.get_field("error_code").max_length  # type: ignore[assignment]  # a CharField's
# The states of a charger's answer (its route, if any, follows it: ``routes.answer_follow``); a
# lenient model's answer passed on (``answer_passed_on``) is answered too.
ANSWERED_STATES = (CommandState.ACCEPTED, CommandState.REBOOT_REQUIRED, CommandState.REJECTED)
# A lenient model's answer with a status the spec does not list: its state and description.
PASSED_ON = (
    "The charge point's answer has a status the OCPP response schema does not list: passed on as it came,"
    " and no acceptance the CSMS acts on."
)


def outcome_applied(command: Command, outcome: CallOutcome, *, completed_at: datetime) -> None:
    """Set ``OUTCOME_FIELDS`` on ``command`` (not saved) for ``outcome``: its state
    (``state_for``), the answer in snake_case (a CALLRESULT, valid or not; a charger password it
    reports redacted), its violations, the CALLERROR's code, description and details
    (``error_details_kept``), the round trip (ms) and ``completed_at``."""
    command.state = state_for(command.command, outcome)
    if outcome.outcome in (Outcome.RESULT, Outcome.INVALID_RESPONSE):
        response = catalog.from_ocpp_payload(command.command, outcome.payload)
        command.response = charger_passwords.answer_redacted(command.ocpp_version, command.action, response)
    command.response_violations = outcome.violations
    command.error_code = outcome.error_code[:_ERROR_CODE_MAX_LENGTH]  # a charger's code of any length, cut to fit
    passed_on = outcome.outcome == Outcome.RESULT and command.state == CommandState.INVALID_RESPONSE
    command.error_description = PASSED_ON if passed_on else outcome.error_description
    command.error_details = error_details_kept(outcome.error_details)
    command.latency_ms = outcome.latency_ms
    command.completed_at = completed_at


def error_details_kept(details: dict[str, Any]) -> dict[str, Any]:
    """A CALLERROR's errorDetails as a command keeps them: whole when their JSON fits
    ``ERROR_DETAILS_MAX_CHARS``, else the members that fit, in their order, each whole (vendor
    data: no key or value rewritten)."""
    if len(_json_text(details)) <= ERROR_DETAILS_MAX_CHARS:
        return details
    kept: dict[str, Any] = {}
    size = len("{}")
    for key, value in details.items():
        member = len(_json_text({key: value})) - len("{}") + (1 if kept else 0)  # and its comma
        if size + member <= ERROR_DETAILS_MAX_CHARS:
            kept[key] = value
            size += member
    return kept


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def state_for(command: str, outcome: CallOutcome) -> str:
    """Refused if any status in the answer refuses (every variable's for SetVariables);
    ``invalid_response`` if a lenient model's answer has a status the spec does not list, or none
    (``catalog.answer_status_unknown``: passed on, ``answer_passed_on``, and no acceptance); effective
    after a reboot if any says so (1.6 ChangeConfiguration, 2.0.1 SetVariables), else accepted."""
    if outcome.outcome == Outcome.RESULT:
        statuses = catalog.answer_statuses(command, outcome.payload)
        if statuses & REFUSING_STATUSES:
            return CommandState.REJECTED
        if catalog.answer_status_unknown(command, outcome.violations):
            return CommandState.INVALID_RESPONSE
        return CommandState.REBOOT_REQUIRED if REBOOT_REQUIRED in statuses else CommandState.ACCEPTED
    return {
        Outcome.INVALID_RESPONSE: CommandState.INVALID_RESPONSE,
        Outcome.CALL_ERROR: CommandState.CALL_ERROR,
        Outcome.TIMEOUT: CommandState.TIMEOUT,
        Outcome.NOT_CONNECTED: CommandState.NOT_CONNECTED,
    }[outcome.outcome]


def answer_passed_on(command: Command) -> bool:
    """Whether ``command`` (finished) ended ``invalid_response`` by a lenient model's answer passed
    on as it came (a status the spec does not list: ``state_for``), not by a strict charger's
    answer refused (error code ``InvalidResponse``): the API answers it 200 with the answer, and its
    route follows it, which acts on no acceptance (``command.state`` is not accepted)."""
    return command.state == CommandState.INVALID_RESPONSE and not command.error_code


def answered(command: Command) -> bool:
    """Whether ``command`` (finished) holds a charger's answer to follow and report: an accepted,
    effective-after-reboot or refused one (``ANSWERED_STATES``), or a lenient model's passed on."""
    return command.state in ANSWERED_STATES or answer_passed_on(command)
