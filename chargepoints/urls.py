from django.urls import re_path

from chargepoints.identity import IDENTITY_PATTERN
from chargepoints.views import ChargePointViewSet, ConnectionStatusView, IdTagViewSet, TransactionViewSet
from kernel.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("chargepoints", ChargePointViewSet, basename="chargepoint")
router.register("id-tags", IdTagViewSet, basename="id-tag")
router.register("transactions", TransactionViewSet, basename="transaction")

urlpatterns = [
    re_path(
        rf"^installer/charge-points/(?P<charge_point_id>{IDENTITY_PATTERN})/connection-status/?$",
        ConnectionStatusView.as_view(),
        name="connection-status",
    ),
    *router.urls,
]
