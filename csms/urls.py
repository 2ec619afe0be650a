from django.contrib import admin
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views.generic import RedirectView

from commands.urls import command_routes_at_once
from csms import views

api_v1: list[URLPattern | URLResolver] = [
    re_path(r"^schema/?$", views.SchemaView.as_view(), name="schema"),
    re_path(r"^docs/?$", views.SchemaDocsView.as_view(url_name="schema"), name="docs"),
    # First: a command POST is the API's busiest request, and no other route begins as its do.
    path("", include("commands.urls")),
    path("", include("chargepoints.urls")),
    path("", include("charging.urls")),
    path("", include("configuration.urls")),
    path("", include("webhooks.urls")),
    path("", include("billing.urls")),
    path("", include("maintenance.urls")),
    path("", include("sites.urls")),
]

urlpatterns = [
    # The command POSTs (the API's busiest requests) at once; each is also in api_v1 (commands.urls).
    command_routes_at_once,
    # The admin's "View site" link lands here: the API docs are the site's public face.
    path("", RedirectView.as_view(pattern_name="docs"), name="home"),
    # Browsers ask for it on every page without a <link rel="icon"> (the API docs, JSON answers).
    path("favicon.ico", RedirectView.as_view(url=static("csms/favicon.ico")), name="favicon"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("", include("maintenance.charger_urls")),
]

handler400 = "csms.error_views.bad_request"
handler403 = "csms.error_views.permission_denied"
handler404 = "csms.error_views.page_not_found"
handler500 = "csms.error_views.server_error"
