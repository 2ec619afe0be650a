"""The API of id tags and charging sessions."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer

from charging import selectors
from charging.models import IdTag, MeterSample, Transaction
from charging.serializers import (
    IdTagSerializer,
    MeterSampleSerializer,
    TransactionFilterSerializer,
    TransactionSerializer,
)
from charging.services import authorization
from kernel.api_errors import ApiError
from kernel.query_params import whole_list_query_refused
from kernel.streaming import in_request_thread


class IdTagViewSet(viewsets.ModelViewSet):
    """Who may charge: 1.6 id tags and 2.0.1 id tokens, addressed by the tag (any case)."""

    serializer_class = IdTagSerializer
    # The tag exists (create, or a change to another's tag); a tag that is some card's parent (destroy).
    api_error_statuses = {"create": (409,), "update": (409,), "partial_update": (409,), "destroy": (409,)}
    lookup_field = "id_tag"
    # Any tag the API registers ('/' included: OCPP's idTag is any data), as given or %2F-encoded; the
    # shortest match leaves the optional trailing slash to the router.
    lookup_value_regex = ".+?"

    def get_queryset(self) -> QuerySet[IdTag]:
        return IdTag.objects.select_related("parent")

    def get_object(self) -> IdTag:
        id_tag = self.kwargs["id_tag"]
        found = selectors.id_tag_find(id_tag=id_tag)
        if found is None:
            raise ApiError(404, "NotFound", f"Id tag {id_tag!r} is not registered.", id_tag=id_tag)
        return found

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.instance = _id_tag_save(serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        _id_tag_save(serializer.validated_data, serializer.instance)

    def perform_destroy(self, instance: IdTag) -> None:
        try:
            authorization.id_tag_delete(tag=instance)
        except authorization.IdTagIsParent as parent:
            raise ApiError(409, "Conflict", str(parent), id_tag=parent.id_tag) from None


def _id_tag_save(fields: dict[str, Any], tag: IdTag | None = None) -> IdTag:
    try:
        return authorization.id_tag_save(tag=tag, **fields)
    except authorization.IdTagAlreadyExists as exists:
        raise ApiError(409, "Conflict", str(exists), id_tag=exists.id_tag) from None
    except authorization.IdTagParentRefused as refused:  # the rows changed since the request's check
        raise ApiError(400, "ValidationError", str(refused), details={"parent_id_tag": [str(refused)]}) from None


@extend_schema_view(list=extend_schema(parameters=[TransactionFilterSerializer]))
class TransactionViewSet(viewsets.ReadOnlyModelViewSet):
    """Charging sessions of both OCPP versions, newest first."""

    serializer_class = TransactionSerializer
    query_filters = TransactionFilterSerializer.names()
    lookup_value_regex = "[^/]+"

    def get_queryset(self) -> QuerySet[Transaction]:
        filters = TransactionFilterSerializer.parse(self.request.query_params)
        return selectors.transaction_list(**filters)

    def get_object(self) -> Transaction:
        pk = self.kwargs["pk"]
        try:
            return selectors.transaction_list().get(pk=pk)
        except (Transaction.DoesNotExist, ValueError):
            raise ApiError(404, "NotFound", f"No transaction {pk}.") from None

    @extend_schema(responses=MeterSampleSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="meter-values", pagination_class=None)
    def meter_values(self, request: Request, pk: str) -> StreamingHttpResponse:
        """Every sampled value of the session as received, with its value in the base unit: one JSON
        array, streamed a chunk of rows at a time (a week-long session holds hundreds of thousands)."""
        whole_list_query_refused(request.query_params)  # none filters them
        samples = self.get_object().meter_samples.order_by("timestamp", "id")
        chunks = _json_array(samples)
        content = in_request_thread(chunks) if isinstance(request._request, ASGIRequest) else chunks
        return StreamingHttpResponse(content, content_type="application/json")


_SAMPLES_CHUNK = 2000


def _json_array(samples: QuerySet[MeterSample]) -> Iterator[bytes]:
    """``samples`` as the JSON array ``MeterSampleSerializer(many=True)`` renders, a chunk of rows
    at a time from a server-side cursor: memory stays that of one chunk however many there are
    (the whole list and its rendering took about 3 KB per sample: 0.9 GB for 300,000)."""
    renderer, rows = JSONRenderer(), samples.iterator(chunk_size=_SAMPLES_CHUNK)
    separator = b"["
    while chunk := list(islice(rows, _SAMPLES_CHUNK)):
        yield separator + renderer.render(MeterSampleSerializer(chunk, many=True).data)[1:-1]
        separator = b","
    yield b"]" if separator == b"," else b"[]"
