from django.urls import re_path

from kernel.routers import OptionalSlashRouter
from maintenance.views import CampaignViewSet, ChargePointLogUploadsView, FirmwareFileViewSet, LogUploadFileView

router = OptionalSlashRouter()
router.register("firmware", FirmwareFileViewSet, basename="firmware")
router.register("campaigns", CampaignViewSet, basename="campaign")

urlpatterns = [
    re_path(r"^chargepoints/(?P<charge_point_id>[^/]+)/diagnostics/?$", ChargePointLogUploadsView.as_view()),
    re_path(r"^diagnostics/(?P<pk>[0-9]+)/file/?$", LogUploadFileView.as_view()),
    *router.urls,
]
