from django.urls import re_path

from configuration.views import ConfigurationRefreshView, ConfigurationView

urlpatterns = [
    re_path(r"^chargepoints/(?P<charge_point_id>[^/]+)/configuration/?$", ConfigurationView.as_view()),
    re_path(r"^chargepoints/(?P<charge_point_id>[^/]+)/configuration/refresh/?$", ConfigurationRefreshView.as_view()),
]
