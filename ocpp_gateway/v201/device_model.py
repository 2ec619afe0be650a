"""OCPP 2.0.1 Provisioning block, device model: NotifyReport, the configuration read after a boot, and the
answers to GetVariables, SetVariables, GetBaseReport and GetReport kept in the configuration store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from ocpp.exceptions import GenericError, PropertyConstraintViolationError
from ocpp.routing import after, on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoints.models import ChargePoint
from commands import catalog, charger_passwords
from commands.models import Command
from configuration import changes, selectors, services
from configuration.models import AttributeType, LearnedFrom
from kernel.storable_text import unstorable_numbers_replaced
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.command_routes import (
    answer,
    answer_status,
    answering_charge_point,
    answers_together,
    before_sending,
    request_check,
    unanswered,
    unsent,
)
from ocpp_gateway.configuration_refresh import LocalCaller, configuration_reads, refresh_after_boot
from ocpp_gateway.group_commit import in_commit_group
from ocpp_gateway.password_offers import (
    password_answer,
    password_answered,
    password_offered,
    password_unanswered,
    password_unsent,
)


def _characteristics_storable(report_data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report, its items' variableCharacteristics (kept as a JSON column) with the NaN and
    infinities PostgreSQL's JSON refuses (a minLimit of NaN) as their text."""
    return [
        item
        if item.get("variable_characteristics") is None
        else {**item, "variable_characteristics": unstorable_numbers_replaced(item["variable_characteristics"])}
        for item in report_data
    ]


class DeviceModelHandlers:
    @staticmethod
    @request_check(Action.get_variables)
    def get_variables_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        return _limits_warnings(charge_point, "GetVariables", body, "get_variable_data")

    @staticmethod
    @request_check(Action.set_variables)
    def set_variables_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        return _limits_warnings(charge_point, "SetVariables", body, "set_variable_data")

    @staticmethod
    @request_check(Action.get_report)
    def get_report_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        return _limits_warnings(charge_point, "GetReport", body, "component_variable")

    id: str
    _connection: LocalCaller
    configuration_current: bool  # set by the BootNotification handler (``configuration_current``)
    configuration_read_owed: bool  # loaded with the handshake (``OcppRouter.state_loaded``)

    @on(Action.notify_report)
    async def on_notify_report(
        self,
        request_id: int,
        generated_at: str,
        seq_no: int,
        tbc: bool = False,
        report_data: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> call_result.NotifyReport:
        """Each part is stored before it is acknowledged (B07/B08); a charger password it reports, redacted.

        A report has at most ``CSMS_MAX_DEVICE_MODEL_VARIABLES`` parts (each reports a variable at least):
        a part of another seqNo is refused. Each part's write checks the seqNos of its report's parts so
        far, so a station sending parts of seqNo 0, 1, 2, ... without end made each cost more (6000 in:
        12 ms of PostgreSQL's time a part, 20 a second)."""
        if not 0 <= seq_no < settings.CSMS_MAX_DEVICE_MODEL_VARIABLES:
            maximum = settings.CSMS_MAX_DEVICE_MODEL_VARIABLES
            description = f"seqNo {seq_no} is outside 0 to {maximum - 1} (CSMS_MAX_DEVICE_MODEL_VARIABLES)."
            raise PropertyConstraintViolationError(description=description)
        try:
            await in_commit_group(services.device_model_report_record)(
                charge_point_id=self.id,
                request_id=request_id,
                seq_no=seq_no,
                tbc=tbc,
                generated_at=parse_ocpp_time(generated_at),
                report_data=_characteristics_storable(charger_passwords.report_redacted(report_data or [])),
            )
        except ChargePoint.DoesNotExist:
            raise GenericError(description="The charging station is not registered.") from None
        if not tbc:  # the read after a boot that asked for it is answered whole (``ConfigurationReads``)
            configuration_reads.report_ended(self.id, request_id)
        return call_result.NotifyReport()

    @after(Action.boot_notification)
    def after_boot_notification(self, **_: Any) -> None:
        owed = self.configuration_read_owed
        if refresh_after_boot(self.id, self._connection, current=self.configuration_current, owed=owed):
            self.configuration_read_owed = False

    @staticmethod
    @answer(Action.get_variables)
    def after_get_variables(command: Command) -> None:
        """The values read (B06): each Accepted result's."""
        attributes = [
            services.ReportedAttribute(
                component=result["component"],
                variable=result["variable"],
                type=result.get("attribute_type", AttributeType.ACTUAL),
                value=result.get("attribute_value"),
            )
            for result in (command.response or {}).get("get_variable_result") or []
            if result.get("attribute_status") == services.ACCEPTED
        ]
        _attributes_record(command, attributes, LearnedFrom.GET_VARIABLES)
        _unknown_forgotten(command, "get_variable_result")

    @staticmethod
    @answer(Action.set_variables)
    def after_set_variables(command: Command) -> None:
        """The values taken stored (a charger password: redacted, and the CSMS checks it from now, or
        beside the old one until the charger presents it when it takes effect after a reboot)."""
        password = charger_passwords.password_set_by("2.0.1", command.request)
        if password is not None and (status := _password_status(command.response or {})) is not None:
            password_answered(command, password, password_answer(status))
        redacted = _set_attributes(charger_passwords.body_redacted("2.0.1", command.request), command.response or {})
        _attributes_record(command, redacted, LearnedFrom.SET_VARIABLES)
        _unknown_forgotten(command, "set_variable_result")

    @staticmethod
    @before_sending(Action.set_variables)
    def before_set_variables(command: Command) -> None:
        """A charger password's hash stored as the candidate before it leaves: whatever becomes of
        the command, a station that took it is admitted (``password_offers``)."""
        password = charger_passwords.password_set_by("2.0.1", command.request)
        if password is not None:
            password_offered(command, password)

    @staticmethod
    @before_sending(Action.get_base_report, Action.get_report)
    def before_get_report(command: Command) -> None:
        """A report asked under a requestId an earlier report of the charger used starts afresh: the
        parts that follow are this request's (B07/B08)."""
        services.device_model_report_restart(
            charge_point=answering_charge_point(command), request_id=command.request["request_id"]
        )

    @staticmethod
    @unanswered(Action.set_variables)
    def after_set_variables_unanswered(command: Command) -> None:
        """A SetVariables not answered in time: the station may have taken the values, or not. The
        values sent are kept as unconfirmed and the configuration read owed, which settles them
        (``configuration_change_unanswered``); a charger password: both admit it until it presents
        the new one."""
        password = charger_passwords.password_set_by("2.0.1", command.request)
        if password is not None:
            password_unanswered(command, password)
        sent = [
            services.ReportedAttribute(
                component=item["component"],
                variable=item["variable"],
                type=item.get("attribute_type", AttributeType.ACTUAL),
                value=item["attribute_value"],
            )
            for item in charger_passwords.body_redacted("2.0.1", command.request).get("set_variable_data") or []
        ]
        changes.configuration_change_unanswered(command=command, attributes=sent)

    @staticmethod
    @unsent(Action.set_variables)
    def after_set_variables_unsent(command: Command) -> None:
        """A charger password whose SetVariables never reached the station: its candidate dropped."""
        password_unsent(command)

    @staticmethod
    @answer(Action.get_base_report, Action.get_report)
    def after_get_report(command: Command) -> None:
        """An accepted report request: its NotifyReport parts are expected (B07/B08)."""
        assert command.charge_point is not None
        request_id = command.request["request_id"]
        if answer_status(command) == services.ACCEPTED:
            services.device_model_report_expect(
                charge_point=command.charge_point, request_id=request_id, command=command
            )
        else:
            services.device_model_report_refused(charge_point=command.charge_point, request_id=request_id)

    @staticmethod
    @answers_together(Action.get_base_report, Action.get_report)
    def after_get_reports(commands: Sequence[Command]) -> None:
        """Several answers (a group-commit batch's), each as ``after_get_report`` follows it: the
        accepted ones' reports tied to their commands by one statement, a refused one's forgotten."""
        services.device_model_reports_expect(
            expected=[
                services.ReportExpected(answering_charge_point(command), command.request["request_id"], command)
                for command in commands
                if answer_status(command) == services.ACCEPTED
            ]
        )
        for command in commands:
            if answer_status(command) != services.ACCEPTED:
                DeviceModelHandlers.after_get_report(command)


def _attributes_record(command: Command, attributes: list[services.ReportedAttribute], learned_from: str) -> None:
    assert command.charge_point is not None
    if attributes:
        services.device_model_attributes_record(
            charge_point=command.charge_point, attributes=attributes, learned_from=learned_from, command=command
        )


def _unknown_forgotten(command: Command, results: str) -> None:
    """The variables (attributes) the answer's ``results`` say the station does not have, no longer
    stored (``services.device_model_unknown_forget``)."""
    assert command.charge_point is not None
    unknown = [
        (
            result["component"],
            result["variable"],
            str(result.get("attribute_type", AttributeType.ACTUAL)),
            str(result.get("attribute_status", "")),
        )
        for result in (command.response or {}).get(results) or []
        if isinstance(result, dict) and _named(result.get("component")) and _named(result.get("variable"))
    ]
    services.device_model_unknown_forget(charge_point=command.charge_point, unknown=unknown)


def _named(part: Any) -> bool:
    """Whether a result's component or variable has a name (a lenient model's answer may not)."""
    return isinstance(part, dict) and isinstance(part.get("name"), str)


def _password_status(response: dict[str, Any]) -> str | None:
    """The attributeStatus a SetVariables answer gives the charger's password (names matched
    ignoring case), or None when it has no result for it (what became of it is not known)."""
    for result in response.get("set_variable_result") or []:
        if charger_passwords.is_password_variable(result):
            return str(result.get("attribute_status", ""))
    return None


def _set_attributes(request: dict[str, Any], response: dict[str, Any]) -> list[services.ReportedAttribute]:
    """The values a SetVariables answer took: Accepted now, RebootRequired after the next reboot.
    Each result is the request's item of its component, variable and attribute type, the names
    matched ignoring case (OCPP's CiString: a station answers under its own spelling)."""
    asked = {
        _named_ignoring_case(item["component"], item["variable"], item.get("attribute_type", "Actual")): item
        for item in request.get("set_variable_data") or []
    }
    taken = []
    for result in response.get("set_variable_result") or []:
        attribute_type = result.get("attribute_type", AttributeType.ACTUAL)
        item = asked.get(_named_ignoring_case(result["component"], result["variable"], attribute_type))
        status = result.get("attribute_status")
        if item is None or status not in (services.ACCEPTED, services.REBOOT_REQUIRED):
            continue
        value = item["attribute_value"]
        taken.append(
            services.ReportedAttribute(
                component=result["component"],
                variable=result["variable"],
                type=attribute_type,
                value=value if status == services.ACCEPTED else None,
                pending_value=value if status == services.REBOOT_REQUIRED else None,
            )
        )
    return taken


def _named_ignoring_case(component: dict[str, Any], variable: dict[str, Any], attribute_type: str) -> tuple[Any, ...]:
    """A SetVariables item's or result's component, variable (``variable_identity``) and attribute
    type, its names and instances case-folded."""
    return tuple(
        part.casefold() if isinstance(part, str) else part
        for part in (*services.variable_identity(component, variable), attribute_type)
    )


def _limits_warnings(charge_point: ChargePoint, request: str, body: dict[str, Any], items: str) -> list[str]:
    """A GetVariables, SetVariables or GetReport (its ``componentVariable`` entries) over the charger's
    reported ItemsPerMessage/BytesPerMessage of that request (OCPP 2.0.1 B05, B06, B08)."""
    return selectors.device_model_request_warnings(
        charge_point=charge_point,
        request=request,
        items=len(body.get(items) or []),
        size=catalog.call_frame_bytes(request, body),
    )
