from django.urls import re_path
from rest_framework.routers import SimpleRouter

from chargepoints.views import ChargePointViewSet, ConnectionStatusView

router = SimpleRouter(trailing_slash="/?")
router.register("chargepoints", ChargePointViewSet, basename="chargepoint")

urlpatterns = [
    re_path(
        r"^installer/charge-points/(?P<charge_point_id>[^/]+)/connection-status/?$",
        ConnectionStatusView.as_view(),
        name="connection-status",
    ),
    *router.urls,
]
