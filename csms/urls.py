from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

api_v1 = [
    re_path(r"^schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("chargepoints.urls")),
    path("", include("commands.urls")),
    path("", include("webhooks.urls")),
    path("", include("billing.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
]

handler400 = "csms.error_views.bad_request"
handler403 = "csms.error_views.permission_denied"
handler404 = "csms.error_views.page_not_found"
handler500 = "csms.error_views.server_error"
