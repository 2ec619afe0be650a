from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from chargepoints import selectors, services
from chargepoints.identity import IDENTITY_PATTERN
from chargepoints.models import ChargePoint, LifecycleState, OcppVersion
from chargepoints.serializers import (
    ChargePointSerializer,
    ChargePointUpdatedSerializer,
    ChargePointUpdateSerializer,
    ConnectionStatusSerializer,
    ConnectorSerializer,
    SecurityEventSerializer,
)
from chargepoints.signals import charge_point_changed
from kernel.api_errors import ApiError, query_choice, query_flag
from kernel.models import ApiKey
from kernel.query_params import whole_list_query_refused


def _get_charge_point_or_404(charge_point_id: str) -> ChargePoint:
    try:
        return selectors.charge_point_get(charge_point_id=charge_point_id)
    except ChargePoint.DoesNotExist:
        raise ApiError(
            404, "NotFound", f"Charge point {charge_point_id!r} is not registered.", charge_point_id=charge_point_id
        ) from None


@extend_schema_view(
    update=extend_schema(responses=ChargePointUpdatedSerializer),
    partial_update=extend_schema(responses=ChargePointUpdatedSerializer),
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "connected", OpenApiTypes.BOOL, description="Only connected (true) or dark (false) chargers."
            ),
            OpenApiParameter("ocpp_version", OpenApiTypes.STR, enum=["1.6", "2.0.1"]),
            OpenApiParameter("lifecycle_state", OpenApiTypes.STR, enum=["pending", "commissioned", "decommissioned"]),
        ]
    ),
)
class ChargePointViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Register, list, change and remove charge points."""

    serializer_class = ChargePointSerializer
    query_filters = ("connected", "ocpp_version", "lifecycle_state")
    api_error_statuses = {"create": (409,), "destroy": (409,)}  # the id exists; the charger has history
    lookup_field = "charge_point_id"
    lookup_value_regex = IDENTITY_PATTERN

    def get_queryset(self) -> QuerySet[ChargePoint]:
        queryset = ChargePoint.objects.all()
        params = self.request.query_params
        connected = query_flag(params, "connected")
        if connected is not None:
            queryset = queryset.filter(connected=connected)
        for field, choices in (("ocpp_version", OcppVersion.values), ("lifecycle_state", LifecycleState.values)):
            value = query_choice(params, field, choices)
            if value is not None:
                queryset = queryset.filter(**{field: value})
        return queryset

    def get_serializer_class(self) -> type[ChargePointSerializer]:
        if self.action in ("update", "partial_update"):
            return ChargePointUpdateSerializer
        return ChargePointSerializer

    def get_object(self) -> ChargePoint:
        return _get_charge_point_or_404(self.kwargs["charge_point_id"])

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            charge_point = services.charge_point_register(
                charge_point_id=data["charge_point_id"],
                heartbeat_interval=data.get("heartbeat_interval", settings.CSMS_DEFAULT_HEARTBEAT_INTERVAL),
                ocpp_version=data.get("ocpp_version", ""),
                lifecycle_state=data.get("lifecycle_state", "commissioned"),
                password=data.get("password"),
                tariff=data.get("tariff"),
            )
        except services.ChargePointAlreadyExists as exists:
            raise ApiError(409, "Conflict", str(exists), charge_point_id=exists.charge_point_id) from None
        return Response(self.get_serializer(charge_point).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        charge_point = self.get_object()
        serializer = self.get_serializer(charge_point, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        previous_interval, previous_state = charge_point.heartbeat_interval, charge_point.lifecycle_state
        try:
            services.charge_point_update(charge_point=charge_point, **serializer.validated_data)
        except services.ChargePointConnectedOverVersion as connected:  # it connected since it was read
            message = str(connected)
            raise ApiError(400, "ValidationError", message, details={"ocpp_version": [message]}) from None
        # A commissioned charger is woken, a new heartbeat interval pushed (commands' receiver, whose
        # answer adds ``heartbeat_interval_push`` when the interval changed). The charger is shown
        # after: as a GET would show it once its answer was applied (``previous_heartbeat_interval``).
        added = charge_point_changed.send(
            sender=ChargePoint,
            charge_point=charge_point,
            previous_state=previous_state,
            previous_interval=previous_interval,
            interval_given="heartbeat_interval" in serializer.validated_data,
            api_key=request.auth if isinstance(request.auth, ApiKey) else None,
            user_id=None,
        )
        data = self.get_serializer(charge_point).data
        for _receiver, fields in added:
            data.update(fields)
        return Response(data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            services.charge_point_delete(charge_point=self.get_object())
        except services.ChargePointHasHistory as history:
            raise ApiError(409, "Conflict", str(history), charge_point_id=history.charge_point_id) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=ConnectorSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def connectors(self, request: Request, charge_point_id: str) -> Response:
        whole_list_query_refused(request.query_params)  # none filters it
        charge_point = self.get_object()
        connectors = selectors.connector_list(charge_point=charge_point)
        return Response(ConnectorSerializer(connectors, many=True).data)

    @extend_schema(responses=SecurityEventSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="security-events")
    def security_events(self, request: Request, charge_point_id: str) -> Response:
        """The charger's security events (SecurityEventNotification), newest by its clock first, paginated."""
        events = selectors.charge_point_security_events(charge_point=self.get_object())
        page = self.paginate_queryset(events)
        return self.get_paginated_response(SecurityEventSerializer(page, many=True).data)


class ConnectionStatusView(GenericAPIView):
    """Whether the charger is connected, and when it last sent a Heartbeat."""

    serializer_class = ConnectionStatusSerializer

    def get(self, request: Request, charge_point_id: str) -> Response:
        return Response(self.get_serializer(_get_charge_point_or_404(charge_point_id)).data)
