from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chargepoints.models import ChargePoint
from commands.services import CommandRefused
from commands.views import command_http_response
from configuration import changes, selectors
from configuration.serializers import (
    ConfigurationChangeSerializer,
    ConfigurationKeySerializer,
    DeviceModelReportSerializer,
    DeviceModelVariableSerializer,
)
from kernel.api_errors import ApiError
from kernel.models import ApiKey
from kernel.query_params import whole_list_query_refused
from kernel.serializers import no_body_fields

_REFUSED_HTTP_STATUS = {
    "NotFound": 404,
    "ValidationError": 400,
    "UnsupportedVersion": 400,
    "ChargePointDecommissioned": 409,
}


def _charge_point(charge_point_id: str) -> ChargePoint:
    charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).first()
    if charge_point is None:
        raise ApiError(
            404, "NotFound", f"Charge point {charge_point_id!r} is not registered.", charge_point_id=charge_point_id
        )
    return charge_point


def _speaking(charge_point: ChargePoint) -> ChargePoint:
    """The charge point, once it has connected (its OCPP version decides the commands)."""
    if not charge_point.ocpp_version:
        raise ApiError(
            503,
            "NotConnected",
            "The charge point has not connected yet; its OCPP version is unknown.",
            charge_point_id=charge_point.charge_point_id,
        )
    return charge_point


def configuration_body(charge_point: ChargePoint, params: Any = None) -> dict[str, Any]:
    """The stored configuration: 1.6 ``keys``, 2.0.1 ``variables`` and the last ``report``."""
    keys = params.getlist("key") if params is not None else []
    components = params.getlist("component") if params is not None else []
    body: dict[str, Any] = {"charge_point_id": charge_point.charge_point_id, "ocpp_version": charge_point.ocpp_version}
    if charge_point.ocpp_version != "2.0.1":
        rows = selectors.configuration_keys_list(charge_point=charge_point, keys=keys)
        body["keys"] = ConfigurationKeySerializer(rows, many=True).data
    if charge_point.ocpp_version != "1.6":
        variables = selectors.device_model_variables_list(
            charge_point=charge_point, components=components, variables=keys
        )
        report = selectors.device_model_report_latest(charge_point=charge_point)
        body["variables"] = DeviceModelVariableSerializer(variables, many=True).data
        body["report"] = DeviceModelReportSerializer(report).data if report else None
    return body


def _refused(refused: CommandRefused, charge_point_id: str) -> ApiError:
    extra: dict[str, Any] = {"charge_point_id": charge_point_id}
    if refused.details:
        extra["details"] = refused.details
    return ApiError(_REFUSED_HTTP_STATUS.get(refused.code, 400), refused.code, str(refused), **extra)


class ConfigurationView(APIView):
    """A charger's stored configuration (GET) and changes to it through the charger (PATCH)."""

    # The outcome of a command none of whose keys was answered.
    api_error_statuses = {"PATCH": (409, 501, 502, 503, 504)}

    @extend_schema(
        parameters=[
            OpenApiParameter("key", str, many=True, description="1.6 key or 2.0.1 variable name (repeatable)."),
            OpenApiParameter("component", str, many=True, description="2.0.1 component name (repeatable)."),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, charge_point_id: str) -> Response:
        whole_list_query_refused(request.query_params, ("key", "component"), repeatable=("key", "component"))
        return Response(configuration_body(_charge_point(charge_point_id), request.query_params))

    @extend_schema(request=ConfigurationChangeSerializer, responses={200: OpenApiTypes.OBJECT})
    def patch(self, request: Request, charge_point_id: str) -> Response:
        """Sends ChangeConfiguration (1.6, one per key) or SetVariables (2.0.1); answers per value."""
        body = request.data  # an unreadable body is a 400 before anything else
        charge_point = _speaking(_charge_point(charge_point_id))
        context = {"ocpp_version": charge_point.ocpp_version}
        serializer = ConfigurationChangeSerializer(data=body, context=context)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            results = changes.configuration_change(
                charge_point=charge_point,
                changes=data.get("keys") or data["variables"],
                api_key=request.auth if isinstance(request.auth, ApiKey) else None,
            )
        except changes.ConfigurationUnanswered as unanswered:
            return command_http_response(unanswered.command)
        except CommandRefused as refused:
            raise _refused(refused, charge_point_id) from None
        reboot_required = any(result.get("status") == "RebootRequired" for result in results)
        return Response({"charge_point_id": charge_point_id, "results": results, "reboot_required": reboot_required})


class ConfigurationRefreshView(APIView):
    """Reads the whole configuration again: 1.6 GetConfiguration, 2.0.1 GetBaseReport FullInventory."""

    api_error_statuses = {"POST": (400, 409, 413, 415, 501, 502, 503, 504)}  # a body is parsed, if only to refuse it

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT})
    def post(self, request: Request, charge_point_id: str) -> Response:
        no_body_fields(request.data)  # an unreadable one is a 400 as anywhere else
        charge_point = _speaking(_charge_point(charge_point_id))
        try:
            command = changes.configuration_refresh(
                charge_point=charge_point, api_key=request.auth if isinstance(request.auth, ApiKey) else None
            )
        except CommandRefused as refused:
            raise _refused(refused, charge_point_id) from None
        if command.state != "accepted":
            return command_http_response(command)
        headers = {"X-Command-Id": str(command.id)}
        if charge_point.ocpp_version == "1.6":
            return Response(configuration_body(charge_point), headers=headers)
        # The device model arrives in NotifyReport parts after this answer.
        body = {
            "charge_point_id": charge_point_id,
            "request_id": command.request["request_id"],
            "command_id": str(command.id),
        }
        return Response(body, status=202, headers=headers)
