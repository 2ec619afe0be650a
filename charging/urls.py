from charging.views import IdTagViewSet, TransactionViewSet
from kernel.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("id-tags", IdTagViewSet, basename="id-tag")
router.register("transactions", TransactionViewSet, basename="transaction")

urlpatterns = router.urls
