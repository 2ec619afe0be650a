from kernel.routers import OptionalSlashRouter
from webhooks.views import WebhookSubscriptionViewSet

router = OptionalSlashRouter()
router.register("webhooks", WebhookSubscriptionViewSet, basename="webhook")

urlpatterns = router.urls
