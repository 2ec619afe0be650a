from django.urls import re_path

from chargepoints.views import ChargePointViewSet, ConnectionStatusView
from csms.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("chargepoints", ChargePointViewSet, basename="chargepoint")

urlpatterns = [
    re_path(
        r"^installer/charge-points/(?P<charge_point_id>[^/]+)/connection-status/?$",
        ConnectionStatusView.as_view(),
        name="connection-status",
    ),
    *router.urls,
]
