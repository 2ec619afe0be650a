from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer

from billing import export, selectors, services
from billing.models import BillingRecord, Tariff
from billing.serializers import BillingRecordFilterSerializer, BillingRecordSerializer, TariffSerializer
from kernel.api_errors import ApiError
from kernel.query_params import whole_list_query_refused
from kernel.streaming import in_request_thread


class TariffViewSet(viewsets.ModelViewSet):
    """What charging costs. A tariff in use is kept: end its validity (valid_to) instead."""

    serializer_class = TariffSerializer
    api_error_statuses = {"update": (409,), "partial_update": (409,), "destroy": (409,)}  # prices fixed; in use

    def get_queryset(self) -> QuerySet[Tariff]:
        return Tariff.objects.all()

    def get_object(self) -> Tariff:
        try:
            return Tariff.objects.get(pk=self.kwargs["pk"])
        except (Tariff.DoesNotExist, ValueError):
            raise ApiError(404, "NotFound", f"No tariff {self.kwargs['pk']}.") from None

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.instance = services.tariff_save(**serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        try:
            services.tariff_save(tariff=serializer.instance, **serializer.validated_data)
        except services.TariffPricesFixed as fixed:
            raise ApiError(409, "Conflict", str(fixed), tariff_id=fixed.tariff_id, fields=fixed.fields) from None

    def perform_destroy(self, instance: Tariff) -> None:
        try:
            services.tariff_delete(tariff=instance)
        except services.TariffInUse as in_use:
            raise ApiError(409, "Conflict", str(in_use), tariff_id=in_use.tariff_id) from None


_EXPORT_CHUNK = export.CHUNK_ROWS


@extend_schema_view(list=extend_schema(parameters=[BillingRecordFilterSerializer]))
class BillingRecordViewSet(viewsets.ReadOnlyModelViewSet):
    """What ended sessions cost, priced with the tariff valid at their start."""

    serializer_class = BillingRecordSerializer
    query_filters = BillingRecordFilterSerializer.names()

    def get_queryset(self) -> QuerySet[BillingRecord]:
        return selectors.billing_record_list(**BillingRecordFilterSerializer.parse(self.request.query_params))

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        """The export is CSV whatever ``Accept`` says (``text/csv`` included); its errors stay JSON."""
        return super().perform_content_negotiation(request, force=force or self.action == "export")

    def get_object(self) -> BillingRecord:
        try:
            return selectors.billing_record_list().get(pk=self.kwargs["pk"])
        except (BillingRecord.DoesNotExist, ValueError):
            raise ApiError(404, "NotFound", f"No billing record {self.kwargs['pk']}.") from None

    @extend_schema(
        parameters=[BillingRecordFilterSerializer],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One row per billing record.")},
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def export(self, request: Request) -> StreamingHttpResponse:
        # One page, every record: ``?page=2`` a 404, not the whole export again (a client paging it until a 404)
        whole_list_query_refused(request.query_params, self.query_filters)
        chunks = export.line_chunks(self.get_queryset().iterator(chunk_size=_EXPORT_CHUNK), _EXPORT_CHUNK)
        content = in_request_thread(chunks) if isinstance(request._request, ASGIRequest) else chunks
        response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="billing-records.csv"'
        return response
