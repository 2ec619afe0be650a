from django.urls import path

from maintenance import charger_views

urlpatterns = [
    path("firmware/download/<str:token>", charger_views.firmware_download, name="firmware-download"),
    path("diagnostics/upload/<str:token>", charger_views.diagnostics_upload, name="diagnostics-upload"),
    path("diagnostics/upload/<str:token>/", charger_views.diagnostics_upload),
    path("diagnostics/upload/<str:token>/<str:file_name>", charger_views.diagnostics_upload),
]
