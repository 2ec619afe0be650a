from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.db.models import ProtectedError, QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from billing import selectors
from billing.models import BillingRecord, Tariff
from billing.serializers import BillingRecordFilterSerializer, BillingRecordSerializer, TariffSerializer
from chargepoints.metering import wh_number
from csms.api_errors import ApiError
from webhooks.services import iso_utc


class TariffViewSet(viewsets.ModelViewSet):
    """What charging costs. A tariff in use is kept: end its validity (valid_to) instead."""

    serializer_class = TariffSerializer

    def get_queryset(self) -> QuerySet[Tariff]:
        return Tariff.objects.all()

    def get_object(self) -> Tariff:
        try:
            return Tariff.objects.get(pk=self.kwargs["pk"])
        except (Tariff.DoesNotExist, ValueError):
            raise ApiError(404, "NotFound", f"No tariff {self.kwargs['pk']}.") from None

    def perform_destroy(self, instance: Tariff) -> None:
        try:
            instance.delete()
        except ProtectedError:
            raise ApiError(
                409,
                "Conflict",
                f"Tariff {instance.pk} is used by charge points or billing records; set its valid_to instead.",
                tariff_id=instance.pk,
            ) from None


EXPORT_COLUMNS = [
    "id",
    "transaction_id",
    "ocpp_transaction_id",
    "charge_point_id",
    "id_tag",
    "started_at",
    "stopped_at",
    "duration_seconds",
    "charging_seconds",
    "idle_seconds",
    "energy_wh",
    "currency",
    "total",
    "needs_review",
]


class _Echo:
    """A file for ``csv.writer`` that hands each formatted line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _cell_text(value: str) -> str:
    """Text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) is quoted with ``'``."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _export_row(record: BillingRecord) -> list[Any]:
    return [
        record.pk,
        record.transaction_id,
        record.transaction.ocpp_id,
        _cell_text(record.charge_point_identity),
        _cell_text(record.id_tag),
        iso_utc(record.started_at),
        iso_utc(record.stopped_at),
        record.duration_seconds,
        record.charging_seconds,
        record.idle_seconds,
        wh_number(record.energy_wh),
        record.currency,
        f"{record.total:.2f}",
        "true" if record.needs_review else "false",
    ]


_EXPORT_CHUNK = 2000


def _export_lines(records: QuerySet[BillingRecord]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for record in records.iterator(chunk_size=_EXPORT_CHUNK):
        yield writer.writerow(_export_row(record))


async def _export_lines_async(records: QuerySet[BillingRecord]) -> AsyncIterator[str]:
    """Under ASGI (daphne) Django buffers a synchronous iterator whole; an async one streams."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    async for record in records.aiterator(chunk_size=_EXPORT_CHUNK):
        yield writer.writerow(_export_row(record))


@extend_schema_view(list=extend_schema(parameters=[BillingRecordFilterSerializer]))
class BillingRecordViewSet(viewsets.ReadOnlyModelViewSet):
    """What ended sessions cost, priced with the tariff valid at their start."""

    serializer_class = BillingRecordSerializer

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
        records = self.get_queryset()
        is_asgi = isinstance(request._request, ASGIRequest)
        lines = _export_lines_async(records) if is_asgi else _export_lines(records)
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="billing-records.csv"'
        return response
