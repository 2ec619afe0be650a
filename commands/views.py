from __future__ import annotations

import dataclasses
import logging
from typing import Any, TypeVar, cast

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils.log import log_response
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from commands import catalog, services
from commands.models import Command, CommandState
from commands.outcomes import answer_passed_on
from commands.rpc import ANSWER_LOST_ON_CLOSE, ANSWER_UNPROCESSED, CHANNEL_LAYER_FAILED, NOT_SENT_IN_TIME, OTHER_VERSION
from commands.serializers import CommandSerializer
from kernel.api_errors import ApiError, error_body, query_choice, query_flag
from kernel.api_keys import api_key_forget, api_key_still_active
from kernel.authentication import ApiKeyUser, RememberedBearerApiKeyAuthentication
from kernel.models import ApiKey
from kernel.openapi import COMMAND_ERROR_STATUSES, ApiSchema, ocpp_request_body_schema
from kernel.query_params import unknown_query_parameters_refused

logger = logging.getLogger(__name__)

_ERROR_MESSAGES = {
    "NotSupported": "The charge point does not support this command.",
    "NotImplemented": "The charge point does not implement this command.",
    "NotConnected": "The charge point is not connected.",
    "Timeout": "The charge point did not answer within the configured timeout.",
    "GatewayUnreachable": "The CSMS could not reach the process holding the charge point's connection (its channel"
    " layer, Redis, is unavailable or busy); nothing was sent. Try again shortly.",
}
# DRF's refusals a command view may raise before its statement verifies a remembered API key.
_REFUSED_BEFORE_THE_KEY_IS_READ = (
    exceptions.Throttled,
    exceptions.MethodNotAllowed,
    exceptions.ParseError,
    exceptions.UnsupportedMediaType,
    exceptions.NotAcceptable,
)
E = TypeVar("E", bound=Exception)
IDEMPOTENCY_KEY_MAX_LENGTH: int = Command._meta.get_field("idempotency_key").max_length  # type: ignore[assignment]  # a CharField's
# The timeout descriptions a caller is told (others may hold a channel layer's error, for the record only).
_TIMEOUTS_TOLD = (ANSWER_LOST_ON_CLOSE, ANSWER_UNPROCESSED, NOT_SENT_IN_TIME)
_REFUSED_HTTP_STATUS = {
    "NotFound": 404,
    "ValidationError": 400,
    "UnsupportedVersion": 400,
    "ChargePointPending": 409,
    "ChargePointDecommissioned": 409,
    "IdempotencyKeyReused": 422,
}


def command_http_response(command: Command) -> Response:
    """The HTTP answer for a finished command (docs/architecture.md, API)."""
    identity = command.charge_point_identity
    headers = {"X-Command-Id": str(command.id), "Location": f"/api/v1/commands/{command.id}"}
    if command.state in (CommandState.ACCEPTED, CommandState.REBOOT_REQUIRED) or answer_passed_on(command):
        http_status, body = 200, command.response
    elif command.state == CommandState.REJECTED:
        status_value = services.command_refusal(command=command)
        message = f"The charge point answered {status_value}."
        http_status, body = 409, error_body(status_value, message, charge_point_id=identity, response=command.response)
    elif command.state == CommandState.INVALID_RESPONSE:
        http_status, body = (
            502,
            error_body(
                "InvalidResponse",
                command.error_description,
                charge_point_id=identity,
                details=command.response_violations,
                response=command.response,
            ),
        )
    elif command.state == CommandState.CALL_ERROR:
        code = command.error_code or "InternalError"
        message = command.error_description or _ERROR_MESSAGES.get(code, "The charge point answered with an error.")
        http_status = 501 if code in ("NotSupported", "NotImplemented") else 502
        body = error_body(code, message, charge_point_id=identity, details=command.error_details)
    elif command.state == CommandState.NOT_CONNECTED and command.error_description.startswith(CHANNEL_LAYER_FAILED):
        # A dependency down, not the charger: it may well be connected.
        http_status, body = (
            503,
            error_body("GatewayUnreachable", _ERROR_MESSAGES["GatewayUnreachable"], charge_point_id=identity),
        )
        headers["Retry-After"] = "5"
    elif command.state == CommandState.NOT_CONNECTED:
        other_version = command.error_description.startswith(OTHER_VERSION)  # it says which: passed on
        message = command.error_description if other_version else _ERROR_MESSAGES["NotConnected"]
        http_status, body = 503, error_body("NotConnected", message, charge_point_id=identity)
    elif command.state == CommandState.TIMEOUT:
        told = command.error_description in _TIMEOUTS_TOLD  # others: the record's only
        message = command.error_description if told else _ERROR_MESSAGES["Timeout"]
        http_status, body = 504, error_body("Timeout", message, charge_point_id=identity)
    else:
        http_status, body = 202, CommandSerializer(command).data
    if command.warnings and isinstance(body, dict):
        body = {**body, "warnings": command.warnings}
    response = Response(body, status=http_status, headers=headers)
    if http_status >= 400:
        # The charger's answer (or absence), not a server error: one INFO line instead of django.request's ERROR.
        outcome = body.get("error", command.state) if isinstance(body, dict) else command.state
        log_response(
            "%s: %s answered %s", identity, command.action, outcome, response=response, logger=logger, level="info"
        )
    return response


class CommandSchema(ApiSchema):
    def get_description(self) -> str:  # type: ignore[override]  # drf-spectacular's signature, not DRF's
        view = cast("OcppCommandView", self.view)
        action = catalog.ocpp_action(view.command)
        return (
            f"Sends OCPP {view.ocpp_version} `{action}` to the charge point and answers with its reply in "
            f"snake_case. The body holds the `{action}` request fields in snake_case"
            + (" and `charge_point_id`." if "charge_point_id" not in self.path else ".")
            + " Any answer may carry `warnings`, a list of sentences about what was sent anyway"
            " (a remote start for an id tag the CSMS does not know or would not accept; a remote stop"
            " for a transaction id of no active session of the charger; a cancel of a reservation that is not"
            " active; a charging profile that replaces an installed one)."
        )

    def _get_request_body(self, direction: Any = "request") -> dict[str, Any]:
        """The OCPP request schema of the command in snake_case, and ``charge_point_id`` when the
        path does not name the charger."""
        view = cast("OcppCommandView", self.view)
        body = ocpp_request_body_schema(ocpp_version=view.ocpp_version, action=catalog.ocpp_action(view.command))
        if "{charge_point_id}" not in self.path:
            body["properties"] = {"charge_point_id": {"type": "string"}, **body.get("properties", {})}
            body["required"] = ["charge_point_id", *body.get("required", [])]
        return {"content": {"application/json": {"schema": body}}, "required": True}

    def get_operation_id(self) -> str:
        view = cast("OcppCommandView", self.view)
        with_id = "_by_path" if "{charge_point_id}" in self.path else ""
        return f"ocpp{view.ocpp_version.replace('.', '')}_{view.command}{with_id}"

    def get_tags(self) -> list[str]:
        return [f"OCPP {cast('OcppCommandView', self.view).ocpp_version} commands"]


CHARGE_POINT_ID_MAX_LENGTH = Command._meta.get_field("charge_point_identity").max_length or 48


def _charge_point_id_problem(in_path: str | None, in_body: Any) -> str:
    """What is wrong with where the request names its charger ("" when nothing): the path's or
    the body's ``charge_point_id``, a string, the same in both when both give one."""
    if in_body is not None and not isinstance(in_body, str):
        return "Must be a string."
    if in_path and in_body is not None and in_body != in_path:
        return f"Differs from the charge point in the path ({in_path!r})."
    if not (in_path or in_body):
        return "This field is required."
    if len(in_path or in_body or "") > CHARGE_POINT_ID_MAX_LENGTH:  # no charger's: a command's row cannot hold it
        return f"Ensure this field has no more than {CHARGE_POINT_ID_MAX_LENGTH} characters."
    return ""


def _idempotency_keys_sent(request: Request) -> int:
    """How many ``Idempotency-Key`` headers the request carries: Django joins repeated headers with
    a comma into one (``"k-1,k-2"``), which would record the command under a key the caller never
    sent and replay neither. Counted in the ASGI scope (a WSGI request has one value: at most 1)."""
    scope = getattr(request._request, "scope", None)
    if scope is None:
        return 1 if "Idempotency-Key" in request.headers else 0
    return sum(1 for name, _ in scope.get("headers", ()) if name.lower() == b"idempotency-key")


class OcppCommandView(APIView):
    """POST an OCPP command; set by ``as_view(ocpp_version=..., command=...)``."""

    ocpp_version = ""
    command = ""
    schema = CommandSchema()
    api_error_statuses = {"POST": COMMAND_ERROR_STATUSES}
    # The key is checked in the statement that records the command (commands.services), not read first.
    authentication_classes = [RememberedBearerApiKeyAuthentication]

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, 202: CommandSerializer},
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False),
            OpenApiParameter(
                "wait",
                bool,
                description="true/1 (the default) or false/0, in any case: false answers 202 with the command"
                " at once; poll /api/v1/commands/{id}. Any other value is a 400 naming `wait`.",
            ),
        ],
    )
    def post(self, request: Request, charge_point_id: str | None = None) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise self._after_the_key_checked(
                request, ApiError(400, "ValidationError", "The body must be a JSON object.", details={})
            )
        body = catalog.body_coerced(self.ocpp_version, catalog.ocpp_action(self.command), dict(body))
        body_id = body.pop("charge_point_id", None)
        problem = _charge_point_id_problem(charge_point_id, body_id)
        if problem:
            raise self._after_the_key_checked(
                request,
                ApiError(
                    400, "ValidationError", "The request body is invalid.", details={"charge_point_id": [problem]}
                ),
            )
        if _idempotency_keys_sent(request) > 1:  # joined with "," into one key, a key neither sent
            raise self._after_the_key_checked(
                request,
                ApiError(
                    400,
                    "ValidationError",
                    "The Idempotency-Key header is sent more than once.",
                    details={"Idempotency-Key": ["One key per request: the header is sent more than once."]},
                ),
            )
        idempotency_key = request.headers.get("Idempotency-Key", "")
        if len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:  # cut, two keys would be one
            raise self._after_the_key_checked(
                request,
                ApiError(
                    400,
                    "ValidationError",
                    f"The Idempotency-Key header is over {IDEMPOTENCY_KEY_MAX_LENGTH} characters.",
                    details={"Idempotency-Key": [f"At most {IDEMPOTENCY_KEY_MAX_LENGTH} characters."]},
                ),
            )
        charge_point_id = charge_point_id or body_id
        command_request = services.CommandRequest(
            charge_point_id=charge_point_id,
            ocpp_version=self.ocpp_version,
            command=self.command,
            body=body,
            api_key=request.auth if isinstance(request.auth, ApiKey) else None,
            idempotency_key=idempotency_key,
            api_key_checked=not isinstance(request.user, ApiKeyUser) or request.user.checked,
        )
        try:
            return command_http_response(self._command_sent(request, command_request))
        except services.CommandRefused as refused:
            extra: dict[str, Any] = {"charge_point_id": charge_point_id}
            if refused.details:
                extra["details"] = refused.details
            raise ApiError(_REFUSED_HTTP_STATUS[refused.code], refused.code, str(refused), **extra) from None
        except services.CommandInProgress as in_progress:
            raise ApiError(
                409,
                "CommandInProgress",
                str(in_progress),
                charge_point_id=charge_point_id,
                command_id=str(in_progress.command.id),
            ) from None

    def _command_sent(self, request: Request, command_request: services.CommandRequest) -> Command:
        """``services.command_send``; a remembered key found inactive by it is read again and the
        request authenticated and permitted anew (401, 403 as for any request), then sent once more."""
        wait = self._waits(request)
        try:
            return services.command_send(request=command_request, wait=wait)
        except services.ApiKeyInactive:
            assert command_request.api_key is not None
            self._authenticated_again(request, command_request.api_key)
        again = dataclasses.replace(command_request, api_key=cast(ApiKey, request.auth), api_key_checked=True)
        return services.command_send(request=again, wait=wait)

    def _waits(self, request: Request) -> bool:
        """Whether the caller waits for the charger's answer: ``?wait=`` true/1 (the default) or
        false/0, in any case; anything else a 400 naming ``wait``, as is another parameter (a misspelt
        ``?wiat=false`` waited up to the call timeout, the caller expecting its 202 at once)."""
        try:
            unknown_query_parameters_refused(request.query_params, ("wait",), paginated=False, taker="A command")
            return query_flag(request.query_params, "wait") is not False
        except ApiError as error:
            raise self._after_the_key_checked(request, error) from None

    def _authenticated_again(self, request: Request, remembered: ApiKey) -> None:
        """The remembered key forgotten, the request authenticated and permitted anew from the key's
        row: 401 if it is revoked or expired, 403 if it may no longer send commands."""
        api_key_forget(api_key=remembered)
        authenticated = RememberedBearerApiKeyAuthentication().authenticate(request)  # reads it: 401 if refused
        assert authenticated is not None
        request.user, request.auth = authenticated  # type: ignore[assignment]  # DRF's stubs: Django users only
        self.check_permissions(request)

    def check_permissions(self, request: Request) -> None:
        """DRF's check; a remembered key refused is read again first, so a key widened elsewhere
        within ``REMEMBERED_FOR`` is let through and one revoked gets its 401."""
        try:
            super().check_permissions(request)
        except exceptions.APIException as refused:
            user = request.user
            if refused.status_code != 403 or not isinstance(user, ApiKeyUser) or user.checked:
                raise
            self._authenticated_again(request, user.api_key)  # permits from the key's row, or raises

    def handle_exception(self, exc: Exception) -> Response:
        """DRF's answer for ``exc``; a request refused before anything read its remembered key
        (429, 405, an unparsable body) is told 401 or 403 instead when the key is no longer active."""
        if isinstance(exc, _REFUSED_BEFORE_THE_KEY_IS_READ):
            try:
                self._after_the_key_checked(self.request, exc)
            except exceptions.APIException as refused:
                exc = refused
        return super().handle_exception(exc)

    def get_exception_handler_context(self) -> dict[str, Any]:
        """DRF's, with the ``charge_point_id`` the body names when the path does not: every error
        of a command names its charger (a read-only key's 403 too). Read only for a caller with a
        key, and only on an error."""
        context = super().get_exception_handler_context()
        if "charge_point_id" in context["kwargs"] or not isinstance(self.request.auth, ApiKey):
            return context
        try:
            body = self.request.data
        except (exceptions.APIException, RequestDataTooBig):
            return context
        if isinstance(body, dict) and isinstance(body.get("charge_point_id"), str):
            context["charge_point_id"] = body["charge_point_id"]
        return context

    def _after_the_key_checked(self, request: Request, error: E) -> E:
        """``error``, for a request refused before anything read its API key: a key this process
        remembered (not read for this request) is verified first, and one revoked, expired or
        narrowed since gets the 401 or 403 any other request of it gets."""
        user = request.user
        if isinstance(user, ApiKeyUser) and not user.checked and not api_key_still_active(api_key=user.api_key):
            self._authenticated_again(request, user.api_key)
        return error


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("charge_point_id", str),
            OpenApiParameter("state", str, enum=CommandState.values),
            OpenApiParameter(
                "action", str, enum=catalog.ocpp_actions(), description="OCPP action, e.g. RemoteStartTransaction"
            ),
        ]
    )
)
class CommandViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit log of commands sent to chargers."""

    serializer_class = CommandSerializer
    query_filters = ("charge_point_id", "state", "action")

    def get_queryset(self) -> QuerySet[Command]:
        # Newest first; the id breaks a tie, so a page's rows never move to another page between reads.
        queryset = Command.objects.select_related("api_key", "user").order_by("-created_at", "-id")
        params = self.request.query_params
        if "charge_point_id" in params:
            queryset = queryset.filter(charge_point_identity=params["charge_point_id"])
        state = query_choice(params, "state", CommandState.values)
        if state is not None:
            queryset = queryset.filter(state=state)
        action = query_choice(params, "action", catalog.ocpp_actions())  # `reset` is no action: a 400, not []
        if action is not None:
            queryset = queryset.filter(action=action)
        return queryset

    def get_object(self) -> Command:
        try:
            return self.get_queryset().get(pk=self.kwargs["pk"])
        except (Command.DoesNotExist, DjangoValidationError):
            raise ApiError(404, "NotFound", f"No command {self.kwargs['pk']}.") from None
