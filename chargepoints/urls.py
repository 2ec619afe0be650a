from django.urls import re_path

from chargepoints.identity import IDENTITY_PATTERN
from chargepoints.views import ChargePointViewSet, ConnectionStatusView
from kernel.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("chargepoints", ChargePointViewSet, basename="chargepoint")

urlpatterns = [
    re_path(
        rf"^installer/charge-points/(?P<charge_point_id>{IDENTITY_PATTERN})/connection-status/?$",
        ConnectionStatusView.as_view(),
        name="connection-status",
    ),
    *router.urls,
]
