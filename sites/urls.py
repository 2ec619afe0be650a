from kernel.routers import OptionalSlashRouter
from sites.views import SiteViewSet

router = OptionalSlashRouter()
router.register("sites", SiteViewSet, basename="site")

urlpatterns = router.urls
