from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from kernel.api_errors import ApiError
from kernel.query_params import unknown_query_parameters_refused, whole_list_query_refused
from sites import selectors, services
from sites.models import AllocationSnapshot, Site, SiteMember
from sites.serializers import (
    AllocationSerializer,
    AllocationSnapshotSerializer,
    BaseLoadSerializer,
    SiteMemberSerializer,
    SiteSerializer,
)

_SNAPSHOTS = 500


def _conflict(error: services.SiteConflict) -> ApiError:
    return ApiError(400, "ValidationError", "The request body is invalid.", details={error.field: [str(error)]})


class SiteViewSet(viewsets.ModelViewSet):
    """Grid connections whose capacity is shared among the sessions of their member chargers."""

    serializer_class = SiteSerializer

    def get_queryset(self) -> QuerySet[Site]:
        return Site.objects.all()

    def get_object(self) -> Site:
        try:
            return Site.objects.get(pk=self.kwargs["pk"])
        except (Site.DoesNotExist, ValueError):
            raise ApiError(404, "NotFound", f"No site {self.kwargs['pk']}.") from None

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        try:
            serializer.instance = services.site_save(**serializer.validated_data)
        except services.SiteConflict as error:
            raise _conflict(error) from None

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        try:
            services.site_save(site=serializer.instance, **serializer.validated_data)
        except services.SiteConflict as error:
            raise _conflict(error) from None

    def perform_destroy(self, instance: Site) -> None:
        services.site_delete(site=instance)

    @extend_schema(request=BaseLoadSerializer, responses=SiteSerializer)
    @action(detail=True, methods=["post"], url_path="base-load")
    def base_load(self, request: Request, pk: str) -> Response:
        """The building's measured load, A per phase (one value per site phase)."""
        body = BaseLoadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            site = services.site_base_load_record(site=self.get_object(), load_a=body.validated_data["load_a"])
        except services.SiteConflict as error:
            raise _conflict(error) from None
        return Response(SiteSerializer(site).data)

    @extend_schema(methods=["GET"], responses=SiteMemberSerializer(many=True))
    @extend_schema(methods=["POST"], request=SiteMemberSerializer, responses={201: SiteMemberSerializer})
    @action(detail=True, methods=["get", "post"], serializer_class=SiteMemberSerializer, pagination_class=None)
    def members(self, request: Request, pk: str) -> Response:
        site = self.get_object()
        if request.method == "GET":
            whole_list_query_refused(request.query_params)  # none filters them
            members = site.members.select_related("charge_point").prefetch_related("connector_maximums")
            return Response(SiteMemberSerializer(members, many=True).data)
        body = SiteMemberSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        charge_point_id = fields.pop("charge_point")["charge_point_id"]
        fields.pop("smart_charging_flag", None)
        try:
            member = services.site_member_add(site=site, charge_point_id=charge_point_id, **fields)
        except services.SiteConflict as error:
            raise _conflict(error) from None
        return Response(SiteMemberSerializer(member).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SiteMemberSerializer, responses=SiteMemberSerializer)
    @action(
        detail=True,
        methods=["get", "patch", "delete"],
        url_path=r"members/(?P<charge_point_id>[^/]+)",
        serializer_class=SiteMemberSerializer,
    )
    def member(self, request: Request, pk: str, charge_point_id: str) -> Response:
        member = self._member(charge_point_id)
        if request.method == "GET":
            return Response(SiteMemberSerializer(member).data)
        if request.method == "DELETE":
            services.site_member_remove(member=member)
            return Response(status=status.HTTP_204_NO_CONTENT)
        body = SiteMemberSerializer(member, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        fields: dict[str, Any] = dict(body.validated_data)
        if "charge_point" in fields:
            raise ApiError(
                400,
                "ValidationError",
                "The request body is invalid.",
                details={"charge_point_id": ["Remove the member and add it to change the charger."]},
            )
        try:
            member = services.site_member_update(member=member, **fields)
        except services.SiteConflict as error:
            raise _conflict(error) from None
        return Response(SiteMemberSerializer(member).data)

    @extend_schema(responses=AllocationSerializer)
    @action(detail=True, methods=["get"], pagination_class=None)
    def allocation(self, request: Request, pk: str) -> Response:
        """The limits the site's sessions hold now, and the allocation over time (newest first)."""
        unknown_query_parameters_refused(request.query_params, (), paginated=False, taker="A site's allocation")
        site = self.get_object()
        sessions = [
            {
                "transaction_id": view.transaction.pk,
                "charge_point_id": view.member.charge_point.charge_point_id,
                "limit_a": str(view.held_a.quantize(Decimal("0.1"), rounding=ROUND_FLOOR)),
                "draw_a": str(view.demand.draw_a) if view.demand.draw_a is not None else None,
                "steered": view.adjustable,
            }
            for view in selectors.site_sessions(site=site)
        ]
        snapshots = AllocationSnapshot.objects.filter(site=site)[:_SNAPSHOTS]
        return Response({"sessions": sessions, "history": AllocationSnapshotSerializer(snapshots, many=True).data})

    def _member(self, charge_point_id: str) -> SiteMember:
        member = (
            SiteMember.objects.select_related("charge_point", "site")
            .filter(site=self.get_object(), charge_point__charge_point_id=charge_point_id)
            .first()
        )
        if member is None:
            raise ApiError(404, "NotFound", f"{charge_point_id!r} is not a member of site {self.kwargs['pk']}.")
        return member
