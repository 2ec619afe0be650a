from billing.views import BillingRecordViewSet, TariffViewSet
from kernel.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("tariffs", TariffViewSet, basename="tariff")
router.register("billing-records", BillingRecordViewSet, basename="billing-record")

urlpatterns = router.urls
