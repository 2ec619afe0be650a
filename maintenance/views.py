"""The maintenance API: firmware files, campaigns, and diagnostics/log uploads per charger."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Manager, Model, QuerySet
from django.http import FileResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chargepoints.models import ChargePoint
from kernel.api_errors import ApiError
from kernel.models import ApiKey
from kernel.parsers import JsonParser
from kernel.query_params import whole_list_query_refused
from kernel.serializers import no_body_fields
from maintenance.errors import MaintenanceError
from maintenance.models import Campaign, FirmwareFile, LogUpload
from maintenance.serializers import (
    CampaignDetailSerializer,
    CampaignSerializer,
    FirmwareFileSerializer,
    LogUploadRequestSerializer,
    LogUploadSerializer,
)
from maintenance.services import diagnostics, firmware


def _api_error(error: MaintenanceError, **extra: Any) -> ApiError:
    if error.details:
        extra["details"] = error.details
    return ApiError(error.http_status, error.code, str(error), **extra)


def _get(queryset: QuerySet[Any] | Manager[Any], pk: Any, what: str) -> Any:
    try:
        found: Model | None = queryset.filter(pk=pk).first()
    except (DjangoValidationError, ValueError):
        found = None
    if found is None:
        raise ApiError(404, "NotFound", f"No {what} {pk}.")
    return found


class FirmwareFileViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Firmware files: upload (multipart ``file``, ``version``, optional ``name``), list, read."""

    serializer_class = FirmwareFileSerializer
    parser_classes = [MultiPartParser, JsonParser]  # JSON only to be told which field is missing
    queryset = FirmwareFile.objects.order_by("-uploaded_at", "-id")  # the id breaks a tie: stable pages

    def get_object(self) -> FirmwareFile:
        return _get(FirmwareFile.objects, self.kwargs["pk"], "firmware file")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        try:
            created = firmware.firmware_file_create(
                name=data.get("name") or upload.name, version=data.get("version", ""), upload=upload
            )
        except MaintenanceError as error:
            raise _api_error(error) from None
        return Response(FirmwareFileSerializer(created).data, status=status.HTTP_201_CREATED)


class CampaignViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Firmware campaigns: create, list, read with per-charger progress, pause, resume, cancel."""

    # 409: not from the campaign's state; 400, 413, 415: a body is read, if only to refuse it (no_body_fields).
    api_error_statuses = dict.fromkeys(("pause", "resume", "cancel"), (400, 409, 413, 415))

    queryset = firmware.campaigns_counted(Campaign.objects.select_related("firmware"))

    def get_serializer_class(self) -> type:
        return CampaignDetailSerializer if self.action == "retrieve" else CampaignSerializer

    def get_object(self) -> Campaign:
        return _get(self.get_queryset().prefetch_related("targets__charge_point"), self.kwargs["pk"], "campaign")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        try:
            campaign = firmware.campaign_create(**data)
        except MaintenanceError as error:
            raise _api_error(error) from None
        firmware.campaign_advance_soon(campaign_id=str(campaign.pk))
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)

    def _transition(self, request: Request, service: Any, pk: str) -> Response:
        no_body_fields(request.data)  # a malformed one is a 400 too
        try:
            campaign = service(campaign_id=pk)
        except MaintenanceError as error:
            raise _api_error(error) from None
        return Response(CampaignSerializer(campaign).data)

    @extend_schema(request=None, responses={200: CampaignSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        """No new wave until resumed; chargers already updating carry on."""
        return self._transition(request, firmware.campaign_pause, pk)

    @extend_schema(request=None, responses={200: CampaignSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return self._transition(request, firmware.campaign_resume, pk)

    @extend_schema(request=None, responses={200: CampaignSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """No new wave, ever: chargers not yet sent to are skipped."""
        return self._transition(request, firmware.campaign_cancel, pk)


class ChargePointLogUploadsView(APIView):
    """A charger's diagnostics/log uploads (GET), and a new request for one (POST)."""

    api_error_statuses = {"POST": (503,)}  # a charger that never connected (its OCPP version unknown)

    @extend_schema(responses={200: LogUploadSerializer(many=True)})
    def get(self, request: Request, charge_point_id: str) -> Response:
        whole_list_query_refused(request.query_params)  # none filters them
        uploads = list(
            LogUpload.objects.filter(charge_point__charge_point_id=charge_point_id).select_related("charge_point")
        )
        if not uploads and not ChargePoint.objects.filter(charge_point_id=charge_point_id).exists():
            message = f"Charge point {charge_point_id!r} is not registered."
            raise ApiError(404, "NotFound", message, charge_point_id=charge_point_id)
        return Response(LogUploadSerializer(uploads, many=True).data)

    @extend_schema(request=LogUploadRequestSerializer, responses={201: LogUploadSerializer})
    def post(self, request: Request, charge_point_id: str) -> Response:
        serializer = LogUploadRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        try:
            upload = diagnostics.log_upload_request(
                charge_point_id=charge_point_id, api_key=api_key, **serializer.validated_data
            )
        except MaintenanceError as error:
            raise _api_error(error, charge_point_id=charge_point_id) from None
        return Response(LogUploadSerializer(upload).data, status=status.HTTP_201_CREATED)


class LogUploadFileView(APIView):
    """The uploaded file itself."""

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, pk: int) -> FileResponse:
        upload = _get(LogUpload.objects, pk, "log upload")
        try:
            opened, name = diagnostics.log_upload_file_open(upload=upload)
        except MaintenanceError as error:
            raise _api_error(error) from None
        return FileResponse(opened, as_attachment=True, filename=name)
